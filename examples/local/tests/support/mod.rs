//! What the command-line tests share: running the binary and reading what it printed.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Output;

use tokio::process::Command;

/// Runs `socratic ARGS` to completion, with logging down to errors.
pub async fn socratic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap()
}

/// What it printed to standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What it printed to standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Both, one after the other.
pub fn text(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
