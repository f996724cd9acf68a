//! The slides' raw HTTP GET over a plain socket, aimed at a server on this machine.
//!
//! ```sh
//! python3 -m http.server --bind 127.0.0.1 8000 &
//! cargo run --example http_get -- 127.0.0.1 8000
//! ```
//! Sends `GET / HTTP/1.1\r\n\r\n` (no Host header: a strict server answers 400, which is
//! part of the lesson) and prints up to 4096 bytes of the reply.
//! Python: `../shared/seed-programs/http_get.py`; the full tool is `sockit http`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sockit::{Family, SockType, Socket};

fn main() {
    if let Err(e) = run() {
        eprintln!("{}: {e}", env!("CARGO_CRATE_NAME"));
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host: IpAddr = args.next().ok_or("usage: http_get HOST PORT")?.parse()?;
    let port: u16 = args.next().ok_or("usage: http_get HOST PORT")?.parse()?;
    let addr = SocketAddr::new(host, port);
    let mut s = Socket::new(Family::of(&addr), SockType::Stream, None)?;
    s.set_timeout(Some(Duration::from_secs(5)))?;
    s.connect(addr)?;
    s.send_all(b"GET / HTTP/1.1\r\n\r\n")?;
    let reply = s.recv(4096)?;
    println!("{}", String::from_utf8_lossy(&reply));
    Ok(())
}
