//! Argument groups shared by several subcommands (flattened into their `Args`).

use std::path::PathBuf;
use std::time::Duration;

use sockit::Family;
use sockit::client::ConnectOptions;

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
    /// SO_LINGER: on close, wait up to SECS (whole seconds) for unsent data (0: reset at once).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_linger)]
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

/// `--linger`: whole seconds, 0 to `i32::MAX` (`struct linger`'s `l_linger` is a C `int`).
fn parse_linger(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|s| *s <= i32::MAX as u32)
        .ok_or_else(|| format!("must be whole seconds, 0-{} (SO_LINGER)", i32::MAX))
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

/// Seconds as a `Duration` (`1`, `0.5`), from 0 to 1e9: the value parser of `-i`, `-q`, `-d`.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, true, 1e9)
}

/// A connect timeout (`-w SECS`): more than 0 and at most 1e9 seconds.
///
/// `-w 0` is refused rather than given a meaning: ncat refuses it too ("must be greater
/// than 0"), OpenBSD nc turns it into a zero-length poll (every connect that is not
/// instant "times out"), and Python's `create_connection(timeout=0)` makes a non-blocking
/// socket whose connect fails with EINPROGRESS. No limit is spelled by leaving `-w` out.
pub fn parse_timeout_secs(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, false, 1e9).map_err(|range| format!("{range} (leave -w out for no limit)"))
}

/// An idle timeout (`-i SECS` of connect, listen, forward): more than 0 and at most 1e9
/// seconds, as echo-server's `--idle-timeout`.
///
/// `-i 0` (or a value that rounds to 0 ns) would drop every connection at once ("idle:
/// timed out"), so it is refused; no limit is spelled by leaving `-i` out. (`-q 0` stays
/// valid: nc's "quit at once after end of stdin"; `-d 0` is no delay between lines.)
pub fn parse_idle_secs(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, false, 1e9).map_err(|range| format!("{range} (leave -i out for no limit)"))
}

/// `-4`, `-6`, `-n`: which family, and whether names may be looked up.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FamilyArgs {
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Numeric addresses only: no name lookups at all (AI_NUMERICHOST).
    #[arg(short = 'n', long = "numeric")]
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

    /// Connect options with these flags and everything else at its default.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            family: self.family(),
            numeric: self.numeric,
            ..Default::default()
        }
    }
}

/// `-v` (repeatable) and `--json`: events and totals.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Print events (connects, accepts, closes, numeric peers) and byte totals on stderr.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print events and errors as JSON objects, one per line (on stderr for connect and
    /// listen, whose stdout carries the data).
    #[arg(long)]
    pub json: bool,
}

impl OutputArgs {
    /// An event printer for these flags.
    pub fn events(&self) -> Events {
        Events {
            verbose: self.verbose,
            json: self.json,
        }
    }
}

/// Prints events on stderr: a text line with `-v`, a JSON object with `--json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Events {
    /// `-v` count.
    pub verbose: u8,
    /// `--json`.
    pub json: bool,
}

impl Events {
    /// Prints one event: `text` (after `sockit: `) with `-v`, `object` with `--json`.
    pub fn emit(&self, text: impl FnOnce() -> String, object: impl FnOnce() -> serde_json::Value) {
        if self.json {
            crate::exit::stderr_line(format_args!("{}", object()));
        } else if self.verbose > 0 {
            crate::exit::stderr_line(format_args!("sockit: {}", text()));
        }
    }

    /// Reports the error that ends the command and returns its exit code: a JSON error
    /// object with `--json`, else `sockit: <error>` (exit::report). A broken pipe on stdout
    /// ends quietly with 0.
    pub fn fail(&self, err: &anyhow::Error) -> std::process::ExitCode {
        if self.json && !crate::exit::is_broken_pipe(err) {
            let mut obj = crate::output::json_error(err);
            obj["event"] = "error".into();
            crate::exit::stderr_line(format_args!("{obj}"));
            return std::process::ExitCode::from(crate::exit::code_for(err));
        }
        crate::exit::report(err)
    }
}

/// The address a server binds among getaddrinfo's answers for its host: the first IPv4
/// one when there is one, as Python's default `AF_INET` socket binds `('localhost', port)`
/// to 127.0.0.1 even where the hosts file lists `::1` first (so IPv4 clients are not
/// refused); else the first. `-6` (a family of `AF_INET6`) leaves only IPv6 answers.
pub fn bind_choice(infos: &[sockit::resolve::AddrInfo]) -> Option<std::net::SocketAddr> {
    infos
        .iter()
        .find(|i| i.address.is_ipv4())
        .or_else(|| infos.first())
        .map(|i| i.address)
}

/// A `bind` error named with the address tried (`bind 127.0.0.1:7000: [Errno 98] Address
/// already in use`); the library's Python text is kept. Other errors pass unchanged.
pub fn name_bind_error(e: sockit::Error, address: &str) -> sockit::Error {
    if e.op() == "bind" {
        e.with_op(format!("bind {address}"))
    } else {
        e
    }
}

/// A sockit error for a local output that went away (EPIPE on stdout): a quiet end.
pub fn is_local_broken_pipe(err: &sockit::Error) -> bool {
    err.op() == "write" && err.is_errno(libc::EPIPE)
}

/// Builds the tokio runtime the netcat-style commands run on (one thread: the work is
/// I/O bound; stdin and stdout use tokio's blocking pool).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Data handling on connect and listen: `-C`, `-d SECS`, `--send-only`, `--recv-only`,
/// `-x FILE`, `-o FILE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DataArgs {
    /// CRLF line endings: each "\n" of stdin is sent as "\r\n".
    #[arg(short = 'C', long = "crlf")]
    pub crlf: bool,
    /// Delay between lines sent, in seconds.
    #[arg(short = 'd', long = "delay", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub delay: Option<Duration>,
    /// Only send: what the peer sends is read and discarded.
    #[arg(long = "send-only", conflicts_with = "recv_only")]
    pub send_only: bool,
    /// Only receive: stdin is not read and nothing is sent (no half-close either).
    #[arg(long = "recv-only")]
    pub recv_only: bool,
    #[command(flatten)]
    pub log: TrafficLogArgs,
}

/// Boxed local input of a relay (stdin, possibly transformed).
pub type LocalIn = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
/// Boxed local output of a relay (stdout, or a sink).
pub type LocalOut = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

impl DataArgs {
    /// Wraps the local input and output as the flags say: `--recv-only` never reads `input`
    /// (an input that never ends), `--send-only` discards the output, `-C` / `-d` rewrite
    /// and pace the input line by line (in a task feeding a pipe).
    pub fn wrap(&self, input: LocalIn, output: LocalOut) -> (LocalIn, LocalOut) {
        let output: LocalOut = if self.send_only {
            Box::new(tokio::io::sink())
        } else {
            output
        };
        if self.recv_only {
            return (Box::new(Never), output);
        }
        if !self.crlf && self.delay.is_none() {
            return (input, output);
        }
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (crlf, delay) = (self.crlf, self.delay);
        tokio::spawn(lines(input, ours, crlf, delay));
        (Box::new(theirs), output)
    }

    /// Opens the `-x` / `-o` files, as a relay tap of one unlabelled session (None when
    /// neither was given); a write error is handled as [`TrafficLogArgs::shared`] says.
    pub fn tap(&self) -> sockit::Result<Option<sockit::dump::SessionTap>> {
        Ok(self.log.shared()?.map(|l| l.tap(None)))
    }
}

/// Copies `input` to `out` line by line: "\n" becomes "\r\n" with `crlf` (a "\r\n" stays
/// as it is), and `delay` passes between two lines. Ends (closing `out`) at end of input
/// or when the reader of `out` is gone.
async fn lines(
    mut input: LocalIn,
    mut out: tokio::io::DuplexStream,
    crlf: bool,
    delay: Option<Duration>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut last_was_cr = false;
    let mut sent_a_line = false;
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if crlf && !last_was_cr {
                    line.push(b'\r');
                }
                line.push(b'\n');
                if let Some(d) = delay
                    && sent_a_line
                {
                    tokio::time::sleep(d).await;
                }
                if out.write_all(&line).await.is_err() {
                    return;
                }
                line.clear();
                sent_a_line = true;
            } else {
                line.push(b);
            }
            last_was_cr = b == b'\r';
        }
        // Without a delay, a partial line goes out at once (interactive use).
        if delay.is_none() && !line.is_empty() {
            if out.write_all(&line).await.is_err() {
                return;
            }
            line.clear();
        }
    }
    if !line.is_empty() {
        if let Some(d) = delay
            && sent_a_line
        {
            tokio::time::sleep(d).await;
        }
        let _ = out.write_all(&line).await;
    }
    let _ = out.shutdown().await;
}

/// An input that never yields a byte and never ends (`--recv-only`).
struct Never;

impl tokio::io::AsyncRead for Never {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod data_tests {
    use super::*;

    async fn through(input: &'static [u8], crlf: bool) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let args = DataArgs {
            crlf,
            ..Default::default()
        };
        let (mut r, _) = args.wrap(Box::new(input), Box::new(tokio::io::sink()));
        let mut v = Vec::new();
        r.read_to_end(&mut v).await.unwrap();
        v
    }

    #[tokio::test]
    async fn crlf_turns_lf_into_crlf_once() {
        assert_eq!(through(b"a\nb\r\nc", true).await, b"a\r\nb\r\nc");
        assert_eq!(through(b"a\nb\n", false).await, b"a\nb\n");
    }
}

/// TLS for `connect` (ncat's `--ssl`): the server's certificate is verified by default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsClientArgs {
    /// Speak TLS (rustls) over the TCP connection; the certificate is verified against the
    /// system's roots and the host name.
    #[arg(long = "tls")]
    pub tls: bool,
    /// With --tls: trust the CA certificates in this PEM file instead of the system's.
    #[arg(long = "cacert", value_name = "FILE", requires = "tls")]
    pub cacert: Option<PathBuf>,
    /// With --tls: do not verify the server's certificate. Dangerous.
    #[arg(long = "insecure", requires = "tls")]
    pub insecure: bool,
    /// With --tls: present this client certificate chain (PEM) when the server asks for
    /// one (mutual TLS); needs --key.
    #[arg(long = "cert", value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With --cert: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "key", value_name = "FILE", requires = "cert")]
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
    /// The client configuration when --tls was given (warning on stderr for --insecure).
    pub fn config(
        &self,
    ) -> sockit::Result<Option<std::sync::Arc<sockit::tls::rustls::ClientConfig>>> {
        if !self.tls {
            return Ok(None);
        }
        if self.insecure {
            crate::exit::stderr_line(format_args!(
                "sockit: warning: --insecure: the server's certificate is not verified; \
                 anyone on the path can read and change this connection"
            ));
        }
        let (config, _) = sockit::tls::client_config(&sockit::tls::ClientOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            alpn: Vec::new(),
            identity: identity(&self.cert, &self.key),
        })?;
        Ok(Some(config))
    }
}

/// TLS for `listen` (ncat's `--ssl --ssl-cert --ssl-key`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsServerArgs {
    /// Speak TLS (rustls) with each client; needs --cert and --key.
    #[arg(long = "tls", requires_all = ["cert", "key"])]
    pub tls: bool,
    /// With --tls: the server's certificate chain (PEM).
    #[arg(long = "cert", value_name = "FILE", requires = "tls")]
    pub cert: Option<PathBuf>,
    /// With --tls: the server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "key", value_name = "FILE", requires = "tls")]
    pub key: Option<PathBuf>,
    /// With --tls: require a client certificate that chains to a CA certificate in this
    /// PEM file (mutual TLS); clients without one fail their handshake.
    #[arg(long = "cacert", value_name = "FILE", requires = "tls")]
    pub cacert: Option<PathBuf>,
}

impl TlsServerArgs {
    /// The server configuration when --tls was given.
    pub fn config(
        &self,
    ) -> sockit::Result<Option<std::sync::Arc<sockit::tls::rustls::ServerConfig>>> {
        match (self.tls, &self.cert, &self.key) {
            (true, Some(cert), Some(key)) => Ok(Some(sockit::tls::server_config(
                cert,
                key,
                &[],
                self.cacert.as_deref(),
            )?)),
            (true, _, _) => Err(sockit::Error::invalid_input(
                "tls",
                "--tls needs --cert FILE and --key FILE",
            )),
            _ => Ok(None),
        }
    }
}

/// The refusal for --tls over anything but TCP.
pub fn tls_needs_tcp() -> sockit::Error {
    sockit::Error::invalid_input("tls", "--tls needs a TCP connection (not -u or --unix)")
}

/// Seconds within one flag's valid range: from 0 (`zero_ok`) or more than 0 (a value that
/// rounds to 0 ns counts as 0), up to `max`. Every refusal (not a number, NaN, infinite,
/// negative, too large) gets the same text stating that range once; clap puts the flag
/// and the value as typed before it.
pub fn parse_secs_in(text: &str, zero_ok: bool, max: f64) -> Result<Duration, String> {
    let max_text = if max >= 1e6 {
        format!("{max:e}")
    } else {
        format!("{max}")
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=max).contains(s))
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| zero_ok || !d.is_zero())
        .ok_or_else(|| {
            let range = if zero_ok {
                format!("must be at least 0 and at most {max_text} seconds")
            } else {
                format!("must be more than 0 and at most {max_text} seconds")
            };
            // A positive value under a nanosecond rounds to 0: say where the floor is.
            match text.trim().parse::<f64>() {
                Ok(s) if !zero_ok && s > 0.0 && s < 1e-9 => {
                    format!("{range}; the smallest is 1e-9 (1 ns)")
                }
                _ => range,
            }
        })
}

#[cfg(test)]
mod secs_tests {
    use super::*;

    #[test]
    fn one_message_states_the_range() {
        let more = "must be more than 0 and at most 3600 seconds";
        for bad in ["0", "-1", "NaN", "inf", "1e300", "x", "", "3600.5"] {
            assert_eq!(parse_secs_in(bad, false, 3600.0), Err(more.into()), "{bad}");
        }
        assert_eq!(
            parse_secs_in("1e-12", false, 3600.0),
            Err(format!("{more}; the smallest is 1e-9 (1 ns)"))
        );
        assert_eq!(
            parse_secs_in("1.5", false, 3600.0),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(parse_secs_in("0", true, 3600.0), Ok(Duration::ZERO));
        assert_eq!(
            parse_secs_in("1e30", true, 3600.0),
            Err("must be at least 0 and at most 3600 seconds".into())
        );
        assert_eq!(
            parse_secs_in("-1", false, 1e9),
            Err("must be more than 0 and at most 1e9 seconds".into())
        );
    }
}
