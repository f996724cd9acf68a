//! `sockit http` side by side with curl (issue 12): the same commands against the same
//! local server (`http_server.py`, which records what it receives), the same answers; and
//! the features beyond curl (`--repeat`), and the hostile replies.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::http::{LIMIT, file_bytes, http, http_server, json, stderr, stdout, url};

/// `curl ARGS…` with no stdin, at most 10 s.
fn curl(args: &[&str]) -> Output {
    run(Command::new("curl").args(args).stdin(Stdio::null()), LIMIT)
}

/// The variables the issue names for a byte-identical comparison.
const NON_TIMING: &str = "%{http_code} %{size_download} %{num_redirects} %{url_effective} \
    %{content_type} %{remote_ip} %{remote_port}\\n";

#[test]
fn write_out_non_timing_variables_are_byte_identical_to_curls() {
    require_peer!("curl");
    let s = http_server(&[]);
    let closed = closed_port();
    let refused = format!("http://127.0.0.1:{}/", closed.port);
    let cases: Vec<Vec<String>> = vec![
        vec![url(&s, "/file")],
        vec![url(&s, "/")],
        vec![url(&s, "/chunked")],
        vec![url(&s, "/status/404")],
        vec![url(&s, "/redirect")],
        vec!["-L".into(), url(&s, "/redirect")],
        vec!["-L".into(), url(&s, "/redirect-abs")],
        vec!["-I".into(), url(&s, "/file")],
        vec!["-d".into(), "x=1".into(), url(&s, "/echo")],
        vec![refused],
    ];
    for case in cases {
        let mut args: Vec<&str> = vec!["-s", "-o", "/dev/null", "-w", NON_TIMING];
        args.extend(case.iter().map(String::as_str));
        let (ours, theirs) = (http(&args), curl(&args));
        assert_eq!(
            stdout(&ours),
            stdout(&theirs),
            "{case:?}: sockit {} / curl {}",
            stderr(&ours),
            stderr(&theirs)
        );
    }
}

/// The `time_*` values of a `-w` line: each `D.DDDDDD`, as curl prints them.
fn times(o: &Output) -> Vec<f64> {
    let text = stdout(o);
    text.split_whitespace()
        .map(|t| {
            let (whole, frac) = t.split_once('.').unwrap_or(("", ""));
            assert!(
                !whole.is_empty()
                    && whole.bytes().all(|b| b.is_ascii_digit())
                    && frac.len() == 6
                    && frac.bytes().all(|b| b.is_ascii_digit()),
                "{t:?} is not curl's time format in {text:?}"
            );
            t.parse().expect("a number")
        })
        .collect()
}

const TIMES: &str = "%{time_namelookup} %{time_connect} %{time_appconnect} %{time_pretransfer} \
    %{time_starttransfer} %{time_total} %{time_redirect}";

/// curl's order (its --write-out manual): name lookup ≤ connect ≤ (TLS) ≤ pretransfer ≤
/// start transfer ≤ total, and the redirect time within the total.
fn assert_curl_order(t: &[f64], tls: bool, what: &str) {
    let [lookup, connect, app, pre, start, total, redirect] = t else {
        panic!("{what}: {t:?}");
    };
    assert!(t.iter().all(|x| *x >= 0.0), "{what}: {t:?}");
    assert!(lookup <= connect && connect <= pre, "{what}: {t:?}");
    if tls {
        assert!(connect <= app && app <= pre, "{what}: {t:?}");
    } else {
        assert_eq!(*app, 0.0, "{what}: time_appconnect without TLS: {t:?}");
    }
    assert!(pre <= start && start <= total, "{what}: {t:?}");
    assert!(redirect <= total, "{what}: {t:?}");
}

#[test]
fn write_out_times_have_curls_format_and_order() {
    require_peer!("curl");
    let s = http_server(&[]);
    for case in [
        vec![url(&s, "/file")],
        vec!["-L".to_string(), url(&s, "/redirect")],
    ] {
        let mut args: Vec<&str> = vec!["-s", "-o", "/dev/null", "-w", TIMES];
        args.extend(case.iter().map(String::as_str));
        let ours = times(&http(&args));
        let theirs = times(&curl(&args));
        assert_eq!(ours.len(), theirs.len(), "{case:?}");
        assert_curl_order(&ours, false, "sockit");
        assert_curl_order(&theirs, false, "curl");
        if case.len() == 2 {
            assert!(ours[6] > 0.0 && theirs[6] > 0.0, "{ours:?} {theirs:?}");
        }
    }
}

#[test]
fn write_out_json_has_curls_keys() {
    require_peer!("curl");
    let s = http_server(&[]);
    let args = ["-s", "-o", "/dev/null", "-w", "%{json}", &url(&s, "/file")];
    let ours: serde_json::Value = serde_json::from_slice(&http(&args).stdout).expect("ours");
    let theirs: serde_json::Value = serde_json::from_slice(&curl(&args).stdout).expect("curl's");
    let (ours, theirs) = (
        ours.as_object().expect("{}"),
        theirs.as_object().expect("{}"),
    );
    // every key sockit prints is curl's, and only curl's certificate list and own version
    // are missing
    let mut missing: Vec<&str> = theirs
        .keys()
        .filter(|k| !ours.contains_key(*k))
        .map(String::as_str)
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, ["certs", "curl_version", "num_certs"], "{ours:?}");
    assert!(ours.keys().all(|k| theirs.contains_key(k)), "{ours:?}");
    for key in [
        "content_type",
        "errormsg",
        "exitcode",
        "filename_effective",
        "http_code",
        "http_version",
        "method",
        "num_headers",
        "num_redirects",
        "redirect_url",
        "remote_ip",
        "remote_port",
        "response_code",
        "scheme",
        "size_download",
        "size_header",
        "ssl_verify_result",
        "url",
        "url_effective",
    ] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    for key in ours.keys().filter(|k| k.starts_with("time_")) {
        assert!(ours[key].as_f64().is_some(), "{key}: {ours:?}");
    }
    // %{header_json}: the same names and values (a header named once; curl 7.88 drops
    // headers after a repeated one, so that case is compared in sockit's own test below)
    let args = [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{header_json}",
        &url(&s, "/file"),
    ];
    let ours: serde_json::Value = serde_json::from_slice(&http(&args).stdout).expect("ours");
    let theirs: serde_json::Value = serde_json::from_slice(&curl(&args).stdout).expect("curl's");
    let names = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().expect("{}").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(names(&ours), names(&theirs));
    assert_eq!(ours["content-length"], theirs["content-length"]);
}

#[test]
fn write_out_headers_targets_and_errors() {
    let s = http_server(&[]);
    let o = http(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{header_json}%{stderr}[%header{SET-COOKIE}]%{stdout}\\t%{nosuch}end",
        &url(&s, "/cookies"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let (head_json, rest) = out.split_at(out.rfind('}').expect("}") + 1);
    let h: serde_json::Value = serde_json::from_str(head_json).expect(head_json);
    assert_eq!(h["set-cookie"], serde_json::json!(["a=1", "b=2"]), "{h}");
    assert_eq!(h["x-one"], serde_json::json!(["first"]), "{h}");
    assert_eq!(rest, "\tend");
    let err = stderr(&o);
    assert!(err.contains("[a=1]"), "{err}");
    assert!(
        err.contains("unknown --write-out variable: 'nosuch'"),
        "{err}"
    );
    // a failed transfer still prints -w, with sockit's exit code and message; @FILE
    let dir = temp_dir("http-wfile");
    let f = dir.join("format");
    std::fs::write(&f, "%{http_code} %{exitcode} %{errormsg}").expect("write");
    let closed = closed_port();
    let at = format!("@{}", f.display());
    let o = http(&[
        "-s",
        "-w",
        &at,
        &format!("http://127.0.0.1:{}/", closed.port),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).is_empty(), "-s: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("000 1 "), "{out}");
    assert!(out.contains("[Errno 111] Connection refused"), "{out}");
}

/// The requests `http_server.py --log` recorded, one JSON object each.
fn recorded(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a recorded request"))
        .collect()
}

/// What a request is compared on: method, path, version, body and the headers but
/// User-Agent and Connection (which differ, as the issue allows) and Accept-Encoding
/// (compared apart: curl asks for br and zstd too).
fn comparable(r: &serde_json::Value) -> (String, String, String, String, Vec<(String, String)>) {
    let mut headers: Vec<(String, String)> = r["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap_or_default().to_ascii_lowercase(),
                h[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .filter(|(n, _)| !matches!(n.as_str(), "user-agent" | "connection" | "accept-encoding"))
        .collect();
    headers.sort();
    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    (s("method"), s("path"), s("version"), s("body"), headers)
}

#[test]
fn each_everyday_flag_sends_what_curls_sends() {
    require_peer!("curl");
    let dir = temp_dir("http-flags");
    let log = dir.join("requests.log");
    let s = http_server(&["--log", log.to_str().expect("utf-8")]);
    let file = dir.join("upload.txt");
    // no CR or NUL: curl 7.88 drops the rest of such a line for -d @file (curl 8.7 does not)
    std::fs::write(&file, "line one\nline two\n&=?\n").expect("write");
    let at_file = format!("@{}", file.display());
    let f = file.to_str().expect("utf-8");
    let rec = url(&s, "/record");
    let rec_dir = url(&s, "/record/dir/");
    let cases: Vec<Vec<&str>> = vec![
        vec![&rec],
        vec!["-d", "a=1&b=two", &rec],
        vec!["-d", "a=1", "--data-binary", "b=2", "-d", "c=3", &rec],
        vec!["-d", &at_file, &rec],
        vec!["--data-binary", &at_file, &rec],
        vec!["--data-raw", "@not-a-file", &rec],
        vec![
            "--data-urlencode",
            "name=a b&c",
            "--data-urlencode",
            "=x y",
            &rec,
        ],
        vec!["--data-urlencode", "f@", &rec],
        vec!["-G", "-d", "q=1", "-d", "r=2", &rec],
        vec!["-X", "PUT", "-d", "put body", &rec],
        vec!["-X", "DELETE", &rec],
        vec!["-T", f, &rec],
        vec!["-T", f, &rec_dir],
        vec!["-I", &rec],
        vec!["--http1.0", &rec],
        vec!["-A", "agent 007", &rec],
        vec!["-A", "", &rec],
        vec!["-e", "http://from.example/page", &rec],
        vec!["-u", "user:pa ss:word", &rec],
        vec!["-b", "a=1", "-b", "b=2", &rec],
        vec![
            "-H",
            "X-Custom: yes",
            "-H",
            "Accept:",
            "-H",
            "X-Empty;",
            &rec,
        ],
        vec!["--compressed", &rec],
    ];
    for case in cases {
        // --data-urlencode f@ reads the file named after @
        let case: Vec<String> = case
            .iter()
            .map(|a| {
                if *a == "f@" {
                    format!("f@{f}")
                } else {
                    a.to_string()
                }
            })
            .collect();
        let mut args: Vec<&str> = vec!["-s", "-o", "/dev/null"];
        args.extend(case.iter().map(String::as_str));
        let _ = std::fs::remove_file(&log);
        let ours = http(&args);
        assert!(ours.status.success(), "{case:?}: {}", stderr(&ours));
        let theirs = curl(&args);
        assert!(
            theirs.status.success(),
            "{case:?}: curl {}",
            stderr(&theirs)
        );
        let got = recorded(&log);
        assert_eq!(got.len(), 2, "{case:?}: {got:?}");
        assert_eq!(comparable(&got[0]), comparable(&got[1]), "{case:?}");
        if case.contains(&"--compressed".to_string()) {
            for r in &got {
                let ae = r["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .find(|h| h[0].as_str() == Some("Accept-Encoding"))
                    .and_then(|h| h[1].as_str())
                    .unwrap_or_default();
                assert!(ae.contains("gzip") && ae.contains("deflate"), "{ae}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `http_server.py --log LOG` inside `no-dns` (lookups from a hosts file only, no
/// DNS server reachable) and then, for each client (`sockit http`, `curl`), the client with
/// `args` (`@PORT@` replaced by the server's port); the exit codes, one per line.
fn clients_no_dns(dir: &Path, log: &Path, args: &[&str]) -> Output {
    let script = r#"
        out="$1"; server="$2"; log="$3"; sockit="$4"; shift 4
        rm -f "$out"
        python3 "$server" --log "$log" > "$out" 2>/dev/null &
        pid=$!
        i=0
        while [ $i -lt 200 ] && ! grep -q listening "$out"; do sleep 0.05; i=$((i+1)); done
        port=$(awk '{print $3; exit}' "$out")
        args=()
        for a in "$@"; do args+=("${a//@PORT@/$port}"); done
        "$sockit" http "${args[@]}"; echo "sockit $?"
        curl "${args[@]}"; echo "curl $?"
        kill "$pid"
    "#;
    let out = dir.join("listening.txt");
    let server = crate::http::server_script();
    let mut all: Vec<String> = vec![
        "-c".into(),
        script.into(),
        "bash".into(),
        out.display().to_string(),
        server.display().to_string(),
        log.display().to_string(),
        bin().display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    run(&mut no_dns("bash", &all), Duration::from_secs(20))
}

#[test]
fn resolve_and_connect_to_send_what_curls_sends_without_dns() {
    require_peer!("curl");
    need("python3");
    let dir = temp_dir("http-names");
    let log = dir.join("requests.log");
    for args in [
        &[
            "-s",
            "-o",
            "/dev/null",
            "--resolve",
            "made.up.test:@PORT@:127.0.0.1",
            "http://made.up.test:@PORT@/record",
        ][..],
        &[
            "-s",
            "-o",
            "/dev/null",
            "--connect-to",
            "made.up.test:80:127.0.0.1:@PORT@",
            "http://made.up.test/record",
        ][..],
        // Regression: curl's wildcard `*:PORT:ADDRESS` was accepted and ignored (a real
        // lookup: the name leaked to DNS).
        &[
            "-s",
            "-o",
            "/dev/null",
            "--resolve",
            "*:@PORT@:127.0.0.1",
            "http://made.up.test:@PORT@/record",
        ][..],
    ] {
        let _ = std::fs::remove_file(&log);
        let o = clients_no_dns(&dir, &log, args);
        assert_eq!(stdout(&o), "sockit 0\ncurl 0\n", "{args:?}: {}", stderr(&o));
        let got = recorded(&log);
        assert_eq!(got.len(), 2, "{args:?}: {got:?}");
        assert_eq!(comparable(&got[0]), comparable(&got[1]), "{args:?}");
        assert!(
            got[0]["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .any(|h| h[0] == "Host"
                    && h[1].as_str().is_some_and(|v| v.starts_with("made.up.test"))),
            "{got:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_from_stdin_drops_cr_and_lf_and_uploads_take_stdin() {
    let dir = temp_dir("http-stdin");
    let log = dir.join("requests.log");
    let s = http_server(&["--log", log.to_str().expect("utf-8")]);
    let rec = url(&s, "/record");
    let o = run_with_input(
        &mut sockit(&["http", "-s", "-o", "/dev/null", "-d", "@-", &rec]),
        b"a=1\r\n&b=2\n",
        LIMIT,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_with_input(
        &mut sockit(&["http", "-s", "-o", "/dev/null", "-T", "-", &rec]),
        b"raw\r\nbytes\n",
        LIMIT,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let got = recorded(&log);
    let body = |r: &serde_json::Value| r["body"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        (got[0]["method"].as_str(), body(&got[0]).as_str()),
        (Some("POST"), "YT0xJmI9Mg==")
    );
    // -T - : PUT of stdin's bytes as they are
    assert_eq!(
        (got[1]["method"].as_str(), body(&got[1]).as_str()),
        (Some("PUT"), "cmF3DQpieXRlcwo=")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outputs_retries_and_decoding_match_curl() {
    require_peer!("curl");
    let s = http_server(&[]);
    let dir = temp_dir("http-outputs");
    // -o - is stdout; -O names the file after the URL; -D gets the heads of every exchange
    for args in [
        vec!["-s", "-o", "-", "-L"],
        vec!["-s", "--compressed", "-L"],
    ] {
        for path in ["/redirect", "/gzip", "/deflate"] {
            let mut a = args.clone();
            let u = url(&s, path);
            a.push(&u);
            let (ours, theirs) = (http(&a), curl(&a));
            assert!(ours.status.success(), "{a:?}: {}", stderr(&ours));
            assert_eq!(ours.stdout, theirs.stdout, "{a:?}");
        }
    }
    for who in ["sockit", "curl"] {
        let d = dir.join(who);
        std::fs::create_dir_all(&d).expect("mkdir");
        let u = url(&s, "/redirect");
        let args = ["-s", "-L", "-O", "-D", "heads.txt", u.as_str()];
        let o = if who == "sockit" {
            run(
                sockit(&[&["http"][..], &args[..]].concat()).current_dir(&d),
                LIMIT,
            )
        } else {
            run(Command::new("curl").args(args).current_dir(&d), LIMIT)
        };
        assert!(o.status.success(), "{who}: {}", stderr(&o));
        // the body in ./redirect (-O takes the URL's name, not the redirect's), the heads
        assert_eq!(
            std::fs::read(d.join("redirect")).expect(who),
            file_bytes(),
            "{who}"
        );
        let heads = std::fs::read_to_string(d.join("heads.txt")).expect(who);
        let status: Vec<&str> = heads.lines().filter(|l| l.starts_with("HTTP/")).collect();
        assert_eq!(
            status,
            ["HTTP/1.1 301 Moved Permanently", "HTTP/1.1 200 OK"],
            "{who}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    // --retry: a 503 once, then 200; both clients ask twice and print both bodies
    for (who, id) in [("sockit", "s"), ("curl", "c")] {
        let u = url(&s, &format!("/retry?n=1&id={id}"));
        let args = ["-s", "--retry", "2", "--retry-delay", "1", u.as_str()];
        let o = if who == "sockit" {
            http(&args)
        } else {
            curl(&args)
        };
        assert!(o.status.success(), "{who}: {}", stderr(&o));
        assert_eq!(stdout(&o), "busy\ndone\n", "{who}");
    }
}

#[test]
fn unix_socket_requests_match_curls() {
    require_peer!("curl");
    let dir = temp_dir("http-unix");
    let path = dir.join("http.sock");
    let server = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(4)
print("listening 127.0.0.1 1", flush=True)
for _ in range(2):
    c, _ = s.accept()
    c.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(4096)
    line = data.split(b"\r\n")[0] + b"\n"
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line))
    c.close()
"#;
    let _s = spawn_listening(
        python3()
            .args(["-c", server, path.to_str().expect("utf-8")])
            .stdin(Stdio::null()),
    );
    let sock = path.to_str().expect("utf-8");
    let args = [
        "-s",
        "--unix-socket",
        sock,
        "-w",
        "%{http_code} %{remote_ip} %{remote_port} %{num_connects}",
        "http://made.up.test/x",
    ];
    let (ours, theirs) = (http(&args), curl(&args));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ours.status.success(), "{}", stderr(&ours));
    assert_eq!(stdout(&ours), stdout(&theirs));
    assert!(
        stdout(&ours).starts_with("GET /x HTTP/1.1\n200 "),
        "{}",
        stdout(&ours)
    );
}

#[test]
fn self_signed_certificate_is_trusted_with_cacert_only() {
    require_peer!("openssl");
    let dir = temp_dir("http-self-signed");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    // OpenSSL 3 marks such a certificate CA:TRUE
    let o = run(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null()),
        LIMIT,
    );
    assert!(o.status.success(), "openssl req: {}", stderr(&o));
    let (c, k) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let s = http_server(&["--tls", c, k]);
    let u = format!("https://127.0.0.1:{}/", s.port);
    let o = http(&["--cacert", c, "-w", "%{ssl_verify_result} %{scheme}", &u]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "index\n0 HTTPS");
    let o = http(&[&u]);
    assert_fails_with(&o, 6, "certificate verify failed: self-signed certificate");
    // curl agrees on both counts
    if require("curl") {
        assert!(curl(&["-s", "--cacert", c, &u]).status.success());
        let o = curl(&["-sS", &u]);
        assert!(
            stderr(&o).contains("self-signed certificate"),
            "{}",
            stderr(&o)
        );
    }
    // times with TLS: appconnect between connect and pretransfer
    let o = http(&["-s", "--cacert", c, "-o", "/dev/null", "-w", TIMES, &u]);
    assert_curl_order(&times(&o), true, "sockit https");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `--repeat --json` phase named `name`.
fn phase<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("{name} in {j}"))
}

#[test]
fn repeat_prints_samples_per_phase_and_reuse_connects_once() {
    let s = http_server(&[]);
    let u = url(&s, "/");
    // the table: 20 samples per phase (no TLS over http://)
    let o = http(&["--repeat", "20", &u]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("20 ok, 0 failed, 20 connections"), "{out}");
    for label in [
        "name lookup",
        "connect",
        "request sent",
        "first byte",
        "total",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} in {out}"));
        let n: Vec<&str> = line[label.len()..].split_whitespace().collect();
        assert_eq!(n[0], "20", "{line}");
        let p: Vec<f64> = n[1..].iter().map(|x| x.parse().expect(x)).collect();
        assert!(p.windows(2).all(|w| w[0] <= w[1]), "{line}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("TLS") && l.contains(" 0 ")),
        "{out}"
    );
    // --json: the same counts, and the histograms in bench's form
    let o = http(&["--repeat", "20", "--json", &u]);
    let j = json(&o);
    assert_eq!(
        (j["event"].as_str(), j["runs"].as_u64()),
        (Some("stats"), Some(20))
    );
    for name in [
        "name_lookup",
        "connect",
        "request_sent",
        "first_byte",
        "total",
    ] {
        let p = phase(&j, name);
        assert_eq!(p["count"], 20, "{p}");
        let h = sockit::bench::decode_histogram(p["histogram"].as_str().expect("histogram"))
            .expect("bench's encoding");
        assert_eq!(h.len(), 20);
        assert_eq!(p["histogram_unit"], "ns");
    }
    // warm: one connection for the 20 requests
    let o = http(&["--repeat", "20", "--reuse", "--json", &u]);
    let j = json(&o);
    assert_eq!(j["connects"], 1, "{j}");
    assert_eq!(phase(&j, "connect")["count"], 1, "{j}");
    assert_eq!(phase(&j, "first_byte")["count"], 20, "{j}");
    let o = http(&["--repeat", "20", "--reuse", &u]);
    let out = stdout(&o);
    assert!(out.contains("1 connection\n"), "{out}");
    assert!(out.contains("connect and TLS show once"), "{out}");
    // -w after each run
    let o = http(&["--repeat", "5", "-w", "%{http_code}\\n", &u]);
    assert_eq!(stdout(&o).matches("200\n").count(), 5, "{}", stdout(&o));
}

#[test]
fn rate_paces_the_runs() {
    let s = http_server(&[]);
    let _g = serial();
    let t = Instant::now();
    let o = http(&["--repeat", "3", "--rate", "10/s", &url(&s, "/")]);
    let took = t.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    // three starts 100 ms apart: at least 200 ms
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let o = http(&["--repeat", "3", "--rate", "10/w", &url(&s, "/")]);
    assert_fails_with(&o, 2, "unit must be s, m, h or d");
}

/// The largest resident set of a running process so far, in KiB (`VmHWM` of
/// /proc/PID/status), if it can still be read.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn an_endless_1xx_flood_ends_with_a_clear_error_and_little_memory() {
    // Regression: a server sending `100 Continue` heads without end grew sockit's RSS to
    // 1.2 GB in 12 s.
    let s = http_server(&[]);
    let mut child = sockit(&["http", &url(&s, "/flood")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockit");
    let pid = child.id();
    let deadline = Instant::now() + LIMIT;
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        match child.try_wait().expect("wait") {
            Some(st) => break st,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                panic!("sockit still reading the flood after {LIMIT:?} (peak {peak} KiB)");
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(7), "{err}");
    assert!(
        err.contains("more than 32 interim (1xx) responses before the final one"),
        "{err}"
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn redirects_without_a_count_limit_stop_at_a_loop_and_at_1000() {
    let s = http_server(&[]);
    let o = http(&["-L", "--max-redirs", "-1", &url(&s, "/loop")]);
    assert_fails_with(&o, 7, "redirect loop: GET");
    let o = run(
        &mut sockit(&["http", "-L", "--max-redirs", "-1", &url(&s, "/chain/0")]),
        Duration::from_secs(60),
    );
    assert_fails_with(&o, 7, "more than 1000");
    let o = http(&["-L", "--max-redirs", "2", &url(&s, "/chain/0")]);
    assert_fails_with(&o, 7, "more than 2 (--max-redirs)");
    let o = http(&["-L", "--max-redirs", "-2", &url(&s, "/chain/0")]);
    assert_fails_with(&o, 2, "-1 for no count limit");
}

#[test]
fn curls_flags_sockit_lacks_are_refused_by_name() {
    for (args, want) in [
        (
            &["-F", "a=b", "http://127.0.0.1:9/"][..],
            "curl's --form (-F) is not supported",
        ),
        (
            &["-n", "http://127.0.0.1:9/"][..],
            "curl's --netrc (-n) is not supported",
        ),
        (
            &["--http2", "http://127.0.0.1:9/"][..],
            "HTTP/1.0 and HTTP/1.1 only",
        ),
        (
            &["--socks5", "127.0.0.1:1080", "http://127.0.0.1:9/"][..],
            "curl's --socks5 is not supported (give the proxy as -x socks4://",
        ),
        (
            &["--cookie-jar", "j.txt", "http://127.0.0.1:9/"][..],
            "--cookie-jar (-c)",
        ),
        (
            &["http://127.0.0.1:9/", "--limit-rate", "1k"][..],
            "--limit-rate",
        ),
    ] {
        let o = http(args);
        assert_fails_with(&o, 2, want);
    }
    // curl's --json DATA: sockit's --json is its output format, and says so
    let o = http(&["--json", "{\"a\":1}", "http://127.0.0.1:9/"]);
    assert_fails_with(&o, 2, "not curl's --json DATA");
    // -u without a password, -b with a file name: refused, not sent half-done
    let o = http(&["-u", "user", "http://127.0.0.1:9/"]);
    assert_fails_with(&o, 2, "has no password");
    let o = http(&["-b", "cookies.txt", "http://127.0.0.1:9/"]);
    assert_fails_with(&o, 2, "names a cookie file");
    let o = http(&["-I", "-d", "x", "http://127.0.0.1:9/"]);
    assert_fails_with(&o, 2, "-I and -d choose different methods");
    // the help says where sockit's letters differ from curl's
    let o = http(&["--help"]);
    let help = stdout(&o);
    assert!(help.contains("curl's -n is --netrc"), "{help}");
    assert!(help.contains("not curl 7.82's --json DATA"), "{help}");
}

#[test]
fn hostile_urls_and_chunk_sizes() {
    // Regression: a zone id decoded to arbitrary bytes and printed back unparsable.
    let o = http(&["http://[fe80::1%25a%20b]:9/"]);
    assert_fails_with(&o, 2, "zone id \"a b\" is not an interface name");
    // Regression: chunk sizes with more than 16 digits of which leading zeros were refused.
    use std::io::{Read, Write};
    let (port, h) = serve_one_client(|mut s| {
        let _ = s.set_read_timeout(Some(LIMIT));
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              00000000000000000000005\r\nhello\r\n0000000000000000000000\r\n\r\n",
        );
    });
    let o = http(&[&format!("http://127.0.0.1:{port}/")]);
    let _ = h.join();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello");
}

/// `sockit http ARGS` and `curl ARGS`: their stdout must be the same.
fn same_stdout(args: &[&str]) -> (Output, Output) {
    let (ours, theirs) = (http(args), curl(args));
    assert_eq!(
        stdout(&ours),
        stdout(&theirs),
        "{args:?}: sockit {} / curl {}",
        stderr(&ours),
        stderr(&theirs)
    );
    (ours, theirs)
}

/// The headers of a recorded request, names in lower case.
fn header_names(r: &serde_json::Value) -> Vec<String> {
    r["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| h[0].as_str().unwrap_or_default().to_ascii_lowercase())
        .collect()
}

#[test]
fn credentials_stay_with_their_origin_after_a_redirect() {
    // Regression: -u, -H Authorization and -H Cookie went to another port after a
    // redirect (only the host was compared); curl compares scheme, host and port
    // (CVE-2022-27776). -b cookies go everywhere, as in curl.
    require_peer!("curl");
    let dir = temp_dir("http-origin");
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let a = http_server(&["--log", log_a.to_str().expect("utf-8")]);
    let b = http_server(&["--log", log_b.to_str().expect("utf-8")]);
    let to_b = url(&a, &format!("/to?u={}", url(&b, "/record")));
    let to_a = url(&a, &format!("/to?u={}", url(&a, "/record")));
    for (args, target, kept, dropped) in [
        (
            vec!["-u", "a:b", "-b", "n=v"],
            &to_b,
            &["cookie"][..],
            &["authorization"][..],
        ),
        (
            vec![
                "-H",
                "Authorization: Bearer x",
                "-H",
                "Cookie: c=1",
                "-H",
                "X-K: 1",
            ],
            &to_b,
            &["x-k"][..],
            &["authorization", "cookie"][..],
        ),
        (
            vec!["-u", "a:b", "-H", "Cookie: c=1"],
            &to_a,
            &["authorization", "cookie"][..],
            &[][..],
        ),
    ] {
        let log = if target == &to_b { &log_b } else { &log_a };
        let _ = std::fs::remove_file(log);
        let mut all = vec!["-s", "-L", "-o", "/dev/null"];
        all.extend(&args);
        all.push(target);
        let ours = http(&all);
        assert!(ours.status.success(), "{all:?}: {}", stderr(&ours));
        let theirs = curl(&all);
        assert!(theirs.status.success(), "{all:?}: curl {}", stderr(&theirs));
        let got = recorded(log);
        assert_eq!(got.len(), 2, "{all:?}: {got:?}");
        assert_eq!(comparable(&got[0]), comparable(&got[1]), "{all:?}");
        let names = header_names(&got[0]);
        for k in kept {
            assert!(
                names.iter().any(|n| n == k),
                "{all:?}: {k} missing: {names:?}"
            );
        }
        for d in dropped {
            assert!(
                !names.iter().any(|n| n == d),
                "{all:?}: {d} sent: {names:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn paths_redirects_and_uploads_are_sent_as_curl_sends_them() {
    // Regression: dot segments went out unchanged (curl squashes them unless
    // --path-as-is); a Location with a raw space was refused (curl encodes it); -T's
    // file name had %3F where curl has %3f.
    require_peer!("curl");
    let dir = temp_dir("http-paths");
    let log = dir.join("requests.log");
    let s = http_server(&["--log", log.to_str().expect("utf-8")]);
    let odd = dir.join("up?load.txt");
    std::fs::write(&odd, "odd name\n").expect("write");
    let odd = odd.to_str().expect("utf-8");
    let cases: Vec<Vec<String>> = vec![
        vec![url(&s, "/x/../record/a/./b/../c")],
        vec![url(&s, "/../../record/etc/passwd")],
        vec!["--path-as-is".into(), url(&s, "/record/a/../b")],
        vec!["-L".into(), url(&s, "/space")],
        vec![
            "-L".into(),
            url(&s, &format!("/to?u={}", url(&s, "/x/../record/abs"))),
        ],
        vec!["-T".into(), odd.into(), url(&s, "/record/dir/")],
        vec!["--url".into(), url(&s, "/record/by-flag")],
        // a flag given twice: the last one counts, as in curl
        vec![
            "-A".into(),
            "first".into(),
            "-A".into(),
            "second".into(),
            "-m".into(),
            "5".into(),
            "-m".into(),
            "6".into(),
            "-L".into(),
            "-L".into(),
            "--retry".into(),
            "1".into(),
            "--retry".into(),
            "2".into(),
            "-6".into(),
            "-4".into(),
            url(&s, "/record/twice"),
        ],
    ];
    for case in cases {
        let mut args: Vec<&str> = vec!["-s", "-s", "-o", "/dev/null"];
        args.extend(case.iter().map(String::as_str));
        let _ = std::fs::remove_file(&log);
        let ours = http(&args);
        assert!(ours.status.success(), "{case:?}: {}", stderr(&ours));
        let theirs = curl(&args);
        assert!(
            theirs.status.success(),
            "{case:?}: curl {}",
            stderr(&theirs)
        );
        let got = recorded(&log);
        assert_eq!(got.len(), 2, "{case:?}: {got:?}");
        assert_eq!(comparable(&got[0]), comparable(&got[1]), "{case:?}");
        if case.iter().any(|a| a == "first") {
            let ua = |r: &serde_json::Value| {
                r["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .find(|h| h[0] == "User-Agent")
                    .map(|h| h[1].clone())
            };
            assert_eq!(ua(&got[0]), Some("second".into()), "{got:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn write_out_values_match_curls_where_they_differed() {
    // Regression: %{http_version} was 1.0 (curl: 1); %{num_redirects} was one too high
    // and %{redirect_url} empty when redirects stopped early; %{url} lacked -G's query
    // and -T's name; %{url_effective} was normalised (curl keeps the URL as typed);
    // %{size_upload} counted a body the server refused before 100-continue.
    require_peer!("curl");
    let s = http_server(&[]);
    let dir = temp_dir("http-writeout");
    let up = dir.join("up.bin");
    std::fs::write(&up, vec![b'u'; 3000]).expect("write");
    let up = up.to_str().expect("utf-8");
    let redirects = "%{num_redirects} %{redirect_url} %{url_effective}\\n";
    let port = s.port.to_string();
    let typed = format!("HTTP://127.0.0.1:{port}/a/../b/./c?q=%7E#frag");
    let cases: Vec<Vec<String>> = vec![
        vec!["-w".into(), "%{http_version}".into(), url(&s, "/v10")],
        vec!["-w".into(), redirects.into(), url(&s, "/chain/0")],
        vec![
            "-L".into(),
            "--max-redirs".into(),
            "2".into(),
            "-w".into(),
            redirects.into(),
            url(&s, "/chain/0"),
        ],
        vec![
            "-L".into(),
            "--max-redirs".into(),
            "0".into(),
            "-w".into(),
            redirects.into(),
            url(&s, "/chain/0"),
        ],
        vec![
            "-L".into(),
            "-w".into(),
            redirects.into(),
            url(&s, "/chain/0"),
        ],
        vec![
            "-L".into(),
            "-w".into(),
            redirects.into(),
            url(&s, "/space"),
        ],
        vec![
            "-G".into(),
            "-d".into(),
            "a=1".into(),
            "-w".into(),
            "%{url} %{url_effective}".into(),
            format!("{}#f", url(&s, "/x?q")),
        ],
        vec![
            "-T".into(),
            up.into(),
            "-w".into(),
            "%{url} %{url_effective}".into(),
            url(&s, "/dir/"),
        ],
        vec!["-w".into(), "%{url} %{url_effective}".into(), typed],
        vec![
            "-w".into(),
            "%{url_effective}".into(),
            format!("127.0.0.1:{port}"),
        ],
        vec![
            "-T".into(),
            up.into(),
            "-w".into(),
            "%{http_code} %{size_upload} %{speed_upload}".into(),
            url(&s, "/reject"),
        ],
        vec![
            "-w".into(),
            "%{http_code}".into(),
            "-m".into(),
            "0".into(),
            url(&s, "/"),
        ],
    ];
    for case in cases {
        let mut args: Vec<&str> = vec!["-s", "-o", "/dev/null"];
        args.extend(case.iter().map(String::as_str));
        same_stdout(&args);
    }
    let args = ["-s", "-o", "/dev/null", "-w", "%{json}", &url(&s, "/v10")];
    for o in [http(&args), curl(&args)] {
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(j["http_version"], "1", "{j}");
    }
    // the request head only, as curl counts it: a 5000-byte body is not in it
    let body = "x".repeat(5000);
    let o = http(&[
        "-s",
        "-o",
        "/dev/null",
        "-d",
        &body,
        "-w",
        "%{size_request} %{size_upload}",
        &url(&s, "/echo"),
    ]);
    let (req, upload) = stdout(&o)
        .split_once(' ')
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .expect("two numbers");
    assert!(req < 1000 && upload == 5000, "{req} {upload}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transfer_codings_and_bad_redirects() {
    // Regression: `Transfer-Encoding: gzip, chunked` was written as raw gzip with exit
    // 0 (curl decodes it); an unusable Location exited 2 (bad input) where bad bytes
    // from the peer are 7.
    require_peer!("curl");
    let s = http_server(&[]);
    let (ours, _) = same_stdout(&["-s", &url(&s, "/te-gzip")]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    assert!(stdout(&ours).starts_with("compressed text\n"));
    let o = http(&["-L", "-w", "%{redirect_url}", &url(&s, "/ftp")]);
    assert_fails_with(&o, 7, "bad redirect Location \"ftp://127.0.0.1/x\"");
    assert_eq!(stdout(&o), "ftp://127.0.0.1/x");
}

#[test]
fn a_server_leaf_in_cacert_is_trusted_as_it_is() {
    // Regression: --cacert holding the server's own CA:FALSE certificate, issued by a CA
    // not in the file, was refused ("unknown issuer", hint "use --cacert"); curl and
    // `openssl s_client -partial_chain` accept it.
    require_peer!("openssl");
    let dir = temp_dir("http-leaf");
    let f = |n: &str| dir.join(n).to_str().expect("utf-8").to_string();
    let openssl = |args: &[&str]| {
        let o = run(
            Command::new("openssl").args(args).stdin(Stdio::null()),
            LIMIT,
        );
        assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for (name, cn) in [("ca", "/CN=Test CA"), ("other", "/CN=Other CA")] {
        let (key, pem) = (f(&format!("{name}.key")), f(&format!("{name}.pem")));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", cn];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem]);
        openssl(&args);
    }
    let (leaf_key, leaf_csr) = (f("leaf.key"), f("leaf.csr"));
    let mut args = vec!["req", "-subj", "/CN=127.0.0.1", "-keyout", &leaf_key];
    args.extend(ec);
    args.extend(["-out", &leaf_csr]);
    openssl(&args);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .expect("write");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &leaf_csr,
        "-CA",
        &f("ca.pem"),
        "-CAkey",
        &f("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &f("ext.cnf"),
        "-out",
        &f("leaf.pem"),
    ]);
    let s = http_server(&["--tls", &f("leaf.pem"), &f("leaf.key")]);
    let u = format!("https://127.0.0.1:{}/", s.port);
    let o = http(&["--cacert", &f("leaf.pem"), &u]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "index\n");
    if require("curl") {
        assert!(
            curl(&["-s", "--cacert", &f("leaf.pem"), &u])
                .status
                .success()
        );
    }
    // the CA's file verifies it fully; a file with neither is still refused, and its
    // hint does not tell a --cacert user to use --cacert
    let o = http(&["--cacert", &f("ca.pem"), &u]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = http(&["--cacert", &f("other.pem"), &u]);
    assert_fails_with(&o, 6, "unknown issuer");
    assert!(
        stderr(&o).contains("neither the certificate nor its issuer is in the --cacert file"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
