//! What the server tests share: starting the server as a process on a free loopback port.

#![allow(clippy::unwrap_used, unreachable_pub)]

use std::time::Duration;

use tokio::net::TcpStream;
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

/// Spawns `command` (made by [`server`] for the address) on a free port and waits, up to ten
/// seconds, until it listens. The child and its address.
pub async fn start(command: impl FnOnce(&str) -> Command) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let child = command(&address).spawn().unwrap();
    for _ in 0..200 {
        if TcpStream::connect(&address).await.is_ok() {
            return (child, address);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not listen on {address}");
}
