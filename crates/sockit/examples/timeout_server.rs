//! The slides' timeout demo: accept() with a 0.5 s timeout and no client.
//!
//! ```sh
//! cargo run --example timeout_server          # prints "timeout : timed out", exits 1
//! ```
//! Python: `../shared/seed-programs/timeout_server.py`.

use std::net::SocketAddr;
use std::time::Duration;

use sockit::{ErrorKind, Family, SockType, Socket};

fn main() {
    if let Err(e) = run() {
        eprintln!("{}: {e}", env!("CARGO_CRATE_NAME"));
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).as_deref().unwrap_or("0").parse()?;
    let mut s = Socket::new(Family::Inet, SockType::Stream, None)?;
    s.set_blocking(true)?;
    s.set_timeout(Some(Duration::from_millis(500)))?;
    s.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    s.listen(1)?;
    let local = s.local_addr()?.as_ip().ok_or("not an IP socket")?;
    println!("socket : ('{}', {})", local.ip(), local.port());
    match s.accept() {
        Err(e) if e.kind() == ErrorKind::Timeout => {
            println!("timeout : {}", e.python_text());
            std::process::exit(1);
        }
        Err(e) => Err(e.into()),
        Ok((_, peer)) => {
            println!("accepted {peer}");
            Ok(())
        }
    }
}
