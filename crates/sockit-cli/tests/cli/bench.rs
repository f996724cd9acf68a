//! Tests of `sockit bench`: against echo servers (small ones in threads here, and the
//! slides' Python server), servers that corrupt, drop or stall, and `--merge`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use sockit::bench::hdrhistogram::Histogram;

use crate::common::{self, run, sockit};

const LIMIT: Duration = Duration::from_secs(30);

/// A TCP echo server in threads on 127.0.0.1: one thread per connection (at most 64),
/// every socket with a timeout. `corrupt_every`: flip one byte in that many echoed bytes;
/// `stall_at`: once, after that many bytes were echoed, sleep 500 ms before going on.
fn tcp_echo(corrupt_every: Option<usize>, stall_at: Option<usize>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    l.set_nonblocking(false).expect("blocking");
    std::thread::spawn(move || {
        let echoed = std::sync::Arc::new(AtomicUsize::new(0));
        for s in l.incoming().take(64) {
            let Ok(mut s) = s else { break };
            let echoed = echoed.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                let mut buf = [0u8; 4096];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let before = echoed.fetch_add(n, Ordering::Relaxed);
                    if let Some(k) = corrupt_every {
                        for (i, b) in buf[..n].iter_mut().enumerate() {
                            if (before + i) % k == k - 1 {
                                *b ^= 0x5a;
                            }
                        }
                    }
                    if let Some(at) = stall_at
                        && before < at
                        && before + n >= at
                    {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A UDP echo server in a thread on 127.0.0.1 that drops every `drop_every`-th datagram;
/// it ends after 3 s without traffic.
fn udp_dropping_echo(drop_every: usize) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = s.local_addr().expect("addr");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        for i in 1..=10_000_000usize {
            let Ok((n, peer)) = s.recv_from(&mut buf) else {
                break;
            };
            if i % drop_every != 0 {
                let _ = s.send_to(&buf[..n], peer);
            }
        }
    });
    addr
}

fn bench_json(args: &[&str]) -> (Value, i32, String) {
    let mut a = vec!["bench", "--json"];
    a.extend_from_slice(args);
    let out = run(&mut sockit(&a), LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {:?}; stderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (v, out.status.code().unwrap_or(-1), stderr)
}

/// The measured time of a result, seconds (`duration_us`).
fn secs(v: &Value) -> f64 {
    u(v, "duration_us") as f64 / 1e6
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("no number {k} in {v}"))
}

fn assert_clean(v: &Value) {
    assert_eq!(u(v, "errors"), 0, "{v}");
    assert_eq!(u(v, "mismatches"), 0, "{v}");
    assert_eq!(u(v, "lost"), 0, "{v}");
    assert_eq!(u(v, "lost_bytes"), 0, "{v}");
    let per: u64 = v["requests_per_connection"]
        .as_array()
        .expect("requests_per_connection")
        .iter()
        .map(|x| x.as_u64().expect("count"))
        .sum();
    assert_eq!(per, u(v, "requests"), "{v}");
    assert!(u(v, "requests") > 0, "{v}");
    // every request sent counts, also one abandoned in flight at the end
    assert_eq!(
        u(v, "bytes_sent"),
        u(v, "sent_requests") * u(v, "size_bytes"),
        "{v}"
    );
}

#[test]
fn several_connections_against_sockit_echo_server() {
    let server = common::sockit_server(&["echo-server", "--tcp", "--udp", "127.0.0.1:0"]);
    let port = server.port.to_string();
    let (v, code, err) = bench_json(&["127.0.0.1", &port, "-c", "4", "--duration", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_clean(&v);
    assert_eq!(u(&v, "connected"), 4);
    assert_eq!(
        v["requests_per_connection"].as_array().map(Vec::len),
        Some(4)
    );
    assert!(v["latency_p99_us"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    assert!(
        v["histogram"]
            .as_str()
            .is_some_and(|h| h.starts_with("HISTFAAA"))
    );
    // UDP on the same port: nothing lost. A count, with a timeout of 2 s (the UDP default
    // is 0.2 s, which a reply delayed on a loaded machine can miss): every datagram is
    // waited for and counted, answered or lost.
    let (v, code, err) = bench_json(&[
        "-u",
        "127.0.0.1",
        &port,
        "-c",
        "3",
        "--count",
        "300",
        "--timeout",
        "2",
    ]);
    assert_eq!(code, 0, "{err} {v}");
    assert_clean(&v);
    assert_eq!(u(&v, "truncated"), 0, "{v}");
    // stream mode: every byte comes back
    let (v, code, err) = bench_json(&[
        "127.0.0.1",
        &port,
        "-c",
        "2",
        "--mode",
        "stream",
        "--size",
        "16384",
        "--duration",
        "0.5",
    ]);
    assert_eq!(code, 0, "{err} {v}");
    assert!(u(&v, "bytes_received") > 0, "{v}");
    assert_eq!(
        u(&v, "lost_bytes") + u(&v, "mismatches") + u(&v, "errors"),
        0,
        "{v}"
    );
}

#[test]
fn count_is_exact_and_human_summary_names_the_figures() {
    let addr = tcp_echo(None, None);
    let out = run(
        &mut sockit(&["bench", &addr.to_string(), "-c", "3", "--count", "300"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("300 requests"), "{text}");
    for word in [
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "errors      0",
        "mismatches  0",
    ] {
        assert!(text.contains(word), "{word} missing in {text}");
    }
    // not a terminal: no progress line on stderr
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_slides_python_echo_server_one_connection() {
    // echo_server.py serves exactly one client and exits: -c 1, no extra connection
    let server = common::python_server("echo_server.py", &["127.0.0.1", "0"]);
    let port = server.port.to_string();
    let (v, code, err) = bench_json(&["127.0.0.1", &port, "-c", "1", "--duration", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_clean(&v);
}

#[test]
fn unix_socket_and_stream_mode() {
    let dir = scratch_dir("unix");
    let path = dir.join("echo.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).expect("bind unix");
    std::thread::spawn(move || {
        if let Some(Ok(mut s)) = l.incoming().next() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 65536];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let p = path.to_string_lossy().to_string();
    let (v, code, err) = bench_json(&[
        "--unix",
        &p,
        "--mode",
        "stream",
        "--size",
        "16384",
        "--duration",
        "0.5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["transport"], "unix");
    assert!(u(&v, "bytes_received") > 0, "{v}");
    assert!(v["mb_per_s"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    assert_eq!(u(&v, "mismatches"), 0, "{v}");
    assert_eq!(u(&v, "lost_bytes"), 0, "{v}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unix_datagrams_against_sockit_echo_server_and_a_python_peer() {
    // `-u --unix` used to be refused; it is datagram ping-pong from an autobound socket.
    let dir = scratch_dir("unixgram");
    let path = dir.join("echo.sock");
    let p = path.to_string_lossy().to_string();
    let _server = common::sockit_server(&["echo-server", "-u", "--unix", &p]);
    // A count, with a timeout of 2 s (the default 0.2 s can be missed by a reply delayed
    // on a loaded machine): every datagram is waited for and counted, answered or lost.
    let (v, code, err) = bench_json(&[
        "-u",
        "--unix",
        &p,
        "-c",
        "3",
        "--count",
        "300",
        "--timeout",
        "2",
    ]);
    assert_eq!(code, 0, "{err} {v}");
    assert_clean(&v);
    assert_eq!(v["transport"], "unixgram", "{v}");
    assert_eq!(u(&v, "truncated"), 0, "{v}");
    // the largest datagram echo-server takes comes back whole
    let (v, code, err) = bench_json(&[
        "-u",
        "--unix",
        &p,
        "--count",
        "20",
        "--size",
        "212992",
        "--timeout",
        "2",
    ]);
    assert_eq!(code, 0, "{err} {v}");
    assert_clean(&v);
    assert_eq!(u(&v, "bytes_received"), 20 * 212_992, "{v}");
    // one byte more is refused before anything is sent
    let out = run(
        &mut sockit(&["bench", "-u", "--unix", &p, "--size", "212993"]),
        LIMIT,
    );
    common::assert_fails_with(&out, 2, "holds at most 212992 bytes, not 212993");
    let out = run(
        &mut sockit(&["bench", "-u", "--unix", &p, "--mode", "stream"]),
        LIMIT,
    );
    common::assert_fails_with(&out, 2, "stream mode needs a stream socket");
    // A Python peer (recvfrom/sendto to the sender's autobind name), on an abstract name.
    let name = format!("sockit-bench-test-{}", std::process::id());
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1]); s.settimeout(10)
print("ready", flush=True)
try:
    while True:
        d, a = s.recvfrom(65536)
        s.sendto(d, a)
except socket.timeout:
    pass
"#;
    let mut py = crate::common::python_ready(script, &[&name]);
    let at = format!("@{name}");
    let (v, code, err) = bench_json(&[
        "-u",
        "--unix",
        &at,
        "-c",
        "2",
        "--count",
        "400",
        "--timeout",
        "2",
    ]);
    let _ = py.kill();
    let _ = py.wait();
    assert_eq!(code, 0, "{err} {v}");
    assert_clean(&v);
    assert_eq!(u(&v, "requests"), 400, "{v}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_corrupting_server_shows_mismatches_and_exits_7() {
    let addr = tcp_echo(Some(1000), None);
    let (v, code, _) = bench_json(&[&addr.to_string(), "-c", "2", "--duration", "1"]);
    assert!(u(&v, "mismatches") > 0, "{v}");
    assert_eq!(code, 7, "{v}");
}

#[test]
fn a_udp_server_that_drops_datagrams_shows_loss() {
    let addr = udp_dropping_echo(10);
    let (v, code, _) = bench_json(&[
        "-u",
        &addr.to_string(),
        "-c",
        "2",
        "--duration",
        "1",
        "--timeout",
        "0.05",
    ]);
    assert_eq!(v["transport"], "udp");
    assert!(u(&v, "lost") > 0, "{v}");
    assert!(u(&v, "requests") > u(&v, "lost"), "{v}");
    assert_eq!(code, 7, "{v}");
}

#[test]
fn rate_is_kept_and_a_stall_shows_in_p99() {
    let _serial = common::serial();
    // 1,000/s for 2 s; the server stalls 500 ms once, after about 0.5 s (32,000 bytes of
    // 64-byte messages; the setup echo is 8 bytes)
    let addr = tcp_echo(None, Some(8 + 500 * 64));
    let (v, code, err) = bench_json(&[&addr.to_string(), "--rate", "1000", "--duration", "2"]);
    assert_eq!(code, 0, "{err} {v}");
    let n = u(&v, "requests");
    assert!((1800..=2200).contains(&n), "{n} requests: {v}");
    // latency counts from the intended send times: the stall delays ~500 requests, so
    // p99 is near 500 ms, not a single slow round trip hidden in the tail
    let p99 = v["latency_p99_us"].as_f64().expect("p99");
    assert!(p99 >= 300_000.0, "p99 {p99} µs: {v}");
    // generous: a 2-core machine shared with other builds can starve the load generator too
    assert!(p99 <= 3_000_000.0, "p99 {p99} µs: {v}");
}

fn scratch_dir(tag: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "sockit-bench-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[test]
fn merge_equals_one_histogram_fed_with_both_runs() {
    let addr = tcp_echo(None, None);
    let dir = scratch_dir("merge");
    let mut files = Vec::new();
    let mut hist: Histogram<u64> = sockit::bench::new_histogram();
    let mut requests = 0;
    for (i, c) in ["1", "3"].iter().enumerate() {
        let (v, code, err) = bench_json(&[&addr.to_string(), "-c", c, "--duration", "0.5"]);
        assert_eq!(code, 0, "{err}");
        let h = sockit::bench::decode_histogram(v["histogram"].as_str().expect("histogram"))
            .expect("decodes");
        assert_eq!(h.len(), u(&v, "requests"));
        for x in h.iter_recorded() {
            hist.record_n(x.value_iterated_to(), x.count_at_value())
                .expect("record");
        }
        requests += u(&v, "requests");
        let f = dir.join(format!("run{i}.json"));
        std::fs::write(&f, v.to_string()).expect("write");
        files.push(f.to_string_lossy().to_string());
    }
    let mut args = vec!["--merge"];
    args.extend(files.iter().map(String::as_str));
    let (m, code, err) = bench_json(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(u(&m, "runs"), 2);
    assert_eq!(u(&m, "requests"), requests);
    let lat = sockit::bench::Latency::of(&hist).expect("values");
    for (k, want) in [
        ("latency_p50_us", lat.p50_us),
        ("latency_p90_us", lat.p90_us),
        ("latency_p99_us", lat.p99_us),
        ("latency_p999_us", lat.p999_us),
        ("latency_max_us", lat.max_us),
    ] {
        let got = m[k].as_f64().expect(k);
        assert!(
            (got - want).abs() < 0.06,
            "{k}: merged {got}, one histogram {want}"
        );
    }
    // and the human form prints the combined percentiles
    let mut a = vec!["bench", "--merge"];
    a.extend(files.iter().map(String::as_str));
    let out = run(&mut sockit(&a), LIMIT);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 merged runs") && text.contains("p99.9"),
        "{text}"
    );
    // a file that is not a result is refused with a clear error
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"x\":1}\n").expect("write");
    let out = run(
        &mut sockit(&["bench", "--merge", &bad.to_string_lossy()]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: json: missing field"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_is_refused() {
    for args in [
        &["bench", "127.0.0.1", "9", "-c", "0"][..],
        &["bench", "127.0.0.1", "9", "--size", "0"],
        &["bench", "127.0.0.1", "9", "--duration", "-1"],
        &["bench", "127.0.0.1", "9", "--rate", "0"],
        &["bench", "-u", "127.0.0.1", "9", "--mode", "stream"],
        &["bench", "127.0.0.1", "70000"],
        &["bench"],
    ] {
        let out = run(&mut sockit(args), LIMIT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
    // nothing listening: connection refused, exit 1
    let closed = common::closed_port();
    let out = run(
        &mut sockit(&[
            "bench",
            "127.0.0.1",
            &closed.port.to_string(),
            "--duration",
            "1",
        ]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Connection refused"));
}

#[test]
fn elapsed_is_the_real_run_and_the_rate_is_over_it() {
    // Regression: `--rate 0.001 --duration 0.5` said "1 requests in 0.00 s: 3639 per second".
    let _g = common::serial();
    let addr = tcp_echo(None, None);
    let t = std::time::Instant::now();
    let (v, code, err) = bench_json(&[&addr.to_string(), "--rate", "0.001", "--duration", "0.5"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_eq!(u(&v, "requests"), 1, "{v}");
    // (upper bounds 4x the half second: a loaded 2-core machine stretches the run)
    let d = secs(&v);
    assert!((0.5..2.0).contains(&d), "{v}");
    let rps = v["rps"].as_f64().expect("rps");
    assert!((0.5..=2.0).contains(&rps), "{v}");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    // `--count 1 -c 10`: the rate is one request over the whole run, no more than the
    // inverse of its measured duration.
    let (v, code, err) = bench_json(&[&addr.to_string(), "--count", "1", "-c", "10"]);
    assert_eq!(code, 0, "{err}");
    let d = secs(&v);
    let rps = v["rps"].as_f64().expect("rps");
    // (duration_us is whole microseconds, cut: 1/rps is the duration within one
    // microsecond; a relative bound failed on runs shorter than 1 ms)
    assert!(
        d > 0.0 && rps > 0.0 && (1.0 / rps - d).abs() <= 1.01e-6,
        "{v}"
    );
}

#[test]
fn merge_of_a_binary_file_is_bad_input_naming_file_and_line() {
    // Regression: `bench --merge big.bin` exited 1 with `open: stream did not contain valid UTF-8`.
    let dir = scratch_dir("binmerge");
    let f = dir.join("big.bin");
    std::fs::write(&f, b"\n\xff\xfe\x00binary").expect("write");
    let out = run(
        &mut sockit(&["bench", "--merge", f.to_str().expect("utf-8")]),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--merge {} line 2", f.display())) && err.contains("UTF-8"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn closed_stderr_does_not_panic() {
    // Regression: `eprintln!` in cmd/bench.rs panicked (exit 101) when stderr was a closed pipe.
    let addr = tcp_echo(None, None);
    let out = common::run_with_closed_stderr(
        &mut sockit(&["bench", "-v", &addr.to_string(), "--count", "5"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 requests"),
        "{out:?}"
    );
}

#[test]
fn unix_at_name_benchmarks_an_abstract_socket() {
    // Regression: `bench --unix @name` connected to a file `@name` (ENOENT) although
    // `echo-server --unix @name` listens on the abstract name.
    let name = format!("@sockit-bench-{}-abs", std::process::id());
    let mut srv = common::sockit_server(&["echo-server", "--unix", &name]);
    let (v, code, err) = bench_json(&["--unix", &name, "--count", "10"]);
    assert_eq!(code, 0, "{err} {v}");
    assert_eq!(v["transport"], "unix");
    assert_eq!(v["target"], name.as_str());
    assert_eq!(u(&v, "requests"), 10, "{v}");
    assert_clean(&v);
    assert_eq!(srv.terminate(LIMIT).and_then(|s| s.code()), Some(0));
    // and a missing abstract name is refused, not a file looked up
    let (v, code, _) = bench_json(&["--unix", &format!("{name}-none"), "--count", "1"]);
    assert_eq!(code, 1, "{v}");
    // as errors_by_kind would count it
    assert_eq!(v["event"], "error", "{v}");
    assert_eq!(v["kind"], "os", "{v}");
    assert_eq!(v["reason"], "refused", "{v}");
}

#[test]
fn each_time_flag_states_its_range_once() {
    // Regression: `--duration 0` said "above 0 and at most 3600s" but -1 and NaN said
    // ">= 0"; `1e300` echoed a 300-digit number; `--warmup 1e30` said ">= 0"; and
    // `--duration -1` (a separate word) was clap's "unexpected argument '-1'".
    let more = "must be more than 0 and at most 3600 seconds";
    let from0 = "must be at least 0 and at most 3600 seconds";
    for (flag, value, want) in [
        ("--duration", "0", more),
        ("--duration", "-1", more),
        ("--duration", "NaN", more),
        ("--duration", "1e300", more),
        ("--duration", "3601", more),
        ("--warmup", "1e30", from0),
        ("--warmup", "-1", from0),
        (
            "--timeout",
            "-1",
            "must be at least 0.001 and at most 1e9 seconds",
        ),
        (
            "--rate",
            "-3",
            "must be more than 0 and at most 10000000 per second",
        ),
    ] {
        for args in [
            vec!["bench", "127.0.0.1", "9", flag, value],
            vec!["bench", "127.0.0.1", "9", &format!("{flag}={value}")],
        ] {
            let out = run(&mut sockit(&args), LIMIT);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            let first = err.lines().next().unwrap_or_default();
            assert!(
                first.contains(&format!("'{value}' for '{flag} <"))
                    && first.ends_with(want)
                    && first.len() < 120,
                "{args:?}: {first}"
            );
        }
    }
}

#[test]
fn error_json_and_first_error_use_the_success_forms() {
    // Regression: the error JSON said "target":"127.0.0.1 1" (success: "127.0.0.1:41897")
    // and had no "op"; first_error of a peer close had kind "os" while errors_by_kind
    // counted it under "closed".
    let closed = common::closed_port();
    let port = closed.port.to_string();
    for (words, want) in [
        (
            vec!["127.0.0.1", port.as_str()],
            format!("127.0.0.1:{port}"),
        ),
        (vec![port.as_str()], format!("127.0.0.1:{port}")),
        (vec!["::1", port.as_str()], format!("[::1]:{port}")),
    ] {
        let mut args = words.clone();
        args.extend(["--count", "1", "-w", "2"]);
        let (v, code, _) = bench_json(&args);
        assert_ne!(code, 0, "{v}");
        assert_eq!(v["target"], want.as_str(), "{v}");
        assert_eq!(v["op"], "connect", "{v}");
    }
    // a server that echoes the setup bytes, reads one request and closes: a peer close
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Some(Ok(mut s)) = l.incoming().next() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut hello = [0u8; 8];
            if s.read_exact(&mut hello).is_ok() && s.write_all(&hello).is_ok() {
                // read the first request whole (no unread bytes: a FIN, not a reset)
                let mut request = [0u8; 64];
                let _ = s.read_exact(&mut request);
            }
        }
    });
    let (v, code, err) = bench_json(&[&addr.to_string(), "--duration", "1"]);
    assert_ne!(code, 0, "{err} {v}");
    assert_eq!(v["errors_by_kind"]["closed"], 1, "{v}");
    assert_eq!(v["first_error"]["kind"], "os", "{v}");
    assert_eq!(v["first_error"]["reason"], "closed", "{v}");
    assert_eq!(v["first_error"]["op"], "recv", "{v}");
}

/// Runs `sockit bench ARGS…` and returns (exit code, stdout, stderr).
fn bench_text(args: &[&str]) -> (Option<i32>, String, String) {
    let mut a = vec!["bench"];
    a.extend_from_slice(args);
    let out = run(&mut sockit(&a), LIMIT);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn merge_refuses_other_benchmarks_failed_runs_bad_fields_and_other_flags() {
    // Regression: --merge summed runs of another --size or mode, coerced bad fields to 0
    // with exit 0, gave a vague message for a failed run, ignored -c/-u/--mode/--rate, and
    // put the longest run's duration beside the summed rate.
    let addr = tcp_echo(None, None).to_string();
    let dir = scratch_dir("mergecheck");
    let save = |name: &str, v: &Value| {
        let f = dir.join(name);
        std::fs::write(&f, format!("{v}\n")).expect("write");
        f.to_string_lossy().to_string()
    };
    let result = |extra: &[&str]| {
        let mut a = vec![addr.as_str(), "--count", "50"];
        a.extend_from_slice(extra);
        let (v, code, err) = bench_json(&a);
        assert_eq!(code, 0, "{err} {v}");
        v
    };
    let good = result(&[]);
    let a = save("a.json", &good);
    let b = save("b.json", &result(&["-c", "2"]));
    let big = save("big.json", &result(&["--size", "128"]));
    let stream = save("stream.json", &result(&["--mode", "stream"]));
    let closed = common::closed_port();
    let (failed, code, _) = bench_json(&[&closed.port.to_string(), "--count", "1"]);
    assert_eq!(code, 1, "{failed}");
    let failed = save("failed.json", &failed);

    // the text names what is summed and over what
    let (code, out, err) = bench_text(&["--merge", &a, &b]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("100 requests from 2 runs; combined rate ")
            && out.contains("per second (sum of each run's rate)")
            && !out.contains(" s: "),
        "{out}"
    );

    // other benchmarks: exit 2 saying what differs
    for (f, differs) in [
        (&big, "size_bytes 64 and 128"),
        (&stream, "mode pingpong and stream"),
    ] {
        let (code, _, err) = bench_text(&["--merge", &a, f]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(differs) && err.contains(f.as_str()), "{err}");
    }
    // a failed run
    let (code, _, err) = bench_text(&["--merge", &a, &failed]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{failed} is a failed run (error: connect: [Errno 111]"
        )),
        "{err}"
    );

    // every field checked: exit 2 naming the file and the field
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("requests");
    for (k, bad, want) in [
        (
            "requests",
            serde_json::json!("many"),
            "field \"requests\": invalid",
        ),
        (
            "requests",
            serde_json::json!(-5),
            "field \"requests\": invalid",
        ),
        (
            "requests",
            serde_json::json!(2f64.powi(70)),
            "field \"requests\": invalid",
        ),
        (
            "rps",
            serde_json::json!(-3),
            "field \"rps\": must be a number of at least 0",
        ),
        (
            "histogram_unit",
            serde_json::json!("us"),
            "field \"histogram_unit\": unknown variant `us`, expected `ns`",
        ),
        (
            "mode",
            serde_json::json!("burst"),
            "field \"mode\": unknown variant `burst`",
        ),
        (
            "errors_by_kind",
            serde_json::json!({"os": -1}),
            "field \"errors_by_kind.os\": invalid value: integer `-1`",
        ),
    ] {
        let mut v = good.clone();
        v[k] = bad;
        let f = save("x.json", &v);
        let (code, out, err) = bench_text(&["--merge", &a, &f]);
        assert_eq!(code, Some(2), "{k}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains(&format!("{f} line 1")) && err.contains(want),
            "{k}: {err}"
        );
    }
    let f = save("x.json", &missing);
    let (code, _, err) = bench_text(&["--merge", &f]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing field `requests`"), "{err}");

    // flags that do not apply with --merge are usage errors
    for flag in [
        &["-c", "5"][..],
        &["-u"],
        &["--mode", "stream"],
        &["--rate", "100"],
        &["--size", "64"],
        &["--duration", "1"],
        &["-v"],
    ] {
        let mut args = vec!["--merge", a.as_str()];
        args.extend_from_slice(flag);
        let (code, _, err) = bench_text(&args);
        assert_eq!(code, Some(2), "{flag:?}: {err}");
        assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A one-client TCP server on 127.0.0.1 that echoes the 8-byte connection check, then
/// hands every later read to `reply` (which returns what to send back, maybe nothing).
/// Every socket has a timeout; it serves one connection and at most 10 s.
fn tcp_after_check(
    mut reply: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let (port, h) = common::serve_one_client(move |mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
        let mut check = [0u8; 8];
        if s.read_exact(&mut check).is_err() || s.write_all(&check).is_err() {
            return;
        }
        let mut buf = [0u8; 65536];
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let back = reply(&buf[..n]);
            if !back.is_empty() && s.write_all(&back).is_err() {
                break;
            }
        }
    });
    (SocketAddr::from(([127, 0, 0, 1], port)), h)
}

/// A UDP server in a thread on 127.0.0.1 that answers each datagram with the datagrams
/// `reply` returns; it ends after 3 s without traffic.
fn udp_server(reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = s.local_addr().expect("addr");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        for _ in 0..1_000_000 {
            let Ok((n, peer)) = s.recv_from(&mut buf) else {
                break;
            };
            for d in reply(&buf[..n]) {
                let _ = s.send_to(&d, peer);
            }
        }
    });
    addr
}

fn bench_json_within(args: &[&str], limit: Duration) -> (Value, i32, String, Duration) {
    let mut a = vec!["bench", "--json"];
    a.extend_from_slice(args);
    let t = std::time::Instant::now();
    let out = run(&mut sockit(&a), limit);
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {:?}; stderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (v, out.status.code().unwrap_or(-1), stderr, took)
}

#[test]
fn udp_count_ends_against_a_silent_server() {
    // Regression: `-u --count 3 --timeout 0.1` against a silent server ran for up to an hour.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let (v, code, err, took) = bench_json_within(
        &["-u", &addr, "--count", "3", "--timeout", "0.1"],
        Duration::from_secs(8),
    );
    assert_eq!(code, 7, "{err} {v}");
    assert_eq!(u(&v, "lost"), 3, "{v}");
    assert_eq!(u(&v, "requests"), 0, "{v}");
    assert_eq!(v["stopped_by"], "count", "{v}");
    // it used to run for up to an hour; seconds of slack for a loaded machine
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_timeout_is_t_and_the_run_ends_at_the_duration() {
    // Regression: the timeout fired after 1.5×T, and `--duration 1` against a server that
    // stops answering ran 7.5 s and reported duration_s 7.50.
    let _g = common::serial();
    let mut left = 20 * 64;
    let (addr, _h) = tcp_after_check(move |b| {
        let n = b.len().min(left);
        left -= n;
        b[..n].to_vec()
    });
    let (v, code, err, took) = bench_json_within(
        &[&addr.to_string(), "--duration", "1"],
        Duration::from_secs(5),
    );
    assert_eq!(code, 0, "{err} {v}");
    assert_eq!(u(&v, "requests"), 20, "{v}");
    assert_eq!(u(&v, "errors"), 0, "in flight at the end is abandoned: {v}");
    let d = secs(&v);
    assert!((0.99..=1.05).contains(&d), "{v}");
    // it used to take 7.5 s; slack for a loaded machine
    assert!(took < Duration::from_secs(4), "{took:?}");
    // within the window a timeout is an error, after T (not 1.5 T)
    let (addr, _h) = tcp_after_check(|_| Vec::new());
    let (v, code, err, _) = bench_json_within(
        &[&addr.to_string(), "--duration", "3", "--timeout", "1"],
        Duration::from_secs(6),
    );
    // nothing answered in the window: data did not come back (7), the timeout counted
    assert_eq!(code, 7, "{err} {v}");
    assert_eq!(u(&v, "errors"), 1, "{v}");
    assert_eq!(v["first_error"]["kind"], "timeout", "{v}");
    assert_eq!(v["first_error"]["reason"], "timeout", "{v}");
    let d = secs(&v);
    assert!((0.99..1.35).contains(&d), "{v}");
}

#[test]
fn a_timeout_below_a_millisecond_is_refused() {
    // Regression: `--timeout 0.00001` and `--timeout 1e-9` were silently rounded up.
    for t in ["0.00001", "1e-9"] {
        let out = run(
            &mut sockit(&["bench", "-u", "127.0.0.1", "9", "--timeout", t]),
            LIMIT,
        );
        common::assert_fails_with(&out, 2, "must be at least 0.001 and at most 1e9 seconds");
    }
}

#[test]
fn open_loop_stops_at_the_end_and_counts_unsent_requests() {
    // Regression: `--rate 100 --duration 1` against a server taking ~50 ms per reply ran
    // 3 s, and the requests due but never sent were not reported.
    let _g = common::serial();
    let slow = || {
        tcp_after_check(|b| {
            std::thread::sleep(Duration::from_millis(50));
            b.to_vec()
        })
        .0
        .to_string()
    };
    let args = ["--rate", "100", "--duration", "1", "--timeout", "2"];
    let addr = slow();
    let mut a = vec![addr.as_str()];
    a.extend(args);
    let (v, code, err, took) = bench_json_within(&a, Duration::from_secs(8));
    assert_eq!(code, 0, "{err} {v}");
    let (sent, unsent) = (u(&v, "sent_requests"), u(&v, "unsent_requests"));
    assert!((99..=101).contains(&(sent + unsent)), "{v}");
    assert!(sent <= 30 && unsent >= 60, "{v}");
    // it used to run 3 s; duration_s below is the exact check
    assert!(took < Duration::from_millis(2900), "{took:?}");
    let d = secs(&v);
    assert!(d <= 1.05, "{v}");
    // the text says the rate was not reached
    let addr = slow();
    let mut a = vec!["bench", addr.as_str()];
    a.extend(args);
    let out = run(&mut sockit(&a), Duration::from_secs(8));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("target not reached") && text.contains("never sent"),
        "{text}"
    );
}

#[test]
fn udp_corrupted_and_duplicated_replies_are_named_so() {
    // Regression: corrupted replies counted as "lost" and "late"; duplicates as "late".
    // Every datagram is answered at once: a timeout of 1 s (not 0.2 s) keeps a reply
    // delayed on a loaded machine from counting as lost or late.
    let addr = udp_server(|d| vec![d.iter().map(|b| b ^ 0xff).collect()]).to_string();
    let (v, code, err) = bench_json(&["-u", &addr, "--count", "20", "--timeout", "1"]);
    assert_eq!(code, 7, "{err} {v}");
    assert_eq!(u(&v, "mismatches"), 20, "{v}");
    assert_eq!(u(&v, "lost") + u(&v, "late"), 0, "{v}");
    let addr = udp_server(|d| vec![d.to_vec(), d.to_vec()]).to_string();
    let (v, code, err) = bench_json(&["-u", &addr, "--count", "200", "--timeout", "1"]);
    assert_eq!(code, 0, "{err} {v}");
    assert!(u(&v, "duplicates") >= 150, "{v}");
    assert_eq!(
        u(&v, "late") + u(&v, "lost") + u(&v, "mismatches"),
        0,
        "{v}"
    );
    assert_eq!(u(&v, "requests"), 200, "{v}");
}

#[test]
fn stream_counts_chunks_that_came_back() {
    // Regression: mismatches counted reads, and the chunk rate counted chunks written.
    let (addr, _h) = tcp_after_check(|b| vec![0xff; b.len()]);
    let (v, code, err) = bench_json(&[
        &addr.to_string(),
        "--mode",
        "stream",
        "--duration",
        "0.5",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(code, 7, "{err} {v}");
    // every chunk came back wrong (counted over the chunks echoed in the window)
    let (chunks, mis) = (u(&v, "requests"), u(&v, "mismatches"));
    assert_eq!(u(&v, "lost_bytes"), 0, "{v}");
    assert!(chunks > 100 && mis == chunks, "{v}");
    // a server that reads but never echoes: nothing came back, nothing is counted
    let (addr, _h) = tcp_after_check(|_| Vec::new());
    let (v, code, err) = bench_json(&[
        &addr.to_string(),
        "--mode",
        "stream",
        "--duration",
        "0.5",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(code, 7, "{err} {v}");
    assert_eq!(u(&v, "requests"), 0, "{v}");
    assert_eq!(u(&v, "bytes_received"), 0, "{v}");
    assert!(u(&v, "lost_bytes") > 0, "{v}");
    assert_eq!(v["rps"].as_f64(), Some(0.0), "{v}");
}

#[test]
fn the_connection_check_is_reported_as_such() {
    // Regression: its mismatch counted with --no-verify and among the measured
    // mismatches; its timeout said only `bench: recv: timed out`.
    let garbage = || {
        common::serve_one_client(|mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 4096];
            for _ in 0..100_000 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&vec![b'?'; n]).is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .0
        .to_string()
    };
    let port = garbage();
    let (v, code, err) = bench_json(&["127.0.0.1", &port, "--count", "100", "--no-verify"]);
    assert_eq!(code, 0, "{err} {v}");
    assert_eq!(u(&v, "mismatches"), 0, "{v}");
    assert_eq!(u(&v, "requests"), 100, "{v}");
    let port = garbage();
    let out = run(
        &mut sockit(&["bench", "127.0.0.1", &port, "--count", "100"]),
        LIMIT,
    );
    common::assert_fails_with(&out, 7, "bench: connection check (8-byte echo): ");
    // a server that accepts and never answers
    let (port, _h) = accept_read_then_silent(Duration::from_secs(3), Duration::from_secs(1));
    let out = run(
        &mut sockit(&["bench", "127.0.0.1", &port.to_string(), "--timeout", "0.2"]),
        LIMIT,
    );
    common::assert_fails_with(
        &out,
        5,
        "bench: connection check (8-byte echo): recv: timed out",
    );
}

/// A one-client TCP server that echoes the connection check, then keeps the connection
/// open for `hold` without reading (`read: false`) or reading and echoing nothing. The
/// client's end of stream does not close it: a fast client writes a whole `--count`
/// and half-closes well within its `--timeout`, and closing then would end the run
/// with `closed`, not the silence under test.
fn tcp_check_then_silent(read: bool, hold: Duration) -> String {
    let (port, _h) = common::serve_one_client(move |mut s| {
        // The check gets seconds (a loaded machine may be slow to send it); then reads
        // poll every 100 ms until `hold` ends.
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
        let mut check = [0u8; 8];
        if s.read_exact(&mut check).is_err() || s.write_all(&check).is_err() {
            return;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        let t = std::time::Instant::now();
        let mut buf = [0u8; 65536];
        let mut reading = read;
        while t.elapsed() < hold {
            if reading {
                match s.read(&mut buf) {
                    Ok(0) => reading = false,
                    _ => continue,
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    port.to_string()
}

#[test]
fn stream_with_a_count_stops_when_the_echo_stops() {
    // Regression: `--mode stream --count 100000 --timeout 0.5` against a server that
    // stopped echoing (or reading) ran until killed. A count of 100 is written (and
    // half-closed) before the timeout on any machine; one of 100,000 on a fast one only
    // (CI once did): either way the silence ends it.
    for (read, count) in [
        (true, "100000"),
        (false, "100000"),
        (true, "100"),
        (false, "100"),
    ] {
        let port = tcp_check_then_silent(read, Duration::from_secs(8));
        let (v, code, err, took) = bench_json_within(
            &[
                "127.0.0.1",
                &port,
                "--mode",
                "stream",
                "--count",
                count,
                "--size",
                "1000",
                "-c",
                "1",
                "--timeout",
                "0.5",
            ],
            Duration::from_secs(15),
        );
        assert_eq!(code, 7, "read {read} count {count}: {err} {v}");
        // It used to run until killed; 0.5 s of silence should end it at once, but a
        // loaded machine (parallel tests) may take seconds to get there.
        assert!(
            took < Duration::from_secs(6),
            "read {read} count {count}: {took:?}"
        );
        assert!(u(&v, "lost_bytes") > 0, "read {read} count {count}: {v}");
        assert_eq!(
            v["errors_by_kind"]["timeout"], 1,
            "read {read} count {count}: {v}"
        );
        assert_eq!(u(&v, "requests"), 0, "read {read} count {count}: {v}");
    }
}

#[test]
fn stream_goes_on_while_a_slow_server_keeps_echoing() {
    // Regression: a stream write blocked for one --timeout ended the run with "send: timed
    // out", though the server was echoing all along (it reads a little, then echoes it
    // slowly without reading more). Only echoes that stop end a connection.
    let (port, server) = common::serve_one_client(|mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
        let mut check = [0u8; 8];
        s.read_exact(&mut check).ok()?;
        s.write_all(&check).ok()?;
        // 1 MiB read, echoed 16 KiB every 20 ms for 1.2 s without reading more: the
        // client's 16 MiB write stays blocked that long (the socket buffers hold less)
        let mut first = vec![0u8; 1 << 20];
        s.read_exact(&mut first).ok()?;
        for piece in first.chunks(16 << 10) {
            s.write_all(piece).ok()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut buf = vec![0u8; 1 << 16];
        let mut total = first.len();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return Some(total),
                Ok(n) => {
                    s.write_all(&buf[..n]).ok()?;
                    total += n;
                }
            }
        }
    });
    let (v, code, err, _) = bench_json_within(
        &[
            "127.0.0.1",
            &port.to_string(),
            "--mode",
            "stream",
            "--count",
            "1",
            "--size",
            "16777216",
            "-c",
            "1",
            "--timeout",
            "0.5",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err} {v}");
    assert_eq!(u(&v, "errors"), 0, "{v}");
    assert_eq!(u(&v, "requests"), 1, "{v}");
    assert_eq!(u(&v, "bytes_received"), 16 << 20, "{v}");
    assert_eq!(server.join().expect("server"), Some(16 << 20));
}

#[test]
fn a_write_blocked_when_the_duration_ends_is_not_an_error() {
    // Regression: against a slow server that kept echoing, `--mode stream --duration`
    // reported "send: timed out" (errors 1, stopped_by errors): the write still blocked at
    // the end hit the hard stop. It is abandoned at the end now, as ping-pong requests are.
    let (port, _server) = common::serve_one_client(|mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 4096];
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let (v, code, err, _) = bench_json_within(
        &[
            "127.0.0.1",
            &port.to_string(),
            "--mode",
            "stream",
            "--size",
            "16384",
            "--duration",
            "2",
            "--timeout",
            "1",
        ],
        Duration::from_secs(20),
    );
    assert_ne!(code, 5, "{err} {v}");
    assert_eq!(u(&v, "errors"), 0, "{err} {v}");
    assert_eq!(v["stopped_by"], "duration", "{v}");
    assert!(u(&v, "requests") > 0, "{v}");
}

#[test]
fn a_server_that_never_answers_is_exit_7() {
    // Regression: silent UDP `--duration 0.15` and a TCP server silent after the check
    // with `--warmup 0.1` gave "errors 0" and exit 0.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let (v, code, err, _) =
        bench_json_within(&["-u", &addr, "--duration", "0.15"], Duration::from_secs(5));
    assert_eq!(code, 7, "{err} {v}");
    assert!(
        err.contains("no reply in the measured window: 1 request sent, 0 answered"),
        "{err}"
    );
    // bytes_sent counts what was written, answered or not
    assert_eq!(u(&v, "sent_requests"), 1, "{v}");
    assert_eq!(u(&v, "bytes_sent"), 64, "{v}");
    let port = tcp_check_then_silent(true, Duration::from_secs(3));
    let (v, code, err, _) = bench_json_within(
        &["127.0.0.1", &port, "--warmup", "0.1", "--duration", "0.5"],
        Duration::from_secs(5),
    );
    assert_eq!(code, 7, "{err} {v}");
    assert!(
        err.contains("no reply in the measured window: 1 request sent, 0 answered"),
        "{err}"
    );
}

#[test]
fn stream_duration_is_the_real_time_when_every_connection_died() {
    // Regression: a server closing after 5 reads ended the run after 0.1 s, but
    // duration_s said the planned 1.0 (now duration_us).
    let (port, _h) = common::serve_one_client(|mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let mut buf = [0u8; 65536];
        let mut check = [0u8; 8];
        if s.read_exact(&mut check).is_err() || s.write_all(&check).is_err() {
            return;
        }
        for _ in 0..5 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let _ = s.write_all(&buf[..n]);
                }
            }
        }
    });
    let (v, _code, err, took) = bench_json_within(
        &[
            "127.0.0.1",
            &port.to_string(),
            "--mode",
            "stream",
            "--duration",
            "1",
        ],
        Duration::from_secs(5),
    );
    let d = secs(&v);
    assert!(d < 0.5, "{err} {v}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(u(&v, "errors"), 1, "{v}");
}

/// A one-client server that reads once (waiting at most `read_wait`), never answers, and
/// holds the connection for `hold` more.
fn accept_read_then_silent(
    read_wait: Duration,
    hold: Duration,
) -> (u16, std::thread::JoinHandle<()>) {
    common::serve_one_client(move |mut s| {
        let _ = s.set_read_timeout(Some(read_wait));
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        std::thread::sleep(hold);
    })
}

#[test]
fn the_connect_timeout_during_the_check_names_the_check() {
    // Regression: `-w` running out during the 8-byte check said "bench: connect: timed out".
    let (port, _h) = accept_read_then_silent(Duration::from_secs(2), Duration::from_millis(1500));
    let out = run(
        &mut sockit(&["bench", "127.0.0.1", &port.to_string(), "-w", "0.3"]),
        LIMIT,
    );
    common::assert_fails_with(
        &out,
        5,
        "bench: connection check (8-byte echo): recv: timed out",
    );
}

#[test]
fn stream_counters_count_the_same_bytes() {
    // Regression: "mismatches 27598" beside "18430 chunks echoed"; a server echoing
    // twice gave twice the chunks sent; sent_requests was 0 in stream mode.
    let port = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let p = port.port.to_string();
    let (v, code, err) = bench_json(&["127.0.0.1", &p, "--mode", "stream", "--count", "1000"]);
    assert_eq!(code, 0, "{err} {v}");
    assert_eq!(u(&v, "sent_requests"), 1000, "{v}");
    assert_eq!(u(&v, "bytes_sent"), 64000, "{v}");
    assert_eq!(u(&v, "requests"), 1000, "{v}");
    // every chunk corrupted: at most one mismatch per chunk echoed
    let (addr, _h) = tcp_after_check(|b| b.iter().map(|x| x ^ 1).collect());
    let (v, code, err) = bench_json(&[
        &addr.to_string(),
        "--mode",
        "stream",
        "--duration",
        "0.3",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(code, 7, "{err} {v}");
    let (chunks, mis) = (u(&v, "requests"), u(&v, "mismatches"));
    assert!(chunks > 10 && mis == chunks, "{v}");
    // everything echoed twice: echoed chunks are at most those sent, the rest is extra
    let (addr, _h) = tcp_after_check(|b| [b, b].concat());
    let (v, code, err) = bench_json(&[
        &addr.to_string(),
        "--mode",
        "stream",
        "--duration",
        "0.3",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(code, 7, "{err} {v}");
    assert!(u(&v, "requests") <= u(&v, "sent_requests"), "{v}");
    assert!(u(&v, "extra_bytes") > 0, "{v}");
    assert!(u(&v, "mismatches") <= u(&v, "requests"), "{v}");
}

#[test]
fn bytes_sent_counts_every_request_sent() {
    // Regression: 40 sent and 38 answered gave bytes_sent 38×64.
    let mut left = 3 * 64;
    let (addr, _h) = tcp_after_check(move |b| {
        let n = b.len().min(left);
        left -= n;
        b[..n].to_vec()
    });
    let (v, code, err) = bench_json(&[&addr.to_string(), "--duration", "0.3"]);
    assert_eq!(code, 0, "{err} {v}");
    assert_eq!(u(&v, "requests"), 3, "{v}");
    assert_eq!(u(&v, "sent_requests"), 4, "{v}");
    assert_eq!(u(&v, "bytes_sent"), 4 * 64, "{v}");
}

#[test]
fn udp_needs_a_size_of_eight_bytes() {
    // Regression: `-u --size 4`: late replies became mismatches (no room for the sequence).
    let out = run(
        &mut sockit(&["bench", "-u", "127.0.0.1", "9", "--size", "7"]),
        LIMIT,
    );
    common::assert_fails_with(
        &out,
        2,
        "-u needs --size of at least 8 bytes: each datagram carries its 8-byte sequence number",
    );
    let out = run(
        &mut sockit(&["bench", "127.0.0.1", "9", "--count", "0"]),
        LIMIT,
    );
    common::assert_fails_with(&out, 2, "--count must be at least 1");
}

#[test]
fn a_failed_run_names_its_error_as_errors_by_kind_does() {
    // Regression: a wrong check echo was "protocol", a reset during the check "os".
    let (port, _h) = common::serve_one_client(|mut s| {
        let mut b = [0u8; 8];
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = s.read_exact(&mut b);
        let _ = s.write_all(b"XXXXXXXX");
        std::thread::sleep(Duration::from_millis(300));
    });
    let (v, code, err) = bench_json(&["127.0.0.1", &port.to_string()]);
    assert_eq!(code, 7, "{err} {v}");
    assert_eq!(v["kind"], "protocol", "{v}");
    assert_eq!(v["reason"], "check", "{v}");
    let (port, _h) = common::serve_one_client(|mut s| {
        let mut b = [0u8; 8];
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = s.read_exact(&mut b);
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    });
    let (v, code, err) = bench_json(&["127.0.0.1", &port.to_string()]);
    assert_eq!(code, 1, "{err} {v}");
    assert_eq!(v["kind"], "os", "{v}");
    assert_eq!(v["reason"], "reset", "{v}");
}

#[test]
fn merge_refuses_every_empty_file_and_counts_one_run() {
    // Regression: `--merge a.json empty.json` merged 1 run silently; "from 1 runs".
    let dir = scratch_dir("merge-empty");
    let port = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let out = run(
        &mut sockit(&[
            "bench",
            "127.0.0.1",
            &port.port.to_string(),
            "--count",
            "20",
            "--json",
        ]),
        LIMIT,
    );
    let (a, empty) = (dir.join("a.json"), dir.join("empty.json"));
    std::fs::write(&a, &out.stdout).expect("write");
    std::fs::write(&empty, "").expect("write");
    let (a, empty) = (
        a.to_string_lossy().to_string(),
        empty.to_string_lossy().to_string(),
    );
    let out = run(&mut sockit(&["bench", "--merge", &a, &empty]), LIMIT);
    common::assert_fails_with(&out, 2, "empty.json");
    let out = run(&mut sockit(&["bench", "--merge", &a]), LIMIT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("20 requests from 1 run; "), "{text}");
    // a saved run whose first error is a failed check keeps exit 7 when merged
    let mut v: Value = serde_json::from_slice(&std::fs::read(&a).expect("read")).expect("json");
    v["errors"] = 1.into();
    v["errors_by_kind"] = serde_json::json!({"check": 1});
    v["first_error"] = serde_json::json!({"kind": "check", "op": "connection check (8-byte echo)",
        "code": null, "message": "connection check (8-byte echo): the echo came back as [..]"});
    let c = dir.join("check.json");
    std::fs::write(&c, v.to_string()).expect("write");
    let out = run(
        &mut sockit(&["bench", "--merge", &c.to_string_lossy()]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_name_with_both_families_reaches_an_ipv4_only_server() {
    // Regression: `bench localhost PORT` (and `-u`) tried only ::1, the first answer,
    // though `echo-server localhost 0` binds 127.0.0.1: "[Errno 111] Connection refused".
    let script = r#"
B="$0"; d=$(mktemp -d)
timeout 30 "$B" echo-server localhost 0 > "$d/t" 2>&1 & E=$!
timeout 30 "$B" echo-server -u localhost 0 > "$d/u" 2>&1 & U=$!
i=0; while [ $i -lt 100 ]; do grep -q listening "$d/t" && grep -q listening "$d/u" && break; sleep 0.1; i=$((i+1)); done
P=$(awk '/listening/{print $3}' "$d/t"); Q=$(awk '/listening/{print $3}' "$d/u")
timeout 20 "$B" bench -v localhost "$P" --duration 0.3 > /dev/null 2> "$d/e1"; echo "tcp rc=$?"
timeout 20 "$B" bench -v -u localhost "$Q" --duration 0.3 --timeout 2 > /dev/null 2> "$d/e2"; echo "udp rc=$?"
cat "$d/e1" "$d/e2"
kill $E $U; rm -rf "$d"
"#;
    let bin = common::bin();
    let mut cmd = common::no_dns("sh", &["-c", script, bin.to_str().unwrap()]);
    let out = run(&mut cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("tcp rc=0"), "{text}");
    assert!(text.contains("udp rc=0"), "{text}");
    // TCP and UDP alike (the verbose line said "the first address that accepted a
    // connection" for TCP after the probe was gone)
    assert_eq!(
        text.matches(
            "localhost is 127.0.0.1 (its IPv4 address first, as echo-server binds); also ::1"
        )
        .count(),
        2,
        "{text}"
    );
}

#[test]
fn merge_refuses_an_endless_file() {
    // Regression: `--merge /dev/zero` read until memory ran out.
    let out = run(&mut sockit(&["bench", "--merge", "/dev/zero"]), LIMIT);
    common::assert_fails_with(
        &out,
        2,
        "--merge /dev/zero: open /dev/zero: larger than 64 MiB",
    );
}

/// A result file saved by sockit 0.1 before the shared JSON vocabulary (`protocol`,
/// `unix-dgram`, `duration_s`, `first_error.kind` as the errors_by_kind word).
fn old_fixture(name: &str) -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli/fixtures/bench-0.1")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn merge_reads_results_saved_before_the_vocabulary() {
    // Files written by the previous version (kept as fixtures) still merge, into the
    // new vocabulary: transport, duration_us, first_error with kind and reason.
    for (file, transport) in [
        ("tcp-pingpong.json", "tcp"),
        ("udp.json", "udp"),
        ("tcp-stream.json", "tcp"),
        ("unix-dgram.json", "unixgram"),
        ("tcp-rate.json", "tcp"),
        ("merged.json", "tcp"),
    ] {
        let f = old_fixture(file);
        let old: Value =
            serde_json::from_slice(&std::fs::read(&f).expect("fixture")).expect("json");
        let (v, code, err) = bench_json(&["--merge", &f]);
        assert_eq!(code, 0, "{file}: {err} {v}");
        assert_eq!(v["event"], "summary", "{v}");
        assert_eq!(v["transport"], transport, "{file}: {v}");
        assert!(
            v.get("protocol").is_none() && v.get("duration_s").is_none(),
            "{v}"
        );
        for k in ["requests", "bytes_sent", "bytes_received", "connections"] {
            assert_eq!(v[k], old[k], "{file} {k}: {v}");
        }
        let want = (old["duration_s"].as_f64().expect("duration_s") * 1e6).round() as u64;
        assert_eq!(u(&v, "duration_us"), want, "{file}: {v}");
        assert_eq!(v["latency_p99_us"], old["latency_p99_us"], "{file}: {v}");
        assert_eq!(u(&v, "runs"), old["runs"].as_u64().unwrap_or(1), "{file}");
    }
    // old and new files add up together
    let port = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let (new, code, err) = bench_json(&["127.0.0.1", &port.port.to_string(), "--count", "30"]);
    assert_eq!(code, 0, "{err}");
    let dir = scratch_dir("old-and-new");
    let n = dir.join("new.json");
    std::fs::write(&n, format!("{new}\n")).expect("write");
    let (v, code, err) = bench_json(&[
        "--merge",
        &old_fixture("tcp-pingpong.json"),
        &n.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{err} {v}");
    assert_eq!(u(&v, "requests"), 230, "{v}");
    assert_eq!(u(&v, "runs"), 2, "{v}");
    // a saved failed run is still refused as one
    let (code, _, err) = bench_text(&["--merge", &old_fixture("failed.json")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("is a failed run (error: connect: [Errno 111]"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn merge_keeps_a_run_that_got_no_reply() {
    // Regression: the CLI's copy of the report ignored unanswered requests: a run that
    // exited 7 ("no reply in the measured window") merged alone, or with a good run,
    // exited 0 with "errors 0".
    let dir = scratch_dir("unanswered");
    let port = tcp_check_then_silent(true, Duration::from_secs(3));
    let (silent, code, err, _) = bench_json_within(
        &["127.0.0.1", &port, "--warmup", "0.1", "--duration", "0.3"],
        Duration::from_secs(5),
    );
    assert_eq!(code, 7, "{err} {silent}");
    assert_eq!(u(&silent, "unanswered_requests"), 1, "{silent}");
    assert_eq!(u(&silent, "sent_requests_total"), 1, "{silent}");
    let s = dir.join("silent.json");
    std::fs::write(&s, format!("{silent}\n")).expect("write");
    let addr = tcp_echo(None, None).to_string();
    let (good, code, err) = bench_json(&[&addr, "--count", "20"]);
    assert_eq!(code, 0, "{err}");
    let g = dir.join("good.json");
    std::fs::write(&g, format!("{good}\n")).expect("write");
    let (s, g) = (s.to_string_lossy(), g.to_string_lossy());
    let (code, out, err) = bench_text(&["--merge", &s]);
    assert_eq!(code, Some(7), "{out} {err}");
    assert!(
        err.contains("no reply in the measured window: 1 request sent, 0 answered"),
        "{err}"
    );
    let (v, code, err) = bench_json(&["--merge", &g, &s]);
    assert_eq!(code, 7, "{err} {v}");
    assert_eq!(u(&v, "unanswered_requests"), 1, "{v}");
    assert_eq!(u(&v, "requests"), 20, "{v}");
    assert!(
        err.contains("a run got no reply in the measured window: 1 request sent to it"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Every JSON line of a `--json` output.
fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn interval_lines_tile_the_run_and_add_up_to_its_requests() {
    let port = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let p = port.port.to_string();
    let dir = scratch_dir("interval");
    let out = run(
        &mut sockit(&[
            "bench",
            "127.0.0.1",
            &p,
            "-c",
            "2",
            "--duration",
            "0.7",
            "--interval",
            "0.2",
            "--json",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out.stdout);
    let (summary, intervals) = lines.split_last().expect("lines");
    assert_eq!(summary["event"], "summary", "{summary}");
    assert!(intervals.len() >= 3, "{lines:?}");
    let mut at = 0;
    for iv in intervals {
        assert_eq!(iv["event"], "interval", "{iv}");
        assert_eq!(u(iv, "start_us"), at, "{iv}");
        at = u(iv, "end_us");
        assert!(iv["latency_p99_us"].as_f64().is_some(), "{iv}");
    }
    assert_eq!(at, u(summary, "duration_us"), "{summary}");
    let sum: u64 = intervals.iter().map(|iv| u(iv, "requests")).sum();
    assert_eq!(sum, u(summary, "requests"));
    // --merge skips the interval lines of a saved output
    let f = dir.join("iv.json");
    std::fs::write(&f, &out.stdout).expect("write");
    let (m, code, err) = bench_json(&["--merge", &f.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(m["requests"], summary["requests"], "{m}");
    // text: one line per interval, iperf3's way, before the summary
    let (code, text, err) =
        bench_text(&["127.0.0.1", &p, "--duration", "0.5", "--interval", "0.25"]);
    assert_eq!(code, Some(0), "{err}");
    let first: Vec<&str> = text.lines().take(2).collect();
    assert!(
        first[0].starts_with("[   0.00-   0.25 s]") && first[0].contains("per second  µs p50"),
        "{text}"
    );
    assert!(first[1].starts_with("[   0.25-   0.50 s]"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Starts `sockit bench ARGS…` with stdout read line by line into a channel.
fn spawn_bench(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = sockit(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn a_signal_prints_the_partial_summary() {
    // SIGINT: the summary of what was measured, marked partial, exit 130 (iperf3 prints
    // its summary too); SIGTERM: the same, exit 0.
    let server = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let p = server.port.to_string();
    for (sig, want) in [("INT", 130), ("TERM", 0)] {
        let (mut child, lines) = spawn_bench(&[
            "bench",
            "127.0.0.1",
            &p,
            "--duration",
            "60",
            "--interval",
            "0.2",
            "--json",
        ]);
        // the handlers are in place before the load starts: wait for the first interval
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("an interval line");
        assert!(first.contains(r#""event":"interval""#), "{first}");
        let t = std::time::Instant::now();
        let _ = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status();
        let mut stderr = child.stderr.take().expect("stderr");
        let status = common::wait_output(child, Duration::from_secs(10)).status;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{sig}: {:?}",
            t.elapsed()
        );
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        assert_eq!(status.code(), Some(want), "{sig}: {err}");
        assert!(err.contains(&format!("stopped by SIG{sig}")), "{err}");
        let rest: Vec<String> = lines.try_iter().collect();
        let summary: Value = serde_json::from_str(rest.last().expect("a summary")).expect("json");
        assert_eq!(summary["event"], "summary", "{summary}");
        assert_eq!(summary["partial"], true, "{summary}");
        assert_eq!(summary["stopped_by"], "stopped", "{summary}");
        assert!(
            u(&summary, "requests") > 0 && u(&summary, "errors") == 0,
            "{summary}"
        );
        let secs = secs(&summary);
        assert!((0.2..5.0).contains(&secs), "{summary}");
    }
}

/// The number of curves in an SVG written by `--plot`, from its parsed XML (python3's
/// xml.etree: the file must parse): polylines drawn 2 px wide, one per series.
fn svg_series(path: &std::path::Path) -> usize {
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
lines = [p for p in root.iter(ns + "polyline") if p.get("stroke-width") == "2"]
assert all(len(p.get("points").split()) >= 2 for p in lines)
print(len(lines))
"#;
    let out = run(common::python3().arg("-c").arg(script).arg(path), LIMIT);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn plot_draws_one_curve_per_run_and_the_merge() {
    let server = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let p = server.port.to_string();
    let dir = scratch_dir("plot");
    let svg = dir.join("one.svg");
    let out = run(
        &mut sockit(&[
            "bench",
            "127.0.0.1",
            &p,
            "--count",
            "500",
            "--json",
            "--plot",
            &svg.to_string_lossy(),
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(svg_series(&svg), 1);
    let a = dir.join("a.json");
    std::fs::write(&a, &out.stdout).expect("write");
    let (b, code, err) = bench_json(&["127.0.0.1", &p, "-c", "2", "--count", "300"]);
    assert_eq!(code, 0, "{err}");
    let bf = dir.join("b.json");
    std::fs::write(&bf, format!("{b}\n")).expect("write");
    let merged = dir.join("merged.svg");
    let out = run(
        &mut sockit(&[
            "bench",
            "--merge",
            &a.to_string_lossy(),
            &bf.to_string_lossy(),
            "--plot",
            &merged.to_string_lossy(),
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(svg_series(&merged), 3, "two runs and the merge");
    let text = std::fs::read_to_string(&merged).expect("svg");
    assert!(
        text.contains("a.json line 1") && text.contains("merged"),
        "legend"
    );
    // a file that cannot be written is an error naming it
    let out = run(
        &mut sockit(&[
            "bench",
            "--merge",
            &a.to_string_lossy(),
            "--plot",
            "/nonexistent/x.svg",
        ]),
        LIMIT,
    );
    common::assert_fails_with(&out, 1, "--plot");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_shards_merged_count_as_one_run() {
    // k6's execution segments: each shard runs its slice of the connections and of the
    // count; merged, they are the whole run.
    let server = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let p = server.port.to_string();
    let dir = scratch_dir("shard");
    let (whole, code, err) = bench_json(&["127.0.0.1", &p, "-c", "3", "--count", "1001"]);
    assert_eq!(code, 0, "{err}");
    let mut files = Vec::new();
    for (i, conns) in [("1/2", 1), ("2/2", 2)] {
        let (v, code, err) =
            bench_json(&["127.0.0.1", &p, "-c", "3", "--count", "1001", "--shard", i]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(u(&v, "connections"), conns, "{i}: {v}");
        let f = dir.join(format!("shard{conns}.json"));
        std::fs::write(&f, format!("{v}\n")).expect("write");
        files.push(f.to_string_lossy().into_owned());
    }
    let (m, code, err) = bench_json(&["--merge", &files[0], &files[1]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(u(&m, "requests"), u(&whole, "requests"), "{m}");
    assert_eq!(u(&m, "requests"), 1001);
    assert_eq!(u(&m, "connections"), 3);
    // bad slices are usage errors
    for bad in ["0/2", "3/2", "1/0", "x", "1/2/3"] {
        let (code, _, err) = bench_text(&["127.0.0.1", &p, "--shard", bad]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("must be I/N"), "{bad}: {err}");
    }
    let (code, _, err) = bench_text(&["127.0.0.1", &p, "--shard", "1/2", "--count", "10"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("give at least 2 connections"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hdr_log_holds_one_histogram_per_interval() {
    let server = common::sockit_server(&["echo-server", "--tcp", "127.0.0.1:0"]);
    let p = server.port.to_string();
    let dir = scratch_dir("hdrlog");
    let log = dir.join("run.hlog");
    let (code, out, err) = bench_text(&[
        "127.0.0.1",
        &p,
        "--duration",
        "0.5",
        "--interval",
        "0.1",
        "--hdr-log",
        &log.to_string_lossy(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let requests: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("requests    "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("requests line");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("#[StartTime: ") && text.contains("#[BaseTime: "),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
        .collect();
    assert!(rows.len() >= 4, "{text}");
    let mut total = 0;
    for row in &rows {
        // start,length,max,histogram: HdrHistogram's own columns
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols.len(), 4, "{row}");
        assert!(
            cols[0].parse::<f64>().is_ok() && cols[1].parse::<f64>().is_ok(),
            "{row}"
        );
        total += sockit::bench::decode_histogram(cols[3])
            .expect("histogram")
            .len();
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    // without --interval: one histogram a second, and nothing printed but the summary
    let out = run(
        &mut sockit(&[
            "bench",
            "127.0.0.1",
            &p,
            "--duration",
            "0.3",
            "--json",
            "--hdr-log",
            &log.to_string_lossy(),
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let rows = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        rows.lines().filter(|l| l.contains("HISTFAAA")).count(),
        1,
        "{rows}"
    );
    assert_eq!(total, requests, "every measured round trip is in the log");
    // a log that cannot be created: an error naming it, before any load
    let (code, _, err) = bench_text(&["127.0.0.1", &p, "--hdr-log", "/nonexistent/x.hlog"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--hdr-log /nonexistent/x.hlog"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

// Regression: SIGINT/SIGTERM during the connect phase (a connect that hangs, a server that
// never answers the connection check) waited for -w; now the run stops at once with the
// empty partial summary, exit 130 / 0.
#[test]
fn a_signal_in_the_connect_phase_stops_the_run_at_once() {
    let script = r#"
B="$0"; ip link set lo up || exit 97
d=$(mktemp -d)
timeout 50 python3 -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 7000)); l.listen(0)
m = socket.socket(); m.bind(("127.0.0.1", 7001)); m.listen(5)
q = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False); c.connect_ex(("127.0.0.1", 7000)); q.append(c)
time.sleep(0.3)
print("ready", flush=True)
time.sleep(45)' > "$d/py" & P=$!
i=0; while [ $i -lt 100 ]; do grep -q ready "$d/py" && break; sleep 0.1; i=$((i+1)); done
peers() { ss -tanH | awk -v p="127.0.0.1:$1" '$5 == p' | wc -l; }
for sig in INT TERM; do
for port in 7000 7001; do
  base=$(peers $port)
  json=""; [ $sig = INT ] && json=--json
  "$B" bench 127.0.0.1:$port -c 3 --duration 5 -w 20 $json > "$d/out" 2> "$d/err" & S=$!
  i=0; while [ "$(peers $port)" -lt $((base + 3)) ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
  t0=$(date +%s%N); kill -$sig $S; wait $S; rc=$?; t1=$(date +%s%N)
  echo "== $sig $port rc=$rc ms=$(( (t1 - t0) / 1000000 ))"; cat "$d/out" "$d/err"
done; done
kill $P; rm -rf "$d"
"#;
    crate::common::require_peer!("ss");
    let Some(out) = crate::common::in_netns(script, Duration::from_secs(120)) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.code() != Some(97), "{out:?}");
    let runs: Vec<&str> = text.split("== ").skip(1).collect();
    assert_eq!(runs.len(), 4, "{text}");
    for (run, want) in runs.iter().zip([
        "INT 7000 rc=130",
        "INT 7001 rc=130",
        "TERM 7000 rc=0",
        "TERM 7001 rc=0",
    ]) {
        assert!(run.starts_with(want), "{want}: {text}");
        let ms: u64 = run
            .lines()
            .next()
            .unwrap()
            .rsplit("ms=")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ms < 3000, "at once, not after -w: {text}");
        if want.starts_with("INT") {
            assert!(run.contains(r#""partial":true"#), "{run}");
            assert!(run.contains(r#""connected":0"#), "{run}");
        } else {
            assert!(run.contains("[partial"), "{run}");
        }
        assert!(run.contains("stopped by SIG"), "{run}");
    }
}
