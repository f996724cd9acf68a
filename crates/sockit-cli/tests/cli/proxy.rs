//! `sockit proxy` against real clients: curl (every proxy mode), ncat, proxychains4, a UDP
//! ASSOCIATE client (the async-socks5 crate); every malformed handshake; credentials;
//! the destination policy under `no-dns`.
//!
//! Everything listens on 127.0.0.1 with port 0 and is given numeric destinations, except
//! the destination-policy case, which runs whole inside `../shared/tools/no-dns` with a
//! hosts file naming its test hosts.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

/// `sockit proxy 127.0.0.1:0 --json ARGS…`; its events are read from stdout.
fn proxy(args: &[&str]) -> Server {
    let mut all = vec!["proxy", "127.0.0.1:0", "--json"];
    all.extend_from_slice(args);
    sockit_server(&all)
}

/// Reads the proxy's JSON events until one matches `want`; panics naming what was seen.
fn wait_event(server: &Server, want: impl Fn(&Value) -> bool, what: &str) -> Value {
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(line) = server.next_line(Duration::from_millis(200)) {
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON event ({e}): {line}"));
            if want(&v) {
                return v;
            }
            seen.push(line);
        }
    }
    panic!(
        "no event {what} within {LIMIT:?}; saw:\n{}",
        seen.join("\n")
    );
}

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event
}

/// A directory with a 10 MiB file `big.bin`, and its bytes.
fn big_file(tag: &str) -> (PathBuf, Vec<u8>) {
    let dir = temp_dir(tag);
    let data = pattern(10 << 20, 13);
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    (dir, data)
}

/// Python's http.server serving `dir` on 127.0.0.1, port 0.
fn web(dir: &Path) -> Server {
    let script = "import functools, http.server, sys\n\
        h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
        h.log_message = lambda *a: None\n\
        s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n\
        print('listening 127.0.0.1', s.server_address[1], flush=True)\n\
        s.serve_forever()\n";
    let mut c = python3();
    c.arg("-c")
        .arg(script)
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    spawn_listening(&mut c)
}

/// `curl -s -S -o OUT ARGS… URL`, bounded.
fn curl(args: &[&str], out: &Path, url: &str) -> std::process::Output {
    let mut c = std::process::Command::new("curl");
    c.args(["-s", "-S", "--max-time", "20", "-o"])
        .arg(out)
        .args(args)
        .arg(url);
    run(&mut c, LIMIT)
}

// 10 MiB byte-identical through every curl proxy mode, each seen as its protocol.
#[test]
fn curl_every_mode_ten_mib() {
    require_peer!("curl");
    let (dir, data) = big_file("proxy-curl");
    let site = web(&dir);
    let px = proxy(&[]);
    let p = format!("127.0.0.1:{}", px.port);
    let url = format!("http://127.0.0.1:{}/big.bin", site.port);
    let hp = format!("http://{p}");
    let modes: [(&[&str], &str, &str); 6] = [
        (&["--socks5", &p], "socks5", "connect"),
        (&["--socks5-hostname", &p], "socks5", "connect"),
        (&["--socks4", &p], "socks4", "connect"),
        (&["--socks4a", &p], "socks4", "connect"),
        (&["-x", &hp], "http", "forward"),
        (&["-p", "-x", &hp], "http", "connect"),
    ];
    for (flags, protocol, command) in modes {
        let out = dir.join("got.bin");
        let _ = std::fs::remove_file(&out);
        let r = curl(flags, &out, &url);
        assert!(
            r.status.success(),
            "curl {flags:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_bytes_eq(
            &std::fs::read(&out).unwrap(),
            &data,
            &format!("curl {flags:?}"),
        );
        let req = wait_event(&px, is("request"), "request");
        assert_eq!(
            (req["protocol"].as_str(), req["command"].as_str()),
            (Some(protocol), Some(command)),
            "{flags:?}: {req}"
        );
        assert_eq!(req["target_port"], site.port, "{req}");
        let conn = wait_event(&px, is("connected"), "connected");
        assert_eq!(conn["target_host"], "127.0.0.1");
        let closed = wait_event(&px, is("closed"), "closed");
        assert!(
            closed["bytes_sent"].as_u64().unwrap() > data.len() as u64,
            "{flags:?}: {closed}"
        );
        assert_eq!(closed["reason"], "eof", "{closed}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ncat as the proxy client, each type, 10 MiB to an echo server and back.
#[test]
fn ncat_every_type_ten_mib() {
    require_peer!("ncat");
    let echo = sockit_server(&["echo-server", "127.0.0.1", "0"]);
    let px = proxy(&[]);
    let data = pattern(10 << 20, 7);
    for t in ["socks5", "socks4", "http"] {
        let mut c = std::process::Command::new("ncat");
        c.args([
            "--proxy",
            &format!("127.0.0.1:{}", px.port),
            "--proxy-type",
            t,
        ])
        .args(["127.0.0.1", &echo.port.to_string()]);
        let out = run_with_input(&mut c, &data, LIMIT);
        assert!(
            out.status.success(),
            "ncat {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(&out.stdout, &data, &format!("ncat --proxy-type {t}"));
        let req = wait_event(&px, is("request"), "request");
        assert_eq!(req["protocol"], t, "{req}");
    }
}

// proxychains4 runs curl through the proxy: strict_chain, no localnet line (which would
// let loopback bypass the proxy), each proxy type.
#[test]
fn proxychains_every_type() {
    require_peer!("proxychains4");
    require_peer!("curl");
    let (dir, data) = big_file("proxy-chains");
    let site = web(&dir);
    let px = proxy(&[]);
    for t in ["socks5", "socks4", "http"] {
        let conf = dir.join("proxychains.conf");
        std::fs::write(
            &conf,
            format!(
                "strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n\
                 [ProxyList]\n{t} 127.0.0.1 {}\n",
                px.port
            ),
        )
        .unwrap();
        let out = dir.join("got.bin");
        let _ = std::fs::remove_file(&out);
        let mut c = std::process::Command::new("proxychains4");
        c.arg("-f")
            .arg(&conf)
            .args(["curl", "-s", "-S", "--max-time", "20", "-o"])
            .arg(&out)
            .arg(format!("http://127.0.0.1:{}/big.bin", site.port));
        let r = run(&mut c, LIMIT);
        assert!(
            r.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_bytes_eq(
            &std::fs::read(&out).unwrap(),
            &data,
            &format!("proxychains {t}"),
        );
        let req = wait_event(&px, is("request"), "request");
        assert_eq!(
            req["protocol"], t,
            "the connection went through the proxy: {req}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// A real UDP ASSOCIATE client: datagrams reach a UDP echo server and come back.
#[test]
fn udp_associate_round_trips() {
    let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    echo.set_read_timeout(Some(LIMIT)).unwrap();
    let echoer = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            let Ok((n, from)) = echo.recv_from(&mut buf) else {
                return;
            };
            echo.send_to(&buf[..n], from).unwrap();
        }
    });
    let px = proxy(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", px.port))
            .await
            .unwrap();
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let assoc = async_socks5::SocksDatagram::associate(tcp, udp, None, None::<SocketAddr>)
            .await
            .unwrap();
        for payload in [&b"first datagram"[..], b"x", &[0u8; 1400][..]] {
            assoc.send_to(payload, echo_addr).await.unwrap();
            let mut buf = vec![0u8; payload.len()];
            let (n, from) = tokio::time::timeout(LIMIT, assoc.recv_from(&mut buf))
                .await
                .expect("no datagram back within the limit")
                .unwrap();
            assert_eq!(&buf[..n], payload);
            assert!(
                matches!(from, async_socks5::AddrKind::Ip(a) if a == echo_addr),
                "{from:?}"
            );
        }
    });
    echoer.join().unwrap();
    let req = wait_event(&px, is("request"), "request");
    assert_eq!(req["command"], "udp_associate", "{req}");
    let closed = wait_event(&px, is("closed"), "closed");
    assert_eq!(
        (
            closed["datagrams_received"].as_u64(),
            closed["datagrams_sent"].as_u64()
        ),
        (Some(3), Some(3)),
        "{closed}"
    );
}

/// Sends `bytes` to the proxy (then half-closes when `close`), and returns everything
/// it answered until it closed.
fn exchange(port: u16, bytes: &[u8], close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(bytes).unwrap();
    if close {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A valid SOCKS5 CONNECT to `target` works (the proxy still serves clients).
fn still_serving(px: &Server, target: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", px.port)).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let [hi, lo] = target.to_be_bytes();
    s.write_all(&[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, hi, lo])
        .unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..4], [5, 0, 5, 0], "{reply:?}");
    wait_event(px, is("connected"), "connected of the next client");
}

// Every malformed handshake of the README's table: its reply, a handshake_failed event
// with its reason, and the proxy still serving the next client.
#[test]
fn malformed_handshakes_get_their_replies() {
    let site = web(&temp_dir("proxy-malformed"));
    let px = proxy(&["--handshake-timeout", "0.5"]);
    let s5 = |rep: u8| [5, rep, 0, 1, 0, 0, 0, 0, 0, 0].to_vec();
    let mut flood = b"CONNECT 127.0.0.1:80 HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        flood.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    // (case, bytes sent, half-close after them, the event's reason, the reply)
    type Case = (&'static str, Vec<u8>, bool, &'static str, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "unknown first byte",
            vec![0x16, 3, 1, 0],
            false,
            "unknown_protocol",
            vec![],
        ),
        (
            "bad version",
            [&[5, 1, 0][..], &[4, 1, 0, 1]].concat(),
            false,
            "bad_version",
            [vec![5, 0], s5(1)].concat(),
        ),
        (
            "truncated greeting",
            vec![5, 2, 0],
            true,
            "truncated",
            vec![5, 0xFF],
        ),
        (
            "zero methods",
            vec![5, 0],
            false,
            "no_methods",
            vec![5, 0xFF],
        ),
        (
            "unknown address type",
            [&[5, 1, 0][..], &[5, 1, 0, 9]].concat(),
            false,
            "bad_address_type",
            [vec![5, 0], s5(8)].concat(),
        ),
        (
            "zero-length domain",
            [&[5, 1, 0][..], &[5, 1, 0, 3, 0, 0, 80]].concat(),
            false,
            "empty_domain",
            [vec![5, 0], s5(1)].concat(),
        ),
        (
            "handshake stops halfway",
            [&[5, 1, 0][..], &[5, 1, 0, 1, 127]].concat(),
            false,
            "timeout",
            [vec![5, 0], s5(1)].concat(),
        ),
        (
            "SOCKS4 stops halfway",
            vec![4, 1, 0, 80],
            false,
            "timeout",
            vec![0, 91, 0, 0, 0, 0, 0, 0],
        ),
    ];
    for (name, bytes, close, reason, reply) in cases {
        let got = exchange(px.port, &bytes, close);
        assert_eq!(got, reply, "{name}");
        let ev = wait_event(&px, is("handshake_failed"), name);
        assert_eq!(ev["reason"], reason, "{name}: {ev}");
        still_serving(&px, site.port);
    }
    let http_cases: [(&str, Vec<u8>, &str, &str); 3] = [
        (
            "CONNECT without a port",
            b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n".to_vec(),
            "no_port",
            "HTTP/1.1 400 ",
        ),
        ("header flood", flood, "header_flood", "HTTP/1.1 431 "),
        (
            "HTTP head stops halfway",
            b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: a".to_vec(),
            "timeout",
            "HTTP/1.1 408 ",
        ),
    ];
    for (name, bytes, reason, status) in http_cases {
        let got = String::from_utf8(exchange(px.port, &bytes, false)).unwrap();
        assert!(got.starts_with(status), "{name}: {got}");
        assert!(got.contains("Connection: close\r\n"), "{name}: {got}");
        let ev = wait_event(&px, is("handshake_failed"), name);
        assert_eq!(ev["reason"], reason, "{name}: {ev}");
        still_serving(&px, site.port);
    }
}

// Credentials: right ones pass, wrong ones are refused, for SOCKS5 and for HTTP (curl and
// ncat); SOCKS4, which has no password, is refused.
#[test]
fn auth_right_and_wrong() {
    require_peer!("curl");
    let dir = temp_dir("proxy-auth");
    std::fs::write(dir.join("index.html"), b"hello through the proxy\n").unwrap();
    let site = web(&dir);
    let px = proxy(&["--auth", "alice:s3cret", "--auth", "bob:pw"]);
    let p = format!("127.0.0.1:{}", px.port);
    let url = format!("http://127.0.0.1:{}/index.html", site.port);
    let out = dir.join("got");
    let ok = curl(
        &["--socks5", &p, "--proxy-user", "alice:s3cret"],
        &out,
        &url,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let req = wait_event(&px, is("request"), "request");
    assert_eq!(req["user"], "alice", "{req}");
    let bad = curl(&["--socks5", &p, "-U", "alice:wrong"], &out, &url);
    assert!(!bad.status.success());
    let ev = wait_event(&px, is("handshake_failed"), "auth_failed");
    assert_eq!(
        (ev["reason"].as_str(), ev["protocol"].as_str()),
        (Some("auth_failed"), Some("socks5"))
    );
    // HTTP: CONNECT (-p) and a plain request, right and wrong.
    let ok = curl(&["-p", "-x", &format!("http://bob:pw@{p}")], &out, &url);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(wait_event(&px, is("request"), "request")["user"], "bob");
    let wrong = curl(
        &["-x", &format!("http://bob:nope@{p}"), "-w", "%{http_code}"],
        &out,
        &url,
    );
    assert_eq!(String::from_utf8_lossy(&wrong.stdout), "407");
    let ev = wait_event(&px, is("handshake_failed"), "auth_failed");
    assert_eq!(
        (ev["reason"].as_str(), ev["protocol"].as_str()),
        (Some("auth_failed"), Some("http"))
    );
    let none = curl(&["--socks4", &p], &out, &url);
    assert!(!none.status.success());
    let ev = wait_event(&px, is("handshake_failed"), "socks4 refused");
    assert_eq!(ev["reason"], "auth_failed", "{ev}");
    // ncat with --proxy-auth, both types.
    if require("ncat") {
        for t in ["socks5", "http"] {
            let mut c = std::process::Command::new("ncat");
            c.args([
                "--proxy",
                &p,
                "--proxy-type",
                t,
                "--proxy-auth",
                "alice:s3cret",
            ])
            .args(["127.0.0.1", &site.port.to_string()]);
            let out = run_with_input(&mut c, b"GET /index.html HTTP/1.0\r\n\r\n", LIMIT);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("hello through the proxy"), "ncat {t}: {text}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// --deny-dest is checked on the resolved address: a name that resolves to 127.0.0.2 is
// refused, a name for 127.0.0.1 is let through (and refused by the closed port there).
// Runs whole inside no-dns, with a hosts entry for each name.
#[test]
fn deny_dest_checks_the_resolved_address() {
    require_peer!("curl");
    require_peer!("unshare");
    let dir = temp_dir("proxy-deny");
    let script = r#"
        set -u
        "$1" proxy 127.0.0.1:0 --json --deny-dest 127.0.0.2/32 > "$2/events" 2>&1 &
        pid=$!
        for i in $(seq 200); do [ -s "$2/events" ] && break; sleep 0.05; done
        port=$(head -1 "$2/events" | sed 's/.*"local_port":\([0-9]*\).*/\1/')
        curl -s --max-time 10 --socks5-hostname "127.0.0.1:$port" http://denied.test:80/ ; echo "denied $?"
        curl -s --max-time 10 --socks5-hostname "127.0.0.1:$port" http://allowed.test:9/ ; echo "allowed $?"
        curl -s --max-time 10 -p -x "http://127.0.0.1:$port" http://denied.test:80/ ; echo "http $?"
        kill "$pid"; wait "$pid"
    "#;
    let mut c = no_dns("bash", &["-c", script, "deny"]);
    c.arg(bin()).arg(&dir).env(
        "NO_DNS_HOSTS",
        "127.0.0.2 denied.test\n127.0.0.1 allowed.test",
    );
    let out = run(&mut c, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = std::fs::read_to_string(dir.join("events")).unwrap_or_default();
    // curl's exit codes: 97 for a SOCKS refusal, 56 for a CONNECT refused with 403.
    assert!(stdout.contains("denied 97"), "{stdout}\n{events}");
    assert!(stdout.contains("allowed 97"), "{stdout}\n{events}");
    assert!(stdout.contains("http 56"), "{stdout}\n{events}");
    let failed: Vec<Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "connect_failed")
        .collect();
    assert_eq!(failed.len(), 3, "{events}");
    let msg = |i: usize| {
        failed[i]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        msg(0),
        "proxy: destination denied.test:80 (127.0.0.2:80) is denied",
        "{events}"
    );
    assert_eq!(failed[0]["error"]["kind"], "proxy");
    assert!(msg(1).contains("Connection refused"), "{events}");
    assert!(msg(2).contains("is denied"), "{events}");
    let _ = std::fs::remove_dir_all(&dir);
}

// A proxy bound beyond loopback without --auth warns on stderr (inside a namespace of the
// test's own, where 0.0.0.0 reaches nothing else).
#[test]
fn non_loopback_bind_without_auth_warns() {
    require_peer!("unshare");
    let script = r#"
        "$1" proxy 0.0.0.0:0 > /dev/null 2> "$2" &
        pid=$!
        for i in $(seq 200); do [ -s "$2" ] && break; sleep 0.05; done
        kill "$pid"; wait "$pid"
        cat "$2"
    "#;
    let dir = temp_dir("proxy-warn");
    let mut c = no_dns("bash", &["-c", script, "warn"]);
    c.arg(bin()).arg(dir.join("stderr"));
    let out = run(&mut c, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: proxy on 0.0.0.0 ") && text.contains("without --auth"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// Bad flags are usage errors naming the flag.
#[test]
fn bad_flags() {
    let out = run(&mut sockit(&["proxy", "--deny-dest", "10.0.0.0/33"]), LIMIT);
    assert_fails_with(&out, 2, "10.0.0.0/33");
    let out = run(&mut sockit(&["proxy", "--auth", "nocolon"]), LIMIT);
    assert_fails_with(&out, 2, "USER:PASS");
    let dir = temp_dir("proxy-authfile");
    let f = dir.join("users");
    std::fs::write(&f, "alice:1\nbroken\n").unwrap();
    let out = run(
        &mut sockit(&["proxy", "--auth-file", f.to_str().unwrap()]),
        LIMIT,
    );
    assert_fails_with(&out, 2, "line 2");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// The client side: `connect` and `forward` with --proxy.

/// A one-shot server for proxies that end both directions on a half-close (microsocks,
/// tinyproxy, ncat's): it reads `up` bytes from its first client and sends them back,
/// then sends `data` and closes, so the client never needs to half-close
/// (`--no-shutdown`) and both directions carry data. The script is also used inside
/// namespaces (`SOURCE_PY`).
fn source_server(data: &[u8], up: usize, dir: &Path) -> Server {
    let file = dir.join("source.bin");
    std::fs::write(&file, data).unwrap();
    let mut c = python3();
    c.arg("-c")
        .arg(SOURCE_PY)
        .arg(&file)
        .arg(up.to_string())
        .stdin(Stdio::null());
    spawn_listening(&mut c)
}

const SOURCE_PY: &str = "import socket, sys\n\
    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n\
    print('listening 127.0.0.1', s.getsockname()[1], flush=True)\n\
    s.settimeout(20); c, _ = s.accept(); c.settimeout(20)\n\
    want = int(sys.argv[2]); got = b''\n\
    while len(got) < want:\n\
    \x20   b = c.recv(65536)\n\
    \x20   if not b: break\n\
    \x20   got += b\n\
    c.sendall(got); c.sendall(open(sys.argv[1], 'rb').read()); c.close()\n";

/// The 64 KiB a client sends to a [`source_server`].
fn upload() -> Vec<u8> {
    pattern(64 << 10, 3)
}

/// `connect` through a proxy to `src` (a [`source_server`] for [`upload`]): the upload
/// comes back, then `data`.
fn check_source(proxy: &str, kind: &str, auth: &[&str], src: &Server, data: &[u8], what: &str) {
    let up = upload();
    let mut extra = auth.to_vec();
    extra.push("--no-shutdown");
    let out = run_with_input(&mut connect_via(proxy, kind, &extra, src.port), &up, LIMIT);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_bytes_eq(&out.stdout, &[&up[..], data].concat(), what);
}

fn connect_via(proxy: &str, kind: &str, extra: &[&str], target: u16) -> std::process::Command {
    let mut args = vec!["connect", "--proxy", proxy, "--proxy-type", kind];
    args.extend_from_slice(extra);
    let port = target.to_string();
    args.extend_from_slice(&["127.0.0.1", &port]);
    sockit(&args)
}

// `connect --proxy` through microsocks (SOCKS5 with credentials), danted (SOCKS4,
// SOCKS5: 10 MiB to an echo server and back) and tinyproxy (HTTP with Basic credentials);
// microsocks and tinyproxy end both directions on a half-close, so through them 64 KiB
// go up and come back, then 10 MiB come down: byte-identical through each.
#[test]
fn connect_through_third_party_proxies() {
    use crate::daemons::{danted, microsocks, tinyproxy};
    let data = pattern(10 << 20, 21);
    let echo = sockit_server(&["echo-server", "127.0.0.1", "0"]);
    let dir = temp_dir("proxy-connect");
    if require("microsocks") {
        let m = microsocks(Some(("user", "pass")));
        let p = format!("127.0.0.1:{}", m.port);
        let src = source_server(&data, upload().len(), &dir);
        let auth = ["--proxy-auth", "user:pass"];
        check_source(&p, "socks5", &auth, &src, &data, "connect via microsocks");
    }
    if require("danted") {
        let d = danted();
        let p = format!("127.0.0.1:{}", d.port);
        for kind in ["socks5", "socks4"] {
            let out = run_with_input(&mut connect_via(&p, kind, &[], echo.port), &data, LIMIT);
            assert!(
                out.status.success(),
                "{kind}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_bytes_eq(&out.stdout, &data, &format!("connect via danted {kind}"));
        }
    }
    if require("tinyproxy") {
        let src = source_server(&data, upload().len(), &dir);
        let t = tinyproxy(&[src.port, echo.port]);
        let p = format!("127.0.0.1:{}", t.port);
        let auth = ["--proxy-auth", "user:pass"];
        check_source(&p, "http", &auth, &src, &data, "connect via tinyproxy");
        // Without credentials: the proxy's refusal, exit 8.
        let out = run(&mut connect_via(&p, "http", &[], echo.port), LIMIT);
        assert_fails_with(
            &out,
            8,
            "proxy: HTTP CONNECT 407 Proxy Authentication Required",
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// A refusal is exit 8 with the proxy's reply; --proxy-dns none refuses a name (exit 2);
// --proxy with -u is refused.
#[test]
fn connect_proxy_errors() {
    let px = proxy(&[]);
    let p = format!("127.0.0.1:{}", px.port);
    let closed = closed_port();
    let out = run(&mut connect_via(&p, "socks5", &[], closed.port), LIMIT);
    assert_fails_with(
        &out,
        8,
        "proxy: SOCKS5 reply 5: connection refused by destination",
    );
    let out = run(&mut connect_via(&p, "socks4", &[], closed.port), LIMIT);
    assert_fails_with(
        &out,
        8,
        "proxy: SOCKS4 reply 91: request rejected or failed",
    );
    let out = run(&mut connect_via(&p, "http", &[], closed.port), LIMIT);
    assert_fails_with(&out, 8, "proxy: HTTP CONNECT 502 Bad Gateway");
    let out = run(
        &mut sockit(&[
            "connect",
            "--proxy",
            &p,
            "--proxy-dns",
            "none",
            "example.invalid",
            "80",
        ]),
        LIMIT,
    );
    assert_fails_with(&out, 2, "--proxy-dns none");
    let out = run(
        &mut sockit(&["connect", "-u", "--proxy", &p, "127.0.0.1", "9"]),
        LIMIT,
    );
    assert_fails_with(&out, 2, "TCP connections only");
    let out = run(
        &mut sockit(&["connect", "--proxy-type", "socks5", "127.0.0.1", "9"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "--proxy-type needs --proxy");
}

// `forward --proxy`: each client's connection to the target goes through the proxy;
// 10 MiB byte-identical through sockit's own proxy, each type.
#[test]
fn forward_through_a_proxy() {
    let data = pattern(10 << 20, 5);
    let echo = sockit_server(&["echo-server", "127.0.0.1", "0"]);
    let px = proxy(&[]);
    let p = format!("127.0.0.1:{}", px.port);
    for kind in ["socks5", "socks4", "http"] {
        let target = format!("127.0.0.1:{}", echo.port);
        let fwd = sockit_server(&[
            "forward",
            "127.0.0.1:0",
            &target,
            "--proxy",
            &p,
            "--proxy-type",
            kind,
            "--json",
        ]);
        let port = fwd.port.to_string();
        let out = run_with_input(&mut sockit(&["connect", "127.0.0.1", &port]), &data, LIMIT);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(&out.stdout, &data, &format!("forward via {kind}"));
        let req = wait_event(&px, is("request"), "request");
        assert_eq!(req["protocol"], kind, "{req}");
        // Regression: the connected event named the proxy as the target.
        let c = wait_event(&fwd, is("connected"), "connected");
        assert_eq!(c["target_port"], echo.port, "{c}");
        assert_eq!(c["proxy_port"], px.port, "{c}");
        assert_eq!(c["proxy_type"], kind, "{c}");
    }
    let out = run(
        &mut sockit(&["forward", "127.0.0.1:0", "udp:127.0.0.1:53", "--proxy", &p]),
        LIMIT,
    );
    assert_fails_with(&out, 2, "TCP targets only");
}

// Names go to sockit's proxy (remote DNS, SOCKS4a and SOCKS5) and are resolved there, or
// here (local); all under no-dns with a hosts entry, as no name may reach a real resolver.
#[test]
fn connect_names_through_sockit_proxy_under_no_dns() {
    require_peer!("unshare");
    let dir = temp_dir("proxy-names");
    let script = r#"
        set -u
        "$1" proxy 127.0.0.1:0 --json > "$2/events" 2>&1 &
        px=$!
        "$1" echo-server 127.0.0.1 0 > "$2/echo" 2>&1 &
        echo=$!
        for i in $(seq 200); do [ -s "$2/events" ] && [ -s "$2/echo" ] && break; sleep 0.05; done
        port=$(head -1 "$2/events" | sed 's/.*"local_port":\([0-9]*\).*/\1/')
        eport=$(head -1 "$2/echo" | cut -d' ' -f3)
        for t in socks4 socks5 http; do
          echo "hi $t" | "$1" connect --proxy "127.0.0.1:$port" --proxy-type $t named.test "$eport"
        done
        echo "hi local" | "$1" connect --proxy "127.0.0.1:$port" --proxy-type socks5 --proxy-dns local named.test "$eport"
        echo "hi both" | "$1" connect --proxy "127.0.0.1:$port" --proxy-type socks5 --proxy-dns both unknown.test "$eport"; echo "both $?"
        # http -x: socks5h sends the name, socks5 resolves it here (the echo server's
        # answer is no HTTP response: only the requests matter).
        "$1" http -s -o /dev/null --max-time 5 -x "socks5h://127.0.0.1:$port" "http://named.test:$eport/"
        "$1" http -s -o /dev/null --max-time 5 -x "socks5://127.0.0.1:$port" "http://named.test:$eport/"
        kill "$px" "$echo"; wait
    "#;
    let mut c = no_dns("bash", &["-c", script, "names"]);
    c.arg(bin())
        .arg(&dir)
        .env("NO_DNS_HOSTS", "127.0.0.1 named.test");
    let out = run(&mut c, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = std::fs::read_to_string(dir.join("events")).unwrap_or_default();
    for t in ["socks4", "socks5", "http", "local"] {
        assert!(
            stdout.contains(&format!("hi {t}\n")),
            "{t}: {stdout}\n{events}"
        );
    }
    let requests: Vec<Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "request")
        .collect();
    let hosts: Vec<&str> = requests
        .iter()
        .map(|r| r["target_host"].as_str().unwrap_or(""))
        .collect();
    // Remote DNS: the name reached the proxy (SOCKS4 as SOCKS4a); local: the address did;
    // both: a name that does not resolve here went to the proxy (which failed it too);
    // http -x socks5h:// sent the name, socks5:// the address.
    assert_eq!(
        hosts,
        [
            "named.test",
            "named.test",
            "named.test",
            "127.0.0.1",
            "unknown.test",
            "named.test",
            "127.0.0.1"
        ],
        "{events}"
    );
    assert!(stdout.contains("both 8"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ncat's HTTP proxy (`ncat -l --proxy-type http`) as the server for `connect --proxy`:
// ncat 7.93 listens on every interface whatever address it is given, so it runs only
// inside a network namespace of the test's own. It ends both directions on a half-close,
// so the target is the upload/download server.
#[test]
fn connect_through_ncat_http_proxy_in_a_namespace() {
    require_peer!("ncat");
    require_peer!("unshare");
    let dir = temp_dir("proxy-ncat-l");
    let data = pattern(10 << 20, 9);
    let up = upload();
    std::fs::write(dir.join("data"), &data).unwrap();
    std::fs::write(dir.join("up"), &up).unwrap();
    std::fs::write(dir.join("want"), [&up[..], &data].concat()).unwrap();
    std::fs::write(dir.join("source.py"), SOURCE_PY).unwrap();
    let script = r#"
        set -u
        python3 "$2/source.py" "$2/data" 65536 > "$2/src" 2>&1 &
        src=$!
        ncat -l 127.0.0.1 3128 --proxy-type http > /dev/null 2>&1 &
        nc=$!
        for i in $(seq 200); do [ -s "$2/src" ] && "$1" scan 127.0.0.1 3128 > /dev/null 2>&1 && break; sleep 0.05; done
        sport=$(head -1 "$2/src" | cut -d' ' -f3)
        "$1" connect --no-shutdown --proxy 127.0.0.1:3128 --proxy-type http 127.0.0.1 "$sport" < "$2/up" > "$2/back"
        echo "connect $?"
        cmp -s "$2/want" "$2/back" && echo same
        kill "$src" "$nc" 2>/dev/null; wait
    "#;
    let mut c = no_dns("bash", &["-c", script, "ncat"]);
    c.arg(bin()).arg(&dir);
    let out = run(&mut c, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("connect 0") && stdout.contains("same"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// `sockit http -x URL` (curl's): every scheme through sockit's proxy, 10 MiB
// byte-identical; http:// through an HTTP proxy goes as an absolute-URI request, with -p
// through CONNECT; wrong credentials are the proxy's own answer.
#[test]
fn http_x_every_scheme() {
    let (dir, data) = big_file("proxy-http-x");
    let site = web(&dir);
    let px = proxy(&[]);
    let url = format!("http://127.0.0.1:{}/big.bin", site.port);
    let p = px.port;
    let cases: [(String, &[&str], &str, &str); 7] = [
        (format!("socks4://127.0.0.1:{p}"), &[], "socks4", "connect"),
        (format!("socks4a://127.0.0.1:{p}"), &[], "socks4", "connect"),
        (format!("socks5://127.0.0.1:{p}"), &[], "socks5", "connect"),
        (format!("socks5h://127.0.0.1:{p}"), &[], "socks5", "connect"),
        (format!("http://127.0.0.1:{p}"), &[], "http", "forward"),
        (format!("127.0.0.1:{p}"), &["-p"], "http", "connect"),
        (
            format!("http://u:pw@127.0.0.1:{p}"),
            &["-U", "u:pw"],
            "http",
            "forward",
        ),
    ];
    for (x, extra, protocol, command) in cases {
        let out_file = dir.join("got.bin");
        let _ = std::fs::remove_file(&out_file);
        let mut c = sockit(&["http", "-s", "-x", &x]);
        c.args(extra).arg("-o").arg(&out_file).arg(&url);
        let out = run(&mut c, LIMIT);
        assert!(
            out.status.success(),
            "-x {x}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(
            &std::fs::read(&out_file).unwrap(),
            &data,
            &format!("http -x {x}"),
        );
        let req = wait_event(&px, is("request"), "request");
        assert_eq!(
            (req["protocol"].as_str(), req["command"].as_str()),
            (Some(protocol), Some(command)),
            "-x {x}: {req}"
        );
    }
    let authed = proxy(&["--auth", "u:pw"]);
    let x = format!("socks5h://u:bad@127.0.0.1:{}", authed.port);
    let out = run(&mut sockit(&["http", "-sS", "-x", &x, &url]), LIMIT);
    assert_fails_with(&out, 8, "SOCKS5 authentication failed");
    let out = run(
        &mut sockit(&["http", "-x", "https://127.0.0.1:1", &url]),
        LIMIT,
    );
    assert_fails_with(&out, 2, "https proxies are not supported");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_request_pipelined_after_the_first_head_never_reaches_the_origin() {
    // Regression (QA proxy-scan.md D4): a second plain-HTTP request sent after the first
    // head, before the answer, was relayed raw to the origin (its own URI and
    // Proxy-Authorization included).
    let (head_tx, head_rx) = std::sync::mpsc::channel();
    let (port, origin) = serve_one_client(move |mut s| {
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        head_tx.send(()).unwrap();
        // a slow origin: whatever else the proxy passes on arrives meanwhile
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .unwrap();
        got
    });
    let px = proxy(&[]);
    let script = "import socket, sys\n\
        c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)\n\
        c.sendall(('GET http://127.0.0.1:%s/a HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n' % sys.argv[2]).encode())\n\
        sys.stdin.readline()\n\
        c.sendall(b'GET http://127.0.0.2:9/b HTTP/1.1\\r\\nHost: b\\r\\nProxy-Authorization: Basic dTpw\\r\\n\\r\\n')\n\
        got = b''\n\
        while True:\n\
        \x20   d = c.recv(65536)\n\
        \x20   if not d: break\n\
        \x20   got += d\n\
        sys.stdout.write(got.decode())\n";
    let mut c = python3();
    c.arg("-c")
        .arg(script)
        .arg(px.port.to_string())
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("python3");
    head_rx
        .recv_timeout(LIMIT)
        .expect("the origin got the first head");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = wait_output(child, LIMIT);
    let seen = String::from_utf8_lossy(&origin.join().unwrap()).into_owned();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        seen,
        format!("GET /a HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
    );
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok"),
        "{answer}"
    );
    let warning = wait_event(&px, is("warning"), "warning");
    assert!(
        warning["message"]
            .as_str()
            .unwrap_or_default()
            .contains("pipelined"),
        "{warning}"
    );
}

#[test]
fn udp_associate_reports_each_datagram_at_vv() {
    // Regression (QA proxy-scan.md D5): `--json -vv` showed no per-datagram event for
    // relayed or dropped UDP ASSOCIATE datagrams, only the closed totals.
    let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    echo.set_read_timeout(Some(LIMIT)).unwrap();
    let echoer = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        if let Ok((n, from)) = echo.recv_from(&mut buf) {
            echo.send_to(&buf[..n], from).unwrap();
        }
    });
    let px = proxy(&["-vv"]);
    let mut tcp = TcpStream::connect(("127.0.0.1", px.port)).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.write_all(&[5, 1, 0]).unwrap();
    let mut two = [0u8; 2];
    tcp.read_exact(&mut two).unwrap();
    assert_eq!(two, [5, 0]);
    tcp.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    let mut reply = [0u8; 10];
    tcp.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..2], [5, 0]);
    let relay = SocketAddr::from((
        [reply[4], reply[5], reply[6], reply[7]],
        u16::from_be_bytes([reply[8], reply[9]]),
    ));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(LIMIT)).unwrap();
    let header = |frag: u8| {
        let mut h = vec![0, 0, frag, 1];
        h.extend_from_slice(&[127, 0, 0, 1]);
        h.extend_from_slice(&echo_addr.port().to_be_bytes());
        h
    };
    let mut d = header(0);
    d.extend_from_slice(b"ping");
    udp.send_to(&d, relay).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[n - 4..n], b"ping");
    echoer.join().unwrap();
    let mut frag = header(1);
    frag.extend_from_slice(b"x");
    udp.send_to(&frag, relay).unwrap();
    let me = udp.local_addr().unwrap().port();
    for direction in ["to_target", "to_client"] {
        let ev = wait_event(
            &px,
            |v| v["event"] == "datagram" && v["direction"] == direction,
            direction,
        );
        assert_eq!(
            (
                &ev["peer_host"],
                ev["peer_port"].as_u64(),
                &ev["target_host"],
                ev["target_port"].as_u64(),
                ev["bytes"].as_u64(),
                &ev["transport"]
            ),
            (
                &Value::from("127.0.0.1"),
                Some(u64::from(me)),
                &Value::from("127.0.0.1"),
                Some(u64::from(echo_addr.port())),
                Some(4),
                &Value::from("udp")
            ),
            "{ev}"
        );
    }
    let dropped = wait_event(&px, is("dropped"), "dropped");
    assert_eq!(dropped["reason"], "fragment", "{dropped}");
    assert_eq!(
        dropped["peer_port"].as_u64(),
        Some(u64::from(me)),
        "{dropped}"
    );
}

/// A SOCKS `BIND` client in Python: `bind.py PROXY_PORT VERSION DST MODE`, one JSON
/// object on stdout. MODE `ok`: a second socket connects to the first reply's address,
/// then 1 MiB each way, each side half-closing after its bytes; `wrong`: first a
/// connection from 127.0.0.1 (DST names 127.0.0.2), then one from 127.0.0.2; `timeout`:
/// waits for the second reply; `close`: closes after the first reply.
const BIND_PY: &str = r#"import json, socket, struct, sys, threading
# bind.py PROXY_PORT VERSION DST MODE: one SOCKS BIND; prints one JSON object.
port, ver, dst, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
T = 20
out = {}

def exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b

def reply(s):
    if ver == 4:
        r = exact(s, 8)
        return {"code": r[1], "host": socket.inet_ntoa(r[4:8]), "port": struct.unpack(">H", r[2:4])[0]}
    h = exact(s, 4)
    if h[3] == 1:
        a = socket.inet_ntoa(exact(s, 4))
    elif h[3] == 4:
        a = socket.inet_ntop(socket.AF_INET6, exact(s, 16))
    else:
        a = exact(s, exact(s, 1)[0]).decode()
    return {"code": h[1], "host": a, "port": struct.unpack(">H", exact(s, 2))[0]}

def pattern(n, seed):
    return bytes((i * seed + i // 251) & 0xFF for i in range(n))

c = socket.create_connection(("127.0.0.1", port), timeout=T)
if ver == 4:
    c.sendall(struct.pack(">BBH", 4, 2, 0) + socket.inet_aton(dst) + b"me\0")
else:
    c.sendall(b"\x05\x01\x00")
    assert exact(c, 2) == b"\x05\x00"
    c.sendall(b"\x05\x02\x00\x01" + socket.inet_aton(dst) + b"\x00\x00")
try:
    first = reply(c)
except EOFError as e:
    first = {"eof": str(e)}
out["first"] = first
if first.get("code") not in (0, 90):
    out["after"] = c.recv(100).hex() if True else ""
    print(json.dumps(out)); sys.exit(0)

def peer(src):
    p = socket.socket()
    p.settimeout(T)
    p.bind((src, 0))
    p.connect((first["host"], first["port"]))
    return p

if mode == "timeout":
    try:
        out["second"] = reply(c)
        out["after"] = c.recv(100).hex()
    except EOFError as e:
        out["second"] = {"eof": str(e)}
    print(json.dumps(out)); sys.exit(0)
if mode == "close":
    c.close()
    # The caller waits for the proxy's closed event, then runs mode "probe" (see below).
    print(json.dumps(out)); sys.exit(0)
if mode == "wrong":
    # dst names 127.0.0.2: a connection from 127.0.0.1 is refused, one from 127.0.0.2 taken
    try:
        w = peer("127.0.0.1")
        out["wrong_read"] = w.recv(10).hex()
    except OSError as e:
        out["wrong_read"] = type(e).__name__
    p = peer("127.0.0.2")
else:
    p = peer("127.0.0.1")
out["peer"] = {"host": p.getsockname()[0], "port": p.getsockname()[1]}
out["second"] = reply(c)
N = 1 << 20
a, b = pattern(N, 7), pattern(N, 13)
got = {}
def pump(src, dst_sock, data, key):
    dst_sock.sendall(data)
    dst_sock.shutdown(socket.SHUT_WR)
def drain(s, key):
    buf = bytearray()
    while True:
        x = s.recv(65536)
        if not x:
            break
        buf += x
    got[key] = bytes(buf)
ts = [threading.Thread(target=pump, args=(None, c, a, "a")), threading.Thread(target=pump, args=(None, p, b, "b")),
      threading.Thread(target=drain, args=(p, "at_peer")), threading.Thread(target=drain, args=(c, "at_client"))]
for t in ts: t.start()
for t in ts: t.join(T)
out["to_peer_identical"] = got.get("at_peer") == a
out["to_client_identical"] = got.get("at_client") == b
out["sizes"] = [len(got.get("at_peer", b"")), len(got.get("at_client", b""))]
print(json.dumps(out))
"#;

/// Runs [`BIND_PY`] against the SOCKS server on `port`.
fn bind_client(port: u16, version: u8, dst: &str, mode: &str) -> Value {
    let dir = temp_dir("bind-py");
    std::fs::write(dir.join("bind.py"), BIND_PY).unwrap();
    let out = python3()
        .arg(dir.join("bind.py"))
        .args([&port.to_string(), &version.to_string(), dst, mode])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "bind.py {version} {dst} {mode}: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The reply shapes of a served BIND, the same for sockit and danted: the first reply
/// names 127.0.0.1 and a port that accepted, the second the peer that connected; 1 MiB
/// each way arrived byte-identical, each direction's half-close passed on.
fn assert_bind_served(out: &Value, version: u8, what: &str) {
    let ok = if version == 4 { 90 } else { 0 };
    assert_eq!(out["first"]["code"], ok, "{what}: {out}");
    assert_eq!(out["first"]["host"], "127.0.0.1", "{what}: {out}");
    assert!(
        out["first"]["port"].as_u64().unwrap_or(0) > 0,
        "{what}: {out}"
    );
    assert_eq!(out["second"]["code"], ok, "{what}: {out}");
    assert_eq!(out["second"]["host"], out["peer"]["host"], "{what}: {out}");
    assert_eq!(out["second"]["port"], out["peer"]["port"], "{what}: {out}");
    assert_eq!(
        out["sizes"],
        serde_json::json!([1 << 20, 1 << 20]),
        "{what}: {out}"
    );
    assert_eq!(out["to_peer_identical"], true, "{what}: {out}");
    assert_eq!(out["to_client_identical"], true, "{what}: {out}");
}

// SOCKS5 and SOCKS4 BIND: two replies, 1 MiB each way, half-close; events bound and
// connected; a connection from another host than DST.ADDR is refused and the wait goes
// on; the same shapes from danted when it is installed.
#[test]
fn bind_serves_one_incoming_connection() {
    let px = proxy(&[]);
    for version in [5u8, 4] {
        let what = format!("sockit SOCKS{version} BIND");
        let out = bind_client(px.port, version, "127.0.0.1", "ok");
        assert_bind_served(&out, version, &what);
        let req = wait_event(&px, is("request"), "request");
        assert_eq!(req["command"], "bind", "{req}");
        let bound = wait_event(&px, is("bound"), "bound");
        assert_eq!(
            (&bound["local_host"], &bound["local_port"]),
            (&out["first"]["host"], &out["first"]["port"]),
            "{bound}"
        );
        let conn = wait_event(&px, is("connected"), "connected");
        assert_eq!(conn["target_port"], out["peer"]["port"], "{conn}");
        let closed = wait_event(&px, is("closed"), "closed");
        assert_eq!(
            (
                closed["bytes_sent"].as_u64(),
                closed["bytes_received"].as_u64()
            ),
            (Some(1 << 20), Some(1 << 20)),
            "{closed}"
        );

        let out = bind_client(px.port, version, "127.0.0.2", "wrong");
        assert_ne!(out["wrong_read"], "", "the wrong host got nothing: {out}");
        assert_bind_served(
            &out,
            version,
            &format!("SOCKS{version} BIND, wrong host first"),
        );
        let refused = wait_event(&px, is("refused"), "refused");
        assert_eq!(
            (&refused["reason"], &refused["peer_host"]),
            (&Value::from("unexpected_peer"), &Value::from("127.0.0.1")),
            "{refused}"
        );
        assert_eq!(
            wait_event(&px, is("connected"), "connected")["target_host"],
            "127.0.0.2"
        );
        wait_event(&px, is("closed"), "closed");
    }
    if require("danted") {
        let d = crate::daemons::danted();
        for version in [5u8, 4] {
            let out = bind_client(d.port, version, "127.0.0.1", "ok");
            assert_bind_served(&out, version, &format!("danted SOCKS{version} BIND"));
        }
    }
}

// BIND's failures: the timeout's failure reply, a client closing while it waits frees
// the socket, and --deny-dest refuses the request.
#[test]
fn bind_timeout_close_wrong_peer_and_denied() {
    let px = proxy(&["--bind-timeout", "1"]);
    for version in [5u8, 4] {
        let (ok, failure) = if version == 4 { (90, 91) } else { (0, 6) };
        let out = bind_client(px.port, version, "127.0.0.1", "timeout");
        assert_eq!(out["first"]["code"], ok, "{out}");
        assert_eq!(out["second"]["code"], failure, "{out}");
        assert_eq!(out["after"], "", "closed after the failure reply: {out}");
        let closed = wait_event(&px, is("closed"), "closed");
        assert_eq!(closed["error"]["kind"], "timeout", "{closed}");

        let out = bind_client(px.port, version, "127.0.0.1", "close");
        let port = out["first"]["port"].as_u64().unwrap() as u16;
        let closed = wait_event(&px, is("closed"), "closed");
        assert_eq!(closed["reason"], "eof", "{closed}");
        let e = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), LIMIT)
            .expect_err("the BIND socket is closed with its client");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    }
    let px = proxy(&["--deny-dest", "127.0.0.0/8"]);
    for (version, code) in [(5u8, 2), (4, 91)] {
        let out = bind_client(px.port, version, "127.0.0.1", "ok");
        assert_eq!(out["first"]["code"], code, "{out}");
        assert_eq!(out["after"], "", "closed after the refusal: {out}");
        // (connect_failed is one a second per cause: the closed event says it each time)
        let closed = wait_event(&px, is("closed"), "closed");
        assert_eq!(closed["error"]["kind"], "proxy", "{closed}");
    }
}
