//! `sockit connect`: netcat's client mode. stdin to the socket, the socket to stdout.
//!
//! TCP connects with Happy Eyeballs (`sockit::client::connect_happy`) under one `-w`
//! deadline; end of stdin half-closes the socket (unless `--no-shutdown`) and the command
//! ends when the peer closes (or `-q` after end of stdin). UDP sends each stdin read as a
//! datagram and ends `-q` seconds (default 1) after end of stdin. `--unix PATH` (or
//! `@name`) does the same over Unix stream or, with `-u`, datagram sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sockit::addr::{host_text, parse_host_port};
use sockit::client::{self, ConnectOptions};
use sockit::relay::{self, End, Outcome, RelayOptions};
use sockit::unix::UnixAddr;
use sockit::{Port, SockType};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::args::{
    DataArgs, Events, FamilyArgs, OutputArgs, ProxyArgs, SocketOptArgs, StatsArgs, TlsClientArgs,
    parse_idle_secs, parse_secs, parse_timeout_secs,
};
use crate::transfer::Transfer;

/// Arguments of `sockit connect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// HOST PORT, HOST:PORT or [V6]:PORT (a service name may stand for the port).
    #[arg(value_name = "ADDRESS", num_args = 0..=2, required_unless_present = "unix")]
    pub address: Vec<String>,
    /// UDP (or a Unix datagram socket with --unix).
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// Connect to a Unix socket at PATH (`@name`: Linux abstract name).
    #[arg(long = "unix", value_name = "PATH", conflicts_with = "address")]
    pub unix: Option<String>,
    /// Connect timeout in seconds: the whole attempt, over every address of the name.
    #[arg(help_heading = "Connection", short = 'w', long = "wait", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_timeout_secs)]
    pub wait: Option<Duration>,
    /// Idle timeout in seconds, reset by traffic either way (expiry exits 5).
    #[arg(help_heading = "Limits", short = 'i', long = "idle-timeout", value_name = "SECS", allow_negative_numbers = true,
          value_parser = parse_idle_secs)]
    pub idle: Option<Duration>,
    /// After end of stdin, wait at most SECS for the peer, then quit (UDP default: 1).
    #[arg(help_heading = "Data", short = 'q', long = "quit-after", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub quit: Option<Duration>,
    /// Accepted for compatibility: half-close on end of stdin is already the default.
    #[arg(help_heading = "Data", short = 'N')]
    pub shutdown_compat: bool,
    /// Keep the socket open for writing at end of stdin (no shutdown(SHUT_WR)).
    #[arg(help_heading = "Data", long = "no-shutdown")]
    pub no_shutdown: bool,
    /// Source address to bind before connecting.
    #[arg(
        help_heading = "Connection",
        short = 's',
        long = "source",
        value_name = "ADDR"
    )]
    pub source: Option<String>,
    /// Source port to bind before connecting.
    #[arg(
        help_heading = "Connection",
        short = 'p',
        long = "source-port",
        value_name = "PORT"
    )]
    pub source_port: Option<u16>,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub stats: StatsArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sockopts: SocketOptArgs,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// Boxed local input (stdin). The hook point for `-C` / `-d` (issue 5): wrap it here.
pub type LocalIn = Box<dyn AsyncRead + Unpin + Send>;
/// Boxed local output (stdout).
pub type LocalOut = Box<dyn AsyncWrite + Unpin + Send>;

/// The local side of the relay: stdin and stdout.
pub fn local_stdio() -> (LocalIn, LocalOut) {
    (crate::stdio::stdin(), Box::new(tokio::io::stdout()))
}

/// True when stdin is a terminal: then the command ends as soon as the peer closes
/// (netcat's behaviour). A pipe or file is sent to the end first, so a peer that only
/// half-closed still gets every byte.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Runs `sockit connect`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let events = args.output.events();
    let rt = crate::args::runtime()?;
    let result = rt.block_on(run_async(args, events));
    rt.shutdown_background();
    match result {
        Ok(code) => Ok(code),
        Err(e) => Ok(events.fail(&e)),
    }
}

/// Resolves `-s` / `-p` into a source address (or None when neither was given).
pub fn source_ip(text: Option<&str>, opts: &ConnectOptions) -> anyhow::Result<Option<IpAddr>> {
    let Some(text) = text else { return Ok(None) };
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let addrs = client::resolve(text, &Port::Number(0), SockType::Stream, opts)
        .context("source address")?;
    Ok(addrs.first().map(SocketAddr::ip))
}

fn relay_options(args: &Args, datagram: bool) -> RelayOptions {
    RelayOptions {
        idle_timeout: args.idle,
        quit_after_eof: if datagram {
            Some(args.quit.unwrap_or(Duration::from_secs(1)))
        } else {
            args.quit
        },
        shutdown_on_eof: !args.no_shutdown,
        end_on_remote_eof: stdin_is_terminal() || args.data.recv_only,
    }
}

/// How a relay ended, as the `closed` event names it (`peer_closed`, `quit_after_eof`,
/// `both_closed`, `stdout_closed`, `error`).
pub fn end_name(outcome: &Outcome) -> &'static str {
    match &outcome.result {
        Ok(End::RemoteClosed) => "peer_closed",
        Ok(End::QuitAfterEof) => "quit_after_eof",
        Ok(End::BothClosed) => "both_closed",
        Err(e) if crate::args::is_local_broken_pipe(e) => "stdout_closed",
        Err(_) => "error",
    }
}

/// The exit code of a relay outcome: 0, or its error (a closed stdout is a quiet end).
pub fn outcome_code(outcome: Outcome) -> anyhow::Result<ExitCode> {
    match outcome.result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) if crate::args::is_local_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// The relay names its local read `read`; for connect and listen that is stdin, and the
/// error says so (`stdin: read: [Errno 21] Is a directory` for `< /tmp`).
pub fn name_stdin(mut outcome: Outcome) -> Outcome {
    if let Err(e) = &outcome.result
        && e.op() == "read"
    {
        outcome.result = Err(e.clone().with_op("stdin: read"));
    }
    outcome
}

/// Prints the end event and turns the relay outcome into the exit code.
pub fn finish(events: Events, outcome: Outcome) -> anyhow::Result<ExitCode> {
    let outcome = name_stdin(outcome);
    let t = outcome.totals;
    let end = end_name(&outcome);
    events.emit(
        || {
            format!(
                "closed ({}): sent {} bytes, received {} bytes",
                end.replace('_', " "),
                t.bytes_sent,
                t.bytes_received
            )
        },
        || {
            json!({"event": "closed", "end": end, "bytes_sent": t.bytes_sent,
                   "bytes_received": t.bytes_received})
        },
    );
    outcome_code(outcome)
}

async fn run_async(args: Args, events: Events) -> anyhow::Result<ExitCode> {
    args.sockopts.options().validate()?;
    let tls = args.tls.config()?;
    if tls.is_some() && (args.udp || args.unix.is_some()) {
        return Err(crate::args::tls_needs_tcp().into());
    }
    let proxy = args.proxy.proxy()?;
    if proxy.is_some() && (args.udp || args.unix.is_some()) {
        return Err(sockit::Error::invalid_input(
            "proxy",
            "--proxy carries TCP connections only (not -u or --unix)",
        )
        .into());
    }
    let xfer = Transfer::start(&args.output, &args.stats)?;
    if let Some(path) = &args.unix {
        return connect_unix(&args, path, events, &xfer).await;
    }
    let hp = parse_host_port(&args.address)?;
    let host = hp
        .host
        .ok_or_else(|| sockit::Error::invalid_input("address", "missing host (HOST PORT)"))?;
    let mut opts = args.family.connect_options();
    opts.timeout = args.wait;
    opts.source = source_ip(args.source.as_deref(), &opts)?;
    opts.source_port = args.source_port.unwrap_or(0);
    let (lin, lout) = local_stdio();
    let (mut lin, mut lout) = args.data.wrap(lin, lout);
    let log = args.data.tap()?;
    let tap = log.as_ref().map(|l| l as &dyn relay::Tap);
    if args.udp {
        let addrs = client::resolve(&host, &hp.port, SockType::Dgram, &opts)?;
        let mut candidates = client::happy_order(addrs).into_iter();
        let peer = match opts.source {
            Some(src) => candidates
                .find(|a| src.is_ipv4() == a.is_ipv4())
                .ok_or_else(|| client::source_family_error(src))?,
            None => candidates
                .next()
                .ok_or_else(|| sockit::Error::gai("getaddrinfo", libc::EAI_NONAME))?,
        };
        let local = SocketAddr::new(
            opts.source.unwrap_or(if peer.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            }),
            opts.source_port,
        );
        let sock = tokio::net::UdpSocket::bind(local).await.map_err(|e| {
            if opts.source.is_some() || opts.source_port != 0 {
                client::source_bind_error(local, e)
            } else {
                sockit::Error::from_io("bind", e)
            }
        })?;
        sock.connect(peer)
            .await
            .map_err(|e| sockit::Error::from_io("connect", e))?;
        apply_sockopts(&args.sockopts, &sock, events)?;
        events.emit(
            || format!("connected to {} {} (udp)", host_text(&peer), peer.port()),
            || json!({"event": "connected", "proto": "udp", "peer_host": host_text(&peer), "peer_port": peer.port()}),
        );
        let outcome = xfer
            .relay_datagrams(&mut lin, &mut lout, &sock, &relay_options(&args, true), tap)
            .await;
        return finish(events, outcome);
    }
    let stream = match &proxy {
        Some(p) => {
            let c = sockit::proxy::client::connect(p, &host, &hp.port, &opts).await?;
            apply_sockopts(&args.sockopts, &c.stream, events)?;
            let (target, reply, kind) = (c.target, c.established.reply, p.kind);
            events.emit(
                || {
                    format!(
                        "connected to {target} through {kind} proxy {} {} ({reply})",
                        host_text(&c.proxy_peer),
                        c.proxy_peer.port()
                    )
                },
                || json!({"event": "connected", "proto": "tcp", "peer_host": host_text(&c.proxy_peer), "peer_port": c.proxy_peer.port(), "target_host": target.host(), "target_port": target.port(), "proxy_type": kind.as_str(), "proxy_reply": reply}),
            );
            c.stream
        }
        None => {
            let conn = client::connect_happy(&host, &hp.port, &opts).await?;
            apply_sockopts(&args.sockopts, &conn.stream, events)?;
            let peer = conn.peer;
            events.emit(
                || format!("connected to {} {} (tcp)", host_text(&peer), peer.port()),
                || json!({"event": "connected", "proto": "tcp", "peer_host": host_text(&peer), "peer_port": peer.port(), "attempts": conn.attempts}),
            );
            conn.stream
        }
    };
    let (mut rr, mut rw): (LocalIn, LocalOut) = match tls {
        Some(config) => {
            let mut stream = sockit::tls::Stream::connect(stream, &host, config)?;
            stream.handshake().await?;
            if let Some(i) = stream.session_info() {
                events.emit(
                    || format!("TLS handshake done: {} {}", i.version, i.cipher),
                    || json!({"event": "tls", "version": i.version, "cipher": i.cipher}),
                );
            }
            let (r, w) = tokio::io::split(stream);
            (Box::new(r), Box::new(w))
        }
        None => {
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        }
    };
    let outcome = xfer
        .relay_stream(
            &mut lin,
            &mut lout,
            &mut rr,
            &mut rw,
            &relay_options(&args, false),
            tap,
        )
        .await;
    finish(events, outcome)
}

async fn connect_unix(
    args: &Args,
    path: &str,
    events: Events,
    xfer: &Transfer,
) -> anyhow::Result<ExitCode> {
    let addr = UnixAddr::parse(path)?;
    let (lin, lout) = local_stdio();
    let (mut lin, mut lout) = args.data.wrap(lin, lout);
    let log = args.data.tap()?;
    let tap = log.as_ref().map(|l| l as &dyn relay::Tap);
    if args.udp {
        let sock = sockit::unix::connect_datagram(&addr)?;
        let sock = tokio::net::UnixDatagram::from_std(sock)
            .map_err(|e| sockit::Error::from_io("socket", e))?;
        // Bound by autobind (sockit::unix::connect_datagram) so the server can answer.
        let local = sock.local_addr().ok().and_then(|a| {
            a.as_pathname()
                .map(|p| p.display().to_string())
                .or_else(|| {
                    a.as_abstract_name()
                        .map(|n| format!("@{}", String::from_utf8_lossy(n)))
                })
        });
        events.emit(
            || match &local {
                Some(l) => format!("connected to unix {addr} (datagram) from {l}"),
                None => format!("connected to unix {addr} (datagram)"),
            },
            || {
                json!({"event": "connected", "proto": "unix-dgram", "path": addr.to_string(),
                       "local_path": local})
            },
        );
        let outcome = xfer
            .relay_datagrams(&mut lin, &mut lout, &sock, &relay_options(args, true), tap)
            .await;
        return finish(events, outcome);
    }
    let stream = {
        let (addr, wait) = (addr.clone(), args.wait);
        tokio::task::spawn_blocking(move || sockit::unix::connect_stream(&addr, wait))
            .await
            .context("connect")??
    };
    apply_sockopts(&args.sockopts, &stream, events)?;
    let stream = tokio::net::UnixStream::from_std(stream)
        .map_err(|e| sockit::Error::from_io("socket", e))?;
    events.emit(
        || format!("connected to unix {addr}"),
        || json!({"event": "connected", "proto": "unix", "path": addr.to_string()}),
    );
    let (mut rr, mut rw) = stream.into_split();
    let outcome = xfer
        .relay_stream(
            &mut lin,
            &mut lout,
            &mut rr,
            &mut rw,
            &relay_options(args, false),
            tap,
        )
        .await;
    finish(events, outcome)
}

/// Sets the socket options asked for (`--nodelay`, `--ttl N` …), reads each back, and
/// reports what the kernel kept with `-v` (`SO_RCVBUF 131072 (asked 65536)`).
pub fn apply_sockopts<S: std::os::fd::AsFd>(
    opts: &SocketOptArgs,
    sock: &S,
    events: Events,
) -> sockit::Result<()> {
    for a in opts.options().apply(sock)? {
        events.emit(
            || a.to_string(),
            || json!({"event": "sockopt", "name": a.name, "requested": a.requested, "effective": a.effective}),
        );
    }
    Ok(())
}
