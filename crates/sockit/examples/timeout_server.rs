//! The slides' timeout demo: accept() with a 0.5 s timeout and no client.
//!
//! ```sh
//! cargo run --example timeout_server          # prints "timeout : timed out", exits 1
//! ```
//! Python: `../shared/seed-programs/timeout_server.py`.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use sockit::repr::addr_repr;
use sockit::{ErrorKind, Family, Port, SockType, Socket};

fn main() {
    common::main(run)
}

fn run() -> common::Result<()> {
    let port = match Port::parse(std::env::args().nth(1).as_deref().unwrap_or("0"))? {
        Port::Number(n) => n,
        Port::Service(name) => return Err(format!("not a port number: {name}").into()),
    };
    let mut s = Socket::new(Family::Inet, SockType::Stream, None)?;
    s.set_blocking(true)?;
    s.set_timeout(Some(Duration::from_millis(500)))?;
    s.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    s.listen(1)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "socket : {}", addr_repr(&s.local_addr()?))?;
    out.flush()?;
    match s.accept() {
        Err(e) if e.kind() == ErrorKind::Timeout => {
            writeln!(out, "timeout : {}", e.python_text())?;
            out.flush()?;
            std::process::exit(1);
        }
        Err(e) => Err(e.into()),
        Ok((_, peer)) => {
            writeln!(out, "accepted {}", addr_repr(&peer))?;
            Ok(())
        }
    }
}
