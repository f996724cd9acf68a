//! Tunnels (issue 14): retries with back-off, PROXY protocol both ways, TLS in forward,
//! ephemeral certificates.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{self, sockit};

const T: Duration = Duration::from_secs(10);

/// The JSON events a server printed on stdout until one named `until` (inclusive).
fn events_until(srv: &common::Server, until: &str) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    loop {
        let line = srv
            .next_line(T)
            .unwrap_or_else(|| panic!("no {until} event; seen {seen:?}"));
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let done = v["event"] == until;
        seen.push(v);
        if done {
            return seen;
        }
    }
}

fn named<'a>(events: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

#[test]
fn forward_retries_a_target_that_listens_two_seconds_late() {
    let _serial = common::serial();
    // Bound first (connects are refused, no other process can take the port), listening
    // 2 s later.
    let held = common::closed_port();
    let port = held.port;
    let target = format!("127.0.0.1:{port}");
    let fwd = common::sockit_server(&[
        "forward",
        "--json",
        "--retry",
        "5",
        "--retry-delay",
        "0.5",
        "127.0.0.1:0",
        &target,
    ]);
    let t0 = Instant::now();
    let late = std::thread::spawn(move || {
        // The sleep stands for a slow target.
        std::thread::sleep(Duration::from_secs(2));
        let l = held.listen();
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(T)).unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).expect("the client's bytes");
        s.write_all(&b).unwrap();
    });
    let mut c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    c.read_exact(&mut back)
        .expect("relayed once the target listens");
    assert_eq!(&back, b"hello");
    let took = t0.elapsed();
    late.join().unwrap();
    let events = events_until(&fwd, "connected");
    let retries = named(&events, "retry");
    // Attempts at 0, 0.5, 1.5 s fail (before 2 s), the one at 3.5 s connects: within the
    // bound of 6 attempts, never a busy loop.
    assert!(
        (2..=5).contains(&retries.len()),
        "{} retries: {retries:?}",
        retries.len()
    );
    for (i, r) in retries.iter().enumerate() {
        assert_eq!(r["attempt"], i as u64 + 1, "{r}");
        assert_eq!(r["attempts"], 6, "{r}");
        assert_eq!(r["delay_us"], 500_000u64 << i, "doubling: {r}");
        assert_eq!(r["error"]["code"], 111, "{r}");
        // Regression: one shape for forward and connect (was `target`, `delay_ms`).
        same_retry_shape(r, port);
    }
    assert!(
        took > Duration::from_secs(2),
        "reached before it listened: {took:?}"
    );
    assert!(took < Duration::from_millis(3 * 3500), "{took:?}");
}

#[test]
fn forward_gives_up_after_its_retries_and_says_each_attempt_with_v() {
    let _serial = common::serial();
    let closed = common::closed_port();
    let target = format!("127.0.0.1:{}", closed.port);
    let mut cmd = sockit(&[
        "forward",
        "-v",
        "--retry",
        "2",
        "--retry-delay",
        "0.2",
        "127.0.0.1:0",
        &target,
    ]);
    let mut fwd = common::spawn_listening(cmd.stderr(std::process::Stdio::piped()));
    let t0 = Instant::now();
    let mut c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    common::assert_closed_at_once(&mut c, "client closed once the retries are used up");
    let took = t0.elapsed();
    // Waits of 0.2 and 0.4 s.
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_millis(3 * 600 + 2000), "{took:?}");
    fwd.terminate(T);
    let err = common::server_stderr(&mut fwd);
    for want in [
        "attempt 1 of 3 failed: connect: [Errno 111] Connection refused; retrying in 0.200 s",
        "attempt 2 of 3 failed: connect: [Errno 111] Connection refused; retrying in 0.400 s",
        "failed, client closed: connect: [Errno 111] Connection refused",
    ] {
        assert!(err.contains(want), "no {want:?} in: {err}");
    }
    assert!(!err.contains("attempt 3"), "{err}");
}

#[test]
fn forward_stops_retrying_for_a_client_that_left() {
    // Regression: a client gone (FIN or RST) during the back-off kept its --max-conns slot.
    let _serial = common::serial();
    let closed = common::closed_port();
    let target = format!("127.0.0.1:{}", closed.port);
    let fwd = common::sockit_server(&[
        "forward",
        "--json",
        "--max-conns",
        "1",
        "--retry",
        "20",
        "--retry-delay",
        "0.3",
        "127.0.0.1:0",
        &target,
    ]);
    for (id, reset) in [(1u64, false), (2, true)] {
        let c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
        let events = events_until(&fwd, "retry");
        assert_eq!(named(&events, "retry")[0]["id"], id, "{events:?}");
        let t0 = Instant::now();
        if reset {
            socket2::SockRef::from(&c)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        drop(c);
        let events = events_until(&fwd, "closed");
        let closed = events.last().unwrap();
        assert_eq!(closed["id"], id, "{events:?}");
        let want = if reset { "reset" } else { "eof" };
        assert_eq!(closed["reason"], want, "{closed}");
        assert!(
            closed["error"]["message"]
                .as_str()
                .unwrap()
                .contains("retries stopped"),
            "{closed}"
        );
        assert!(named(&events, "connected").is_empty(), "{events:?}");
        // At most the wait already begun: well before the 20 retries' back-off.
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }
}

/// A `retry` event names its target as `target_host`/`target_port`, its wait in `_us`.
fn same_retry_shape(r: &serde_json::Value, port: u16) {
    assert_eq!(r["target_host"], "127.0.0.1", "{r}");
    assert_eq!(r["target_port"], port, "{r}");
    assert!(
        r.get("target").is_none() && r.get("delay_ms").is_none(),
        "{r}"
    );
}

/// Polls `f` every 10 ms until it gives something, for at most `limit`.
fn within<R>(limit: Duration, mut f: impl FnMut() -> Option<R>) -> Option<R> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(r) = f() {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn connect_retries_a_target_that_listens_two_seconds_late() {
    let _serial = common::serial();
    // Bound first (connects are refused, no other process can take the port), listening
    // 2 s later.
    let held = common::closed_port();
    let port = held.port;
    let port_text = port.to_string();
    let t0 = Instant::now();
    let late = std::thread::spawn(move || {
        // The sleep stands for a slow target.
        std::thread::sleep(Duration::from_secs(2));
        let l = held.listen();
        l.set_nonblocking(true).unwrap();
        let mut s = within(T, || l.accept().ok()).expect("the client came").0;
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("the client's bytes");
        got
    });
    let mut cmd = sockit(&[
        "connect",
        "--json",
        "--retry",
        "5",
        "--retry-delay",
        "0.5",
        "127.0.0.1",
        &port_text,
    ]);
    let out = common::run_with_input(&mut cmd, b"hello", Duration::from_secs(30));
    let took = t0.elapsed();
    assert_eq!(late.join().unwrap(), b"hello");
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let retries = named(&events, "retry");
    // Attempts at 0, 0.5, 1.5 s fail (before 2 s), the one at 3.5 s connects: within the
    // bound of 6 attempts, never a busy loop.
    assert!(
        (2..=5).contains(&retries.len()),
        "{} retries: {err}",
        retries.len()
    );
    for (i, r) in retries.iter().enumerate() {
        assert_eq!(r["attempt"], i as u64 + 1, "{r}");
        assert_eq!(r["attempts"], 6, "{r}");
        assert_eq!(r["delay_us"], 500_000u64 << i, "doubling: {r}");
        assert_eq!(r["error"]["code"], 111, "{r}");
        // Regression: one shape for forward and connect (was `target`, `delay_ms`).
        same_retry_shape(r, port);
    }
    assert_eq!(named(&events, "connected").len(), 1, "{err}");
    assert!(took > Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_millis(3 * 3500), "{took:?}");
}

#[test]
fn connect_gives_up_after_its_retries_with_the_last_error() {
    let _serial = common::serial();
    let closed = common::closed_port();
    let port = closed.port.to_string();
    let t0 = Instant::now();
    let out = common::run(
        &mut sockit(&[
            "connect",
            "-v",
            "--retry",
            "2",
            "--retry-delay",
            "0.2",
            "127.0.0.1",
            &port,
        ]),
        T,
    );
    let took = t0.elapsed();
    // Waits of 0.2 and 0.4 s, then the third attempt's error.
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_millis(3 * 600 + 2000), "{took:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "attempt 1 of 3 failed: connect: [Errno 111] Connection refused; retrying in 0.200 s",
        "attempt 2 of 3 failed: connect: [Errno 111] Connection refused; retrying in 0.400 s",
        "Connection refused",
    ] {
        assert!(err.contains(want), "no {want:?} in: {err}");
    }
    assert!(!err.contains("attempt 3"), "{err}");
    // A Unix socket that appears late is reached the same way; a bad address is never
    // retried.
    let dir = common::temp_dir("connect-retry");
    let path = dir.join("late.sock");
    let p = path.clone();
    let late = std::thread::spawn(move || {
        // The sleep stands for a slow server.
        std::thread::sleep(Duration::from_millis(500));
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        l.set_nonblocking(true).unwrap();
        let mut s = within(T, || l.accept().ok()).expect("the client came").0;
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let out = common::run_with_input(
        &mut sockit(&[
            "connect",
            "--retry",
            "4",
            "--retry-delay",
            "0.2",
            "--unix",
            path.to_str().unwrap(),
        ]),
        b"unix",
        T,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(late.join().unwrap(), b"unix");
    let t0 = Instant::now();
    let out = common::run(
        &mut sockit(&["connect", "--retry", "5", "127.0.0.1", "99999"]),
        T,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "an invalid port was retried"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retry_flags_are_checked() {
    for (args, want) in [
        (&["--retry", "1001"][..], "1001"),
        (&["--retry", "-1"][..], "-1"),
        (&["--retry", "2", "--retry-delay", "0"][..], "at least 0.01"),
        (&["--retry", "2", "--retry-delay", "31"][..], "at most 30"),
        (&["--retry-delay", "1"][..], "--retry"),
    ] {
        for base in [
            &["forward", "127.0.0.1:0", "127.0.0.1:9"][..],
            &["connect", "127.0.0.1", "9"],
        ] {
            let mut all = base.to_vec();
            all.extend(args);
            let out = common::run(&mut sockit(&all), T);
            common::assert_fails_with(&out, 2, want);
        }
    }
}

/// A running haproxy (killed by PID when dropped), and its frontend's address.
struct Haproxy {
    peer: common::Peer,
    addr: std::net::SocketAddr,
    dir: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.peer.child.kill();
        let _ = self.peer.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts haproxy in TCP mode: a frontend on 127.0.0.1 (`bind_extra`: `accept-proxy` or
/// nothing) relaying to `server` (numeric) with `server_extra` (`send-proxy`,
/// `send-proxy-v2` …). haproxy 2.6 cannot bind port 0: a free port is picked, and another
/// one tried when haproxy exits (EADDRINUSE).
fn haproxy(bind_extra: &str, server: std::net::SocketAddr, server_extra: &str) -> Haproxy {
    let dir = common::temp_dir("haproxy");
    for _ in 0..10 {
        let port = common::free_port();
        let cfg = dir.join("h.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  maxconn 64\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
                 timeout client 30s\n  timeout server 30s\nfrontend f\n  \
                 bind 127.0.0.1:{port} {bind_extra}\n  default_backend b\nbackend b\n  \
                 server s1 {server} {server_extra}\n"
            ),
        )
        .unwrap();
        let mut cmd = std::process::Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&cfg);
        let mut peer = common::Peer::spawn(&mut cmd, None);
        let deadline = Instant::now() + T;
        loop {
            if common::is_listening(port, false) {
                return Haproxy {
                    peer,
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    dir,
                };
            }
            if !peer.running() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let err = String::from_utf8_lossy(&peer.stderr_so_far()).to_string();
        assert!(
            err.contains("bind") || err.contains("in use"),
            "haproxy did not start: {err}"
        );
    }
    panic!("haproxy found no free port in 10 tries");
}

/// The next event named `name` (skipping others).
fn next_named(srv: &common::Server, name: &str) -> serde_json::Value {
    events_until(srv, name).pop().unwrap()
}

/// Sends `msg` from a client bound to `src` to `to` and expects it echoed.
fn echo_from(src: &str, to: std::net::SocketAddr, msg: &[u8]) -> TcpStream {
    let mut c = common::tcp_from(src, to, T);
    c.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back).expect("echoed");
    assert_eq!(back, msg);
    c
}

#[test]
fn haproxy_send_proxy_names_the_original_client_to_every_server() {
    common::require_peer!("haproxy");
    for version in ["send-proxy", "send-proxy-v2"] {
        let echo = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
        let servers = [
            vec!["echo-server", "--json", "127.0.0.1:0"],
            vec!["echo-server", "--json", "--engine", "tasks", "127.0.0.1:0"],
            vec!["forward", "--json", "127.0.0.1:0"],
            vec!["proxy", "--json", "127.0.0.1:0"],
        ];
        for base in servers {
            let mut args = base.clone();
            args.extend(["--accept-proxy-from", "127.0.0.1/32", "--deny", "127.0.0.3"]);
            let target = echo.addr().to_string();
            if base[0] == "forward" {
                args.push(&target);
            }
            let srv = common::sockit_server(&args);
            let hap = haproxy("", srv.addr(), version);
            let c = if base[0] == "proxy" {
                // A SOCKS5 greeting (no authentication) and its answer.
                let mut c = common::tcp_from("127.0.0.2", hap.addr, T);
                c.write_all(&[5, 1, 0]).unwrap();
                let mut answer = [0u8; 2];
                c.read_exact(&mut answer)
                    .expect("the proxy's method answer");
                assert_eq!(answer, [5, 0]);
                c
            } else {
                echo_from("127.0.0.2", hap.addr, b"through haproxy")
            };
            let client = c.local_addr().unwrap();
            let acc = next_named(&srv, "accepted");
            assert_eq!(acc["peer_host"], "127.0.0.2", "{version} {base:?}: {acc}");
            assert_eq!(acc["peer_port"], client.port(), "{version} {base:?}: {acc}");
            assert_eq!(acc["via_host"], "127.0.0.1", "{acc}");
            // --deny applies to the original client, not to haproxy's address.
            let mut d = common::tcp_from("127.0.0.3", hap.addr, T);
            let _ = d.write_all(b"x");
            common::assert_closed_at_once(&mut d, "a denied original client");
            let refused = next_named(&srv, "refused");
            assert_eq!(refused["peer_host"], "127.0.0.3", "{refused}");
            assert_eq!(refused["reason"], "denied", "{refused}");
            drop(c);
            let closed = next_named(&srv, "closed");
            assert_eq!(closed["peer_host"], "127.0.0.2", "{closed}");
        }
    }
}

/// The next JSON event named `name` among a listener's stderr lines (skipping others).
fn next_err_named(rx: &std::sync::mpsc::Receiver<String>, name: &str) -> serde_json::Value {
    let line = common::wait_line(rx, &format!(r#""event":"{name}""#), T)
        .unwrap_or_else(|| panic!("no {name} event on stderr"));
    serde_json::from_str(&line).expect("a JSON line")
}

#[test]
fn haproxy_send_proxy_v2_in_front_of_listen_names_the_client() {
    common::require_peer!("haproxy");
    // listen one peer, -k, and --exec: each takes the core's accept path.
    for (version, mode) in [
        ("send-proxy-v2", "one"),
        ("send-proxy-v2", "-k"),
        ("send-proxy", "-k"),
        ("send-proxy-v2", "exec"),
    ] {
        let mut args = vec!["--json", "--accept-proxy-from", "127.0.0.1/32"];
        if mode == "-k" {
            args.extend(["-k", "--deny", "127.0.0.3"]);
        }
        args.extend(["127.0.0.1", "0"]);
        if mode == "exec" {
            // --exec takes the rest of the line.
            args.extend(["--exec", "cat"]);
        }
        let mut srv = common::sockit_listen(&args);
        let err = common::err_lines(&mut srv);
        let hap = haproxy("", srv.addr(), version);
        let mut c = common::tcp_from("127.0.0.2", hap.addr, T);
        c.write_all(b"through haproxy\n").unwrap();
        let client = c.local_addr().unwrap();
        let acc = next_err_named(&err, "accepted");
        assert_eq!(acc["peer_host"], "127.0.0.2", "{version} {mode}: {acc}");
        assert_eq!(acc["peer_port"], client.port(), "{version} {mode}: {acc}");
        assert_eq!(acc["via_host"], "127.0.0.1", "{acc}");
        if mode == "exec" {
            // cat echoes: the bytes after the header reach the program, and only they.
            let mut back = vec![0u8; 16];
            c.read_exact(&mut back).expect("cat's echo");
            assert_eq!(back, b"through haproxy\n");
        } else {
            let line = srv.next_line(T).expect("the client's line on stdout");
            assert_eq!(line, "through haproxy", "{version} {mode}");
        }
        if mode == "-k" {
            // --deny applies to the original client, not to haproxy's address.
            let mut d = common::tcp_from("127.0.0.3", hap.addr, T);
            let _ = d.write_all(b"x");
            common::assert_closed_at_once(&mut d, "a denied original client");
            let refused = next_err_named(&err, "refused");
            assert_eq!(refused["peer_host"], "127.0.0.3", "{refused}");
            assert_eq!(refused["reason"], "denied", "{refused}");
        }
        drop(c);
        if mode == "one" {
            // One peer goes on sending its input after the peer's end (nc): end it.
            drop(srv.child.stdin.take());
        }
        let closed = next_err_named(&err, "closed");
        assert_eq!(
            closed["peer_host"], "127.0.0.2",
            "{version} {mode}: {closed}"
        );
    }
}

#[test]
fn listen_closes_unlisted_sources_and_missing_headers() {
    let mut srv = common::sockit_listen(&[
        "--json",
        "-k",
        "--accept-proxy-from",
        "127.0.0.1/32",
        "127.0.0.1",
        "0",
    ]);
    let err = common::err_lines(&mut srv);
    let mut c = common::tcp_from("127.0.0.2", srv.addr(), T);
    let _ = c.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\nhello");
    common::assert_closed_at_once(&mut c, "unlisted source");
    let r = next_err_named(&err, "refused");
    assert_eq!(r["reason"], "unlisted_source", "{r}");
    let mut c = common::tcp_from("127.0.0.1", srv.addr(), T);
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    common::assert_closed_at_once(&mut c, "no header");
    let r = next_err_named(&err, "refused");
    assert_eq!(r["reason"], "proxy_header", "{r}");
    assert_eq!(r["error"]["kind"], "protocol", "{r}");
    // A valid v1 header from the listed source: the client it names is the peer, and
    // only the bytes after the header reach stdout.
    let mut c = common::tcp_from("127.0.0.1", srv.addr(), T);
    c.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 4321 80\r\nafter the header\n")
        .unwrap();
    let acc = next_err_named(&err, "accepted");
    assert_eq!(acc["peer_host"], "192.0.2.7", "{acc}");
    assert_eq!(acc["peer_port"], 4321, "{acc}");
    assert_eq!(srv.next_line(T).as_deref(), Some("after the header"));
}

#[test]
fn forward_send_proxy_is_understood_by_haproxy_accept_proxy() {
    common::require_peer!("haproxy");
    // client 127.0.0.2 -> sockit forward --send-proxy vN -> haproxy accept-proxy
    //   -> (send-proxy v1) -> sockit echo-server --accept-proxy-from: the echo server
    //   names the client, which only haproxy's reading of our header can tell it.
    for version in ["v1", "v2"] {
        let echo = common::sockit_server(&[
            "echo-server",
            "--json",
            "--accept-proxy-from",
            "127.0.0.1",
            "127.0.0.1:0",
        ]);
        let hap = haproxy("accept-proxy", echo.addr(), "send-proxy");
        let fwd = common::sockit_server(&[
            "forward",
            "--send-proxy",
            version,
            "127.0.0.1:0",
            &hap.addr.to_string(),
        ]);
        let c = echo_from("127.0.0.2", fwd.addr(), b"proxied twice");
        let acc = next_named(&echo, "accepted");
        assert_eq!(acc["peer_host"], "127.0.0.2", "{version}: {acc}");
        assert_eq!(acc["peer_port"], c.local_addr().unwrap().port(), "{acc}");
        // A 1 MiB round trip through both headers stays byte-identical.
        let data = common::pattern(1 << 20, 7);
        let mut c = c;
        let writer = {
            let mut w = c.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || {
                w.write_all(&data).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        common::assert_bytes_eq(&back, &data, "through forward and haproxy");
    }
}

#[test]
fn a_bad_late_or_unlisted_proxy_header_closes_the_connection() {
    let _serial = common::serial();
    let servers = [
        vec!["echo-server", "--json", "127.0.0.1:0"],
        vec!["echo-server", "--json", "--engine", "tasks", "127.0.0.1:0"],
        vec!["forward", "--json", "127.0.0.1:0", "127.0.0.1:9"],
    ];
    // The servers side by side: each case waits 5 s for a header that never completes.
    std::thread::scope(|scope| {
        for base in &servers {
            scope.spawn(|| bad_headers_close(base));
        }
    });
}

fn bad_headers_close(base: &[&str]) {
    let mut args = base.to_vec();
    args.extend(["--accept-proxy-from", "127.0.0.1/32"]);
    let srv = common::sockit_server(&args);
    // Unlisted source: anyone could claim any address, so it is refused.
    let mut c = common::tcp_from("127.0.0.2", srv.addr(), T);
    let _ = c.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\nhello");
    common::assert_closed_at_once(&mut c, "unlisted source");
    let r = next_named(&srv, "refused");
    assert_eq!(r["reason"], "unlisted_source", "{base:?}: {r}");
    assert_eq!(r["peer_host"], "127.0.0.2", "{r}");
    // Listed source, no header.
    let mut c = common::tcp_from("127.0.0.1", srv.addr(), T);
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    common::assert_closed_at_once(&mut c, "no header");
    let r = next_named(&srv, "refused");
    assert_eq!(r["reason"], "proxy_header", "{r}");
    assert_eq!(r["error"]["kind"], "protocol", "{r}");
    // A header longer than v1 allows (107 bytes), never ending.
    let mut c = common::tcp_from("127.0.0.1", srv.addr(), T);
    let _ = c.write_all(&[b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat());
    common::assert_closed_at_once(&mut c, "overlong header");
    assert_eq!(next_named(&srv, "refused")["error"]["kind"], "protocol");
    // A header that never completes: closed after 5 s.
    let t0 = Instant::now();
    let mut c = common::tcp_from("127.0.0.1", srv.addr(), Duration::from_secs(30));
    c.write_all(b"PROXY TCP4 ").unwrap();
    common::assert_closed_at_once(&mut c, "late header");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "{took:?}"
    );
    let r = next_named(&srv, "refused");
    assert_eq!(r["error"]["kind"], "timeout", "{r}");
}

#[test]
fn proxy_flags_need_stream_sockets() {
    for (args, want) in [
        (
            &[
                "echo-server",
                "-u",
                "127.0.0.1:0",
                "--accept-proxy-from",
                "127.0.0.1",
            ][..],
            "TCP listeners only",
        ),
        (
            &[
                "echo-server",
                "--tcp",
                "--udp",
                "127.0.0.1:0",
                "--accept-proxy-from",
                "::1",
            ],
            "TCP listeners only",
        ),
        (
            &[
                "forward",
                "udp:127.0.0.1:0",
                "tcp:127.0.0.1:9",
                "--accept-proxy-from",
                "::1",
            ],
            "TCP listeners only",
        ),
        (
            &[
                "forward",
                "127.0.0.1:0",
                "udp:127.0.0.1:9",
                "--send-proxy",
                "v2",
            ],
            "stream target",
        ),
        (
            &[
                "forward",
                "127.0.0.1:0",
                "127.0.0.1:9",
                "--send-proxy",
                "v3",
            ],
            "v3",
        ),
        (
            &[
                "echo-server",
                "127.0.0.1:0",
                "--accept-proxy-from",
                "10.0.0.0/33",
            ],
            "accept-proxy-from",
        ),
        (
            &[
                "listen",
                "-u",
                "127.0.0.1",
                "0",
                "--accept-proxy-from",
                "127.0.0.1",
            ],
            "TCP listeners only",
        ),
        (
            &[
                "listen",
                "--unix",
                "/tmp/sockit-never-bound.sock",
                "--accept-proxy-from",
                "127.0.0.1",
            ],
            "TCP listeners only",
        ),
    ] {
        let out = common::run(&mut sockit(args), T);
        common::assert_fails_with(&out, 2, want);
    }
}

const TEN_MIB: usize = 10 << 20;

/// Spawns `cmd` with stdout and stderr collected and stdin a pipe fed `input` by a
/// thread that then keeps it open (an EOF would end an openssl peer's session) until
/// the returned sender is dropped or sent to.
fn spawn_fed(
    cmd: &mut std::process::Command,
    input: Vec<u8>,
) -> (common::Peer, std::sync::mpsc::Sender<()>) {
    cmd.stdin(std::process::Stdio::piped());
    let mut peer = common::Peer::spawn(cmd, None);
    let mut sin = peer.child.stdin.take().expect("stdin");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = sin.write_all(&input);
        let _ = rx.recv_timeout(Duration::from_secs(120));
    });
    (peer, tx)
}

/// Waits until `peer`'s stdout holds `n` bytes (at most `limit`).
fn wait_out(peer: &common::Peer, n: usize, limit: Duration, what: &str) -> Vec<u8> {
    let got = peer.wait_stdout(n, limit);
    assert!(
        got.len() >= n,
        "{what}: {} of {n} bytes; stderr: {}",
        got.len(),
        String::from_utf8_lossy(&peer.stderr_so_far())
    );
    got
}

#[test]
fn forward_terminates_tls_for_openssl_s_client_in_front_of_a_plain_echo_server() {
    common::require_peer!("openssl");
    let pki = common::Pki::new("fwd-tls", &["localhost", "127.0.0.1"], false);
    let echo = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    let fwd = common::sockit_server(&[
        "forward",
        "--tls",
        "--cert",
        &pki.path("cert.pem"),
        "--key",
        &pki.path("key.pem"),
        "127.0.0.1:0",
        &echo.addr().to_string(),
    ]);
    let data = common::pattern(TEN_MIB, 14);
    // Verification on: the test's CA, the address in the certificate.
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &fwd.addr().to_string()])
        .args(["-CAfile", &pki.path("ca.pem"), "-verify_return_error"])
        .args(["-verify_ip", "127.0.0.1", "-quiet", "-nocommands"]);
    let (client, _keep) = spawn_fed(&mut cmd, data.clone());
    let got = wait_out(&client, TEN_MIB, Duration::from_secs(60), "s_client");
    common::assert_bytes_eq(&got, &data, "10 MiB through forward --tls and back");
    // Without the CA the client refuses the certificate: verification is really on.
    let out = common::run_with_input(
        std::process::Command::new("openssl")
            .args(["s_client", "-connect", &fwd.addr().to_string()])
            .args(["-verify_return_error", "-quiet"]),
        b"",
        T,
    );
    assert_ne!(out.status.code(), Some(0), "{out:?}");
}

/// Starts `openssl s_server` with the PKI's certificate on a free port (another one
/// tried on EADDRINUSE), fed `input`; its stdout is what it received.
fn s_server(pki: &common::Pki, input: Vec<u8>) -> (common::Peer, std::sync::mpsc::Sender<()>, u16) {
    for _ in 0..10 {
        let port = common::free_port();
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", &pki.path("cert.pem"), "-key", &pki.path("key.pem")])
            .args(["-naccept", "1", "-quiet"]);
        let (mut peer, keep) = spawn_fed(&mut cmd, input.clone());
        let deadline = Instant::now() + T;
        while peer.running() && Instant::now() < deadline {
            if common::is_listening(port, false) {
                return (peer, keep, port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("openssl s_server did not start in 10 tries");
}

#[test]
fn forward_originates_tls_toward_openssl_s_server_with_verification() {
    common::require_peer!("openssl");
    let pki = common::Pki::new("fwd-tls-target", &["localhost", "127.0.0.1"], false);
    for sni in [None, Some("localhost")] {
        let to_client = common::pattern(TEN_MIB, 21);
        let to_server = common::pattern(TEN_MIB, 22);
        let (server, keep, port) = s_server(&pki, to_client.clone());
        let mut args = vec!["forward", "--json", "--tls-target", "--cacert"];
        let ca = pki.path("ca.pem");
        args.push(&ca);
        if let Some(name) = sni {
            args.extend(["--sni", name]);
        }
        let target = format!("127.0.0.1:{port}");
        args.extend(["127.0.0.1:0", &target]);
        let fwd = common::sockit_server(&args);
        let mut c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let writer = {
            let mut w = c.try_clone().unwrap();
            let data = to_server.clone();
            std::thread::spawn(move || w.write_all(&data).unwrap())
        };
        let mut got = vec![0u8; TEN_MIB];
        c.read_exact(&mut got).expect("10 MiB from s_server");
        common::assert_bytes_eq(&got, &to_client, "s_server to the client");
        writer.join().unwrap();
        let seen = wait_out(&server, TEN_MIB, Duration::from_secs(60), "s_server");
        common::assert_bytes_eq(&seen, &to_server, "the client to s_server");
        assert_eq!(next_named(&fwd, "connected")["target_port"], port);
        drop(keep);
    }
    // A target whose certificate the CA did not sign: the client is closed, the error is
    // the certificate's.
    let other = common::Pki::new("fwd-tls-other", &["127.0.0.1"], false);
    let (_server, _keep, port) = s_server(&other, Vec::new());
    let fwd = common::sockit_server(&[
        "forward",
        "--json",
        "--tls-target",
        "--cacert",
        &pki.path("ca.pem"),
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    common::assert_closed_at_once(&mut c, "target certificate not trusted");
    let failed = next_named(&fwd, "connect_failed");
    assert_eq!(failed["error"]["kind"], "tls", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("certificate verify failed"),
        "{failed}"
    );
}

#[test]
fn forward_with_tls_on_both_sides_keeps_the_bytes() {
    let pki = common::Pki::new("fwd-tls-both", &["127.0.0.1"], false);
    let echo = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    // client -(plain)-> A -(TLS)-> B -(plain)-> echo; then A -> B with TLS on both of
    // B's sides too (a TLS relay in the middle).
    let b = common::sockit_server(&[
        "forward",
        "--tls",
        "--cert",
        &pki.path("cert.pem"),
        "--key",
        &pki.path("key.pem"),
        "127.0.0.1:0",
        &echo.addr().to_string(),
    ]);
    let m = common::sockit_server(&[
        "forward",
        "--tls",
        "--cert",
        &pki.path("cert.pem"),
        "--key",
        &pki.path("key.pem"),
        "--tls-target",
        "--cacert",
        &pki.path("ca.pem"),
        "127.0.0.1:0",
        &b.addr().to_string(),
    ]);
    let a = common::sockit_server(&[
        "forward",
        "--tls-target",
        "--cacert",
        &pki.path("ca.pem"),
        "127.0.0.1:0",
        &m.addr().to_string(),
    ]);
    let data = common::pattern(4 << 20, 3);
    let mut c = TcpStream::connect_timeout(&a.addr(), T).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            // The half-close crosses both TLS hops (close_notify, then FIN).
            w.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("the echo, then EOF");
    writer.join().unwrap();
    common::assert_bytes_eq(&got, &data, "4 MiB over two TLS hops");
}

#[test]
fn tls_flags_of_forward_are_checked() {
    for (args, want) in [
        (&["--tls-target", "udp:127.0.0.1:9"][..], "stream target"),
        (&["--tls", "--cert", "x.pem", "127.0.0.1:9"][..], "--key"),
        (&["--cacert", "ca.pem", "127.0.0.1:9"][..], "--tls-target"),
        (
            &["--tls-target", "--sni", "bad name", "127.0.0.1:9"][..],
            "server name",
        ),
        (&["--tls-target", "unix:/tmp/x.sock"][..], "--sni"),
        (
            &["--tls-target", "--insecure", "--cacert", "a", "127.0.0.1:9"][..],
            "cannot be used",
        ),
    ] {
        let mut all = vec!["forward", "127.0.0.1:0"];
        all.extend(args);
        // The target is the last word.
        let target = all.remove(all.len() - 1);
        all.push(target);
        let out = common::run(&mut sockit(&all), T);
        common::assert_fails_with(&out, 2, want);
    }
    // Regression: --tls over UDP made (and printed) a certificate before the usage error.
    let out = common::run(
        &mut sockit(&["forward", "--tls", "-u", "127.0.0.1:0", "127.0.0.1:9"]),
        T,
    );
    common::assert_fails_with(&out, 2, "stream listener");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Fingerprint"), "{err}");
    // Regression: a missing --cacert/--cert file's error named only the path.
    let dir = common::temp_dir("tls-flags");
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    for (flags, want) in [
        (vec!["--tls-target", "--cacert", missing], "cacert "),
        (vec!["--tls", "--cert", missing, "--key", missing], "cert "),
    ] {
        let mut all = vec!["forward"];
        all.extend(flags);
        all.extend(["127.0.0.1:0", "127.0.0.1:9"]);
        let out = common::run(&mut sockit(&all), T);
        common::assert_fails_with(&out, 1, &format!("{want}{missing}: [Errno 2]"));
    }
}

/// The `sha256 Fingerprint=…` line a server printed on stderr (within 10 s).
fn printed_fingerprint(peer: &common::Peer) -> String {
    let deadline = Instant::now() + T;
    loop {
        let err = String::from_utf8_lossy(&peer.stderr_so_far()).to_string();
        if let Some(line) = err.lines().find(|l| l.contains("sha256 Fingerprint=")) {
            return line
                .split("sha256 Fingerprint=")
                .nth(1)
                .unwrap()
                .trim()
                .to_string();
        }
        assert!(Instant::now() < deadline, "no fingerprint line: {err}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `openssl x509 -fingerprint -sha256` of the certificate `s_client` saw at `addr`.
fn fingerprint_seen_by_s_client(addr: std::net::SocketAddr) -> String {
    let out = common::run_with_input(
        std::process::Command::new("openssl").args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-showcerts",
        ]),
        b"",
        T,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin + 25;
    let x509 = common::run_with_input(
        std::process::Command::new("openssl").args(["x509", "-fingerprint", "-sha256", "-noout"]),
        &text.as_bytes()[begin..end],
        T,
    );
    let line = String::from_utf8_lossy(&x509.stdout).to_string();
    line.trim()
        .split_once('=')
        .map(|(_, f)| f.to_string())
        .unwrap_or_else(|| panic!("openssl x509 said: {line}"))
}

#[test]
fn an_ephemeral_certificate_prints_the_fingerprint_openssl_computes() {
    common::require_peer!("openssl");
    let echo = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    let servers: [Vec<String>; 2] = [
        ["listen", "-k", "--tls", "127.0.0.1", "0"]
            .map(String::from)
            .to_vec(),
        vec![
            "forward".into(),
            "--tls".into(),
            "127.0.0.1:0".into(),
            echo.addr().to_string(),
        ],
    ];
    let mut seen = Vec::new();
    for args in servers {
        let mut cmd = sockit(&args);
        cmd.stdin(std::process::Stdio::piped());
        let mut peer = common::Peer::spawn(&mut cmd, None);
        let addr = {
            let deadline = Instant::now() + T;
            loop {
                let all = [peer.stdout_so_far(), peer.stderr_so_far()].concat();
                let text = String::from_utf8_lossy(&all).to_string();
                if let Some(l) = text.lines().find(|l| l.starts_with("listening ")) {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    break format!("{}:{}", w[1], w[2]).parse().unwrap();
                }
                assert!(peer.running() && Instant::now() < deadline, "{text}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let printed = printed_fingerprint(&peer);
        assert_eq!(printed.len(), 95, "32 hex pairs: {printed}");
        // The same certificate for the whole run: two clients, one fingerprint.
        for _ in 0..2 {
            assert_eq!(fingerprint_seen_by_s_client(addr), printed, "{args:?}");
        }
        seen.push(printed);
    }
    assert_ne!(seen[0], seen[1], "a new certificate each run");
}

#[test]
fn json_says_the_ephemeral_certificate_and_insecure_as_events() {
    // Regression: under --json the fingerprint and the --insecure warning were text lines.
    common::require_peer!("openssl");
    let mut cmd = sockit(&["listen", "-k", "--json", "--tls", "::1", "0"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut peer = common::Peer::spawn(&mut cmd, None);
    let deadline = Instant::now() + T;
    let (cert, addr) = loop {
        let err = String::from_utf8_lossy(&peer.stderr_so_far()).to_string();
        let events: Vec<serde_json::Value> = err
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        let cert = named(&events, "certificate").first().map(|v| (*v).clone());
        if let (Some(c), Some(l)) = (cert, named(&events, "listening").first()) {
            let addr: std::net::SocketAddr = format!("[::1]:{}", l["local_port"]).parse().unwrap();
            break (c, addr);
        }
        assert!(peer.running() && Instant::now() < deadline, "{err}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let names = cert["names"].as_array().expect("names");
    assert!(names.iter().any(|n| n == "::1"), "{cert}");
    assert_eq!(
        cert["sha256_fingerprint"].as_str().unwrap(),
        fingerprint_seen_by_s_client(addr),
        "{cert}"
    );
    drop(peer);
    let echo = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    let target = echo.addr().to_string();
    let mut fwd = common::sockit_server_stderr(&[
        "forward",
        "--json",
        "--tls-target",
        "--insecure",
        "127.0.0.1:0",
        &target,
    ]);
    let w = next_named(&fwd, "warning");
    assert!(
        w["message"].as_str().unwrap().starts_with("--insecure: "),
        "{w}"
    );
    // A person still sees it on stderr, where no JSON goes.
    fwd.terminate(T);
    let err = common::server_stderr(&mut fwd);
    assert!(err.contains("sockit: warning: --insecure: "), "{err}");
}

#[test]
fn forward_passes_on_the_destination_of_the_header_it_received() {
    // Regression: a chained --send-proxy named forward's own listen address as destination.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = target.local_addr().unwrap().to_string();
    let fwd = common::sockit_server(&[
        "forward",
        "--accept-proxy-from",
        "127.0.0.1/32",
        "--send-proxy",
        "v1",
        "127.0.0.1:0",
        &to,
    ]);
    for header in [
        "PROXY TCP4 10.1.2.3 192.168.9.9 4242 80\r\n",
        "PROXY TCP6 2001:db8::1 ::1 4242 80\r\n",
    ] {
        let mut c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
        c.write_all(header.as_bytes()).unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let (mut s, _) = target.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("{header}hello"),
            "haproxy passes source and destination on"
        );
    }
}

#[test]
fn an_empty_network_flag_is_a_usage_error() {
    // Regression: `--allow "$EMPTY"` (and --deny, --accept-proxy-from) meant no restriction.
    for flag in ["--allow=", "--allow=,", "--deny=", "--accept-proxy-from="] {
        for cmd in ["echo-server", "forward"] {
            let mut args = vec![cmd, flag, "127.0.0.1:0"];
            if cmd == "forward" {
                args.push("127.0.0.1:1");
            }
            let out = common::run(&mut sockit(&args), T);
            let name = flag.trim_end_matches(['=', ',']);
            common::assert_fails_with(&out, 2, &format!("{name} "));
        }
    }
}
