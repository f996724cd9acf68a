//! The slides' raw HTTP GET over a plain socket, aimed at a server on this machine.
//!
//! ```sh
//! python3 -m http.server --bind 127.0.0.1 8000 &
//! cargo run --example http_get -- 127.0.0.1 8000
//! ```
//! Sends `GET / HTTP/1.1\r\n\r\n` (no Host header: a strict server answers 400, which is
//! part of the lesson) and prints up to 4096 bytes of the reply.
//! Python: `../shared/seed-programs/http_get.py`; the full tool is `sockit http`.

mod common;

use std::io::Write;
use std::time::Duration;

use sockit::client::create_connection;

fn main() {
    common::main(run)
}

fn run() -> common::Result<()> {
    let mut args = std::env::args().skip(1);
    let (host, port) = common::host_port(&mut args, "usage: http_get HOST PORT", None)?;
    let s = create_connection(&host, &port, Some(Duration::from_secs(5)), None)?;
    s.send_all(b"GET / HTTP/1.1\r\n\r\n")?;
    let reply = s.recv(4096)?;
    let mut out = std::io::stdout().lock();
    // Python decodes as latin-1: every byte is one character.
    let text: String = reply.iter().map(|&b| b as char).collect();
    writeln!(out, "{text}")?;
    Ok(())
}
