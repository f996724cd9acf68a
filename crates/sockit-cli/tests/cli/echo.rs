//! Tests of `sockit echo-server`: real clients (the slides' Python client, std sockets)
//! on loopback, every socket with a timeout, every server killed by PID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    self, Server, bin, no_dns, pattern, run_with_input, server_stderr, sockit, sockit_server,
    sockit_server_stderr, spawn_listening,
};

const T: Duration = Duration::from_secs(5);

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, T).expect("connect");
    s.set_read_timeout(Some(T)).unwrap();
    s.set_write_timeout(Some(T)).unwrap();
    s
}

fn udp(addr: SocketAddr) -> UdpSocket {
    let bind = if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let s = UdpSocket::bind(bind).expect("bind udp");
    s.set_read_timeout(Some(T)).unwrap();
    s.connect(addr).unwrap();
    s
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    got
}

/// `sockit echo-server ARGS…` run in the folder `dir` (stdin piped and kept open).
fn echo_server_in(dir: &Path, args: &[&str]) -> Server {
    let mut cmd = sockit(args);
    cmd.current_dir(dir).stdin(Stdio::piped());
    common::spawn_listening(&mut cmd)
}

/// Asserts the folder `dir` holds no file (an abstract socket name made none).
#[track_caller]
fn assert_no_file_in(dir: &Path) {
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "a file was created"
    );
}

#[test]
fn slides_python_client_gets_hello_back() {
    let srv = sockit_server(&["echo-server", "127.0.0.1:0"]);
    let out = run_with_input(
        common::python3()
            .arg(common::seed("echo_client.py"))
            .arg("127.0.0.1")
            .arg(srv.port.to_string()),
        b"hello\n",
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Received b'hello'\n");
}

#[test]
fn listening_line_first_and_default_words() {
    let srv = sockit_server(&["echo-server", "127.0.0.1", "0"]);
    assert_eq!(srv.host, "127.0.0.1");
    assert_ne!(srv.port, 0);
    let mut c = tcp(srv.addr());
    assert_eq!(echo_once(&mut c, b"x"), b"x");
}

#[test]
fn ipv6_loopback() {
    let srv = sockit_server(&["echo-server", "[::1]:0"]);
    assert!(
        srv.first_line.starts_with("listening ::1 "),
        "{}",
        srv.first_line
    );
    let mut c = tcp(srv.addr());
    assert_eq!(echo_once(&mut c, b"six"), b"six");
}

#[test]
fn tcp_32_mib_round_trip_is_byte_identical() {
    let srv = sockit_server(&["echo-server", "127.0.0.1:0"]);
    let data = pattern(32 << 20, 7);
    let mut w = tcp(srv.addr());
    let mut r = w.try_clone().unwrap();
    let to_send = data.clone();
    // The client writes and reads at the same time (writing everything first would
    // deadlock on the socket buffers, with any echo server).
    let writer = std::thread::spawn(move || {
        for chunk in to_send.chunks(256 * 1024) {
            w.write_all(chunk).unwrap();
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(data.len());
    r.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echoed bytes differ");
}

#[test]
fn udp_datagrams_come_back_whole_and_zero_length_stops_nothing() {
    let srv = sockit_server(&["echo-server", "-u", "127.0.0.1:0"]);
    let c = udp(srv.addr());
    let mut buf = vec![0u8; 70_000];
    for (i, n) in [9_000usize, 65_507, 0, 1, 0, 64].into_iter().enumerate() {
        let msg = pattern(n, i as u64);
        c.send(&msg).unwrap();
        let got = c.recv(&mut buf).unwrap();
        assert_eq!(got, n, "datagram of {n} bytes");
        assert!(buf[..got] == msg[..]);
    }
}

#[test]
fn udp_ipv6_largest_datagram() {
    let srv = sockit_server(&["echo-server", "-u", "[::1]:0"]);
    let c = udp(srv.addr());
    let msg = pattern(65_527, 3);
    c.send(&msg).unwrap();
    let mut buf = vec![0u8; 70_000];
    assert_eq!(c.recv(&mut buf).unwrap(), 65_527);
    assert!(buf[..65_527] == msg[..]);
}

#[test]
fn udp_two_clients_each_get_their_own_datagrams() {
    let srv = sockit_server(&["echo-server", "-u", "127.0.0.1:0"]);
    let addr = srv.addr();
    let clients: Vec<_> = (0..2u8)
        .map(|id| {
            std::thread::spawn(move || {
                let c = udp(addr);
                let mut buf = [0u8; 64];
                for i in 0..200u32 {
                    let msg = format!("client {id} message {i}");
                    c.send(msg.as_bytes()).unwrap();
                    let n = c.recv(&mut buf).unwrap();
                    assert_eq!(&buf[..n], msg.as_bytes());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn tcp_and_udp_on_one_port() {
    let srv = sockit_server(&["echo-server", "--tcp", "--udp", "127.0.0.1:0"]);
    assert!(srv.first_line.ends_with(" tcp"), "{}", srv.first_line);
    let second = srv.next_line(T).expect("udp listening line");
    assert_eq!(second, format!("listening 127.0.0.1 {} udp", srv.port));
    let mut t = tcp(srv.addr());
    assert_eq!(echo_once(&mut t, b"tcp"), b"tcp");
    let u = udp(srv.addr());
    u.send(b"udp").unwrap();
    let mut buf = [0u8; 8];
    let n = u.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"udp");
}

#[test]
fn flooding_client_that_never_reads_does_not_stall_another() {
    let srv = sockit_server(&["echo-server", "127.0.0.1:0", "--threads", "1"]);
    let addr = srv.addr();
    let mut flood = tcp(addr);
    flood
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let flooder = std::thread::spawn(move || {
        let chunk = vec![b'f'; 64 * 1024];
        let mut sent = 0usize;
        // Writes until the buffers on both sides are full (a write times out), bounded.
        while sent < (256 << 20) && flood.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        (flood, sent)
    });
    // The other client comes once the flood has filled every buffer (its write timed
    // out): the server's one thread then holds a client it cannot write to.
    let (_flood, sent) = flooder.join().unwrap();
    assert!(sent > 0);
    let started = Instant::now();
    let mut other = tcp(addr);
    // A stalled server would never answer; 6 s is slack for a loaded machine.
    other
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    assert_eq!(echo_once(&mut other, b"still served"), b"still served");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[test]
fn emfile_pauses_accepting_then_serves_again() {
    common::require_peer!("prlimit");
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=40:40")
        .arg(common::bin())
        .args(["echo-server", "127.0.0.1:0", "--threads", "1", "-v"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut srv = common::spawn_listening(&mut cmd);
    let stderr = srv.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // More connections than descriptors: the kernel completes every handshake (backlog),
    // the server accepts until EMFILE and then pauses.
    let mut held: Vec<TcpStream> = (0..60).map(|_| tcp(srv.addr())).collect();
    let deadline = Instant::now() + T;
    let mut paused = false;
    while !paused && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            paused = l.contains("Too many open files") && l.contains("paused");
        }
    }
    assert!(paused, "no EMFILE pause reported");
    // It neither exits nor spins while paused.
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    let pid = srv.child.id();
    let before = cpu(pid);
    std::thread::sleep(Duration::from_millis(500));
    let used_ticks = cpu(pid) - before;
    assert!(
        used_ticks < 25,
        "server spun while paused: {used_ticks} ticks in 0.5 s"
    );
    assert!(srv.child.try_wait().unwrap().is_none(), "server exited");
    // An early (accepted) connection is still served.
    assert_eq!(echo_once(&mut held[0], b"early"), b"early");
    held.clear();
    // Once the excess connections are gone, a new client is served again.
    let mut ok = false;
    let deadline = Instant::now() + T;
    while !ok && Instant::now() < deadline {
        let mut c = tcp(srv.addr());
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        ok = c.write_all(b"again").is_ok() && {
            let mut got = [0u8; 5];
            c.read_exact(&mut got).is_ok() && &got == b"again"
        };
    }
    assert!(ok, "not served again after EMFILE");
}

#[test]
fn max_conns_closes_the_extra_connection_at_once() {
    let mut srv = common::sockit_server_stderr(&[
        "echo-server",
        "127.0.0.1:0",
        "--max-conns",
        "1",
        "-v",
        "--drain",
        "1",
    ]);
    let mut first = tcp(srv.addr());
    assert_eq!(echo_once(&mut first, b"one"), b"one");
    let mut second = tcp(srv.addr());
    let mut buf = [0u8; 4];
    // Closed by the server at once: EOF (or a reset), never an echo.
    let _ = second.write_all(b"two");
    match second.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("extra connection got {n} bytes"),
    }
    assert_eq!(echo_once(&mut first, b"still"), b"still");
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let err = common::server_stderr(&mut srv);
    assert!(
        err.contains("refused") && err.contains("--max-conns"),
        "{err}"
    );
}

#[test]
fn idle_timeout_closes_a_silent_connection() {
    let _serial = common::serial();
    let srv = sockit_server(&["echo-server", "127.0.0.1:0", "--idle-timeout", "0.3"]);
    let mut c = tcp(srv.addr());
    assert_eq!(echo_once(&mut c, b"a"), b"a");
    let started = Instant::now();
    let mut buf = [0u8; 1];
    let n = c.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0);
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
}

#[test]
fn unix_stream_echo_and_socket_file_removed_on_sigterm() {
    let dir = common::temp_dir("echo-us");
    let path = dir.join("echo.sock");
    let p = path.to_str().unwrap();
    let mut srv = sockit_server(&["echo-server", "--drain", "1", "--unix", p]);
    assert_eq!(srv.first_line, format!("listening unix {p}"));
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"over unix").unwrap();
    let mut got = [0u8; 9];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"over unix");
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    assert!(!path.exists(), "socket file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_datagram_echo_to_a_bound_sender() {
    let dir = common::temp_dir("echo-ud");
    let path = dir.join("echo.sock");
    let p = path.to_str().unwrap();
    let mut srv = sockit_server(&["echo-server", "-u", "--unix", p]);
    let me = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    me.set_read_timeout(Some(T)).unwrap();
    me.connect(&path).unwrap();
    let mut buf = vec![0u8; 70_000];
    for n in [5usize, 0, 60_000] {
        let msg = pattern(n, n as u64);
        me.send(&msg).unwrap();
        assert_eq!(me.recv(&mut buf).unwrap(), n);
        assert!(buf[..n] == msg[..]);
    }
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_datagrams_past_64_kib_come_back_whole_and_longer_than_the_limit_are_reported() {
    // Regression: Unix datagrams were cut at 65,536 bytes without a word.
    let dir = common::temp_dir("echo-udbig");
    let path = dir.join("echo.sock");
    let p = path.to_str().unwrap();
    let mut srv = sockit_server_stderr(&["echo-server", "-u", "-v", "--unix", p]);
    let me = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    me.set_read_timeout(Some(T)).unwrap();
    me.connect(&path).unwrap();
    // Room to send 300,000 bytes (the kernel doubles it, up to twice wmem_max).
    socket2::SockRef::from(&me)
        .set_send_buffer_size(400_000)
        .unwrap();
    socket2::SockRef::from(&me)
        .set_recv_buffer_size(400_000)
        .unwrap();
    let mut buf = vec![0u8; 400_000];
    for n in [65_537usize, 100_000, 212_992] {
        let msg = pattern(n, n as u64);
        me.send(&msg).unwrap();
        assert_eq!(me.recv(&mut buf).unwrap(), n);
        assert!(buf[..n] == msg[..]);
    }
    let sent_big = me.send(&pattern(300_000, 1)).is_ok();
    if sent_big {
        me.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            me.recv(&mut buf).is_err(),
            "a datagram over the limit came back"
        );
        // The server handles datagrams in order: once a later one is echoed, the long one
        // was handled and reported (a slow machine may take longer than the 300 ms above).
        me.set_read_timeout(Some(T)).unwrap();
        me.send(b"after").unwrap();
        let n = me.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"after",
            "a datagram over the limit came back (late)"
        );
    }
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let err = server_stderr(&mut srv);
    if sent_big {
        assert!(err.contains("dropped 300000 bytes"), "{err}");
        assert!(err.contains("too_long"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_name_with_ipv4_and_ipv6_addresses_binds_ipv4() {
    // Regression: `echo-server localhost 0` bound ::1 where the hosts file lists both, so
    // clients of 127.0.0.1 were refused. no-dns's hosts file lists 127.0.0.1 and ::1.
    for cmd in [
        &["echo-server", "localhost", "0"][..],
        &["listen", "localhost", "0"][..],
    ] {
        let mut c = no_dns(bin(), cmd);
        c.stdin(Stdio::piped());
        // listen says `listening` on stderr: its stdout carries nothing but data.
        let mut srv = if cmd[0] == "listen" {
            common::spawn_listening_stderr(&mut c)
        } else {
            spawn_listening(&mut c)
        };
        assert_eq!(srv.host, "127.0.0.1", "{cmd:?}");
        let _ = srv.terminate(T);
    }
}

#[test]
fn unix_stale_socket_is_replaced_but_live_server_and_regular_file_are_not() {
    let dir = common::temp_dir("echo-stale");
    let path = dir.join("s.sock");
    let p = path.to_str().unwrap();
    // Stale: a socket file whose socket is gone (connect refused).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let srv = sockit_server(&["echo-server", "--unix", p]);
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"ok").unwrap();
    let mut got = [0u8; 2];
    c.read_exact(&mut got).unwrap();
    // Live: a second server on the same path fails and leaves the first one alone.
    let out = common::run(&mut sockit(&["echo-server", "--unix", p]), T);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Errno 98"));
    c.write_all(b"ok").unwrap();
    c.read_exact(&mut got).unwrap();
    drop(srv);
    // A regular file is never removed.
    let file = dir.join("plain");
    std::fs::write(&file, b"keep me").unwrap();
    let out = common::run(
        &mut sockit(&["echo-server", "--unix", file.to_str().unwrap()]),
        T,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_exits_0_and_sigint_exits_130() {
    let mut srv = sockit_server(&["echo-server", "--drain", "1", "127.0.0.1:0"]);
    let _c = tcp(srv.addr());
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let mut srv = sockit_server(&["echo-server", "127.0.0.1:0"]);
    Command::new("kill")
        .arg("-INT")
        .arg(srv.child.id().to_string())
        .status()
        .unwrap();
    assert_eq!(
        common::wait_exit(&mut srv, T).and_then(|s| s.code()),
        Some(130)
    );
}

#[test]
fn verbose_and_json_report_connections_and_bytes() {
    let mut srv = common::sockit_server_stderr(&["echo-server", "127.0.0.1:0", "--json", "-v"]);
    let mut c = tcp(srv.addr());
    assert_eq!(echo_once(&mut c, b"12345"), b"12345");
    drop(c);
    let accepted = srv.next_line(T).expect("accepted event");
    let v: serde_json::Value = serde_json::from_str(&accepted).unwrap();
    assert_eq!(v["event"], "accepted");
    let closed = srv.next_line(T).expect("closed event");
    let v: serde_json::Value = serde_json::from_str(&closed).unwrap();
    assert_eq!(v["event"], "closed");
    // One vocabulary: bytes sent to / received from the peer.
    assert_eq!(v["bytes_sent"], 5);
    assert_eq!(v["bytes_received"], 5);
    assert_eq!(v["reason"], "eof");
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let err = common::server_stderr(&mut srv);
    assert!(err.contains("5 bytes sent"), "{err}");
    assert!(err.contains("stopped: 1 sessions served"), "{err}");
}

#[test]
fn bad_input_is_a_clear_error() {
    for args in [
        &["echo-server", "127.0.0.1:70000"][..],
        &["echo-server", "--idle-timeout", "-1", "127.0.0.1:0"],
        &["echo-server", "-4", "[::1]:0"],
    ] {
        let out = common::run(&mut sockit(args), T);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
    // A port in use is an OS error (exit 1) with Python's text.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = common::run(&mut sockit(&["echo-server", "127.0.0.1", &port]), T);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[Errno 98] Address already in use"));
}

#[test]
fn task_engine_echoes_in_order_too() {
    let srv = sockit_server(&["echo-server", "127.0.0.1:0", "--engine", "tasks"]);
    let data = pattern(4 << 20, 11);
    let mut w = tcp(srv.addr());
    let mut r = w.try_clone().unwrap();
    let to_send = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&to_send).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == data);
}

// ------------------------------------------------------------ QA regressions (fix2)

/// The part of a usage error after the value, e.g. `not a number of seconds: "x"`.
fn usage_reason(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().next().unwrap_or_default().to_string();
    line.split_once("': ")
        .map_or(line.clone(), |(_, r)| r.to_string())
}

/// A unique Linux abstract name for this test run.
fn abstract_name(tag: &str) -> String {
    format!("@sockit-echo-{}-{tag}", std::process::id())
}

#[test]
fn unix_at_name_is_an_abstract_socket_not_a_file() {
    // Regression: `--unix @qa` created a file `./@qa` and abstract clients were refused.
    let dir = common::temp_dir("echo-abs");
    let name = abstract_name("abs");
    let mut srv = echo_server_in(&dir, &["echo-server", "--unix", &name]);
    assert_eq!(srv.first_line, format!("listening unix {name}"));
    assert_no_file_in(&dir);
    let out = run_with_input(&mut sockit(&["connect", "--unix", &name]), b"abstract", T);
    assert_eq!(out.stdout, b"abstract", "{out:?}");
    if common::require("socat") {
        let mut socat = Command::new("socat");
        socat.args(["-T", "5", "-", &format!("ABSTRACT-CONNECT:{}", &name[1..])]);
        let out = run_with_input(&mut socat, b"via socat", T);
        assert_eq!(out.stdout, b"via socat", "{out:?}");
    }
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_datagram_at_name_is_abstract_too() {
    // Regression: `-u --unix @name` must bind an abstract datagram socket, not a file.
    let dir = common::temp_dir("echo-absd");
    let name = abstract_name("absd");
    let mut srv = echo_server_in(&dir, &["echo-server", "-u", "--unix", &name]);
    assert_no_file_in(&dir);
    let out = run_with_input(&mut sockit(&["connect", "-u", "--unix", &name]), b"dg", T);
    assert_eq!(out.stdout, b"dg", "{out:?}");
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn huge_threads_and_max_conns_are_usage_errors() {
    // Regression: `--threads 99999999999` aborted (memory allocation failed, exit 134).
    for (flag, value) in [
        ("--threads", "99999999999"),
        ("--threads", "1025"),
        ("--max-conns", "99999999999999999"),
        ("--max-conns", "-1"),
    ] {
        let arg = format!("{flag}={value}");
        let out = common::run(&mut sockit(&["echo-server", &arg, "127.0.0.1:0"]), T);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

#[test]
fn unix_datagram_echo_answers_sockit_connect_autobound_client() {
    // Regression: datagrams from an autobound (abstract-named) sender were dropped as unbound.
    let dir = common::temp_dir("echo-auto");
    let path = dir.join("echo.sock");
    let p = path.to_str().unwrap();
    let mut srv = sockit_server(&["echo-server", "-u", "--unix", p]);
    let out = run_with_input(&mut sockit(&["connect", "-u", "--unix", p]), b"dg", T);
    assert_eq!(out.stdout, b"dg", "{out:?}");
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_path_errors_match_listen() {
    // Regression: a too-long path or a regular file was worded (and exited) differently from listen.
    let dir = common::temp_dir("echo-perr");
    let long = dir.join("a".repeat(200));
    let file = dir.join("plain");
    std::fs::write(&file, b"keep me").unwrap();
    for path in [long.to_str().unwrap(), file.to_str().unwrap()] {
        for udp in [false, true] {
            let mut echo = vec!["echo-server", "--unix", path];
            let mut listen = vec!["listen", "--unix", path];
            if udp {
                echo.push("-u");
                listen.push("-u");
            }
            let e = common::run(&mut sockit(&echo), T);
            let l = common::run(&mut sockit(&listen), T);
            assert_eq!(e.status.code(), l.status.code(), "{echo:?}: {e:?} vs {l:?}");
            // the same text, both naming the path they tried to bind
            let want = String::from_utf8_lossy(&l.stderr);
            assert!(want.contains(path), "{want}");
            assert_eq!(String::from_utf8_lossy(&e.stderr), want, "{echo:?}");
            assert_eq!(e.status.code(), Some(1), "{echo:?}: {e:?}");
        }
    }
    assert!(
        String::from_utf8_lossy(
            &common::run(
                &mut sockit(&["echo-server", "--unix", long.to_str().unwrap()]),
                T
            )
            .stderr
        )
        .contains("AF_UNIX path too long")
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_timeout_reads_seconds_as_connect_does() {
    // Regression: `--idle-timeout 1e9` was refused with a wrong reason; bad values worded apart from connect.
    // Regression: `--idle-timeout -1` said "seconds must be 0-1e9" though 0 is refused too,
    // and `--idle-timeout -1` (a separate word) was clap's "unexpected argument".
    let srv = sockit_server(&["echo-server", "--idle-timeout", "1e9", "127.0.0.1:0"]);
    let mut c = tcp(srv.addr());
    assert_eq!(echo_once(&mut c, b"long idle"), b"long idle");
    for bad in ["x", "1e10", "inf", "1e300", "0", "-1", "NaN"] {
        let e = common::run(
            &mut sockit(&["echo-server", "--idle-timeout", bad, "127.0.0.1:0"]),
            T,
        );
        assert_eq!(e.status.code(), Some(2), "{bad}: {e:?}");
        // one message with the flag, the value as typed and the real range
        let first = String::from_utf8_lossy(&e.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            first.contains(&format!("'{bad}' for '--idle-timeout <SECS>'")),
            "{first}"
        );
        assert_eq!(
            usage_reason(&e.stderr),
            "must be more than 0 and at most 1e9 seconds (leave -i out for no limit)",
            "{bad}"
        );
        // connect's -i has the same upper limit (it takes 0 too): clap refuses it before any connect.
        if bad != "0" && bad != "-1" {
            let c = common::run(&mut sockit(&["connect", "-i", bad, "127.0.0.1", "9"]), T);
            assert_eq!(c.status.code(), Some(2), "{bad}: {c:?}");
        }
    }
}

#[test]
fn events_name_peers_as_listen_does() {
    // Regression: events wrote `127.0.0.1:PORT` / "peer" instead of listen's `HOST PORT` / peer_host+peer_port.
    let mut srv = common::sockit_server_stderr(&["echo-server", "127.0.0.1:0", "--json", "-v"]);
    let mut c = tcp(srv.addr());
    let me = c.local_addr().unwrap();
    assert_eq!(echo_once(&mut c, b"x"), b"x");
    drop(c);
    for want in ["accepted", "closed"] {
        let line = srv.next_line(T).expect("event");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], want);
        assert_eq!(v["peer_host"], "127.0.0.1", "{line}");
        assert_eq!(v["peer_port"], me.port(), "{line}");
        assert!(v.get("peer").is_none(), "{line}");
    }
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let err = common::server_stderr(&mut srv);
    assert!(
        err.contains(&format!("#1 accepted 127.0.0.1 {} (tcp", me.port())),
        "{err}"
    );
}

#[test]
fn closed_stderr_does_not_panic() {
    // Regression: eprintln! panicked (exit 101) when stderr was a closed pipe.
    let mut srv = common::sockit_server_stderr(&["echo-server", "-v", "127.0.0.1:0"]);
    drop(srv.child.stderr.take());
    let mut c = tcp(srv.addr());
    let me = c.local_addr().unwrap().port();
    assert_eq!(echo_once(&mut c, b"x"), b"x");
    drop(c);
    // The server closes the connection after it wrote its `closed` event to the closed
    // stderr.
    common::wait_tcp_closed(srv.port, me, T);
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn bind_errors_name_the_address() {
    // Regression: `bind: [Errno 98] Address already in use` and `bind: [Errno 2] No such
    // file or directory` did not say which address or path.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = common::run(&mut sockit(&["echo-server", &addr]), T);
    common::assert_fails_with(
        &out,
        1,
        &format!("sockit: bind {addr}: [Errno 98] Address already in use"),
    );
    let dir = common::temp_dir("echo-bind");
    let path = dir.join("missing").join("s");
    let path = path.to_str().unwrap();
    let out = common::run(&mut sockit(&["echo-server", "--unix", path]), T);
    common::assert_fails_with(
        &out,
        1,
        &format!("sockit: bind {path}: [Errno 2] No such file or directory"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_reports_the_error_that_ends_it_as_json() {
    // Regression: `echo-server --json` on a port in use printed only plain text.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = common::run(
        &mut sockit(&["echo-server", "--json", "127.0.0.1", &port]),
        T,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(v["event"], "error");
    assert_eq!(v["code"], 98);
    // op is the call; the address is in the message
    assert_eq!(v["op"], "bind");
    assert_eq!(
        v["message"],
        format!("bind 127.0.0.1:{port}: [Errno 98] Address already in use")
    );
}

#[test]
fn sighup_ends_with_129_and_removes_the_socket_file() {
    // Regression: SIGHUP (the terminal closed) killed echo-server, forward and listen with
    // the default action, leaving their Unix socket file behind.
    let dir = crate::common::temp_dir("hup");
    for (i, cmd) in [
        &["echo-server", "--unix"][..],
        &["forward"][..],
        &["listen", "-k", "--unix"][..],
    ]
    .iter()
    .enumerate()
    {
        let path = dir.join(format!("s{i}.sock"));
        let p = path.to_string_lossy().into_owned();
        let mut args = cmd.to_vec();
        let target;
        if args[0] == "forward" {
            target = format!("unix:{p}");
            args.extend_from_slice(&[&target, "127.0.0.1:9"]);
        } else {
            args.push(&p);
        }
        let mut srv = if args[0] == "listen" {
            common::sockit_listen(&args[1..])
        } else {
            sockit_server(&args)
        };
        assert!(path.exists(), "{args:?}");
        let st = srv.signal("HUP", T);
        assert_eq!(st.and_then(|s| s.code()), Some(129), "{args:?}");
        assert!(!path.exists(), "{args:?}: socket file left behind");
    }
    let _ = std::fs::remove_dir_all(dir);
}

// Regression: echo-server never reported `stopping` (forward, proxy, listen -k do).
#[test]
fn sigterm_reports_stopping_with_the_open_sessions() {
    let t = Duration::from_secs(10);
    let server = sockit_server(&["echo-server", "--json", "--drain", "0.3", "127.0.0.1:0"]);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    c.set_read_timeout(Some(t)).unwrap();
    c.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    c.read_exact(&mut buf).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let mut events = Vec::new();
    while let Some(line) = server.next_line(t) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if v["event"] == "stopping" {
            assert_eq!(v["open"].as_u64(), Some(1), "{line}");
            assert!(v["drain_us"].as_u64().is_some_and(|d| d > 0), "{line}");
        }
        events.push(v["event"].as_str().unwrap_or("").to_string());
        if v["event"] == "stopped" {
            break;
        }
    }
    assert_eq!(events, ["accepted", "stopping", "closed", "stopped"]);
}

/// utime + stime of process `pid` in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_name.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn busy_poll_echoes_tcp_and_udp_and_sleeps_when_idle() {
    // --busy-poll: the same echoes (TCP in order, UDP whole), and a server whose clients
    // went quiet stops polling (a busy loop would burn ~100 ticks a second).
    let mut srv = sockit_server(&[
        "echo-server",
        "--tcp",
        "--udp",
        "--busy-poll",
        "200",
        "127.0.0.1:0",
    ]);
    let mut s = tcp(srv.addr());
    for i in 0..200u32 {
        let msg = pattern(64 + i as usize, u64::from(i));
        assert_eq!(echo_once(&mut s, &msg), msg, "round trip {i}");
    }
    let u = udp(srv.addr());
    let mut buf = [0u8; 2048];
    for i in 0..50u32 {
        let msg = pattern(100 + i as usize, u64::from(i) + 7);
        u.send(&msg).unwrap();
        let n = u.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &msg[..], "datagram {i}");
    }
    let pid = srv.child.id();
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "an idle --busy-poll server used {used} ticks in 1 s"
    );
    drop(s);
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn busy_poll_out_of_range_is_a_usage_error() {
    for value in ["1000001", "-1", "x"] {
        let arg = format!("--busy-poll={value}");
        let out = common::run(&mut sockit(&["echo-server", &arg, "127.0.0.1:0"]), T);
        assert_eq!(out.status.code(), Some(2), "{value}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--busy-poll"),
            "{out:?}"
        );
    }
    // Where it would do nothing (QA): the tasks engine and Unix sockets.
    let dir = common::temp_dir("echo-bp");
    let sock = dir.join("e.sock");
    let sock = sock.to_str().unwrap();
    for args in [
        vec![
            "echo-server",
            "--busy-poll",
            "50",
            "--engine",
            "tasks",
            "127.0.0.1:0",
        ],
        vec!["echo-server", "--busy-poll", "50", "--unix", sock],
        vec!["echo-server", "--busy-poll", "50", "-u", "--unix", sock],
    ] {
        let out = common::run(&mut sockit(&args), T);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--busy-poll: the loop engine's TCP and UDP only"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_datagrams_in_one_batch_unnamed_sender_dropped_the_rest_answered() {
    // The batched Unix datagram echo (recvmmsg/sendmmsg): a datagram from an unnamed
    // sender, queued between two of a named client, is reported dropped and splits the
    // batch; both of the client's come back, in order.
    let dir = common::temp_dir("echo-udbatch");
    let path = dir.join("echo.sock");
    let p = path.to_str().unwrap();
    let mut srv = sockit_server_stderr(&["echo-server", "-u", "-v", "--unix", p]);
    let me = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    me.set_read_timeout(Some(T)).unwrap();
    let unnamed = UnixDatagram::unbound().unwrap();
    for round in 0..3u8 {
        me.send_to(&[b'a', round], &path).unwrap();
        unnamed.send_to(b"from nobody", &path).unwrap();
        me.send_to(&[b'b', round], &path).unwrap();
        let mut buf = [0u8; 64];
        let n = me.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[b'a', round]);
        let n = me.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[b'b', round]);
    }
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    let err = server_stderr(&mut srv);
    assert!(err.contains("unbound_sender"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn task_engine_udp_datagrams_come_back_whole() {
    // The tasks engine's UDP runs the batched loop Unix datagrams share.
    let srv = sockit_server(&["echo-server", "-u", "--engine", "tasks", "127.0.0.1:0"]);
    let u = udp(srv.addr());
    let mut buf = vec![0u8; 70_000];
    for n in [0usize, 1, 1500, 65_507] {
        let msg = pattern(n, n as u64);
        u.send(&msg).unwrap();
        let got = u.recv(&mut buf).unwrap();
        assert!(buf[..got] == msg[..], "datagram of {n} bytes");
    }
}
