//! The pieces of the `socratic` command line that are worth testing on their own: the models
//! file and the clients built from it.

pub mod models;
