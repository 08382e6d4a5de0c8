//! AWS backends for `socratic`: DynamoDB, S3, SQS, EventBridge and Bedrock implementations of
//! the ports in `socratic-core`.
//!
//! This crate is the only place AWS SDK types appear; everything it exposes speaks the core
//! port types.
