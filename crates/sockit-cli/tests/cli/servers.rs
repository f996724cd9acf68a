//! What every server shares (issue 11): one meaning per shared flag, one exit code per
//! signal, one vocabulary, and the open-file limit of echo-server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{self, require_peer, sockit};

const T: Duration = Duration::from_secs(10);

/// The servers with a minimal valid address argument list, for flag checks.
fn servers(extra: &[&str]) -> Vec<(&'static str, Vec<String>)> {
    let with = |cmd: &'static str, tail: &[&str]| {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(tail.iter().map(|s| s.to_string()));
        (cmd, v)
    };
    vec![
        with("echo-server", &["127.0.0.1:0"]),
        with("listen", &["-k", "127.0.0.1", "0"]),
        with("forward", &["127.0.0.1:0", "127.0.0.1:9"]),
    ]
}

/// The usage reason clap printed (`error: invalid value … : REASON`), first line only.
fn reason(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let first = text.lines().next().unwrap_or_default().to_string();
    first.rsplit(": ").next().unwrap_or_default().to_string()
}

#[test]
fn shared_flags_mean_one_thing_in_every_server() {
    // Regression (defect 7): echo-server accepted --max-conns 0 and closed every client,
    // while listen and forward refused it.
    for bad in [&["--max-conns", "0"][..], &["-i", "0"][..]] {
        let mut seen = Vec::new();
        for (cmd, args) in servers(bad) {
            let mut all = vec![cmd.to_string()];
            all.extend(args);
            let out = common::run(&mut sockit(&all), T);
            assert_eq!(out.status.code(), Some(2), "{cmd} {bad:?}: {out:?}");
            seen.push(reason(&out.stderr));
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "{bad:?} reads differently: {seen:?}"
        );
    }
    // A bad address: the same words and exit code everywhere.
    let cases = [
        vec!["echo-server", "127.0.0.1:70000"],
        vec!["listen", "127.0.0.1", "70000"],
        vec!["forward", "127.0.0.1:70000", "127.0.0.1:9"],
    ];
    let mut seen = Vec::new();
    for args in cases {
        let out = common::run(&mut sockit(&args), T);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains("port must be 0-65535"), "{args:?}: {err}");
        seen.push(err);
    }
}

/// `sockit CMD [EXTRA…] ARGS…` for each server with `addr` as its listen address: the
/// command, its exit code, its stdout and its stderr.
fn every_server_on(addr: &str, extra: &[&str]) -> Vec<(&'static str, Option<i32>, String, String)> {
    let runs: [(&'static str, &[&str]); 4] = [
        ("echo-server", &[addr]),
        ("forward", &[addr, "127.0.0.1:9"]),
        ("proxy", &[addr]),
        ("listen", &[addr]),
    ];
    runs.iter()
        .map(|(cmd, args)| {
            let mut all = vec![*cmd];
            all.extend(extra);
            all.extend(*args);
            let out = common::run(sockit(&all).stdin(std::process::Stdio::null()), T);
            let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
            (
                *cmd,
                out.status.code(),
                text(&out.stdout),
                text(&out.stderr),
            )
        })
        .collect()
}

#[test]
fn one_error_text_per_bad_address_in_every_server() {
    // Regression (QA D12): the same bad address read `port: …` in echo-server and listen,
    // `listen address: port: …` in forward and proxy; a failed bind `echo-server: bind …`,
    // `bind …`, `listen on tcp:1.2.3.4:80: bind …` and `listen on 1.2.3.4 80: bind …`.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let in_use = taken.local_addr().unwrap().to_string();
    let cases = [
        (
            "127.0.0.1:99999".to_string(),
            2,
            "listen address 127.0.0.1:99999: port must be 0-65535, not 99999".to_string(),
        ),
        (
            "127.0.0.1:no_such_service".to_string(),
            3,
            "getaddrinfo 127.0.0.1:no_such_service: [Errno -8] Servname not supported for \
             ai_socktype"
                .to_string(),
        ),
        (
            in_use.clone(),
            1,
            format!("bind {in_use}: [Errno 98] Address already in use"),
        ),
    ];
    for (addr, code, want) in cases {
        for (cmd, got, _, err) in every_server_on(&addr, &[]) {
            assert_eq!(got, Some(code), "{cmd} {addr}: {err}");
            assert_eq!(err, format!("sockit: {want}\n"), "{cmd} {addr}");
        }
    }
    // Under --json: the error event's op is the call, the address is in the message (on
    // stdout; listen's stdout carries data, so on stderr there).
    for (cmd, got, out, err) in every_server_on(&in_use, &["--json"]) {
        assert_eq!(got, Some(1), "{cmd}: {err}");
        let json = if cmd == "listen" { &err } else { &out };
        let line = json.lines().next().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object");
        assert_eq!(v["event"], "error", "{cmd}: {line}");
        assert_eq!(v["op"], "bind", "{cmd}: {line}");
        assert_eq!(
            v["message"],
            format!("bind {in_use}: [Errno 98] Address already in use"),
            "{cmd}"
        );
    }
}

/// Starts `sockit ARGS…` on a Unix socket at a fresh path; the path.
fn unix_server(cmd: &str, tag: &str) -> (common::Server, std::path::PathBuf) {
    let dir = common::temp_dir(tag);
    let path = dir.join("s.sock");
    let p = path.to_str().unwrap().to_string();
    let server = match cmd {
        "echo-server" => common::sockit_server(&["echo-server", "--unix", &p]),
        "forward" => common::sockit_server(&["forward", &format!("unix:{p}"), "127.0.0.1:9"]),
        _ => common::sockit_listen(&["-k", "--unix", &p]),
    };
    (server, path)
}

#[test]
fn signals_give_the_same_codes_and_remove_the_socket_file() {
    for cmd in ["echo-server", "forward", "listen"] {
        for (sig, code) in [("TERM", 0), ("INT", 130), ("HUP", 129)] {
            let (mut srv, path) = unix_server(cmd, &format!("sig-{cmd}-{sig}"));
            assert!(path.exists(), "{cmd}: no socket file");
            let got = srv.signal(sig, T).and_then(|s| s.code());
            assert_eq!(got, Some(code), "{cmd} SIG{sig}");
            assert!(!path.exists(), "{cmd} SIG{sig}: socket file left behind");
        }
    }
}

#[test]
fn echo_server_serves_at_ulimit_16_and_names_a_limit_too_small() {
    // Regression (defect 5): at `ulimit -n 16` echo-server printed `listening` and then
    // served nobody (each worker costs ~3 fds); it was silent without -v.
    require_peer!("prlimit");
    let mut c = std::process::Command::new("prlimit");
    c.args(["--nofile=16", "--"])
        .arg(common::bin())
        .args(["echo-server", "127.0.0.1:0"]);
    c.stdin(std::process::Stdio::piped());
    let mut srv = common::spawn_listening(&mut c);
    let mut s = TcpStream::connect_timeout(&srv.addr(), T).expect("connect");
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).expect("an echo at ulimit -n 16");
    assert_eq!(&got, b"ping");
    drop(s);
    assert_eq!(srv.terminate(T).and_then(|s| s.code()), Some(0));
    // Too small for one worker and one client: refused at once, naming the limit.
    let t0 = Instant::now();
    let out = common::run(
        std::process::Command::new("prlimit")
            .args(["--nofile=10", "--"])
            .arg(common::bin())
            .args(["echo-server", "127.0.0.1:0"]),
        T,
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "not at once");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("ulimit -n"), "{err}");
    assert!(out.stdout.is_empty(), "no listening line: {out:?}");
}

#[test]
fn a_tiny_open_file_limit_is_named_never_a_panic() {
    // Regression: at `ulimit -n` 6 or 7 tokio's signal driver panicked (exit 101) in
    // every command on the runtime; at 9 a bare `socket: [Errno 24]` did not say why.
    require_peer!("prlimit");
    require_peer!("timeout");
    let commands: [&[&str]; 5] = [
        &["echo-server", "127.0.0.1:0"],
        &["listen", "127.0.0.1", "0"],
        &["connect", "127.0.0.1", "1"],
        &["forward", "127.0.0.1:0", "127.0.0.1:1"],
        &["proxy", "127.0.0.1:0"],
    ];
    for n in 5..=10 {
        for args in commands {
            let out = common::run(
                std::process::Command::new("prlimit")
                    .arg(format!("--nofile={n}"))
                    .args(["--", "timeout", "-s", "INT", "1"])
                    .arg(common::bin())
                    .args(args),
                T,
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert_ne!(
                out.status.code(),
                Some(101),
                "ulimit -n {n} {args:?}: {err}"
            );
            if err.contains("Too many open files") {
                assert!(err.contains("ulimit -n"), "ulimit -n {n} {args:?}: {err}");
                assert_eq!(out.status.code(), Some(1), "ulimit -n {n} {args:?}: {err}");
            }
        }
    }
}

#[test]
fn every_closed_event_carries_the_shared_fields() {
    const SHARED: [&str; 7] = [
        "id",
        "transport",
        "peer_host",
        "peer_port",
        "bytes_sent",
        "bytes_received",
        "duration_us",
    ];
    let echo = common::sockit_server(&["echo-server", "--json", "127.0.0.1:0"]);
    let fwd =
        common::sockit_server(&["forward", "--json", "127.0.0.1:0", &echo.addr().to_string()]);
    let mut c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"abc").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"abc");
    for srv in [&echo, &fwd] {
        let closed = loop {
            let line = srv.next_line(T).expect("a closed event");
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            // one vocabulary, read by eye too: every object names its event first
            assert!(line.starts_with(r#"{"event":""#), "{line}");
            if v["event"] == "closed" {
                break v;
            }
        };
        for f in SHARED.iter().chain(&["reason"]) {
            assert!(closed.get(*f).is_some(), "{f} missing in {closed}");
        }
        assert_eq!(closed["bytes_received"], 3, "{closed}");
        assert_eq!(closed["reason"], "eof", "{closed}");
    }
    // listen (its events on stderr): one peer, -k, --exec, and datagram peers (whose
    // sessions a stop ends) — every closed event has the shared fields.
    for args in [
        &["--json", "127.0.0.1", "0"][..],
        &["--json", "-k", "127.0.0.1", "0"][..],
        &["--json", "127.0.0.1", "0", "--exec", "cat"][..],
        &["--json", "-u", "127.0.0.1", "0"][..],
        &["--json", "-u", "-k", "127.0.0.1", "0"][..],
    ] {
        let mut l = common::sockit_listen(args);
        let events = common::err_lines(&mut l);
        if args.contains(&"-u") {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"abc", l.addr()).unwrap();
            assert!(common::wait_line(&events, r#""event":"accepted""#, T).is_some());
            l.terminate(T);
        } else {
            // end of stdin: the listener's side ends too
            drop(l.child.stdin.take());
            let mut c = TcpStream::connect_timeout(&l.addr(), T).unwrap();
            c.set_read_timeout(Some(T)).unwrap();
            c.write_all(b"abc").unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = Vec::new();
            let _ = c.read_to_end(&mut back);
        }
        let line = common::wait_line(&events, r#""event":"closed""#, T)
            .unwrap_or_else(|| panic!("{args:?}: no closed event"));
        let closed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert!(
            line.starts_with(r#"{"event":"closed","#),
            "{args:?}: {line}"
        );
        for f in SHARED.iter().chain(&["reason"]) {
            assert!(
                closed.get(*f).is_some(),
                "{args:?}: {f} missing in {closed}"
            );
        }
        assert_eq!(closed["bytes_received"], 3, "{args:?}: {closed}");
        if args.contains(&"-u") {
            assert_eq!(closed["reason"], "drained", "{args:?}: {closed}");
            assert_eq!(closed["datagrams_received"], 1, "{args:?}: {closed}");
        } else {
            assert_eq!(closed["reason"], "eof", "{args:?}: {closed}");
        }
    }
}
