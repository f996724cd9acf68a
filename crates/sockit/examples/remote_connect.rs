//! The slides' "connect to a remote server and send a request", aimed at HOST PORT.
//!
//! ```sh
//! cargo run --example remote_connect -- 127.0.0.1 8000 'GET / HTTP/1.0\r\n\r\n'
//! ```
//! Try it against `python3 -m http.server --bind 127.0.0.1 8000` or `nc -l 127.0.0.1 8000`.
//! The host may be a name: it is resolved with one getaddrinfo call and each address is
//! tried in turn (Python's create_connection).

use std::time::Duration;

use sockit::resolve;
use sockit::{Family, Port, SockType, Socket};

fn main() {
    if let Err(e) = run() {
        eprintln!("{}: {e}", env!("CARGO_CRATE_NAME"));
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: remote_connect HOST PORT [REQUEST]";
    let host = args.next().ok_or(usage)?;
    let port = Port::parse(&args.next().ok_or(usage)?)?;
    let request = args
        .next()
        .unwrap_or_else(|| "GET / HTTP/1.0\\r\\n\\r\\n".into())
        .replace("\\r", "\r")
        .replace("\\n", "\n");
    let addrs = resolve::getaddrinfo(Some(&host), Some(&port), None, Some(SockType::Stream), 0, 0)?;
    let mut last = None;
    for ai in addrs {
        let mut s = Socket::new(Family::of(&ai.address), SockType::Stream, None)?;
        s.set_timeout(Some(Duration::from_secs(5)))?;
        match s.connect(ai.address) {
            Ok(()) => {
                println!("connected to {}", ai.address);
                s.send_all(request.as_bytes())?;
                let reply = s.recv(4096)?;
                println!("{}", String::from_utf8_lossy(&reply));
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| "no address".into(), |e| e.into()))
}
