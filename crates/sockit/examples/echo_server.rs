//! The slides' blocking echo server: one client, echo until it closes.
//!
//! ```sh
//! cargo run --example echo_server -- [HOST] [PORT]     # default 127.0.0.1 50007
//! printf 'hello\n' | nc -N 127.0.0.1 50007              # or: python3 echo_client.py 127.0.0.1 50007
//! ```
//! Python: `../shared/seed-programs/echo_server.py`.

mod common;

use std::io::Write;

use sockit::repr::addr_repr;
use sockit::resolve::{self, AI_PASSIVE};
use sockit::{Family, SockType, Socket};

fn main() {
    common::main(run)
}

fn run() -> common::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: echo_server [HOST] [PORT]";
    let (host, port) = common::host_port(&mut args, usage, Some(("127.0.0.1", "50007")))?;
    // bind((host, port)) resolves the host as Python does: one getaddrinfo call.
    let ai = resolve::getaddrinfo(
        Some(&host),
        Some(&port),
        None,
        Some(SockType::Stream),
        0,
        AI_PASSIVE,
    )?;
    let addr = ai.first().ok_or("no address")?.address;
    let s = Socket::new(Family::of(&addr), SockType::Stream, None)?;
    s.set_reuse_address(true)?;
    s.bind(addr)?;
    s.listen(1)?;
    let local = s.local_addr()?.as_ip().ok_or("not an IP socket")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {} {}", local.ip(), local.port())?;
    out.flush()?;
    let (conn, peer) = s.accept()?;
    writeln!(out, "Connected by {}", addr_repr(&peer))?;
    out.flush()?;
    loop {
        let data = conn.recv(1024)?;
        if data.is_empty() {
            break;
        }
        conn.send_all(&data)?;
    }
    Ok(())
}
