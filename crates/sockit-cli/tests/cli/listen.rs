//! Tests of `sockit listen`: one peer and -k, TCP, UDP and Unix, interop with nc, ncat,
//! socat and the slides' Python client, stale sockets, address reuse, timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const T: Duration = Duration::from_secs(10);

fn stderr_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sockit listen ARGS…` with its stdin piped (kept open); its `listening` line and events
/// on stderr.
fn listen(args: &[&str]) -> Server {
    sockit_listen(args)
}

/// Writes `data` to the server's stdin, then closes it when `close` is set.
fn feed(server: &mut Server, data: &[u8], close: bool) {
    if let Some(sin) = server.child.stdin.as_mut() {
        sin.write_all(data).expect("write to sockit stdin");
        sin.flush().expect("flush");
    }
    if close {
        drop(server.child.stdin.take());
    }
}

/// Collects the server's stdout lines (after `listening`) until `n` arrived or `limit`.
fn lines(server: &Server, n: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match server.next_line(left) {
            Some(l) => out.push(l),
            None => break,
        }
    }
    out
}

fn text_lines(tag: &str, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{tag} line {i}\n").into_bytes())
        .collect()
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// `sockit listen ARGS…` that is expected to fail: no stdin, at most `T`.
fn listen_fails(args: &[&str]) -> std::process::Output {
    let mut full = vec!["listen"];
    full.extend_from_slice(args);
    run(&mut sockit(&full), T)
}

/// `sockit listen ARGS…` with one TCP client that sends `data` and half-closes while
/// listen's stdin ends; waits for listen to exit. Its stderr and the client's port.
fn one_client_session(args: &[&str], data: &[u8]) -> (String, u16) {
    let mut server = listen(args);
    let mut c = tcp(server.addr());
    let local = c.local_addr().unwrap();
    c.write_all(data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    feed(&mut server, b"", true);
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    wait_exit(&mut server, T).expect("exits");
    (server_stderr(&mut server), local.port())
}

// ---- TCP, one peer ----

#[test]
fn listen_tcp_one_peer_both_ways_and_half_close() {
    let mut server = listen(&["127.0.0.1", "0"]);
    let mut c = tcp(server.addr());
    c.write_all(b"from client\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(lines(&server, 1, T), vec!["from client"]);
    feed(&mut server, b"from sockit\n", true);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"from sockit\n");
    let st = wait_exit(&mut server, T).expect("listen exits when both sides ended");
    assert!(st.success(), "{}", server_stderr(&mut server));
}

#[test]
fn listen_interop_with_nc_ncat_socat_python_clients() {
    let clients: [(&str, Vec<String>); 4] = [
        (
            "nc",
            vec!["nc".into(), "-N".into(), "127.0.0.1".into(), "PORT".into()],
        ),
        (
            "ncat",
            vec!["ncat".into(), "127.0.0.1".into(), "PORT".into()],
        ),
        (
            "socat",
            vec!["socat".into(), "-".into(), "TCP:127.0.0.1:PORT".into()],
        ),
        (
            "python3",
            vec![
                "python3".into(),
                seed("echo_client.py").display().to_string(),
                "127.0.0.1".into(),
                "PORT".into(),
            ],
        ),
    ];
    for (name, argv) in clients {
        if !require(name) {
            continue;
        }
        let mut server = listen(&["127.0.0.1", "0"]);
        let port = server.port.to_string();
        let argv: Vec<String> = argv.iter().map(|a| a.replace("PORT", &port)).collect();
        let (to_client, from_client): (Vec<u8>, Vec<u8>) = if name == "python3" {
            // The slides' client sends a line and prints what comes back.
            (b"hello".to_vec(), b"hello\n".to_vec())
        } else {
            (text_lines("to", 300), text_lines(name, 300))
        };
        feed(&mut server, &to_client, true);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let out = run_with_input(&mut cmd, &from_client, T);
        assert!(out.status.success(), "{name}: {}", stderr_text(&out));
        let want_lines: Vec<String> = if name == "python3" {
            vec!["hello".into()]
        } else {
            String::from_utf8(from_client.clone())
                .unwrap()
                .lines()
                .map(String::from)
                .collect()
        };
        let got = lines(&server, want_lines.len(), T);
        assert_eq!(got.len(), want_lines.len(), "{name}: lines sockit printed");
        assert!(got == want_lines, "{name}: sockit printed other lines");
        if name == "python3" {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "Received b'hello'\n");
        } else {
            assert_bytes_eq(&out.stdout, &to_client, &format!("{name} received"));
        }
        let st = wait_exit(&mut server, T).expect("listen exits after the client");
        assert!(st.success(), "{name}: {}", server_stderr(&mut server));
    }
}

#[test]
fn listen_udp_interop_with_nc_ncat_socat_python() {
    let clients: [(&str, &[&str]); 4] = [
        ("nc", &["nc", "-u", "127.0.0.1", "PORT"]),
        ("ncat", &["ncat", "-u", "127.0.0.1", "PORT"]),
        ("socat", &["socat", "-", "UDP:127.0.0.1:PORT"]),
        ("python3", &["python3", "-c", PY_UDP_CLIENT, "PORT"]),
    ];
    for (name, argv) in clients {
        if !require(name) {
            continue;
        }
        let mut server = listen(&["-u", "127.0.0.1", "0"]);
        let port = server.port.to_string();
        let argv: Vec<String> = argv.iter().map(|a| a.replace("PORT", &port)).collect();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::piped());
        let mut peer = Peer::spawn(&mut cmd, None);
        peer.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(format!("datagram from {name}\n").as_bytes())
            .unwrap();
        let got = lines(&server, 1, T);
        assert_eq!(got, vec![format!("datagram from {name}")], "{name}");
        feed(&mut server, b"answer from sockit\n", false);
        let answer = peer.wait_stdout(19, Duration::from_secs(5));
        assert_eq!(answer, b"answer from sockit\n", "{name} got other bytes");
    }
}

/// A UDP client: sends its stdin lines as datagrams, prints what comes back.
const PY_UDP_CLIENT: &str = r#"
import socket, sys, threading
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", int(sys.argv[1])))
def rx():
    while True:
        d = s.recv(65536)
        sys.stdout.buffer.write(d); sys.stdout.flush()
threading.Thread(target=rx, daemon=True).start()
for line in sys.stdin.buffer:
    s.send(line)
import time; time.sleep(10)
"#;

#[test]
fn listen_udp_k_hears_every_peer_and_answers_the_most_recent() {
    let mut server = listen(&["-u", "-k", "127.0.0.1", "0"]);
    let (a, b) = (udp_client(), udp_client());
    a.send_to(b"from a\n", server.addr()).unwrap();
    assert_eq!(lines(&server, 1, T), vec!["from a"]);
    b.send_to(b"from b\n", server.addr()).unwrap();
    assert_eq!(lines(&server, 1, T), vec!["from b"]);
    feed(&mut server, b"to the latest\n", false);
    let mut buf = [0u8; 64];
    let (n, _) = b
        .recv_from(&mut buf)
        .expect("b (most recent) gets the line");
    assert_eq!(&buf[..n], b"to the latest\n");
    a.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        a.recv_from(&mut buf).is_err(),
        "a is not the most recent sender"
    );
    // A 9,000-byte datagram is printed whole (never cut at 8,192).
    let mut big = vec![b'x'; 8_999];
    big.push(b'\n');
    a.send_to(&big, server.addr()).unwrap();
    let got = lines(&server, 1, T);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), 8_999, "datagram cut");
}

#[test]
fn listen_udp_one_peer_follows_the_first_sender() {
    let mut server = listen(&["-u", "127.0.0.1", "0"]);
    let (a, b) = (udp_client(), udp_client());
    a.send_to(b"first\n", server.addr()).unwrap();
    assert_eq!(lines(&server, 1, T), vec!["first"]);
    b.send_to(b"second peer\n", server.addr()).unwrap();
    a.send_to(b"again\n", server.addr()).unwrap();
    assert_eq!(
        lines(&server, 1, T),
        vec!["again"],
        "only the first peer is followed"
    );
    feed(&mut server, b"reply\n", false);
    let mut buf = [0u8; 64];
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"reply\n");
}

// ---- TCP -k and --broker ----

#[test]
fn listen_k_serves_two_clients_at_once_and_survives_one_leaving() {
    let mut server = listen(&["-k", "127.0.0.1", "0"]);
    let mut a = tcp(server.addr());
    let mut b = tcp(server.addr());
    a.write_all(b"hello from a\n").unwrap();
    b.write_all(b"hello from b\n").unwrap();
    let mut got = lines(&server, 2, T);
    got.sort();
    assert_eq!(got, vec!["hello from a", "hello from b"]);
    feed(&mut server, b"to everyone\n", false);
    for s in [&mut a, &mut b] {
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"to everyone\n");
    }
    let a_port = a.local_addr().unwrap().port();
    drop(a);
    // The listener has closed a's connection: it has seen a leave.
    wait_tcp_closed(server.port, a_port, T);
    assert!(server.child.try_wait().unwrap().is_none(), "listener ended");
    b.write_all(b"b still here\n").unwrap();
    assert_eq!(lines(&server, 1, T), vec!["b still here"]);
    let mut c = tcp(server.addr());
    c.write_all(b"new client c\n").unwrap();
    assert_eq!(lines(&server, 1, T), vec!["new client c"]);
}

#[test]
fn broker_relays_between_clients() {
    let server = listen(&["--broker", "127.0.0.1", "0"]);
    // A client is registered once it has been heard. b connects only then: connect(2)
    // returns before the broker accepts, so had b connected first, "a here" might be
    // relayed before b was accepted (or not), depending on the machine's speed.
    let mut a = tcp(server.addr());
    a.write_all(b"a here\n").unwrap();
    assert_eq!(lines(&server, 1, T), vec!["a here"]);
    let mut b = tcp(server.addr());
    b.write_all(b"b here\n").unwrap();
    assert_eq!(lines(&server, 1, T), vec!["b here"]);
    let mut buf = [0u8; 7];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"b here\n");
    a.write_all(b"chat from a\n").unwrap();
    // b gets what a says after b joined (not what a said before).
    let mut buf = [0u8; 12];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"chat from a\n");
}

// ---- Unix ----

#[test]
fn unix_stale_live_and_regular_file() {
    let dir = temp_dir("listen-unix");
    let path = dir.join("s.sock");
    let p = path.to_str().unwrap();
    // A server killed with SIGKILL leaves its socket file behind.
    let mut dead = listen(&["--unix", p]);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    assert!(path.exists(), "the killed server left its socket file");
    // Stale: a new listener starts.
    let live = listen(&["--unix", p]);
    assert_eq!(live.first_line, format!("listening unix {p}"));
    // Live: a second listener fails clearly; the first keeps working.
    let out = listen_fails(&["--unix", p]);
    assert_fails_with(&out, 1, "[Errno 98]");
    let mut c = UnixStream::connect(&path).expect("the live listener still accepts");
    c.write_all(b"still alive\n").unwrap();
    assert_eq!(lines(&live, 1, T), vec!["still alive"]);
    drop(c);
    drop(live);
    // A regular file: refused, untouched.
    let file = dir.join("regular");
    std::fs::write(&file, b"keep me").unwrap();
    let out = listen_fails(&["--unix", file.to_str().unwrap()]);
    assert_fails_with(&out, 1, "not a socket");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_socket_file_removed_on_sigterm() {
    let dir = temp_dir("listen-term");
    let path = dir.join("t.sock");
    let mut server = listen(&["-k", "--unix", path.to_str().unwrap()]);
    assert!(path.exists());
    let st = server.terminate(T).expect("stops on SIGTERM");
    assert!(st.success(), "SIGTERM ends with 0");
    assert!(!path.exists(), "socket file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_abstract_name_with_nc() {
    require_peer!("nc");
    let name = format!("@sockit-test-{}", std::process::id());
    let server = listen(&["--unix", &name]);
    assert_eq!(server.first_line, format!("listening unix {name}"));
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "-U", &name]);
    let _peer = Peer::spawn(&mut cmd, Some(b"abstract hello\n".to_vec()));
    assert_eq!(lines(&server, 1, T), vec!["abstract hello"]);
}

#[test]
fn unix_datagram_listen_answers_a_bound_peer() {
    require_peer!("nc");
    let dir = temp_dir("listen-dgram");
    let path = dir.join("d.sock");
    let mut server = listen(&["-u", "--unix", path.to_str().unwrap()]);
    let mut cmd = Command::new("nc");
    cmd.args(["-uU", path.to_str().unwrap()])
        .stdin(Stdio::piped());
    let mut peer = Peer::spawn(&mut cmd, None);
    peer.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"unix datagram\n")
        .unwrap();
    assert_eq!(lines(&server, 1, T), vec!["unix datagram"]);
    feed(&mut server, b"unix answer\n", false);
    assert_eq!(
        peer.wait_stdout(12, Duration::from_secs(5)),
        b"unix answer\n"
    );
    drop(peer);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_path_too_long() {
    let long = format!("/tmp/{}", "y".repeat(150));
    let out = listen_fails(&["--unix", &long]);
    assert_fails_with(&out, 1, "AF_UNIX path too long");
}

// ---- address reuse ----

#[test]
fn restart_binds_at_once_and_two_live_listeners_fail_98() {
    let mut first = listen(&["127.0.0.1", "0"]);
    let port = first.port.to_string();
    // A connection the server side closes first leaves TIME_WAIT on the port.
    let mut c = tcp(first.addr());
    c.write_all(b"x\n").unwrap();
    assert_eq!(lines(&first, 1, T), vec!["x"]);
    feed(&mut first, b"", true);
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    let _ = first.child.kill();
    let _ = first.child.wait();
    drop(c);
    let second = listen(&["127.0.0.1", &port]);
    assert_eq!(second.port.to_string(), port);
    let out = listen_fails(&["127.0.0.1", &port]);
    assert_fails_with(&out, 1, "[Errno 98] Address already in use");
}

#[test]
fn ipv6_listener_is_v6_only_and_prints_without_brackets() {
    if UdpSocket::bind("[::1]:0").is_err() {
        return;
    }
    let server = listen(&["-6", "0"]);
    assert!(
        server.first_line.starts_with("listening ::1 "),
        "{}",
        server.first_line
    );
    let mut c = tcp(server.addr());
    c.write_all(b"over v6\n").unwrap();
    assert_eq!(lines(&server, 1, T), vec!["over v6"]);
}

#[test]
fn dual_stack_needs_the_wildcard() {
    let out = listen_fails(&["--dual-stack", "::1", "0"]);
    assert_fails_with(&out, 2, "wildcard");
}

#[test]
fn dual_stack_in_own_network_namespace() {
    // `::` is a wildcard: only inside a namespace of our own (loopback only).
    require_peer!("unshare");
    require_peer!("ip");
    need("python3");
    let script = r#"
import socket, subprocess, sys, time
bin = sys.argv[1]
def attempt(args):
    p = subprocess.Popen([bin, "listen", "-k"] + args + ["0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stderr.readline().decode().split()
    port = int(line[2])
    res = []
    for fam, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(3)
        try:
            s.connect((host, port)); res.append("ok")
        except OSError as e:
            res.append("refused")
        s.close()
    p.kill(); p.wait()
    return line[1], res
print("dual", *attempt(["--dual-stack"]))
print("v6only", *attempt(["-6", "::"]))
"#;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-rn",
        "sh",
        "-c",
        "ip link set lo up && exec python3 -c \"$0\" \"$1\"",
    ])
    .arg(script)
    .arg(bin());
    let out = run(&mut cmd, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() && stderr_text(&out).contains("unshare") {
        eprintln!("skipping: no user namespaces here: {}", stderr_text(&out));
        return;
    }
    assert!(
        text.contains("dual :: ['ok', 'ok']"),
        "{text}{}",
        stderr_text(&out)
    );
    assert!(
        text.contains("v6only :: ['ok', 'refused']"),
        "{text}{}",
        stderr_text(&out)
    );
}

// ---- timing ----

#[test]
fn idle_timeout_ends_a_silent_peer() {
    let _serial = serial();
    let mut server = listen(&["-i", "1", "127.0.0.1", "0"]);
    let _c = tcp(server.addr());
    let t0 = Instant::now();
    let st = wait_exit(&mut server, T).expect("idle listener ends");
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(5), "{}", server_stderr(&mut server));
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_secs(3),
        "took {took:?}"
    );
}

#[test]
fn idle_timeout_with_k_closes_only_the_idle_client() {
    let _serial = serial();
    // -i 2 with a tick every 300 ms leaves the talker 1.7 s of slack on a loaded machine
    // (with -i 1 a late tick once got the talker closed too).
    let mut server = listen(&["-k", "-i", "2", "127.0.0.1", "0"]);
    let mut idle = tcp(server.addr());
    let mut talker = tcp(server.addr());
    let t0 = Instant::now();
    // The talker keeps talking every 300 ms for 3 s; the idle one says nothing.
    for i in 0..10 {
        talker.write_all(format!("tick {i}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut buf = [0u8; 8];
    // The idle client was closed (EOF), after at least 1.9 s.
    assert_eq!(idle.read(&mut buf).unwrap(), 0, "idle client not closed");
    assert!(t0.elapsed() >= Duration::from_millis(1900));
    talker.write_all(b"still served\n").unwrap();
    let got = lines(&server, 11, T);
    assert_eq!(
        got.last().map(String::as_str),
        Some("still served"),
        "{got:?}"
    );
    assert!(server.child.try_wait().unwrap().is_none(), "listener ended");
}

#[test]
fn verbose_events_and_json_on_stderr() {
    let (err, port) = one_client_session(&["-v", "127.0.0.1", "0"], b"abc");
    assert!(err.contains(&format!("accepted 127.0.0.1 {port}")), "{err}");
    assert!(err.contains("0 bytes sent, 3 bytes received"), "{err}");

    let (err, port) = one_client_session(&["--json", "127.0.0.1", "0"], b"abcd");
    let objs: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(objs[0]["event"], "accepted");
    assert_eq!(objs[0]["peer_port"], port);
    let last = objs.last().unwrap();
    assert_eq!(last["event"], "closed");
    assert_eq!(last["bytes_received"], 4);
}

#[test]
fn closed_stdout_ends_listen_k() {
    // `sockit listen -k … | head -c 20`: once head is gone, the next write fails with
    // EPIPE and the listener ends quietly with 0 instead of serving on blind.
    let port = free_port();
    let script = format!(
        "{} listen -k 127.0.0.1 {port} < /dev/null | head -c 20 > /dev/null; echo \"rc=${{PIPESTATUS[0]}}\"",
        bin().display()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]);
    let peer = Peer::spawn(&mut cmd, None);
    wait_listening(port, false);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    // Keep sending until the listener is gone (bounded).
    while Instant::now() < deadline {
        if c.write_all(&[b'z'; 4096]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        if !is_listening(port, false) {
            break;
        }
    }
    let out = peer.finish(T);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rc=0");
}

#[test]
fn family_and_numeric_flags() {
    // -4 with localhost needs no DNS (the hosts file has 127.0.0.1 localhost).
    let server = listen(&["-4", "localhost", "0"]);
    assert_eq!(server.host, "127.0.0.1");
    let out = run_with_input(
        &mut sockit(&[
            "connect",
            "-4",
            "-q",
            "0",
            "localhost",
            &server.port.to_string(),
        ]),
        b"four\n",
        T,
    );
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(lines(&server, 1, T), vec!["four"]);
    // -n refuses a name before any lookup: a gaierror, exit 3.
    let out = listen_fails(&["-n", "localhost", "0"]);
    assert_fails_with(&out, 3, "sockit: getaddrinfo localhost 0: [Errno -2]");
}

// ---- options checked before the listening line ----

#[test]
fn bad_options_and_log_files_fail_before_listening() {
    // Regression: listen printed `listening …` before checking --allow, and opened -x/-o
    // only when the first peer came (failing then, dropping the peer; -k died).
    let dir = temp_dir("listen-checks");
    let missing = dir.join("no/such/dir/f");
    let (dir_s, missing_s) = (dir.to_str().unwrap(), missing.to_str().unwrap());
    let cases: [(&[&str], i32, &str); 6] = [
        (&["--allow", "300.0.0.0/8", "0"], 2, "300.0.0.0/8"),
        (&["-x", dir_s, "0"], 1, "Is a directory"),
        (&["-k", "-x", dir_s, "0"], 1, "Is a directory"),
        (&["-o", missing_s, "0"], 1, "No such file or directory"),
        (&["-u", "-o", dir_s, "0"], 1, "Is a directory"),
        (
            &["-u", "0", "--exec", "no-such-sockit-prog"],
            2,
            "no-such-sockit-prog",
        ),
    ];
    for (args, code, want) in cases {
        let out = listen_fails(args);
        let err = stderr_text(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            !err.contains("listening "),
            "{args:?} announced a listener before failing"
        );
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_peer_closed_event_names_the_peer() {
    // Regression: single-peer listen printed `closed (both closed): …` without the peer,
    // and its JSON `closed` object had no peer_host/peer_port (listen -k had them).
    let (err, port) = one_client_session(&["-v", "127.0.0.1", "0"], b"data");
    assert!(
        err.contains(&format!(
            "closed 127.0.0.1 {port} (tcp): 0 bytes sent, 4 bytes received"
        )),
        "{err}"
    );

    let (err, port) = one_client_session(&["--json", "127.0.0.1", "0"], b"data");
    let last: serde_json::Value =
        serde_json::from_str(err.lines().last().expect("a closed event")).expect("JSON");
    assert_eq!(last["event"], "closed", "{err}");
    assert_eq!(last["peer_host"], "127.0.0.1", "{err}");
    assert_eq!(last["peer_port"], port, "{err}");
    assert_eq!(last["bytes_received"], 4, "{err}");
    assert_eq!(last["reason"], "eof", "{err}");
}

#[test]
fn listen_k_udp_hex_dump_logs_both_directions() {
    // Regression: listen -k -u opened -x FILE but never wrote to it.
    let dir = temp_dir("listen-kudp-x");
    let dump = dir.join("dump.txt");
    let mut server = listen(&["-k", "-u", "-x", dump.to_str().unwrap(), "127.0.0.1", "0"]);
    let c = udp_client();
    c.send_to(b"ping\n", server.addr()).unwrap();
    assert_eq!(lines(&server, 1, T), vec!["ping".to_string()]);
    feed(&mut server, b"pong\n", false);
    let mut buf = [0u8; 64];
    let (n, _) = c.recv_from(&mut buf).expect("reply");
    assert_eq!(&buf[..n], b"pong\n");
    assert!(server.terminate(T).is_some(), "SIGTERM ends listen -k -u");
    let text = std::fs::read_to_string(&dump).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        text.contains("|ping.|") && text.contains("|pong.|"),
        "{text}"
    );
}

#[test]
fn bind_errors_name_the_address() {
    // Regression: `listen` said only `bind: [Errno 98] Address already in use`.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = listen_fails(&["127.0.0.1", &port]);
    assert_fails_with(&out, 1, &format!("bind 127.0.0.1:{port}: [Errno 98]"));
    let out = listen_fails(&["--unix", "/nonexistent-sockit-dir/x.sock"]);
    assert_fails_with(&out, 1, "bind /nonexistent-sockit-dir/x.sock: [Errno 2]");
}

#[test]
fn a_signal_sent_right_after_the_listening_line_is_handled() {
    // Regression: listen registered its SIGINT handler (tokio's ctrl_c) only when select!
    // first polled it, which could be after `work` printed `listening`: a SIGINT sent as
    // soon as the line was read could kill it (no exit code) instead of exit 130.
    for (signal, code) in [("-TERM", 0), ("-INT", 130)] {
        for _ in 0..5 {
            let mut server = listen(&["127.0.0.1", "0"]);
            let _ = Command::new("kill")
                .arg(signal)
                .arg(server.child.id().to_string())
                .status();
            let st = wait_exit(&mut server, T);
            assert_eq!(st.and_then(|s| s.code()), Some(code), "{signal}: {st:?}");
        }
    }
}

/// Reads from `s` until `want` bytes came or the socket's timeout / EOF.
fn read_n(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..1000 {
        if got.len() >= want {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn listen_k_and_broker_keep_stdin_read_before_the_first_client() {
    // Regression: stdin read while no client was connected was broadcast to nobody and
    // lost (`(printf 'early\n'; sleep 2; printf 'late\n') | sockit listen -k` gave a client
    // connecting after 1 s only `late`). ncat -l -k delivers both.
    for mode in ["-k", "--broker"] {
        let mut server = listen(&[mode, "127.0.0.1", "0"]);
        feed(&mut server, b"early\n", false);
        // Nothing to wait for: a correct listener leaves the line in the pipe until a
        // client comes, which shows no event; a wrong one reads it at once and drops it.
        // This sleep is the time a wrong (or slow) listener gets to do that before the
        // client connects (the line is in the pipe before it, either way).
        std::thread::sleep(Duration::from_millis(300));
        let mut c = tcp(server.addr());
        assert_eq!(read_n(&mut c, 6), b"early\n", "{mode}");
        feed(&mut server, b"late\n", false);
        assert_eq!(read_n(&mut c, 5), b"late\n", "{mode}");
        // A later client gets what is read from now on, not the earlier data again. It is
        // registered once the listener has printed what it sent (a fixed 200 ms sleep could
        // be outlasted by a loaded machine's accept); the broker relays that line to c.
        let mut c2 = tcp(server.addr());
        c2.write_all(b"c2 here\n").unwrap();
        assert_eq!(lines(&server, 1, T), vec!["c2 here"], "{mode}");
        if mode == "--broker" {
            assert_eq!(read_n(&mut c, 8), b"c2 here\n", "{mode}");
        }
        feed(&mut server, b"both\n", false);
        assert_eq!(read_n(&mut c2, 5), b"both\n", "{mode}");
        assert_eq!(read_n(&mut c, 5), b"both\n", "{mode}");
    }
}

#[test]
fn listen_k_udp_idle_forgets_the_peer_and_keeps_listening() {
    // Regression: `listen -k -u -i 1` exited 5 (`idle: timed out`) 1 s after a datagram,
    // though -k with -i closes only the idle connection.
    let _serial = serial();
    let mut server = listen(&["-v", "-k", "-u", "-i", "1", "127.0.0.1", "0"]);
    let events = err_lines(&mut server);
    let a = udp_client();
    let t0 = Instant::now();
    a.send_to(b"from a\n", server.addr()).unwrap();
    assert_eq!(lines(&server, 1, T), vec!["from a"]);
    // Wait for the idle expiry's event, not a fixed sleep a loaded machine could outlast.
    let a_port = a.local_addr().unwrap().port();
    let want = format!("closed 127.0.0.1 {a_port} (udp): 0 bytes sent, 7 bytes received");
    let line = wait_line(&events, &want, T).unwrap_or_else(|| panic!("no {want:?}"));
    assert!(line.ends_with("idle (idle: timed out)"), "{line}");
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert!(server.child.try_wait().unwrap().is_none(), "listener ended");
    let b = udp_client();
    b.send_to(b"from b\n", server.addr()).unwrap();
    assert_eq!(lines(&server, 1, T), vec!["from b"]);
    feed(&mut server, b"to b\n", false);
    let mut buf = [0u8; 64];
    let (n, _) = b.recv_from(&mut buf).expect("reply to the new peer");
    assert_eq!(&buf[..n], b"to b\n");
    assert!(server.terminate(T).is_some());
}

#[test]
fn closed_events_have_one_shape_with_and_without_k() {
    // Regression: one peer wrote `"end":"both_closed"`, -k wrote `"reason":"peer closed"`
    // (no `end`), and an idle one peer said `(error)` where -k said `(idle: timed out)`.
    // Now both are the core's `closed` event: `reason` a word, `error` the nested error.
    let mut server = listen(&["--json", "-k", "127.0.0.1", "0"]);
    let mut c = tcp(server.addr());
    let me = c.local_addr().unwrap().port();
    c.write_all(b"hello").unwrap();
    drop(c);
    // listen reports the end, then closes its side: wait for that (a fixed 300 ms could
    // be outlasted on a loaded machine, and SIGTERM would come before the event)
    wait_tcp_closed(server.port, me, T);
    assert!(server.terminate(T).is_some());
    let err = server_stderr(&mut server);
    let closed: serde_json::Value = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "closed")
        .expect("a closed event");
    assert_eq!(closed["reason"], "eof", "{err}");
    assert_eq!(closed["bytes_received"], 5, "{err}");
    assert_eq!(closed["peer_host"], "127.0.0.1", "{err}");
    assert!(closed.get("error").is_none(), "{err}");

    let _serial = serial();
    for (json, k) in [(false, false), (false, true), (true, false)] {
        let mut args = vec!["-i", "1", "127.0.0.1", "0"];
        if json {
            args.insert(0, "--json");
        } else {
            args.insert(0, "-v");
        }
        if k {
            args.insert(0, "-k");
        }
        let mut server = listen(&args);
        let c = tcp(server.addr());
        if k {
            // the idle client is reported, then closed: wait for that, not a fixed 1.8 s
            wait_tcp_closed(server.port, c.local_addr().unwrap().port(), T);
            assert!(server.terminate(T).is_some());
        } else {
            assert!(wait_exit(&mut server, T).is_some());
        }
        let err = server_stderr(&mut server);
        if json {
            assert!(err.contains(r#""reason":"idle""#), "{args:?}: {err}");
            assert!(
                err.contains(r#""message":"idle: timed out""#),
                "{args:?}: {err}"
            );
        } else {
            assert!(err.contains(", idle (idle: timed out)"), "{args:?}: {err}");
        }
    }
}

#[test]
fn impossible_combinations_and_missing_programs_fail_before_listening() {
    // Regressions: -u --broker was accepted and did not broker (ncat: "UDP mode does not
    // support connection brokering"); --broker --exec ignored --broker and left the second
    // client hanging (ncat: "Invalid option combination"); --max-conns 0 refused every
    // client; --exec /nonexistent or "" printed `listening` and failed with the first peer.
    let dir = temp_dir("listen-exec-check");
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, "not a program\n").expect("write");
    let plain = plain.to_str().expect("utf-8 path");
    let cases: [(&[&str], &str); 8] = [
        (
            &["-u", "--broker", "0"],
            "UDP mode does not support connection brokering",
        ),
        (&["--broker", "0", "--exec", "cat"], "--broker and --exec"),
        (&["-k", "--max-conns", "0", "0"], "at least 1"),
        (
            &["0", "--exec", "/nonexistent-sockit-prog"],
            "/nonexistent-sockit-prog",
        ),
        (&["0", "--exec", ""], "empty"),
        (&["0", "--exec", plain], "not executable"),
        (
            &["-k", "0", "--exec", "no-such-sockit-prog"],
            "no-such-sockit-prog",
        ),
        (&["0", "--exec", "/tmp"], "is a directory"),
    ];
    for (args, want) in cases {
        let out = listen_fails(args);
        let err = stderr_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            !err.contains("listening "),
            "{args:?} announced a listener before failing"
        );
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    // A program found on PATH passes the check (and runs when a peer comes).
    let mut server = listen(&["127.0.0.1", "0", "--exec", "cat"]);
    let mut c = tcp(server.addr());
    c.write_all(b"echoed\n").unwrap();
    assert_eq!(read_n(&mut c, 7), b"echoed\n");
    drop(c);
    assert!(wait_exit(&mut server, T).is_some());
}

#[test]
fn max_conns_without_k_warns() {
    // Regression: --max-conns without -k was silently ignored; ncat warns.
    let mut server = listen(&["--max-conns", "2", "127.0.0.1", "0"]);
    let c = tcp(server.addr());
    drop(c);
    feed(&mut server, b"", true);
    assert!(wait_exit(&mut server, T).is_some());
    let err = server_stderr(&mut server);
    assert!(
        err.contains("warning: --max-conns has no effect without -k or --broker"),
        "{err}"
    );
}

#[test]
fn unreadable_stdin_is_named_and_the_peer_bytes_are_counted() {
    // Regression: `sockit listen --json … < /tmp` printed the peer's bytes but its closed
    // event said "bytes_received":0, and the error read `read: [Errno 21] Is a directory`
    // without saying it was stdin.
    let dir = std::fs::File::open("/tmp").expect("open /tmp");
    let mut c = sockit(&["listen", "--json", "127.0.0.1", "0"]);
    c.stdin(Stdio::from(dir));
    let mut server = spawn_listening_stderr(&mut c);
    let mut peer = tcp(server.addr());
    let _ = peer.write_all(b"peerdata\n");
    let st = wait_exit(&mut server, T).expect("listen ends");
    drop(peer);
    let printed: usize = lines(&server, 1, Duration::from_millis(500))
        .iter()
        .map(|l| l.len() + 1)
        .sum();
    let err = server_stderr(&mut server);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("stdin: read: [Errno 21] Is a directory"),
        "{err}"
    );
    let closed: serde_json::Value = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "closed")
        .expect("a closed event");
    assert_eq!(closed["bytes_received"], printed, "{err}");
}

#[test]
fn log_write_errors_are_reported_once_and_fail_the_exit_status() {
    // Regression: `-o /dev/full` / `-x /dev/full` lost the log silently (exit 0, nothing on
    // stderr).
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    for flag in ["-o", "-x"] {
        let mut server = listen(&[flag, "/dev/full", "127.0.0.1", "0"]);
        let mut c = tcp(server.addr());
        c.write_all(b"one\n").unwrap();
        assert_eq!(lines(&server, 1, T), vec!["one"], "{flag}");
        c.write_all(b"two\n").unwrap();
        assert_eq!(
            lines(&server, 1, T),
            vec!["two"],
            "{flag}: data still relayed"
        );
        drop(c);
        feed(&mut server, b"", true);
        let st = wait_exit(&mut server, T).expect("listen ends");
        let err = server_stderr(&mut server);
        assert_eq!(st.code(), Some(1), "{flag}: {err}");
        assert_eq!(
            err.matches(&format!("{flag} /dev/full: write: [Errno 28]"))
                .count(),
            1,
            "{flag}: {err}"
        );
    }
}

#[test]
fn listen_k_hex_dump_labels_each_connection() {
    // Regression: listen -k -x wrote every connection's chunks with no peer marker and
    // offsets counting on across connections; forward -x writes `#1 127.0.0.1:37940`.
    let dir = temp_dir("listen-k-x");
    let dump = dir.join("dump.txt");
    let mut server = listen(&["-k", "-x", dump.to_str().unwrap(), "127.0.0.1", "0"]);
    let mut ports = Vec::new();
    for word in ["first\n", "second\n"] {
        let mut c = tcp(server.addr());
        ports.push(c.local_addr().unwrap().port());
        c.write_all(word.as_bytes()).unwrap();
        let _ = lines(&server, 1, T);
    }
    assert!(server.terminate(T).is_some());
    let text = std::fs::read_to_string(&dump).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    for (i, port) in ports.iter().enumerate() {
        let header = format!("#{} 127.0.0.1:{port} length=", i + 1);
        let line = text
            .lines()
            .find(|l| l.contains(&header))
            .unwrap_or_else(|| panic!("no {header:?} in {text}"));
        assert!(line.ends_with("offset=0"), "{line}");
    }
}

#[test]
fn listen_k_keeps_stdin_while_no_client_is_connected() {
    // Regression: stdin read after the last client left was broadcast to nobody and lost;
    // now it waits (in the pipe) for the next client.
    let mut server = listen(&["-k", "127.0.0.1", "0"]);
    let mut c1 = tcp(server.addr());
    let c1_port = c1.local_addr().unwrap().port();
    c1.write_all(b"c1 here\n").unwrap();
    assert_eq!(lines(&server, 1, T), vec!["c1 here"]);
    drop(c1);
    wait_tcp_closed(server.port, c1_port, T);
    feed(&mut server, b"gap\n", false);
    // As in listen_k_and_broker_keep_stdin_read_before_the_first_client: the time a
    // wrong listener gets to read and drop the line; a correct one shows nothing to wait
    // for.
    std::thread::sleep(Duration::from_millis(200));
    let mut c2 = tcp(server.addr());
    assert_eq!(read_n(&mut c2, 4), b"gap\n");
}

// ---- issue 11: closing, logs ----

/// A client that sends `upload` bytes (from a thread) while it reads until EOF: what it
/// read, and whether a clean end of stream (not an error) ended it.
fn upload_and_read(addr: SocketAddr, upload: usize) -> (Vec<u8>, bool) {
    let mut c = TcpStream::connect_timeout(&addr, T).expect("connect");
    c.set_read_timeout(Some(T)).unwrap();
    c.set_write_timeout(Some(T)).unwrap();
    let mut w = c.try_clone().unwrap();
    // The server may stop reading (its lingering close discards, then closes): a failed
    // write is not this test's business, the reply is.
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&vec![b'u'; upload]);
    });
    let mut got = Vec::new();
    let clean = c.read_to_end(&mut got).is_ok();
    let _ = writer.join();
    (got, clean)
}

#[test]
fn quitting_with_unread_input_keeps_the_reply_whole_20_of_20() {
    // Regression (defect 4): `listen -q 0 127.0.0.1 0 < reply` (256 KiB) with a client
    // that sends 1 MiB and reads: closing with unread input sent a RST, which destroyed
    // the unsent reply (3-10 of 30 cut at 113,152 bytes, exit 0). listen now closes the
    // lingering way: the whole reply, then a clean EOF.
    let dir = temp_dir("listen-linger");
    let reply = dir.join("reply.bin");
    let want = pattern(256 << 10, 4);
    std::fs::write(&reply, &want).unwrap();
    for run in 0..20 {
        let mut c = sockit(&["listen", "-q", "0", "127.0.0.1", "0"]);
        c.stdin(std::fs::File::open(&reply).unwrap())
            .stdout(Stdio::null());
        let mut server = spawn_listening_stderr_keep_stdout(&mut c);
        let (got, clean) = upload_and_read(server.addr(), 1 << 20);
        assert_bytes_eq(&got, &want, &format!("run {run}: the reply"));
        assert!(clean, "run {run}: no clean end of stream after the reply");
        let st = wait_exit(&mut server, T).expect("listen ends");
        assert!(st.success(), "run {run}: {}", server_stderr(&mut server));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn udp_raw_log_holds_the_first_datagram_too() {
    // Regression (defect 8): `listen -u -o server.log` printed the first datagram but did
    // not log it (with -k it was logged).
    for keep in [false, true] {
        let dir = temp_dir("listen-u-o");
        let log = dir.join("server.log");
        let mut args = vec!["-u", "-o", log.to_str().unwrap(), "127.0.0.1", "0"];
        if keep {
            args.insert(0, "-k");
        }
        let mut server = listen(&args);
        let c = udp_client();
        c.send_to(b"first\n", server.addr()).unwrap();
        assert_eq!(lines(&server, 1, T), vec!["first"], "keep={keep}");
        c.send_to(b"second\n", server.addr()).unwrap();
        assert_eq!(lines(&server, 1, T), vec!["second"], "keep={keep}");
        feed(&mut server, b"reply\n", false);
        let mut buf = [0u8; 16];
        let (n, _) = c.recv_from(&mut buf).expect("the reply");
        assert_eq!(&buf[..n], b"reply\n");
        assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
        let text = std::fs::read(&log).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(text, b"first\nsecond\nreply\n", "keep={keep}");
    }
}

#[test]
fn listen_k_prints_the_servers_totals_on_sigusr1_and_goes_on() {
    // Regression: SIGUSR1 killed `listen -k` (the default action) while it was not on the
    // server core; now it prints the totals counted from its events, as every server.
    let mut server = listen(&["-k", "127.0.0.1", "0"]);
    let events = err_lines(&mut server);
    let mut c = tcp(server.addr());
    c.write_all(b"hi\n").unwrap();
    assert_eq!(lines(&server, 1, T), vec!["hi"]);
    drop(c);
    let _ = Command::new("kill")
        .args(["-USR1", &server.child.id().to_string()])
        .status();
    let line = wait_line(&events, "stats: ", T).expect("a stats line");
    assert!(
        line.starts_with("sockit: stats: 1 accepted, 0 refused"),
        "{line}"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGUSR1 ended listen -k"
    );
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn idle_does_not_cut_a_peer_still_reading_slowly() {
    // Regression (QA splice.md D5): `listen -i 2` cut a peer that was still reading (the
    // relay sat in a write the kernel wakes only once a third of the buffer is free).
    let _serial = serial();
    const N: usize = 4_000_000;
    let dir = temp_dir("idle-slow");
    let file = dir.join("in");
    std::fs::write(&file, vec![b'y'; N]).unwrap();
    let mut cmd = sockit(&["listen", "-i", "2", "127.0.0.1", "0"]);
    cmd.stdin(std::fs::File::open(&file).unwrap());
    let mut server = spawn_listening_stderr(&mut cmd);
    let c = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    c.set_recv_buffer_size(16384).unwrap();
    c.connect_timeout(&server.addr().into(), Duration::from_secs(5))
        .unwrap();
    let mut c: TcpStream = c.into();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // about 400 KB/s: ten seconds for the whole
    let (mut got, mut buf, t0) = (0usize, [0u8; 4096], Instant::now());
    while t0.elapsed() < Duration::from_secs(60) {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("after {got} bytes: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    let st = wait_exit(&mut server, T).expect("listen ends");
    let _ = std::fs::remove_dir_all(&dir);
    let err = server_stderr(&mut server);
    assert_eq!(
        got, N,
        "the session was cut while bytes were still flowing: {err}"
    );
    assert_eq!(st.code(), Some(0), "{err}");
}

#[test]
fn an_idle_cut_of_a_peer_that_stopped_reading_is_a_reset() {
    // Regression (QA splice.md D5): an idle cut with bytes still queued for the peer closed
    // it with a FIN, so the part it got read as a complete stream.
    let dir = temp_dir("idle-stop");
    let file = dir.join("in");
    std::fs::write(&file, vec![b'y'; 16 << 20]).unwrap();
    let mut cmd = sockit(&["listen", "-i", "0.5", "127.0.0.1", "0"]);
    cmd.stdin(std::fs::File::open(&file).unwrap());
    let mut server = spawn_listening_stderr(&mut cmd);
    let mut c = tcp(server.addr());
    // stop reading until the idle time has passed twice over
    let st = wait_exit(&mut server, T).expect("listen ends");
    assert_eq!(st.code(), Some(5), "{}", server_stderr(&mut server));
    let mut buf = vec![0u8; 1 << 16];
    let end = loop {
        match c.read(&mut buf) {
            Ok(0) => break None,
            Ok(_) => {}
            Err(e) => break Some(e.kind()),
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
}
