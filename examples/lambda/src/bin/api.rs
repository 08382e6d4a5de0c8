//! The admin API function behind API Gateway (REST API proxy integration, which carries the API
//! key and usage plan). Its key is read from Secrets Manager (`SOCRATIC_API_KEY_SECRET`) at cold
//! start and again, at most once per TTL, when a request's key does not match: rotating the
//! secret needs no redeploy, and the key is never in the environment. Pagination cursors are
//! signed with a secret of their own (`SOCRATIC_CURSOR_SECRET`), read once at cold start.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use socratic_aws::lambda::handle_rest_api_request;
use socratic_aws::{AwsSettings, DEFAULT_KEY_TTL, SecretApiKey, read_cursor_secret, sdk_config};
use socratic_core::api::{AdminApi, ApiConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    socratic_lambda::init_tracing();
    let settings = AwsSettings::from_env();
    let sdk = sdk_config(&settings).await;
    // An empty or unreadable secret stops the function here: it never serves without a key.
    let (secret, key) =
        SecretApiKey::load(&sdk, settings.api_key_secret()?, DEFAULT_KEY_TTL).await?;
    let mut config = ApiConfig::new(key);
    // Cursors are signed with their own secret, when the deployment names one.
    if let Some(id) = &settings.cursor_secret {
        config.cursor_secret = Some(read_cursor_secret(&sdk, id.clone()).await?);
    }
    let api = AdminApi::new(socratic_lambda::ports().await?, config);
    let secret = std::sync::Arc::new(secret);
    lambda_runtime::run(service_fn(|event: LambdaEvent<ApiGatewayProxyRequest>| {
        let (api, secret) = (api.clone(), std::sync::Arc::clone(&secret));
        async move {
            secret
                .refresh_if_rejected(&api, &event.payload.headers)
                .await;
            Ok::<_, Error>(handle_rest_api_request(&api, event.payload).await)
        }
    }))
    .await
}
