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
    let target = format!("127.0.0.1:{}", held.port);
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
        assert_eq!(r["delay_ms"], 500u64 << i, "doubling: {r}");
        assert_eq!(r["error"]["code"], 111, "{r}");
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
fn retry_flags_are_checked() {
    for (args, want) in [
        (&["--retry", "1001"][..], "1001"),
        (&["--retry", "-1"][..], "-1"),
        (&["--retry", "2", "--retry-delay", "0"][..], "at least 0.01"),
        (&["--retry", "2", "--retry-delay", "31"][..], "at most 30"),
        (&["--retry-delay", "1"][..], "--retry"),
    ] {
        let mut all = vec!["forward", "127.0.0.1:0", "127.0.0.1:9"];
        all.extend(args);
        let out = common::run(&mut sockit(&all), T);
        common::assert_fails_with(&out, 2, want);
    }
}
