//! The pieces of the `socratic` command line that are worth testing on their own: the models
//! file and the clients built from it, and catalogs of your own from files.

pub mod catalog;
pub mod models;
