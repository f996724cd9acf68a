//! Helpers shared by the CLI tests: run `sockit`, read its `listening` line, find peers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The built `sockit` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sockit"))
}

/// A `Command` for `sockit ARGS…`.
pub fn sockit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c
}

/// The shared folder beside the repository (`../shared`), holding seed programs, oracle, tools.
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared"))
        .find(|d| d.join("seed-programs").is_dir())
        .expect("../shared (seed programs, oracle, tools) not found beside the repository")
}

/// A seed program of the slides (`../shared/seed-programs/NAME`).
pub fn seed(name: &str) -> PathBuf {
    shared_dir().join("seed-programs").join(name)
}

/// `../shared/tools/no-dns PROGRAM ARGS…`: a loopback-only namespace where lookups use only
/// a hosts file (localhost on 127.0.0.1 and ::1), so no DNS query can leave.
pub fn no_dns<S: AsRef<std::ffi::OsStr>>(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[S],
) -> Command {
    let mut c = Command::new("bash");
    c.arg(shared_dir().join("tools/no-dns"))
        .arg(program)
        .args(args);
    c
}

/// True when `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A lock for tests that measure time, so they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a command with `stdin` bytes, killing it (and failing the test) after `limit`.
pub fn run_with_input(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut sin = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let out = wait_output(child, limit);
    let _ = writer.join();
    out
}

/// Runs a command with no stdin, killing it (and failing the test) after `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    wait_output(child, limit)
}

/// Waits for a spawned child's output, killing it and panicking after `limit`.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = t_err.join().unwrap_or_default();
            panic!(
                "command did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// A running server process: its `listening HOST PORT` line has been read. Killed on drop.
pub struct Server {
    pub child: Child,
    /// Host from the `listening` line (IPv6 without brackets).
    pub host: String,
    /// Port from the `listening` line.
    pub port: u16,
    /// Every `listening …` line read before returning (one per protocol with --tcp --udp).
    pub first_line: String,
    /// Further stdout lines.
    pub lines: Receiver<String>,
}

impl Server {
    /// The address from the `listening` line.
    pub fn addr(&self) -> SocketAddr {
        let ip: std::net::IpAddr = self.host.parse().expect("numeric host in listening line");
        SocketAddr::new(ip, self.port)
    }

    /// Next stdout line within `limit`, if any.
    pub fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY-free: kill(1) by PID of a process this test started.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns a command that prints `listening HOST PORT …` first, and waits (10 s at most)
/// for that line. Stdin is piped (kept open) unless the command set it; stderr inherited.
pub fn spawn_listening(cmd: &mut Command) -> Server {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!("server printed no listening line within 10 s");
        }
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words.len() >= 3 && words[0] == "listening",
        "first line is not `listening HOST PORT`: {line:?}"
    );
    let (host, port) = if words[1] == "unix" {
        (words[2].to_string(), 0)
    } else {
        (words[1].to_string(), words[2].parse().expect("port"))
    };
    Server {
        child,
        host,
        port,
        first_line: line,
        lines: rx,
    }
}

/// Spawns `sockit ARGS…` as a server (stdin piped and kept open).
pub fn sockit_server(args: &[&str]) -> Server {
    let mut c = sockit(args);
    c.stdin(Stdio::piped());
    spawn_listening(&mut c)
}

/// Spawns a Python seed program that prints `listening HOST PORT` first.
pub fn python_server(script: &str, args: &[&str]) -> Server {
    let mut c = Command::new("python3");
    c.arg(seed(script)).args(args).stdin(Stdio::null());
    spawn_listening(&mut c)
}

/// A string of `n` pseudo-random bytes (deterministic per seed).
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
