//! Tests of `sockit scan`.

use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::{require_peer, run, serial, sockit};

/// A port that was free a moment ago (bound then released): nothing listens on it.
/// A TCP port where nothing listens, held (bound, not listening) while the value lives,
/// so no parallel test can start listening there (as after a dropped listener).
fn closed_tcp_port() -> crate::common::ClosedPort {
    crate::common::closed_port()
}

#[test]
fn one_open_one_closed_prints_the_open_one_and_exits_1() {
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let op = open.local_addr().unwrap().port();
    let closed = closed_tcp_port();
    let cp = closed.port;
    let out = run(
        &mut sockit(&["scan", "127.0.0.1", &format!("{op},{cp}")]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("127.0.0.1 {op}/tcp open\n")
    );
}

#[test]
fn all_open_exits_0_and_verbose_shows_every_state() {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let pa = a.local_addr().unwrap().port();
    let out = run(
        &mut sockit(&["scan", "127.0.0.1", &pa.to_string()]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let closed = closed_tcp_port();
    let cp = closed.port;
    let out = run(
        &mut sockit(&["scan", "-v", "127.0.0.1", &format!("{cp},{pa}")]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("127.0.0.1 {cp}/tcp closed\n127.0.0.1 {pa}/tcp open\n"),
        "ports print in the order asked"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 open, 1 closed"), "{err}");
}

#[test]
fn json_has_one_object_per_port() {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let pa = a.local_addr().unwrap().port();
    let closed = closed_tcp_port();
    let cp = closed.port;
    let out = run(
        &mut sockit(&["scan", "--json", "127.0.0.1", &format!("{pa},{cp}")]),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let objs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(objs.len(), 2, "{text}");
    assert_eq!(objs[0]["event"], "port");
    assert_eq!(objs[0]["peer_host"], "127.0.0.1");
    assert_eq!(objs[0]["peer_port"], pa);
    assert_eq!(objs[0]["state"], "open");
    assert_eq!(objs[0]["transport"], "tcp");
    assert!(objs[0]["duration_us"].is_u64(), "{text}");
    assert!(objs[0].get("error").is_none(), "{text}");
    assert_eq!(objs[1]["peer_port"], cp);
    assert_eq!(objs[1]["state"], "closed");
    assert_eq!(objs[1]["reason"], "refused");
    assert_eq!(objs[1]["error"]["kind"], "os");
    assert_eq!(objs[1]["error"]["op"], "connect");
    assert_eq!(objs[1]["error"]["code"], 111);
    assert!(
        objs[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Errno 111")
    );
}

#[test]
fn a_hundred_closed_ports_finish_under_5_s() {
    let _guard = serial();
    // Find 100 consecutive ports with nothing listening (start high, in the ephemeral
    // range's neighbourhood), checked by a quick bind.
    // held (bound, not listening) during the scan: no parallel test can listen there
    let (start, _held) = crate::common::closed_port_block(100);
    let t = Instant::now();
    let out = run(
        &mut sockit(&["scan", "127.0.0.1", &format!("{start}-{}", start + 99)]),
        Duration::from_secs(15),
    );
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn udp_answer_closed_and_silent() {
    // One port answers every datagram, one is closed (ICMP port unreachable), one is
    // bound but silent.
    let answering = UdpSocket::bind("127.0.0.1:0").expect("bind");
    answering
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let pa = answering.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok((_, peer)) = answering.recv_from(&mut buf) {
            let _ = answering.send_to(b"hi", peer);
        }
    });
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let ps = silent.local_addr().unwrap().port();
    // refused (ICMP port unreachable) and held, so no parallel test can bind it meanwhile
    let closed = crate::common::closed_udp_port();
    let pc = closed.port;
    let out = run(
        &mut sockit(&[
            "scan",
            "-u",
            "-v",
            "-w",
            "0.5",
            "127.0.0.1",
            &format!("{pa},{pc},{ps}"),
        ]),
        Duration::from_secs(10),
    );
    let _ = t.join();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "127.0.0.1 {pa}/udp open\n127.0.0.1 {pc}/udp closed\n127.0.0.1 {ps}/udp open|filtered\n"
        )
    );
}

#[test]
fn bad_port_lists_are_usage_errors() {
    for bad in ["0", "70000", "9-3", "1,,2"] {
        let out = run(
            &mut sockit(&["scan", "127.0.0.1", bad]),
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("sockit: ports:"), "{bad}: {err}");
    }
}

#[test]
fn service_names_stand_for_ports() {
    // Port 1 (tcpmux) is below 1024 and nothing listens there in the test sandbox.
    let out = run(
        &mut sockit(&["scan", "-v", "-n", "127.0.0.1", "tcpmux"]),
        Duration::from_secs(10),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "127.0.0.1 1/tcp closed\n"
    );
}

#[test]
fn unknown_service_is_a_usage_error_and_w_0_says_the_default() {
    // Regression: `scan 127.0.0.1 nosuchsvc` exited 1, like a closed port; `-w 0` offered "no limit".
    let out = run(
        &mut sockit(&["scan", "127.0.0.1", "nosuchsvc"]),
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown service \"nosuchsvc\""), "{err}");
    let out = run(
        &mut sockit(&["scan", "-w", "0", "127.0.0.1", "1"]),
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("default 2") && !err.contains("no limit"),
        "{err}"
    );
}

#[test]
fn a_name_with_both_families_scans_its_ipv4_address_unless_6() {
    // Regression: `scan -v localhost PORT` scanned ::1 (the first answer) and said closed
    // for an `echo-server localhost 0`, which binds 127.0.0.1.
    let script = r#"
B="$0"; d=$(mktemp -d)
timeout 30 "$B" echo-server localhost 0 > "$d/t" 2>&1 & E=$!
i=0; while [ $i -lt 100 ]; do grep -q listening "$d/t" && break; sleep 0.1; i=$((i+1)); done
P=$(awk '/listening/{print $3}' "$d/t")
timeout 20 "$B" scan -v localhost "$P" 2>&1; echo "v4 rc=$?"
timeout 20 "$B" scan -6 localhost "$P" 2>&1; echo "v6 rc=$?"
kill $E; rm -rf "$d"
"#;
    let bin = crate::common::bin();
    let mut cmd = crate::common::no_dns("sh", &["-c", script, bin.to_str().unwrap()]);
    let out = run(&mut cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("/tcp open"), "{text}");
    assert!(text.contains("v4 rc=0"), "{text}");
    assert!(
        text.contains("scanning 127.0.0.1; the name also has ::1"),
        "{text}"
    );
    assert!(
        text.contains("v6 rc=1"),
        "-6 scans ::1, where nothing listens: {text}"
    );
}

#[test]
fn a_probe_connected_to_itself_is_closed() {
    // Regression: a probe whose source port was the port probed connected to itself (TCP
    // simultaneous open; UDP got its own datagram back) and the port was reported open.
    // `-p` forces that source port.
    for (udp, proto) in [(false, "tcp"), (true, "udp")] {
        let p = crate::common::free_port();
        let ps = p.to_string();
        let mut argv = vec!["scan", "-v", "-w", "1", "-s", "127.0.0.1", "-p", &ps];
        if udp {
            argv.push("-u");
        }
        argv.extend(["127.0.0.1", &ps]);
        let out = run(&mut sockit(&argv), Duration::from_secs(10));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("127.0.0.1 {p}/{proto} closed\n"),
            "{out:?}"
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
}

#[test]
fn the_ephemeral_range_shows_only_the_ports_listened_on() {
    // Regression: `scan 127.0.0.1 32768-60999` with nothing listening reported a port or
    // two open, in most runs: a probe given its target port as ephemeral source port
    // connected to itself. Run in a network namespace of its own (only lo, where only
    // this test's echo-server listens), with the ephemeral range narrowed to 1,000 ports
    // (a run meets about one such probe whatever the range's size, so small ranges make
    // many runs cheap): 8 runs over TCP and 4 over UDP; before the fix each run printed
    // one or more ports open.
    crate::common::require_peer!("unshare");
    crate::common::require_peer!("ip");
    let _guard = serial();
    let script = r#"
B="$0"; ip link set lo up || exit 97
echo "40000 40999" > /proc/sys/net/ipv4/ip_local_port_range || exit 98
d=$(mktemp -d)
timeout 30 "$B" echo-server 127.0.0.1 0 > "$d/t" 2>&1 & E=$!
i=0; while [ $i -lt 100 ]; do grep -q listening "$d/t" && break; sleep 0.1; i=$((i+1)); done
P=$(awk '/listening/{print $3}' "$d/t")
echo "own $P"
n=0; while [ $n -lt 8 ]; do timeout 20 "$B" scan -w 0.5 --parallel 1024 127.0.0.1 40000-40999; echo "tcp rc=$?"; n=$((n+1)); done
n=0; while [ $n -lt 4 ]; do timeout 20 "$B" scan -u -w 0.5 --parallel 1024 127.0.0.1 40000-40999; echo "udp rc=$?"; n=$((n+1)); done
kill $E; rm -rf "$d"
"#;
    let Some(out) = crate::common::in_netns(script, Duration::from_secs(60)) else {
        return;
    };
    if out.status.code() == Some(98) {
        return skip(&format!("cannot narrow ip_local_port_range: {out:?}"));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("own "))
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no echo-server port: {out:?}"));
    assert!((40000..=40999).contains(&own), "{out:?}");
    let mut want = format!("127.0.0.1 {own}/tcp open\ntcp rc=1\n").repeat(8);
    want.push_str(&"udp rc=1\n".repeat(4));
    let got: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(got, want, "{out:?}");
}

#[test]
fn malformed_ranges_say_so_with_the_real_bounds() {
    // Regression: `7101-` and `1--2` said `unknown service "7101-"`; `-` said "port must
    // be 0-65535" though scan's ports are 1-65535.
    for bad in ["7101-", "1--2", "-"] {
        let out = run(
            &mut sockit(&["scan", "127.0.0.1", bad]),
            Duration::from_secs(10),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.starts_with(&format!("sockit: ports: malformed port range {bad:?}"))
                && err.contains("1-65535")
                && !err.contains("service"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn host_colon_ports_and_several_port_words() {
    // Regression: `scan 127.0.0.1:PORT` and `scan HOST 22 80` (as `nc -z host 22 80`)
    // were usage errors, though the README says every subcommand takes HOST:PORT.
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let pa = a.local_addr().unwrap().port();
    let closed = closed_tcp_port();
    let cp = closed.port;
    let out = run(
        &mut sockit(&["scan", &format!("127.0.0.1:{pa}")]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("127.0.0.1 {pa}/tcp open\n")
    );
    let out = run(
        &mut sockit(&[
            "scan",
            "-v",
            "127.0.0.1",
            &cp.to_string(),
            &format!("{pa},{cp}"),
            &format!("{pa}-{pa}"),
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("127.0.0.1 {cp}/tcp closed\n127.0.0.1 {pa}/tcp open\n"),
        "the words' ports in order, repeats dropped"
    );
    let six = std::net::TcpListener::bind("[::1]:0");
    if let Ok(six) = six {
        let p6 = six.local_addr().unwrap().port();
        let out = run(
            &mut sockit(&["scan", &format!("[::1]:{p6}")]),
            Duration::from_secs(10),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("::1 {p6}/tcp open\n")
        );
    }
    for (words, want) in [
        (vec!["127.0.0.1"], "no ports to scan"),
        (vec!["127.0.0.1:"], "no ports to scan"),
        (vec!["127.0.0.1:22", "80"], "give the ports once"),
    ] {
        let mut argv = vec!["scan"];
        argv.extend(words.iter().copied());
        let out = run(&mut sockit(&argv), Duration::from_secs(10));
        crate::common::assert_fails_with(&out, 2, want);
    }
}

#[test]
fn json_errors_are_json_objects() {
    // Regression: `scan --json nosuch.invalid 22` printed only `sockit: getaddrinfo: …`,
    // where resolve, service and http print a JSON error object.
    let bin = crate::common::bin();
    let out = run(
        &mut crate::common::no_dns(
            bin.to_str().unwrap(),
            &["scan", "--json", "nosuch.invalid", "22"],
        ),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let obj: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a JSON object on stdout");
    assert_eq!(obj["event"], "error", "{obj}");
    assert_eq!(obj["kind"], "gai");
    assert_eq!(obj["op"], "getaddrinfo");
    assert!(obj["code"].is_i64(), "{obj}");
    assert!(obj["message"].as_str().unwrap().contains("getaddrinfo"));
    let out = run(
        &mut sockit(&["scan", "--json", "127.0.0.1", "7101-"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let obj: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a JSON object on stdout");
    assert_eq!(
        (&obj["event"], &obj["kind"]),
        (&"error".into(), &"invalid_input".into()),
        "{obj}"
    );
}

#[test]
fn parallel_above_the_open_file_limit_lowers_the_parallelism() {
    // Regression: `--parallel` above `ulimit -n` ended the scan with `socket: [Errno 24]`.
    // 100 silent UDP ports (bound, never answering) keep each probe's socket for -w 0.3 s,
    // so 200 probes in flight cannot fit in 64 descriptors.
    crate::common::require_peer!("prlimit");
    let silent: Vec<UdpSocket> = (0..100)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let ports: Vec<String> = silent
        .iter()
        .map(|s| s.local_addr().unwrap().port().to_string())
        .collect();
    let bin = crate::common::bin();
    let list = ports.join(",");
    let out = run(
        std::process::Command::new("prlimit").args([
            "--nofile=64",
            bin.to_str().unwrap(),
            "scan",
            "-u",
            "-v",
            "-w",
            "0.3",
            "--parallel",
            "200",
            "127.0.0.1",
            &list,
        ]),
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want: String = ports
        .iter()
        .map(|p| format!("127.0.0.1 {p}/udp open|filtered\n"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{err}");
    assert!(
        err.contains("--parallel 200 lowered to") && err.contains("is 64"),
        "{err}"
    );
    assert!(err.contains("100 open|filtered"), "{err}");
}

/// Passes a test the machine cannot run (no network namespace for this user, io_uring
/// refused) with one loud line; fails instead under `SOCKIT_REQUIRE_PEERS=1` (CI, root).
pub fn skip(why: &str) {
    if std::env::var_os("SOCKIT_REQUIRE_PEERS").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("SOCKIT_REQUIRE_PEERS=1 but {why}");
    }
    eprintln!("skipped: {why}");
}

/// The `HOST PORT` of every `HOST PORT/tcp open` line of `text`.
fn open_set(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_suffix("/tcp open"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_open_set_equals_ss_ltn_on_both_engines() {
    // Listeners on 127.0.0.1 (port 22, a free port, 65535), 127.0.0.2, 0.0.0.0 and ::1 in a
    // namespace of their own; scans of 1-65535 on those three hosts, twice on io_uring and
    // twice on epoll (--no-io-uring), must each find exactly what `ss -ltn` lists: no own
    // probe answering another (crossed probes, a probe connected to itself), no listener
    // missed.
    require_peer!("ss");
    let script = r#"
B="$0"; ip link set lo up || exit 97
d=$(mktemp -d)
timeout 120 python3 -c '
import socket, time
ls = []
for fam, host, port in ((socket.AF_INET, "127.0.0.1", 22), (socket.AF_INET, "127.0.0.1", 0),
                        (socket.AF_INET, "127.0.0.1", 65535), (socket.AF_INET, "127.0.0.2", 0),
                        (socket.AF_INET, "0.0.0.0", 0), (socket.AF_INET6, "::1", 0)):
    s = socket.socket(fam)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port)); s.listen(64); ls.append(s)
print("ready", flush=True); time.sleep(110)' > "$d/py" & P=$!
i=0; while [ $i -lt 100 ]; do grep -q ready "$d/py" && break; sleep 0.1; i=$((i+1)); done
echo "== ss"; ss -ltnH | awk '{print $4}'
for e in io_uring epoll io_uring epoll; do
  flag=""; [ $e = epoll ] && flag=--no-io-uring
  echo "== $e"
  timeout 60 "$B" scan -v $flag -w 1 127.0.0.1 127.0.0.2 ::1 1-65535 2>"$d/err" | grep '/tcp open$'
  grep '^scan:' "$d/err"
done
kill $P; rm -rf "$d"
"#;
    let Some(out) = crate::common::in_netns(script, Duration::from_secs(200)) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.code() != Some(97), "{out:?}");
    let sections: Vec<&str> = text.split("== ").skip(1).collect();
    assert_eq!(
        sections.len(),
        5,
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ss: 127.0.0.1:22, [::1]:P, 0.0.0.0:P (open on both IPv4 hosts) …
    let mut want = std::collections::BTreeSet::new();
    for local in sections[0].lines().skip(1) {
        let (host, port) = local.rsplit_once(':').expect("ADDR:PORT");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let hosts: Vec<&str> = match host {
            "0.0.0.0" | "*" => vec!["127.0.0.1", "127.0.0.2"],
            h => vec![h],
        };
        for h in hosts {
            want.insert(format!("{h} {port}"));
        }
    }
    assert_eq!(want.len(), 7, "{text}");
    for section in &sections[1..] {
        let engine = section.lines().next().unwrap_or("");
        let got = open_set(section);
        assert_eq!(
            got, want,
            "{engine}: the open set differs from ss -ltn\n{text}"
        );
        let summary = section
            .lines()
            .find(|l| l.starts_with("scan: 196605 tcp probes"));
        let summary = summary.unwrap_or_else(|| panic!("no summary: {section}"));
        assert!(summary.contains("7 open, 196598 closed"), "{summary}");
        if engine == "epoll" || !section.contains("io_uring refused") {
            assert!(summary.contains(&format!("({engine}, ")), "{summary}");
        } else {
            skip(&format!("io_uring is refused here: {section}"));
        }
    }
}

/// Listeners on `127.0.0.1:P` and `127.0.0.2:Q`, with the other pairs of 127.0.0.0/30 and
/// {P, Q} held (bound, not listening), so no other test can answer there meanwhile.
fn two_hosts_two_ports() -> (TcpListener, TcpListener, Vec<socket2::Socket>, u16, u16) {
    let hold = |host: [u8; 4], port: u16| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.bind(&std::net::SocketAddr::from((host, port)).into())
            .ok()
            .map(|()| s)
    };
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let b = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let (p, q) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        let mut held = Vec::new();
        for (host, port) in [
            ([127, 0, 0, 0], p),
            ([127, 0, 0, 0], q),
            ([127, 0, 0, 1], q),
            ([127, 0, 0, 2], p),
            ([127, 0, 0, 3], p),
            ([127, 0, 0, 3], q),
        ] {
            match hold(host, port) {
                Some(s) => held.push(s),
                None => break,
            }
        }
        if held.len() == 6 {
            return (a, b, held, p, q);
        }
    }
    panic!("no pair of ports free on 127.0.0.0/30");
}

#[test]
fn a_range_across_127_0_0_1_and_127_0_0_2_names_the_host_of_each_port() {
    let (_a, _b, _held, p, q) = two_hosts_two_ports();
    for engine in [None, Some("--no-io-uring")] {
        let mut argv = vec!["scan", "-v"];
        argv.extend(engine);
        let ports = format!("{p},{q}");
        argv.extend(["127.0.0.0/30", &ports]);
        let out = run(&mut sockit(&argv), Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let want: String = [
            ("127.0.0.0", p, "closed"),
            ("127.0.0.0", q, "closed"),
            ("127.0.0.1", p, "open"),
            ("127.0.0.1", q, "closed"),
            ("127.0.0.2", p, "closed"),
            ("127.0.0.2", q, "open"),
            ("127.0.0.3", p, "closed"),
            ("127.0.0.3", q, "closed"),
        ]
        .iter()
        .map(|(h, port, state)| format!("{h} {port}/tcp {state}\n"))
        .collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{engine:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("8 tcp probes (4 hosts)") && err.contains("2 open, 6 closed"),
            "{err}"
        );
    }
    // JSON names the host of each port.
    let out = run(
        &mut sockit(&["scan", "--json", "127.0.0.0/30", &format!("{p},{q}")]),
        Duration::from_secs(20),
    );
    let objs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(objs.len(), 8);
    let open: Vec<(String, u64)> = objs
        .iter()
        .filter(|o| o["state"] == "open")
        .map(|o| {
            (
                o["peer_host"].as_str().unwrap().to_string(),
                o["peer_port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        open,
        vec![
            ("127.0.0.1".to_string(), u64::from(p)),
            ("127.0.0.2".to_string(), u64::from(q))
        ]
    );
}

#[test]
fn several_hosts_then_several_port_words() {
    // Regression: `scan 127.0.0.1 127.0.0.2 80` looked up "127.0.0.1" as a host and took
    // "127.0.0.2" for a port list (a usage error). The last word is ports; a word of
    // digits, ',' and '-' starts them.
    let (_a, _b, _held, p, q) = two_hosts_two_ports();
    let (ps, qs) = (p.to_string(), q.to_string());
    let out = run(
        &mut sockit(&["scan", "127.0.0.1", "127.0.0.2", &ps, &qs]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("127.0.0.1 {p}/tcp open\n127.0.0.2 {q}/tcp open\n")
    );
    // Repeated hosts (a range holding an address named too) are scanned once.
    let out = run(
        &mut sockit(&["scan", "[127.0.0.2]", "127.0.0.2/32", "127.0.0.1", &qs]),
        Duration::from_secs(20),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("127.0.0.2 {q}/tcp open\n"),
        "{out:?}"
    );
}

#[test]
fn ranges_too_large_to_mean_are_usage_errors() {
    // Refused before any probe is sent.
    for (words, want) in [
        (
            vec!["10.0.0.0/8", "80"],
            "10.0.0.0/8 holds 16777216 addresses; a range may hold at most 65536",
        ),
        (vec!["fd00::/64", "80"], "holds 2^64 addresses"),
        (
            vec!["10.0.0.0/16", "1-300"],
            "65536 hosts x 300 ports = 19660800 probes; one scan makes at most 16777216",
        ),
        (
            vec!["127.0.0.0/16", "127.1.0.0/16", "1-200"],
            "131072 hosts x 200 ports",
        ),
        (vec!["10.0.0.0/33", "80"], "not an address range"),
    ] {
        let mut argv = vec!["scan"];
        argv.extend(words.iter().copied());
        let out = run(&mut sockit(&argv), Duration::from_secs(20));
        crate::common::assert_fails_with(&out, 2, want);
    }
    let out = run(
        &mut sockit(&["scan", "-6", "127.0.0.0/30", "80"]),
        Duration::from_secs(10),
    );
    crate::common::assert_fails_with(&out, 2, "127.0.0.0/30 is IPv4 and -6 asks for IPv6");
}

#[test]
fn a_progress_line_only_on_a_terminal() {
    // 2,000 probes: a progress line on stderr when it is a terminal (run under script(1)),
    // nothing when it is not.
    require_peer!("script");
    let script = r#"
B="$0"; ip link set lo up || exit 97
echo "== tty"; timeout 30 script -qec "$B scan -w 1 127.0.0.1 1-2000" /dev/null; echo "rc=$?"
echo "== pipe"; timeout 30 "$B" scan -w 1 127.0.0.1 1-2000 2>&1; echo "rc=$?"
"#;
    let Some(out) = crate::common::in_netns(script, Duration::from_secs(60)) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (tty, pipe) = text.split_once("== pipe").expect("two sections");
    assert!(tty.contains("probes") && tty.contains("/2000"), "{text}");
    assert!(tty.contains("rc=1"), "{text}");
    assert_eq!(
        pipe.trim(),
        "rc=1",
        "no progress line without a terminal: {text}"
    );
}

#[test]
fn tcp_parallel_above_the_open_file_limit_lowers_the_parallelism() {
    // With io_uring every slot holds a socket: 200 slots cannot fit in 40 descriptors, so
    // the slots that get none stop and their ports go to the others; the scan is whole.
    // (On epoll a lane takes a socket only when it runs, and on loopback two lanes do all
    // the work: no shortage, the same result.)
    require_peer!("prlimit");
    let (start, _held) = crate::common::closed_port_block(300);
    let bin = crate::common::bin();
    let ports = format!("{start}-{}", start + 299);
    for engine in [None, Some("--no-io-uring")] {
        let mut argv = vec!["--nofile=40", bin.to_str().unwrap(), "scan", "-v"];
        argv.extend(engine);
        argv.extend(["--parallel", "200", "127.0.0.1", &ports]);
        let out = run(
            std::process::Command::new("prlimit").args(&argv),
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{engine:?}: {err}");
        let lines = String::from_utf8_lossy(&out.stdout);
        assert_eq!(lines.lines().count(), 300, "{engine:?}: {err}");
        assert!(lines.lines().all(|l| l.ends_with("/tcp closed")), "{lines}");
        assert!(err.contains("0 open, 300 closed"), "{engine:?}: {err}");
        if engine.is_none() && err.contains("(io_uring,") {
            assert!(
                err.contains("--parallel 200 lowered to") && err.contains("is 40"),
                "{err}"
            );
        }
    }
}

// Regression: every open port's probe closed with FIN and left its numbered source port in
// TIME_WAIT, so a scan that found ~28,000 open ports ran out of the ephemeral range and
// stopped with `bind: [Errno 98]`. An open probe now ends with RST (as nmap's): none left.
#[test]
fn open_probes_leave_no_time_wait_behind() {
    require_peer!("ss");
    let script = r#"
B="$0"; ip link set lo up || exit 97
d=$(mktemp -d)
timeout 60 python3 -c '
import socket, time
s = socket.socket(); s.bind(("0.0.0.0", 8080)); s.listen(4096)
print("ready", flush=True)
end = time.time() + 50
s.settimeout(0.5)
while time.time() < end:
    try:
        c, _ = s.accept(); c.close()
    except OSError:
        pass' > "$d/py" & P=$!
i=0; while [ $i -lt 100 ]; do grep -q ready "$d/py" && break; sleep 0.1; i=$((i+1)); done
for e in io_uring epoll; do
  flag=""; [ $e = epoll ] && flag=--no-io-uring
  echo "== $e"
  timeout 30 "$B" scan $flag 127.0.0.0/23 8080 | grep -c '/tcp open$'
  echo "time-wait $(ss -tanH state time-wait | grep -c ':8080')"
done
kill $P; rm -rf "$d"
"#;
    let Some(out) = crate::common::in_netns(script, Duration::from_secs(120)) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.code() != Some(97), "{out:?}");
    let sections: Vec<&str> = text.split("== ").skip(1).collect();
    assert_eq!(sections.len(), 2, "{text}");
    for s in sections {
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.get(1), Some(&"512"), "every host open: {s}");
        assert_eq!(lines.get(2), Some(&"time-wait 0"), "{s}");
    }
}
