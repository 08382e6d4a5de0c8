//! The dialogue function: SQS dialogue jobs, with partial batch responses.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    socratic_lambda::run_sqs_stage().await
}
