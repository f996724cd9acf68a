//! Tests of `sockit scan`.

use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::{run, serial, sockit};

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
        format!("{op}/tcp open\n")
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
        format!("{cp}/tcp closed\n{pa}/tcp open\n"),
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
    assert_eq!(objs[0]["port"], pa);
    assert_eq!(objs[0]["state"], "open");
    assert_eq!(objs[0]["proto"], "tcp");
    assert_eq!(objs[1]["state"], "closed");
    assert!(objs[1]["reason"].as_str().unwrap().contains("Errno 111"));
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
        format!("{pa}/udp open\n{pc}/udp closed\n{ps}/udp open|filtered\n")
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
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1/tcp closed\n");
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
