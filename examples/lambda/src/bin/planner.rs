//! The planner function: invoked directly with a manifest request.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use socratic_aws::lambda::handle_plan;

#[tokio::main]
async fn main() -> Result<(), Error> {
    socratic_lambda::init_tracing();
    let ports = socratic_lambda::ports().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let ports = ports.clone();
        async move {
            handle_plan(&ports, event.payload)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
