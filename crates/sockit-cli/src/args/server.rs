//! The server-side clap groups (flattened into the servers' `Args`): whom a server admits
//! (`--max-conns`, `--allow/--deny`), its traffic logs (`-x`/`-o`), its idle timeout (`-i`),
//! how it stops (`--drain`), its totals (`--stats-interval`) and metrics (`--metrics`), and
//! the groups every relaying server has together ([`RelayServerArgs`]).

use std::path::PathBuf;
use std::time::Duration;

use super::parse::{parse_drain, parse_idle_secs, parse_max_conns, parse_stats_interval};
use super::{FamilyArgs, OutputArgs, SocketOptArgs};

/// Traffic logs (`-x FILE`, `-o FILE`): connect, listen, forward.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrafficLogArgs {
    /// Hex dump of both directions to FILE (offsets, direction marks >/<, timestamps).
    #[arg(
        help_heading = "Output",
        short = 'x',
        long = "hex-dump",
        value_name = "FILE"
    )]
    pub hex_dump: Option<PathBuf>,
    /// Raw log of both directions to FILE (the bytes as they passed).
    #[arg(
        help_heading = "Output",
        short = 'o',
        long = "output",
        value_name = "FILE"
    )]
    pub output: Option<PathBuf>,
}

impl TrafficLogArgs {
    /// Creates the files asked for.
    pub fn open(&self) -> sockit::Result<sockit::dump::TrafficLog> {
        sockit::dump::TrafficLog::create(self.hex_dump.as_deref(), self.output.as_deref())
    }

    /// Creates the files asked for, as a log the sessions share (None when neither was
    /// given). The first failed write (`-o /dev/full`) is reported once on stderr, naming
    /// the file; logging stops there, the connections go on, and the command exits 1 at
    /// the end ([`log_failed`]).
    pub fn shared(&self) -> sockit::Result<Option<std::sync::Arc<sockit::dump::SharedLog>>> {
        let log = self.open()?;
        if log.is_empty() {
            return Ok(None);
        }
        let name = |flag: &str, p: &Option<PathBuf>| {
            p.as_ref()
                .map_or_else(String::new, |p| format!("{flag} {}", p.display()))
        };
        Ok(Some(std::sync::Arc::new(sockit::dump::SharedLog::new(
            log,
            name("-x", &self.hex_dump),
            name("-o", &self.output),
            |err| {
                LOG_FAILED.store(true, std::sync::atomic::Ordering::SeqCst);
                crate::exit::stderr_line(format_args!(
                    "sockit: {err} (traffic log stopped; exit status 1)"
                ));
            },
        ))))
    }
}

/// Set by the first failed write to a `-x`/`-o` file (see [`TrafficLogArgs::shared`]).
static LOG_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once a `-x`/`-o` write failed: a command that would exit 0 exits 1.
pub fn log_failed() -> bool {
    LOG_FAILED.load(std::sync::atomic::Ordering::SeqCst)
}

/// `--max-conns N`, `--allow CIDR`, `--deny CIDR`, `--allowfile FILE`, `--denyfile FILE`,
/// `--accept-proxy-from CIDR`: whom a server admits, and how many at once (echo-server,
/// listen, forward, proxy).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdmitArgs {
    /// At most N sessions at once (1-16777216, default 1024); more are accepted and
    /// closed at once (datagrams dropped).
    #[arg(help_heading = "Limits", long = "max-conns", value_name = "N", value_parser = parse_max_conns)]
    pub max_conns: Option<usize>,
    /// Admit only peers in these networks (CIDR; repeatable or comma-separated); others
    /// are closed at once (datagrams dropped).
    #[arg(help_heading = "Limits", long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Refuse peers in these networks (wins over --allow).
    #[arg(help_heading = "Limits", long, value_name = "CIDR")]
    pub deny: Vec<String>,
    /// Admit only peers in the networks listed in FILE: one address or CIDR per line, #
    /// comments (ncat's --allowfile; an empty file admits nobody). Adds to --allow.
    #[arg(help_heading = "Limits", long = "allowfile", value_name = "FILE")]
    pub allowfile: Vec<PathBuf>,
    /// Refuse peers in the networks listed in FILE (format of --allowfile). Adds to --deny.
    #[arg(help_heading = "Limits", long = "denyfile", value_name = "FILE")]
    pub denyfile: Vec<PathBuf>,
    /// Connections from these networks (CIDR; repeatable or comma-separated) must open with
    /// a PROXY protocol header (v1 or v2, within 5 s); the client it names is the peer,
    /// for the events and --allow/--deny. Connections from anywhere else are refused.
    #[arg(
        help_heading = "Limits",
        long = "accept-proxy-from",
        value_name = "CIDR"
    )]
    pub accept_proxy_from: Vec<String>,
}

impl AdmitArgs {
    /// The access list of `--allow`/`--deny` and the `--allowfile`/`--denyfile` files.
    pub fn access(&self) -> sockit::Result<sockit::access::AccessList> {
        let mut acl = sockit::access::AccessList::parse(&self.allow, &self.deny)?;
        for f in &self.allowfile {
            acl.add_allow_file(f)?;
        }
        for f in &self.denyfile {
            acl.add_deny_file(f)?;
        }
        Ok(acl)
    }

    /// The `--accept-proxy-from` sources.
    pub fn proxy_sources(&self) -> sockit::Result<sockit::serve::ProxySources> {
        sockit::serve::ProxySources::parse(&self.accept_proxy_from)
    }

    /// `--max-conns`, or the default (1024).
    pub fn max_conns(&self) -> usize {
        self.max_conns.unwrap_or(sockit::serve::DEFAULT_MAX_CONNS)
    }
}

/// The flags every relaying server has (forward, proxy), in one place: whom it admits,
/// how it stops, its events and totals, its metrics, its traffic logs, its socket options.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayServerArgs {
    #[command(flatten)]
    pub admit: AdmitArgs,
    #[command(flatten)]
    pub drain: DrainArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub stats: StatsArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub log: TrafficLogArgs,
    #[command(flatten)]
    pub sockopts: SocketOptArgs,
}

impl RelayServerArgs {
    /// Starts what a relaying server runs beside its sessions, inside the runtime and
    /// before its `listening` line: the signals first (so a SIGTERM sent as soon as the
    /// line is read is handled), then `--stats-interval` and `--metrics`
    /// ([`crate::ops::ServerOps::new`], no per-datagram events).
    ///
    /// # Errors
    /// When a signal handler cannot be registered or the metrics endpoint cannot be bound.
    pub fn start(
        &self,
        reporter: &std::sync::Arc<crate::report::Reporter>,
        family: &FamilyArgs,
    ) -> anyhow::Result<(crate::lifecycle::Lifecycle, crate::ops::ServerOps)> {
        let life = crate::lifecycle::Lifecycle::start(self.drain.drain)?;
        let ops = crate::ops::ServerOps::new(reporter, &self.stats, &self.metrics, family, false)?;
        Ok((life, ops))
    }
}

/// `-i SECS`: the idle timeout of a session, reset by traffic either way.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IdleArgs {
    /// End a session after SECS (more than 0, at most 1e9) without traffic either way.
    #[arg(help_heading = "Limits", short = 'i', long = "idle-timeout", value_name = "SECS", allow_negative_numbers = true,
          value_parser = parse_idle_secs)]
    pub timeout: Option<Duration>,
}

/// `--drain SECS`: how a server stops on SIGTERM.
#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    /// On SIGTERM, let open sessions finish for at most SECS, then abort them with RST
    /// (0: abort at once). A second SIGTERM, SIGINT or SIGHUP aborts at once.
    #[arg(help_heading = "Limits", long = "drain", value_name = "SECS", default_value = "5", value_parser = parse_drain)]
    pub drain: Duration,
}

/// `--stats-interval SECS`: the totals line every SECS (SIGUSR1 prints it at any time).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StatsArgs {
    /// Print the totals so far every SECS (at least 0.01; as `kill -USR1 PID` does at any
    /// time), where the events go: `sockit: stats: …` on stderr, or a `stats` object with
    /// --json.
    #[arg(help_heading = "Output", long = "stats-interval", value_name = "SECS", value_parser = parse_stats_interval)]
    pub interval: Option<Duration>,
}

/// `--metrics ADDR`: a server's Prometheus endpoint.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (`PORT`, `HOST:PORT`; the host
    /// defaults to 127.0.0.1; port 0 picks one, printed as `listening HOST PORT metrics`).
    #[arg(help_heading = "Output", long = "metrics", value_name = "ADDR")]
    pub metrics: Option<String>,
}

impl MetricsArgs {
    /// The address to bind, if `--metrics` was given (a host name is looked up, the
    /// default host is 127.0.0.1).
    pub fn addr(&self, family: &FamilyArgs) -> sockit::Result<Option<std::net::SocketAddr>> {
        let Some(text) = &self.metrics else {
            return Ok(None);
        };
        let hp = sockit::addr::parse_host_port(std::slice::from_ref(text))
            .map_err(|e| super::bad_address(Some("--metrics"), text, e))?;
        sockit::serve::bind_addr(
            hp.host.as_deref(),
            &hp.port,
            sockit::SockType::Stream,
            &family.addr_rule(false),
        )
        .map(Some)
        .map_err(|e| super::address_error(Some("--metrics"), text, e))
    }
}
