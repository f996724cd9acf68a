//! `sockit echo-server`: the concurrent echo server of the library, on the shared
//! reporter, lifecycle and flags.

use std::process::ExitCode;

use sockit::echo::{DEFAULT_PORT, EchoConfig, EchoServer, Listen, MAX_THREADS, TcpEngine};
use sockit::unix::UnixAddr;
use sockit::{Port, SockType};

use crate::args::address::{address_error, address_text, bad_address};
use crate::args::{AdmitArgs, DrainArgs, FamilyArgs, IdleArgs, MetricsArgs, OutputArgs, StatsArgs};
use crate::lifecycle::Lifecycle;
use crate::ops::ServerOps;
use crate::report::{JsonTo, Reporter};

/// Arguments of `sockit echo-server`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen: `HOST PORT`, `HOST:PORT`, `[V6]:PORT` or `PORT`
    /// (default 127.0.0.1 50007; port 0 picks a free port).
    #[arg(value_name = "ADDR", num_args = 0..=2)]
    pub addr: Vec<String>,
    /// UDP: echo each datagram whole to its sender.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// TCP (the default); with --udp, both on one port.
    #[arg(long = "tcp")]
    pub tcp: bool,
    /// Listen on a Unix socket at PATH instead (stream; datagram with -u); `@name` is a
    /// Linux abstract name (no file).
    #[arg(long = "unix", value_name = "PATH", conflicts_with_all = ["addr", "tcp"])]
    pub unix: Option<String>,
    #[command(flatten)]
    pub admit: AdmitArgs,
    #[command(flatten)]
    pub idle: IdleArgs,
    #[command(flatten)]
    pub drain: DrainArgs,
    /// Worker threads, 0-1024 (default 0: one per CPU this process may use, fitted to
    /// the open-file limit).
    #[arg(long = "threads", value_name = "N", default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_THREADS as u64))]
    pub threads: usize,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// On an IPv6 wildcard address, also accept IPv4 (IPV6_V6ONLY off).
    #[arg(help_heading = "Connection", long = "dual-stack")]
    pub dual_stack: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub stats: StatsArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// How TCP connections are served: `loop` (one epoll event loop per worker, the
    /// default) or `tasks` (one tokio task per connection), for comparing them.
    #[arg(long = "engine", value_name = "ENGINE", default_value = "loop", value_parser = ["loop", "tasks"])]
    pub engine: String,
    /// Busy polling, 0-1000000 (default 0: off): after serving, keep polling for up to
    /// USECS microseconds before sleeping. Cuts the round trip of a few busy clients
    /// (the wake-up of a sleeping thread leaves it) at the cost of that much CPU after
    /// each burst; as Linux's net.core.busy_poll, in user space. TCP and UDP of the
    /// `loop` engine.
    #[arg(long = "busy-poll", value_name = "USECS", default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(0..=1_000_000))]
    pub busy_poll: u64,
}

/// Under socket activation with no address flags given, what to serve follows from the
/// sockets passed: one TCP, UDP or Unix socket, or one TCP and one UDP socket. (With
/// flags, the binder takes the sockets the flags name, or says which kind is missing.)
fn activated(args: &Args) -> anyhow::Result<Option<Listen>> {
    if !args.addr.is_empty() || args.udp || args.tcp || args.unix.is_some() {
        return Ok(None);
    }
    use sockit::serve::Transport as T;
    let kinds = sockit::serve::activation::transports()?;
    // The binder takes the inherited sockets: the addresses here are not bound.
    let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    let unix = || UnixAddr::Path("(inherited)".into());
    Ok(match kinds.as_slice() {
        [] => None,
        [T::Tcp] => Some(Listen::Tcp(any)),
        [T::Udp] => Some(Listen::Udp(any)),
        [T::Tcp, T::Udp] | [T::Udp, T::Tcp] => Some(Listen::TcpUdp(any)),
        [T::Unix] => Some(Listen::UnixStream(unix())),
        [T::Unixgram] => Some(Listen::UnixDgram(unix())),
        other => {
            let list: Vec<&str> = other.iter().map(|t| t.as_str()).collect();
            return Err(sockit::Error::invalid_input(
                "socket activation",
                format!(
                    "echo-server serves one socket, or one tcp and one udp socket; LISTEN_FDS \
                     passed {}",
                    list.join(", ")
                ),
            )
            .into());
        }
    })
}

fn config(args: &Args) -> anyhow::Result<EchoConfig> {
    let ip = |socktype| -> anyhow::Result<std::net::SocketAddr> {
        let (host, port) = if args.addr.is_empty() {
            (None, Port::Number(DEFAULT_PORT))
        } else {
            let hp = sockit::addr::parse_host_port(&args.addr)
                .map_err(|e| bad_address(None, &address_text(&args.addr), e))?;
            (hp.host, hp.port)
        };
        let rule = args.family.addr_rule(args.dual_stack);
        Ok(
            sockit::serve::bind_addr(host.as_deref(), &port, socktype, &rule)
                .map_err(|e| address_error(None, &address_text(&args.addr), e))?,
        )
    };
    let unix = |text: &str| UnixAddr::parse(text).map_err(|e| bad_address(None, text, e));
    let inherited = activated(args)?;
    let listen = match &args.unix {
        _ if inherited.is_some() => inherited.expect("checked"),
        Some(text) if args.udp => Listen::UnixDgram(unix(text)?),
        Some(text) => Listen::UnixStream(unix(text)?),
        None if args.udp && args.tcp => Listen::TcpUdp(ip(SockType::Stream)?),
        None if args.udp => Listen::Udp(ip(SockType::Dgram)?),
        None => Listen::Tcp(ip(SockType::Stream)?),
    };
    if let Listen::Tcp(a) | Listen::Udp(a) | Listen::TcpUdp(a) = &listen
        && args.dual_stack
        && !(a.is_ipv6() && a.ip().is_unspecified())
    {
        return Err(sockit::Error::invalid_input(
            "bind",
            format!(
                "--dual-stack needs the IPv6 wildcard address ::, not {}",
                a.ip()
            ),
        )
        .into());
    }
    if args.busy_poll > 0 {
        let unix = matches!(listen, Listen::UnixStream(_) | Listen::UnixDgram(_));
        if unix || args.engine == "tasks" {
            return Err(sockit::Error::invalid_input(
                "--busy-poll",
                format!(
                    "the loop engine's TCP and UDP only, not {}",
                    if unix {
                        "a Unix socket"
                    } else {
                        "--engine tasks"
                    }
                ),
            )
            .into());
        }
    }
    let mut cfg = EchoConfig::new(listen);
    cfg.max_conns = args.admit.max_conns();
    cfg.access = args.admit.access()?;
    cfg.proxy_from = args.admit.proxy_sources()?;
    cfg.idle_timeout = args.idle.timeout;
    cfg.threads = args.threads;
    cfg.only_v6 = !args.dual_stack;
    cfg.datagram_events = args.output.verbose >= 2 || args.output.json;
    cfg.busy_poll = (args.busy_poll > 0).then(|| std::time::Duration::from_micros(args.busy_poll));
    cfg.tcp_engine = if args.engine == "tasks" {
        TcpEngine::Tasks
    } else {
        TcpEngine::EventLoop
    };
    Ok(cfg)
}

/// Runs `sockit echo-server`. With `--json`, an error that ends it is also one JSON object
/// on stdout (`{"event":"error","kind":…,"op":…,"code":…,"message":…}`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out = args.output.clone();
    Reporter::run_server(&out, JsonTo::Stdout, |r| serve(args, r))
}

fn serve(args: Args, reporter: &std::sync::Arc<Reporter>) -> anyhow::Result<ExitCode> {
    let cfg = config(&args)?;
    let rt = crate::lifecycle::runtime()?;
    // Signals are registered before the `listening` line, so a SIGTERM sent as soon as
    // the line is read already stops the server cleanly.
    let (life, ops) = {
        let _guard = rt.enter();
        let life = Lifecycle::start(args.drain.drain)?;
        let ops = ServerOps::new(
            reporter,
            &args.stats,
            &args.metrics,
            &args.family,
            cfg.datagram_events,
        )?;
        (life, ops)
    };
    let mut cfg = cfg;
    cfg.datagram_events = ops.wants_datagrams();
    let at = args
        .unix
        .clone()
        .unwrap_or_else(|| address_text(&args.addr));
    let server = EchoServer::bind(cfg).map_err(|e| address_error(None, &at, e))?;
    sockit::serve::activation::check_all_taken("echo-server")?;
    if sockit::serve::activation::active().unwrap_or(false)
        && (!args.addr.is_empty() || args.unix.is_some())
    {
        reporter.event(&sockit::serve::Event::Warning {
            message: "the address given is not bound: the socket passed in LISTEN_FDS is \
                      served"
                .into(),
        });
    }
    let both = server.bound().len() > 1;
    for b in server.bound() {
        let suffix = match b {
            sockit::echo::Bound::Ip(t, _) if both => Some(t.as_str()),
            _ => None,
        };
        let (sockit::echo::Bound::Ip(t, _) | sockit::echo::Bound::Unix(t, _)) = b;
        ops.serving(*t);
        reporter.listening(&b.listening(), suffix)?;
    }
    let handle = {
        let _guard = rt.enter();
        let sink = ops.sink();
        ops.start(life.stop())?;
        server.start_with(Some(sink), life.stop())?
    };
    let stop = life.stop();
    rt.block_on(stop.stopping());
    // The workers drain and abort by themselves (each watches the stop controller); the
    // runtime keeps the signal watcher alive meanwhile for a second signal.
    let joined = std::thread::spawn(move || handle.join());
    let stats = rt.block_on(async {
        loop {
            if joined.is_finished() {
                break joined.join();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    reporter.flush();
    rt.shutdown_background();
    match stats {
        Ok(r) => {
            r?;
        }
        Err(_) => anyhow::bail!("echo-server: a worker thread panicked"),
    }
    Ok(life.exit_code())
}
