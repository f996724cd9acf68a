//! `sockit listen`: netcat's listen mode, on the library's [`sockit::listen`] mode of the
//! server core. One peer (default), `-k`, `--broker`, `--exec`; the `listening HOST PORT`
//! line and every event go to stderr (stdout carries nothing but the peers' bytes);
//! SIGTERM drains (`--drain`), SIGINT (130) and SIGHUP (129) abort; the Unix socket file
//! created is removed at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sockit::addr::parse_host_port;
use sockit::listen::{Address, Listen, ListenOptions, Mode};
use sockit::serve::Event;
use sockit::unix::UnixAddr;

use crate::args::address::{address_error, address_text, bad_address};
use crate::args::{
    AdmitArgs, DataArgs, DrainArgs, EofArgs, FamilyArgs, IdleArgs, MetricsArgs, OutputArgs,
    SocketOptArgs, SpliceArgs, StatsArgs, TlsServerArgs, parse_secs,
};
use crate::lifecycle::Lifecycle;
use crate::ops::ServerOps;
use crate::report::{JsonTo, Reporter};
use crate::transfer::Transfer;

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
    /// Broker (chat) mode: what one client sends goes to all the others too (implies -k;
    /// not with --send-only or --recv-only).
    #[arg(long)]
    pub broker: bool,
    /// Listen on a Unix socket at PATH (`@name`: Linux abstract name).
    #[arg(long = "unix", value_name = "PATH", conflicts_with = "address")]
    pub unix: Option<String>,
    /// Accept IPv4 too on an IPv6 wildcard listener (IPV6_V6ONLY off; needs `::`).
    #[arg(help_heading = "Connection", long = "dual-stack")]
    pub dual_stack: bool,
    /// -i SECS: idle timeout per connection (one peer: expiry exits 5; with -k the idle
    /// connection is closed; -k -u: the idle peer is forgotten and the listener goes on;
    /// -u --exec: the peer's program ends, default 60 s).
    #[command(flatten)]
    pub idle: IdleArgs,
    /// After end of stdin, wait at most SECS for the peer, then quit (one-peer mode).
    #[arg(help_heading = "Data", short = 'q', long = "quit-after", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub quit: Option<Duration>,
    /// -N, --no-shutdown.
    #[command(flatten)]
    pub eof: EofArgs,
    /// Listen backlog (listen(2)).
    #[arg(help_heading = "Limits", long, default_value_t = 128, value_name = "N")]
    pub backlog: i32,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The totals on SIGUSR1 and every --stats-interval: one peer, the transfer's bytes so
    /// far; with -k, the server's (sessions, bytes of the ended ones).
    #[command(flatten)]
    pub stats: StatsArgs,
    /// --allow/--deny CIDR, --max-conns N (with -k; without -k or --broker it has no
    /// effect, and a warning says so, as ncat's).
    #[command(flatten)]
    pub admit: AdmitArgs,
    #[command(flatten)]
    pub drain: DrainArgs,
    /// --metrics ADDR: the server's Prometheus endpoint (with -k, --broker or --exec).
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sockopts: SocketOptArgs,
    #[command(flatten)]
    pub tls: TlsServerArgs,
    /// --no-splice: one peer's relay copies every byte through user space.
    #[command(flatten)]
    pub splice: SpliceArgs,
    /// Run PROGRAM [ARGS…] for each connection (with -k, one per connection; -u: per
    /// sender, each datagram to its stdin, each read of its stdout back as a datagram,
    /// ended after -i SECS idle, default 60 s; at most --max-conns at once), its
    /// stdin/stdout connected by pipes relayed to and from the socket (not the socket
    /// itself): argv only, never a shell, looked up on PATH before binding. It gets
    /// NCAT_REMOTE_ADDR, NCAT_REMOTE_PORT, NCAT_LOCAL_ADDR, NCAT_LOCAL_PORT, NCAT_PROTO and
    /// the same as SOCKIT_*; -C turns its output's line ends into CRLF. Must come last.
    #[arg(long, value_name = "PROGRAM", num_args = 1.., allow_hyphen_values = true,
          conflicts_with = "sh_exec")]
    pub exec: Vec<String>,
    /// As --exec, with CMD run by `/bin/sh -c CMD`: the only way to a shell.
    #[arg(long = "sh-exec", value_name = "CMD")]
    pub sh_exec: Option<String>,
}

impl Args {
    /// One peer and no program: a transfer (totals from its relay), not a server.
    fn one_transfer(&self) -> bool {
        self.mode() == Mode::One && self.program().is_empty()
    }

    /// The program of `--exec`, or `--sh-exec`'s shell; empty for none.
    fn program(&self) -> Vec<String> {
        match &self.sh_exec {
            Some(cmd) => sockit::listen::exec::shell(cmd),
            None => self.exec.clone(),
        }
    }

    fn mode(&self) -> Mode {
        if self.broker {
            Mode::Broker
        } else if self.keep {
            Mode::Keep
        } else {
            Mode::One
        }
    }
}

/// Runs `sockit listen`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reporter = match args.mode() {
        Mode::One => Reporter::one_session(&args.output),
        _ => Reporter::new(&args.output, JsonTo::Stderr),
    };
    let result = serve(args, &reporter);
    reporter.flush();
    match result {
        Ok(code) => Ok(code),
        Err(e) => Ok(reporter.fail(&e)),
    }
}

/// What the flags ask for, checked and opened (the `-x`/`-o` files) before anything is
/// bound: a bad option never fails with a peer waiting.
fn options(args: &Args, reporter: &Reporter) -> anyhow::Result<(Address, ListenOptions)> {
    let mut listen_host = None;
    let addr = match &args.unix {
        Some(path) => Address::Unix(UnixAddr::parse(path).map_err(|e| bad_address(None, path, e))?),
        None => {
            let hp = parse_host_port(&args.address)
                .map_err(|e| bad_address(None, &address_text(&args.address), e))?;
            listen_host = hp.host.clone();
            Address::Ip {
                host: hp.host,
                port: hp.port,
            }
        }
    };
    // Socket activation serves the socket passed; an address other than port 0 given
    // beside it is not bound, and is said so.
    let port_zero = args.address.last().is_some_and(|p| p == "0");
    if sockit::serve::activation::active().unwrap_or(false) && !port_zero {
        reporter.event(&Event::Warning {
            message: "the address given is not bound: the socket passed in LISTEN_FDS is \
                      served (give port 0 to say so)"
                .into(),
        });
    }
    if args.metrics.metrics.is_some() && args.one_transfer() {
        return Err(sockit::Error::invalid_input(
            "--metrics",
            "needs -k, --broker or --exec: one peer is a transfer, not a server \
             (its totals come on SIGUSR1 and with --stats-interval)",
        )
        .into());
    }
    if args.admit.max_conns.is_some() && args.mode() == Mode::One {
        reporter.event(&Event::Warning {
            message: "--max-conns has no effect without -k or --broker (one peer is served)".into(),
        });
    }
    let opts = ListenOptions {
        mode: args.mode(),
        datagram: args.udp,
        exec: args.program(),
        exec_crlf: args.data.crlf,
        rule: args.family.addr_rule(args.dual_stack),
        backlog: args.backlog,
        sockopts: args.sockopts.options(),
        access: args.admit.access()?,
        proxy_from: args.admit.proxy_sources()?,
        max_conns: args.admit.max_conns(),
        idle_timeout: args.idle.timeout,
        quit_after_eof: args.quit,
        shutdown_on_eof: args.eof.shutdown_on_eof(),
        end_on_remote_eof: crate::stdio::stdin_is_terminal() || args.data.recv_only,
        send_only: args.data.send_only,
        recv_only: args.data.recv_only,
        log: args.data.log.shared()?,
        tls: args.tls.config(listen_host.as_deref(), reporter)?,
        counters: None,
    };
    Ok((addr, opts))
}

fn serve(args: Args, reporter: &Arc<Reporter>) -> anyhow::Result<ExitCode> {
    let (addr, opts) = options(&args, reporter)?;
    let rt = crate::lifecycle::runtime()?;
    let result = rt.block_on(async {
        // Signals first: a SIGTERM or SIGUSR1 sent as soon as the line is read is handled.
        let life = Lifecycle::start(args.drain.drain)?;
        // One peer: the transfer's totals and -v progress line, read from the relay's
        // counters; with -k: the server's totals, counted from its events.
        let (mut opts, mut xfer, mut ops) = (opts, None, None);
        if args.one_transfer() {
            let x = Transfer::start(&args.output, &args.stats)?;
            opts.counters = Some(x.counters());
            xfer = Some(x);
        } else {
            ops = Some(ServerOps::new(
                reporter,
                &args.stats,
                &args.metrics,
                &args.family,
                false,
            )?);
        }
        let at = args
            .unix
            .clone()
            .unwrap_or_else(|| address_text(&args.address));
        let listen = Listen::bind(&addr, opts).map_err(|e| address_error(None, &at, e))?;
        sockit::serve::activation::check_all_taken("listen")?;
        reporter.listening(&listen.listening(), None)?;
        reporter.applied(listen.applied());
        let local = args.data.local(args.splice.splice());
        let sink = match ops {
            Some(o) => {
                o.serving(listen.transport());
                let sink = o.sink();
                o.start(life.stop())?;
                sink
            }
            None => reporter.sink(),
        };
        let result = listen.run(local, sink, life.stop()).await;
        drop(xfer.take());
        match result {
            Ok(()) => Ok(life.exit_code()),
            // A closed stdout (`| head`) ends quietly.
            Err(e) if crate::args::is_local_broken_pipe(&e) => Ok(life.exit_code()),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    });
    rt.shutdown_background();
    result
}
