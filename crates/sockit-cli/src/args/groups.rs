//! The clap groups shared by the subcommands (flattened into their `Args`): one meaning
//! and one parser per flag everywhere (`-4/-6/-n`, `-v/--json`, `--retry`, socket options,
//! `--proxy`, `--no-splice`). The servers' groups are in [`super::server`], TLS in
//! [`super::tls`].

use std::time::Duration;

use sockit::Family;
use sockit::client::ConnectOptions;

use super::parse::{parse_byte_value, parse_linger, parse_retry_delay};

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

/// `--no-splice`: forward, connect, listen.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct SpliceArgs {
    /// Copy every byte through user space (read/write) instead of moving it with
    /// splice(2), which is used wherever no flag needs the bytes on the way (-x/-o, TLS
    /// and the like copy). For comparisons and tests; -v says which way each session ran.
    #[arg(long = "no-splice")]
    pub no_splice: bool,
}

impl SpliceArgs {
    /// True unless `--no-splice` was given.
    pub fn splice(&self) -> bool {
        !self.no_splice
    }
}
