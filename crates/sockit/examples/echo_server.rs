//! The slides' blocking echo server: one client, echo until it closes.
//!
//! ```sh
//! cargo run --example echo_server -- [HOST] [PORT]     # default 127.0.0.1 50007
//! printf 'hello\n' | nc -N 127.0.0.1 50007              # or: python3 echo_client.py 127.0.0.1 50007
//! ```
//! Python: `../shared/seed-programs/echo_server.py`.

use std::net::{IpAddr, SocketAddr};

use sockit::{Family, SockType, Socket};

fn main() {
    if let Err(e) = run() {
        eprintln!("{}: {e}", env!("CARGO_CRATE_NAME"));
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host: IpAddr = args.next().as_deref().unwrap_or("127.0.0.1").parse()?;
    let port: u16 = args.next().as_deref().unwrap_or("50007").parse()?;
    let addr = SocketAddr::new(host, port);
    let s = Socket::new(Family::of(&addr), SockType::Stream, None)?;
    s.set_reuse_address(true)?;
    s.bind(addr)?;
    s.listen(1)?;
    let local = s.local_addr()?.as_ip().ok_or("not an IP socket")?;
    println!("listening {} {}", local.ip(), local.port());
    let (conn, peer) = s.accept()?;
    println!("Connected by {peer}");
    loop {
        let data = conn.recv(1024)?;
        if data.is_empty() {
            break;
        }
        conn.send_all(&data)?;
    }
    Ok(())
}
