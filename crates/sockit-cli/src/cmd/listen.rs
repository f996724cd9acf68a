//! `sockit listen`: netcat's listen mode.
//!
//! One peer (default): accept it (TCP / Unix stream) or wait for its first datagram (UDP /
//! Unix datagram, then follow only that peer), and relay it to stdin/stdout as
//! `sockit connect` does. `-k`: keep listening and serve clients concurrently — what
//! clients send goes to stdout, stdin goes to every connected client (UDP: to the most
//! recent sender), read only while there is one so that nothing is broadcast to nobody;
//! `--broker` also relays what one client sends to all the others.
//! The `listening HOST PORT` line comes first on stdout; SIGTERM stops cleanly (exit 0),
//! SIGINT exits 130; the Unix socket file this command created is removed at the end.

use sockit::dump::{SessionTap, SharedLog};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use socket2::SockRef;
use sockit::access::AccessList;
use sockit::addr::{host_text, parse_host_port};
use sockit::relay::{self, Counters, DatagramSocket, Direction, RelayOptions};
use sockit::unix::UnixAddr;
use sockit::{Family, SockType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram, UnixListener};
use tokio::sync::{Mutex, mpsc, watch};

use crate::args::{
    DataArgs, Events, FamilyArgs, OutputArgs, SocketOptArgs, TlsServerArgs, parse_secs,
};
use crate::cmd::connect::{
    apply_sockopts, end_name, local_stdio, name_stdin, outcome_code, stdin_is_terminal,
};

/// Arguments of `sockit listen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// [HOST] PORT, HOST:PORT or [V6]:PORT (default host 127.0.0.1; ::1 with -6; port 0
    /// picks a free port).
    #[arg(value_name = "ADDRESS", num_args = 0..=2, required_unless_present = "unix")]
    pub address: Vec<String>,
    /// UDP (or a Unix datagram socket with --unix).
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// Keep listening: serve clients concurrently (stdin goes to every connected client,
    /// read only while one is: what comes before waits for the first; UDP: to the most
    /// recent sender).
    #[arg(short = 'k', long = "keep-open")]
    pub keep: bool,
    /// Broker (chat) mode: what one client sends goes to all the others too (implies -k).
    #[arg(long)]
    pub broker: bool,
    /// Listen on a Unix socket at PATH (`@name`: Linux abstract name).
    #[arg(long = "unix", value_name = "PATH", conflicts_with = "address")]
    pub unix: Option<String>,
    /// Accept IPv4 too on an IPv6 wildcard listener (IPV6_V6ONLY off; needs `::`).
    #[arg(help_heading = "Connection", long = "dual-stack")]
    pub dual_stack: bool,
    /// -i SECS: idle timeout per connection (one peer: expiry exits 5; with -k the idle
    /// connection is closed; -k -u: the idle peer is forgotten and the listener goes on).
    #[command(flatten)]
    pub idle: crate::args::IdleArgs,
    /// After end of stdin, wait at most SECS for the peer, then quit (one-peer mode).
    #[arg(help_heading = "Data", short = 'q', long = "quit-after", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub quit: Option<Duration>,
    /// Accepted for compatibility: half-close on end of stdin is already the default.
    #[arg(help_heading = "Data", short = 'N')]
    pub shutdown_compat: bool,
    /// Keep the socket open for writing at end of stdin (no shutdown(SHUT_WR)).
    #[arg(help_heading = "Data", long = "no-shutdown")]
    pub no_shutdown: bool,
    /// Listen backlog (listen(2)).
    #[arg(help_heading = "Limits", long, default_value_t = 128, value_name = "N")]
    pub backlog: i32,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Without -k: the totals of the transfer (with -k, SIGUSR1 is not handled yet).
    #[command(flatten)]
    pub stats: crate::args::StatsArgs,
    /// --allow/--deny CIDR, --max-conns N (with -k; without -k or --broker it has no
    /// effect, and a warning says so, as ncat's).
    #[command(flatten)]
    pub admit: crate::args::AdmitArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sockopts: SocketOptArgs,
    #[command(flatten)]
    pub tls: TlsServerArgs,
    /// Run PROGRAM [ARGS…] for each connection (with -k, one per connection), its
    /// stdin/stdout connected by pipes relayed to and from the socket (not the socket
    /// itself): argv only, never a shell, looked up on PATH before binding. Must come last.
    #[arg(long, value_name = "PROGRAM", num_args = 1.., allow_hyphen_values = true)]
    pub exec: Vec<String>,
}

/// Runs `sockit listen`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let events = args.output.events();
    let rt = crate::args::runtime()?;
    let result = rt.block_on(async {
        let mut cleanup = Cleanup(None);
        // Both signals are registered before `work` (which prints the `listening` line) is
        // first polled: `ctrl_c()` registered only when select! polled it, which could come
        // after the line, so an early SIGINT killed listen instead of ending it with 130.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let work = run_async(&args, events, &mut cleanup);
        let r = tokio::select! {
            r = work => r,
            _ = int.recv() => Ok(ExitCode::from(130)),
            // the terminal went away: as SIGINT, the socket file removed too
            _ = hup.recv() => Ok(ExitCode::from(129)),
            _ = term.recv() => Ok(ExitCode::SUCCESS),
        };
        drop(cleanup);
        // (a failed -x/-o write makes main's status 1: args::log_failed)
        r
    });
    rt.shutdown_background();
    match result {
        Ok(code) => Ok(code),
        Err(e) => Ok(events.fail(&e)),
    }
}

/// Removes the Unix socket file this command created, when dropped.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A peer's address, printed numerically.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PeerAddr {
    Ip(SocketAddr),
    Unix(UnixAddr),
    Unnamed,
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(a) => write!(f, "{} {}", host_text(a), a.port()),
            PeerAddr::Unix(u) => write!(f, "unix {u}"),
            PeerAddr::Unnamed => f.write_str("unix (unnamed)"),
        }
    }
}

impl PeerAddr {
    fn json(&self) -> serde_json::Value {
        match self {
            PeerAddr::Ip(a) => json!({"peer_host": host_text(a), "peer_port": a.port()}),
            PeerAddr::Unix(u) => json!({"peer_path": u.to_string()}),
            PeerAddr::Unnamed => json!({"peer_path": null}),
        }
    }

    fn from_unix(a: &tokio::net::unix::SocketAddr) -> PeerAddr {
        if let Some(p) = a.as_pathname() {
            return PeerAddr::Unix(UnixAddr::Path(p.to_path_buf()));
        }
        if let Some(n) = a.as_abstract_name() {
            return PeerAddr::Unix(UnixAddr::Abstract(n.to_vec()));
        }
        PeerAddr::Unnamed
    }
}

fn event(events: Events, name: &'static str, peer: &PeerAddr, extra: serde_json::Value) {
    events.emit(
        || {
            let mut s = format!("{} {peer}", name.replace('_', " "));
            if let Some(obj) = extra.as_object() {
                if let (Some(a), Some(b)) = (obj.get("bytes_sent"), obj.get("bytes_received")) {
                    s.push_str(&format!(": sent {a} bytes, received {b} bytes"));
                }
                if let Some(r) = obj.get("reason").and_then(|r| r.as_str()) {
                    s.push_str(&format!(" ({r})"));
                } else if let Some(end) = obj.get("end").and_then(|r| r.as_str()) {
                    s.push_str(&format!(" ({})", end.replace('_', " ")));
                }
            }
            s
        },
        || {
            let mut v = json!({"event": name});
            if let (Some(o), Some(p)) = (v.as_object_mut(), peer.json().as_object()) {
                o.extend(p.clone());
                if let Some(e) = extra.as_object() {
                    o.extend(e.clone());
                }
            }
            v
        },
    );
}

/// The `closed` event, one shape for every mode: `closed HOST PORT: sent N bytes, received
/// M bytes (END)` — or `(REASON)` when there is one — and in JSON `{"event":"closed",
/// peer…, "end":END, "bytes_sent":N, "bytes_received":M}` plus `"reason"` (the error's
/// text) when the end is `error` or `idle`. END: `both_closed`, `peer_closed`,
/// `quit_after_eof`, `stdout_closed`, `idle`, `error`.
fn closed_event(
    events: Events,
    peer: &PeerAddr,
    end: &str,
    totals: &relay::Totals,
    reason: Option<String>,
) {
    let mut extra = json!({"end": end, "bytes_sent": totals.bytes_sent,
                           "bytes_received": totals.bytes_received});
    if let (Some(r), Some(o)) = (reason, extra.as_object_mut()) {
        o.insert("reason".into(), json!(r));
    }
    event(events, "closed", peer, extra);
}

/// The `end` word and reason of a relay outcome (an idle timeout is `idle`, not `error`).
fn outcome_end(outcome: &relay::Outcome) -> (&'static str, Option<String>) {
    match &outcome.result {
        Err(e) if e.kind() == sockit::ErrorKind::Timeout && e.op() == "idle" => {
            ("idle", Some(e.to_string()))
        }
        Err(e) if end_name(outcome) == "error" => ("error", Some(e.to_string())),
        _ => (end_name(outcome), None),
    }
}

/// The listening socket.
enum Bound {
    Tcp(TcpListener),
    /// TCP with TLS (`--tls`): each accepted stream does its handshake on first use.
    Tls(TcpListener, Arc<sockit::tls::rustls::ServerConfig>),
    UnixStream(UnixListener),
    Dgram(Dgram),
}

/// A datagram socket: UDP or Unix.
enum Dgram {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Dgram {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, PeerAddr)> {
        match self {
            Dgram::Udp(s) => s.recv_from(buf).await.map(|(n, a)| (n, PeerAddr::Ip(a))),
            Dgram::Unix(s) => s
                .recv_from(buf)
                .await
                .map(|(n, a)| (n, PeerAddr::from_unix(&a))),
        }
    }

    async fn send_to(&self, buf: &[u8], to: &PeerAddr) -> std::io::Result<usize> {
        match (self, to) {
            (Dgram::Udp(s), PeerAddr::Ip(a)) => s.send_to(buf, a).await,
            (Dgram::Unix(s), PeerAddr::Unix(u)) => {
                let sa = u.sockaddr().map_err(std::io::Error::from)?;
                s.async_io(Interest::WRITABLE, || SockRef::from(s).send_to(buf, &sa))
                    .await
            }
            _ => Err(std::io::Error::from_raw_os_error(libc::EDESTADDRREQ)),
        }
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, PeerAddr)> {
        match self {
            Dgram::Udp(s) => s.try_recv_from(buf).map(|(n, a)| (n, PeerAddr::Ip(a))),
            Dgram::Unix(s) => s
                .try_recv_from(buf)
                .map(|(n, a)| (n, PeerAddr::from_unix(&a))),
        }
    }

    fn connect(&self, to: &PeerAddr) -> std::io::Result<()> {
        let sa = match to {
            PeerAddr::Ip(a) => socket2::SockAddr::from(*a),
            PeerAddr::Unix(u) => u.sockaddr().map_err(std::io::Error::from)?,
            PeerAddr::Unnamed => return Err(std::io::Error::from_raw_os_error(libc::EDESTADDRREQ)),
        };
        match self {
            Dgram::Udp(s) => SockRef::from(s).connect(&sa),
            Dgram::Unix(s) => SockRef::from(s).connect(&sa),
        }
    }
}

impl DatagramSocket for Dgram {
    async fn send_datagram(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Dgram::Udp(s) => s.send(buf).await,
            Dgram::Unix(s) => s.send(buf).await,
        }
    }
    async fn recv_datagram(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Dgram::Udp(s) => s.recv(buf).await,
            Dgram::Unix(s) => s.recv(buf).await,
        }
    }
}

type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

impl Bound {
    async fn accept(&self) -> std::io::Result<(BoxRead, BoxWrite, PeerAddr)> {
        match self {
            Bound::Tcp(l) => {
                let (s, a) = l.accept().await?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w), PeerAddr::Ip(a)))
            }
            Bound::Tls(l, config) => {
                let (s, a) = l.accept().await?;
                let (r, w) = tokio::io::split(sockit::tls::Stream::accept(s, config.clone()));
                Ok((Box::new(r), Box::new(w), PeerAddr::Ip(a)))
            }
            Bound::UnixStream(l) => {
                let (s, a) = l.accept().await?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w), PeerAddr::from_unix(&a)))
            }
            Bound::Dgram(_) => Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        }
    }
}

/// The address to bind: `[HOST] PORT`, with the defaults of DESIGN.md.
fn bind_addr(args: &Args) -> anyhow::Result<SocketAddr> {
    let hp = parse_host_port(&args.address)?;
    let family = args.family.family();
    let host = match hp.host {
        Some(h) => h,
        None if args.dual_stack => "::".to_string(),
        None if family == Some(Family::Inet6) => "::1".to_string(),
        None => "127.0.0.1".to_string(),
    };
    let mut flags = sockit::resolve::AI_PASSIVE;
    if args.family.numeric {
        flags |= sockit::resolve::AI_NUMERICHOST;
    }
    let socktype = if args.udp {
        SockType::Dgram
    } else {
        SockType::Stream
    };
    let infos = sockit::resolve::getaddrinfo(
        Some(&host),
        Some(&hp.port),
        family,
        Some(socktype),
        0,
        flags,
    )?;
    let addr = crate::args::bind_choice(&infos)
        .ok_or_else(|| sockit::Error::gai("getaddrinfo", libc::EAI_NONAME))?;
    if args.dual_stack && addr.ip() != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return Err(sockit::Error::invalid_input(
            "listen",
            format!(
                "--dual-stack needs the IPv6 wildcard address ::, not {}",
                host_text(&addr)
            ),
        )
        .into());
    }
    Ok(addr)
}

/// `socket(2)`, SO_REUSEADDR (TCP), IPV6_V6ONLY set explicitly, `bind(2)`, `listen(2)`.
fn bind_ip(args: &Args, addr: SocketAddr, events: Events) -> sockit::Result<Bound> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let ty = if args.udp {
        socket2::Type::DGRAM
    } else {
        socket2::Type::STREAM
    };
    let sock = socket2::Socket::new(domain, ty.cloexec(), None)
        .map_err(|e| sockit::Error::from_io("socket", e))?;
    let opt = |e| sockit::Error::from_io("setsockopt", e);
    if !args.udp {
        sock.set_reuse_address(true).map_err(opt)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(!args.dual_stack).map_err(opt)?;
    }
    apply_sockopts(&args.sockopts, &sock, events)?;
    sock.bind(&addr.into())
        .map_err(|e| sockit::Error::from_io("bind", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| sockit::Error::from_io("fcntl", e))?;
    if args.udp {
        let s =
            UdpSocket::from_std(sock.into()).map_err(|e| sockit::Error::from_io("socket", e))?;
        Ok(Bound::Dgram(Dgram::Udp(s)))
    } else {
        sock.listen(args.backlog)
            .map_err(|e| sockit::Error::from_io("listen", e))?;
        let l =
            TcpListener::from_std(sock.into()).map_err(|e| sockit::Error::from_io("listen", e))?;
        Ok(Bound::Tcp(l))
    }
}

fn bind(args: &Args, cleanup: &mut Cleanup, events: Events) -> anyhow::Result<Bound> {
    let io = |e| sockit::Error::from_io("socket", e);
    let tls = args.tls.config()?;
    if tls.is_some() && (args.udp || args.unix.is_some()) {
        return Err(crate::args::tls_needs_tcp().into());
    }
    if let Some(text) = &args.unix {
        let addr = UnixAddr::parse(text)?;
        let named = |e| crate::args::name_bind_error(e, &addr.to_string());
        let bound = if args.udp {
            let s = sockit::unix::bind_datagram(&addr).map_err(named)?;
            Bound::Dgram(Dgram::Unix(UnixDatagram::from_std(s).map_err(io)?))
        } else {
            let l = sockit::unix::bind_listener(&addr, args.backlog).map_err(named)?;
            apply_sockopts(&args.sockopts, &l, events)?;
            Bound::UnixStream(UnixListener::from_std(l).map_err(io)?)
        };
        cleanup.0 = addr.path().map(|p| p.to_path_buf());
        crate::output::print_listening_unix(&addr.to_string())?;
        return Ok(bound);
    }
    let addr = bind_addr(args)?;
    let bound = bind_ip(args, addr, events)
        .map_err(|e| crate::args::name_bind_error(e, &addr.to_string()))?;
    let bound = match (bound, tls) {
        (Bound::Tcp(l), Some(config)) => Bound::Tls(l, config),
        (bound, _) => bound,
    };
    let local = match &bound {
        Bound::Tcp(l) | Bound::Tls(l, _) => l.local_addr(),
        Bound::Dgram(Dgram::Udp(s)) => s.local_addr(),
        _ => Ok(addr),
    }
    .map_err(|e| sockit::Error::from_io("getsockname", e))?;
    crate::output::print_listening(&local, None)?;
    Ok(bound)
}

fn relay_options(args: &Args) -> RelayOptions {
    RelayOptions {
        idle_timeout: args.idle.timeout,
        quit_after_eof: args.quit,
        shutdown_on_eof: !args.no_shutdown,
        end_on_remote_eof: stdin_is_terminal() || args.data.recv_only,
    }
}

/// The `--allow`/`--deny` list (refused on a Unix listener: its peers have no IP address).
fn access(args: &Args) -> sockit::Result<AccessList> {
    let acl = AccessList::parse(&args.admit.allow, &args.admit.deny)?;
    if args.unix.is_some() && !acl.is_open() {
        return Err(sockit::Error::invalid_input(
            "access",
            "--allow/--deny match IP peers; a Unix listener has none",
        ));
    }
    Ok(acl)
}

/// True (and a `refused` event) when the access list keeps `peer` out.
fn refused(access: &AccessList, peer: &PeerAddr, events: Events) -> bool {
    let out = matches!(peer, PeerAddr::Ip(a) if !access.permits(a.ip()));
    if out {
        event(
            events,
            "refused",
            peer,
            json!({"reason": "not allowed by --allow/--deny"}),
        );
    }
    out
}

/// What the options ask for, checked and opened before anything is bound: a bad option or
/// an unwritable log file fails before the `listening` line, never with a peer waiting.
struct Checked {
    /// `--allow` / `--deny`.
    access: AccessList,
    /// `-x` / `-o`, opened (created or truncated).
    log: Option<Arc<SharedLog>>,
}

/// The hex dump label of a connection: `#ID HOST:PORT` (forward's), or `#ID unix PATH`.
fn label(id: u64, peer: &PeerAddr) -> String {
    match peer {
        PeerAddr::Ip(a) => format!("#{id} {a}"),
        other => format!("#{id} {other}"),
    }
}

impl Checked {
    fn new(args: &Args) -> anyhow::Result<Checked> {
        args.sockopts.options().validate()?;
        if !args.exec.is_empty() && args.udp {
            return Err(sockit::Error::invalid_input(
                "exec",
                "--exec needs a stream listener (TCP or Unix stream), not -u",
            )
            .into());
        }
        if args.udp && args.broker {
            // ncat: "UDP mode does not support connection brokering".
            return Err(usage(
                "broker",
                "UDP mode does not support connection brokering (--broker needs TCP or a Unix stream)",
            ));
        }
        if args.broker && !args.exec.is_empty() {
            // ncat: "Invalid option combination: --broker and -e".
            return Err(usage(
                "broker",
                "--broker and --exec cannot be combined (a program per client has no broker)",
            ));
        }
        if let Some(program) = args.exec.first() {
            check_program(program)?;
        }
        if args.admit.max_conns.is_some() && !(args.keep || args.broker) {
            warn_max_conns(args.output.events());
        }
        let access = access(args)?;
        let log = args.data.log.shared()?;
        Ok(Checked { access, log })
    }

    /// The one peer's tap of the log files, if any (no label).
    fn tap(&self) -> Option<SessionTap> {
        self.log.as_ref().map(|l| l.tap(None))
    }
}

/// A usage error (exit 2).
fn usage(op: &'static str, message: &str) -> anyhow::Error {
    sockit::Error::invalid_input(op, message).into()
}

/// `--max-conns` without -k/--broker: one peer is served anyway, so it has no effect.
fn warn_max_conns(events: Events) {
    let text = "--max-conns has no effect without -k or --broker (one peer is served)";
    if events.json {
        crate::exit::stderr_line(format_args!(
            "{}",
            json!({"event": "warning", "message": text})
        ));
    } else {
        crate::exit::stderr_line(format_args!("sockit: warning: {text}"));
    }
}

/// `--exec PROGRAM`: the program must exist and be executable before anything is bound,
/// looked up as execvp(3) does — a name with a `/` as it is, others in each PATH entry
/// (`/bin:/usr/bin` when PATH is unset) — so a typo fails at once (exit 2) instead of
/// with the first peer.
fn check_program(program: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return Err(usage(
            "exec",
            "--exec needs a program name, not an empty word",
        ));
    }
    if program.contains('/') {
        let p = std::path::Path::new(program);
        if runnable(p) {
            return Ok(());
        }
        let why = match std::fs::metadata(p) {
            Err(e) => sockit::Error::from_io("stat", e).message().to_string(),
            Ok(m) if m.is_dir() => "is a directory".to_string(),
            Ok(_) => "not executable".to_string(),
        };
        return Err(usage("exec", &format!("{program}: {why}")));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    let found = std::env::split_paths(&path).take(1000).any(|dir| {
        runnable(
            &if dir.as_os_str().is_empty() {
                ".".into()
            } else {
                dir
            }
            .join(program),
        )
    });
    if found {
        Ok(())
    } else {
        Err(usage(
            "exec",
            &format!("{program}: no executable of that name on PATH"),
        ))
    }
}

async fn run_async(args: &Args, events: Events, cleanup: &mut Cleanup) -> anyhow::Result<ExitCode> {
    let checked = Checked::new(args)?;
    let keep = args.keep || args.broker;
    // One peer: SIGUSR1 and --stats-interval totals, -v progress, registered before the
    // `listening` line.
    let xfer = if keep || !args.exec.is_empty() {
        None
    } else {
        Some(crate::transfer::Transfer::start(&args.output, &args.stats)?)
    };
    let bound = bind(args, cleanup, events)?;
    match (bound, xfer) {
        (bound, _) if !args.exec.is_empty() => serve_exec(args, events, bound, checked).await,
        (Bound::Dgram(sock), Some(x)) => one_datagram_peer(args, events, sock, checked, &x).await,
        (Bound::Dgram(sock), None) => serve_datagrams(args, events, sock, checked).await,
        (listener, Some(x)) => one_stream_peer(args, events, listener, checked, &x).await,
        (listener, None) => serve_streams(args, events, listener, checked).await,
    }
}

/// Accepts one peer, stops listening, and relays it to stdin/stdout.
async fn one_stream_peer(
    args: &Args,
    events: Events,
    listener: Bound,
    checked: Checked,
    xfer: &crate::transfer::Transfer,
) -> anyhow::Result<ExitCode> {
    let access = &checked.access;
    let (mut rr, mut rw, peer) = loop {
        let (r, mut w, peer) = listener
            .accept()
            .await
            .map_err(|e| sockit::Error::from_io("accept", e))?;
        if !refused(access, &peer, events) {
            break (r, w, peer);
        }
        let _ = w.shutdown().await;
    };
    drop(listener);
    event(events, "accepted", &peer, json!({}));
    let (lin, lout) = local_stdio();
    let (mut lin, mut lout) = args.data.wrap(lin, lout);
    let tap = checked.tap();
    let tap = tap.as_ref().map(|t| t as &dyn relay::Tap);
    let outcome = xfer
        .relay_stream(
            &mut lin,
            &mut lout,
            &mut rr,
            &mut rw,
            &relay_options(args),
            tap,
        )
        .await;
    flush_rest(&mut lout).await;
    finish(events, &peer, outcome)
}

/// Waits for the first datagram, follows only that peer (connect(2)), relays it.
async fn one_datagram_peer(
    args: &Args,
    events: Events,
    sock: Dgram,
    checked: Checked,
    xfer: &crate::transfer::Transfer,
) -> anyhow::Result<ExitCode> {
    let access = &checked.access;
    let mut buf = vec![0u8; relay::DATAGRAM_RECV_BUFFER];
    let (n, peer) = loop {
        let (n, peer) = sock
            .recv_from(&mut buf)
            .await
            .map_err(|e| sockit::Error::from_io("recvfrom", e))?;
        if !refused(access, &peer, events) {
            break (n, peer);
        }
    };
    event(events, "peer", &peer, json!({}));
    // Follow only this peer: connect(2) first, then drop what others queued meanwhile.
    let mut first = vec![buf[..n].to_vec()];
    if peer != PeerAddr::Unnamed {
        sock.connect(&peer)
            .map_err(|e| sockit::Error::from_io("connect", e))?;
        for _ in 0..10_000 {
            match sock.try_recv_from(&mut buf) {
                Ok((m, from)) if from == peer => first.push(buf[..m].to_vec()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let (lin, lout) = local_stdio();
    let (mut lin, mut lout) = args.data.wrap(lin, lout);
    for d in &first {
        lout.write_all(d).await?;
    }
    lout.flush().await?;
    drop(buf);
    let tap = checked.tap();
    let tap = tap.as_ref().map(|t| t as &dyn relay::Tap);
    if peer == PeerAddr::Unnamed {
        // An unbound Unix sender cannot be answered: print what arrives, ignore stdin.
        event(
            events,
            "peer_unnamed",
            &peer,
            json!({"reason": "unbound sender: replies impossible"}),
        );
        let mut buf = vec![0u8; relay::DATAGRAM_RECV_BUFFER];
        loop {
            let (n, _) = sock
                .recv_from(&mut buf)
                .await
                .map_err(|e| sockit::Error::from_io("recvfrom", e))?;
            lout.write_all(&buf[..n]).await?;
            lout.flush().await?;
        }
    }
    let outcome = xfer
        .relay_datagrams(&mut lin, &mut lout, &sock, &relay_options(args), tap)
        .await;
    flush_rest(&mut lout).await;
    let mut outcome = outcome;
    outcome.totals.bytes_received += first.iter().map(|d| d.len() as u64).sum::<u64>();
    outcome.totals.datagrams_received += first.len() as u64;
    finish(events, &peer, outcome)
}

/// Finishes a write to stdout that a relay ended by the other direction left in flight
/// (tokio's stdout writes on a thread; the runtime's shutdown would drop it), at most 5 s.
async fn flush_rest(lout: &mut crate::args::LocalOut) {
    let _ = tokio::time::timeout(Duration::from_secs(5), lout.flush()).await;
}

/// One-peer mode: the `closed` event names the peer (`closed HOST PORT: sent N bytes,
/// received M bytes (both closed)`, JSON with `peer_host`/`peer_port`), as `-k` does; then
/// the outcome's exit code.
fn finish(events: Events, peer: &PeerAddr, outcome: relay::Outcome) -> anyhow::Result<ExitCode> {
    let outcome = name_stdin(outcome);
    let (end, reason) = outcome_end(&outcome);
    closed_event(events, peer, end, &outcome.totals, reason);
    outcome_code(outcome)
}

/// Chunks for one client's writer.
type Chunk = Arc<[u8]>;

struct Hub {
    clients: Mutex<HashMap<u64, mpsc::Sender<Chunk>>>,
    next_id: AtomicU64,
    /// How many clients are connected (the stdin reader waits for one).
    count: watch::Sender<usize>,
}

impl Hub {
    /// Sends `chunk` to every client except `except`; how many took it.
    async fn broadcast(&self, chunk: &Chunk, except: Option<u64>) -> usize {
        let targets: Vec<mpsc::Sender<Chunk>> = {
            let map = self.clients.lock().await;
            map.iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(_, tx)| tx.clone())
                .collect()
        };
        let mut took = 0;
        for tx in targets {
            if tx.send(chunk.clone()).await.is_ok() {
                took += 1;
            }
        }
        took
    }

    async fn add(&self, id: u64, tx: mpsc::Sender<Chunk>) {
        let mut map = self.clients.lock().await;
        map.insert(id, tx);
        self.count.send_replace(map.len());
    }

    async fn remove(&self, id: u64) {
        let mut map = self.clients.lock().await;
        map.remove(&id);
        self.count.send_replace(map.len());
    }
}

/// `-k` / `--broker`: stdin to every connected client, never to nobody.
///
/// Stdin is read only while a client is connected (ncat -k reads it only once the first
/// client came): what arrives before stays in the pipe (backpressure, nothing dropped) and
/// goes to the first client(s). A chunk read just as the last client left is kept until
/// the next one comes. Like ncat's broadcast, a client gets only what is read while it is
/// connected: a later client does not get an earlier client's data again.
async fn stdin_to_clients(hub: Arc<Hub>, mut lin: crate::args::LocalIn) {
    let mut count = hub.count.subscribe();
    let mut buf = vec![0u8; relay::STREAM_CHUNK];
    loop {
        if count.wait_for(|n| *n > 0).await.is_err() {
            return;
        }
        let n = match lin.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                // The listener goes on serving what clients send; say why stdin stopped.
                let err = sockit::Error::from_io("stdin: read", e);
                crate::exit::stderr_line(format_args!("sockit: {err}"));
                return;
            }
        };
        let chunk: Chunk = Arc::from(&buf[..n]);
        // Each pass either delivers or waits for the next client: bounded by arrivals.
        while hub.broadcast(&chunk, None).await == 0 {
            if count.wait_for(|n| *n > 0).await.is_err() {
                return;
            }
            // The clients counted may have left already: let them be removed first.
            tokio::task::yield_now().await;
        }
    }
}

/// One writer for stdout, so chunks from several clients never interleave.
fn stdout_writer() -> (mpsc::Sender<Chunk>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(64);
    let task = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(chunk) = rx.recv().await {
            if out.write_all(&chunk).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// `-k` over streams: every client served at once.
async fn serve_streams(
    args: &Args,
    events: Events,
    listener: Bound,
    checked: Checked,
) -> anyhow::Result<ExitCode> {
    let hub = Arc::new(Hub {
        clients: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        count: watch::Sender::new(0),
    });
    let Checked { access, log } = checked;
    // The writer ends only when stdout fails (a closed pipe): then the listener ends too.
    let (stdout_tx, mut writer) = stdout_writer();
    // stdin → every client (read only while one is connected).
    {
        let (lin, _) = local_stdio();
        let (lin, _) = args.data.wrap(lin, Box::new(tokio::io::sink()));
        tokio::spawn(stdin_to_clients(hub.clone(), lin));
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut writer => return Ok(ExitCode::SUCCESS),
        };
        let (r, w, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: pause instead of ending or spinning.
                let err = sockit::Error::from_io("accept", e);
                events.emit(
                    || format!("{err}"),
                    || json!({"event": "accept_error", "message": err.to_string()}),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if refused(&access, &peer, events) {
            continue;
        }
        if let Some(max) = args.admit.max_conns
            && hub.clients.lock().await.len() >= max
        {
            event(
                events,
                "refused",
                &peer,
                json!({"reason": format!("--max-conns {max} reached")}),
            );
            continue;
        }
        let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Chunk>(64);
        hub.add(id, tx).await;
        event(events, "accepted", &peer, json!({}));
        let ctx = ClientCtx {
            hub: hub.clone(),
            stdout: stdout_tx.clone(),
            broker: args.broker,
            idle: args.idle.timeout,
            events,
            send_only: args.data.send_only,
            log: log.as_ref().map(|l| l.tap(Some(label(id, &peer)))),
        };
        tokio::spawn(serve_client(ctx, id, peer, r, w, rx));
    }
}

struct ClientCtx {
    hub: Arc<Hub>,
    stdout: mpsc::Sender<Chunk>,
    broker: bool,
    idle: Option<Duration>,
    events: Events,
    /// `--send-only`: what clients send is not printed.
    send_only: bool,
    /// `-x` / `-o`, labelled with this client.
    log: Option<SessionTap>,
}

async fn serve_client(
    ctx: ClientCtx,
    id: u64,
    peer: PeerAddr,
    mut r: BoxRead,
    mut w: BoxWrite,
    mut rx: mpsc::Receiver<Chunk>,
) {
    let counters = Counters::new();
    let reader = async {
        let mut buf = vec![0u8; relay::STREAM_CHUNK];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            counters.touch();
            counters.add(Direction::Recv, n, false);
            if let Some(log) = &ctx.log {
                relay::Tap::data(log, Direction::Recv, &buf[..n]);
            }
            let chunk: Chunk = Arc::from(&buf[..n]);
            if ctx.broker {
                ctx.hub.broadcast(&chunk, Some(id)).await;
            }
            if !ctx.send_only && ctx.stdout.send(chunk).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async {
        while let Some(chunk) = rx.recv().await {
            if let Some(log) = &ctx.log {
                relay::Tap::data(log, Direction::Send, &chunk);
            }
            w.write_all(&chunk).await?;
            w.flush().await?;
            counters.touch();
            counters.add(Direction::Send, chunk.len(), false);
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::pin!(reader, writer);
    let recv_err = |e| ("error", Some(sockit::Error::from_io("recv", e).to_string()));
    let (end, reason) = tokio::select! {
        r = &mut reader => match r {
            Ok(()) => ("peer_closed", None),
            Err(e) => recv_err(e),
        },
        r = &mut writer => match r.map_err(|e| sockit::Error::from_io("send", e)) {
            Ok(()) => ("local_closed", None),
            // The client is gone (reset): what it sent before going is still queued, and
            // so is why. Let the reader finish (bounded, as the relays do) so no byte is
            // lost and its error is the one reported.
            Err(e) if relay::peer_gone(&e) => {
                match tokio::time::timeout(relay::PEER_GONE_GRACE, &mut reader).await {
                    Ok(Err(cause)) => recv_err(cause),
                    _ => ("error", Some(e.to_string())),
                }
            }
            Err(e) => ("error", Some(e.to_string())),
        },
        _ = counters.idle_expired(ctx.idle) => ("idle", Some(sockit::Error::timeout("idle").to_string())),
    };
    ctx.hub.remove(id).await;
    closed_event(ctx.events, &peer, end, &counters.totals(), reason);
}

/// The `-x`/`-o` tap of a datagram peer: one per peer (`#N HOST:PORT`, numbered in the
/// order peers were first heard, its own offsets), at most 10,000 remembered.
fn peer_tap(log: &DgramLog, peer: &PeerAddr) -> Arc<SessionTap> {
    let Ok(mut map) = log.1.lock() else {
        return Arc::new(log.0.tap(None));
    };
    if let Some(t) = map.get(peer) {
        return t.clone();
    }
    if map.len() >= 10_000 {
        map.clear();
    }
    let n = log.2.fetch_add(1, Ordering::SeqCst) + 1;
    let t = Arc::new(log.0.tap(Some(label(n, peer))));
    map.insert(peer.clone(), t.clone());
    t
}

/// The shared log, each datagram peer's tap, and the peer counter.
type DgramLog = (
    Arc<SharedLog>,
    std::sync::Mutex<HashMap<PeerAddr, Arc<SessionTap>>>,
    AtomicU64,
);

/// `-k` over datagrams: every peer heard; stdin goes to the most recent sender.
///
/// Stdin is read only while there is a sender to answer; a chunk read just as the peer was
/// forgotten waits for the next one (never dropped). `-i`: when the most recent sender has
/// been idle that long it is forgotten (a `closed … (idle: timed out)` event, its totals
/// counting every datagram since the previous one) and the listener goes on: the next
/// datagram, from anyone, makes its sender the peer.
async fn serve_datagrams(
    args: &Args,
    events: Events,
    sock: Dgram,
    checked: Checked,
) -> anyhow::Result<ExitCode> {
    let Checked { access, log } = checked;
    let log: Option<Arc<DgramLog>> =
        log.map(|l| Arc::new((l, std::sync::Mutex::new(HashMap::new()), AtomicU64::new(0))));
    let sock = Arc::new(sock);
    let (last_tx, last_rx) = watch::channel::<Option<PeerAddr>>(None);
    let counters = Arc::new(Counters::new());
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    // stdin → the most recent sender.
    let sender = {
        let sock = sock.clone();
        let counters = counters.clone();
        let log = log.clone();
        let mut last_rx = last_rx.clone();
        async move {
            let mut lin: Option<crate::args::LocalIn> = None;
            let mut buf = vec![0u8; relay::MAX_DATAGRAM_SEND];
            loop {
                if last_rx.wait_for(Option::is_some).await.is_err() {
                    return Ok::<(), sockit::Error>(());
                }
                let lin = lin.get_or_insert_with(|| local_stdio().0);
                let n = lin
                    .read(&mut buf)
                    .await
                    .map_err(|e| sockit::Error::from_io("stdin: read", e))?;
                if n == 0 {
                    return Ok(());
                }
                // The peer may have been forgotten meanwhile: wait for the next one.
                let Ok(to) = last_rx.wait_for(Option::is_some).await.map(|p| p.clone()) else {
                    return Ok(());
                };
                let Some(to) = to else { continue };
                match sock.send_to(&buf[..n], &to).await {
                    Ok(_) => {
                        if let Some(log) = &log {
                            relay::Tap::data(&*peer_tap(log, &to), Direction::Send, &buf[..n]);
                        }
                        counters.touch();
                        counters.add(Direction::Send, n, true);
                    }
                    Err(e) => {
                        let err = sockit::Error::from_io("sendto", e);
                        event(
                            events,
                            "send_error",
                            &to,
                            json!({"reason": err.to_string()}),
                        );
                    }
                }
            }
        }
    };
    let receiver = async {
        let mut buf = vec![0u8; relay::DATAGRAM_RECV_BUFFER];
        let mut out = tokio::io::stdout();
        loop {
            let (n, peer) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                // An ICMP error from an earlier send_to: not fatal for a server.
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
                Err(e) => return Err(sockit::Error::from_io("recvfrom", e)),
            };
            if refused(&access, &peer, events) {
                continue;
            }
            counters.touch();
            counters.add(Direction::Recv, n, true);
            if let Some(log) = &log {
                relay::Tap::data(&*peer_tap(log, &peer), Direction::Recv, &buf[..n]);
            }
            let new = match seen.lock() {
                Ok(mut seen) => seen.len() < 100_000 && seen.insert(peer.clone()),
                Err(_) => false,
            };
            if new {
                event(events, "peer", &peer, json!({}));
            }
            // The reply target changes before the datagram is shown, so a line typed in
            // answer to it goes to its sender.
            if peer != PeerAddr::Unnamed {
                let _ = last_tx.send(Some(peer));
            }
            out.write_all(&buf[..n])
                .await
                .map_err(|e| sockit::Error::from_io("write", e))?;
            out.flush()
                .await
                .map_err(|e| sockit::Error::from_io("write", e))?;
        }
    };
    tokio::pin!(sender, receiver);
    let mut sender_done = false;
    // Totals at the last time a peer was forgotten: each `closed` event counts its own.
    let mut base = relay::Totals::default();
    let result: Result<(), sockit::Error> = loop {
        let idle = async {
            let mut rx = last_rx.clone();
            if rx.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
            counters.idle_expired(args.idle.timeout).await;
        };
        tokio::select! {
            r = &mut sender, if !sender_done => { sender_done = true; if let Err(e) = r { break Err(e); } }
            r = &mut receiver => break r,
            _ = idle => {
                // Forget the idle peer; keep listening.
                let Some(peer) = last_tx.send_replace(None) else { continue };
                if let Ok(mut seen) = seen.lock() {
                    seen.remove(&peer);
                }
                let now = counters.totals();
                let t = relay::Totals {
                    bytes_sent: now.bytes_sent - base.bytes_sent,
                    bytes_received: now.bytes_received - base.bytes_received,
                    datagrams_sent: now.datagrams_sent - base.datagrams_sent,
                    datagrams_received: now.datagrams_received - base.datagrams_received,
                };
                base = now;
                closed_event(events, &peer, "idle", &t, Some(sockit::Error::timeout("idle").to_string()));
            }
        }
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if crate::args::is_local_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// `--exec PROGRAM [ARGS…]`: each accepted connection runs the program with the socket as
/// its stdin/stdout (see `crate::exec`); without -k the command ends with the first one.
async fn serve_exec(
    args: &Args,
    events: Events,
    listener: Bound,
    checked: Checked,
) -> anyhow::Result<ExitCode> {
    let Checked { access, log } = checked;
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut conn_id = 0u64;
    loop {
        let (mut r, mut w, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                let err = sockit::Error::from_io("accept", e);
                if !args.keep {
                    return Err(err.into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if refused(&access, &peer, events) {
            let _ = w.shutdown().await;
            continue;
        }
        if let Some(max) = args.admit.max_conns
            && args.keep
            && active.load(Ordering::SeqCst) >= max
        {
            event(
                events,
                "refused",
                &peer,
                json!({"reason": format!("--max-conns {max} reached")}),
            );
            let _ = w.shutdown().await;
            continue;
        }
        event(events, "accepted", &peer, json!({}));
        active.fetch_add(1, Ordering::SeqCst);
        conn_id += 1;
        let tap = log
            .as_ref()
            .map(|l| l.tap(args.keep.then(|| label(conn_id, &peer))));
        let (argv, idle, active) = (args.exec.clone(), args.idle.timeout, active.clone());
        let args_keep = args.keep;
        let session = async move {
            let tap = tap.as_ref().map(|t| t as &dyn relay::Tap);
            let result = crate::exec::run_program(&argv, &mut r, &mut w, idle, tap).await;
            active.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(outcome) => {
                    // The program's side is the local side: both_closed is "program and
                    // peer done".
                    let (end, reason) = outcome_end(&outcome);
                    closed_event(events, &peer, end, &outcome.totals, reason);
                    Ok(())
                }
                Err(e) => {
                    let _ = w.shutdown().await;
                    if events.json {
                        event(
                            events,
                            "exec_failed",
                            &peer,
                            json!({"reason": format!("{e:#}")}),
                        );
                    } else if args_keep {
                        crate::exit::stderr_line(format_args!("sockit: {e:#}"));
                    }
                    Err(e)
                }
            }
        };
        if args.keep {
            tokio::spawn(session);
        } else {
            session.await?;
            return Ok(ExitCode::SUCCESS);
        }
    }
}
