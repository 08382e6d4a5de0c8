//! AWS backends for `socratic`: the ports of `socratic-core` over the AWS SDK for Rust.
//!
//! | port | backend | feature |
//! |---|---|---|
//! | `Store` | [`DynamoStore`] — one table, string `PK`/`SK`, five sparse global indexes | `dynamodb` |
//! | `BlobStore` | [`S3BlobStore`] — create-only puts with `If-None-Match` | `s3` |
//! | `QueueProducer` + `QueueConsumer` | [`SqsQueue`] — dead-lettering by redrive policy | `sqs` |
//! | `QueueProducer` (run-judged events) | [`EventBridgePublisher`] | `eventbridge` |
//! | `LlmClient` | [`BedrockLlm`] — the Converse API, any model family | `bedrock` |
//! | `BatchApi` | [`BedrockBatchApi`] — batch inference jobs over JSONL in S3, Claude models | `bedrock-batch` |
//!
//! [`SecretApiKey`] (feature `secrets`) keeps the admin API's key in Secrets Manager.
//!
//! The [`metrics`] module (feature `lambda`) writes the pipeline's metric events as CloudWatch
//! embedded metrics.
//!
//! The [`lambda`] module (feature `lambda`) adapts Lambda events (SQS batches with partial
//! failures, EventBridge events, API Gateway requests) to the pipeline and the admin API.
//!
//! AWS types never leave this crate. [`AwsSettings`] reads every name from the environment in
//! one place, and [`sdk_config`] pins the SDK behaviour version. See `docs/aws.md` for IAM
//! permissions, the table definition and how retries are layered.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "sqs", feature = "eventbridge"))]
mod batch;
mod config;
mod error;

#[cfg(feature = "bedrock")]
mod bedrock;
#[cfg(feature = "bedrock-batch")]
mod bedrock_batch;
#[cfg(feature = "dynamodb")]
mod dynamo;
#[cfg(feature = "eventbridge")]
mod eventbridge;
#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod lambda;
#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod metrics;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "secrets")]
mod secrets;
#[cfg(feature = "sqs")]
mod sqs;
#[cfg(feature = "cloudformation")]
mod stack;

pub use config::{AwsSettings, ConfigError, sdk_config};

#[cfg(feature = "bedrock")]
#[cfg_attr(docsrs, doc(cfg(feature = "bedrock")))]
pub use bedrock::{
    BedrockLlm, CACHE_POINT_SUPPORT, PromptCaching, foundation_model, supports_cache_points,
};
#[cfg(feature = "bedrock-batch")]
#[cfg_attr(docsrs, doc(cfg(feature = "bedrock-batch")))]
pub use bedrock_batch::{BedrockBatchApi, BedrockBatchConfig, batch_supported};
#[cfg(feature = "dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
pub use dynamo::{DynamoStore, create_table};
#[cfg(feature = "eventbridge")]
#[cfg_attr(docsrs, doc(cfg(feature = "eventbridge")))]
pub use eventbridge::{EventBridgePublisher, RUN_JUDGED_DETAIL_TYPE, SOURCE};
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use s3::S3BlobStore;
#[cfg(feature = "secrets")]
#[cfg_attr(docsrs, doc(cfg(feature = "secrets")))]
pub use secrets::{DEFAULT_KEY_TTL, SecretApiKey, SecretError, read_cursor_secret};
#[cfg(feature = "sqs")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqs")))]
pub use sqs::{SqsQueue, create_queue_with_dead_letter};
#[cfg(feature = "cloudformation")]
#[cfg_attr(docsrs, doc(cfg(feature = "cloudformation")))]
pub use stack::{StackError, stack_output, stack_outputs};
