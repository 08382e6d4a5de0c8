//! The admin API function behind API Gateway (REST API proxy integration, which carries the API
//! key and usage plan).

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use socratic_aws::lambda::handle_rest_api_request;
use socratic_core::api::{AdminApi, ApiConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    socratic_lambda::init_tracing();
    let key = std::env::var("SOCRATIC_API_KEY")
        .map_err(|_| "set SOCRATIC_API_KEY to the key clients must send in x-api-key")?;
    let api = AdminApi::new(socratic_lambda::ports().await?, ApiConfig::new(key));
    lambda_runtime::run(service_fn(|event: LambdaEvent<ApiGatewayProxyRequest>| {
        let api = api.clone();
        async move { Ok::<_, Error>(handle_rest_api_request(&api, event.payload).await) }
    }))
    .await
}
