//! ncat's behaviours that sockit's servers share (issue 14): `--allowfile`/`--denyfile`,
//! and the programs run by `--exec`. Where ncat has the behaviour, ncat and sockit are
//! checked against the same assertion.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Peer, sockit};

const T: Duration = Duration::from_secs(10);

/// A server under test, started with extra flags; `kind` says how an admitted client is
/// seen (echoed back, or its bytes on the server's stdout).
struct Started {
    peer: Peer,
    addr: SocketAddr,
    echoes: bool,
    _echo: Option<common::Server>,
}

/// Waits for a `listening HOST PORT` line on the peer's stdout or stderr (listen prints
/// it on stderr, other servers on stdout).
fn listening_addr(peer: &mut Peer) -> SocketAddr {
    let deadline = Instant::now() + T;
    loop {
        for out in [peer.stdout_so_far(), peer.stderr_so_far()] {
            let text = String::from_utf8_lossy(&out).to_string();
            if let Some(line) = text.lines().find(|l| l.starts_with("listening ")) {
                let w: Vec<&str> = line.split_whitespace().collect();
                return format!("{}:{}", w[1], w[2])
                    .parse()
                    .expect("listening line");
            }
        }
        assert!(
            peer.running(),
            "server exited: {:?}",
            String::from_utf8_lossy(&peer.stderr_so_far())
        );
        assert!(Instant::now() < deadline, "no listening line within {T:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `server` (`echo-server`, `forward`, `listen`, or `ncat`) with `flags`.
fn start(server: &str, flags: &[&str]) -> Started {
    match server {
        "ncat" => {
            // ncat cannot print the port it got: a free one, checked by /proc.
            let port = common::free_port();
            let mut c = Command::new("ncat");
            c.args(["-l", "-k", "127.0.0.1", &port.to_string()])
                .args(flags);
            c.stdin(Stdio::piped());
            let peer = Peer::spawn(&mut c, None);
            common::wait_listening(port, false);
            Started {
                peer,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                echoes: false,
                _echo: None,
            }
        }
        "listen" => {
            let mut c = sockit(&["listen", "-k"]);
            c.args(flags).args(["127.0.0.1", "0"]).stdin(Stdio::piped());
            let mut peer = Peer::spawn(&mut c, None);
            let addr = listening_addr(&mut peer);
            Started {
                peer,
                addr,
                echoes: false,
                _echo: None,
            }
        }
        "forward" => {
            let echo = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
            let mut c = sockit(&["forward"]);
            c.args(flags)
                .args(["127.0.0.1:0", &echo.addr().to_string()])
                .stdin(Stdio::piped());
            let mut peer = Peer::spawn(&mut c, None);
            let addr = listening_addr(&mut peer);
            Started {
                peer,
                addr,
                echoes: true,
                _echo: Some(echo),
            }
        }
        _ => {
            let mut c = sockit(&[server]);
            c.args(flags).arg("127.0.0.1:0").stdin(Stdio::piped());
            let mut peer = Peer::spawn(&mut c, None);
            let addr = listening_addr(&mut peer);
            Started {
                peer,
                addr,
                echoes: true,
                _echo: None,
            }
        }
    }
}

/// True when a client from `src` is served (its bytes echoed, or seen on the server's
/// stdout); false when the server closed it at once without taking its bytes.
fn admitted(s: &Started, src: &str) -> bool {
    let mut c = common::tcp_from(src, s.addr, T);
    let msg = format!("hello from {src} {:?}\n", Instant::now());
    // A refused client may be closed before the write: a reset is an answer too.
    let _ = c.write_all(msg.as_bytes());
    if s.echoes {
        let mut got = vec![0u8; msg.len()];
        return c.read_exact(&mut got).is_ok() && got == msg.as_bytes();
    }
    let deadline = Instant::now() + T;
    loop {
        if String::from_utf8_lossy(&s.peer.stdout_so_far()).contains(msg.trim_end()) {
            return true;
        }
        // Refused: closed at once (EOF or reset), nothing delivered.
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 1];
        match c.read(&mut b) {
            Ok(0) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "neither served nor closed: {src}"
        );
    }
}

#[test]
fn allow_and_deny_files_admit_the_same_peers_in_ncat_and_every_server() {
    let have_ncat = common::require("ncat");
    let dir = common::temp_dir("aclfiles");
    // The same networks twice: ncat 7.93 reads whitespace-separated words and has no
    // comments (a `#` is looked up as a host name), sockit's files take `#` comments.
    let files = |tag: &str, comments: bool| {
        let write = |name: &str, lines: &[&str], note: &str| {
            let path = dir.join(format!("{tag}-{name}"));
            let mut text = String::new();
            if comments {
                text.push_str(&format!("# {note}\n\n"));
            }
            for l in lines {
                text.push_str(l);
                text.push_str(if comments { "   # listed\n" } else { "\n" });
            }
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };
        (
            write("allow", &["127.0.0.2", "127.0.0.4/32"], "the lab"),
            write("deny", &["127.0.0.3"], "one bad host"),
            write("empty", &[], "nobody"),
        )
    };
    let mut servers = vec!["echo-server", "forward", "listen"];
    if have_ncat {
        servers.push("ncat");
    }
    for server in servers {
        let (allow, deny, empty) = files(server, server != "ncat");
        let s = start(server, &["--allowfile", &allow]);
        assert!(
            admitted(&s, "127.0.0.2"),
            "{server} --allowfile: a listed peer"
        );
        assert!(
            admitted(&s, "127.0.0.4"),
            "{server} --allowfile: a listed network"
        );
        assert!(
            !admitted(&s, "127.0.0.1"),
            "{server} --allowfile: an unlisted peer"
        );
        let s = start(server, &["--denyfile", &deny]);
        assert!(
            !admitted(&s, "127.0.0.3"),
            "{server} --denyfile: a listed peer"
        );
        assert!(
            admitted(&s, "127.0.0.1"),
            "{server} --denyfile: an unlisted peer"
        );
        let s = start(server, &["--allowfile", &empty]);
        assert!(
            !admitted(&s, "127.0.0.1"),
            "{server}: an empty allow file admits nobody"
        );
        let s = start(server, &["--allowfile", &allow, "--denyfile", &allow]);
        assert!(!admitted(&s, "127.0.0.2"), "{server}: deny wins over allow");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_line_in_an_allow_or_deny_file_is_an_error_naming_the_line() {
    let dir = common::temp_dir("aclbad");
    let bad = dir.join("bad");
    std::fs::write(&bad, "127.0.0.1\n127.0.0.2\n10.0.0.0/33\n").unwrap();
    let bad = bad.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &["echo-server", "127.0.0.1:0"],
        &["forward", "127.0.0.1:0", "127.0.0.1:9"],
        &["listen", "-k", "127.0.0.1", "0"],
    ];
    for flag in ["--allowfile", "--denyfile"] {
        for case in cases {
            let mut args = case.to_vec();
            args.extend([flag, bad]);
            let out = common::run(&mut sockit(&args), T);
            common::assert_fails_with(&out, 2, "line 3");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&flag[2..]) && err.contains("10.0.0.0/33"),
                "{err}"
            );
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("listening"),
                "{args:?}"
            );
        }
    }
    let missing = dir.join("missing");
    let out = common::run(
        &mut sockit(&[
            "echo-server",
            "127.0.0.1:0",
            "--allowfile",
            missing.to_str().unwrap(),
        ]),
        T,
    );
    common::assert_fails_with(&out, 1, "No such file or directory");
    // ncat refuses the file too (under no-dns: ncat looks words up as host names).
    if common::require("ncat") {
        let port = common::free_port().to_string();
        let out = common::run(
            &mut common::no_dns("ncat", &["-l", "127.0.0.1", &port, "--allowfile", bad]),
            T,
        );
        assert_ne!(out.status.code(), Some(0), "ncat: {out:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts `ncat -l -k` or `sockit listen -k` on 127.0.0.1 with `flags`, running
/// `sh -c CMD` for each connection (`--sh-exec`). sockit runs with socket activation's
/// variables set for another process, which its programs must not see.
fn exec_server(server: &str, flags: &[&str], cmd: &str) -> (Peer, SocketAddr) {
    if server == "ncat" {
        let port = common::free_port();
        let mut c = Command::new("ncat");
        c.args(["-l", "-k", "127.0.0.1", &port.to_string()])
            .args(flags)
            .args(["--sh-exec", cmd]);
        let peer = Peer::spawn(&mut c, None);
        common::wait_listening(port, false);
        return (peer, SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let mut c = sockit(&["listen", "-k"]);
    c.args(flags)
        .args(["127.0.0.1", "0", "--sh-exec", cmd])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "elsewhere");
    let mut peer = Peer::spawn(&mut c, None);
    let addr = listening_addr(&mut peer);
    (peer, addr)
}

/// Connects from `src`, sends `input` (keeping the socket open for writing: ncat ends a
/// session at the client's end of input), and reads until the server closes.
fn exec_session(addr: SocketAddr, src: &str, input: &[u8]) -> (Vec<u8>, SocketAddr) {
    let mut c = common::tcp_from(src, addr, T);
    c.write_all(input).unwrap();
    let me = c.local_addr().unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got)
        .expect("the program's output, then the end");
    (got, me)
}

fn exec_servers() -> Vec<&'static str> {
    let mut servers = vec!["sockit"];
    if common::require("ncat") {
        servers.push("ncat");
    }
    servers
}

#[test]
fn exec_programs_get_ncats_environment_and_no_listen_variables() {
    for server in exec_servers() {
        let (_peer, addr) =
            exec_server(server, &[], "env | grep -E '^(NCAT|SOCKIT|LISTEN)_' | sort");
        let (out, me) = exec_session(addr, "127.0.0.2", b"");
        let text = String::from_utf8(out).unwrap();
        let env: std::collections::HashMap<&str, &str> =
            text.lines().filter_map(|l| l.split_once('=')).collect();
        let want = [
            ("NCAT_REMOTE_ADDR", "127.0.0.2".to_string()),
            ("NCAT_REMOTE_PORT", me.port().to_string()),
            ("NCAT_LOCAL_ADDR", "127.0.0.1".to_string()),
            ("NCAT_LOCAL_PORT", addr.port().to_string()),
            ("NCAT_PROTO", "TCP".to_string()),
        ];
        for (name, value) in &want {
            assert_eq!(
                env.get(name),
                Some(&value.as_str()),
                "{server} {name}: {text}"
            );
        }
        if server == "sockit" {
            for (name, value) in &want {
                let ours = name.replace("NCAT_", "SOCKIT_");
                assert_eq!(env.get(ours.as_str()), Some(&value.as_str()), "{text}");
            }
            assert!(!text.contains("LISTEN_"), "{text}");
            // (other SOCKIT_ variables, SOCKIT_REQUIRE_PEERS say, are the caller's own)
            let ncat = env.keys().filter(|k| k.starts_with("NCAT_")).count();
            assert_eq!(ncat, 5, "{text}");
        }
    }
}

#[test]
fn crlf_applies_to_what_an_exec_program_writes_as_in_ncat() {
    let program = r"printf 'a\nb\r\nc\n'";
    for server in exec_servers() {
        let (_peer, addr) = exec_server(server, &["-C"], program);
        let (out, _) = exec_session(addr, "127.0.0.1", b"");
        // Each LF becomes CRLF; a CRLF stays one.
        assert_eq!(out, b"a\r\nb\r\nc\r\n", "{server} -C");
        let (_peer, addr) = exec_server(server, &[], program);
        let (out, _) = exec_session(addr, "127.0.0.1", b"");
        assert_eq!(out, b"a\nb\r\nc\n", "{server} without -C");
    }
}

#[test]
fn sh_exec_runs_a_shell_and_exec_never_does() {
    for server in exec_servers() {
        let (_peer, addr) = exec_server(server, &[], "read line; echo \"got $line\"; echo done");
        let (out, _) = exec_session(addr, "127.0.0.1", b"hello\n");
        assert_eq!(out, b"got hello\ndone\n", "{server}");
    }
    // --exec takes argv: a command line with `;` is one program name, never found.
    let out = common::run(
        &mut sockit(&["listen", "127.0.0.1", "0", "--exec", "echo hi; echo there"]),
        T,
    );
    common::assert_fails_with(&out, 2, "no executable of that name on PATH");
    let out = common::run(
        &mut sockit(&[
            "listen",
            "--sh-exec",
            "true",
            "127.0.0.1",
            "0",
            "--exec",
            "cat",
        ]),
        T,
    );
    common::assert_fails_with(&out, 2, "cannot be used with");
}

/// Starts `ncat -u -l -k` or `sockit listen -u -k` on 127.0.0.1 with `flags`, running
/// `sh -c CMD` for each sender.
fn udp_exec_server(server: &str, flags: &[&str], cmd: &str) -> (Peer, SocketAddr) {
    if server == "ncat" {
        let port = common::free_port();
        let mut c = Command::new("ncat");
        c.args(["-u", "-l", "-k", "127.0.0.1", &port.to_string()])
            .args(flags)
            .args(["--sh-exec", cmd]);
        let peer = Peer::spawn(&mut c, None);
        common::wait_listening(port, true);
        return (peer, SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let mut c = sockit(&["listen", "-u", "-k"]);
    c.args(flags)
        .args(["127.0.0.1", "0", "--sh-exec", cmd])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1");
    let mut peer = Peer::spawn(&mut c, None);
    let addr = listening_addr(&mut peer);
    (peer, addr)
}

/// A UDP client bound to `src`.
fn udp_from(src: &str) -> std::net::UdpSocket {
    let s = std::net::UdpSocket::bind((src, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// The datagrams `s` receives from `from`, joined, until they end with `want` (the
/// program's output may come in any cut), within `limit`.
fn udp_until(s: &std::net::UdpSocket, from: SocketAddr, want: &[u8], limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !got.ends_with(want) {
        assert!(
            Instant::now() < deadline,
            "no {:?} within {limit:?}; got {:?}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(&got)
        );
        if let Ok((n, a)) = s.recv_from(&mut buf) {
            assert_eq!(a, from, "a datagram from elsewhere");
            got.extend_from_slice(&buf[..n]);
        }
    }
    got
}

#[test]
fn udp_exec_runs_a_program_per_peer_with_its_environment_as_ncat_does() {
    for server in exec_servers() {
        let (_peer, addr) = udp_exec_server(
            server,
            &[],
            "env | grep -E '^NCAT_' | sort; echo end-of-env; cat",
        );
        // Two senders, each its own program: its environment names it, its echo is its.
        let (a, b) = (udp_from("127.0.0.2"), udp_from("127.0.0.3"));
        for (c, who) in [(&a, "127.0.0.2"), (&b, "127.0.0.3")] {
            c.send_to(b"one\n", addr).unwrap();
            let out = udp_until(c, addr, b"one\n", T);
            let text = String::from_utf8_lossy(&out).to_string();
            let me = c.local_addr().unwrap();
            for line in [
                format!("NCAT_REMOTE_ADDR={who}"),
                format!("NCAT_REMOTE_PORT={}", me.port()),
                "NCAT_LOCAL_ADDR=127.0.0.1".to_string(),
                format!("NCAT_LOCAL_PORT={}", addr.port()),
                "NCAT_PROTO=UDP".to_string(),
            ] {
                assert!(
                    text.lines().any(|l| l == line),
                    "{server}: no {line} in {text}"
                );
            }
        }
        for (c, msg) in [(&a, b"a again\n"), (&b, b"b again\n")] {
            c.send_to(msg, addr).unwrap();
            assert_eq!(udp_until(c, addr, msg, T), msg, "{server}");
        }
        // -C applies to what the program writes.
        let (_peer, addr) = udp_exec_server(server, &["-C"], r"printf 'a\nb\r\n'");
        let c = udp_from("127.0.0.1");
        c.send_to(b"go\n", addr).unwrap();
        assert_eq!(
            udp_until(&c, addr, b"b\r\n", T),
            b"a\r\nb\r\n",
            "{server} -C"
        );
    }
}

#[test]
fn udp_exec_programs_end_when_idle_and_are_bounded_by_max_conns() {
    let _serial = common::serial();
    let mut c = sockit(&[
        "listen",
        "-u",
        "-k",
        "-v",
        "-i",
        "1",
        "--max-conns",
        "1",
        "127.0.0.1",
        "0",
        "--sh-exec",
        "cat; echo bye",
    ]);
    let mut peer = Peer::spawn(&mut c, None);
    let addr = listening_addr(&mut peer);
    let a = udp_from("127.0.0.2");
    a.send_to(b"hi\n", addr).unwrap();
    assert_eq!(udp_until(&a, addr, b"hi\n", T), b"hi\n");
    let t0 = Instant::now();
    // A second sender while the first one's program runs: past --max-conns, dropped.
    let b = udp_from("127.0.0.3");
    b.send_to(b"me too\n", addr).unwrap();
    // 1 s without traffic: cat's input ends, it exits, the shell says bye.
    assert_eq!(udp_until(&a, addr, b"bye\n", T), b"bye\n");
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(3 * 3),
        "{idle:?}"
    );
    let mut buf = [0u8; 64];
    assert!(
        b.recv_from(&mut buf).is_err(),
        "the refused sender got an answer"
    );
    // The slot is free again: the second sender now gets a program.
    let deadline = Instant::now() + T;
    let got = loop {
        b.send_to(b"again\n", addr).unwrap();
        if let Ok((n, _)) = b.recv_from(&mut buf) {
            break buf[..n].to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "the second sender was never served"
        );
    };
    assert_eq!(got, b"again\n");
    let err = String::from_utf8_lossy(&peer.stderr_so_far()).to_string();
    assert!(err.contains("refused 127.0.0.3"), "{err}");
    assert!(err.contains("idle"), "{err}");
}
