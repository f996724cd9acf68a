//! The slides' echo client: sends each stdin line, prints what comes back.
//!
//! ```sh
//! cargo run --example echo_client -- 127.0.0.1 50007 < lines.txt
//! ```
//! Try it against `sockit echo-server` or `python3 ../shared/seed-programs/echo_server.py`.
//! Python: `../shared/seed-programs/echo_client.py`.

use std::io::BufRead;
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
    let host: IpAddr = args.next().ok_or("usage: echo_client HOST PORT")?.parse()?;
    let port: u16 = args.next().ok_or("usage: echo_client HOST PORT")?.parse()?;
    let addr = SocketAddr::new(host, port);
    let mut s = Socket::new(Family::of(&addr), SockType::Stream, None)?;
    s.set_timeout(Some(Duration::from_secs(5)))?;
    s.connect(addr)?;
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
        println!("Received b'{}'", got.escape_ascii());
    }
    Ok(())
}
