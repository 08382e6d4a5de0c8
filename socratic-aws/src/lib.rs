//! AWS backends.
