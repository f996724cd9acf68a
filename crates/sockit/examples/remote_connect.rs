//! The slides' "connect to a remote server and send a request", aimed at HOST PORT.
//!
//! ```sh
//! cargo run --example remote_connect -- 127.0.0.1 8000 'GET / HTTP/1.0\r\n\r\n'
//! ```
//! Try it against `python3 -m http.server --bind 127.0.0.1 8000` or `nc -l 127.0.0.1 8000`.
//! The host may be a name: one getaddrinfo call, then each address in turn
//! (Python's `socket.create_connection`).

mod common;

use std::io::Write;
use std::time::Duration;

use sockit::client::create_connection;

fn main() {
    common::main(run)
}

fn run() -> common::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: remote_connect HOST PORT [REQUEST]";
    let (host, port) = common::host_port(&mut args, usage, None)?;
    let request = args
        .next()
        .unwrap_or_else(|| "GET / HTTP/1.0\\r\\n\\r\\n".into())
        .replace("\\r", "\r")
        .replace("\\n", "\n");
    let s = create_connection(&host, &port, Some(Duration::from_secs(5)), None)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "connected to {}", s.peer_addr()?)?;
    s.send_all(request.as_bytes())?;
    out.write_all(&s.recv(4096)?)?;
    writeln!(out)?;
    Ok(())
}
