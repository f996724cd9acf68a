//! The slides' programs in examples/ behave like the Python ones in ../shared/seed-programs,
//! each run against the other (loopback only, every wait bounded).
//!
//! `cargo test` builds the examples before running this file; they sit in
//! target/<profile>/examples/.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

// The one peer helper of the tests (python3 is a prerequisite: `peers::python3` fails
// naming it when it is missing).
#[allow(dead_code, unused_macros)]
#[path = "../../sockit-cli/tests/cli/peers.rs"]
mod peers;
use peers::python3;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test` (which builds the examples)",
        path.display()
    );
    path
}

fn seed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared/seed-programs").join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("../shared/seed-programs/{name} not found"))
}

/// Waits for a child with a hard limit, killing it (and failing) past the limit.
fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// A server process that is killed when the test ends, also when it fails.
struct Server(Option<Child>);

impl Server {
    /// Waits (bounded) for the server to end by itself and returns its output.
    fn finish(mut self, limit: Duration) -> Output {
        finish(self.0.take().expect("server"), limit)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts a server that prints `listening HOST PORT` first; returns it and the port.
fn server(mut cmd: Command) -> (Server, u16) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
    (Server(Some(child)), port)
}

fn client(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    finish(child, Duration::from_secs(10))
}

// Bytes that need escaping print exactly as Python's repr() prints them.
const LINES: &[u8] = b"hello\nq\"'\\\tx\n";
const RECEIVED: &str = "Received b'hello'\nReceived b'q\"\\'\\\\\\tx'\n";

#[test]
fn lookups_prints_what_lookups_py_prints() {
    let ours = finish(
        Command::new(example("lookups"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(10),
    );
    let theirs = finish(
        python3()
            .arg(seed("lookups.py"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(10),
    );
    assert!(ours.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
}

#[test]
fn echo_server_serves_the_python_client() {
    let mut cmd = Command::new(example("echo_server"));
    cmd.args(["127.0.0.1", "0"]);
    let (srv, port) = server(cmd);
    let out = client(
        python3()
            .arg(seed("echo_client.py"))
            .args(["127.0.0.1", &port.to_string()]),
        LINES,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), RECEIVED);
    let srv = srv.finish(Duration::from_secs(5));
    assert!(
        srv.status.success(),
        "the server ends when its one client closes"
    );
    assert!(String::from_utf8_lossy(&srv.stdout).starts_with("Connected by ('127.0.0.1', "));
}

#[test]
fn echo_client_talks_to_the_python_server() {
    let mut cmd = python3();
    cmd.arg(seed("echo_server.py")).args(["127.0.0.1", "0"]);
    let (srv, port) = server(cmd);
    let out = client(
        Command::new(example("echo_client")).args(["127.0.0.1", &port.to_string()]),
        LINES,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), RECEIVED);
    srv.finish(Duration::from_secs(5));
}

#[test]
fn timeout_server_says_timed_out_like_python() {
    let out = finish(
        Command::new(example("timeout_server"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with("socket : ('127.0.0.1', "), "{text}");
    assert!(text.ends_with("timeout : timed out\n"), "{text}");
}

#[test]
fn examples_refuse_a_bad_port_with_the_ranges_message() {
    let out = client(
        Command::new(example("echo_client")).args(["127.0.0.1", "70000"]),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("port must be 0-65535"));
}
