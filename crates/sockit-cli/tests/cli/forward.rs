//! Tests of `sockit forward`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{
    Server, assert_closed_at_once, pattern, require_peer, server_stderr, sockit_server,
    sockit_server_stderr, tcp_from, temp_dir,
};

const T: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, T).expect("connect to the forwarder");
    s.set_read_timeout(Some(T)).unwrap();
    s.set_write_timeout(Some(T)).unwrap();
    s
}

/// Sends `data` (from a thread), half-closes, and reads everything back until EOF.
fn round_trip(mut s: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).expect("write");
        w.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read back");
    writer.join().unwrap();
    back
}

fn forward(args: &[&str]) -> Server {
    let mut all = vec!["forward"];
    all.extend_from_slice(args);
    sockit_server(&all)
}

/// `sockit forward ARGS…` with its stderr piped, for [`stderr_after_stop`].
fn forward_with_stderr(args: &[&str]) -> Server {
    let mut all = vec!["forward"];
    all.extend_from_slice(args);
    sockit_server_stderr(&all)
}

/// Sends SIGTERM (waiting at most `T`) and returns what the forwarder wrote on stderr.
fn stderr_after_stop(fwd: &mut Server) -> String {
    fwd.terminate(T);
    server_stderr(fwd)
}

/// `sockit forward ARGS…` that is expected to fail: no stdin, at most `T`.
fn forward_fails(args: &[&str]) -> std::process::Output {
    let mut all = vec!["forward"];
    all.extend_from_slice(args);
    crate::common::run(&mut crate::common::sockit(&all), T)
}

/// A UDP target socket on 127.0.0.1 with a read timeout of `T`, and its address.
fn udp_target() -> (UdpSocket, SocketAddr) {
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(T)).unwrap();
    let taddr = target.local_addr().unwrap();
    (target, taddr)
}

/// An in-test TCP echo server on 127.0.0.1 (a thread per connection, bounded waits).
fn echo_thread() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        for _ in 0..8 {
            let Ok((mut s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(T)).unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, h)
}

#[test]
fn tcp_32_mib_through_the_forwarder_to_sockit_echo_server() {
    let echo = sockit_server(&["echo-server", "127.0.0.1:0"]);
    let fwd = forward(&["127.0.0.1:0", &format!("127.0.0.1:{}", echo.port)]);
    let data = pattern(32 << 20, 1);
    let back = round_trip(connect(fwd.addr()), data.clone());
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes differ");
}

#[test]
fn tcp_32_mib_through_the_forwarder_to_socat() {
    require_peer!("socat");
    let mut c = Command::new("socat");
    c.args([
        "-d",
        "-d",
        "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr,fork",
        "EXEC:cat",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut socat = c.spawn().expect("spawn socat");
    // socat -d -d says "listening on AF=2 127.0.0.1:PORT" on stderr.
    let mut err = std::io::BufReader::new(socat.stderr.take().unwrap());
    let mut port = None;
    for _ in 0..20 {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains("listening on") {
            port = line
                .trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok());
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = err.read_to_end(&mut sink);
    });
    let Some(port) = port else {
        let _ = socat.kill();
        let _ = socat.wait();
        panic!("socat printed no listening line");
    };
    let fwd = forward(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let data = pattern(32 << 20, 2);
    let back = round_trip(connect(fwd.addr()), data.clone());
    let _ = socat.kill();
    let _ = socat.wait();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes differ");
}

#[test]
fn half_close_reaches_a_counting_server_as_5_bytes_and_eof() {
    require_peer!("nc");
    // The server counts bytes until EOF, then answers with the count and closes.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("EOF reaches the server");
        s.write_all(format!("{}\n", got.len()).as_bytes()).unwrap();
        got
    });
    let fwd = forward(&["127.0.0.1:0", &target.to_string()]);
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("printf hello | nc -N 127.0.0.1 {}", fwd.port));
    let out = crate::common::run(&mut c, T);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5\n");
    assert_eq!(server.join().unwrap(), b"hello");
}

#[test]
fn a_refusing_target_closes_the_client_and_the_forwarder_keeps_running() {
    // Held (bound, not listening) until the target starts listening on it: no parallel
    // test can take the port meanwhile.
    let closed = crate::common::closed_port();
    let target = SocketAddr::from(([127, 0, 0, 1], closed.port));
    let mut fwd = forward(&["-v", "127.0.0.1:0", &target.to_string()]);
    for _ in 0..3 {
        let mut s = connect(fwd.addr());
        let _ = s.write_all(b"anyone?");
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        assert!(r.is_ok(), "closed cleanly (EOF, not reset): {r:?}");
        assert!(buf.is_empty());
    }
    assert!(
        fwd.child.try_wait().unwrap().is_none(),
        "forwarder still runs"
    );
    // Once the target listens, the same forwarder serves.
    let l = closed.listen();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"up\n").unwrap();
    });
    let mut s = connect(fwd.addr());
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"up\n");
    t.join().unwrap();
    drop(s); // SIGTERM waits for sessions in flight: close ours first
    assert_eq!(fwd.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn udp_forward_serves_two_peers_each_with_its_own_answers() {
    // Target: answers each datagram with "<what it got> from <the session's port>".
    let (target, taddr) = udp_target();
    let server = std::thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        let mut buf = [0u8; 2048];
        for _ in 0..4 {
            let Ok((n, from)) = target.recv_from(&mut buf) else {
                break;
            };
            seen.insert(from);
            let mut answer = buf[..n].to_vec();
            answer.extend_from_slice(b"!");
            let _ = target.send_to(&answer, from);
        }
        seen.len()
    });
    let fwd = forward(&["-u", "127.0.0.1:0", &taddr.to_string()]);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(T)).unwrap();
        s.connect(fwd.addr()).unwrap();
    }
    let mut buf = [0u8; 2048];
    for round in 0..2 {
        a.send(format!("a{round}").as_bytes()).unwrap();
        b.send(format!("b{round}").as_bytes()).unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], format!("a{round}!").as_bytes());
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], format!("b{round}!").as_bytes());
    }
    assert_eq!(server.join().unwrap(), 2, "one target socket per peer");
}

#[test]
fn unix_listener_to_tcp_target() {
    let (target, _echo) = echo_thread();
    let dir = temp_dir("fwd");
    let path = dir.join("fwd.sock");
    let listen = format!("unix:{}", path.display());
    let mut fwd = forward(&[&listen, &target.to_string()]);
    assert_eq!(fwd.first_line, format!("listening unix {}", path.display()));
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"over unix\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"over unix\n");
    assert_eq!(fwd.terminate(T).and_then(|s| s.code()), Some(0));
    assert!(!path.exists(), "a clean stop removes the socket file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn allow_admits_only_its_network() {
    let (target, _echo) = echo_thread();
    let mut fwd = forward_with_stderr(&[
        "-v",
        "--allow",
        "127.0.0.2/32",
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let from = |src: &str| tcp_from(src, fwd.addr(), T);
    // From 127.0.0.1: refused, closed at once.
    let mut s = from("127.0.0.1");
    let _ = s.write_all(b"x");
    assert_closed_at_once(&mut s, "refused, closed at once");
    // From 127.0.0.2: served.
    let s = from("127.0.0.2");
    assert_eq!(round_trip(s, b"allowed".to_vec()), b"allowed");
    let err = stderr_after_stop(&mut fwd);
    assert!(
        err.contains("refused 127.0.0.1 ") && err.contains("--allow"),
        "{err}"
    );
    assert!(err.contains("accepted 127.0.0.2 "), "{err}");
}

#[test]
fn hex_dump_of_a_known_exchange() {
    let (target, _echo) = echo_thread();
    let dir = temp_dir("fwd-x");
    let dump = dir.join("dump.txt");
    let mut fwd = forward(&[
        "-x",
        dump.to_str().unwrap(),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let s = connect(fwd.addr());
    let client_port = s.local_addr().unwrap().port();
    assert_eq!(round_trip(s, b"hello\n".to_vec()), b"hello\n");
    // A second session counts its own offsets from 0.
    let s = connect(fwd.addr());
    let second_port = s.local_addr().unwrap().port();
    assert_eq!(round_trip(s, b"!".to_vec()), b"!");
    fwd.terminate(T);
    let text = std::fs::read_to_string(&dump).unwrap();
    // Timestamps vary: compare each header without its two time fields.
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            if l.starts_with('>') || l.starts_with('<') {
                assert!(w[1].ends_with('Z') && w[2].starts_with('+'), "{l}");
                format!("{} {}", w[0], w[3..].join(" "))
            } else {
                l.to_string()
            }
        })
        .collect();
    let label = format!("#1 127.0.0.1:{client_port}");
    let label2 = format!("#2 127.0.0.1:{second_port}");
    assert_eq!(
        lines,
        vec![
            format!("> {label} length=6 offset=0"),
            "00000000  68 65 6c 6c 6f 0a                                 |hello.|".to_string(),
            format!("< {label} length=6 offset=0"),
            "00000000  68 65 6c 6c 6f 0a                                 |hello.|".to_string(),
            format!("> {label2} length=1 offset=0"),
            "00000000  21                                                |!|".to_string(),
            format!("< {label2} length=1 offset=0"),
            "00000000  21                                                |!|".to_string(),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_options_are_read_back_and_a_bad_ttl_is_refused() {
    let (target, _echo) = echo_thread();
    let mut fwd = forward_with_stderr(&[
        "-v",
        "--rcvbuf",
        "65536",
        "--nodelay",
        "--ttl",
        "64",
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    assert_eq!(round_trip(connect(fwd.addr()), b"opt".to_vec()), b"opt");
    let err = stderr_after_stop(&mut fwd);
    // Linux doubles SO_RCVBUF for its bookkeeping; the value read back is reported.
    assert!(err.contains("SO_RCVBUF 131072 (asked 65536)"), "{err}");
    assert!(
        err.contains("TCP_NODELAY on") && err.contains("IP_TTL 64"),
        "{err}"
    );

    let out = forward_fails(&["--ttl", "300", "127.0.0.1:0", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sockit: setsockopt(IP_TTL): ttl must be 1-255, not 300\n"
    );
}

#[test]
fn max_conns_closes_the_extra_client_at_once() {
    let (target, _echo) = echo_thread();
    let fwd = forward(&["--max-conns", "1", "127.0.0.1:0", &target.to_string()]);
    let mut first = connect(fwd.addr());
    first.write_all(b"1").unwrap();
    let mut b = [0u8; 1];
    first.read_exact(&mut b).unwrap(); // the first session is up
    let mut second = connect(fwd.addr());
    assert_closed_at_once(&mut second, "the second client is closed at once");
    first.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).unwrap();
}

#[test]
fn bad_addresses_are_usage_errors() {
    for (l, t) in [("127.0.0.1:0", "nohostport"), ("70000", "127.0.0.1:9")] {
        let out = forward_fails(&[l, t]);
        assert_eq!(out.status.code(), Some(2), "{l} {t}: {out:?}");
    }
    let out = forward_fails(&["--allow", "10.0.0.0/33", "0", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn idle_timeout_ends_a_quiet_session() {
    let _guard = crate::common::serial();
    let (target, _echo) = echo_thread();
    let fwd = forward(&["-i", "1", "127.0.0.1:0", &target.to_string()]);
    let mut s = connect(fwd.addr());
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let t = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest); // EOF (or reset) when the forwarder ends the session
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn tcp_client_to_udp_target() {
    let (target, taddr) = udp_target();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (n, from) = target.recv_from(&mut buf).unwrap();
        target.send_to(&buf[..n], from).unwrap();
    });
    let fwd = forward(&["-i", "1", "127.0.0.1:0", &format!("udp:{taddr}")]);
    let mut s = connect(fwd.addr());
    s.write_all(b"datagram").unwrap();
    let mut b = [0u8; 8];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"datagram");
    server.join().unwrap();
}

#[test]
fn json_events_follow_the_listening_line() {
    let (target, _echo) = echo_thread();
    let mut fwd = forward(&["--json", "127.0.0.1:0", &target.to_string()]);
    let s = connect(fwd.addr());
    assert_eq!(round_trip(s, b"abc".to_vec()), b"abc");
    let mut events = Vec::new();
    while let Some(line) = fwd.next_line(Duration::from_secs(5)) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let done = v["event"] == "closed";
        events.push(v);
        if done {
            break;
        }
    }
    let names: Vec<&str> = events.iter().filter_map(|v| v["event"].as_str()).collect();
    assert_eq!(names, ["accepted", "connected", "closed"]);
    // One vocabulary: sent to / received from the peer.
    assert_eq!(events[2]["bytes_received"], 3);
    assert_eq!(events[2]["bytes_sent"], 3);
    assert_eq!(events[2]["reason"], "eof");
    assert_eq!(fwd.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn udp_session_ends_after_idle_and_a_new_one_starts() {
    let _guard = crate::common::serial();
    let (target, taddr) = udp_target();
    let mut fwd =
        forward_with_stderr(&["-u", "-v", "-i", "0.5", "127.0.0.1:0", &taddr.to_string()]);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(fwd.addr()).unwrap();
    let mut buf = [0u8; 64];
    c.send(b"one").unwrap();
    let (_, first) = target.recv_from(&mut buf).unwrap();
    c.send(b"two").unwrap();
    let (_, same) = target.recv_from(&mut buf).unwrap();
    assert_eq!(first, same, "one session, one target socket");
    // Wait (bounded) until the forwarder says the idle session closed, rather than sleep a
    // fixed 1.5 s that a late timer on a loaded machine could outlast.
    let stderr = fwd.child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut said: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while !said.iter().any(|l| l.contains("#1 closed")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => said.push(line),
            Err(_) => panic!("the idle session did not close within {T:?}: {said:?}"),
        }
    }
    c.send(b"three").unwrap();
    let (n, next) = target.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"three");
    assert_ne!(
        first, next,
        "the idle session ended; a new socket carries the new one"
    );
    fwd.terminate(T);
    // the rest of stderr: the reader ends at the forwarder's exit
    while let Ok(line) = rx.recv_timeout(T) {
        said.push(line);
    }
    let err = said.join("\n");
    assert!(
        err.contains("#1 closed") && err.contains("idle: timed out"),
        "{err}"
    );
    assert!(err.contains("#2 accepted"), "{err}");
}

#[test]
fn sigterm_stops_accepting_and_lets_sessions_in_flight_finish() {
    let (target, _echo) = echo_thread();
    let mut fwd = forward(&["127.0.0.1:0", &target.to_string()]);
    let mut s = connect(fwd.addr());
    s.write_all(b"a").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(fwd.child.id().to_string())
        .status();
    // New clients are refused once the listener is closed (bounded wait for the signal).
    let deadline = std::time::Instant::now() + T;
    while TcpStream::connect_timeout(&fwd.addr(), T).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        fwd.child.try_wait().unwrap().is_none(),
        "waits for the session"
    );
    s.write_all(b"b").unwrap();
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"b");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(fwd.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn bad_options_and_log_files_fail_before_listening() {
    // Regression: a listening command must check every option and open every log file
    // before it binds and prints `listening …` (as listen and connect do).
    let dir = temp_dir("forward-checks");
    let d = dir.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 3] = [
        (
            &["-x", d, "127.0.0.1:0", "127.0.0.1:9"],
            1,
            "Is a directory",
        ),
        (
            &["--allow", "300.0.0.0/8", "127.0.0.1:0", "127.0.0.1:9"],
            2,
            "300.0.0.0/8",
        ),
        (&["--ttl", "300", "127.0.0.1:0", "127.0.0.1:9"], 2, "ttl"),
    ];
    for (args, code, want) in cases {
        let out = forward_fails(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening"),
            "{args:?} announced a listener before failing"
        );
        assert!(
            err.to_lowercase().contains(&want.to_lowercase()),
            "{args:?}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A UDP echo target on 127.0.0.1 answering every datagram for `limit` (bounded).
fn udp_echo_thread(limit: Duration) -> SocketAddr {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = u.local_addr().unwrap();
    std::thread::spawn(move || {
        let end = std::time::Instant::now() + limit;
        let mut buf = [0u8; 2048];
        while std::time::Instant::now() < end {
            if let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        }
    });
    addr
}

#[test]
fn tcp_to_udp_session_ends_after_client_eof_and_grace() {
    // Regression: TCP→UDP session outlived its client's EOF by the 60 s idle default.
    let _guard = crate::common::serial();
    let taddr = udp_echo_thread(T);
    let fwd = forward(&["127.0.0.1:0", &format!("udp:{taddr}")]);
    let s = connect(fwd.addr());
    let t = std::time::Instant::now();
    assert_eq!(round_trip(s, b"x".to_vec()), b"x", "echo, then EOF");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "EOF after the 0.5 s grace: {took:?}"
    );
}

#[test]
fn tcp_to_udp_grace_is_the_q_option() {
    // Regression: the after-EOF grace of a TCP→UDP session is set with -q.
    let _guard = crate::common::serial();
    let taddr = udp_echo_thread(T);
    let fwd = forward(&["-q", "1.5", "127.0.0.1:0", &format!("udp:{taddr}")]);
    let t = std::time::Instant::now();
    assert_eq!(round_trip(connect(fwd.addr()), b"z".to_vec()), b"z");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A client that is gone: SIGTERM does not wait out its session's grace (a grace of
    // 5 s here, so the bound below has seconds of slack for a loaded machine).
    drop(fwd);
    let mut fwd = forward(&["-q", "5", "127.0.0.1:0", &format!("udp:{taddr}")]);
    let mut gone = connect(fwd.addr());
    let gone_port = gone.local_addr().unwrap().port();
    gone.write_all(b"y").unwrap();
    let mut b = [0u8; 1];
    gone.read_exact(&mut b).unwrap();
    drop(gone);
    // SIGTERM comes once the client's FIN has reached the forwarder's socket.
    crate::common::wait_tcp_peer_closed(fwd.port, gone_port, T);
    let t = std::time::Instant::now();
    assert_eq!(fwd.terminate(T).and_then(|s| s.code()), Some(0));
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn bare_port_with_6_listens_on_ipv6_loopback() {
    // Regression: `forward -6 0 [::1]:PORT` looked up 127.0.0.1 with -6 and exited 3.
    let target = TcpListener::bind("[::1]:0").expect("bind ::1");
    let taddr = target.local_addr().unwrap();
    drop(target);
    let fwd = forward(&["-6", "0", &taddr.to_string()]);
    assert_eq!(fwd.host, "::1", "{}", fwd.first_line);
    // An address of the wrong family names itself in the error (a usage error, as in
    // echo-server and listen: one address rule).
    let out = forward_fails(&["-6", "127.0.0.1:0", &taddr.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("-6 given but 127.0.0.1 is an IPv4 address"),
        "{err}"
    );
    assert!(
        err.starts_with("sockit: listen address 127.0.0.1:0: "),
        "{err}"
    );
}

#[test]
fn zero_max_conns_empty_abstract_name_and_target_port_0_are_usage_errors() {
    // Regression: `--max-conns 0`, `@` and a target port 0 were accepted, then useless.
    let cases: [&[&str]; 5] = [
        &["--max-conns", "0", "127.0.0.1:0", "127.0.0.1:9"],
        &["@", "127.0.0.1:9"],
        &["127.0.0.1:0", "unix:@"],
        &["0", "0"],
        &["127.0.0.1:0", "udp:127.0.0.1:0"],
    ];
    for args in cases {
        let out = forward_fails(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!stdout.contains("listening"), "{args:?}: {stdout}");
    }
}

#[test]
fn an_unreachable_target_is_reported_without_v() {
    // Regression: without -v, a refused target closed each client with no word anywhere.
    let closed = crate::common::closed_port();
    let target = format!("127.0.0.1:{}", closed.port);
    let mut fwd = forward_with_stderr(&["0", &target]);
    let mut c = TcpStream::connect(fwd.addr()).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "the client is closed");
    let err = stderr_after_stop(&mut fwd);
    assert!(
        err.contains("failed, client closed: connect: [Errno 111]"),
        "{err}"
    );
}

#[test]
fn a_family_flag_that_excludes_the_target_is_refused_at_start() {
    // Regression: `forward -6 0 127.0.0.1:P` listened, then failed every client.
    let out = forward_fails(&["-6", "0", "127.0.0.1:9"]);
    crate::common::assert_fails_with(&out, 2, "-6 applies to the target too");
    let out = forward_fails(&["-4", "0", "[::1]:9"]);
    crate::common::assert_fails_with(&out, 2, "-4 applies to the target too");
}

#[test]
fn udp_sessions_to_a_tcp_target_end_with_its_end_of_stream() {
    // UDP client -> `forward -u` -> TCP target: each datagram's bytes go down the stream,
    // what the target writes comes back as datagrams, and the target's close ends the
    // session (the next datagram opens a new connection).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let taddr = l.local_addr().unwrap();
    let target = std::thread::spawn(move || {
        let mut peers = Vec::new();
        for _ in 0..2 {
            let Ok((mut s, from)) = l.accept() else { break };
            s.set_read_timeout(Some(T)).unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            let mut answer = buf[..n].to_vec();
            answer.extend_from_slice(b"!");
            let _ = s.write_all(&answer);
            peers.push(from);
            // dropping `s` closes the connection: the session must end with it
        }
        peers
    });
    let mut fwd = forward_with_stderr(&["-u", "-v", "127.0.0.1:0", &format!("tcp:{taddr}")]);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.connect(fwd.addr()).unwrap();
    let mut buf = [0u8; 64];
    c.send(b"one").unwrap();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"one!");
    // the first session ends when the target closes; wait for it, then start another
    let t = std::time::Instant::now();
    let mut second = None;
    while t.elapsed() < T {
        std::thread::sleep(Duration::from_millis(100));
        c.send(b"two").unwrap();
        let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
        if let Ok(n) = c.recv(&mut buf) {
            second = Some(buf[..n].to_vec());
            break;
        }
    }
    // a retry may have been queued before the first answer came: "twotwo!" is fine
    let second = second.expect("no answer from a second session");
    assert!(
        second.starts_with(b"two") && second.ends_with(b"!"),
        "{second:?}"
    );
    let peers = target.join().unwrap();
    assert_eq!(peers.len(), 2, "one TCP connection per session");
    assert_ne!(peers[0], peers[1]);
    let err = stderr_after_stop(&mut fwd);
    assert!(
        err.contains("#1 closed") && err.contains("#2 accepted"),
        "{err}"
    );
}

#[test]
fn a_signal_sent_right_after_the_listening_line_is_handled() {
    // Regression: forward registered its SIGTERM and SIGINT handlers after printing
    // `listening`, so a signal sent as soon as the line was read could find none (the
    // forwarder descheduled in between, as on a loaded machine) and kill it: no exit code.
    let closed = crate::common::closed_port();
    let target = format!("127.0.0.1:{}", closed.port);
    for (signal, code) in [("-TERM", 0), ("-INT", 130)] {
        for _ in 0..5 {
            let mut fwd = forward(&["127.0.0.1:0", &target]);
            let _ = Command::new("kill")
                .arg(signal)
                .arg(fwd.child.id().to_string())
                .status();
            let st = crate::common::wait_exit(&mut fwd, T);
            assert_eq!(st.and_then(|s| s.code()), Some(code), "{signal}: {st:?}");
        }
    }
}

#[test]
fn unix_datagram_targets_for_tcp_and_udp_clients() {
    // `unixgram:PATH` targets (forward had no Unix datagram endpoint): a TCP client's
    // reads go as datagrams to sockit's echo-server, a UDP client's datagrams to a Python
    // peer answering the forwarder's autobind address.
    let dir = temp_dir("forward-unixgram");
    let path = dir.join("echo.sock");
    let p = path.to_string_lossy().into_owned();
    let _echo = sockit_server(&["echo-server", "-u", "--unix", &p]);
    let fwd = forward(&["127.0.0.1:0", &format!("unixgram:{p}")]);
    let back = round_trip(connect(fwd.addr()), b"through a datagram socket\n".to_vec());
    assert_eq!(back, b"through a datagram socket\n");

    let name = format!("sockit-fwd-test-{}", std::process::id());
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1]); s.settimeout(10)
print("ready", flush=True)
d, a = s.recvfrom(65536)
s.sendto(d.upper(), a)
"#;
    let mut py = crate::common::python_ready(script, &[&name]);
    let fwd = forward(&["-u", "127.0.0.1:0", &format!("unixgram:@{name}")]);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.connect(fwd.addr()).unwrap();
    c.send(b"shout").unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv(&mut buf).unwrap();
    let _ = py.kill();
    let _ = py.wait();
    assert_eq!(&buf[..n], b"SHOUT");
    // as a listener it is refused before anything is bound
    let out = forward_fails(&[&format!("unixgram:{p}.2"), "127.0.0.1:9"]);
    crate::common::assert_fails_with(
        &out,
        2,
        "a Unix datagram socket can be a target, not yet a listener",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_log_write_is_reported_once_and_exits_1_for_forward_and_connect() {
    // Regression: `forward -o /dev/full` and `connect -o /dev/full` ignored the write
    // errors (exit 0, nothing said); listen's handling is now the one shared mechanism.
    let echo = sockit_server(&["echo-server", "127.0.0.1:0"]);
    let target = format!("127.0.0.1:{}", echo.port);
    let mut fwd = forward_with_stderr(&["-o", "/dev/full", "127.0.0.1:0", &target]);
    for _ in 0..2 {
        let back = round_trip(connect(fwd.addr()), b"hello\n".to_vec());
        assert_eq!(back, b"hello\n", "the relay goes on");
    }
    let st = fwd.terminate(T);
    let err = server_stderr(&mut fwd);
    assert_eq!(st.and_then(|s| s.code()), Some(1), "{err}");
    assert_eq!(
        err.matches("sockit: -o /dev/full: write: [Errno 28] No space left on device (traffic log stopped; exit status 1)")
            .count(),
        1,
        "{err}"
    );
    let out = crate::common::run_with_input(
        &mut crate::common::sockit(&[
            "connect",
            "-x",
            "/dev/full",
            "127.0.0.1",
            &echo.port.to_string(),
        ]),
        b"x\n",
        T,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(out.stdout, b"x\n");
    assert!(err.contains("-x /dev/full: write: [Errno 28]"), "{err}");
}

#[test]
fn bytes_a_client_sent_before_its_reset_reach_the_target() {
    // Regression: while the target kept sending, a client that sent 100,004 bytes and
    // reset (SO_LINGER 0, without reading) made the write to it fail first, and the
    // session ended before reading what it had sent: the target got 0 bytes (2 runs of 8).
    for _ in 0..3 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let taddr = l.local_addr().unwrap();
        let (spamming_tx, spamming) = std::sync::mpsc::channel();
        let target = std::thread::spawn(move || {
            let (mut s, _) = l.accept().ok()?;
            s.set_read_timeout(Some(T)).ok()?;
            // the write timeout bounds the spam loop once nobody reads
            s.set_write_timeout(Some(T)).ok()?;
            let mut spam = s.try_clone().ok()?;
            std::thread::spawn(move || {
                let mut said = false;
                while spam.write_all(&[b'T'; 65536]).is_ok() {
                    if !said {
                        said = spamming_tx.send(()).is_ok();
                    }
                }
            });
            let mut n = 0;
            let mut buf = [0u8; 65536];
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k;
            }
            Some(n)
        });
        let fwd = forward(&["127.0.0.1:0", &taddr.to_string()]);
        let mut c = connect(fwd.addr());
        // The client sends and resets once the target is sending (its first write done).
        spamming
            .recv_timeout(T)
            .expect("the forwarder connected to the target");
        c.write_all(&[b'C'; 100_004]).unwrap();
        // A RST discards what the client's kernel has not sent yet (the forwarder's
        // first receive window is 64 KiB): reset once every byte has left.
        wait_sent(&c);
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
        assert_eq!(target.join().unwrap(), Some(100_004));
    }
}

/// Waits (10 s at most) until the kernel has sent everything written to `s`: its send
/// queue (`TIOCOUTQ`) holds no byte that was not acknowledged.
fn wait_sent(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int through the pointer; the descriptor is open.
        let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        if rc != 0 || queued == 0 || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Resets `s` (SO_LINGER 0, close): the peer gets a RST.
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Reads until EOF or an error: the bytes, and the error kind if one ended it.
fn read_until_end(s: &mut TcpStream) -> (usize, Option<std::io::ErrorKind>) {
    let mut n = 0;
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (n, None),
            Ok(k) => n += k,
            Err(e) => return (n, Some(e.kind())),
        }
    }
}

#[test]
fn a_target_reset_reaches_the_client_as_a_reset_and_is_said_without_v() {
    // Regression (defect 2): a target that reset gave the client a clean EOF and exit 0.
    let (port, target) = crate::common::serve_one_client(|mut s| {
        s.set_read_timeout(Some(T)).unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"partial").unwrap();
        reset(s);
    });
    let mut fwd = forward_with_stderr(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let mut c = connect(fwd.addr());
    c.write_all(b"hello").unwrap();
    target.join().unwrap();
    let (_, err) = read_until_end(&mut c);
    assert_eq!(
        err,
        Some(std::io::ErrorKind::ConnectionReset),
        "not a clean EOF"
    );
    let said = stderr_after_stop(&mut fwd);
    assert!(
        said.contains("#1 closed") && said.contains("reset by the target"),
        "{said}"
    );
}

#[test]
fn a_client_reset_reaches_the_target_as_a_reset() {
    // Regression (defect 2): a client reset reached the target as EOF.
    let (port, target) = crate::common::serve_one_client(|mut s| {
        s.set_read_timeout(Some(T)).unwrap();
        read_until_end(&mut s)
    });
    let fwd = forward(&["--json", "127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let mut c = connect(fwd.addr());
    c.write_all(b"hello").unwrap();
    // the session is up once the target side is connected
    while let Some(line) = fwd.next_line(T) {
        if line.contains("\"connected\"") {
            break;
        }
    }
    let t0 = std::time::Instant::now();
    reset(c);
    let (n, err) = target.join().unwrap();
    assert_eq!(
        err,
        Some(std::io::ErrorKind::ConnectionReset),
        "{n} bytes, then EOF"
    );
    // Regression: the reset reached the target only after a fixed 1 s (the grace for a
    // send that finds the peer gone was applied to the client's own reset).
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "the target's reset came {:?} after the client's",
        t0.elapsed()
    );
    let closed = loop {
        let line = fwd.next_line(T).expect("a closed event");
        if line.contains("\"closed\"") {
            break serde_json::from_str::<serde_json::Value>(&line).unwrap();
        }
    };
    assert_eq!(closed["reason"], "reset");
    assert_eq!(closed["reset_by"], "peer");
    for field in [
        "id",
        "transport",
        "peer_host",
        "peer_port",
        "bytes_sent",
        "bytes_received",
        "duration_us",
    ] {
        assert!(closed.get(field).is_some(), "{field} in {closed}");
    }
}

#[test]
fn drain_1_cuts_a_session_that_never_reads_with_a_reset() {
    // Regression (defect 3): on SIGTERM forward waited forever for a session whose client
    // never read; a second stop then ended it with a FIN.
    let _serial = crate::common::serial();
    let (port, target) = crate::common::serve_one_client(|mut s| {
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        // fill every buffer on the way: the client never reads
        let mut sent = 0usize;
        while sent < 512 << 20 && s.write_all(&[b'T'; 65536]).is_ok() {
            sent += 65536;
        }
    });
    let mut fwd =
        forward_with_stderr(&["--drain", "1", "127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let mut c = connect(fwd.addr());
    c.write_all(b"x").unwrap();
    // wait until the target's writes back up (the relay is stuck on the client)
    std::thread::sleep(Duration::from_millis(500));
    let t0 = std::time::Instant::now();
    let code = fwd
        .terminate(Duration::from_secs(30))
        .and_then(|s| s.code());
    let took = t0.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_secs(1),
        "exited after {took:?}, before the drain"
    );
    assert!(took <= Duration::from_secs(10), "exited after {took:?}");
    let (_, err) = read_until_end(&mut c);
    assert_eq!(
        err,
        Some(std::io::ErrorKind::ConnectionReset),
        "cut with a reset"
    );
    let said = server_stderr(&mut fwd);
    assert!(said.contains("aborted") && said.contains("1 cut"), "{said}");
    drop(target);
}

#[test]
fn a_refusing_target_is_reported_about_once_a_second_with_a_count() {
    // Regression (defect 6): one line per refused connect (13,781 lines in a 5 s outage).
    let closed = crate::common::closed_port();
    let mut fwd = forward_with_stderr(&["127.0.0.1:0", &format!("127.0.0.1:{}", closed.port)]);
    for _ in 0..40 {
        let mut c = connect(fwd.addr());
        let _ = read_until_end(&mut c);
    }
    let said = stderr_after_stop(&mut fwd);
    let lines = said.lines().filter(|l| l.contains("failed")).count();
    assert!((1..=8).contains(&lines), "{lines} lines:\n{said}");
    assert!(said.contains("more like this"), "{said}");
}

/// One side that fills its send path (non-blocking until the kernel refuses more, at most
/// 3 s), so the forwarder's write towards it is what meets the other side's reset.
fn fill_send_path(s: &TcpStream) {
    s.set_nonblocking(true).unwrap();
    let chunk = vec![b'z'; 65536];
    let t0 = std::time::Instant::now();
    let mut refused = 0;
    while t0.elapsed() < Duration::from_secs(3) && refused < 2 {
        match (&*s).write(&chunk) {
            Ok(_) => refused = 0,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("fill: {e}"),
        }
    }
    s.set_nonblocking(false).unwrap();
}

#[test]
fn a_reset_a_write_found_first_is_passed_on_as_a_reset() {
    // Regression (fresh-eyes QA): the kernel reports a reset to one call only; when the
    // forwarder's write took it, the other direction's read saw 0 and passed a FIN on, so
    // the client got a clean EOF after a target's reset (both paths), and the target a
    // clean EOF after a client's reset (splice path).
    for flag in ["splice", "--no-splice"] {
        for target_resets in [true, false] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            // the side that resets sends 100,000 bytes, waits, reads a little, resets;
            // the other fills its send path and then only reads
            let resetter = move |mut s: TcpStream| {
                s.set_read_timeout(Some(T)).unwrap();
                s.write_all(&vec![b'x'; 100_000]).unwrap();
                let _ = go_rx.recv_timeout(T);
                std::thread::sleep(Duration::from_millis(300));
                let mut b = [0u8; 1000];
                let _ = s.read(&mut b);
                reset(s);
            };
            let mut args = vec!["127.0.0.1:0".to_string(), format!("127.0.0.1:{port}")];
            if flag == "--no-splice" {
                args.push(flag.into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let fwd = forward(&args);
            let c = connect(fwd.addr());
            let (t, _) = l.accept().unwrap();
            let (reader, handle) = if target_resets {
                (c, std::thread::spawn(move || resetter(t)))
            } else {
                (t, std::thread::spawn(move || resetter(c)))
            };
            fill_send_path(&reader);
            go_tx.send(()).unwrap();
            let mut reader = reader;
            reader.set_read_timeout(Some(T)).unwrap();
            let (n, err) = read_until_end(&mut reader);
            handle.join().unwrap();
            assert_eq!(
                err,
                Some(std::io::ErrorKind::ConnectionReset),
                "{flag}, target resets: {target_resets}: {n} bytes, then a clean EOF"
            );
        }
    }
}

#[test]
fn idle_does_not_cut_a_session_still_delivering_to_a_slow_reader() {
    // Regression (fresh-eyes QA): `-i 2` cut a session at 3.8 of 4 MB while a slow reader
    // was still receiving (the relay sat in a write the kernel wakes only once a third of a
    // large send buffer is free), and the reader saw a clean EOF with bytes missing.
    let _g = crate::common::serial();
    const N: usize = 4_000_000;
    let (port, target) = crate::common::serve_one_client(|mut s| {
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(&vec![b'y'; N]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    });
    let fwd = forward(&["-i", "2", "127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let c = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    c.set_recv_buffer_size(16384).unwrap();
    c.connect(&fwd.addr().into()).unwrap();
    let mut c: TcpStream = c.into();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // about 400 KB/s: ten seconds for the whole
    let mut buf = [0u8; 4096];
    let (mut got, t0) = (0usize, std::time::Instant::now());
    while t0.elapsed() < Duration::from_secs(60) {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("after {got} bytes: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    target.join().unwrap();
    assert_eq!(got, N, "the session was cut while bytes were still flowing");
}

#[test]
fn an_idle_cut_of_a_reader_that_stopped_is_a_reset_not_an_eof() {
    // Regression (fresh-eyes QA): an idle cut closed a client that had stopped reading
    // with a FIN, so what had arrived read as a complete stream.
    let (port, target) = crate::common::serve_one_client(|mut s| {
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // more than the buffers hold: the rest stays with the forwarder
        let _ = s.write_all(&vec![b'y'; 16 << 20]);
        std::thread::sleep(Duration::from_millis(500));
    });
    let fwd = forward_with_stderr(&["-i", "0.5", "127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let mut c = connect(fwd.addr());
    // stop reading until the idle time has passed twice over
    std::thread::sleep(Duration::from_millis(1500));
    let (n, err) = read_until_end(&mut c);
    target.join().unwrap();
    assert_eq!(
        err,
        Some(std::io::ErrorKind::ConnectionReset),
        "{n} bytes, then a clean EOF"
    );
}
