//! Third-party proxies for the tests: microsocks (SOCKS5), danted (SOCKS4/5) and
//! tinyproxy (HTTP CONNECT), each started on 127.0.0.1 from its own config in a temporary
//! directory, and stopped by PID. Shared by the CLI tests and the library's
//! `tests/proxy_client.rs` (included there by path).
//!
//! Rules: a daemon binds 127.0.0.1 only and must be given numeric destinations only (a
//! name would make it query DNS). Most cannot bind port 0, so a free port is picked and
//! the start retried (5 times) when the daemon exits because the port was taken meanwhile.
//! microsocks closes both directions when its client half-closes: a test through it reads
//! its answer before ending its input.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sockit-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon a test started: stopped by its PID on drop, with SIGTERM (so that danted
/// stops and reaps its own worker processes), then SIGKILL if it is still there after 2 s.
pub struct Daemon {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (bound then released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a daemon: `command(port, dir)` gives its command line (after writing its config
/// into `dir`). Waits until the port accepts a connection; when the daemon exits first
/// (its port was taken meanwhile), retries with another port, at most 5 times.
pub fn start(tag: &str, command: impl Fn(u16, &Path) -> Command) -> Daemon {
    let mut last = String::new();
    for _ in 0..5 {
        let dir = TempDir::new(tag);
        let port = free_port();
        let mut cmd = command(port, &dir.0);
        let stderr = std::fs::File::create(dir.0.join("stderr")).unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                last = format!(
                    "{tag} exited ({status}): {}",
                    std::fs::read_to_string(dir.0.join("stderr")).unwrap_or_default()
                );
                break;
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Daemon {
                    child,
                    port,
                    _dir: dir,
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{tag} did not listen on 127.0.0.1:{port} within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{tag} did not start in 5 tries: {last}");
}

pub fn microsocks(auth: Option<(&str, &str)>) -> Daemon {
    let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
    start("microsocks", move |port, _| {
        let mut c = Command::new("microsocks");
        c.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((u, p)) = &auth {
            c.args(["-u", u, "-P", p]);
        }
        c
    })
}

/// danted on 127.0.0.1, SOCKS4 and SOCKS5 without authentication, allowed to connect to
/// loopback only, and to BIND on it (its BIND sockets listen on `lo`'s address).
pub fn danted() -> Daemon {
    start("danted", |port, dir| {
        let conf = dir.join("danted.conf");
        std::fs::write(
            &conf,
            format!(
                "logoutput: stderr\n\
                 internal: 127.0.0.1 port = {port}\n\
                 external: lo\n\
                 clientmethod: none\n\
                 socksmethod: none\n\
                 user.privileged: root\n\
                 user.notprivileged: nobody\n\
                 client pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: error\n}}\n\
                 socks pass {{\n  from: 127.0.0.0/8 to: 127.0.0.0/8\n  command: bind bindreply connect\n  log: error\n}}\n"
            ),
        )
        .unwrap();
        let mut c = Command::new("danted");
        c.arg("-f").arg(&conf).arg("-p").arg(dir.join("danted.pid"));
        c
    })
}

/// tinyproxy on 127.0.0.1 in the foreground, CONNECT allowed to `connect_ports` only,
/// with Basic credentials `user:pass`.
pub fn tinyproxy(connect_ports: &[u16]) -> Daemon {
    let allowed: String = connect_ports
        .iter()
        .map(|p| format!("ConnectPort {p}\n"))
        .collect();
    start("tinyproxy", move |port, dir| {
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n\
                 {allowed}DisableViaHeader Yes\nLogLevel Error\n\
                 LogFile \"{}\"\nPidFile \"{}\"\nBasicAuth user pass\n",
                dir.join("tinyproxy.log").display(),
                dir.join("tinyproxy.pid").display()
            ),
        )
        .unwrap();
        let mut c = Command::new("tinyproxy");
        c.arg("-d").arg("-c").arg(&conf);
        c
    })
}
