//! A deployed stack's outputs, read from CloudFormation: how tools outside the stack find its
//! table and bucket from its name.

use std::collections::BTreeMap;

use aws_config::SdkConfig;

/// Why a stack's outputs could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// No stack of that name in the account and region.
    #[error(
        "stack {name} does not exist in this account and region (check AWS_REGION and the stack's name)"
    )]
    NotFound {
        /// The stack's name.
        name: String,
    },
    /// The stack has no output of that name: not a socratic stack, or one still being created.
    #[error("stack {name} has no output {output}")]
    MissingOutput {
        /// The stack's name.
        name: String,
        /// The output.
        output: String,
    },
    /// CloudFormation could not be asked.
    #[error("reading stack {name}: {message}")]
    Unavailable {
        /// The stack's name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// The outputs of stack `name` (`TableName`, `BucketName`, `ApiUrl`, …), by output key.
pub async fn stack_outputs(
    sdk: &SdkConfig,
    name: &str,
) -> Result<BTreeMap<String, String>, StackError> {
    let client = aws_sdk_cloudformation::Client::new(sdk);
    let answer = client
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
            let (code, message) = (
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default(),
            );
            // CloudFormation answers a missing stack with a ValidationError naming it.
            if code == "ValidationError" && message.contains("does not exist") {
                return StackError::NotFound {
                    name: name.to_owned(),
                };
            }
            // A short reason, never the SDK's whole error.
            let message = match &e {
                _ if !code.is_empty() => format!("{code}: {message}"),
                SdkError::DispatchFailure(_) => "could not connect to CloudFormation".to_owned(),
                SdkError::TimeoutError(_) => "CloudFormation did not answer in time".to_owned(),
                SdkError::ServiceError(context) => format!(
                    "CloudFormation answered HTTP {} without an error code",
                    context.raw().status().as_u16()
                ),
                _ => "CloudFormation's answer could not be read".to_owned(),
            };
            StackError::Unavailable {
                name: name.to_owned(),
                message,
            }
        })?;
    let stack = answer
        .stacks()
        .first()
        .ok_or_else(|| StackError::NotFound {
            name: name.to_owned(),
        })?;
    Ok(stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect())
}

/// Output `output` of `outputs`, the outputs of stack `name`.
pub fn stack_output(
    outputs: &BTreeMap<String, String>,
    name: &str,
    output: &str,
) -> Result<String, StackError> {
    outputs
        .get(output)
        .cloned()
        .ok_or_else(|| StackError::MissingOutput {
            name: name.to_owned(),
            output: output.to_owned(),
        })
}
