//! Argument groups shared by several subcommands (flattened into their `Args`).

use std::path::PathBuf;
use std::time::Duration;

/// Socket options (`--nodelay`, `--ttl N` …): connect, listen, forward.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SocketOptArgs {
    /// TCP_NODELAY: send small writes at once (no Nagle delay).
    #[arg(long)]
    pub nodelay: bool,
    /// SO_KEEPALIVE: probe idle connections.
    #[arg(long)]
    pub keepalive: bool,
    /// IP_TTL / IPV6_UNICAST_HOPS (1-255).
    #[arg(long, value_name = "N")]
    pub ttl: Option<u32>,
    /// IP_TOS / IPV6_TCLASS (0-255, decimal or 0x hex).
    #[arg(long, value_name = "N", value_parser = parse_byte_value)]
    pub tos: Option<u32>,
    /// SO_RCVBUF in bytes (Linux doubles it and caps it at net.core.rmem_max).
    #[arg(long, value_name = "BYTES")]
    pub rcvbuf: Option<usize>,
    /// SO_SNDBUF in bytes (Linux doubles it and caps it at net.core.wmem_max).
    #[arg(long, value_name = "BYTES")]
    pub sndbuf: Option<usize>,
    /// SO_REUSEPORT: let several sockets bind the same port.
    #[arg(long)]
    pub reuseport: bool,
    /// SO_LINGER: on close, wait up to SECS for unsent data (0: reset at once).
    #[arg(long, value_name = "SECS")]
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

/// `0x10` or `16`.
fn parse_byte_value(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    };
    parsed.map_err(|_| format!("not a number: {text:?} (decimal or 0x hex)"))
}

/// Traffic logs (`-x FILE`, `-o FILE`): connect, listen, forward.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrafficLogArgs {
    /// Hex dump of both directions to FILE (offsets, direction marks >/<, timestamps).
    #[arg(short = 'x', long = "hex-dump", value_name = "FILE")]
    pub hex_dump: Option<PathBuf>,
    /// Raw log of both directions to FILE (the bytes as they passed).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl TrafficLogArgs {
    /// Creates the files asked for.
    pub fn open(&self) -> sockit::Result<sockit::dump::TrafficLog> {
        sockit::dump::TrafficLog::create(self.hex_dump.as_deref(), self.output.as_deref())
    }
}

/// Seconds as a `Duration` (`1`, `0.5`): the value parser of `-w`, `-i`, `-q`, `-d`.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("not a number of seconds: {text:?}"))?;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("seconds must be 0-1e9, not {text}"));
    }
    Ok(Duration::from_secs_f64(secs))
}
