//! The proxy client (`sockit::proxy::client`) against real proxies on 127.0.0.1:
//! microsocks (SOCKS5), danted (SOCKS4 and SOCKS5), tinyproxy (HTTP CONNECT with Basic
//! auth), and small scripted servers for SOCKS4a and for a proxy that never answers.
//!
//! Rules kept here: every daemon binds 127.0.0.1 from its own config in a temporary
//! directory and is stopped by PID, and third-party daemons are only ever given numeric
//! destinations (a name would make them query DNS): see `tests/cli/daemons.rs`. A missing daemon
//! prints one `skipped: needs PKG` line and passes, unless `SOCKIT_REQUIRE_PEERS=1`
//! (`require_peer!`, shared with the CLI tests).

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::time::{Duration, Instant};

use sockit::ErrorKind;
use sockit::client::ConnectOptions;
use sockit::proxy::client::{self, Handshake, Proxy, ProxyDns, ProxyType};
use sockit::proxy::{Credentials, TargetAddr, socks4};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// The one peer helper of the tests: `require_peer!` skips loudly on a missing daemon, or
// fails when SOCKIT_REQUIRE_PEERS=1.
#[allow(dead_code)]
#[path = "../../sockit-cli/tests/cli/peers.rs"]
mod peers;
use peers::require_peer;
// The third-party proxies, started on loopback from their own configs (shared with the
// CLI tests).
#[allow(dead_code)]
#[path = "../../sockit-cli/tests/cli/daemons.rs"]
mod daemons;
use daemons::{danted, microsocks, tinyproxy};

const LIMIT: Duration = Duration::from_secs(10);

/// An echo server on `ip`:0 that first sends `banner` (a server that speaks first), then
/// echoes each connection; it serves until the test ends.
async fn echo_server(ip: &str, banner: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = s.write_all(banner).await;
                let mut buf = [0u8; 4096];
                while let Ok(Ok(n)) = tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn proxy(kind: ProxyType, port: u16, auth: Option<&str>) -> Proxy {
    let mut p = Proxy::new(kind, "127.0.0.1", port);
    p.auth = auth.map(|a| Credentials::parse(a).unwrap());
    p.dns = ProxyDns::None; // numeric targets only: these daemons must never be given a name
    p
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        timeout: Some(LIMIT),
        ..Default::default()
    }
}

/// Reads exactly `n` bytes within the limit.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(LIMIT, s.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    buf
}

/// Through the proxy to `target`: the banner arrives whole (nothing of it was eaten by
/// the handshake), then a round trip.
async fn round_trip(p: &Proxy, target: SocketAddr, banner: &[u8]) -> client::Connected {
    let host = target.ip().to_string();
    let mut c = client::connect(p, &host, &target.port().into(), &opts())
        .await
        .unwrap_or_else(|e| panic!("{} via {:?}: {e}", target, p.kind));
    assert_eq!(read_n(&mut c.stream, banner.len()).await, banner);
    c.stream.write_all(b"ping through the proxy").await.unwrap();
    assert_eq!(read_n(&mut c.stream, 22).await, b"ping through the proxy");
    c
}

/// A closed port on 127.0.0.1: bound, not listening, held while the returned socket lives.
fn closed_port() -> (socket2::Socket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

#[tokio::test]
async fn microsocks_socks5_ipv4_ipv6_and_refusal() {
    require_peer!("microsocks");
    let d = microsocks(None);
    let p = proxy(ProxyType::Socks5, d.port, None);
    let target = echo_server("127.0.0.1", b"SSH-2.0-banner\r\n").await;
    let c = round_trip(&p, target, b"SSH-2.0-banner\r\n").await;
    assert_eq!(c.established.reply, "SOCKS5 reply 0: succeeded");
    assert!(
        matches!(c.established.bound, Some(TargetAddr::Ip(_))),
        "{c:?}"
    );
    // IPv6 destination (address type 4), when this machine has ::1.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = echo_server("::1", b"").await;
        round_trip(&p, v6, b"").await;
    }
    // A refusing destination: the proxy's reply is the error.
    let (_held, port) = closed_port();
    let e = client::connect(&p, "127.0.0.1", &port.into(), &opts())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Proxy, Some(5)), "{e}");
    assert_eq!(
        e.to_string(),
        "proxy: SOCKS5 reply 5: connection refused by destination"
    );
}

#[tokio::test]
async fn microsocks_socks5_credentials_right_and_wrong() {
    require_peer!("microsocks");
    let d = microsocks(Some(("user", "pass")));
    let target = echo_server("127.0.0.1", b"").await;
    round_trip(
        &proxy(ProxyType::Socks5, d.port, Some("user:pass")),
        target,
        b"",
    )
    .await;
    let host = "127.0.0.1";
    let wrong = proxy(ProxyType::Socks5, d.port, Some("user:nope"));
    let e = client::connect(&wrong, host, &target.port().into(), &opts())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Proxy, "{e}");
    assert!(
        e.to_string()
            .starts_with("proxy: SOCKS5 authentication failed (status "),
        "{e}"
    );
    let none = proxy(ProxyType::Socks5, d.port, None);
    let e = client::connect(&none, host, &target.port().into(), &opts())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Proxy, "{e}");
    assert!(e.to_string().contains("accepts none of the offered"), "{e}");
}

#[test]
fn microsocks_blocking_driver() {
    require_peer!("microsocks");
    let d = microsocks(None);
    let echo = StdListener::bind("127.0.0.1:0").unwrap();
    let target = echo.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = echo.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let mut s = StdStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let hs = Handshake::new(ProxyType::Socks5, TargetAddr::Ip(target), None).unwrap();
    let done = client::handshake_blocking(&mut s, hs).unwrap();
    assert_eq!(done.reply, "SOCKS5 reply 0: succeeded");
    use std::io::{Read, Write};
    s.write_all(b"abcd").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"abcd");
    server.join().unwrap();
}

#[tokio::test]
async fn danted_socks4_and_socks5() {
    require_peer!("danted");
    let d = danted();
    let target = echo_server("127.0.0.1", b"220 ready\r\n").await;
    let c = round_trip(
        &proxy(ProxyType::Socks5, d.port, None),
        target,
        b"220 ready\r\n",
    )
    .await;
    assert_eq!(c.established.kind, ProxyType::Socks5);
    // SOCKS4 sends the user id; danted ignores it with `socksmethod: none`.
    let c = round_trip(
        &proxy(ProxyType::Socks4, d.port, Some("nobody")),
        target,
        b"220 ready\r\n",
    )
    .await;
    assert_eq!(c.established.reply, "SOCKS4 reply 90: request granted");
    // A refusing destination: SOCKS4 has one refusal code, 91.
    let (_held, port) = closed_port();
    let e = client::connect(
        &proxy(ProxyType::Socks4, d.port, None),
        "127.0.0.1",
        &port.into(),
        &opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.to_string().as_str()),
        (
            ErrorKind::Proxy,
            "proxy: SOCKS4 reply 91: request rejected or failed"
        )
    );
    // SOCKS4 cannot carry IPv6: refused before anything is sent.
    let e = client::connect(
        &proxy(ProxyType::Socks4, d.port, None),
        "::1",
        &80.into(),
        &opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn tinyproxy_http_connect_with_basic_auth() {
    require_peer!("tinyproxy");
    let target = echo_server("127.0.0.1", b"* OK IMAP ready\r\n").await;
    let d = tinyproxy(&[target.port()]);
    let c = round_trip(
        &proxy(ProxyType::Http, d.port, Some("user:pass")),
        target,
        b"* OK IMAP ready\r\n",
    )
    .await;
    assert!(
        c.established.reply.ends_with(" 200 Connection established"),
        "{}",
        c.established.reply
    );
    let host = "127.0.0.1";
    // No credentials: 407; wrong ones: tinyproxy answers 401. Either way the error is
    // the proxy's own reply.
    for (auth, code, text) in [
        (
            None,
            407,
            "proxy: HTTP CONNECT 407 Proxy Authentication Required",
        ),
        (
            Some("user:wrong"),
            401,
            "proxy: HTTP CONNECT 401 Unauthorized",
        ),
    ] {
        let e = client::connect(
            &proxy(ProxyType::Http, d.port, auth),
            host,
            &target.port().into(),
            &opts(),
        )
        .await
        .unwrap_err();
        assert_eq!((e.kind(), e.code()), (ErrorKind::Proxy, Some(code)), "{e}");
        assert_eq!(e.to_string(), text);
    }
    // A port outside ConnectPort: tinyproxy's own refusal.
    let (_held, port) = closed_port();
    let e = client::connect(
        &proxy(ProxyType::Http, d.port, Some("user:pass")),
        host,
        &port.into(),
        &opts(),
    )
    .await
    .unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Proxy, Some(403)), "{e}");
}

/// A scripted SOCKS4a server: reads one request, hands it to the test, grants it and
/// echoes. SOCKS4a's client side has no real server on this machine.
async fn scripted_socks4a() -> (u16, tokio::sync::oneshot::Receiver<socks4::Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64];
        let req = loop {
            let n = tokio::time::timeout(LIMIT, s.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "client closed mid-request");
            buf.extend_from_slice(&chunk[..n]);
            if let Some((req, used)) = socks4::parse_request(&buf).unwrap() {
                assert_eq!(used, buf.len(), "bytes after the request");
                break req;
            }
        };
        let bound = "0.0.0.0:0".parse().unwrap();
        s.write_all(&socks4::reply(socks4::REP_GRANTED, bound))
            .await
            .unwrap();
        let _ = tx.send(req);
        let n = s.read(&mut chunk).await.unwrap();
        s.write_all(&chunk[..n]).await.unwrap();
    });
    (port, rx)
}

#[tokio::test]
async fn socks4a_sends_the_name_and_looks_nothing_up() {
    let (port, got) = scripted_socks4a().await;
    let mut p = Proxy::new(ProxyType::Socks4, "127.0.0.1", port);
    p.auth = Some(Credentials::parse("joe").unwrap());
    p.dns = ProxyDns::Remote;
    // `localhost` would resolve locally to 127.0.0.1 (from /etc/hosts): receiving the name
    // proves no lookup happened here.
    let mut c = client::connect(&p, "localhost", &4242.into(), &opts())
        .await
        .unwrap();
    let req = got.await.unwrap();
    assert!(req.is_4a());
    assert_eq!(req.target, TargetAddr::Domain("localhost".into(), 4242));
    assert_eq!(req.user_id, b"joe");
    c.stream.write_all(b"4a").await.unwrap();
    assert_eq!(read_n(&mut c.stream, 2).await, b"4a");
}

#[tokio::test]
async fn socks4_with_local_dns_sends_the_address() {
    let (port, got) = scripted_socks4a().await;
    let mut p = Proxy::new(ProxyType::Socks4, "127.0.0.1", port);
    p.dns = ProxyDns::Local;
    client::connect(&p, "localhost", &4242.into(), &opts())
        .await
        .unwrap();
    let req = got.await.unwrap();
    assert!(!req.is_4a());
    assert_eq!(req.target.to_string(), "127.0.0.1:4242");
}

#[tokio::test]
async fn a_silent_proxy_times_out_and_a_closing_one_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts two connections: keeps the first open and silent, closes the second after
    // reading the greeting.
    tokio::spawn(async move {
        let (silent, _) = listener.accept().await.unwrap();
        let (mut closing, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 3];
        let _ = closing.read_exact(&mut buf).await;
        drop(closing);
        tokio::time::sleep(LIMIT).await;
        drop(silent);
    });
    let mut p = Proxy::new(ProxyType::Socks5, "127.0.0.1", port);
    p.handshake_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = client::connect(&p, "127.0.0.1", &9.into(), &opts())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.to_string(), "proxy handshake: timed out");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let e = client::connect(&p, "127.0.0.1", &9.into(), &opts())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "proxy: the proxy closed the connection during the SOCKS5 handshake"
    );
    // No proxy at all: the connect error names the proxy.
    let (_held, closed) = closed_port();
    let e = client::connect(
        &Proxy::new(ProxyType::Http, "127.0.0.1", closed),
        "127.0.0.1",
        &9.into(),
        &opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "proxy connect: [Errno 111] Connection refused"
    );
}
