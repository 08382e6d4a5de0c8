//! The dialogue function: SQS dialogue jobs, with partial batch responses.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use socratic_aws::AwsSettings;
use socratic_aws::lambda::handle_sqs_event;
use socratic_core::runner::StageHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    socratic_lambda::init_tracing();
    let ports = socratic_lambda::ports().await?;
    let max_receives = AwsSettings::from_env().max_receive_count;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let ports = ports.clone();
        async move {
            Ok::<SqsBatchResponse, Error>(
                handle_sqs_event(&ports, &StageHandler, event.payload, max_receives).await,
            )
        }
    }))
    .await
}
