//! The clap groups shared by the subcommands (flattened into their `Args`): one meaning
//! and one parser per flag everywhere (`-4/-6/-n`, `-v/--json`, `--max-conns`, `-i`,
//! `--drain`, `--allow/--deny`, socket options, traffic logs, TLS).

use std::path::PathBuf;
use std::time::Duration;

use sockit::Family;
use sockit::client::ConnectOptions;

use super::parse::{
    parse_byte_value, parse_drain, parse_idle_secs, parse_linger, parse_max_conns,
    parse_retry_delay, parse_stats_interval,
};

/// Socket options (`--nodelay`, `--ttl N` …): connect, listen, forward.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SocketOptArgs {
    /// TCP_NODELAY: send small writes at once (no Nagle delay).
    #[arg(help_heading = "Connection", long)]
    pub nodelay: bool,
    /// SO_KEEPALIVE: probe idle connections.
    #[arg(help_heading = "Connection", long)]
    pub keepalive: bool,
    /// IP_TTL / IPV6_UNICAST_HOPS (1-255).
    #[arg(help_heading = "Connection", long, value_name = "N")]
    pub ttl: Option<u32>,
    /// IP_TOS / IPV6_TCLASS (0-255, decimal or 0x hex).
    #[arg(help_heading = "Connection", long, value_name = "N", value_parser = parse_byte_value)]
    pub tos: Option<u32>,
    /// SO_RCVBUF in bytes (Linux doubles it and caps it at net.core.rmem_max).
    #[arg(help_heading = "Connection", long, value_name = "BYTES")]
    pub rcvbuf: Option<usize>,
    /// SO_SNDBUF in bytes (Linux doubles it and caps it at net.core.wmem_max).
    #[arg(help_heading = "Connection", long, value_name = "BYTES")]
    pub sndbuf: Option<usize>,
    /// SO_REUSEPORT: let several sockets bind the same port.
    #[arg(help_heading = "Connection", long)]
    pub reuseport: bool,
    /// SO_LINGER: on close, wait up to SECS (whole seconds) for unsent data (0: reset at once).
    #[arg(help_heading = "Connection", long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_linger)]
    pub linger: Option<u32>,
}

impl SocketOptArgs {
    /// The library's option set.
    pub fn options(&self) -> sockit::sockopt::SocketOptions {
        sockit::sockopt::SocketOptions {
            nodelay: self.nodelay,
            keepalive: self.keepalive,
            ttl: self.ttl,
            tos: self.tos,
            rcvbuf: self.rcvbuf,
            sndbuf: self.sndbuf,
            reuseport: self.reuseport,
            linger: self.linger.map(|s| Duration::from_secs(u64::from(s))),
        }
    }
}

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

/// `--retry N`, `--retry-delay SECS`: try a failed connect again, with exponential
/// back-off (forward: each session's target; connect).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RetryArgs {
    /// When a connect fails (refused, unreachable, timed out), try again up to N more
    /// times (0-1000), waiting --retry-delay, doubled each time, at most 30 s.
    #[arg(help_heading = "Connection", long = "retry", value_name = "N", default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<u32>::new()
              .range(0..=u64::from(sockit::retry::MAX_RETRIES)))]
    pub retries: u32,
    /// With --retry: the wait before the first retry (0.01-30 s, default 1).
    #[arg(help_heading = "Connection", id = "retry_delay", long = "retry-delay", value_name = "SECS", requires = "retries",
          value_parser = parse_retry_delay)]
    pub delay: Option<Duration>,
}

impl RetryArgs {
    /// The library's retry rule.
    pub fn retry(&self) -> sockit::Result<sockit::retry::Retry> {
        sockit::retry::Retry::new(
            self.retries,
            self.delay.unwrap_or(sockit::retry::DEFAULT_DELAY),
        )
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

/// `-4`, `-6`, `-n`: which family, and whether names may be looked up.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FamilyArgs {
    /// IPv4 only.
    #[arg(help_heading = "Connection", short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(help_heading = "Connection", short = '6')]
    pub ipv6: bool,
    /// Numeric addresses only: no name lookups at all (AI_NUMERICHOST).
    #[arg(help_heading = "Connection", short = 'n', long = "numeric")]
    pub numeric: bool,
}

impl FamilyArgs {
    /// The family `-4`/`-6` ask for, `None` for AF_UNSPEC.
    pub fn family(&self) -> Option<Family> {
        if self.ipv4 {
            Some(Family::Inet)
        } else if self.ipv6 {
            Some(Family::Inet6)
        } else {
            None
        }
    }

    /// The servers' address rule with these flags (`dual_stack` for `--dual-stack`).
    pub fn addr_rule(&self, dual_stack: bool) -> sockit::serve::AddrRule {
        sockit::serve::AddrRule {
            family: self.family(),
            numeric: self.numeric,
            dual_stack,
        }
    }

    /// Connect options with these flags and everything else at its default.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            family: self.family(),
            numeric: self.numeric,
            ..Default::default()
        }
    }
}

/// `--proxy HOST[:PORT]`, `--proxy-type`, `--proxy-auth`, `--proxy-dns`: reach the peer
/// (connect) or the target (forward) through a SOCKS4/4a, SOCKS5 or HTTP CONNECT proxy,
/// with ncat's flags and defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProxyArgs {
    /// Go through the proxy at HOST[:PORT] (default port 1080 for SOCKS, 3128 for HTTP;
    /// an IPv6 address with a port in brackets: [::1]:1080). TCP only.
    #[arg(
        help_heading = "Connection",
        long = "proxy",
        value_name = "HOST[:PORT]"
    )]
    pub proxy: Option<String>,
    /// The proxy's protocol: socks4 (names go as SOCKS4a), socks5 or http (CONNECT;
    /// the default, as in ncat).
    #[arg(help_heading = "Connection", long = "proxy-type", value_name = "TYPE", requires = "proxy",
          value_parser = ["socks4", "socks5", "http"])]
    pub proxy_type: Option<String>,
    /// Credentials for the proxy: USER:PASS (SOCKS5 username/password, HTTP Basic), or
    /// USER (SOCKS4's user id).
    #[arg(
        help_heading = "Connection",
        long = "proxy-auth",
        value_name = "USER[:PASS]",
        requires = "proxy"
    )]
    pub proxy_auth: Option<String>,
    /// Where the target's name is resolved: remote (by the proxy; the default, no lookup
    /// here), local (here; an error if it fails), both (here, else by the proxy), none
    /// (numeric targets only).
    #[arg(help_heading = "Connection", long = "proxy-dns", value_name = "WHERE", requires = "proxy",
          value_parser = ["local", "remote", "both", "none"])]
    pub proxy_dns: Option<String>,
}

impl ProxyArgs {
    /// The proxy asked for, if any.
    ///
    /// # Errors
    /// [`sockit::ErrorKind::InvalidInput`] for a proxy address or credentials that do not
    /// parse.
    pub fn proxy(&self) -> sockit::Result<Option<sockit::proxy::client::Proxy>> {
        use sockit::proxy::client::{Proxy, ProxyDns, ProxyType};
        let Some(text) = &self.proxy else {
            return Ok(None);
        };
        let kind: ProxyType = self.proxy_type.as_deref().unwrap_or("http").parse()?;
        let bad = |m: &str| sockit::Error::invalid_input("proxy", format!("{m}: {text:?}"));
        // `http://HOST:PORT` (as curl takes it) would be looked up as the host "http".
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(bad(&format!(
                "--proxy takes HOST[:PORT], not a {scheme}:// URL (the type goes in \
                 --proxy-type)"
            )));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (h.to_string(), sockit::Port::Number(kind.default_port())),
                a => {
                    let p = a.strip_prefix(':').ok_or_else(|| bad("text after ']'"))?;
                    (h.to_string(), sockit::Port::parse(p)?)
                }
            }
        } else if text.matches(':').count() == 1 {
            let hp = sockit::addr::parse_host_port(&[text])?;
            (hp.host.unwrap_or_default(), hp.port)
        } else {
            // A name, an IPv4 address, or a bare IPv6 address: the default port.
            (text.clone(), sockit::Port::Number(kind.default_port()))
        };
        if host.is_empty() {
            return Err(bad("empty proxy host"));
        }
        let mut proxy = Proxy::new(kind, host, port);
        proxy.dns = match &self.proxy_dns {
            Some(d) => d.parse::<ProxyDns>()?,
            None => ProxyDns::default(),
        };
        proxy.auth = self
            .proxy_auth
            .as_deref()
            .map(sockit::proxy::Credentials::parse)
            .transpose()?;
        Ok(Some(proxy))
    }
}

/// `-v` (repeatable) and `--json`: events and totals.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Print events (connects, accepts, closes, numeric peers) and byte totals on stderr.
    #[arg(help_heading = "Output", short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print events and errors as JSON objects, one per line (on stderr for connect and
    /// listen, whose stdout carries the data).
    #[arg(help_heading = "Output", long)]
    pub json: bool,
}

/// A sockit error for a local output that went away (EPIPE on stdout): a quiet end.
pub fn is_local_broken_pipe(err: &sockit::Error) -> bool {
    err.op() == "write" && err.is_errno(libc::EPIPE)
}

/// TLS for `connect` (ncat's `--ssl`): the server's certificate is verified by default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsClientArgs {
    /// Speak TLS (rustls) over the TCP connection; the certificate is verified against the
    /// system's roots and the host name.
    #[arg(help_heading = "TLS", long = "tls")]
    pub tls: bool,
    /// With --tls: trust the CA certificates in this PEM file instead of the system's.
    #[arg(
        help_heading = "TLS",
        long = "cacert",
        value_name = "FILE",
        requires = "tls"
    )]
    pub cacert: Option<PathBuf>,
    /// With --tls: do not verify the server's certificate. Dangerous.
    #[arg(help_heading = "TLS", long = "insecure", requires = "tls")]
    pub insecure: bool,
    /// With --tls: present this client certificate chain (PEM) when the server asks for
    /// one (mutual TLS); needs --key.
    #[arg(help_heading = "TLS", long = "cert", value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With --cert: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        help_heading = "TLS",
        long = "key",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,
}

/// The client identity of `--cert FILE --key FILE` (clap makes each need the other).
pub fn identity(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<sockit::tls::Identity> {
    Some(sockit::tls::Identity {
        cert: cert.clone()?,
        key: key.clone()?,
    })
}

impl TlsClientArgs {
    /// The client configuration when --tls was given (a `warning` event for --insecure).
    pub fn config(
        &self,
        reporter: &crate::report::Reporter,
    ) -> sockit::Result<Option<std::sync::Arc<sockit::tls::rustls::ClientConfig>>> {
        if !self.tls {
            return Ok(None);
        }
        if self.insecure {
            reporter.warn_on_stderr(
                "--insecure: the server's certificate is not verified; \
                 anyone on the path can read and change this connection"
                    .into(),
            );
        }
        let (config, _) = sockit::tls::client_config(&sockit::tls::ClientOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            alpn: Vec::new(),
            identity: identity(&self.cert, &self.key),
        })
        .map_err(|e| {
            flag_named(
                e,
                &[
                    ("cacert", self.cacert.as_deref()),
                    ("cert", self.cert.as_deref()),
                    ("key", self.key.as_deref()),
                ],
            )
        })?;
        Ok(Some(config))
    }
}

/// TLS for `listen` (ncat's `--ssl --ssl-cert --ssl-key`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsServerArgs {
    /// Speak TLS (rustls) with each client, presenting --cert/--key; without them an
    /// ephemeral self-signed certificate made at start, its SHA-256 fingerprint printed on
    /// stderr.
    #[arg(help_heading = "TLS", long = "tls")]
    pub tls: bool,
    /// With --tls: the server's certificate chain (PEM); needs --key.
    #[arg(help_heading = "TLS", long = "cert", value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With --tls: the server's private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --cert.
    #[arg(help_heading = "TLS", long = "key", value_name = "FILE", requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// With --tls: require a client certificate that chains to a CA certificate in this
    /// PEM file (mutual TLS); clients without one fail their handshake.
    #[arg(
        help_heading = "TLS",
        long = "cacert",
        value_name = "FILE",
        requires = "tls"
    )]
    pub cacert: Option<PathBuf>,
}

impl TlsServerArgs {
    /// The server configuration when --tls was given (see [`server_tls_config`]), for a
    /// listener on `listen_host`.
    pub fn config(
        &self,
        listen_host: Option<&str>,
        reporter: &crate::report::Reporter,
    ) -> sockit::Result<Option<std::sync::Arc<sockit::tls::rustls::ServerConfig>>> {
        if !self.tls {
            return Ok(None);
        }
        let names: Vec<String> = listen_host.map(str::to_string).into_iter().collect();
        server_tls_config(
            self.cert.as_deref(),
            self.key.as_deref(),
            self.cacert.as_deref(),
            &names,
            reporter,
        )
        .map(Some)
    }
}

/// An error about one of the files of `files` (its operation is the file's path) names
/// the flag that gave it, as `allowfile FILE: …` does: `cacert /x: [Errno 2] …`.
fn flag_named(e: sockit::Error, files: &[(&str, Option<&std::path::Path>)]) -> sockit::Error {
    for (flag, path) in files {
        if let Some(p) = path
            && e.op() == p.display().to_string()
        {
            let op = format!("{flag} {}", p.display());
            return e.with_op(op);
        }
    }
    e
}

/// The names an ephemeral certificate is made for: `localhost`, 127.0.0.1 and ::1, and
/// `extra` (a listen host; not an unspecified address such as 0.0.0.0, which no client
/// connects to, nor a zone's `%` suffix).
pub fn ephemeral_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for e in extra {
        let e = e.trim_start_matches('[').trim_end_matches(']');
        let e = e.split('%').next().unwrap_or(e).to_string();
        let unspecified = e
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if !e.is_empty() && !unspecified && !names.contains(&e) {
            names.push(e);
        }
    }
    names
}

/// A TLS server's configuration: from the `--cert`/`--key` files, or, with neither, an
/// ephemeral self-signed certificate for [`ephemeral_names`] of `names` (valid for the
/// whole run), whose SHA-256 fingerprint is printed on stderr in `openssl x509
/// -fingerprint -sha256`'s format so a client can compare it (the `certificate` event,
/// a person's to see). `client_ca`: mutual TLS.
pub fn server_tls_config(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
    client_ca: Option<&std::path::Path>,
    names: &[String],
    reporter: &crate::report::Reporter,
) -> sockit::Result<std::sync::Arc<sockit::tls::rustls::ServerConfig>> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            sockit::tls::server_config(cert, key, &[], client_ca).map_err(|e| {
                flag_named(
                    e,
                    &[
                        ("cert", Some(cert)),
                        ("key", Some(key)),
                        ("cacert", client_ca),
                    ],
                )
            })
        }
        (None, None) => {
            let names = ephemeral_names(names);
            let e = sockit::tls::Ephemeral::generate(&names)?;
            reporter.tell(&sockit::serve::Event::Certificate {
                sha256_fingerprint: e.fingerprint(),
                names,
            });
            e.server_config(&[], client_ca)
                .map_err(|e| flag_named(e, &[("cacert", client_ca)]))
        }
        _ => Err(sockit::Error::invalid_input(
            "tls",
            "--cert FILE and --key FILE go together",
        )),
    }
}

/// The refusal for --tls over anything but TCP.
pub fn tls_needs_tcp() -> sockit::Error {
    sockit::Error::invalid_input("tls", "--tls needs a TCP connection (not -u or --unix)")
}

/// `--no-splice`: forward, connect, listen.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct SpliceArgs {
    /// Copy every byte through user space (read/write) instead of moving it with
    /// splice(2), which is used where no -x/-o/-C/-d/TLS needs the bytes (for comparisons
    /// and tests; -v says which way each session ran).
    #[arg(long = "no-splice")]
    pub no_splice: bool,
}

impl SpliceArgs {
    /// True unless `--no-splice` was given.
    pub fn splice(&self) -> bool {
        !self.no_splice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ephemeral_certificate_names_the_listen_host() {
        // Regression: the listen host (127.0.0.2, an IPv6 address) was missing from the SAN.
        let names = |h: &str| ephemeral_names(&[h.to_string()]);
        assert_eq!(
            names("127.0.0.2"),
            ["localhost", "127.0.0.1", "::1", "127.0.0.2"]
        );
        assert_eq!(names("[2001:db8::1]")[3], "2001:db8::1");
        assert_eq!(names("fe80::1%lo")[3], "fe80::1");
        for same in ["0.0.0.0", "::", "[::]", "127.0.0.1", "[::1]", "localhost"] {
            assert_eq!(names(same).len(), 3, "{same}");
        }
        assert_eq!(names("host.example")[3], "host.example");
        assert_eq!(ephemeral_names(&[]).len(), 3);
    }
}
