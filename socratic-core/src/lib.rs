//! The core of `socratic`, a library for benchmarking large language models as Socratic tutors.
//!
//! It holds everything that does not depend on where it runs:
//!
//! - [`entity`]: prompts, rubrics, scenarios (SEED), models, manifests, runs, turns, judgments
//!   and summaries, with validation that names the offending field;
//! - [`canonical`]: canonical JSON and SHA-256 content hashes, which make catalog entities and
//!   manifests content-addressed;
//! - [`id`] and [`keys`]: typed ids and the single-table key schema as pure functions;
//! - the four ports — [`store::Store`], [`blob::BlobStore`], [`queue::QueueProducer`] /
//!   [`queue::QueueConsumer`] and [`llm::LlmClient`] — with their error enums, `…Ext`
//!   conveniences and forwarding impls for `Arc` and `Box`;
//! - [`repository`]: a typed repository over any store;
//! - [`pipeline`], [`runner`], [`stats`], [`report`]: the stages, the worker pool, the
//!   statistics and the report files;
//! - [`assembly`]: the one way a pipeline run by one process is assembled from a store and
//!   its stage queues, and [`llm::ClientStack`], the one way a model's client is layered;
//! - [`api`]: the admin API as a framework-free `http` handler;
//! - [`calibration`]: human labels of judged turns, and each judge's agreement with them;
//! - [`defaults`]: the ASE v1 rubric, the default prompts and the 48-scenario bank;
//! - `testkit` (feature `testkit`): one conformance suite per port;
//! - `mocks` (feature `mocks`): mockall mocks of every port.
//!
//! Backends live in other crates: `socratic-memory` (in-memory and filesystem),
//! `socratic-sqlite` (one database file), `socratic-aws` (DynamoDB, S3, SQS, EventBridge,
//! Bedrock) and `socratic-openai` (any OpenAI-compatible server); the offline models are in
//! `socratic-sim`. See `docs/architecture.md` for the whole picture.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod answer_key;
pub mod api;
pub mod assembly;
pub mod blob;
pub mod calibration;
pub mod canonical;
pub mod clock;
pub mod compare;
pub mod defaults;
pub mod entity;
pub mod estimate;
pub mod id;
pub mod keys;
pub mod labelling;
pub mod llm;
pub mod pipeline;
pub mod queue;
pub mod report;
pub mod repository;
pub mod runner;
pub mod stats;
pub mod store;

#[cfg(feature = "mocks")]
#[cfg_attr(docsrs, doc(cfg(feature = "mocks")))]
pub mod mocks;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
