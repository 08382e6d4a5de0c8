//! The curator function: `run-judged` events from EventBridge.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use socratic_aws::lambda::handle_run_judged;

#[tokio::main]
async fn main() -> Result<(), Error> {
    socratic_lambda::init_tracing();
    let ports = socratic_lambda::ports().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<EventBridgeEvent<Value>>| {
        let ports = ports.clone();
        async move {
            handle_run_judged(&ports, event.payload)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
