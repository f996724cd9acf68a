//! `sockit http`: one HTTP request over a plain or TLS socket, with the exact bytes and
//! phase timings. Its flags are curl's letters (DESIGN.md).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use sockit::http::{self, Event, Exchange, Request, ResponseHead, Url, Version};
use sockit::{Error, ErrorKind, Family};

/// Arguments of `sockit http` (boxed: the options are many, and the subcommand enum stays
/// small).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The options.
    #[command(flatten)]
    pub opts: Box<Opts>,
}

/// The options of `sockit http`: curl's letters.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  sockit http http://127.0.0.1:8000/\n  \
    sockit http -i -L https://example.com/\n  \
    sockit http -X POST -H 'Content-Type: application/json' --data '{\"a\":1}' http://[::1]:8080/api\n  \
    sockit http --raw-request get.txt --show-request http://127.0.0.1:8000/\n  \
    sockit http --json https://localhost:8443/ --cacert ca.pem")]
pub struct Opts {
    /// http://HOST[:PORT]/PATH or https://…; a URL without scheme is http://. IPv6 in brackets.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Request method (default GET, or POST with --data, HEAD with -I).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,

    /// Extra header 'Name: value' (repeatable); 'Name:' removes a default header.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,

    /// Request body text (sent as is, with Content-Length).
    #[arg(
        short = 'd',
        long = "data",
        value_name = "TEXT",
        conflicts_with = "data_file"
    )]
    pub data: Option<String>,

    /// Request body from a file's bytes, or `-` for stdin.
    #[arg(long = "data-file", value_name = "FILE")]
    pub data_file: Option<PathBuf>,

    /// Print the response head (status line and headers) before the body.
    #[arg(short = 'i', long = "include")]
    pub include: bool,

    /// Send HEAD and print the response head only.
    #[arg(short = 'I', long = "head", conflicts_with_all = ["data", "data_file"])]
    pub head: bool,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(short = 'L', long = "location")]
    pub location: bool,

    /// Most redirects followed with -L.
    #[arg(long = "max-redirs", value_name = "N", default_value_t = 10)]
    pub max_redirs: u32,

    /// Write the body (and the head with -i) to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Show connection events, both directions of the exchange and timings on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Connect timeout in seconds (name lookup and connect, all addresses).
    #[arg(short = 'w', long = "connect-timeout", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub connect_timeout: Option<Duration>,

    /// Limit for the whole exchange in seconds.
    #[arg(short = 'm', long = "max-time", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub max_time: Option<Duration>,

    /// Send an HTTP/1.0 request.
    #[arg(short = '0', long = "http1.0")]
    pub http10: bool,

    /// Send FILE's bytes exactly as the request (`-` for stdin) and print the answer's bytes.
    #[arg(
        long = "raw-request",
        value_name = "FILE",
        conflicts_with_all = ["method", "headers", "data", "data_file", "head", "http10", "location", "include"]
    )]
    pub raw_request: Option<PathBuf>,

    /// Print the exact request bytes before the answer (on stdout; stderr with --json).
    #[arg(long = "show-request")]
    pub show_request: bool,

    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long = "cacert", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Present this client certificate chain (PEM) when the server asks for one (mutual
    /// TLS; curl's -E/--cert, without curl's `:password`); needs --key.
    #[arg(short = 'E', long = "cert", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// With --cert: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "key", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Do not verify the server's certificate (curl's -k). Dangerous.
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,

    /// Exit 7 without printing the body when the status is 4xx or 5xx.
    #[arg(short = 'f', long = "fail")]
    pub fail: bool,

    /// Print one JSON object (status, headers, sizes, timings in microseconds) on stdout;
    /// the body goes only to -o FILE.
    #[arg(long = "json")]
    pub json: bool,

    /// IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
}

/// Seconds as a number in (0, 1e9] (fractions allowed).
fn parse_secs(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, false, 1e9)
}

/// Runs `sockit http`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let args = *args.opts;
    match fetch(&args) {
        Ok(code) => Ok(code),
        Err(err) => {
            if args.json && !crate::exit::is_broken_pipe(&err) {
                // The URL that failed (a redirect's, with -L) and the limit that expired,
                // as stderr says them.
                let at = err.downcast_ref::<FailedAt>();
                let mut error = crate::output::json_error(&err);
                if let (Some(limit), Some(m)) = (
                    at.and_then(|a| a.limit.as_ref()),
                    error["message"].as_str().map(str::to_owned),
                ) {
                    error["message"] = format!("{limit} expired: {m}").into();
                }
                let url = at.map_or_else(|| args.url.to_string(), |a| a.url.clone());
                let obj = json!({"url": url, "error": error});
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{obj}");
                let _ = out.flush();
            }
            Err(err)
        }
    }
}

/// Where the answer goes: stdout, or the -o file.
fn open_output(args: &Opts) -> anyhow::Result<Box<dyn Write>> {
    Ok(match &args.output {
        Some(path) => Box::new(BufWriter::new(File::create(path).map_err(|e| {
            anyhow::Error::new(Error::from_io(path.display().to_string(), e))
                .context("cannot write the output file")
        })?)),
        None if args.json => Box::new(io::sink()),
        None => Box::new(BufWriter::new(io::stdout())),
    })
}

fn read_input(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| Error::from_io("stdin", e))
            .with_context(|| format!("cannot read {what}"))?;
        return Ok(buf);
    }
    // held in memory to be sent with its Content-Length: at most 1 GiB (`/dev/zero` is
    // refused, not read until memory runs out)
    sockit::files::read_capped(path, 1 << 30, None, "request file")
        .with_context(|| format!("cannot read {what}"))
}

/// The TLS client configuration, built once when the first https:// URL needs it.
struct TlsSetup {
    config: Option<Arc<sockit::tls::rustls::ClientConfig>>,
}

impl TlsSetup {
    fn get(&mut self, args: &Opts) -> anyhow::Result<Arc<sockit::tls::rustls::ClientConfig>> {
        if let Some(c) = &self.config {
            return Ok(c.clone());
        }
        let (config, source) = sockit::tls::client_config(&sockit::tls::ClientOptions {
            cacert: args.cacert.clone(),
            insecure: args.insecure,
            alpn: vec![sockit::tls::ALPN_HTTP1.to_vec()],
            identity: crate::args::identity(&args.cert, &args.key),
        })
        .context("cannot set up TLS")?;
        if args.verbose {
            let text = match source {
                sockit::tls::RootsSource::System(n) => {
                    format!("the system's certificate store ({n} roots)")
                }
                sockit::tls::RootsSource::Webpki(n) => {
                    format!("the bundled webpki roots ({n}; the system has none)")
                }
                sockit::tls::RootsSource::CaFile(p, n) => {
                    format!("{} ({n} certificates)", p.display())
                }
                sockit::tls::RootsSource::Insecure => "nothing (--insecure)".to_string(),
            };
            crate::exit::stderr_line(format_args!("* trusting {text}"));
        }
        self.config = Some(config.clone());
        Ok(config)
    }
}

fn fetch(args: &Opts) -> anyhow::Result<ExitCode> {
    let mut url = Url::parse(&args.url)?;
    if args.insecure {
        crate::exit::stderr_line(format_args!(
            "sockit: warning: --insecure: the server's certificate is not verified; \
             anyone on the path can read and change this exchange"
        ));
    }
    let raw = match &args.raw_request {
        Some(path) => Some(read_input(path, "the raw request")?),
        None => None,
    };
    let body = match (&args.data, &args.data_file) {
        (Some(text), _) => Some(text.as_bytes().to_vec()),
        (None, Some(path)) => Some(read_input(path, "the request body")?),
        (None, None) => None,
    };
    let mut method = match (&args.method, args.head, &body) {
        (Some(m), _, _) => m.clone(),
        (None, true, _) => "HEAD".to_string(),
        (None, false, Some(_)) => "POST".to_string(),
        (None, false, None) => "GET".to_string(),
    };
    let mut body = body;
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Some(Family::Inet),
        (_, true) => Some(Family::Inet6),
        _ => None,
    };
    let mut tls = TlsSetup { config: None };
    let mut out = open_output(args)?;
    let first_host = url.host.clone();
    let mut redirects = 0u32;
    // With --json: one object per exchange, the redirects followed and then the last one.
    let mut exchanges: Vec<serde_json::Value> = Vec::new();

    let mut observer = |ev: &Event<'_>| verbose_event(ev);
    loop {
        let (request_bytes, req_method) = match &raw {
            Some(bytes) => (bytes.clone(), http::raw_request_method(bytes)),
            None => {
                let req = build_request(args, &url, &method, body.as_deref(), &first_host)?;
                (req.to_bytes(), method.clone())
            }
        };
        if args.show_request {
            if args.json {
                // stderr may be a closed pipe: what nobody reads must not end the request.
                let mut e = io::stderr().lock();
                let _ = e.write_all(&request_bytes);
                let _ = e.flush();
            } else {
                let mut o = io::stdout().lock();
                o.write_all(&request_bytes)?;
                o.flush()?;
            }
        }
        let opts = http::Options {
            connect_timeout: args.connect_timeout,
            max_time: args.max_time,
            family,
            tls: match url.scheme {
                http::Scheme::Https => Some(tls.get(args)?),
                http::Scheme::Http => None,
            },
        };
        let obs: Option<&mut http::Observer<'_>> = if args.verbose {
            Some(&mut observer)
        } else {
            None
        };
        let ctx = |e: Error| timeout_context(e, args, &url);
        let mut ex = Exchange::open(&url, &opts, obs).map_err(ctx)?;
        ex.send(&request_bytes).map_err(ctx)?;
        let head = match ex.read_head(&req_method) {
            Ok(h) => h,
            Err(e) => {
                if raw.is_some() {
                    // Raw mode shows whatever came back, even when it is not HTTP.
                    out.write_all(ex.head_bytes())?;
                    out.write_all(ex.unparsed())?;
                    out.flush()?;
                }
                return Err(ctx(e));
            }
        };

        if let Some(location) = head.redirect_location() {
            let next = url.join(&location);
            if args.location && raw.is_none() {
                let next = next.with_context(|| format!("bad redirect Location {location:?}"))?;
                if args.include || args.head {
                    out.write_all(ex.head_bytes())?;
                    out.flush()?;
                }
                if args.json {
                    exchanges.push(exchange_json(&url, &req_method, &head, &ex));
                } else if args.verbose {
                    crate::exit::stderr_line(format_args!(
                        "* following {} redirect to {next}",
                        head.status
                    ));
                }
                redirects += 1;
                if redirects > args.max_redirs {
                    return Err(Error::protocol(
                        "http",
                        format!(
                            "too many redirects: more than {} (--max-redirs)",
                            args.max_redirs
                        ),
                    )
                    .into());
                }
                let (m, keep_body) = http::redirect_method(head.status, &method);
                method = m;
                if !keep_body {
                    body = None;
                }
                url = next;
                continue;
            }
            let target = next.map_or(location.clone(), |u| u.to_string());
            if !args.json {
                crate::exit::stderr_line(format_args!(
                    "sockit: {} redirect to {target} (not followed: use -L)",
                    head.status
                ));
            }
        }

        if args.fail && head.status >= 400 {
            return Err(Error::protocol(
                "http",
                format!("the server answered {} (--fail)", head.status_line()),
            )
            .into());
        }
        if raw.is_some() || args.include || args.head {
            out.write_all(ex.head_bytes())?;
            out.flush()?;
        }
        loop {
            match ex.read_body() {
                Ok(Some(piece)) => {
                    out.write_all(if raw.is_some() {
                        &piece.wire
                    } else {
                        &piece.data
                    })?;
                    out.flush()?;
                }
                Ok(None) => break,
                Err(e) => {
                    out.flush()?;
                    return Err(ctx(e));
                }
            }
        }
        out.flush()?;
        drop(out);
        let timings = ex.timings();
        if args.verbose {
            crate::exit::stderr_line(format_args!("* {}", timings_text(&timings)));
        }
        if args.json {
            exchanges.push(exchange_json(&url, &req_method, &head, &ex));
            let obj = report_json(exchanges, redirects);
            let mut stdout = io::stdout().lock();
            writeln!(stdout, "{obj}")?;
            stdout.flush()?;
        }
        return Ok(ExitCode::SUCCESS);
    }
}

fn build_request(
    args: &Opts,
    url: &Url,
    method: &str,
    body: Option<&[u8]>,
    first_host: &str,
) -> anyhow::Result<Request> {
    let version = if args.http10 {
        Version::Http10
    } else {
        Version::Http11
    };
    let mut req = Request::new(method, url, version)?;
    for line in &args.headers {
        if url.host != first_host {
            // Credentials given for one host are not handed to another after a redirect.
            let name = line.split([':', ';']).next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie") {
                continue;
            }
        }
        req.add_header_line(line)?;
    }
    if let Some(b) = body {
        if args.data.is_some() {
            req.set_default_header("Content-Type", "application/x-www-form-urlencoded");
        }
        req.set_body(b.to_vec());
    }
    Ok(req)
}

/// Where an exchange failed: its URL (a redirect's, with -L) and, for a timeout, which
/// limit expired. The context of fetch's errors: stderr shows it as text, `--json` takes
/// its parts.
#[derive(Debug)]
struct FailedAt {
    url: String,
    /// `--max-time 1s` or `connect timeout -w 0.5s`.
    limit: Option<String>,
    hint: Option<&'static str>,
}

impl std::fmt::Display for FailedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url)?;
        if let Some(l) = &self.limit {
            write!(f, ": {l} expired")?;
        }
        if let Some(h) = self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Adds the URL and, for a timeout, which limit expired.
fn timeout_context(e: Error, args: &Opts, url: &Url) -> anyhow::Error {
    let mut at = FailedAt {
        url: url.to_string(),
        limit: None,
        hint: None,
    };
    if e.kind() == ErrorKind::Timeout {
        let connect_phase = matches!(e.op(), "getaddrinfo" | "connect");
        at.limit = Some(match (connect_phase, args.connect_timeout, args.max_time) {
            (true, Some(w), Some(m)) if w <= m => {
                format!("connect timeout -w {}s", w.as_secs_f64())
            }
            (true, Some(w), None) => format!("connect timeout -w {}s", w.as_secs_f64()),
            (_, _, Some(m)) => format!("--max-time {}s", m.as_secs_f64()),
            _ => "the timeout".to_string(),
        });
    } else if e.kind() == ErrorKind::Tls && e.message().contains("unknown issuer") {
        at.hint = Some("use --cacert FILE to trust a private CA");
    }
    anyhow::Error::new(e).context(at)
}

/// `-v`: one event on stderr, curl's style (`*` info, `>` sent, `<` received).
fn verbose_event(ev: &Event<'_>) {
    let mut err = io::stderr().lock();
    let _ = match ev {
        Event::Resolved(addrs) => writeln!(
            err,
            "* resolved: {}",
            addrs
                .iter()
                .map(sockit::addr::host_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Event::Connecting(addrs) => writeln!(
            err,
            "* connecting (Happy Eyeballs, RFC 8305) to {}",
            addrs
                .iter()
                .map(|a| format!("{} port {}", sockit::addr::host_text(a), a.port()))
                .collect::<Vec<_>>()
                .join(", then ")
        ),
        Event::Connected {
            local,
            peer,
            attempts,
        } => writeln!(
            err,
            "* connected to {} port {} from {} port {} ({attempts} attempt{})",
            sockit::addr::host_text(peer),
            peer.port(),
            sockit::addr::host_text(local),
            local.port(),
            if *attempts == 1 { "" } else { "s" }
        ),
        Event::TlsDone(info) => writeln!(
            err,
            "* TLS handshake done: {} {}, ALPN {}",
            info.version,
            info.cipher,
            info.alpn.as_deref().unwrap_or("none")
        ),
        Event::Sent(bytes) => write_head_lines(&mut err, '>', bytes, true),
        Event::HeadReceived(bytes, _) => write_head_lines(&mut err, '<', bytes, false),
        Event::BodyReceived(bytes) => writeln!(err, "< [{} bytes]", bytes.len()),
    };
}

/// Head lines with a prefix; bytes past the head (a request body) as a count.
fn write_head_lines(
    err: &mut impl Write,
    prefix: char,
    bytes: &[u8],
    split_body: bool,
) -> io::Result<()> {
    let end = if split_body {
        bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |p| p + 4)
    } else {
        bytes.len()
    };
    let (head, rest) = bytes.split_at(end);
    for line in head.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        let text = match std::str::from_utf8(line) {
            Ok(t) if !t.chars().any(|c| c.is_control() && c != '\t') => t.to_string(),
            _ => line.escape_ascii().to_string(),
        };
        writeln!(err, "{prefix} {text}")?;
    }
    if !rest.is_empty() {
        writeln!(err, "{prefix} [{} bytes of body]", rest.len())?;
    }
    Ok(())
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn timings_text(t: &http::Timings) -> String {
    let opt = |d: Option<Duration>| d.map_or("-".to_string(), |d| us(d).to_string());
    format!(
        "timings (us since start): dns {} connect {} tls {} request_sent {} first_byte {} total {}",
        us(t.dns),
        us(t.connect),
        opt(t.tls),
        opt(t.request_sent),
        opt(t.first_byte),
        opt(t.total)
    )
}

/// The `--json` object: the last exchange's fields at the top (as before `exchanges`
/// existed), `redirects`, and `exchanges` with every exchange in order, the last included.
fn report_json(exchanges: Vec<serde_json::Value>, redirects: u32) -> serde_json::Value {
    let mut obj = exchanges.last().cloned().unwrap_or_else(|| json!({}));
    obj["redirects"] = json!(redirects);
    obj["exchanges"] = serde_json::Value::Array(exchanges);
    obj
}

/// One request and its answer for `--json`. For a followed redirect, whose body is not
/// read, `body_bytes` is 0 and `total_us` null.
fn exchange_json(
    url: &Url,
    method: &str,
    head: &ResponseHead,
    ex: &Exchange<'_>,
) -> serde_json::Value {
    let t = ex.timings();
    let opt = |d: Option<Duration>| d.map(us);
    let headers: Vec<serde_json::Value> = head
        .headers
        .iter()
        .map(|(n, v)| json!([n, String::from_utf8_lossy(v)]))
        .collect();
    json!({
        "url": url.to_string(),
        "method": method,
        "http_version": format!("HTTP/1.{}", head.minor_version),
        "status": head.status,
        "reason": head.reason,
        "headers": headers,
        "remote_ip": sockit::addr::host_text(&ex.peer_addr()),
        "remote_port": ex.peer_addr().port(),
        "local_ip": sockit::addr::host_text(&ex.local_addr()),
        "local_port": ex.local_addr().port(),
        "tls": ex.tls_info().map(|i| json!({
            "version": i.version,
            "cipher": i.cipher,
            "alpn": i.alpn,
        })),
        "bytes_sent": ex.bytes_sent(),
        "bytes_received": ex.bytes_received(),
        "head_bytes": ex.head_bytes().len(),
        "body_bytes": ex.body_bytes(),
        "dns_us": us(t.dns),
        "connect_us": us(t.connect),
        "tls_us": opt(t.tls),
        "request_sent_us": opt(t.request_sent),
        "first_byte_us": opt(t.first_byte),
        "total_us": opt(t.total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "-1", "nan", "inf", "x", ""] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
