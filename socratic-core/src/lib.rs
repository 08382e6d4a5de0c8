#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod blob;
pub mod canonical;
pub mod clock;
pub mod defaults;
pub mod entity;
pub mod id;
pub mod keys;
pub mod llm;
pub mod queue;
pub mod repository;
pub mod store;

#[cfg(feature = "mocks")]
pub mod mocks;
#[cfg(feature = "testkit")]
pub mod testkit;
