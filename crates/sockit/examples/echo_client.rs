//! The slides' echo client: sends each stdin line, prints what comes back.
//!
//! ```sh
//! cargo run --example echo_client -- 127.0.0.1 50007 < lines.txt
//! ```
//! Try it against `sockit echo-server` or `python3 ../shared/seed-programs/echo_server.py`.
//! Python: `../shared/seed-programs/echo_client.py`.

mod common;

use std::io::{BufRead, Write};
use std::time::Duration;

use sockit::client::create_connection;
use sockit::repr::bytes_repr;

fn main() {
    common::main(run)
}

fn run() -> common::Result<()> {
    let mut args = std::env::args().skip(1);
    let (host, port) = common::host_port(&mut args, "usage: echo_client HOST PORT", None)?;
    let s = create_connection(&host, &port, Some(Duration::from_secs(5)), None)?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let data = line?.into_bytes();
        if data.is_empty() {
            break;
        }
        s.send_all(&data)?;
        let mut got = Vec::new();
        while got.len() < data.len() {
            let chunk = s.recv(1024)?;
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
        }
        if got.is_empty() {
            break;
        }
        writeln!(out, "Received {}", bytes_repr(&got))?;
        out.flush()?;
    }
    Ok(())
}
