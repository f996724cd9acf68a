//! A benchmark's settings: where the load goes ([`Target`]), what each connection does
//! ([`Mode`]) and how much ([`Config`]), checked before any socket is opened.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest run: the time limit of a run given only a count, and the largest `duration`.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Largest message (ping-pong) or chunk (stream) size in bytes: 16 MiB.
pub const MAX_SIZE: usize = 16 << 20;
/// Largest number of connections.
pub const MAX_CONNECTIONS: usize = 100_000;
/// Shortest per-request timeout: tokio's timer has a 1 ms resolution.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Shortest [`Config::interval`].
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Where the load goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP server (`SOCK_STREAM` over IP).
    Tcp(SocketAddr),
    /// A UDP server: one connected `SOCK_DGRAM` socket per connection.
    Udp(SocketAddr),
    /// A Unix stream socket: a path, or a Linux abstract name (`@name`).
    Unix(crate::unix::UnixAddr),
    /// A Unix datagram socket (`SOCK_DGRAM`): ping-pong as over UDP, from a client socket
    /// bound by Linux autobind so the server can answer it.
    UnixDgram(crate::unix::UnixAddr),
}

impl Target {
    /// The largest message of a datagram target (`None` for a stream): UDP's payload
    /// limit (65,507 bytes over IPv4, 65,527 over IPv6), and for Unix datagrams what
    /// the default socket buffer (212,992 bytes) lets one `send(2)` carry.
    pub fn max_datagram(&self) -> Option<usize> {
        match self {
            Target::Udp(a) => Some(if a.is_ipv4() {
                crate::echo::MAX_UDP_V4
            } else {
                crate::echo::MAX_UDP_V6
            }),
            Target::UnixDgram(_) => Some(crate::echo::MAX_UNIX_DGRAM),
            Target::Tcp(_) | Target::Unix(_) => None,
        }
    }

    /// The server of a run from its address words (`HOST PORT`, `HOST:PORT`, `[V6]:PORT`,
    /// a bare `PORT` meaning 127.0.0.1), looked up once: every connection uses one
    /// address, the first IPv4 one of a name with both families (as nmap and Python's
    /// default `AF_INET` do, and as `echo-server` binds such a name), else the first.
    /// No probe connection is made: a server that serves one client gets only the run's.
    ///
    /// Python: `socket.getaddrinfo(host, port, family, type)`; `numeric` adds
    /// `AI_NUMERICHOST` (no lookup). Returns the target and the name's other addresses.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for bad address
    ///   words, or port 0.
    /// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) when the lookup fails.
    pub fn lookup<S: AsRef<str>>(
        words: &[S],
        udp: bool,
        family: Option<crate::Family>,
        numeric: bool,
    ) -> Result<(Target, Vec<SocketAddr>)> {
        if words.is_empty() {
            return Err(Error::invalid_input(
                "bench",
                "missing address (HOST PORT or --unix PATH)",
            ));
        }
        let hp = crate::addr::parse_host_port(words)?;
        let host = hp.host.as_deref().unwrap_or("127.0.0.1");
        let socktype = if udp {
            crate::SockType::Dgram
        } else {
            crate::SockType::Stream
        };
        let flags = if numeric {
            crate::resolve::AI_NUMERICHOST
        } else {
            0
        };
        let infos = crate::resolve::getaddrinfo(
            Some(host),
            Some(&hp.port),
            family,
            Some(socktype),
            0,
            flags,
        )?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for info in &infos {
            if !addrs.contains(&info.address) {
                addrs.push(info.address);
            }
        }
        let addr = addrs
            .iter()
            .copied()
            .find(SocketAddr::is_ipv4)
            .or_else(|| addrs.first().copied())
            .ok_or_else(|| Error::gai("getaddrinfo", libc::EAI_NONAME))?;
        if addr.port() == 0 {
            return Err(Error::invalid_input(
                "bench",
                "port 0 cannot be benchmarked",
            ));
        }
        addrs.retain(|a| *a != addr);
        let target = if udp {
            Target::Udp(addr)
        } else {
            Target::Tcp(addr)
        };
        Ok((target, addrs))
    }

    /// The transport word of the JSON vocabulary: `tcp`, `udp`, `unix` or `unixgram`.
    pub fn transport(&self) -> Transport {
        match self {
            Target::Tcp(_) => Transport::Tcp,
            Target::Udp(_) => Transport::Udp,
            Target::Unix(_) => Transport::Unix,
            Target::UnixDgram(_) => Transport::Unixgram,
        }
    }

    /// The server as the JSON vocabulary names a peer: (`peer_host`, `peer_port`) for
    /// IP (numeric host, IPv6 without brackets), `peer_path` (the path or `@name`) for
    /// Unix sockets.
    pub fn peer(&self) -> (Option<String>, Option<u16>, Option<String>) {
        match self {
            Target::Tcp(a) | Target::Udp(a) => {
                (Some(crate::addr::host_text(a)), Some(a.port()), None)
            }
            Target::Unix(a) | Target::UnixDgram(a) => (None, None, Some(a.to_string())),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) | Target::Udp(a) => write!(f, "{a}"),
            Target::Unix(a) | Target::UnixDgram(a) => write!(f, "{a}"),
        }
    }
}

/// The kind of socket a run used: JSON `"transport"`, the server core's one word
/// (`tcp`, `udp`, `unix`, `unixgram`). Files saved before the vocabulary said
/// `"protocol"` and `unix-dgram`; both are still read.
pub use crate::serve::Transport;

/// What each connection does; JSON `"mode"`: `"pingpong"` or `"stream"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Send a message, read its echo whole, verify it, repeat (one request in flight).
    PingPong,
    /// Write continuously while reading the echo back (TCP and Unix only).
    Stream,
}

impl Mode {
    /// `"pingpong"` or `"stream"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::PingPong => "pingpong",
            Mode::Stream => "stream",
        }
    }
}

/// A benchmark's settings. [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub target: Target,
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Concurrent connections (UDP: sockets); default 1.
    pub connections: usize,
    /// OS threads, each with a single-threaded tokio runtime; connections are dealt out
    /// round-robin. Default: the number of CPUs this process may run on. Never more
    /// threads than connections are started.
    pub threads: usize,
    /// Message size (ping-pong) or write size (stream), in bytes; default 64.
    pub size: usize,
    /// Measured time (after the warm-up). `None`: 10 s, or with a `count` alone the
    /// time limit [`MAX_DURATION`].
    pub duration: Option<Duration>,
    /// Measured requests in total (UDP: datagrams sent, answered or lost; stream: chunks
    /// written), split evenly over the connections. `None`: as many as fit in the
    /// duration.
    pub count: Option<u64>,
    /// Load before measuring starts; default none.
    pub warmup: Duration,
    /// Open loop: requests per second over all connections, with latency measured from
    /// each request's intended send time. A connection that falls behind (one request
    /// in flight each) sends its overdue requests back to back until the end; requests
    /// due in the measured window that were never sent are counted in
    /// [`Report::unsent`](super::Report::unsent). `None`: closed loop (send as soon as the previous reply is in).
    pub rate: Option<f64>,
    /// Time limit of the whole connect phase (all connections); default 10 s.
    pub connect_timeout: Duration,
    /// Per-request reply timeout, at least [`MIN_TIMEOUT`], counted from the send. UDP:
    /// a datagram with no reply by then is lost (default 200 ms). TCP and Unix: a
    /// request still unanswered by then ends its connection with a `timeout` error
    /// (default 5 s). Stream mode: a connection owed echoed bytes that receives none
    /// for this long (a writer blocked by a server that stopped reading is owed its bytes in
    /// flight) ends with a `timeout`
    /// error (the bytes not back are lost); it also bounds the wait for the echo after
    /// the end.
    pub timeout: Option<Duration>,
    /// Compare echoed bytes with the bytes sent (default true).
    pub verify: bool,
    /// Figures per interval of the measured time ([`Event::Interval`](super::Event)),
    /// at least 10 ms; `None`: none.
    pub interval: Option<Duration>,
    /// Set from outside (a signal handler) to stop the run before its end: requests in
    /// flight are abandoned, the [`Report`](super::Report) is marked `partial` and
    /// stopped by [`StopReason::Stopped`](super::StopReason::Stopped).
    pub stop: Option<Arc<AtomicBool>>,
}

impl Config {
    /// The defaults for a target: ping-pong, 1 connection, 64 bytes, 10 s, no warm-up.
    pub fn new(target: Target) -> Config {
        Config {
            target,
            mode: Mode::PingPong,
            connections: 1,
            threads: default_threads(),
            size: 64,
            duration: None,
            count: None,
            warmup: Duration::ZERO,
            rate: None,
            connect_timeout: Duration::from_secs(10),
            timeout: None,
            verify: true,
            interval: None,
            stop: None,
        }
    }

    /// The per-request timeout in effect (the default depends on the protocol).
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(match self.target {
            Target::Udp(_) | Target::UnixDgram(_) => Duration::from_millis(200),
            _ => Duration::from_secs(5),
        })
    }

    /// The measured time limit in effect.
    pub fn effective_duration(&self) -> Duration {
        match (self.duration, self.count) {
            (Some(d), _) => d,
            (None, Some(_)) => MAX_DURATION,
            (None, None) => Duration::from_secs(10),
        }
    }

    /// Slice `index` (1-based) of `count` of this run, for running one command on each of
    /// `count` machines and merging their results (k6's execution segments): the
    /// connections, the requests of `count` and the `rate` are cut at `k·i/n` so the
    /// slices add up to the whole (slice `i` of `c` connections has
    /// `⌊c·i/n⌋ − ⌊c·(i−1)/n⌋` of them), and each slice's rate is its share of the
    /// connections (every connection keeps the whole run's pace).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for `index` outside
    /// `1..=count`, or a slice with no connection or no request (fewer connections or
    /// requests than slices).
    pub fn shard(&self, index: u64, count: u64) -> Result<Config> {
        let bad = |m: String| Err(Error::invalid_input("bench", m));
        if count == 0 || index == 0 || index > count {
            return bad(format!(
                "shard must be I/N with 1 <= I <= N, not {index}/{count}"
            ));
        }
        let cut =
            |total: u64, i: u64| (u128::from(total) * u128::from(i) / u128::from(count)) as u64;
        let slice = |total: u64| cut(total, index) - cut(total, index - 1);
        let mut c = self.clone();
        let conns = slice(self.connections as u64);
        if conns == 0 {
            return bad(format!(
                "shard {index}/{count} of {} connections has none: give at least {count} connections (-c)",
                self.connections
            ));
        }
        c.connections = conns as usize;
        if let Some(n) = self.count {
            let mine = slice(n);
            if mine == 0 {
                return bad(format!(
                    "shard {index}/{count} of {n} requests has none: give a count of at least {count}"
                ));
            }
            c.count = Some(mine);
        }
        c.rate = self
            .rate
            .map(|r| r * conns as f64 / self.connections as f64);
        Ok(c)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the setting:
    /// connections outside 1..=100,000, zero threads, a size outside 1..=16 MiB (UDP:
    /// 8 (the sequence number) to 65,507 bytes over IPv4, 65,527 over IPv6), a zero or longer-than-an-hour duration,
    /// a zero count, a warm-up over an hour, a rate that is not a positive number up to
    /// 10,000,000/s, a timeout under [`MIN_TIMEOUT`], a zero connect timeout, stream mode
    /// over UDP, or a rate with stream mode.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_input("bench", m));
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return bad(format!(
                "connections must be 1-{MAX_CONNECTIONS}, not {}",
                self.connections
            ));
        }
        if self.threads == 0 {
            return bad("threads must be at least 1".into());
        }
        if self.size == 0 || self.size > MAX_SIZE {
            return bad(format!(
                "size must be 1-{MAX_SIZE} bytes, not {}",
                self.size
            ));
        }
        if let Some(max) = self.target.max_datagram() {
            let what = if let Target::Udp(_) = self.target {
                "a UDP datagram"
            } else {
                "a Unix datagram (Linux's default net.core.wmem_max)"
            };
            if self.size > max {
                return bad(format!(
                    "{what} holds at most {max} bytes, not {}",
                    self.size
                ));
            }
            if self.mode == Mode::Stream {
                return bad(
                    "stream mode needs a stream socket, TCP or Unix (datagrams are ping-pong only)"
                        .into(),
                );
            }
            if self.size < 8 {
                return bad(format!(
                    "datagrams need a size of at least 8 bytes: each carries its 8-byte sequence number (not {})",
                    self.size
                ));
            }
        }
        if let Some(d) = self.duration
            && (d.is_zero() || d > MAX_DURATION)
        {
            return bad(format!(
                "duration must be above 0 and at most {MAX_DURATION:?}"
            ));
        }
        if self.count == Some(0) {
            return bad("count must be at least 1".into());
        }
        if self.warmup > MAX_DURATION {
            return bad(format!("warm-up must be at most {MAX_DURATION:?}"));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0 && r <= 10_000_000.0) {
                return bad(format!(
                    "rate must be above 0 and at most 10000000 per second, not {r}"
                ));
            }
            if self.mode == Mode::Stream {
                return bad("a rate applies to ping-pong, not stream mode".into());
            }
        }
        if let Some(t) = self.timeout
            && t < MIN_TIMEOUT
        {
            return bad(format!(
                "timeout must be at least 0.001 s (1 ms, the timer's resolution), not {t:?}"
            ));
        }
        if let Some(iv) = self.interval
            && !(MIN_INTERVAL..=MAX_DURATION).contains(&iv)
        {
            return bad(format!(
                "interval must be at least 0.01 s and at most {MAX_DURATION:?}, not {iv:?}"
            ));
        }
        if self.connect_timeout.is_zero() {
            return bad("timeouts must be above 0".into());
        }
        Ok(())
    }
}

impl std::fmt::Display for Config {
    /// The settings in one line: `tcp 127.0.0.1:7000 (pingpong): 50 connections over 2
    /// threads, 64 B, 100 requests within 3600.000 s at 1000/s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let threads = self.threads.min(self.connections);
        let s = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            "{} {} ({}): {} connection{} over {threads} thread{}, {} B, ",
            self.target.transport(),
            self.target,
            self.mode.as_str(),
            self.connections,
            s(self.connections),
            s(threads),
            self.size,
        )?;
        if let Some(n) = self.count {
            write!(f, "{n} requests within ")?;
        }
        write!(f, "{:.3} s", self.effective_duration().as_secs_f64())?;
        if let Some(r) = self.rate {
            write!(f, " at {r}/s")?;
        }
        Ok(())
    }
}

/// The number of CPUs this process may run on (its affinity mask), at least 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let t = Target::Udp("127.0.0.1:9".parse().unwrap());
        let mut c = Config::new(t);
        assert!(c.validate().is_ok());
        c.size = 70_000;
        assert!(c.validate().is_err());
        c.size = 64;
        c.mode = Mode::Stream;
        assert!(c.validate().is_err());
        let mut c = Config::new(Target::Tcp("127.0.0.1:9".parse().unwrap()));
        c.rate = Some(f64::NAN);
        assert!(c.validate().is_err());
        c.rate = None;
        c.connections = 0;
        assert!(c.validate().is_err());
        c.connections = 1;
        c.count = Some(0);
        assert!(c.validate().is_err());
        c.count = Some(5);
        assert_eq!(c.effective_duration(), MAX_DURATION);
        // below the timer's resolution a timeout is refused, not rounded up
        c.timeout = Some(Duration::from_micros(10));
        assert!(c.validate().is_err());
        c.timeout = Some(MIN_TIMEOUT);
        assert!(c.validate().is_ok());
    }
}
