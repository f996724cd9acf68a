//! Operability of the servers (issue 15): the Prometheus endpoint, the totals line on
//! SIGUSR1 and `--stats-interval`, and socket activation (`LISTEN_FDS`).

use std::io::{BufRead, BufReader, Read, Write};

use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, require_peer, sockit};

const T: Duration = Duration::from_secs(10);

/// `GET PATH` on 127.0.0.1:`port`: the status code and the body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the endpoint");
    s.set_read_timeout(Some(T)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).expect("read the answer");
    let (head, body) = all.split_once("\r\n\r\n").expect("an HTTP answer");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_string())
}

/// The value of the sample line `series VALUE` in a text exposition, if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// One echo round trip on a new connection, closed cleanly.
fn echo_once(addr: std::net::SocketAddr) {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"ping").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ping");
}

/// The port of a `listening HOST PORT metrics` line.
fn metrics_port(line: &str) -> u16 {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (words.first(), words.get(3)),
        (Some(&"listening"), Some(&"metrics")),
        "not a metrics listening line: {line}"
    );
    words[2].parse().expect("port")
}

#[test]
fn metrics_count_ten_echoed_connections_and_pass_promtool() {
    let mut server = common::sockit_server(&["echo-server", "127.0.0.1:0", "--metrics", "0"]);
    let line = server.next_line(T).expect("the metrics listening line");
    let port = metrics_port(&line);
    for _ in 0..10 {
        echo_once(server.addr());
    }
    // The closed events arrive after the clients saw EOF: poll with a deadline.
    let deadline = Instant::now() + T;
    let body = loop {
        let (code, body) = http_get(port, "/metrics");
        assert_eq!(code, 200, "{body}");
        let closed = sample(
            &body,
            r#"sockit_sessions_closed_total{transport="tcp",reason="eof"}"#,
        );
        if closed == Some(10.0) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "closed stayed {closed:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for (series, want) in [
        (
            r#"sockit_connections_accepted_total{transport="tcp"}"#,
            10.0,
        ),
        (r#"sockit_connections_active{transport="tcp"}"#, 0.0),
        (r#"sockit_received_bytes_total{transport="tcp"}"#, 40.0),
        (r#"sockit_sent_bytes_total{transport="tcp"}"#, 40.0),
        (
            r#"sockit_connections_refused_total{transport="tcp",reason="max_conns"}"#,
            0.0,
        ),
        (
            r#"sockit_session_duration_seconds_count{transport="tcp"}"#,
            10.0,
        ),
    ] {
        assert_eq!(sample(&body, series), Some(want), "{series} in\n{body}");
    }
    for name in [
        "sockit_connections_accepted_total counter",
        "sockit_connections_active gauge",
        "sockit_sessions_closed_total counter",
        "sockit_session_duration_seconds histogram",
    ] {
        assert!(
            body.contains(&format!("# TYPE {name}\n")),
            "{name}:\n{body}"
        );
    }
    assert!(
        !body.contains("# EOF"),
        "OpenMetrics text was not asked for"
    );
    // Only /metrics is served.
    assert_eq!(http_get(port, "/").0, 404);
    require_peer!("promtool");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = common::wait_output(check, T);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {out:?}\n{body}"
    );
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn metrics_accept_weights_choose_the_format_with_curl() {
    // Regression (QA): `Accept: application/openmetrics-text;q=0, text/plain` still got
    // OpenMetrics; q=0 means "not acceptable" and the higher weight wins (RFC 9110 12.5.1).
    require_peer!("curl");
    let server = common::sockit_server(&["echo-server", "127.0.0.1:0", "--metrics", "0"]);
    let port = metrics_port(&server.next_line(T).expect("the metrics listening line"));
    let url = format!("http://127.0.0.1:{port}/metrics");
    for (accept, openmetrics) in [
        ("application/openmetrics-text;q=0, text/plain", false),
        ("text/plain;q=0.5, application/openmetrics-text;q=0.9", true),
        (
            "application/openmetrics-text;q=0.4, text/plain;q=0.8",
            false,
        ),
        ("application/openmetrics-text", true),
    ] {
        let out = common::run(
            Command::new("curl")
                .args(["-s", "-D", "-", "--max-time", "5", "-H"])
                .arg(format!("Accept: {accept}"))
                .arg(&url),
            T,
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}");
        let ctype = said
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .unwrap_or_else(|| panic!("no content-type: {said}"));
        assert_eq!(
            ctype.contains("application/openmetrics-text"),
            openmetrics,
            "{accept}: {ctype}"
        );
        assert_eq!(said.contains("# EOF"), openmetrics, "{accept}: {said}");
    }
}

#[test]
fn listen_k_serves_metrics_and_one_peer_refuses_them() {
    // Issue 15: --metrics on every server, listen -k included; its line on stderr, as
    // listen's own (stdout is the peers' bytes).
    let mut l = common::sockit_listen(&["-k", "--metrics", "0", "127.0.0.1", "0"]);
    let events = common::err_lines(&mut l);
    let line = common::wait_line(&events, " metrics", T).expect("the metrics line");
    let port = metrics_port(&line);
    let mut c = TcpStream::connect_timeout(&l.addr(), T).expect("connect");
    c.write_all(b"hello").unwrap();
    drop(c);
    let deadline = Instant::now() + T;
    loop {
        let (code, body) = http_get(port, "/metrics");
        assert_eq!(code, 200, "{body}");
        let got = (
            sample(
                &body,
                r#"sockit_connections_accepted_total{transport="tcp"}"#,
            ),
            sample(&body, r#"sockit_received_bytes_total{transport="tcp"}"#),
        );
        if got == (Some(1.0), Some(5.0)) {
            break;
        }
        assert!(Instant::now() < deadline, "{got:?}:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(l.terminate(T).and_then(|s| s.code()), Some(0));
    // One peer is a transfer, not a server: a usage error, not a silent no-op.
    let out = common::run(
        &mut sockit(&["listen", "--metrics", "0", "127.0.0.1", "0"]),
        T,
    );
    common::assert_fails_with(&out, 2, "--metrics: needs -k, --broker or --exec");
}

#[test]
fn sigusr1_prints_the_totals_and_the_server_goes_on() {
    let mut server = common::sockit_server(&["echo-server", "127.0.0.1:0", "--json"]);
    echo_once(server.addr());
    // The closed event is the session's last: wait for it before asking.
    let deadline = Instant::now() + T;
    loop {
        let line = server.next_line(T).expect("events");
        if line.contains(r#""event":"closed""#) {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let _ = Command::new("kill")
        .args(["-USR1", &server.child.id().to_string()])
        .status();
    let line = server.next_line(T).expect("the stats line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["event"], "stats", "{line}");
    assert_eq!(
        (v["accepted"].as_u64(), v["closed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (v["bytes_sent"].as_u64(), v["active"].as_u64()),
        (Some(4), Some(0))
    );
    assert!(v["duration_us"].as_u64().is_some(), "{line}");
    // Still serving.
    echo_once(server.addr());
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn stats_interval_prints_totals_where_the_events_go() {
    // --json: on stdout, one `stats` object per interval.
    let mut server = common::sockit_server(&[
        "forward",
        "127.0.0.1:0",
        "127.0.0.1:9",
        "--json",
        "--stats-interval",
        "0.2",
    ]);
    for _ in 0..2 {
        let line = server.next_line(T).expect("a stats line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(
            (v["event"].as_str(), v["accepted"].as_u64()),
            (Some("stats"), Some(0))
        );
    }
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
    // Text: `sockit: stats: …` on stderr.
    let mut c = sockit(&["echo-server", "127.0.0.1:0", "--stats-interval", "0.2"]);
    c.stdin(Stdio::piped()).stderr(Stdio::piped());
    let mut server = common::spawn_listening(&mut c);
    let mut err = BufReader::new(server.child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("sockit: stats: 0 accepted, 0 refused, 0 active"),
        "{line}"
    );
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
    // Regression: a bad value named another flag (`leave -i out`), and a bad --metrics
    // port did not name --metrics.
    let out = common::run(&mut sockit(&["echo-server", "--stats-interval", "0"]), T);
    common::assert_fails_with(&out, 2, "'--stats-interval <SECS>': must be at least 0.01");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("-i out"));
    let out = common::run(&mut sockit(&["echo-server", "--metrics", "99999"]), T);
    common::assert_fails_with(&out, 2, "sockit: --metrics 99999: port must be 0-65535");
    // A failed bind of the endpoint says it was the metrics endpoint, with its address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let out = common::run(
        &mut sockit(&["echo-server", "--metrics", &at, "127.0.0.1:0"]),
        T,
    );
    common::assert_fails_with(
        &out,
        1,
        &format!("sockit: bind --metrics {at}: [Errno 98] Address already in use"),
    );
}

/// Binds the sockets of `kinds` (`tcp`, `udp`, `unix:PATH`) on loopback, then execs
/// `sockit ARGS…` with them as descriptors 3, 4 … and `LISTEN_FDS`/`LISTEN_PID` set, as
/// systemd does. `pid` overrides `LISTEN_PID` (`"ours"`: the pid sockit runs as).
fn activated(kinds: &[&str], pid: &str, args: &[&str]) -> Command {
    let script = r#"
import os, socket, sys
n = int(sys.argv[1]); kinds = sys.argv[2:2 + n]; pid = sys.argv[2 + n]; argv = sys.argv[3 + n:]
socks = []
for k in kinds:
    if k == "tcp":
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
    elif k == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    else:
        s = socket.socket(socket.AF_UNIX); s.bind(k[len("unix:"):]); s.listen(16)
    socks.append(s)
# Out of the way first: a socket may already sit on 3, 4 … (without inheritance).
high = [os.dup(s.fileno()) for s in socks]
high = [os.dup2(fd, 100 + i) for i, fd in enumerate(high)]
for i, fd in enumerate(high):
    os.dup2(100 + i, 3 + i, inheritable=True)
    os.close(100 + i)
env = dict(os.environ)
env["LISTEN_FDS"] = str(len(socks))
env["LISTEN_PID"] = str(os.getpid()) if pid == "ours" else pid
os.execve(argv[0], argv, env)
"#;
    let mut c = crate::peers::python3();
    c.arg("-c")
        .arg(script)
        .arg(kinds.len().to_string())
        .args(kinds)
        .arg(pid)
        .arg(common::bin())
        .args(args);
    c
}

#[test]
fn echo_server_takes_a_tcp_and_a_udp_socket_from_listen_fds() {
    let mut c = activated(&["tcp", "udp"], "ours", &["echo-server"]);
    c.stdin(Stdio::piped());
    let mut server = common::spawn_listening(&mut c);
    assert!(server.first_line.ends_with(" tcp"), "{}", server.first_line);
    let udp_line = server.next_line(T).expect("the udp listening line");
    let udp_port: u16 = udp_line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(udp_line.ends_with(" udp"), "{udp_line}");
    echo_once(server.addr());
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(T)).unwrap();
    u.send_to(b"dgram", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 16];
    let n = u.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"dgram");
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn an_inherited_unix_socket_is_served_and_its_file_left_in_place() {
    let dir = common::temp_dir("activation-unix");
    let path = dir.join("echo.sock");
    let kind = format!("unix:{}", path.display());
    let mut c = activated(&[&kind], "ours", &["echo-server"]);
    c.stdin(Stdio::piped());
    let mut server = common::spawn_listening(&mut c);
    assert_eq!(
        server.first_line,
        format!("listening unix {}", path.display())
    );
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"unix").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"unix");
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
    // The file belongs to whoever bound it.
    assert!(path.exists(), "the inherited socket file was removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forward_takes_its_listener_from_listen_fds() {
    let target = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    let to = target.addr().to_string();
    let mut c = activated(&["tcp"], "ours", &["forward", "127.0.0.1:0", &to]);
    c.stdin(Stdio::piped());
    let mut server = common::spawn_listening(&mut c);
    echo_once(server.addr());
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn activation_errors_and_pids_that_are_not_ours() {
    // A socket of the wrong kind is a clear error naming what was passed.
    let out = common::run(
        activated(&["udp"], "ours", &["echo-server", "127.0.0.1:0"]).stdin(Stdio::null()),
        T,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        err.contains("socket activation: a tcp socket is needed")
            && err.contains("LISTEN_FDS (udp 127.0.0.1 "),
        "{err}"
    );
    // Regression (QA D12): a Unix socket was named `(unix unix /path)`.
    let dir = common::temp_dir("activation-kind");
    let path = dir.join("s.sock");
    let unix = format!("unix:{}", path.display());
    let out = common::run(
        activated(&[&unix], "ours", &["echo-server", "-u", "127.0.0.1:0"]).stdin(Stdio::null()),
        T,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        err.contains(&format!("LISTEN_FDS (unix {})", path.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // LISTEN_PID of another process: not for us, the server binds its own socket.
    let mut c = activated(&["udp"], "1", &["echo-server", "127.0.0.1:0"]);
    c.stdin(Stdio::piped());
    let mut server = common::spawn_listening(&mut c);
    echo_once(server.addr());
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn exec_programs_do_not_see_listen_variables() {
    let port = common::free_port();
    let mut c = sockit(&["listen", "127.0.0.1", &port.to_string(), "--exec", "env"]);
    c.env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "0")
        .env("LISTEN_FDNAMES", "")
        .stdin(Stdio::null());
    let peer = common::Peer::spawn(&mut c, None);
    common::wait_listening(port, false);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut env = String::new();
    s.read_to_string(&mut env).unwrap();
    drop(peer);
    assert!(env.contains("PATH="), "{env}");
    assert!(!env.contains("LISTEN_"), "{env}");
}

/// `systemd-socket-activate -l ADDR [--datagram] sockit ARGS…` on a free port (retried:
/// it cannot bind port 0). It starts sockit when the first client arrives.
fn socket_activate(listen: &str, datagram: bool, args: &[&str]) -> common::Peer {
    let mut c = Command::new("systemd-socket-activate");
    c.arg("-l").arg(listen);
    if datagram {
        c.arg("--datagram");
    }
    c.arg(common::bin()).args(args);
    common::Peer::spawn(&mut c, None)
}

#[test]
fn systemd_socket_activate_starts_echo_server_and_forward() {
    require_peer!("systemd-socket-activate");
    // TCP and UDP: pick a free port, retry if someone took it meanwhile.
    for (datagram, args) in [
        (false, vec!["echo-server"]),
        (true, vec!["echo-server", "-u"]),
    ] {
        let mut started = None;
        for _ in 0..5 {
            let port = common::free_port();
            let mut p = socket_activate(&format!("127.0.0.1:{port}"), datagram, &args);
            let deadline = Instant::now() + Duration::from_secs(5);
            while p.running() && !common::is_listening(port, datagram) && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            if common::is_listening(port, datagram) && p.running() {
                started = Some((p, port));
                break;
            }
        }
        let (p, port) = started.expect("systemd-socket-activate listening");
        if datagram {
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            u.set_read_timeout(Some(T)).unwrap();
            u.send_to(b"first", ("127.0.0.1", port)).unwrap();
            let mut buf = [0u8; 16];
            let n = u.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"first");
        } else {
            echo_once(([127, 0, 0, 1], port).into());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &p.child.id().to_string()])
            .status();
        let out = p.finish(T);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("listening 127.0.0.1 "), "{out:?}");
    }
    // Unix, and forward.
    let dir = common::temp_dir("socket-activate");
    let path = dir.join("s.sock");
    let p = socket_activate(&path.display().to_string(), false, &["echo-server"]);
    common::wait_path(&path, "systemd-socket-activate");
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"u").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"u");
    drop(p);
    let target = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    let to = target.addr().to_string();
    let port = common::free_port();
    let p = socket_activate(
        &format!("127.0.0.1:{port}"),
        false,
        &["forward", "127.0.0.1:0", &to],
    );
    common::wait_listening(port, false);
    echo_once(([127, 0, 0, 1], port).into());
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--dns-timeout`: a lookup whose DNS server never answers ends as a timeout after the
/// limit, inside a network and mount namespace of the test's own (only `lo`; its
/// resolv.conf names 127.0.0.1, where a UDP socket reads queries and never answers), so
/// no query can leave.
#[test]
fn a_lookup_that_is_never_answered_times_out() {
    require_peer!("unshare");
    require_peer!("ip");
    let _serial = common::serial();
    let dir = common::temp_dir("dns-timeout");
    // glibc alone would wait 30 s: only the limit can end the lookup sooner.
    std::fs::write(
        dir.join("resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n",
    )
    .unwrap();
    std::fs::write(dir.join("nsswitch.conf"), "hosts: files dns\n").unwrap();
    std::fs::write(dir.join("hosts"), "127.0.0.1 localhost\n").unwrap();
    let sink = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
s.settimeout(20)
open(sys.argv[1] + "/ready", "w").close()
n = 0
try:
    while True:
        s.recv(512)
        n += 1
        open(sys.argv[1] + "/queries", "w").write(str(n))
except OSError:
    pass
"#;
    std::fs::write(dir.join("sink.py"), sink).unwrap();
    let script = r#"
set -u
D=$0; B=$1
ip link set lo up
mount --bind "$D/resolv.conf" /etc/resolv.conf
mount --bind "$D/nsswitch.conf" /etc/nsswitch.conf
mount --bind "$D/hosts" /etc/hosts
python3 "$D/sink.py" "$D" & sink=$!
i=0; while [ ! -e "$D/ready" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
for cmd in "connect never-answered.example 80" "resolve never-answered.example"; do
  t0=$(date +%s.%N)
  $B $cmd --dns-timeout 1 </dev/null 2>"$D/err"; rc=$?
  t1=$(date +%s.%N)
  echo "$rc $t0 $t1 $(cat "$D/err")"
done
kill $sink
"#;
    let mut c = Command::new("unshare");
    c.args(["-rmn", "sh", "-c", script])
        .arg(&dir)
        .arg(common::bin())
        .stdin(Stdio::null());
    let out = common::run(&mut c, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    for line in lines {
        let w: Vec<&str> = line.splitn(4, ' ').collect();
        let took: f64 = w[2].parse::<f64>().unwrap() - w[1].parse::<f64>().unwrap();
        assert_eq!(w[0], "5", "exit code of a timeout: {line}");
        assert!(w[3].contains("getaddrinfo: timed out"), "{line}");
        assert!((1.0..3.0).contains(&took), "took {took:.3} s: {line}");
    }
    let queries = std::fs::read_to_string(dir.join("queries")).unwrap_or_default();
    assert!(
        queries.parse::<u32>().unwrap_or(0) >= 1,
        "the lookup never reached the namespace's resolver"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child with every stream piped: stdout bytes and stderr lines arrive on channels.
struct Piped {
    child: std::process::Child,
    out: std::sync::mpsc::Receiver<Vec<u8>>,
    err: std::sync::mpsc::Receiver<String>,
}

impl Piped {
    fn spawn(cmd: &mut Command) -> Piped {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (otx, out) = std::sync::mpsc::channel();
        let mut so = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = so.read(&mut buf) {
                if otx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let (etx, err) = std::sync::mpsc::channel();
        let se = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(se).lines().map_while(Result::ok) {
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        Piped { child, out, err }
    }

    /// The next stderr line that satisfies `want`, within `limit`.
    fn err_line(&self, limit: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) if want(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!("no such stderr line within {limit:?}"),
            }
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigusr1_prints_the_totals_of_a_connect_transfer() {
    let server = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    let to = server.addr().to_string();
    let mut p = Piped::spawn(&mut sockit(&["connect", "--json", &to]));
    // The connected event says the relay is about to start (the handler is in place).
    p.err_line(T, |l| l.contains(r#""event":"connected""#));
    p.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello\n")
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 6 {
        got.extend(p.out.recv_timeout(T).expect("the echo"));
    }
    let _ = Command::new("kill")
        .args(["-USR1", &p.child.id().to_string()])
        .status();
    let line = p.err_line(T, |l| l.contains(r#""event":"stats""#));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["bytes_sent"].as_u64(), v["bytes_received"].as_u64()),
        (Some(6), Some(6)),
        "{line}"
    );
    // Still relaying.
    p.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"again\n")
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 6 {
        got.extend(p.out.recv_timeout(T).expect("the second echo"));
    }
    assert_eq!(got, b"again\n");
}

#[test]
fn listen_prints_text_totals_every_interval() {
    let port = common::free_port();
    let p = Piped::spawn(&mut sockit(&[
        "listen",
        "127.0.0.1",
        &port.to_string(),
        "--stats-interval",
        "0.2",
    ]));
    common::wait_listening(port, false);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"12345").unwrap();
    let line = p.err_line(T, |l| {
        l.starts_with("sockit: stats: 0 bytes sent, 5 bytes received, ")
    });
    assert!(line.ends_with(" s"), "{line}");
}

/// `-v` on a terminal: a progress line (bytes each way, rate) on stderr, redrawn while the
/// transfer runs; never when stderr is not a terminal.
#[test]
fn connect_shows_progress_on_a_terminal_only() {
    require_peer!("script");
    let server = common::sockit_server(&["echo-server", "127.0.0.1:0"]);
    let dir = common::temp_dir("progress");
    std::fs::write(dir.join("in"), "a\nb\nc\nd\n").unwrap();
    // -d 0.3: four lines take about a second, so the line is drawn a few times.
    let cmd = format!(
        "{} connect -v -d 0.3 {} < {} > /dev/null",
        common::bin().display(),
        server.addr(),
        dir.join("in").display()
    );
    let out = common::run(
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null()),
        T,
    );
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        tty.contains("↑ 2 B  ↓ 2 B") && tty.contains(" B/s"),
        "no progress line: {tty:?}"
    );
    // Not a terminal: only the -v lines.
    let piped = common::run_with_input(
        &mut sockit(&["connect", "-v", &server.addr().to_string()]),
        b"a\n",
        T,
    );
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains('↑') && !err.contains('\r'), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bars (filled rectangles) and the text of an SVG, from its parsed XML (python3's
/// xml.etree: the file must parse).
fn svg_bars_and_text(path: &std::path::Path) -> (usize, String) {
    let script = r##"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
# the bars: filled, not white (the background and plot area are white)
bars = [r for r in root.iter(ns + "rect")
        if r.get("fill") not in (None, "none", "#FFFFFF", "#ffffff", "white")]
print(len(bars))
print("|".join(t.text or "" for t in root.iter(ns + "text")))
"##;
    let out = common::run(crate::peers::python3().arg("-c").arg(script).arg(path), T);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (n, rest) = text.split_once('\n').expect("two lines");
    (n.trim().parse().expect("a count"), rest.to_string())
}

#[test]
fn http_plot_draws_the_phases_and_their_spread() {
    let server = crate::http::http_server(&[]);
    let url = crate::http::url(&server, "/file");
    let dir = common::temp_dir("http-plot");
    let one = dir.join("one.svg");
    let out = common::run(
        &mut sockit(&[
            "http",
            "-s",
            "-o",
            "/dev/null",
            "--plot",
            one.to_str().unwrap(),
            &url,
        ]),
        T,
    );
    assert!(out.status.success(), "{out:?}");
    let (bars, text) = svg_bars_and_text(&one);
    // plain HTTP: lookup, connect, request sent, first byte, body
    assert_eq!(bars, 5, "{text}");
    for phase in [
        "name lookup",
        "connect",
        "request sent",
        "first byte",
        "body",
    ] {
        assert!(text.contains(phase), "{phase} missing: {text}");
    }
    let many = dir.join("many.svg");
    let out = common::run(
        &mut sockit(&[
            "http",
            "-s",
            "-o",
            "/dev/null",
            "--repeat",
            "20",
            "--plot",
            many.to_str().unwrap(),
            &url,
        ]),
        T,
    );
    assert!(out.status.success(), "{out:?}");
    let (bars, text) = svg_bars_and_text(&many);
    assert_eq!(bars, 5, "{text}");
    assert!(
        text.contains("20 runs of GET") && text.contains("total (n=20)"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sockit completions bash`, loaded in `bash -c`, completes subcommand names and their
/// options.
#[test]
fn bash_completion_completes_subcommands_and_options() {
    let dir = common::temp_dir("completions");
    let script = dir.join("sockit.bash");
    let out = common::run(&mut sockit(&["completions", "bash"]), T);
    assert!(out.status.success(), "{out:?}");
    std::fs::write(&script, &out.stdout).unwrap();
    let complete = |words: &str| -> Vec<String> {
        let body = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _sockit sockit \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = common::run(Command::new("bash").args(["-c", &body]), T);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    assert_eq!(complete("sockit ec"), ["echo-server"]);
    let all = complete("sockit ''");
    for sub in [
        "connect",
        "listen",
        "forward",
        "proxy",
        "man",
        "completions",
        "tour",
    ] {
        assert!(all.iter().any(|w| w == sub), "{sub} missing: {all:?}");
    }
    assert_eq!(complete("sockit connect --stats-i"), ["--stats-interval"]);
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = common::run(&mut sockit(&["completions", shell]), T);
        assert!(
            out.status.success() && out.stdout.len() > 1000,
            "{shell}: {out:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sockit man [SUBCOMMAND]` renders with `man --warnings` at 80 columns without a
/// warning, for sockit(1) and every subcommand's page.
#[test]
fn every_man_page_renders_without_warnings() {
    require_peer!("man");
    let list = common::run(&mut sockit(&["man", "--list"]), T);
    assert!(list.status.success(), "{list:?}");
    let mut pages = vec![String::new()];
    pages.extend(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(String::from),
    );
    assert!(
        pages.len() > 10 && pages.iter().any(|p| p == "connect"),
        "{pages:?}"
    );
    let dir = common::temp_dir("man");
    for page in &pages {
        let mut args = vec!["man"];
        if !page.is_empty() {
            args.push(page);
        }
        let roff = common::run(&mut sockit(&args), T);
        assert!(roff.status.success(), "{page}: {roff:?}");
        let file = dir.join("page.1");
        std::fs::write(&file, &roff.stdout).unwrap();
        let shown = common::run(
            Command::new("man")
                .args(["--warnings", "-E", "UTF-8", "-l"])
                .arg(&file)
                .env("MANWIDTH", "80")
                .env("MANPAGER", "cat")
                .env("PAGER", "cat"),
            T,
        );
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.status.success() && shown.stderr.is_empty(),
            "sockit man {page}: {}",
            String::from_utf8_lossy(&shown.stderr)
        );
        let name = if page.is_empty() {
            "sockit".to_string()
        } else {
            format!("sockit-{page}")
        };
        assert!(text.starts_with(&format!("{name}(1)")), "{page}: {text}");
        assert!(
            text.lines().all(|l| l.chars().count() <= 80),
            "{page}: wider than 80"
        );
    }
    // The long explanations -h leaves out are in the page.
    let fwd = common::run(&mut sockit(&["man", "forward"]), T);
    assert!(String::from_utf8_lossy(&fwd.stdout).contains("5353 127.0.0.1:53"));
    let short = common::run(&mut sockit(&["forward", "-h"]), T);
    assert!(!String::from_utf8_lossy(&short.stdout).contains("5353 127.0.0.1:53"));
    common::assert_fails_with(
        &common::run(&mut sockit(&["man", "nosuch"]), T),
        2,
        "no subcommand \"nosuch\"",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Help made for a terminal: options under headings, the top level points to the tour.
#[test]
fn help_is_grouped_and_points_to_the_tour() {
    let top = common::run(&mut sockit(&["-h"]), T);
    assert!(String::from_utf8_lossy(&top.stdout).contains("Start with `sockit tour`"));
    let listen = common::run(&mut sockit(&["listen", "-h"]), T);
    let text = String::from_utf8_lossy(&listen.stdout);
    for heading in ["Connection:", "Data:", "TLS:", "Output:", "Limits:"] {
        assert!(
            text.lines().any(|l| l == heading),
            "{heading} missing:\n{text}"
        );
    }
    // Wrapped: no line wider than clap's width for a pipe (100 columns).
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    // Regression: bench, http and scan listed every option under `Options:`.
    for (cmd, headings) in [
        ("bench", &["Connection:", "Data:", "Output:", "Limits:"][..]),
        (
            "http",
            &["Connection:", "Data:", "TLS:", "Output:", "Limits:"][..],
        ),
        ("scan", &["Connection:", "Output:", "Limits:"][..]),
    ] {
        let out = common::run(&mut sockit(&[cmd, "-h"]), T);
        let text = String::from_utf8_lossy(&out.stdout);
        for heading in headings {
            assert!(
                text.lines().any(|l| l == *heading),
                "{cmd} {heading}:\n{text}"
            );
        }
        // what stays under Options: is the command's own few (and -h, -V)
        let options = text
            .split("\nOptions:\n")
            .nth(1)
            .and_then(|t| t.split("\n\n").next())
            .unwrap_or("");
        assert!(options.lines().count() <= 8, "{cmd}:\n{options}");
    }
}

// Regression: open UDP sessions (forward -u) showed 0 bytes/datagrams in the SIGUSR1 totals
// until they ended, and their `closed … drained` came before `stopping`.
#[test]
fn open_udp_sessions_count_live_and_close_after_stopping() {
    let echo = common::sockit_server(&["echo-server", "-u", "127.0.0.1:0"]);
    let fwd = common::sockit_server(&[
        "forward",
        "-u",
        "--json",
        "127.0.0.1:0",
        &format!("127.0.0.1:{}", echo.port),
    ]);
    let to = format!("127.0.0.1:{}", fwd.port);
    for i in 0..3 {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c.send_to(format!("dg{i}").as_bytes(), &to).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(c.recv(&mut buf).unwrap(), 3, "echoed");
    }
    let _ = Command::new("kill")
        .args(["-USR1", &fwd.child.id().to_string()])
        .status();
    let stats = loop {
        let line = fwd.next_line(T).expect("the stats line");
        if line.contains(r#""event":"stats""#) {
            break serde_json::from_str::<serde_json::Value>(&line).expect("JSON");
        }
    };
    assert_eq!(stats["active"].as_u64(), Some(3), "{stats}");
    assert_eq!(stats["bytes_sent"].as_u64(), Some(9), "{stats}");
    assert_eq!(stats["bytes_received"].as_u64(), Some(9), "{stats}");
    assert_eq!(stats["datagrams_received"].as_u64(), Some(3), "{stats}");
    let _ = Command::new("kill")
        .args(["-TERM", &fwd.child.id().to_string()])
        .status();
    let mut events = Vec::new();
    while let Some(line) = fwd.next_line(T) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        events.push(v["event"].as_str().unwrap_or("").to_string());
        if v["event"] == "stopped" {
            break;
        }
    }
    assert_eq!(
        events,
        ["stopping", "closed", "closed", "closed", "stopped"],
        "stopping first"
    );
}

// Regression: forward and listen served the first inherited socket and silently left the
// others (their clients hung in the backlog); now a clear error (exit 2) as echo-server's.
// An explicit address beside inherited sockets is not bound, and a warning says so.
#[test]
fn inherited_sockets_left_unserved_are_an_error() {
    for args in [
        &["forward", "127.0.0.1:0", "127.0.0.1:9"][..],
        &["listen", "-k", "127.0.0.1", "0"][..],
    ] {
        let out = common::run(
            activated(&["tcp", "tcp"], "ours", args).stdin(Stdio::null()),
            T,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            err.contains("sockets passed in LISTEN_FDS (tcp 127.0.0.1 ")
                && err.contains("unserved: tcp"),
            "{args:?}: {err}"
        );
    }
    let mut c = activated(&["tcp"], "ours", &["echo-server", "127.0.0.1:7"]);
    c.stdin(Stdio::piped()).stderr(Stdio::piped());
    let mut server = common::spawn_listening(&mut c);
    echo_once(server.addr());
    assert_eq!(server.terminate(T).and_then(|s| s.code()), Some(0));
    let mut err = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("the address given is not bound"), "{err}");
}

// Regression: `--metrics 0.0.0.0:0` bound without a word, and proxy's non-loopback
// warning went only to stdout under --json; both now warn on stderr (in a namespace).
#[test]
fn exposed_endpoints_warn_on_stderr() {
    let script = r#"
B="$0"; ip link set lo up || exit 97
echo "== metrics"; timeout 2 "$B" echo-server --json --metrics 0.0.0.0:0 127.0.0.1:0 2>&1 >/dev/null
echo "== proxy"; timeout 2 "$B" proxy --json 0.0.0.0:0 2>&1 >/dev/null
true
"#;
    let Some(out) = common::in_netns(script, Duration::from_secs(30)) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (metrics, proxy) = text.split_once("== proxy").expect("two sections");
    assert!(
        metrics.contains("sockit: warning: --metrics on 0.0.0.0 "),
        "{text}"
    );
    assert!(
        proxy.contains("sockit: warning: proxy on 0.0.0.0 "),
        "{text}"
    );
}
