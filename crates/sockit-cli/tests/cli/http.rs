//! Tests of `sockit http` (and TLS): Python's http.server with the handler in
//! `http_server.py`, certificates made here with rcgen, `openssl` as a TLS peer. The
//! side-by-side tests with curl are in `http_curl.rs`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// The bytes `/file` serves (see http_server.py).
pub(crate) fn file_bytes() -> Vec<u8> {
    let mut v: Vec<u8> = (0..4).flat_map(|_| 0u8..=255).collect();
    v.extend_from_slice(b"end of file\n");
    v
}

pub(crate) fn server_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/http_server.py")
}

/// The test's HTTP server on 127.0.0.1 (killed on drop).
pub(crate) fn http_server(extra: &[&str]) -> Server {
    let mut c = python3();
    c.arg(server_script()).args(extra).stdin(Stdio::null());
    spawn_listening(&mut c)
}

pub(crate) fn url(s: &Server, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", s.port)
}

/// `sockit http ARGS…` with no stdin, at most 10 s.
pub(crate) fn http(args: &[&str]) -> Output {
    let mut all = vec!["http"];
    all.extend_from_slice(args);
    run(&mut sockit(&all), LIMIT)
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn get_gives_the_file_bytes_and_status_200() {
    let s = http_server(&[]);
    let o = http(&[&url(&s, "/file")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, file_bytes());
    let o = http(&["--json", &url(&s, "/file")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["status"], 200);
    assert_eq!(j["body_bytes"], file_bytes().len());
}

#[test]
fn ipv6_literals_and_localhost_over_ipv4() {
    let s = http_server(&["--v6"]);
    let u = format!("http://[::1]:{}/redirect-abs", s.port);
    let o = http(&["-L", "--json", &u]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["peer_host"], "::1");
    assert_eq!(j["url"], format!("http://[::1]:{}/file", s.port));
    let o = http(&[&format!("http://[::1]:{}/headers", s.port)]);
    assert!(
        stdout(&o).contains(&format!("Host: [::1]:{}\n", s.port)),
        "{}",
        stdout(&o)
    );
    drop(s);
    // `localhost` with -4: an AF_INET lookup answered by /etc/hosts, no AAAA query.
    let s = http_server(&[]);
    let o = http(&["-4", &format!("http://localhost:{}/file", s.port)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, file_bytes());
}

#[test]
fn include_shows_status_line_and_headers_before_the_body() {
    let s = http_server(&[]);
    let o = http(&["-i", &url(&s, "/file")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let head_end = o
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("blank line after the head")
        + 4;
    let head = String::from_utf8_lossy(&o.stdout[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", file_bytes().len())),
        "{head}"
    );
    assert_eq!(&o.stdout[head_end..], file_bytes().as_slice());
}

#[test]
fn head_request_prints_the_head_only() {
    let s = http_server(&[]);
    let o = http(&["-I", &url(&s, "/file")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "{out:?}");
    assert!(out.contains("Content-Length: 1036\r\n"), "{out}");
}

#[test]
fn post_body_is_echoed() {
    let s = http_server(&[]);
    let o = http(&["--data", "a=1&b=two", &url(&s, "/echo")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "a=1&b=two");
    // Binary body from stdin with --data-file -, and another method with -X.
    let body = pattern(100_000, 6);
    let mut c = sockit(&["http", "-X", "PUT", "--data-file", "-", &url(&s, "/echo")]);
    let o = run_with_input(&mut c, &body, LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, body);
}

#[test]
fn request_has_host_user_agent_connection_close_and_extra_headers() {
    let s = http_server(&[]);
    let o = http(&["-H", "X-Test: yes", "-H", "Accept:", &url(&s, "/headers")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("GET /headers HTTP/1.1\n"), "{out}");
    assert!(
        out.contains(&format!("Host: 127.0.0.1:{}\n", s.port)),
        "{out}"
    );
    assert!(out.contains("User-Agent: sockit/"), "{out}");
    assert!(out.contains("Connection: close\n"), "{out}");
    assert!(out.contains("X-Test: yes\n"), "{out}");
    assert!(!out.contains("Accept:"), "{out}");
    let o = http(&["--http1.0", "-H", "User-Agent: other", &url(&s, "/headers")]);
    let out = stdout(&o);
    assert!(out.starts_with("GET /headers HTTP/1.0\n"), "{out}");
    assert!(
        out.contains("User-Agent: other\n") && !out.contains("sockit/"),
        "{out}"
    );
    // A header value with a line break would smuggle a header: refused.
    let o = http(&["-H", "X: a\r\nY: b", &url(&s, "/headers")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn redirect_is_shown_then_followed_with_l() {
    let s = http_server(&[]);
    let o = http(&[&url(&s, "/redirect")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "moved\n");
    let err = stderr(&o);
    assert!(err.contains("301") && err.contains("-L"), "{err}");

    let o = http(&["-L", &url(&s, "/redirect")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, file_bytes());

    let o = http(&["-L", "-i", &url(&s, "/redirect-abs")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("HTTP/1.1 302 Found\r\n"), "{out}");
    assert!(out.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"), "{out}");

    // 303 after POST: GET the new location.
    let o = http(&["-L", "--data", "x", "--json", &url(&s, "/see-other")]);
    let j = json(&o);
    assert_eq!(
        (j["status"].as_u64(), j["method"].as_str()),
        (Some(200), Some("GET"))
    );
    assert_eq!(j["redirects"], 1);

    // --json -L reports every exchange, not only the last one (the top level stays the last).
    let o = http(&["-L", "--json", &url(&s, "/redirect")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    let ex = j["exchanges"].as_array().expect("exchanges");
    assert_eq!(ex.len(), 2, "{j}");
    assert_eq!(ex[0]["url"], url(&s, "/redirect"));
    assert_eq!(ex[0]["status"], 301);
    assert!(
        ex[0]["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("location"))
                && h[1] == "/file"),
        "{j}"
    );
    assert!(ex[0]["time_starttransfer_us"].as_u64().is_some(), "{j}");
    assert_eq!(ex[1]["url"], url(&s, "/file"));
    assert_eq!(ex[1]["status"], 200);
    assert_eq!(ex[1]["body_bytes"], file_bytes().len());
    assert!(ex[1]["time_total_us"].as_u64().is_some(), "{j}");
    assert_eq!(
        (j["status"].as_u64(), j["redirects"].as_u64()),
        (Some(200), Some(1))
    );
    assert_eq!(j["url"], ex[1]["url"]);
    // Without a redirect there is one exchange.
    let o = http(&["--json", &url(&s, "/file")]);
    assert_eq!(json(&o)["exchanges"].as_array().map(Vec::len), Some(1));

    let o = http(&["-L", "--max-redirs", "3", &url(&s, "/loop")]);
    assert_fails_with(&o, 7, "too many redirects");
}

#[test]
fn chunked_answer_is_decoded() {
    let s = http_server(&[]);
    let o = http(&[&url(&s, "/chunked")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello, chunked world\n");
    let o = http(&["-i", &url(&s, "/chunked")]);
    assert!(stdout(&o).contains("Transfer-Encoding: chunked\r\n"));
}

#[test]
fn keep_alive_server_does_not_make_it_hang() {
    let s = http_server(&[]);
    let t = Instant::now();
    // The server holds the connection 10 s; 6 s is slack for a loaded machine.
    let o = run(
        &mut sockit(&["http", &url(&s, "/keepalive")]),
        Duration::from_secs(6),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, file_bytes());
    assert!(t.elapsed() < Duration::from_secs(6));
}

#[test]
fn raw_request_gets_the_same_first_line_as_the_slides_program() {
    let s = http_server(&[]);
    let dir = temp_dir("http-raw");
    let req = dir.join("req.txt");
    std::fs::write(&req, b"GET / HTTP/1.1\r\n\r\n").expect("write");
    let o = http(&["--raw-request", req.to_str().expect("utf-8"), &url(&s, "/")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ours = stdout(&o);
    let first = ours.lines().next().unwrap_or("").trim_end().to_string();
    // A strict HTTP/1.1 server refuses a request without Host: 400 is the right answer.
    assert!(first.starts_with("HTTP/1.1 400"), "{ours}");

    let py = run(
        python3()
            .arg(seed("http_get.py"))
            .arg("127.0.0.1")
            .arg(s.port.to_string()),
        LIMIT,
    );
    assert!(py.status.success(), "{}", stderr(&py));
    let py_first = stdout(&py)
        .lines()
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string();
    assert_eq!(first, py_first);

    // --show-request prints the exact bytes first.
    let o = http(&[
        "--raw-request",
        req.to_str().expect("utf-8"),
        "--show-request",
        &url(&s, "/"),
    ]);
    assert!(
        o.stdout.starts_with(b"GET / HTTP/1.1\r\n\r\nHTTP/1.1 400"),
        "{}",
        stdout(&o)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn verbose_shows_both_directions_and_json_has_timings() {
    let s = http_server(&[]);
    let o = http(&["-v", &url(&s, "/file")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for want in [
        "* connected to 127.0.0.1",
        "> GET /file HTTP/1.1",
        "< HTTP/1.1 200 OK",
        "timings",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    let o = http(&["--json", &url(&s, "/file")]);
    let j = json(&o);
    assert_eq!(j["event"], "response");
    let t: Vec<u64> = [
        "time_namelookup_us",
        "time_connect_us",
        "time_pretransfer_us",
        "time_request_sent_us",
        "time_starttransfer_us",
        "time_total_us",
    ]
    .iter()
    .map(|k| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {j}")))
    .collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
    assert!(j["time_appconnect_us"].is_null());
    assert_eq!(j["headers"][0].as_array().map(Vec::len), Some(2));
}

#[test]
fn output_file_and_fail() {
    let s = http_server(&[]);
    let dir = temp_dir("http-out");
    let f = dir.join("body.bin");
    let o = http(&["-o", f.to_str().expect("utf-8"), &url(&s, "/file")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read(&f).expect("output file"), file_bytes());
    let o = http(&[&url(&s, "/status/404")]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "status 404\n");
    let o = http(&["--fail", &url(&s, "/status/503")]);
    assert_eq!(o.status.code(), Some(7));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("503"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn max_time_ends_a_slow_answer_with_the_timeout_code() {
    let s = http_server(&[]);
    let _g = serial();
    let t = Instant::now();
    let o = http(&["--max-time", "0.5", &url(&s, "/slow")]);
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--max-time") && err.contains("read body: timed out"),
        "{err}"
    );
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A listener on 127.0.0.1 whose accept queue is full, so a new connect(2) gets no answer.
const FULL_QUEUE: &str = r#"
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(0)
port = l.getsockname()[1]
held = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    held.append(c)
time.sleep(0.2)
print("listening 127.0.0.1", port, flush=True)
time.sleep(20)
"#;

#[test]
fn connect_timeout_ends_with_the_timeout_code() {
    let s = spawn_listening(python3().args(["-c", FULL_QUEUE]).stdin(Stdio::null()));
    let _g = serial();
    let t = Instant::now();
    let o = http(&["--connect-timeout", "0.5", &url(&s, "/")]);
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--connect-timeout 0.5s expired: connect: timed out"),
        "{err}"
    );
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn bad_urls_are_refused_clearly() {
    for (u, want) in [
        ("http://[::1/", "unclosed"),
        ("gopher://127.0.0.1/", "unsupported URL scheme"),
        ("http://127.0.0.1:65536/", "port must be 0-65535"),
        ("http://127.0.0.1:99999999999/", "port must be 0-65535"),
        ("http:///path", "no host"),
    ] {
        let o = http(&[u]);
        assert_eq!(o.status.code(), Some(2), "{u}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{u}: {}", stderr(&o));
    }
    let o = http(&["--max-time", "-1", "http://127.0.0.1/"]);
    assert_eq!(o.status.code(), Some(2));
    let o = http(&["--data-file", "/nonexistent/x", "http://127.0.0.1/"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("No such file"), "{}", stderr(&o));
}

#[test]
fn bad_peer_bytes_are_protocol_errors_without_hang() {
    let s = http_server(&[]);
    for (path, want) in [
        ("/garbage", "malformed status line"),
        ("/garbage-open", "malformed status line"),
        ("/truncated", "truncated chunked body"),
        ("/short", "truncated body"),
        ("/bighead", "64 KiB"),
    ] {
        // /garbage-open holds the connection 10 s: 6 s still tells a hang.
        let o = run(
            &mut sockit(&["http", &url(&s, path)]),
            Duration::from_secs(6),
        );
        assert_eq!(o.status.code(), Some(7), "{path}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(want), "{path}: {err}");
        assert!(!err.contains("panicked"), "{path}: {err}");
    }
    // Raw mode still shows what came back.
    let dir = temp_dir("http-rawbad");
    let req = dir.join("req");
    std::fs::write(&req, b"GET /garbage HTTP/1.0\r\n\r\n").expect("write");
    let o = http(&["--raw-request", req.to_str().expect("utf-8"), &url(&s, "/")]);
    assert_eq!(o.status.code(), Some(7));
    assert!(stdout(&o).starts_with("garbage\r\n"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refused_connection_is_an_os_error() {
    let closed = closed_port();
    let o = http(&[&format!("http://127.0.0.1:{}/", closed.port)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Connection refused"), "{}", stderr(&o));
}

// ------------------------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------------------------

/// Runs the TLS test server and then `sockit ARGS…` (with `@PORT@` replaced by its port)
/// inside `no-dns`, so `localhost` resolves from a hosts file only.
fn with_tls_server_no_dns(pki: &Pki, args: &[&str]) -> Output {
    need("python3");
    let script = r#"
        out="$1"; shift
        # A fresh file each call: a reused one could show the previous server's port to the
        # wait loop below before the new server's redirection truncates it.
        rm -f "$out"
        python3 "$1" "$2" "$3" "$4" > "$out" 2>/dev/null &
        pid=$!
        i=0
        while [ $i -lt 200 ] && ! grep -q listening "$out"; do sleep 0.05; i=$((i+1)); done
        port=$(awk '{print $3; exit}' "$out")
        args=()
        for a in "${@:5}"; do args+=("${a//@PORT@/$port}"); done
        "${args[@]}"
        rc=$?
        kill "$pid"
        exit $rc
    "#;
    let out = pki.path("listening.txt");
    let server = server_script().to_string_lossy().into_owned();
    let cert = pki.path("cert.pem");
    let key = pki.path("key.pem");
    let bin = bin().to_string_lossy().into_owned();
    let mut all: Vec<&str> = vec![
        "-c", script, "bash", &out, &server, "--tls", &cert, &key, &bin, "http",
    ];
    all.extend_from_slice(args);
    run(&mut no_dns("bash", &all), Duration::from_secs(15))
}

#[test]
fn tls_with_cacert_succeeds_by_name() {
    let pki = Pki::new("tls-ok", &["localhost"], false);
    let ca = pki.path("ca.pem");
    let o = with_tls_server_no_dns(
        &pki,
        &[
            "--cacert",
            &ca,
            "--json",
            "-o",
            "/dev/null",
            "https://localhost:@PORT@/file",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["status"], 200);
    assert_eq!(j["tls"]["alpn"], "http/1.1");
    assert!(j["time_appconnect_us"].as_u64().is_some(), "{j}");
    let o = with_tls_server_no_dns(&pki, &["--cacert", &ca, "https://localhost:@PORT@/file"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, file_bytes());
}

#[test]
fn tls_without_cacert_is_an_unknown_issuer() {
    let pki = Pki::new("tls-issuer", &["localhost"], false);
    let o = with_tls_server_no_dns(&pki, &["https://localhost:@PORT@/"]);
    assert_fails_with(&o, 6, "certificate verify failed: unknown issuer");
}

#[test]
fn tls_insecure_succeeds_and_warns() {
    let pki = Pki::new("tls-insecure", &["localhost"], false);
    let o = with_tls_server_no_dns(&pki, &["-k", "https://localhost:@PORT@/"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "index\n");
    let err = stderr(&o);
    assert!(
        err.contains("warning") && err.contains("--insecure"),
        "{err}"
    );
}

#[test]
fn insecure_warning_is_a_json_event_under_json() {
    // Regression (QA tunnels.md): `http --json --insecure` printed its warning as a text
    // line of its own instead of through the reporter (a `warning` event under --json).
    let pki = Pki::new("tls-insecure-json", &["localhost"], false);
    let o = with_tls_server_no_dns(&pki, &["--json", "-k", "https://localhost:@PORT@/"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().unwrap_or_default()).expect("JSON lines");
    assert_eq!(first["event"], "warning", "{out}");
    assert!(
        first["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--insecure"),
        "{out}"
    );
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn tls_name_mismatch_and_expired_fail_clearly() {
    // The certificate names localhost only; the URL says 127.0.0.1 (no lookup needed).
    let pki = Pki::new("tls-name", &["localhost"], false);
    let s = http_server(&["--tls", &pki.path("cert.pem"), &pki.path("key.pem")]);
    let u = format!("https://127.0.0.1:{}/", s.port);
    let o = http(&["--cacert", &pki.path("ca.pem"), &u]);
    assert_fails_with(&o, 6, "name mismatch");
    // Regression: the names were Rust debug text (`DnsName("localhost")`).
    assert!(
        stderr(&o).contains("(the certificate is for localhost, not 127.0.0.1)"),
        "{}",
        stderr(&o)
    );
    drop(s);

    let pki = Pki::new("tls-expired", &["127.0.0.1"], true);
    let s = http_server(&["--tls", &pki.path("cert.pem"), &pki.path("key.pem")]);
    let u = format!("https://127.0.0.1:{}/", s.port);
    let o = http(&["--cacert", &pki.path("ca.pem"), &u]);
    assert_fails_with(&o, 6, "expired");
}

#[test]
fn tls_ca_certificate_as_server_certificate_is_worded() {
    // Regression: a CA certificate as the server's own printed webpki's `CaUsedAsEndEntity`.
    // (One that is itself in --cacert is accepted, as curl does: see the self-signed test.)
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = temp_dir("http-tls-ca-leaf");
    let root_key = KeyPair::generate().expect("root key");
    let mut root = CertificateParams::new(Vec::<String>::new()).expect("root params");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.distinguished_name
        .push(rcgen::DnType::CommonName, "sockit test root");
    let root_cert = root.self_signed(&root_key).expect("root");
    let issuer = Issuer::new(root, &root_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let (root_path, cert_path, key_path) = (
        dir.join("root.pem"),
        dir.join("ca.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&root_path, root_cert.pem()).expect("write");
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let s = http_server(&["--tls", &path(&cert_path), &path(&key_path)]);
    let o = http(&[
        "--cacert",
        &path(&root_path),
        &format!("https://127.0.0.1:{}/", s.port),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("certificate verify failed: CA certificate used as end-entity certificate"),
        "{err}"
    );
    assert!(!err.contains("CaUsedAsEndEntity"), "{err}");
}

#[test]
fn https_to_a_plain_server_is_a_tls_error() {
    let s = http_server(&[]);
    let o = http(&[&format!("https://127.0.0.1:{}/", s.port)]);
    assert_fails_with(&o, 6, "does not speak TLS");
}

// ------------------------------------------------------------------------------------
// TLS for connect and listen
// ------------------------------------------------------------------------------------

/// `sockit listen --tls` on 127.0.0.1 with the PKI's certificate (stdin piped, kept open).
fn tls_listen_server(pki: &Pki) -> Server {
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    sockit_listen(&["--tls", "--cert", &cert, "--key", &key, "127.0.0.1", "0"])
}

/// `sockit listen --tls` on 127.0.0.1 with the PKI's certificate; `stdin_data` is written to
/// its stdin, which is then closed.
fn tls_listener(pki: &Pki, stdin_data: &[u8]) -> Server {
    let mut s = tls_listen_server(pki);
    if let Some(mut stdin) = s.child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(stdin_data);
    }
    s
}

/// Waits (bounded) for a server process to end; its exit code.
fn exit_code(s: &mut Server, limit: Duration) -> Option<i32> {
    wait_exit(s, limit).and_then(|st| st.code())
}

#[test]
fn listen_tls_and_connect_tls_exchange_bytes() {
    let pki = Pki::new("nc-tls", &["localhost", "127.0.0.1"], false);
    let mut s = tls_listener(&pki, b"from listen\n");
    let port = s.port.to_string();
    let ca = pki.path("ca.pem");
    let mut c = sockit(&["connect", "--tls", "--cacert", &ca, "127.0.0.1", &port]);
    let o = run_with_input(&mut c, b"from connect\n", LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from listen\n");
    assert_eq!(s.next_line(LIMIT).as_deref(), Some("from connect"));
    assert_eq!(exit_code(&mut s, LIMIT), Some(0));
}

#[test]
fn connect_tls_verifies_by_default_and_insecure_warns() {
    let pki = Pki::new("nc-verify", &["localhost", "127.0.0.1"], false);
    let mut s = tls_listener(&pki, b"");
    let port = s.port.to_string();
    let o = run_with_input(
        &mut sockit(&["connect", "--tls", "127.0.0.1", &port]),
        b"x",
        LIMIT,
    );
    assert_fails_with(&o, 6, "unknown issuer");
    // The listener sees the client's refusal as a TLS error too.
    assert_eq!(exit_code(&mut s, LIMIT), Some(6));

    let s = tls_listener(&pki, b"hi\n");
    let port = s.port.to_string();
    let o = run_with_input(
        &mut sockit(&["connect", "--tls", "--insecure", "127.0.0.1", &port]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
    assert!(stderr(&o).contains("warning: --insecure"), "{}", stderr(&o));
}

#[test]
fn listen_tls_talks_with_openssl_s_client() {
    require_peer!("openssl");
    use std::io::Write;
    let pki = Pki::new("nc-openssl", &["localhost"], false);
    let mut s = tls_listen_server(&pki);
    let mut listen_in = s.child.stdin.take().expect("listen stdin");
    listen_in.write_all(b"hello s_client\n").expect("write");
    let ca = pki.path("ca.pem");
    // -quiet implies -ign_eof: s_client ends when the server closes, not at its stdin's end.
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-servername",
        "localhost",
    ])
    .args(["-CAfile", &ca, "-connect", &format!("127.0.0.1:{}", s.port)])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("openssl s_client");
    if let Some(mut i) = child.stdin.take() {
        i.write_all(b"hello from s_client\n").expect("write");
    }
    assert_eq!(s.next_line(LIMIT).as_deref(), Some("hello from s_client"));
    // Only now end the listener's input: its close_notify then ends s_client.
    drop(listen_in);
    let o = wait_output(child, LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello s_client\n");
    assert_eq!(exit_code(&mut s, LIMIT), Some(0));
}

#[test]
fn tls_flags_refuse_what_they_cannot_do() {
    let o = run(
        &mut sockit(&["connect", "--tls", "-u", "127.0.0.1", "9"]),
        LIMIT,
    );
    assert_fails_with(&o, 2, "--tls needs a TCP");
    // (--tls alone makes an ephemeral certificate: tunnels::an_ephemeral_certificate…)
    let o = run(
        &mut sockit(&["listen", "--tls", "--cert", "c.pem", "127.0.0.1", "0"]),
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(
        &mut sockit(&[
            "listen",
            "--tls",
            "--cert",
            "/nonexistent/c.pem",
            "--key",
            "/nonexistent/k.pem",
            "127.0.0.1",
            "0",
        ]),
        LIMIT,
    );
    assert_fails_with(&o, 1, "No such file");
}

#[test]
fn close_framed_body_is_counted_in_json() {
    // Regression: an HTTP/1.0 body framed by connection close reported "body_bytes":0.
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = l.accept().expect("accept");
        c.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, close\n");
    });
    let dir = temp_dir("http-closeframed");
    let f = dir.join("c.out");
    let o = http(&[
        "--json",
        "-o",
        f.to_str().expect("utf-8"),
        &format!("http://127.0.0.1:{port}/"),
    ]);
    server.join().expect("server");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&f).expect("c.out"), b"hello, close\n");
    assert_eq!(json(&o)["body_bytes"], 13, "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refusal_at_a_tiny_deadline_stays_a_refusal() {
    // Regression: `http --connect-timeout 0.000001` (then `-w`) to a closed port always said `connect: timed out`
    // (5), never 111. On a loaded machine the RST may really come after the deadline, so
    // a timeout is allowed now and then, but most attempts must report the refusal.
    let closed = closed_port();
    let mut refused = 0;
    for _ in 0..5 {
        let o = http(&[
            "--connect-timeout",
            "0.000001",
            &format!("http://127.0.0.1:{}/", closed.port),
        ]);
        match o.status.code() {
            Some(1) => {
                assert!(stderr(&o).contains("[Errno 111]"), "{}", stderr(&o));
                refused += 1;
            }
            _ => assert_fails_with(&o, 5, "timed out"),
        }
    }
    assert!(
        refused >= 3,
        "only {refused} of 5 attempts reported the refusal"
    );
}

#[test]
fn max_time_out_of_range_says_the_range() {
    // Regression: `-m 1e300` said "seconds must be a positive number".
    let o = http(&["-m", "1e300", "http://127.0.0.1:1/"]);
    assert_fails_with(&o, 2, "at most 1e9");
}

#[test]
fn closed_stderr_does_not_panic() {
    // Regression: `eprintln!` in cmd/http.rs panicked (exit 101) when stderr was a closed pipe.
    let s = http_server(&[]);
    let o = run_with_closed_stderr(
        &mut sockit(&["http", "--insecure", "-v", &url(&s, "/file")]),
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(o.stdout, file_bytes());
}

#[test]
fn json_errors_name_the_failing_url_and_the_limit() {
    use std::io::{Read, Write};
    // Regression: with -L, a refused redirect target was reported under the first URL,
    // and --json dropped which limit (-m, --connect-timeout) had expired.
    let closed = closed_port();
    let location = format!("http://127.0.0.1:{}/x", closed.port);
    let loc = location.clone();
    let (port, h) = serve_one_client(move |mut s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = write!(
            s,
            "HTTP/1.1 301 Moved\r\nLocation: {loc}\r\nContent-Length: 0\r\n\r\n"
        );
    });
    let first = format!("http://127.0.0.1:{port}/closed");
    let o = http(&["-L", "--json", &first]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["url"], location.as_str(), "{v}");
    let _ = h.join();
    // A server that accepts and never answers: the --max-time limit is in the message.
    // It holds the connection until the client goes (at most 5 s): closing it after a
    // fixed 800 ms raced the client's 0.3 s limit on a loaded machine.
    let (port, h) = serve_one_client(|mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.read(&mut buf);
    });
    let o = http(&["-m", "0.3", "--json", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        (v["event"].as_str(), v["kind"].as_str()),
        (Some("error"), Some("timeout")),
        "{v}"
    );
    let m = v["message"].as_str().unwrap_or_default();
    assert!(m.starts_with("--max-time 0.3s expired: "), "{v}");
    let _ = h.join();
}

// ------------------------------------------------------------------------------------
// Mutual TLS: client certificates
// ------------------------------------------------------------------------------------

#[test]
fn listen_cacert_requires_a_client_certificate_from_connect_and_s_client() {
    let pki = Pki::new("mtls", &["localhost", "127.0.0.1"], false);
    let (cert, key, ca) = (
        pki.path("cert.pem"),
        pki.path("key.pem"),
        pki.path("ca.pem"),
    );
    let (ccert, ckey) = (pki.path("client.pem"), pki.path("client-key.pem"));
    let mtls_server = || {
        sockit_listen(&[
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "--cacert",
            &ca,
            "127.0.0.1",
            "0",
        ])
    };
    // stdin_data written to the listener's stdin, which is then closed
    let mtls_listener = |stdin_data: &[u8]| {
        let mut s = mtls_server();
        if let Some(mut stdin) = s.child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(stdin_data);
        }
        s
    };
    // with a certificate: bytes both ways
    let mut s = mtls_listener(b"from listen\n");
    let port = s.port.to_string();
    let mut c = sockit(&[
        "connect",
        "--tls",
        "--cacert",
        &ca,
        "--cert",
        &ccert,
        "--key",
        &ckey,
        "127.0.0.1",
        &port,
    ]);
    let o = run_with_input(&mut c, b"from connect\n", LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from listen\n");
    assert_eq!(s.next_line(LIMIT).as_deref(), Some("from connect"));
    assert_eq!(exit_code(&mut s, LIMIT), Some(0));
    // without one: a TLS error on both sides, named as such
    let mut s = mtls_listener(b"");
    let port = s.port.to_string();
    // stdin stays open (no end of input to shut down on, which could meet the server's
    // close first): the client learns of the refusal by reading the server's alert
    let mut c = sockit(&["connect", "--tls", "--cacert", &ca, "127.0.0.1", &port]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn connect");
    let keep_open = child.stdin.take();
    let o = wait_output(child, LIMIT);
    drop(keep_open);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("certificate required"),
        "{}",
        stderr(&o)
    );
    assert_eq!(exit_code(&mut s, LIMIT), Some(6));
    // input that ends at once: the client's close meets the server's (EPIPE), and the
    // refusal must still be the alert, not "shutdown: [Errno 32] Broken pipe" (it was in
    // 6 runs of 8)
    for _ in 0..3 {
        let mut s = mtls_listener(b"");
        let port = s.port.to_string();
        let mut c = sockit(&["connect", "--tls", "--cacert", &ca, "127.0.0.1", &port]);
        let o = run_with_input(&mut c, b"hello\n", LIMIT);
        assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("peer sent alert: certificate required"),
            "{}",
            stderr(&o)
        );
        assert_eq!(exit_code(&mut s, LIMIT), Some(6));
    }
    // openssl s_client with the client certificate: the real peer
    require_peer!("openssl");
    use std::io::Write;
    let mut s = mtls_server();
    let mut listen_in = s.child.stdin.take();
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile", &ca])
        .args(["-cert", &ccert, "-key", &ckey])
        .args(["-connect", &format!("127.0.0.1:{}", s.port)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    if let Some(mut i) = child.stdin.take() {
        i.write_all(b"hello with a certificate\n").expect("write");
    }
    assert_eq!(
        s.next_line(LIMIT).as_deref(),
        Some("hello with a certificate")
    );
    if let Some(i) = listen_in.as_mut() {
        let _ = i.write_all(b"welcome\n");
    }
    drop(listen_in);
    let o = wait_output(child, LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "welcome\n");
}

#[test]
fn http_cert_and_key_answer_openssl_s_server_verify() {
    require_peer!("openssl");
    let pki = Pki::new("mtls-http", &["localhost", "127.0.0.1"], false);
    let (cert, key, ca) = (
        pki.path("cert.pem"),
        pki.path("key.pem"),
        pki.path("ca.pem"),
    );
    let (ccert, ckey) = (pki.path("client.pem"), pki.path("client-key.pem"));
    // s_server -Verify 1: a client certificate is required; -www answers a GET with a
    // status page; -naccept 2 ends it after our two connections
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-naccept",
            "2",
            "-www",
        ])
        .args(["-cert", &cert, "-key", &key, "-Verify", "1", "-CAfile", &ca])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    // killed (by PID) even when an assertion fails; its ACCEPT line awaited at most LIMIT
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let _server = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + LIMIT;
    let port = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("an ACCEPT line from s_server");
        if let Some(p) = line.trim().strip_prefix("ACCEPT 127.0.0.1:") {
            break p.to_string();
        }
    };
    let url = format!("https://127.0.0.1:{port}/");
    let o = http(&[
        "-E", &ccert, "--key", &ckey, "--cacert", &ca, "--json", &url,
    ]);
    let o2 = http(&["--cacert", &ca, &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["status"], 200);
    assert_eq!(o2.status.code(), Some(6), "{}", stderr(&o2));
    assert!(
        stderr(&o2).contains("tls: peer sent alert: certificate required"),
        "{}",
        stderr(&o2)
    );
}

#[test]
fn client_certificate_flags_are_checked() {
    let pki = Pki::new("mtls-flags", &["localhost"], false);
    let (ccert, ckey) = (pki.path("client.pem"), pki.path("client-key.pem"));
    // --cert needs --key (and --tls for connect); a key that does not fit is a TLS error
    let o = run(
        &mut sockit(&["connect", "--tls", "--cert", &ccert, "127.0.0.1", "9"]),
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = http(&["-E", &ccert, "https://127.0.0.1:9/"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = http(&["--key", &ckey, "https://127.0.0.1:9/"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let other = pki.path("key.pem");
    let o = http(&["-E", &ccert, "--key", &other, "https://127.0.0.1:9/"]);
    assert_fails_with(
        &o,
        6,
        "cannot use the client certificate and key: the private key does not belong to the certificate",
    );
    // an encrypted key says so (was "no private key in the file … no items found")
    let enc = pki.path("encrypted.pem");
    std::fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .expect("write");
    let o = http(&["-E", &ccert, "--key", &enc, "https://127.0.0.1:9/"]);
    assert_fails_with(
        &o,
        2,
        "the private key is encrypted (a passphrase is not supported)",
    );
    // Regression: a PEM path of /dev/zero was read until memory ran out (GBs, killed).
    for args in [
        &["-E", "/dev/zero", "--key", &ckey, "https://127.0.0.1:9/"][..],
        &["--cacert", "/dev/zero", "https://127.0.0.1:9/"][..],
    ] {
        let o = http(args);
        assert_fails_with(&o, 2, "/dev/zero: larger than 4 MiB, not a PEM file");
    }
    let o = run(
        &mut sockit(&[
            "listen",
            "--tls",
            "--cert",
            &ccert,
            "--key",
            &ckey,
            "--cacert",
            "/dev/zero",
            "127.0.0.1",
            "0",
        ]),
        LIMIT,
    );
    assert_fails_with(&o, 2, "/dev/zero: larger than 4 MiB, not a PEM file");
    let o = http(&[
        "-E",
        &ccert,
        "--key",
        "/nonexistent.pem",
        "https://127.0.0.1:9/",
    ]);
    assert_fails_with(&o, 1, "/nonexistent.pem");
}

#[test]
fn the_command_line_is_reported_even_with_silent() {
    // Regression: -s hid sockit's own refusals (exit 2 or 1 with nothing said); curl
    // prints its option errors whatever -s says. -s hides the transfer's failures only.
    let dir = temp_dir("http-silent");
    let zero = "http://127.0.0.1:9/";
    for (args, code, want) in [
        (&["-s", "-F", "a=b", zero][..], 2, "curl's --form (-F)"),
        (&["-s", "-x", "ftp://p", zero][..], 2, "unknown scheme"),
        (
            &["-s", "--http2", zero][..],
            2,
            "HTTP/1.0 and HTTP/1.1 only",
        ),
        (
            &["-s", "--resolve", "bogus", zero][..],
            2,
            "--resolve \"bogus\"",
        ),
        (
            &["-s", "-T", "/nonexistent/x", zero][..],
            1,
            "the upload file (-T)",
        ),
        (
            &["-s", "-w", "@/nonexistent/x", zero][..],
            1,
            "the -w @FILE file",
        ),
        (
            &["-s", "-S", "-s", zero, zero][..],
            2,
            "one URL per command",
        ),
    ] {
        let o = http(args);
        assert_fails_with(&o, code, want);
    }
    // the transfer's own failure stays silent
    let closed = closed_port();
    let o = http(&["-s", &format!("http://127.0.0.1:{}/", closed.port)]);
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(1), ""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flag_values_are_checked_with_their_range_and_one_rule() {
    let zero = "http://127.0.0.1:9/";
    for (args, want) in [
        // Regression: CR/LF in -A, -e, -b went out raw (header injection); -H refused.
        (&["-A", "a\r\nX-Injected: 1", zero][..], "line break or NUL"),
        (&["-e", "http://r/\r\nX: 1", zero][..], "line break or NUL"),
        (&["-b", "a=1\nX: 1", zero][..], "line break or NUL"),
        (&["-H", "X: 1\r\nY: 2", zero][..], "line break or NUL"),
        // Regression: negative values got clap's "a value is required" or "invalid digit".
        (&["--repeat", "-1", zero][..], "from 1 to 10000000"),
        (&["--retry", "-1", zero][..], "from 0 to 1000000"),
        (&["--repeat", "2", "--rate", "-1/s", zero][..], "above 0"),
        (&["--resolve", "-h:1", zero][..], "removing an entry"),
        // Regression: --max-redirs -5 was accepted without -L (curl refuses it).
        (&["--max-redirs", "-5", zero][..], "-1 for no count limit"),
        // Regression: -w @/dev/zero and -H @/dev/zero read 1 GiB before refusing.
        (
            &["-w", "@/dev/zero", zero][..],
            "larger than 1 MiB, not a format file",
        ),
        (
            &["-H", "@/dev/zero", zero][..],
            "larger than 1 MiB, not a header file",
        ),
        // Regression: --json -o - dropped the body, --json -D - mixed heads into the JSON.
        (&["--json", "-o", "-", zero][..], "-o - would mix into it"),
        (&["--json", "-D", "-", zero][..], "-D - would mix into it"),
        (
            &["--repeat", "2", "-o", "-", zero][..],
            "-o - would mix into it",
        ),
        // Regression: "it ends with '/'" for a name that is '..'.
        (
            &["--path-as-is", "-O", "http://127.0.0.1:9/.."][..],
            "\"..\" is not one",
        ),
        // Regression: the refusal read "in curl: sSL ciphers to use".
        (&["--ciphers", "x", zero][..], "in curl: SSL ciphers to use"),
    ] {
        let started = Instant::now();
        let o = http(args);
        assert_fails_with(&o, 2, want);
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
    }
    // Regression: --foo suggested curl's refused '--tftp-no-options'.
    let o = http(&["--foo", zero]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("tftp"), "{}", stderr(&o));
}

#[test]
fn harmless_curl_flags_and_zero_limits_are_accepted() {
    // Regression: -N, -g, --tlsv1.2 … were refused though sockit already does what they
    // ask; -m 0 was refused where curl means no limit; --url URL was an error.
    let s = http_server(&[]);
    let u = url(&s, "/");
    for args in [
        &[
            "-N",
            "-g",
            "--tlsv1.2",
            "--tlsv1",
            "--tcp-nodelay",
            "-q",
            &u,
        ][..],
        &["-m", "0", "--connect-timeout", "0", &u][..],
        &["--url", &u][..],
    ] {
        let o = http(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "index\n", "{args:?}");
    }
}

#[test]
fn output_file_errors_name_the_url_the_flag_and_the_file() {
    // Regression: `-D /dev/full` lacked the URL and said "output file"; under --json the
    // error's op was the file name.
    let s = http_server(&[]);
    let u = url(&s, "/");
    let o = http(&["-D", "/dev/full", &u]);
    assert_fails_with(
        &o,
        1,
        &format!(
            "{u}: cannot write the heads (-D): write: [Errno 28] No space left on device: '/dev/full'"
        ),
    );
    let o = http(&["--json", "-o", "/dev/full", &u]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(
        (j["event"].as_str(), j["op"].as_str()),
        (Some("error"), Some("write")),
        "{j}"
    );
    assert!(
        j["message"]
            .as_str()
            .unwrap_or_default()
            .contains("'/dev/full'"),
        "{j}"
    );
}

#[test]
fn family_flags_apply_to_resolve_addresses() {
    // Regression: `-6 --resolve host:port:IPV4` connected over IPv4; curl fails.
    let s = http_server(&[]);
    let entry = format!("made.up.test:{}:127.0.0.1", s.port);
    let u = format!("http://made.up.test:{}/", s.port);
    let o = http(&["-6", "--resolve", &entry, &u]);
    assert_fails_with(&o, 3, "no IPv6 address to connect to");
    let o = http(&["-4", "--resolve", &entry, &u]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_hostile_retry_after_does_not_hold_the_command() {
    // Regression: `Retry-After: 18446744073709551615` made `--retry 1 -m 2` sleep
    // without end; curl waits 1 s for it. A large valid one is bounded by -m.
    let _serial = serial();
    let s = http_server(&[]);
    for (after, max_wait) in [("18446744073709551615", 1.0), ("9223372036854775807", 1.0)] {
        let started = Instant::now();
        let o = http(&[
            "--retry",
            "1",
            "-m",
            "1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(&s, &format!("/retry-after?s={after}")),
        ]);
        let took = started.elapsed().as_secs_f64();
        assert_eq!(stdout(&o), "503", "{}", stderr(&o));
        assert!(
            stderr(&o).contains("Will retry in 1 second."),
            "{after}: {}",
            stderr(&o)
        );
        assert!(
            took >= max_wait && took < 3.0 * max_wait + 2.0,
            "{after}: {took} s"
        );
    }
}

#[test]
fn a_signal_during_repeat_reports_the_runs_measured() {
    // Regression: SIGINT/SIGTERM during --repeat threw every measured run away (exit
    // 130/143, nothing printed); bench prints a partial summary, and so does http now.
    let dir = temp_dir("http-repeat-signal");
    let log = dir.join("requests.log");
    let s = http_server(&["--log", log.to_str().expect("utf-8")]);
    let u = url(&s, "/record");
    for (sig, json_out, code) in [("INT", false, 130), ("TERM", true, 0)] {
        let _ = std::fs::remove_file(&log);
        let mut args = vec!["http", "--repeat", "1000", "--rate", "5/s", &u];
        if json_out {
            args.insert(1, "--json");
        }
        let p = Peer::spawn(&mut sockit(&args), None);
        // two runs measured: the server has logged them
        let deadline = Instant::now() + LIMIT;
        while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 2 {
            assert!(Instant::now() < deadline, "no runs in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(p.child.id().to_string())
            .status();
        let o = p.finish(LIMIT);
        assert_eq!(o.status.code(), Some(code), "{sig}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("stopped by SIG{sig} after")),
            "{}",
            stderr(&o)
        );
        if json_out {
            let j = json(&o);
            assert_eq!(
                (j["partial"].as_bool(), j["stopped_by"].as_str()),
                (Some(true), Some("stopped")),
                "{j}"
            );
            assert!(j["runs"].as_u64().unwrap_or(0) >= 2, "{j}");
        } else {
            let out = stdout(&o);
            assert!(out.contains("[partial: stopped before its end]"), "{out}");
            assert!(out.contains("\ntotal"), "{out}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn repeat_results_merge_with_http_merge() {
    // Regression: `bench --merge` on an `http --repeat --json` file said "no results in
    // the file (it is empty)"; the README said such files merge.
    let s = http_server(&[]);
    let dir = temp_dir("http-merge");
    let u = url(&s, "/");
    let mut files = Vec::new();
    for (i, n) in ["3", "4"].iter().enumerate() {
        let o = http(&["--repeat", n, "--json", &u]);
        assert!(o.status.success(), "{}", stderr(&o));
        let f = dir.join(format!("run{i}.json"));
        std::fs::write(&f, &o.stdout).expect("write");
        files.push(f.to_str().expect("utf-8").to_string());
    }
    let o = http(&["--merge", &files[0], &files[1], "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(
        (j["runs"].as_u64(), j["stopped_by"].as_str()),
        (Some(7), Some("merged")),
        "{j}"
    );
    let total = j["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["phase"] == "total")
        .expect("total");
    assert_eq!(total["count"], 7, "{j}");
    let o = http(&["--merge", &files[0], &files[1]]);
    assert!(
        stdout(&o).starts_with("7 merged runs of GET"),
        "{}",
        stdout(&o)
    );
    // bench's merge says what the file is
    let o = run(&mut sockit(&["bench", "--merge", &files[0]]), LIMIT);
    assert_fails_with(&o, 2, "sockit http --merge");
    // and http's says what bench's is
    std::fs::write(dir.join("bench.json"), "{\"event\":\"summary\"}\n").expect("write");
    let b = dir.join("bench.json");
    let o = http(&["--merge", b.to_str().expect("utf-8")]);
    assert_fails_with(&o, 2, "sockit bench --merge");
    let _ = std::fs::remove_dir_all(&dir);
}

// Regression: `--plot` was checked only after the transfer (and a .png name got SVG).
#[test]
fn a_plot_file_is_checked_before_anything_is_sent() {
    let out = run(
        &mut sockit(&["http", "--plot", "x.png", "http://127.0.0.1:9/"]),
        LIMIT,
    );
    assert_fails_with(&out, 2, "name the file FILE.svg");
    let out = run(
        &mut sockit(&[
            "http",
            "--plot",
            "/nonexistent/x.svg",
            "http://127.0.0.1:9/",
        ]),
        LIMIT,
    );
    assert_fails_with(&out, 1, "--plot /nonexistent/x.svg: open: [Errno 2]");
}
