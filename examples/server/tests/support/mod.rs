//! What the server tests share: starting the server as a process on a free loopback port.

#![allow(clippy::unwrap_used, unreachable_pub)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The API key the tests' servers expect.
pub const KEY: &str = "test-key";

/// `socratic-server --listen ADDRESS` with the test key and quiet logs; the caller adds the
/// rest of the arguments.
pub fn server(address: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socratic-server"));
    command
        .args(["--listen", address])
        .env("SOCRATIC_API_KEY", KEY)
        .env("RUST_LOG", "error")
        .kill_on_drop(true);
    command
}

/// Spawns `command` (made by [`server`] for a free port the server picks itself) and waits,
/// up to ten seconds, for the line where it says the address it listens on. The child and
/// its address. The server binds the port, so no other process can take it in between.
pub async fn start(command: impl FnOnce(&str) -> Command) -> (Child, String) {
    let mut child = command("127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let address = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(address) = line.strip_prefix("listening on ") {
                return address.to_owned();
            }
        }
        panic!("the server ended without listening");
    })
    .await
    .expect("the server did not listen within ten seconds");
    // Keep reading, so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, address)
}
