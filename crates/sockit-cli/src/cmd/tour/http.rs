//! The tour's HTTP step: a tiny strict responder on loopback and a request to it.

use std::net::Shutdown;
use std::thread;

use sockit::repr::bytes_repr;
use sockit::socket::SockAddr;
use sockit::{SockType, Socket};

use super::{Out, STEP_DEADLINE, Step, bounded, fail, tcp_listener};

/// A tiny, strict HTTP/1.1 responder: answers `connections` requests, one per connection —
/// 400 to a request without a `Host` header (as a strict server does), 200 with a short
/// page otherwise. Returns the requests it saw.
fn http_responder(
    listener: Socket,
    connections: usize,
) -> thread::JoinHandle<sockit::Result<Vec<Vec<u8>>>> {
    thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..connections {
            let (mut conn, _) = listener.accept()?;
            conn.set_timeout(Some(STEP_DEADLINE))?;
            let mut request = Vec::new();
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                let chunk = conn.recv(4096)?;
                if chunk.is_empty() {
                    break;
                }
                request.extend_from_slice(&chunk);
            }
            let has_host = String::from_utf8_lossy(&request)
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("host:"));
            let (status, body) = if has_host {
                (
                    "200 OK",
                    "<html><body><h1>Hello from sockit tour</h1></body></html>\n",
                )
            } else {
                ("400 Bad Request", "HTTP/1.1 requires a Host header\n")
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            conn.send_all(reply.as_bytes())?;
            conn.shutdown(Shutdown::Write)?;
            seen.push(request);
        }
        Ok(seen)
    })
}

/// Sends `request` on a new connection to `addr` and reads the reply until the server closes.
fn http_exchange(out: &mut Out, addr: &SockAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let s = bounded(SockType::Stream)?;
    s.connect(addr).map_err(fail)?;
    s.send_all(request).map_err(fail)?;
    out.line(format!("sendall({})", bytes_repr(request)));
    let mut reply = Vec::new();
    loop {
        let chunk = s.recv(4096).map_err(fail)?;
        if chunk.is_empty() || reply.len() > 1 << 20 {
            break;
        }
        reply.extend_from_slice(&chunk);
    }
    for line in String::from_utf8_lossy(&reply).lines() {
        out.line(format!("| {line}"));
    }
    Ok(reply)
}

pub(super) fn http_get(out: &mut Out) -> Step {
    let (server, addr) = tcp_listener()?;
    out.say([
        &format!("web server on {addr}"),
        &format!("웹 서버: {addr}"),
    ]);
    let handle = http_responder(server, 2);
    // The slides' bare request: a strict HTTP/1.1 server refuses it, since it has no Host.
    let bare = b"GET / HTTP/1.1\r\n\r\n";
    let reply = http_exchange(out, &addr, bare)?;
    if !reply.starts_with(b"HTTP/1.1 400 ") {
        return Err("a request without Host should get 400".into());
    }
    out.say([
        "(400: HTTP/1.1 needs a Host header; send one)",
        "(400: HTTP/1.1에는 Host 헤더가 필요합니다. 넣어서 다시 보냅니다)",
    ]);
    let with_host = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let reply = http_exchange(out, &addr, with_host.as_bytes())?;
    let seen = handle
        .join()
        .map_err(|_| "the web server thread panicked".to_string())?
        .map_err(fail)?;
    if seen.first().map(Vec::as_slice) != Some(&bare[..]) {
        return Err("the server did not receive the exact request bytes".into());
    }
    if !reply.starts_with(b"HTTP/1.1 200 OK\r\n") {
        return Err("the reply is not an HTTP 200".into());
    }
    Ok(())
}
