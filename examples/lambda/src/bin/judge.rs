//! The judge function: SQS judge jobs, with partial batch responses.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    socratic_lambda::run_sqs_stage().await
}
