//! `sockit connect`: netcat's client mode. stdin to the socket, the socket to stdout.
//!
//! TCP connects with Happy Eyeballs (`sockit::client::connect_happy`) under one `-w`
//! deadline; end of stdin half-closes the socket (unless `--no-shutdown`) and the command
//! ends when the peer closes (or `-q` after end of stdin; `--send-only`: at once). The
//! end of the peer's stream closes stdout at once (the command may go on sending stdin).
//! A connection the command ends itself closes once what it sent is acknowledged, so a
//! RST (for input it never read) cannot destroy the end of what it sent. UDP sends each
//! stdin read as a datagram
//! and ends `-q` seconds (default 1) after end of stdin. `--unix PATH` (or `@name`) does
//! the same over Unix stream or, with `-u`, datagram sockets. `--retry N` tries a failed
//! connect again (TCP, through a proxy too, UDP, Unix stream; `-w` bounds each attempt)
//! with forward's back-off (`sockit::retry`), each failure a `retry` event (`-v`).
//! Events go through the one reporter, on stderr.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockit::addr::parse_host_port;
use sockit::client;
use sockit::relay::{self, Counters, RelayOptions};
use sockit::serve::{BoxStream, CloseReason, Closed, Event, Local, Peer, Transport, Via};
use sockit::unix::UnixAddr;

use crate::args::{
    DataArgs, EofArgs, FamilyArgs, OutputArgs, ProxyArgs, RetryArgs, SocketOptArgs, SpliceArgs,
    StatsArgs, TlsClientArgs, parse_idle_secs, parse_secs, parse_timeout_secs,
};
use crate::report::Reporter;
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
    /// -N, --no-shutdown.
    #[command(flatten)]
    pub eof: EofArgs,
    /// Source address to bind before connecting (a path with --unix -u).
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
    #[command(flatten)]
    pub retry: RetryArgs,
    #[command(flatten)]
    pub splice: SpliceArgs,
}

/// Runs `sockit connect`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reporter = Reporter::one_session(&args.output);
    let rt = crate::lifecycle::runtime()?;
    // SIGINT (130) and SIGTERM (143) end the command at once, also while a connect
    // hangs; what the run holds (a `-s` socket file) is dropped on the way out.
    let result = rt.block_on(async {
        let mut signals = crate::lifecycle::Interrupt::register()?;
        tokio::select! {
            r = run_async(args, &reporter) => r,
            code = signals.recv() => Ok(ExitCode::from(code)),
        }
    });
    rt.shutdown_background();
    reporter.flush();
    match result {
        Ok(code) => Ok(code),
        Err(e) => Ok(reporter.fail(&e)),
    }
}

fn relay_options(args: &Args, datagram: bool) -> RelayOptions {
    let quit = match args.quit {
        None if datagram => Some(Duration::from_secs(1)),
        // --send-only: nothing more can be exchanged after end of stdin (ncat quits).
        None if args.data.send_only => Some(Duration::ZERO),
        q => q,
    };
    RelayOptions {
        idle_timeout: args.idle,
        quit_after_eof: quit,
        shutdown_on_eof: args.eof.shutdown_on_eof(),
        end_on_remote_eof: crate::stdio::stdin_is_terminal() || args.data.recv_only,
    }
}

/// The one session of the command: its peer, transport and start, for the `closed`
/// event.
struct Session {
    peer: Peer,
    transport: Transport,
    started: Instant,
}

/// Reports the `closed` event and turns the relay's result into the exit code (a closed
/// stdout is a quiet end).
fn finish(
    reporter: &Reporter,
    s: &Session,
    counters: &Counters,
    result: sockit::Result<relay::End>,
    zero_copy: Option<relay::ZeroCopy>,
) -> anyhow::Result<ExitCode> {
    let result = result.map_err(sockit::listen::name_stdin);
    let (reason, error) = sockit::serve::close::relay_end(&result);
    let closed = Closed::of(
        1,
        s.transport,
        s.peer.clone(),
        s.started,
        &counters.totals(),
        reason,
        error,
    );
    reporter.event(&Event::Closed(Closed {
        zero_copy,
        ..closed
    }));
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) if crate::args::is_local_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// Relays stdin/stdout and a stream (zero-copy where [`sockit::listen::relay_local`] can);
/// closes it as the end asks (lingering after a clean end or a local error).
async fn relay_stream(
    args: &Args,
    reporter: &Reporter,
    counters: &Counters,
    session: Session,
    mut stream: BoxStream,
    mut local: sockit::listen::Local,
) -> anyhow::Result<ExitCode> {
    let log = args.data.tap()?;
    let tap = log.as_ref().map(|l| l as &dyn relay::Tap);
    // The idle clock starts with the relay, not with the connect.
    counters.touch();
    let opts = relay_options(args, false);
    let result = sockit::listen::relay_local(&mut stream, &mut local, &opts, tap, counters).await;
    flush_rest(&mut local.output).await;
    let (reason, error) = sockit::serve::close::relay_end(&result);
    match reason {
        // What was sent arrives before the socket closes; the peer need not close first.
        CloseReason::Eof => {
            sockit::serve::close::acked_close(stream).await;
        }
        // (an idle peer that stopped reading with bytes still queued is cut with RST)
        _ => {
            let closing = relay::idle::close_reason(reason, &stream);
            sockit::serve::close::close_as(stream, closing, error.as_ref()).await
        }
    }
    finish(
        reporter,
        &session,
        counters,
        result,
        Some(counters.zero_copy_by_direction()),
    )
}

/// Finishes a write to stdout that a relay ended by the other direction left in flight
/// (tokio's stdout writes on a thread; the runtime's shutdown would drop it), at most 5 s.
async fn flush_rest(lout: &mut (dyn tokio::io::AsyncWrite + Unpin + Send)) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(5), lout.flush()).await;
}

async fn run_async(args: Args, reporter: &Arc<Reporter>) -> anyhow::Result<ExitCode> {
    args.sockopts.options().validate()?;
    let tls = args.tls.config(reporter)?;
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
    let retry = args.retry.retry()?;
    // SIGUSR1 and --stats-interval totals, -v progress: read from the relay's counters.
    let xfer = Transfer::start(&args.output, &args.stats)?;
    let counters = xfer.counters();
    let local = args.data.local(args.splice.splice());
    if let Some(path) = &args.unix {
        return connect_unix(&args, path, reporter, &counters, local, retry).await;
    }
    let hp = parse_host_port(&args.address)?;
    let host = hp
        .host
        .ok_or_else(|| sockit::Error::invalid_input("address", "missing host (HOST PORT)"))?;
    let mut opts = args.family.connect_options();
    opts.timeout = args.wait;
    opts.source = match &args.source {
        Some(text) => Some(client::source_address(text, &opts)?),
        None => None,
    };
    opts.source_port = args.source_port.unwrap_or(0);
    let target = sockit::serve::Aim::Ip {
        host: host.clone(),
        port: hp.port.clone(),
    };
    if args.udp {
        let (sock, peer) = retry
            .run(
                || client::connect_udp(&host, &hp.port, &opts),
                |f| retrying(reporter, &target, f),
            )
            .await?;
        apply_sockopts(&args.sockopts, &sock, reporter)?;
        let session = connected(reporter, Peer::Ip(peer), Transport::Udp, None, None, None);
        return relay_datagrams(&args, reporter, &counters, session, &sock, local).await;
    }
    let (tcp, session) = match &proxy {
        Some(p) => {
            let c = retry
                .run(
                    || sockit::proxy::client::connect(p, &host, &hp.port, &opts),
                    |f| retrying(reporter, &target, f),
                )
                .await?;
            apply_sockopts(&args.sockopts, &c.stream, reporter)?;
            let via = c.via();
            let peer = Peer::Ip(c.proxy_peer);
            let session = connected(reporter, peer, Transport::Tcp, None, None, Some(via));
            (c.stream, session)
        }
        None => {
            let conn = retry
                .run(
                    || client::connect_happy(&host, &hp.port, &opts),
                    |f| retrying(reporter, &target, f),
                )
                .await?;
            apply_sockopts(&args.sockopts, &conn.stream, reporter)?;
            let (peer, attempts) = (Peer::Ip(conn.peer), Some(conn.attempts as u32));
            let session = connected(reporter, peer, Transport::Tcp, None, attempts, None);
            (conn.stream, session)
        }
    };
    let stream: BoxStream = match tls {
        Some(config) => {
            use std::os::fd::AsFd;
            let fd = tcp
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| sockit::Error::from_io("dup", e))?;
            let mut stream = sockit::tls::Stream::connect(tcp, &host, config)?;
            stream.handshake().await?;
            if let Some(i) = stream.session_info() {
                reporter.event(&Event::Tls {
                    version: i.version,
                    cipher: i.cipher,
                });
            }
            Box::new(sockit::serve::WithFd::new(stream, fd))
        }
        None => Box::new(tcp),
    };
    relay_stream(&args, reporter, &counters, session, stream, local).await
}

/// Reports a failed connect that `--retry` tries again (`-v`; JSON `retry`).
fn retrying(reporter: &Reporter, target: &sockit::serve::Aim, f: sockit::retry::Failed<'_>) {
    reporter.event(&Event::Retry {
        id: 1,
        target: target.clone(),
        attempt: f.attempt,
        attempts: f.attempts,
        delay_us: sockit::serve::Closed::micros(f.delay),
        error: f.error.clone(),
    });
}

/// Reports the connection and starts the session.
fn connected(
    reporter: &Reporter,
    peer: Peer,
    transport: Transport,
    local: Option<Peer>,
    attempts: Option<u32>,
    via: Option<Via>,
) -> Session {
    reporter.event(&Event::ClientConnected {
        transport,
        peer: peer.clone(),
        local: local.map(Local),
        attempts,
        via,
    });
    Session {
        peer,
        transport,
        started: Instant::now(),
    }
}

async fn relay_datagrams<D: relay::DatagramSocket>(
    args: &Args,
    reporter: &Reporter,
    counters: &Counters,
    session: Session,
    sock: &D,
    local: sockit::listen::Local,
) -> anyhow::Result<ExitCode> {
    let (mut lin, mut lout) = (local.input, local.output);
    let log = args.data.tap()?;
    let tap = log.as_ref().map(|l| l as &dyn relay::Tap);
    counters.touch();
    let opts = relay_options(args, true);
    let result =
        relay::relay_datagrams_counted(&mut lin, &mut lout, sock, &opts, tap, counters).await;
    flush_rest(&mut lout).await;
    finish(reporter, &session, counters, result, None)
}

async fn connect_unix(
    args: &Args,
    path: &str,
    reporter: &Reporter,
    counters: &Counters,
    local: sockit::listen::Local,
    retry: sockit::retry::Retry,
) -> anyhow::Result<ExitCode> {
    let addr = UnixAddr::parse(path)?;
    let peer = Peer::Unix(Some(addr.clone()));
    if args.udp {
        // Bound to -s PATH as `nc -U -u -s` binds it (the file removed at the end), else
        // by autobind, so the server can answer.
        let source = args.source.as_deref().map(UnixAddr::parse).transpose()?;
        let sock = sockit::unix::connect_datagram_from(&addr, source.as_ref())?;
        let _file = match source.as_ref().and_then(UnixAddr::path) {
            Some(p) => Some(sockit::serve::SocketFile::of(p.to_path_buf())?),
            None => None,
        };
        let sock = tokio::net::UnixDatagram::from_std(sock)
            .map_err(|e| sockit::Error::from_io("socket", e))?;
        let me = sock.local_addr().ok().map(|a| Peer::from_tokio_unix(&a));
        let session = connected(reporter, peer, Transport::Unixgram, me, None, None);
        return relay_datagrams(args, reporter, counters, session, &sock, local).await;
    }
    let stream = retry
        .run(
            || {
                let (addr, wait) = (addr.clone(), args.wait);
                async move {
                    tokio::task::spawn_blocking(move || sockit::unix::connect_stream(&addr, wait))
                        .await
                        .map_err(|e| {
                            sockit::Error::new(
                                sockit::ErrorKind::Os,
                                "connect",
                                None,
                                e.to_string(),
                            )
                        })?
                }
            },
            |f| retrying(reporter, &sockit::serve::Aim::Path(addr.to_string()), f),
        )
        .await?;
    apply_sockopts(&args.sockopts, &stream, reporter)?;
    let stream = tokio::net::UnixStream::from_std(stream)
        .map_err(|e| sockit::Error::from_io("socket", e))?;
    let session = connected(reporter, peer, Transport::Unix, None, None, None);
    relay_stream(args, reporter, counters, session, Box::new(stream), local).await
}

/// Sets the socket options asked for (`--nodelay`, `--ttl N` …), reads each back, and
/// reports what the kernel kept (`-v`: `SO_RCVBUF 131072 (asked 65536)`).
fn apply_sockopts<S: std::os::fd::AsFd>(
    opts: &SocketOptArgs,
    sock: &S,
    reporter: &Reporter,
) -> sockit::Result<()> {
    for a in opts.options().apply(sock)? {
        reporter.event(&Event::from(&a));
    }
    Ok(())
}
