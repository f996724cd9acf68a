//! The flags of `sockit http` ([`Opts`]: curl's letters, curl's meanings) and their value
//! parsers.

use std::path::PathBuf;
use std::time::Duration;

use super::{curl, data};

/// The options of `sockit http`: curl's letters. As in curl, a flag given twice takes
/// its last value (`-m 5 -m 6` is `-m 6`; `-4 -6` is `-6`).
#[derive(Debug, clap::Args)]
#[command(
    args_override_self = true,
    after_long_help = "Where sockit differs from curl: --json is sockit's JSON output (not \
    curl 7.82's --json DATA: use -d DATA -H 'Content-Type: application/json'); repeated runs \
    are --repeat (curl's -n is --netrc); -w's %{exitcode} is sockit's exit code and \
    %{ssl_verify_result} is 0 (verified) or 1; --max-redirs -1 stops at a repeated URL and \
    after 1000 redirects. As in curl, a flag given twice takes its last value, and -s hides \
    the transfer's failures, not a bad command line. curl's options sockit lacks are \
    refused by name; -N, -g, --tlsv1.2 and a few more that sockit already satisfies are \
    accepted.\n\n\
    Examples:\n  sockit http http://127.0.0.1:8000/\n  \
    sockit http -i -L https://example.com/\n  \
    sockit http -s -o /dev/null -w '%{http_code} %{time_total}\\n' http://127.0.0.1:8000/\n  \
    sockit http -d @body.json -H 'Content-Type: application/json' http://[::1]:8080/api\n  \
    sockit http --repeat 100 --reuse --rate 20/s http://127.0.0.1:8000/\n  \
    sockit http --raw-request get.txt --show-request http://127.0.0.1:8000/\n  \
    sockit http --json https://localhost:8443/ --cacert ca.pem"
)]
pub struct Opts {
    /// http://HOST[:PORT]/PATH or https://…; a URL without scheme is http://. IPv6 in
    /// brackets. One URL per command (more are refused with a message).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// The URL, as a flag (curl's --url).
    #[arg(long = "url", value_name = "URL", action = clap::ArgAction::Append)]
    pub url_flag: Vec<String>,

    /// Send the URL's path as it is: no removal of its . and .. segments (curl's).
    #[arg(help_heading = "Data", long = "path-as-is")]
    pub path_as_is: bool,

    /// Request method (default GET, POST with a data flag, PUT with -T, HEAD with -I).
    #[arg(
        help_heading = "Data",
        short = 'X',
        long = "request",
        value_name = "METHOD"
    )]
    pub method: Option<String>,

    /// Extra header 'Name: value' (repeatable); 'Name:' removes a default header, 'Name;'
    /// sends it empty, @FILE reads one header per line.
    #[arg(
        help_heading = "Data",
        short = 'H',
        long = "header",
        value_name = "HEADER",
        allow_hyphen_values = true
    )]
    pub headers: Vec<String>,

    /// The request body flags (-d, --data-binary, --data-raw, --data-urlencode, --data-file).
    #[command(flatten)]
    pub data: data::DataArgs,

    /// Send the data flags' body as the URL's query, with GET (or HEAD with -I).
    #[arg(help_heading = "Data", short = 'G', long = "get")]
    pub get: bool,

    /// Upload FILE (- is stdin) with PUT; a URL ending in / gets the file's name.
    #[arg(
        help_heading = "Data",
        short = 'T',
        long = "upload-file",
        value_name = "FILE"
    )]
    pub upload_file: Option<PathBuf>,

    /// Print the response head (status line and headers) before the body.
    #[arg(help_heading = "Output", short = 'i', long = "include")]
    pub include: bool,

    /// Send HEAD and print the response head only.
    #[arg(help_heading = "Data", short = 'I', long = "head")]
    pub head: bool,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(help_heading = "Data", short = 'L', long = "location")]
    pub location: bool,

    /// Most redirects followed with -L; -1: no count limit (a repeated URL, or 1000
    /// redirects, still stop it: exit 7).
    #[arg(
        help_heading = "Data",
        long = "max-redirs",
        value_name = "N",
        default_value_t = 50,
        allow_negative_numbers = true
    )]
    pub max_redirs: i64,

    /// Write the body (and the head with -i) to FILE instead of stdout (- is stdout).
    #[arg(
        help_heading = "Output",
        short = 'o',
        long = "output",
        value_name = "FILE",
        overrides_with = "remote_name"
    )]
    pub output: Option<PathBuf>,

    /// Write the body to a file named as the URL's last path segment.
    #[arg(
        help_heading = "Output",
        short = 'O',
        long = "remote-name",
        overrides_with = "output"
    )]
    pub remote_name: bool,

    /// Write the response heads to FILE (- is stdout).
    #[arg(
        help_heading = "Output",
        short = 'D',
        long = "dump-header",
        value_name = "FILE"
    )]
    pub dump_header: Option<PathBuf>,

    /// Silent: no warnings, no progress, no message about the transfer's failure (the
    /// exit code stays). A bad command line is still reported.
    #[arg(help_heading = "Output", short = 's', long = "silent")]
    pub silent: bool,

    /// With -s, still print the transfer's error message.
    #[arg(help_heading = "Output", short = 'S', long = "show-error")]
    pub show_error: bool,

    /// Show connection events, both directions of the exchange and timings on stderr.
    #[arg(help_heading = "Output", short = 'v', long = "verbose")]
    pub verbose: bool,

    /// curl's write-out: print FORMAT after the transfer (%{http_code}, %{time_total},
    /// %{json}, %header{name}, %{stderr}, \n …; @FILE reads it from a file).
    #[arg(
        help_heading = "Output",
        short = 'w',
        long = "write-out",
        value_name = "FORMAT",
        allow_hyphen_values = true
    )]
    pub write_out: Option<String>,

    /// Limit for the name lookup and connect in seconds (all addresses); 0: none.
    #[arg(help_heading = "Connection", long = "connect-timeout", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs_or_zero)]
    pub connect_timeout: Option<Duration>,

    /// Limit for each whole transfer in seconds; 0: none (as curl).
    #[arg(help_heading = "Limits", short = 'm', long = "max-time", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs_or_zero)]
    pub max_time: Option<Duration>,

    /// Send an HTTP/1.0 request.
    #[arg(
        help_heading = "Data",
        short = '0',
        long = "http1.0",
        overrides_with = "http11"
    )]
    pub http10: bool,

    /// Send an HTTP/1.1 request (the default).
    #[arg(help_heading = "Data", long = "http1.1", overrides_with = "http10")]
    pub http11: bool,

    /// Send FILE's bytes exactly as the request (`-` for stdin) and print the answer's bytes.
    #[arg(help_heading = "Data",
        long = "raw-request",
        value_name = "FILE",
        conflicts_with_all = ["method", "headers", "data", "data-ascii", "data-binary", "data-raw", "data-urlencode", "data-file", "head", "http10", "location", "include", "upload_file", "get"]
    )]
    pub raw_request: Option<PathBuf>,

    /// Print the exact request bytes before the answer (on stdout; stderr with --json).
    #[arg(help_heading = "Output", long = "show-request")]
    pub show_request: bool,

    /// Trust the certificates in this PEM file instead of the system's roots; a server
    /// certificate that is itself in the file is trusted as it is.
    #[arg(help_heading = "TLS", long = "cacert", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Present this client certificate chain (PEM) when the server asks for one (mutual
    /// TLS; curl's -E/--cert, without curl's `:password`); needs --key.
    #[arg(
        help_heading = "TLS",
        short = 'E',
        long = "cert",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,

    /// With --cert: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        help_heading = "TLS",
        long = "key",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,

    /// Do not verify the server's certificate (curl's -k). Dangerous.
    #[arg(help_heading = "TLS", short = 'k', long = "insecure")]
    pub insecure: bool,

    /// Exit 7 without printing the body when the status is 4xx or 5xx.
    #[arg(help_heading = "Output", short = 'f', long = "fail")]
    pub fail: bool,

    /// sockit's JSON output (not curl's --json DATA): one object (status, headers, sizes,
    /// timings in µs) on stdout; the body goes only to -o FILE.
    #[arg(help_heading = "Output", long = "json", conflicts_with = "write_out")]
    pub json: bool,

    /// IPv4 addresses only (the --resolve addresses too).
    #[arg(
        help_heading = "Connection",
        short = '4',
        long = "ipv4",
        overrides_with = "ipv6"
    )]
    pub ipv4: bool,

    /// IPv6 addresses only (the --resolve addresses too).
    #[arg(
        help_heading = "Connection",
        short = '6',
        long = "ipv6",
        overrides_with = "ipv4"
    )]
    pub ipv6: bool,

    /// User-Agent to send ("" sends none).
    #[arg(
        help_heading = "Data",
        short = 'A',
        long = "user-agent",
        value_name = "NAME"
    )]
    pub user_agent: Option<String>,

    /// Referer to send; URL;auto also sets it on redirects.
    #[arg(
        help_heading = "Data",
        short = 'e',
        long = "referer",
        value_name = "URL"
    )]
    pub referer: Option<String>,

    /// Basic authentication: USER:PASSWORD.
    #[arg(
        help_heading = "Data",
        short = 'u',
        long = "user",
        value_name = "USER:PASSWORD"
    )]
    pub user: Option<String>,

    /// Cookie to send: 'NAME=VALUE[; NAME=VALUE]' (repeatable; no cookie files).
    #[arg(
        help_heading = "Data",
        short = 'b',
        long = "cookie",
        value_name = "NAME=VALUE"
    )]
    pub cookie: Vec<String>,

    /// Ask for a compressed body (Accept-Encoding: deflate, gzip) and decode it.
    #[arg(help_heading = "Data", long = "compressed")]
    pub compressed: bool,

    /// Connect to ADDRESS for HOST:PORT, with no lookup (repeatable; IPv6 in brackets;
    /// HOST * is any host, as in curl).
    #[arg(
        help_heading = "Connection",
        long = "resolve",
        value_name = "HOST:PORT:ADDRESS",
        allow_hyphen_values = true
    )]
    pub resolve: Vec<String>,

    /// Connect to HOST2:PORT2 for HOST1:PORT1 (empty parts: any, or the same).
    #[arg(
        help_heading = "Connection",
        long = "connect-to",
        value_name = "HOST1:PORT1:HOST2:PORT2"
    )]
    pub connect_to: Vec<String>,

    /// Connect to this Unix stream socket instead of the URL's host.
    #[arg(help_heading = "Connection", long = "unix-socket", value_name = "PATH")]
    pub unix_socket: Option<PathBuf>,

    /// Use this proxy: [SCHEME://][USER:PASS@]HOST[:PORT] (default port 1080). Schemes as
    /// curl's: http (CONNECT for https://, the absolute URL for http://), socks4 and socks5
    /// (names resolved here), socks4a and socks5h (names resolved by the proxy).
    #[arg(
        help_heading = "Connection",
        short = 'x',
        long = "proxy",
        value_name = "URL",
        conflicts_with = "unix_socket"
    )]
    pub proxy: Option<String>,

    /// USER:PASSWORD for the proxy (instead of the URL's).
    #[arg(
        help_heading = "Connection",
        short = 'U',
        long = "proxy-user",
        value_name = "USER:PASSWORD",
        requires = "proxy"
    )]
    pub proxy_user: Option<String>,

    /// Tunnel through an HTTP proxy with CONNECT for http:// URLs too.
    #[arg(
        help_heading = "Connection",
        short = 'p',
        long = "proxytunnel",
        requires = "proxy"
    )]
    pub proxytunnel: bool,

    /// Retry a transient failure N times (curl's rules: timeouts, failed lookups, HTTP
    /// 408/429/500/502/503/504), waiting 1 s, 2 s, 4 s … or Retry-After.
    #[arg(help_heading = "Limits",
        long = "retry",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = parse_retry
    )]
    pub retry: u32,

    /// Wait this long between retries instead of doubling from 1 s.
    #[arg(help_heading = "Limits", long = "retry-delay", value_name = "SECS", value_parser = parse_secs_or_zero)]
    pub retry_delay: Option<Duration>,

    /// No retry starts later than this after the first attempt began.
    #[arg(help_heading = "Limits", long = "retry-max-time", value_name = "SECS", value_parser = parse_secs_or_zero)]
    pub retry_max_time: Option<Duration>,

    /// With --retry, also retry a refused connection.
    #[arg(help_heading = "Limits", long = "retry-connrefused")]
    pub retry_connrefused: bool,

    /// With --retry, retry every error.
    #[arg(help_heading = "Limits", long = "retry-all-errors")]
    pub retry_all_errors: bool,

    /// Run the request N times and print p50/p90/p99/max of each phase (curl's -n is
    /// --netrc: sockit's repeats are --repeat).
    #[arg(help_heading = "Limits",
        long = "repeat",
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = parse_repeat
    )]
    pub repeat: Option<u64>,

    /// With --repeat: one keep-alive connection for every run (warm), not one per run.
    #[arg(help_heading = "Limits", long = "reuse", requires = "repeat")]
    pub reuse: bool,

    /// With --repeat: start at most N runs per second, minute, hour or day (N/s, N/m,
    /// N/h, N/d; curl's syntax).
    #[arg(
        help_heading = "Limits",
        long = "rate",
        value_name = "N/UNIT",
        requires = "repeat",
        allow_hyphen_values = true
    )]
    pub rate: Option<String>,

    /// Draw the phases as an SVG waterfall in FILE (one exchange: a bar per phase; with
    /// --repeat: the spread of each phase, box p25-p75, whiskers min-max, mark p50).
    #[arg(help_heading = "Output", long = "plot", value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,

    /// Add up saved `--repeat --json` results (from several machines, or one after
    /// another) and print them as one: the table, or one object with --json (as bench
    /// --merge does for bench's results).
    #[arg(help_heading = "Output", long = "merge", value_name = "FILE", num_args = 1..)]
    pub merge: Vec<PathBuf>,

    /// curl's options sockit does not have (refused by name).
    #[command(flatten)]
    pub curl_only: curl::CurlOnly,
}

/// A whole number in `min..=max`; the message gives the range (for `-1` too, where clap's
/// own parser says "invalid digit").
fn count_in(text: &str, min: u64, max: u64) -> Result<u64, String> {
    text.trim()
        .parse::<i128>()
        .ok()
        .filter(|n| (i128::from(min)..=i128::from(max)).contains(n))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("must be a whole number from {min} to {max}"))
}

/// `--repeat N`: 1 to 10,000,000 runs.
fn parse_repeat(text: &str) -> Result<u64, String> {
    count_in(text, 1, 10_000_000)
}

/// `--retry N`: 0 to 1,000,000 retries.
fn parse_retry(text: &str) -> Result<u32, String> {
    count_in(text, 0, 1_000_000).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// Seconds as a number in [0, 1e9].
fn parse_secs_or_zero(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, true, 1e9)
}

impl Opts {
    /// `-m`: `None` without it or with `-m 0` (no limit, as in curl).
    pub fn max_time(&self) -> Option<Duration> {
        self.max_time.filter(|d| !d.is_zero())
    }

    /// `--connect-timeout`: `None` without it or with 0 (no limit of sockit's own; curl's
    /// 0 is its default).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout.filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_secs_or_zero("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs_or_zero("0"), Ok(Duration::ZERO));
        for bad in ["-1", "nan", "inf", "x", ""] {
            assert!(parse_secs_or_zero(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_say_their_range() {
        // Regression: --repeat -1 and --retry -1 got clap's "a value is required" or
        // "invalid digit found in string".
        assert_eq!(parse_repeat("3"), Ok(3));
        assert_eq!(parse_retry("0"), Ok(0));
        for bad in ["-1", "0", "10000001", "x", "1.5"] {
            assert_eq!(
                parse_repeat(bad),
                Err("must be a whole number from 1 to 10000000".to_string()),
                "{bad}"
            );
        }
        assert!(parse_retry("-1").unwrap_err().contains("from 0 to 1000000"));
    }
}
