//! Helpers shared by the CLI tests: run `sockit`, read its `listening` line, find peers
//! (`require_peer!`, see `peers.rs`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use crate::peers::*;

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
    /// Its stderr after the `listening` line, when that line came on stderr (`listen`).
    pub err: Option<ErrCapture>,
}

/// What a server whose `listening` line comes on stderr writes there afterwards: each
/// line as it comes, and all of it once it ended.
pub struct ErrCapture {
    lines: Option<Receiver<String>>,
    text: std::sync::Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
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
        self.signal("TERM", limit)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the lines of `from` on a channel, from a thread, as they come.
fn line_reader(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
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
    rx
}

/// Spawns a command that prints `listening HOST PORT …` first on stdout (a server whose
/// stdout carries no data), and waits (10 s at most) for that line. Stdin is piped (kept
/// open) unless the command set it; stderr inherited unless the command set it.
pub fn spawn_listening(cmd: &mut Command) -> Server {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn server");
    let rx = line_reader(child.stdout.take().expect("stdout"));
    let line = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!("server printed no listening line within 10 s");
        }
    };
    parse_listening(child, line, rx, None)
}

/// Spawns a command that prints `listening HOST PORT …` first on **stderr** (`listen`,
/// whose stdout carries nothing but the peers' bytes), and waits (10 s at most) for that
/// line. Stdout lines come in [`Server::lines`]; the rest of stderr (lines before it too,
/// a warning say) in [`Server::err`] ([`server_stderr`], [`err_lines`]).
pub fn spawn_listening_stderr(cmd: &mut Command) -> Server {
    cmd.stdout(Stdio::piped());
    listening_on_stderr(cmd)
}

/// [`spawn_listening_stderr`] leaving stdout as the command set it (a file, say):
/// [`Server::lines`] then stays empty.
pub fn spawn_listening_stderr_keep_stdout(cmd: &mut Command) -> Server {
    listening_on_stderr(cmd)
}

fn listening_on_stderr(cmd: &mut Command) -> Server {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn server");
    let rx = match child.stdout.take() {
        Some(out) => line_reader(out),
        None => mpsc::channel().1,
    };
    let stderr = child.stderr.take().expect("stderr");
    let text = std::sync::Arc::new(Mutex::new(String::new()));
    let (first_tx, first_rx) = mpsc::channel();
    let (tx, err_rx) = mpsc::channel();
    let keep = text.clone();
    let reader = std::thread::spawn(move || {
        let mut first = Some(first_tx);
        for line in BufReader::new(stderr).lines().take(1_000_000) {
            let Ok(l) = line else { break };
            let is_listening = l.starts_with("listening ") || l.contains(r#""event":"listening""#);
            match first.take_if(|_| is_listening) {
                Some(f) => {
                    let _ = f.send(l);
                }
                None => {
                    let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                    t.push_str(&l);
                    t.push('\n');
                    drop(t);
                    let _ = tx.send(l);
                }
            }
        }
    });
    let line = match first_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!("server printed no listening line on stderr within 10 s");
        }
    };
    let err = ErrCapture {
        lines: Some(err_rx),
        text,
        reader: Some(reader),
    };
    parse_listening(child, line, rx, Some(err))
}

/// The server of a `listening` line (text or JSON).
fn parse_listening(
    mut child: Child,
    line: String,
    rx: Receiver<String>,
    err: Option<ErrCapture>,
) -> Server {
    if !line.starts_with("listening ") && !line.starts_with('{') {
        let _ = child.kill();
        panic!("first line is not `listening HOST PORT`: {line:?}");
    }
    // Under --json the line is `{"event":"listening","local_host":…,"local_port":…}`.
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
        assert_eq!(
            v["event"], "listening",
            "first line is not a listening event: {line}"
        );
        let (host, port) = match v["local_path"].as_str() {
            Some(p) => (p.to_string(), 0),
            None => (
                v["local_host"].as_str().expect("local_host").to_string(),
                v["local_port"].as_u64().expect("local_port") as u16,
            ),
        };
        return Server {
            child,
            host,
            port,
            first_line: line,
            lines: rx,
            err,
        };
    }
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
        err,
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
    let mut c = python3();
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

/// A free TCP and UDP port on 127.0.0.1, released for a peer (nc, ncat, socat) that
/// cannot print the port it got. It is picked at random in the 8,192 ports below the
/// kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`): a port that
/// `bind` to port 0 and `connect` never hand out, so no parallel test can take it before
/// the peer binds it (one from port 0 could: that got a test the wrong listener).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = ephemeral_low.saturating_sub(8192).max(1024);
    let span = ephemeral_low.saturating_sub(low);
    if span >= 256 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        let start = h.finish();
        for i in 0..u64::from(span) {
            let port = low + ((start.wrapping_add(i)) % u64::from(span)) as u16;
            let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
            if tcp && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local_addr").port();
    drop(l);
    port
}

/// True when something listens on `port` (TCP LISTEN, or a bound UDP socket), read from
/// /proc/net/{tcp,tcp6,udp,udp6} so no probe connection is used up.
pub fn is_listening(port: u16, udp: bool) -> bool {
    let (files, state) = if udp {
        (["/proc/net/udp", "/proc/net/udp6"], "07")
    } else {
        (["/proc/net/tcp", "/proc/net/tcp6"], "0A")
    };
    let want = format!(":{port:04X}");
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                cols.len() > 3 && cols[1].ends_with(&want) && cols[3] == state
            })
        })
    })
}

/// Waits (5 s at most) until something listens on `port`; panics otherwise.
pub fn wait_listening(port: u16, udp: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_listening(port, udp) {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A spawned peer process, killed (by PID) when dropped. Its stdout and stderr are read
/// all the time (so a chatty peer never blocks on a full pipe).
pub struct Peer {
    pub child: Child,
    stdout: std::sync::Arc<Mutex<Vec<u8>>>,
    stderr: std::sync::Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn drain(
    mut r: impl Read + Send + 'static,
    into: std::sync::Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    })
}

impl Peer {
    /// Spawns `cmd` with the given stdin bytes written (then closed) in the background
    /// (`None`: stdin is /dev/null unless the command set it), stdout and stderr piped.
    pub fn spawn(cmd: &mut Command, stdin: Option<Vec<u8>>) -> Peer {
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn peer");
        if let Some(data) = stdin {
            if let Some(mut sin) = child.stdin.take() {
                std::thread::spawn(move || {
                    let _ = sin.write_all(&data);
                });
            }
        }
        let stdout = std::sync::Arc::new(Mutex::new(Vec::new()));
        let stderr = std::sync::Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            drain(child.stdout.take().expect("stdout"), stdout.clone()),
            drain(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Peer {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Closes the peer's stdin (if the command kept it piped): end of input for it.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// True while the peer has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the peer printed on stdout so far.
    pub fn stdout_so_far(&self) -> Vec<u8> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the peer printed on stderr so far.
    pub fn stderr_so_far(&self) -> Vec<u8> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (at most `limit`) until the peer's stdout holds `n` bytes; returns them.
    pub fn wait_stdout(&self, n: usize, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.stdout_so_far();
            if v.len() >= n || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the peer's exit and output, killing it and panicking after `limit`.
    pub fn finish(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "peer did not finish within {limit:?}; stderr: {}",
                    String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner()))
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            status,
            stdout: self.stdout_so_far(),
            stderr: self
                .stderr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP listener with backlog 0 that already holds one queued (never accepted)
/// connection, so the next connect to it is never answered. Returns the listener, the
/// queued client (keep both alive) and the port.
pub fn full_backlog_listener() -> (sockit::Socket, sockit::Socket, u16) {
    use sockit::{Family, SockType};
    let l = sockit::Socket::new(Family::Inet, SockType::Stream, None).expect("socket");
    l.bind("127.0.0.1:0".parse::<SocketAddr>().expect("addr"))
        .expect("bind");
    l.listen(0).expect("listen(0)");
    let port = l
        .local_addr()
        .expect("local_addr")
        .as_ip()
        .expect("ip")
        .port();
    let mut c = sockit::Socket::new(Family::Inet, SockType::Stream, None).expect("socket");
    c.set_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    c.connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("first connect is queued");
    (l, c, port)
}

/// Asserts two byte strings are equal, reporting lengths and the first difference
/// (never the whole buffers).
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: got {} bytes, want {} bytes, first difference at byte {first}",
            got.len(),
            want.len()
        );
    }
}

/// Runs a command whose stderr is a pipe nobody reads (closed at once: writes get EPIPE),
/// with stdout captured, at most `limit`.
pub fn run_with_closed_stderr(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    drop(child.stderr.take());
    wait_output(child, limit)
}

/// Spawns `sockit ARGS…` as a server with stdin piped (kept open) and stderr piped, so
/// the test can read what it said with [`server_stderr`] after it ended.
pub fn sockit_server_stderr(args: &[&str]) -> Server {
    let mut c = sockit(args);
    c.stdin(Stdio::piped()).stderr(Stdio::piped());
    spawn_listening(&mut c)
}

/// Everything a server spawned with a piped stderr wrote there (read to its end: call it
/// once the server has ended or been terminated); after a `listening` line on stderr,
/// what came after it.
pub fn server_stderr(server: &mut Server) -> String {
    if let Some(err) = server.err.as_mut() {
        if let Some(r) = err.reader.take() {
            let _ = r.join();
        }
        return err.text.lock().unwrap_or_else(|e| e.into_inner()).clone();
    }
    let mut text = String::new();
    server
        .child
        .stderr
        .take()
        .expect("the server's stderr is piped")
        .read_to_string(&mut text)
        .expect("read the server's stderr");
    text
}

/// The stderr lines of a server whose `listening` line came on stderr, as they come
/// (once: the receiver is handed over).
pub fn err_lines(server: &mut Server) -> Receiver<String> {
    server
        .err
        .as_mut()
        .and_then(|e| e.lines.take())
        .expect("a server spawned with spawn_listening_stderr")
}

/// The first line from `rx` containing `want`, within `limit`.
pub fn wait_line(rx: &Receiver<String>, want: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    for _ in 0..100_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(want) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Spawns `sockit listen ARGS…` (its `listening` line on stderr) with stdin piped and
/// kept open.
pub fn sockit_listen(args: &[&str]) -> Server {
    let mut full = vec!["listen"];
    full.extend_from_slice(args);
    let mut c = sockit(&full);
    c.stdin(Stdio::piped());
    spawn_listening_stderr(&mut c)
}

/// Waits up to `limit` for a server process to end by itself; its exit status.
pub fn wait_exit(server: &mut Server, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP client bound to `src` (an IPv4 loopback address, port 0) and connected to `to`
/// within `limit`; reads time out after `limit`.
pub fn tcp_from(src: &str, to: SocketAddr, limit: Duration) -> std::net::TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(
        &format!("{src}:0")
            .parse::<SocketAddr>()
            .expect("addr")
            .into(),
    )
    .expect("bind the source address");
    sock.connect_timeout(&to.into(), limit).expect("connect");
    let s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(limit)).expect("timeout");
    s
}

/// A fresh, empty temporary directory `sockit-TAG-PID-N` (short: Unix socket paths hold
/// 108 bytes). The test removes it when done.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "sockit-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Waits (5 s at most) until `path` exists, e.g. a Unix socket a peer creates; panics
/// naming `who` otherwise.
pub fn wait_path(path: &std::path::Path, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{who} did not create the socket");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts a command exited with `code` and said `want` on stderr (shown otherwise).
#[track_caller]
pub fn assert_fails_with(out: &Output, code: i32, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(want), "stderr lacks {want:?}: {err}");
}

/// Reads `s` until EOF (a reset counts as the end too) and asserts that nothing came:
/// the peer closed this connection at once. `what` names the case in the failure.
#[track_caller]
pub fn assert_closed_at_once(s: &mut std::net::TcpStream, what: &str) {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{what}");
}

/// A one-client TCP server on 127.0.0.1 (port 0): a thread accepts one connection and
/// runs `serve` on it. Returns the port and the thread (`join` gives what `serve` returned).
/// `serve` sets its own socket timeouts.
pub fn serve_one_client<R: Send + 'static>(
    serve: impl FnOnce(std::net::TcpStream) -> R + Send + 'static,
) -> (u16, std::thread::JoinHandle<R>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local_addr").port();
    let h = std::thread::spawn(move || {
        let (c, _) = l.accept().expect("accept");
        serve(c)
    });
    (port, h)
}

/// A TCP port on 127.0.0.1 where nothing listens, held for as long as the value lives:
/// a socket bound to it but not listening, so connects are refused (RST) and no other
/// test can take the port meanwhile (as it could after `free_port`).
pub struct ClosedPort {
    _socket: socket2::Socket,
    pub port: u16,
}

pub fn closed_port() -> ClosedPort {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind 127.0.0.1:0");
    let port = s
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("an IP address")
        .port();
    ClosedPort { _socket: s, port }
}

impl ClosedPort {
    /// Starts listening on the held port (backlog 8): the same port, now answering, with
    /// no moment where another test could take it.
    pub fn listen(self) -> std::net::TcpListener {
        self._socket.listen(8).expect("listen on the held port");
        self._socket.into()
    }
}

/// A UDP port on 127.0.0.1 where datagrams are refused (ICMP port unreachable), held for
/// as long as the value lives: a socket bound to it and connected to itself, which the
/// kernel gives no datagram from any other sender, so no other test can take the port
/// (as it could after `free_port` or a dropped socket).
pub struct ClosedUdpPort {
    _socket: std::net::UdpSocket,
    pub port: u16,
}

pub fn closed_udp_port() -> ClosedUdpPort {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let me = s.local_addr().expect("local_addr");
    s.connect(me).expect("connect the holder to itself");
    ClosedUdpPort {
        _socket: s,
        port: me.port(),
    }
}

/// `n` consecutive TCP ports on 127.0.0.1 where nothing listens, held (bound, never
/// listening, without SO_REUSEADDR) for as long as the sockets live, searched from
/// port 20,000 in blocks of `n`. Connects to them are refused.
pub fn closed_port_block(n: u16) -> (u16, Vec<socket2::Socket>) {
    let bind = |p: u16| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], p)).into())
            .ok()
            .map(|()| s)
    };
    let mut base = 20_000u16;
    while u32::from(base) + u32::from(n) < 65_000 {
        let held: Vec<socket2::Socket> = (base..base + n).map_while(bind).collect();
        if held.len() == usize::from(n) {
            return (base, held);
        }
        base += n;
    }
    panic!("no free block of {n} ports from 20000");
}

impl Server {
    /// Sends `sig` (a kill(1) name: `HUP`, `INT`, …) by PID and waits up to `limit` for the
    /// exit status.
    pub fn signal(&mut self, sig: &str, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
        wait_exit(self, limit)
    }
}

/// Runs `python3 -c script args…` (stdout piped) and waits until it printed `ready`
/// (at most 10 s: a peer that fails to start fails the test). Kill it by PID when done.
pub fn python_ready(script: &str, args: &[&str]) -> Child {
    let mut py = python3()
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = py.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = [0u8; 6];
        let _ = tx.send(out.read_exact(&mut ready).is_ok() && &ready == b"ready\n");
    });
    if rx.recv_timeout(Duration::from_secs(10)) != Ok(true) {
        let _ = py.kill();
        let _ = py.wait();
        panic!("the python peer did not print its ready line");
    }
    py
}

/// The states (`/proc/net/tcp` hex codes: `01` ESTABLISHED, `08` CLOSE_WAIT …) of this
/// machine's TCP sockets from local port `local` to remote port `remote` (IPv4 and IPv6).
fn tcp_states(local: u16, remote: u16) -> Vec<String> {
    let (l, r) = (format!(":{local:04X}"), format!(":{remote:04X}"));
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    (cols.len() > 3 && cols[1].ends_with(&l) && cols[2].ends_with(&r))
                        .then(|| cols[3].to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Waits (at most `limit`) until this machine has no open TCP socket (ESTABLISHED or
/// CLOSE_WAIT) from local port `local` to remote port `remote` (read from /proc/net/tcp
/// and tcp6), that is until a server closed its side of that connection; panics past the
/// limit. A server that reports a connection's end before closing it has reported it then.
pub fn wait_tcp_closed(local: u16, remote: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while tcp_states(local, remote)
        .iter()
        .any(|s| s == "01" || s == "08")
    {
        assert!(
            Instant::now() < deadline,
            "the connection {local} -> {remote} is still open after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most `limit`) until the socket from local port `local` to remote port
/// `remote` is no longer ESTABLISHED: the peer's FIN (or reset) has reached it, so its
/// owner's next read sees the end; panics past the limit.
pub fn wait_tcp_peer_closed(local: u16, remote: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while tcp_states(local, remote).iter().any(|s| s == "01") {
        assert!(
            Instant::now() < deadline,
            "the connection {local} -> {remote} got no end from its peer within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most `limit`) until the TCP listener on 127.0.0.1 `port` has accepted every
/// connection queued on it (its accept queue, the `rx_queue` of the LISTEN socket in
/// /proc/net/tcp, is empty); panics past the limit.
pub fn wait_accepted(port: u16, limit: Duration) {
    let want = format!(":{port:04X}");
    let queued = || {
        std::fs::read_to_string("/proc/net/tcp").map_or(0, |text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    (cols.len() > 4 && cols[1].ends_with(&want) && cols[3] == "0A").then(|| {
                        cols[4]
                            .split(':')
                            .nth(1)
                            .map(|q| u64::from_str_radix(q, 16))
                    })
                })
                .flatten()
                .map(|q| q.unwrap_or(0))
                .sum::<u64>()
        })
    };
    let deadline = Instant::now() + limit;
    while queued() > 0 {
        assert!(
            Instant::now() < deadline,
            "the listener on port {port} did not accept its queued connections within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A CA, a server certificate for `names` and a client certificate signed by it, and the
/// PEM files in `dir`: ca.pem, cert.pem, key.pem, client.pem, client-key.pem.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(name: &str, names: &[&str], expired: bool) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = temp_dir(&format!("pki-{name}"));
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sockit test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, &ca_key);
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, &issuer).expect("cert");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
        let client_key = KeyPair::generate().expect("client key");
        let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
        client
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sockit test client");
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&client_key, &issuer).expect("client cert");
        std::fs::write(dir.join("client.pem"), client.pem()).expect("write");
        std::fs::write(dir.join("client-key.pem"), client_key.serialize_pem()).expect("write");
        Pki { dir }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `sh -c SCRIPT SOCKIT` in a network namespace of its own (`unshare -rn`: only `lo`,
/// which the script brings up and where only its own listeners live), so a sweep of many
/// ports meets no other test's listener; `None` (skipped) where no namespace can be made.
pub fn in_netns(script: &str, limit: Duration) -> Option<std::process::Output> {
    if !crate::peers::require("unshare") || !crate::peers::require("ip") {
        return None;
    }
    let probe = run(
        std::process::Command::new("unshare").args(["-rn", "ip", "link", "set", "lo", "up"]),
        Duration::from_secs(10),
    );
    if !probe.status.success() {
        crate::scan::skip(&format!(
            "no network namespace here (unshare -rn): {probe:?}"
        ));
        return None;
    }
    let bin = crate::common::bin();
    Some(run(
        std::process::Command::new("unshare").args([
            "-rn",
            "sh",
            "-c",
            script,
            bin.to_str().unwrap(),
        ]),
        limit,
    ))
}
