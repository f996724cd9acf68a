//! Tests of `sockit` (lookups): resolve, hostname, service, protocol.
//!
//! No test lets the system resolver send a DNS query: on this machine only numeric
//! addresses and `localhost` with -4 are answered locally (by /etc/hosts); everything else
//! (AAAA of localhost, unknown names, reverse lookups) runs under `../shared/tools/no-dns`.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::common::{need, no_dns, python3, run, seed, sockit};

const LIMIT: Duration = Duration::from_secs(20);

fn sockit_out(args: &[&str]) -> Output {
    run(&mut sockit(args), LIMIT)
}

fn no_dns_out(args: &[&str]) -> Output {
    run(&mut no_dns(crate::common::bin(), args), LIMIT)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_no_panic(o: &Output) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "panic: {e}");
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn seed_lookups_and_sockit_agree_line_for_line() {
    need("python3");
    // lookups.py only asks /etc/hosts (localhost over IPv4) and AI_NUMERICHOST: no DNS.
    let py = run(python3().arg(seed("lookups.py")), LIMIT);
    assert!(py.status.success(), "lookups.py: {}", stderr(&py));
    let py = stdout(&py);
    let lines: Vec<Vec<&str>> = py.lines().map(|l| l.split(' ').collect()).collect();

    let host = sockit_out(&["hostname"]);
    assert!(host.status.success());
    assert_eq!(lines[0], ["hostname", stdout(&host).trim_end()]);

    let res = sockit_out(&["resolve", "-4", "--type", "stream", "localhost"]);
    assert!(res.status.success(), "{}", stderr(&res));
    let first = stdout(&res);
    let first: Vec<&str> = first.lines().next().unwrap_or("").split(' ').collect();
    assert_eq!(lines[1], ["gethostbyname", "localhost", first[1]]);
    assert_eq!(first[2], "AF_INET");

    let ports = [
        "80", "53", "25", "110", "143", "23", "119", "70", "21", "20",
    ];
    let mut args = vec!["service"];
    args.extend(ports);
    let svc = sockit_out(&args);
    assert!(svc.status.success(), "{}", stderr(&svc));
    let svc = stdout(&svc);
    let svc: Vec<&str> = svc.lines().collect();
    assert_eq!(svc.len(), ports.len());
    for ((port, py_line), ours) in ports.iter().zip(&lines[2..]).zip(&svc) {
        let ours: Vec<&str> = ours.split_whitespace().collect();
        assert_eq!(py_line[..3], ["getservbyport", *port, "tcp"]);
        assert_eq!(py_line[3], ours[0], "port {port}");
        assert_eq!(ours[1], format!("{port}/tcp"));
    }
}

#[test]
fn service_keys_in_getent_syntax() {
    let o = sockit_out(&[
        "service", "80", "80/tcp", "http", "http/tcp", "www", "514", "514/udp",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        names,
        [
            "http 80/tcp",
            "http 80/tcp",
            "http 80/tcp",
            "http 80/tcp",
            "http 80/tcp",
            "shell 514/tcp",
            "syslog 514/udp"
        ]
    );
    // getent's line: the aliases follow.
    assert!(stdout(&o).starts_with("http                  80/tcp www\n"));
}

#[test]
fn service_json_says_which_source_answered() {
    let o = sockit_out(&["service", "--json", "80/tcp", "nosuch"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_lines(&o);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["key"], "80/tcp");
    assert_eq!(v[0]["name"], "http");
    assert_eq!(v[0]["port"], 80);
    assert_eq!(v[0]["proto"], "tcp");
    assert_eq!(v[0]["aliases"], serde_json::json!(["www"]));
    assert_eq!(v[0]["source"], "/etc/services");
    assert_eq!(v[1]["key"], "nosuch");
    assert_eq!(v[1]["error"]["kind"], "os");
    assert!(
        v[1]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("service/proto not found")
    );
}

#[test]
fn embedded_tables_answer_without_a_services_file() {
    let o = sockit_out(&[
        "service",
        "--services-file",
        "/nonexistent/services",
        "80/tcp",
        "53/udp",
        "443/tcp",
        "22/tcp",
        "25/tcp",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["http", "domain", "https", "ssh", "smtp"]);
    assert!(stderr(&o).contains("embedded"), "{}", stderr(&o));

    let j = sockit_out(&[
        "service",
        "--json",
        "--services-file",
        "/nonexistent/services",
        "80",
    ]);
    assert_eq!(json_lines(&j)[0]["source"], "embedded");
    assert_eq!(json_lines(&j)[0]["name"], "http");

    let p = sockit_out(&[
        "protocol",
        "--json",
        "--protocols-file",
        "/nonexistent/protocols",
        "tcp",
    ]);
    assert_eq!(json_lines(&p)[0]["source"], "embedded");
    assert_eq!(json_lines(&p)[0]["number"], 6);
}

#[test]
fn services_file_can_be_given() {
    let dir = std::env::temp_dir().join(format!("sockit-services-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("services");
    std::fs::write(
        &path,
        "# test\nmyecho 7777/tcp alias1 # comment\nmyecho 7777/udp\n",
    )
    .expect("write");
    let path_s = path.to_string_lossy().into_owned();
    let o = sockit_out(&[
        "service",
        "--json",
        "--services-file",
        &path_s,
        "7777/udp",
        "alias1",
        "80",
    ]);
    let v = json_lines(&o);
    assert_eq!(v[0]["proto"], "udp");
    assert_eq!(v[1]["port"], 7777);
    assert_eq!(v[1]["source"], path_s.as_str());
    assert!(
        v[2]["error"].is_object(),
        "80 is not in this file: {}",
        v[2]
    );
    assert_eq!(o.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn protocol_names_and_numbers() {
    let o = sockit_out(&["protocol", "tcp", "17", "ICMP", "ipv6-icmp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(first, ["tcp 6", "udp 17", "icmp 1", "ipv6-icmp 58"]);
    // Case-sensitive, as the C library: `Tcp` is not listed.
    let o = sockit_out(&["protocol", "Tcp"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("protocol not found"), "{}", stderr(&o));
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    // Ports outside 0..=65535 are refused (Python's getaddrinfo would wrap 70000 to 4464).
    let o = sockit_out(&["service", "70000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("0-65535"), "{}", stderr(&o));
    assert_no_panic(&o);

    let long = "a".repeat(300);
    for (name, want) in [
        ("", "empty host name"),
        (long.as_str(), "too long"),
        ("bad..name", "empty label"),
        (".leading", "empty label"),
    ] {
        let o = sockit_out(&["resolve", "-4", name]);
        assert_eq!(o.status.code(), Some(2), "{name:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{name:?}: {}", stderr(&o));
        assert_no_panic(&o);
    }
    for key in ["/tcp", "80/", "http/"] {
        let o = sockit_out(&["service", key]);
        assert_eq!(o.status.code(), Some(2), "{key}: {}", stderr(&o));
        assert_no_panic(&o);
    }
}

#[test]
fn first_failure_decides_the_exit_code() {
    let o = sockit_out(&["service", "nosuch", "70000", "80"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("http "),
        "the good key is still answered"
    );
    let o = sockit_out(&["service", "70000", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn resolve_numeric_and_localhost_over_ipv4() {
    let o = sockit_out(&["resolve", "-n", "--type", "stream", "127.0.0.1", "::1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "127.0.0.1 127.0.0.1 AF_INET SOCK_STREAM\n::1 ::1 AF_INET6 SOCK_STREAM\n"
    );
    // -n refuses names at once (AI_NUMERICHOST): EAI_NONAME, exit 3, nothing sent.
    let o = sockit_out(&["resolve", "-n", "localhost"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("[Errno -2]"), "{}", stderr(&o));

    let o = sockit_out(&[
        "resolve",
        "--json",
        "-4",
        "--canonical",
        "--type",
        "dgram",
        "localhost",
    ]);
    let v = &json_lines(&o)[0];
    assert_eq!(v["key"], "localhost");
    assert_eq!(v["canonname"], "localhost");
    assert_eq!(v["addresses"][0]["address"], "127.0.0.1");
    assert_eq!(v["addresses"][0]["family"], "AF_INET");
    assert_eq!(v["addresses"][0]["type"], "SOCK_DGRAM");
    assert_eq!(v["addresses"][0]["proto"], 17);
}

#[test]
fn gai_and_host_errors_stay_distinct() {
    // gethostbyname("::1"): Python's gaierror -9 (address family), exit 3.
    let e = sockit::resolve::gethostbyname("::1").expect_err("IPv6 text");
    assert_eq!(e.kind(), sockit::ErrorKind::Gai);
    assert_eq!(e.code(), Some(-9));
    let o = sockit_out(&["resolve", "-4", "::1"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("[Errno -9]"), "{}", stderr(&o));

    // gethostbyaddr of an unnamed address: herror 1, exit 4 (reverse lookup: no-dns only).
    let o = no_dns_out(&["resolve", "--reverse", "127.0.0.2"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("[Errno 1] Unknown host"),
        "{}",
        stderr(&o)
    );
    let o = no_dns_out(&["resolve", "--reverse", "--json", "127.0.0.2"]);
    let v = &json_lines(&o)[0];
    assert_eq!(v["error"]["kind"], "host");
    assert_eq!(v["error"]["code"], 1);
}

#[test]
fn resolve_under_no_dns() {
    // AF_UNSPEC of localhost would ask DNS for AAAA here; no-dns answers from its hosts file.
    let o = no_dns_out(&["resolve", "--type", "stream", "localhost"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("localhost ::1 AF_INET6 SOCK_STREAM"),
        "{text}"
    );
    assert!(
        text.contains("localhost 127.0.0.1 AF_INET SOCK_STREAM"),
        "{text}"
    );

    let o = no_dns_out(&["resolve", "nosuch.invalid", "-6"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Name or service not known"),
        "{}",
        stderr(&o)
    );

    let o = no_dns_out(&["resolve", "--reverse", "127.0.0.1", "::1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
    );

    // Non-ASCII names are IDNA-encoded before the lookup (then unknown: EAI_NONAME).
    let o = no_dns_out(&["resolve", "-4", "bücher.invalid"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn hostname_and_fqdn() {
    let o = sockit_out(&["hostname"]);
    assert!(o.status.success());
    let name = stdout(&o).trim_end().to_string();
    assert_eq!(name, sockit::resolve::gethostname().expect("gethostname"));
    let j = sockit_out(&["hostname", "--json"]);
    assert_eq!(json_lines(&j)[0]["hostname"], name.as_str());
    // getfqdn asks the resolver: only under no-dns.
    let f = no_dns_out(&["hostname", "--fqdn"]);
    assert!(f.status.success(), "{}", stderr(&f));
    assert!(!stdout(&f).trim().is_empty());
}

#[test]
fn n_v_and_json_are_accepted_by_every_lookup_command() {
    // Regression: DESIGN gives -n, -v and --json to all subcommands, but `service -n 80`,
    // `protocol -n 6` and `hostname -n` were usage errors (hostname had no -v either).
    for args in [
        &["service", "-n", "-v", "--json", "80"][..],
        &["protocol", "-n", "-v", "--json", "6"],
        &["hostname", "-n", "-v", "--json"],
        &["resolve", "-n", "-v", "--json", "127.0.0.1"],
    ] {
        let o = sockit_out(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(json_lines(&o).len(), 1, "{args:?}");
        assert!(!stderr(&o).is_empty(), "{args:?}: -v printed nothing");
    }
    // -n means no lookups, and --fqdn is one: refused together.
    let o = sockit_out(&["hostname", "-n", "--fqdn"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn resolve_verbose_shows_the_idna_name_passed() {
    // Regression: `resolve -v bücher.example` showed the Unicode name, not the call made.
    let o = no_dns_out(&["resolve", "-v", "bücher.example"]);
    assert_no_panic(&o);
    assert!(
        stderr(&o).contains("getaddrinfo(\"xn--bcher-kva.example\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_closed_stderr_never_panics() {
    // Regression: `sockit service nosuch 2>&1 >/dev/null | head -c0` exited 101 (eprintln!
    // panics on EPIPE); the error kind's exit code must stay.
    need("python3");
    let script = "import os, subprocess, sys\n\
        r, w = os.pipe(); os.close(r)\n\
        p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=w, timeout=10)\n\
        print(p.returncode)\n";
    let bin = crate::common::bin();
    let bin = bin.to_str().unwrap();
    for (args, code) in [
        (&["service", "nosuch"][..], "1"),
        (&["service", "70000"], "2"),
        (&["protocol", "-v", "nosuch"], "1"),
        (&["resolve", "-v", "-n", "not-a-number"], "3"),
        (&["connect", "-v", "127.0.0.1", "1"], "1"),
    ] {
        let o = run(python3().args(["-c", script, bin]).args(args), LIMIT);
        assert_eq!(stdout(&o).trim(), code, "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_full_stdout_is_reported_in_python_words() {
    // Regression: `service 80 > /dev/full` said "No space left on device (os error 28)".
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for args in [&["service", "80"][..], &["protocol", "tcp"][..]] {
        let out = crate::common::sockit(args)
            .stdin(std::process::Stdio::null())
            .stdout(full.try_clone().expect("dup"))
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run sockit");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("[Errno 28] No space left on device") && !err.contains("os error"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_protocol_number_above_255_is_a_range_error() {
    // Regression: `protocol 256` said "protocol not found" (exit 1); `service 65536` is a
    // range error (exit 2), and so is this now.
    for key in ["256", "99999999999999"] {
        let out = run(&mut sockit(&["protocol", key]), Duration::from_secs(10));
        crate::common::assert_fails_with(
            &out,
            2,
            &format!("protocol number must be 0-255, not {key}"),
        );
    }
}

#[test]
fn an_endless_database_file_is_refused_not_read_into_memory() {
    // Regression: `--services-file /dev/zero` read until memory ran out.
    for (cmd, flag, key, what) in [
        ("service", "--services-file", "80", "services file"),
        ("protocol", "--protocols-file", "tcp", "protocols file"),
    ] {
        let out = run(
            &mut sockit(&[cmd, flag, "/dev/zero", key]),
            Duration::from_secs(20),
        );
        crate::common::assert_fails_with(
            &out,
            2,
            &format!("{what} /dev/zero: larger than 16 MiB, not a {what}"),
        );
    }
}

#[test]
fn json_errors_that_end_service_and_protocol_are_json_and_help_to_a_full_stdout_fails() {
    // Regression: `service --json --services-file /dev/zero` printed its error only on
    // stderr; `--help > /dev/full` exited 0 silently.
    for (cmd, flag, key, what) in [
        ("service", "--services-file", "80", "services file"),
        ("protocol", "--protocols-file", "tcp", "protocols file"),
    ] {
        let out = run(
            &mut sockit(&[cmd, "--json", flag, "/dev/zero", key]),
            Duration::from_secs(20),
        );
        assert_eq!(out.status.code(), Some(2));
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(v["error"]["kind"], "invalid_input", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(what)),
            "{v}"
        );
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for arg in ["--help", "--version"] {
        let out = sockit(&[arg])
            .stdout(full.try_clone().expect("dup"))
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run sockit");
        assert_eq!(out.status.code(), Some(1), "{arg}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("write: [Errno 28]"),
            "{arg}"
        );
    }
}
