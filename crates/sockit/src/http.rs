//! Raw HTTP/1.x over a socket: the bytes on the wire, and one exchange that sends them.
//!
//! Python: the slides' `s.sendall(b"GET / HTTP/1.1\r\n\r\n")` then `s.recv(4096)`, made
//! exact: RFC 9112 (HTTP/1.1 message syntax and framing), RFC 9110 (semantics),
//! RFC 3986 (URLs).
//!
//! The module has two halves, as smoltcp keeps wire formats apart from behaviour:
//!
//! **Bytes on the wire** — pure functions and state machines, no I/O:
//! [`Url::parse`] / [`Url::join`], [`Request`] and [`Request::to_bytes`],
//! [`parse_response_head`] (httparse; heads larger than [`MAX_HEAD_BYTES`] are refused),
//! [`framing`] (Content-Length, chunked, or until close; RFC 9112 §6.3) and
//! [`BodyDecoder`] (chunked decoding, truncation detection).
//!
//! **Doing the exchange** — [`Exchange`]: resolve the host with one `getaddrinfo(3)` call,
//! connect with Happy Eyeballs (RFC 8305, [`crate::client::connect_happy_addrs`]) under the
//! connect timeout, the TLS handshake
//! (rustls, see [`crate::tls`]), send the request, read the head and the body. Every phase
//! is timed ([`Timings`], microseconds in the CLI). Contracts:
//! - Blocking I/O on the calling thread. Every read and write waits at most until the
//!   exchange's deadline (`max_time` after [`Exchange::open`] began); the name lookup runs
//!   on a helper thread so that it is bounded too. An expired deadline is
//!   [`ErrorKind::Timeout`] whose operation names the phase (`read body: timed out`).
//! - Memory is bounded: the head by [`MAX_HEAD_BYTES`], a chunk-size line and the trailers
//!   likewise; the body is handed out piece by piece ([`Exchange::read_body`]).
//! - The exchange ends when the framing says the response is complete, even if the server
//!   keeps the connection open (keep-alive): a well-framed answer never hangs.
//! - The library never prints: an observer callback sees each event ([`Event`]) as it
//!   happens, for `-v`.
//!
//! # Examples
//! ```no_run
//! use sockit::http::{Exchange, Options, Request, Url, Version};
//! let url = Url::parse("http://127.0.0.1:8000/")?;
//! let request = Request::new("GET", &url, Version::Http11)?;
//! let mut ex = Exchange::open(&url, &Options::default(), None)?;
//! ex.send(&request.to_bytes())?;
//! let head = ex.read_head("GET")?;
//! println!("{}", head.status_line());
//! while let Some(piece) = ex.read_body()? {
//!     print!("{}", String::from_utf8_lossy(&piece.data));
//! }
//! println!("total {:?}", ex.timings().total);
//! # Ok::<(), sockit::Error>(())
//! ```
//!
//! [`ErrorKind::Timeout`]: crate::ErrorKind::Timeout

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::addr::{Family, Port, SockType};
use crate::error::{Error, Result};
use crate::tls;

/// The largest response head accepted (status line, headers and the blank line): 64 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The `User-Agent` sockit sends: `sockit/VERSION`.
pub const USER_AGENT: &str = concat!("sockit/", env!("CARGO_PKG_VERSION"));

const OP_URL: &str = "url";
const OP_HTTP: &str = "http";

// ---------------------------------------------------------------------------------------
// Bytes on the wire: URLs
// ---------------------------------------------------------------------------------------

/// The two schemes `sockit http` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://`, default port 80.
    Http,
    /// `https://` (HTTP over TLS), default port 443.
    Https,
}

impl Scheme {
    /// The scheme's default port (80 or 443).
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// An `http://` or `https://` URL, split the way a request needs it (RFC 3986 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The host: a DNS name in ASCII (IDNA applied, lower case), IPv4 text, or IPv6 text
    /// without brackets (a zone id kept as `%name`).
    pub host: String,
    /// The port (the scheme's default when the URL has none).
    pub port: u16,
    /// The request target: path and query, at least `/`; the fragment is dropped.
    pub target: String,
    /// `user:password` from the URL, percent-decoded, if any (for Basic authentication).
    pub userinfo: Option<String>,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL; text without `://` is taken as
    /// `http://` text, as curl does (`localhost:8080/x`).
    ///
    /// Hosts may be names (IDNA, RFC 5891), IPv4, or IPv6 in brackets (`[::1]`,
    /// `[fe80::1%25lo]`). Non-ASCII bytes in the path are percent-encoded as UTF-8.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a scheme other than
    /// http/https, a missing or invalid host, a port that is not a number in 0..=65535,
    /// or whitespace and control characters.
    ///
    /// # Examples
    /// ```
    /// use sockit::http::{Scheme, Url};
    /// let u = Url::parse("https://[::1]:8443/a?b#frag").unwrap();
    /// assert_eq!((u.scheme, u.host.as_str(), u.port, u.target.as_str()),
    ///            (Scheme::Https, "::1", 8443, "/a?b"));
    /// assert_eq!(Url::parse("example.com").unwrap().target, "/");
    /// assert!(Url::parse("http://h:70000/").is_err());
    /// assert!(Url::parse("ftp://h/").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Url> {
        if text.is_empty() {
            return Err(Error::invalid_input(OP_URL, "empty URL"));
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid_input(
                OP_URL,
                format!("malformed URL {text:?}: contains {c:?} (percent-encode it)"),
            ));
        }
        let (scheme, rest) = match text.find("://") {
            Some(i) => (&text[..i], &text[i + 3..]),
            None => ("http", text),
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "" => {
                return Err(Error::invalid_input(
                    OP_URL,
                    format!("malformed URL {text:?}: no scheme before ://"),
                ));
            }
            other => {
                return Err(Error::invalid_input(
                    OP_URL,
                    format!(
                        "unsupported URL scheme {other:?} (sockit http speaks http:// and https://)"
                    ),
                ));
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(percent_decode(&authority[..i])), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port_text) = split_host_port(hostport, text)?;
        let port = match port_text {
            None | Some("") => scheme.default_port(),
            Some(p) => parse_port(p, text)?,
        };
        let path = path.split('#').next().unwrap_or("");
        let target = if path.is_empty() || path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Url {
            scheme,
            host,
            port,
            target: encode_non_ascii(&target),
            userinfo,
        })
    }

    /// True when the host is an IPv6 address.
    pub fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }

    /// The `Host` header value (RFC 9110 §7.2): the host (IPv6 in brackets, no zone id)
    /// and the port when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.is_ipv6() {
            format!("[{}]", self.host.split('%').next().unwrap_or(&self.host))
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves a reference (a redirect's `Location`) against this URL (RFC 3986 §5.2):
    /// absolute URLs, `//authority/...`, `/path`, `?query` and relative paths with `.`
    /// and `..` segments.
    ///
    /// # Errors
    /// As [`Url::parse`] for the resulting URL.
    ///
    /// # Examples
    /// ```
    /// use sockit::http::Url;
    /// let base = Url::parse("http://h:8080/a/b/c?x").unwrap();
    /// assert_eq!(base.join("/d").unwrap().to_string(), "http://h:8080/d");
    /// assert_eq!(base.join("../d").unwrap().to_string(), "http://h:8080/a/d");
    /// assert_eq!(base.join("https://o/").unwrap().to_string(), "https://o/");
    /// ```
    pub fn join(&self, reference: &str) -> Result<Url> {
        let reference = reference.trim();
        let has_scheme = reference.find(':').is_some_and(|i| {
            i > 0
                && reference[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && reference[i..].starts_with("://")
        });
        if has_scheme {
            return Url::parse(reference);
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme.as_str()));
        }
        let reference = reference.split('#').next().unwrap_or("");
        let target = if reference.is_empty() {
            self.target.clone()
        } else if reference.starts_with('/') {
            remove_dot_segments(reference)
        } else if reference.starts_with('?') {
            let path = self.target.split('?').next().unwrap_or("/");
            format!("{path}{reference}")
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            remove_dot_segments(&format!("{dir}{reference}"))
        };
        let mut url = self.clone();
        url.target = encode_non_ascii(&target);
        Ok(url)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.is_ipv6() {
            format!("[{}]", self.host.replace('%', "%25"))
        } else {
            self.host.clone()
        };
        write!(f, "{}://{host}", self.scheme.as_str())?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.target)
    }
}

fn split_host_port<'a>(hostport: &'a str, url: &str) -> Result<(String, Option<&'a str>)> {
    let bad = |why: &str| Error::invalid_input(OP_URL, format!("malformed URL {url:?}: {why}"));
    if let Some(rest) = hostport.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let (addr, zone) = match inside.split_once('%') {
            Some((a, z)) => (a, Some(percent_decode(z.strip_prefix("25").unwrap_or(z)))),
            None => (inside, None),
        };
        let ip: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| bad(&format!("{inside:?} is not an IPv6 address")))?;
        let host = match zone {
            Some(z) if !z.is_empty() => format!("{ip}%{z}"),
            _ => ip.to_string(),
        };
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
        };
        return Ok((host, port));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains(':') {
        return Err(bad("an IPv6 address must be in brackets ([::1])"));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok((host.to_string(), port));
    }
    let decoded = percent_decode(host);
    let ascii = idna::domain_to_ascii_cow(decoded.as_bytes(), idna::AsciiDenyList::URL)
        .map_err(|_| bad(&format!("{host:?} is not a valid host name")))?;
    if ascii.is_empty() {
        return Err(bad("no host"));
    }
    if ascii.trim_end_matches('.').split('.').any(str::is_empty) {
        return Err(bad(&format!("{host:?} has an empty label")));
    }
    Ok((ascii.into_owned(), port))
}

fn parse_port(text: &str, url: &str) -> Result<u16> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid_input(
            OP_URL,
            format!("malformed URL {url:?}: port {text:?} is not a number"),
        ));
    }
    match text.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(Error::invalid_input(
            OP_URL,
            format!("malformed URL {url:?}: port must be 0-65535, not {text}"),
        )),
    }
}

fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn encode_non_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3986 §5.2.4 on a path with an optional query.
fn remove_dot_segments(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate().skip(1) {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut result = format!("/{}", out.join("/"));
    if let Some(q) = query {
        result.push('?');
        result.push_str(q);
    }
    result
}

// ---------------------------------------------------------------------------------------
// Bytes on the wire: requests
// ---------------------------------------------------------------------------------------

/// HTTP/1.0 or HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    name: String,
    value: String,
    default: bool,
}

/// An HTTP/1.x request: method, target, version, headers and an optional body.
///
/// [`Request::new`] adds the default headers sockit always sends — `Host`, `User-Agent:
/// sockit/VERSION`, `Accept: */*`, `Connection: close` (so a keep-alive server closes) —
/// and [`Request::set_body`] adds `Content-Length`. A header the user adds with
/// [`Request::add_header_line`] replaces a default of the same name, as curl's `-H` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET`, `HEAD`, `POST`, ...).
    pub method: String,
    /// The request target (origin form: path and query).
    pub target: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    headers: Vec<Header>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// A request for `url` with sockit's default headers (see [`Request`]); with
    /// credentials in the URL, `Authorization: Basic` (RFC 7617) too.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when `method` is not an
    /// HTTP token (RFC 9110 §9.1).
    ///
    /// # Examples
    /// ```
    /// use sockit::http::{Request, Url, Version};
    /// let url = Url::parse("http://127.0.0.1:8080/x").unwrap();
    /// let req = Request::new("GET", &url, Version::Http11).unwrap();
    /// let text = String::from_utf8(req.to_bytes()).unwrap();
    /// assert!(text.starts_with("GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
    /// assert!(text.ends_with("Connection: close\r\n\r\n"));
    /// ```
    pub fn new(method: &str, url: &Url, version: Version) -> Result<Request> {
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(Error::invalid_input(
                OP_HTTP,
                format!("{method:?} is not a valid HTTP method"),
            ));
        }
        let mut req = Request {
            method: method.to_string(),
            target: url.target.clone(),
            version,
            headers: Vec::new(),
            body: None,
        };
        req.set_default_header("Host", &url.host_header());
        req.set_default_header("User-Agent", USER_AGENT);
        req.set_default_header("Accept", "*/*");
        if let Some(userinfo) = &url.userinfo {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.encode(userinfo.as_bytes());
            req.set_default_header("Authorization", &format!("Basic {token}"));
        }
        req.set_default_header("Connection", "close");
        Ok(req)
    }

    /// Sets a default header (replacing a default of the same name; a header the user
    /// gave with [`add_header_line`](Request::add_header_line) wins over it).
    pub fn set_default_header(&mut self, name: &str, value: &str) {
        if self
            .headers
            .iter()
            .any(|h| !h.default && h.name.eq_ignore_ascii_case(name))
        {
            return;
        }
        if let Some(h) = self
            .headers
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case(name))
        {
            h.value = value.to_string();
        } else {
            self.headers.push(Header {
                name: name.to_string(),
                value: value.to_string(),
                default: true,
            });
        }
    }

    /// Adds a header from curl's `-H` text: `Name: value` adds it (removing a default of
    /// the same name), `Name:` removes that default, `Name;` sends the header empty.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a line without `:`
    /// or `;`, a name that is not a token, or a value with CR, LF or NUL (which would
    /// smuggle another header).
    pub fn add_header_line(&mut self, line: &str) -> Result<()> {
        let (name, value, remove) = if let Some((n, v)) = line.split_once(':') {
            let v = v.trim_matches([' ', '\t']);
            (n, v, v.is_empty())
        } else if let Some(n) = line.strip_suffix(';') {
            (n, "", false)
        } else {
            return Err(Error::invalid_input(
                "header",
                format!("{line:?} is not a header (write 'Name: value')"),
            ));
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(Error::invalid_input(
                "header",
                format!("{name:?} is not a valid header name"),
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Error::invalid_input(
                "header",
                format!("the value of {name} contains a line break or NUL"),
            ));
        }
        self.headers
            .retain(|h| !(h.default && h.name.eq_ignore_ascii_case(name)));
        if !remove {
            self.headers.push(Header {
                name: name.to_string(),
                value: value.to_string(),
                default: false,
            });
        }
        Ok(())
    }

    /// Sets the body and its `Content-Length` header.
    pub fn set_body(&mut self, body: Vec<u8>) {
        self.set_default_header("Content-Length", &body.len().to_string());
        self.body = Some(body);
    }

    /// The body, if any.
    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    /// True when the user gave a header of this name.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// The headers in the order they are sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
    }

    /// The exact bytes sent: request line, headers, blank line, body (RFC 9112 §3).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} {}\r\n",
            self.method,
            self.target,
            self.version.as_str()
        );
        for h in &self.headers {
            out.push_str(&h.name);
            out.push_str(": ");
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if let Some(body) = &self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The method of raw request bytes (its first word), for framing the answer.
pub fn raw_request_method(raw: &[u8]) -> String {
    let word: Vec<u8> = raw
        .iter()
        .copied()
        .take_while(|b| is_tchar(*b))
        .take(32)
        .collect();
    String::from_utf8_lossy(&word).into_owned()
}

// ---------------------------------------------------------------------------------------
// Bytes on the wire: responses
// ---------------------------------------------------------------------------------------

/// A parsed response head: status line and headers (RFC 9112 §4, §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The minor version of `HTTP/1.x` (0 or 1).
    pub minor_version: u8,
    /// The status code (100-999).
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: String,
    /// The headers in order, values as bytes (they need not be UTF-8).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ResponseHead {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of a header, by case-insensitive name.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The `Location` of a redirect (301, 302, 303, 307, 308), if this is one and has it.
    pub fn redirect_location(&self) -> Option<String> {
        if !matches!(self.status, 301 | 302 | 303 | 307 | 308) {
            return None;
        }
        self.header("Location")
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The status line as text: `HTTP/1.1 200 OK`.
    pub fn status_line(&self) -> String {
        format!(
            "HTTP/1.{} {} {}",
            self.minor_version, self.status, self.reason
        )
        .trim_end()
        .to_string()
    }
}

/// The method to use after a redirect: 303 turns any method but HEAD into GET; 301 and
/// 302 turn POST into GET (what browsers and curl do); 307 and 308 keep it. The boolean
/// says whether the body is sent again.
pub fn redirect_method(status: u16, method: &str) -> (String, bool) {
    match status {
        303 if method != "HEAD" => ("GET".to_string(), false),
        301 | 302 if method == "POST" => ("GET".to_string(), false),
        _ => (method.to_string(), true),
    }
}

/// Parses a response head at the start of `buf` with httparse.
///
/// Returns `Ok(None)` while the head is incomplete, else the head and its length in
/// bytes (the body starts there).
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol): a status line that is not
/// `HTTP/1.x NNN reason` (`malformed status line`), a malformed header, or a head longer
/// than [`MAX_HEAD_BYTES`].
///
/// # Examples
/// ```
/// use sockit::http::parse_response_head;
/// let (head, n) = parse_response_head(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody").unwrap().unwrap();
/// assert_eq!((head.status, n), (200, 25));
/// assert!(parse_response_head(b"HTTP/1.1 200 O").unwrap().is_none());
/// assert!(parse_response_head(b"garbage\r\n\r\n").is_err());
/// ```
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>> {
    let mut capacity = 64;
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; capacity];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                if n > MAX_HEAD_BYTES {
                    return Err(head_too_large());
                }
                let head = ResponseHead {
                    minor_version: resp.version.unwrap_or(1),
                    status: resp.code.unwrap_or(0),
                    reason: resp.reason.unwrap_or("").to_string(),
                    headers: resp
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), h.value.to_vec()))
                        .collect(),
                };
                return Ok(Some((head, n)));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD_BYTES {
                    return Err(head_too_large());
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) if capacity < MAX_HEAD_BYTES / 4 => {
                capacity *= 4;
            }
            Err(httparse::Error::TooManyHeaders) => return Err(head_too_large()),
            Err(e @ (httparse::Error::Version | httparse::Error::Status)) => {
                let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let line = &line[..line.len().min(60)];
                let hint = if matches!(buf.first(), Some(0x15 | 0x16)) {
                    " (this looks like TLS: try https://)"
                } else {
                    ""
                };
                return Err(Error::protocol(
                    OP_HTTP,
                    format!(
                        "malformed status line: not an HTTP response ({e}): {}{hint}",
                        escape_bytes(line)
                    ),
                ));
            }
            Err(e) => {
                return Err(Error::protocol(
                    OP_HTTP,
                    format!("malformed response head: {e}"),
                ));
            }
        }
    }
}

fn head_too_large() -> Error {
    Error::protocol(
        OP_HTTP,
        format!("response head larger than {MAX_HEAD_BYTES} bytes (64 KiB): refused"),
    )
}

/// Printable text for bytes: ASCII as is, other bytes as `\xNN`, quoted.
pub fn escape_bytes(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// How the end of a response body is found (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD answer, 1xx, 204 or 304.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    Close,
}

/// The framing of the response to a `method` request with this head (RFC 9112 §6.3).
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a `Content-Length` that is not
/// a number, or several that disagree.
pub fn framing(method: &str, head: &ResponseHead) -> Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(Framing::Empty);
    }
    let codings: Vec<String> = head
        .header_all("Transfer-Encoding")
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        return Ok(if last == "chunked" {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut length: Option<u64> = None;
    for value in head.header_all("Content-Length") {
        for part in String::from_utf8_lossy(value).split(',') {
            let part = part.trim();
            let n = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<u64>().ok()
            } else {
                None
            };
            let n = n.ok_or_else(|| {
                Error::protocol(OP_HTTP, format!("invalid Content-Length {part:?}"))
            })?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::protocol(
                    OP_HTTP,
                    "several Content-Length headers that disagree",
                ));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// The longest chunk-size line (size, extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of the size.
    Size { size: u64, digits: u32 },
    /// After the size: extensions or whitespace until LF.
    SizeRest { size: u64 },
    /// Chunk data, this many bytes left.
    Data(u64),
    /// After data: expecting CR or LF.
    DataEnd,
    /// After data's CR: expecting LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Saw CR of the final empty line.
    FinalLf,
    /// Done.
    Done,
}

/// Decodes a response body framed by [`Framing`]: counts a `Content-Length` body, decodes
/// the chunked coding (RFC 9112 §7.1: sizes, extensions ignored, trailers skipped), and
/// tells at end of stream whether the body was complete.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    framing: Framing,
    remaining: u64,
    chunk: Chunk,
    line_len: usize,
    trailer_len: usize,
    body_bytes: u64,
}

impl BodyDecoder {
    /// A decoder for a body with this framing.
    pub fn new(framing: Framing) -> BodyDecoder {
        BodyDecoder {
            framing,
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunk: Chunk::Size { size: 0, digits: 0 },
            line_len: 0,
            trailer_len: 0,
            body_bytes: 0,
        }
    }

    /// The framing this decoder follows.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Decoded body bytes so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// True when the body is complete (never for [`Framing::Close`], which ends at EOF).
    pub fn is_done(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.remaining == 0,
            Framing::Chunked => self.chunk == Chunk::Done,
            Framing::Close => false,
        }
    }

    /// Decodes wire bytes from `input`, appending body bytes to `out`; returns how many
    /// input bytes were used (fewer than `input.len()` only once the body is complete:
    /// the rest belongs to no response).
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a malformed chunk size, a
    /// missing CRLF after chunk data, or a chunk-size line or trailers that are too long.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        match self.framing {
            Framing::Empty => Ok(0),
            Framing::Close => {
                out.extend_from_slice(input);
                self.body_bytes += input.len() as u64;
                Ok(input.len())
            }
            Framing::Length(_) => {
                let n = (input.len() as u64).min(self.remaining) as usize;
                out.extend_from_slice(&input[..n]);
                self.remaining -= n as u64;
                self.body_bytes += n as u64;
                Ok(n)
            }
            Framing::Chunked => self.decode_chunked(input, out),
        }
    }

    fn decode_chunked(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        let bad = |why: &str| Error::protocol(OP_HTTP, format!("malformed chunked body: {why}"));
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.chunk {
                Chunk::Done => break,
                Chunk::Data(left) => {
                    let n = ((input.len() - i) as u64).min(left) as usize;
                    out.extend_from_slice(&input[i..i + n]);
                    self.body_bytes += n as u64;
                    i += n;
                    self.chunk = if left == n as u64 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                    continue;
                }
                Chunk::Size { size, digits } => {
                    self.bump_line(1)?;
                    if let Some(d) = hex_val(b) {
                        if digits >= 16 {
                            return Err(bad("chunk size too large"));
                        }
                        self.chunk = Chunk::Size {
                            size: size << 4 | u64::from(d),
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return Err(bad(&format!(
                            "expected a hexadecimal chunk size, got {}",
                            escape_bytes(&[b])
                        )));
                    } else if b == b'\n' {
                        self.end_size_line(size);
                    } else if b == b';' || b == b' ' || b == b'\t' || b == b'\r' {
                        self.chunk = Chunk::SizeRest { size };
                    } else {
                        return Err(bad(&format!(
                            "unexpected {} after the chunk size",
                            escape_bytes(&[b])
                        )));
                    }
                }
                Chunk::SizeRest { size } => {
                    self.bump_line(1)?;
                    if b == b'\n' {
                        self.end_size_line(size);
                    }
                }
                Chunk::DataEnd => match b {
                    b'\r' => self.chunk = Chunk::DataLf,
                    b'\n' => self.chunk = Chunk::Size { size: 0, digits: 0 },
                    _ => return Err(bad("chunk data longer than its size (no CRLF after it)")),
                },
                Chunk::DataLf => {
                    if b != b'\n' {
                        return Err(bad("no LF after the chunk data's CR"));
                    }
                    self.chunk = Chunk::Size { size: 0, digits: 0 };
                }
                Chunk::TrailerStart => match b {
                    b'\r' => self.chunk = Chunk::FinalLf,
                    b'\n' => self.chunk = Chunk::Done,
                    _ => {
                        self.bump_trailer()?;
                        self.chunk = Chunk::Trailer;
                    }
                },
                Chunk::Trailer => {
                    self.bump_trailer()?;
                    if b == b'\n' {
                        self.chunk = Chunk::TrailerStart;
                    }
                }
                Chunk::FinalLf => {
                    if b != b'\n' {
                        return Err(bad("no LF after the last chunk's CR"));
                    }
                    self.chunk = Chunk::Done;
                }
            }
            i += 1;
        }
        Ok(i)
    }

    fn end_size_line(&mut self, size: u64) {
        self.line_len = 0;
        self.chunk = if size == 0 {
            Chunk::TrailerStart
        } else {
            Chunk::Data(size)
        };
    }

    fn bump_line(&mut self, n: usize) -> Result<()> {
        self.line_len += n;
        if self.line_len > MAX_CHUNK_LINE {
            return Err(Error::protocol(
                OP_HTTP,
                format!(
                    "malformed chunked body: chunk-size line longer than {MAX_CHUNK_LINE} bytes"
                ),
            ));
        }
        Ok(())
    }

    fn bump_trailer(&mut self) -> Result<()> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_HEAD_BYTES {
            return Err(Error::protocol(
                OP_HTTP,
                format!("chunked trailers larger than {MAX_HEAD_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// Checks the body at end of stream: complete for `Close`, else it must be done.
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol): `connection closed after N of
    /// M body bytes` or `truncated chunked body`.
    pub fn finish(&self) -> Result<()> {
        if self.is_done() || self.framing == Framing::Close {
            return Ok(());
        }
        Err(match self.framing {
            Framing::Length(n) => Error::protocol(
                OP_HTTP,
                format!(
                    "truncated body: connection closed after {} of {n} bytes (Content-Length)",
                    n - self.remaining
                ),
            ),
            _ => Error::protocol(
                OP_HTTP,
                format!(
                    "truncated chunked body: connection closed after {} body bytes, before the last chunk",
                    self.body_bytes
                ),
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Doing the exchange
// ---------------------------------------------------------------------------------------

/// How an [`Exchange`] connects and how long it may take.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Limit for name lookup and connect together, over all addresses (curl's
    /// `--connect-timeout`, sockit's `-w`).
    pub connect_timeout: Option<Duration>,
    /// Limit for the whole exchange, from the lookup to the last body byte (`--max-time`).
    pub max_time: Option<Duration>,
    /// Only IPv4 or only IPv6 addresses (`-4` / `-6`); `None` is `AF_UNSPEC`.
    pub family: Option<Family>,
    /// The TLS client configuration for `https://` (see [`tls::client_config`]); `None`
    /// means the default: system roots, ALPN `http/1.1`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// When each phase ended, measured from the start of [`Exchange::open`] (cumulative, as
/// curl's `-w %{time_connect}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Name lookup done.
    pub dns: Duration,
    /// TCP connection established.
    pub connect: Duration,
    /// TLS handshake done (`None` for plain HTTP).
    pub tls: Option<Duration>,
    /// Last request byte handed to the kernel.
    pub request_sent: Option<Duration>,
    /// First response byte received.
    pub first_byte: Option<Duration>,
    /// Response complete.
    pub total: Option<Duration>,
}

/// What happens during an exchange, in order, for an observer (the CLI's `-v`).
#[derive(Debug)]
pub enum Event<'a> {
    /// The name lookup answered these addresses.
    Resolved(&'a [SocketAddr]),
    /// Happy Eyeballs (RFC 8305) begins with the addresses in this order.
    Connecting(&'a [SocketAddr]),
    /// Connected: local and peer addresses.
    Connected {
        /// Our side.
        local: SocketAddr,
        /// The server's side.
        peer: SocketAddr,
        /// How many connect attempts were started (1 when the first address answered).
        attempts: usize,
    },
    /// The TLS handshake is done.
    TlsDone(&'a tls::SessionInfo),
    /// These request bytes were sent.
    Sent(&'a [u8]),
    /// A response head arrived (1xx interim heads too), as its exact bytes.
    HeadReceived(&'a [u8], &'a ResponseHead),
    /// Body bytes arrived, as on the wire (chunk framing included).
    BodyReceived(&'a [u8]),
}

/// A piece of the response body: the wire bytes and the decoded body bytes in them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyPiece {
    /// Bytes as received (chunk sizes included for a chunked body).
    pub wire: Vec<u8>,
    /// The body bytes they carry.
    pub data: Vec<u8>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The observer callback type: sees each [`Event`] as it happens.
pub type Observer<'o> = dyn FnMut(&Event<'_>) + 'o;

/// One HTTP exchange over one connection: [`open`](Exchange::open) (lookup, connect, TLS),
/// [`send`](Exchange::send), [`read_head`](Exchange::read_head),
/// [`read_body`](Exchange::read_body) until `None`.
///
/// Python: `socket.create_connection((host, port))`, `ssl.wrap_socket`, `sendall`, `recv`.
pub struct Exchange<'o> {
    stream: Stream,
    buf: Vec<u8>,
    start: Instant,
    deadline: Option<Instant>,
    timings: Timings,
    observer: Option<&'o mut Observer<'o>>,
    decoder: Option<BodyDecoder>,
    eof: bool,
    local: SocketAddr,
    peer: SocketAddr,
    tls_info: Option<tls::SessionInfo>,
    bytes_sent: u64,
    bytes_received: u64,
    head_bytes: Vec<u8>,
}

impl fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("peer", &self.peer)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl<'o> Exchange<'o> {
    /// Resolves `url`'s host (one `getaddrinfo(3)` call, `AI_NUMERICHOST` for an address),
    /// connects with Happy Eyeballs (RFC 8305: IPv6 first, the next address 250 ms later or
    /// at once after a failure, first to connect wins), all within `connect_timeout`, and for `https://` does the TLS handshake (SNI, ALPN, verification
    /// as `opts.tls` says).
    ///
    /// # Errors
    /// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) when the name does not resolve.
    /// - [`ErrorKind::Os`](crate::ErrorKind::Os) when every connect fails (the last
    ///   error, e.g. `connect: [Errno 111] Connection refused`).
    /// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) with op `getaddrinfo`,
    ///   `connect` or `tls handshake` when a deadline expires.
    /// - [`ErrorKind::Tls`](crate::ErrorKind::Tls) when the handshake fails.
    pub fn open(
        url: &Url,
        opts: &Options,
        observer: Option<&'o mut Observer<'o>>,
    ) -> Result<Exchange<'o>> {
        let start = Instant::now();
        let deadline = opts.max_time.map(|d| start + d);
        let connect_deadline = match (opts.connect_timeout.map(|d| start + d), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut observer = observer;
        let mut emit = |ev: &Event<'_>| {
            if let Some(o) = observer.as_mut() {
                o(ev);
            }
        };
        let addrs = resolve(&url.host, url.port, opts.family, connect_deadline)?;
        let mut timings = Timings {
            dns: start.elapsed(),
            ..Timings::default()
        };
        emit(&Event::Resolved(&addrs));
        let ordered = crate::client::happy_order(addrs);
        emit(&Event::Connecting(&ordered));
        let (tcp, attempts) = connect_happy(ordered, connect_deadline)?;
        timings.connect = start.elapsed();
        let peer = tcp
            .peer_addr()
            .map_err(|e| Error::from_io("getpeername", e))?;
        let local = tcp
            .local_addr()
            .map_err(|e| Error::from_io("getsockname", e))?;
        emit(&Event::Connected {
            local,
            peer,
            attempts,
        });
        let _ = tcp.set_nodelay(true);

        let (stream, tls_info) = match url.scheme {
            Scheme::Http => (Stream::Plain(tcp), None),
            Scheme::Https => {
                let config = match &opts.tls {
                    Some(c) => c.clone(),
                    None => {
                        tls::client_config(&tls::ClientOptions {
                            alpn: vec![tls::ALPN_HTTP1.to_vec()],
                            ..tls::ClientOptions::default()
                        })?
                        .0
                    }
                };
                let name = tls::server_name(&url.host)?;
                let mut conn =
                    rustls::ClientConnection::new(config, name).map_err(|e| tls::tls_error(&e))?;
                let mut tcp = tcp;
                while conn.is_handshaking() {
                    set_timeouts(&tcp, deadline, "tls handshake")?;
                    if let Err(e) = conn.complete_io(&mut tcp) {
                        return Err(match e.kind() {
                            io::ErrorKind::UnexpectedEof => Error::tls(
                                "the peer closed the connection during the TLS handshake",
                            ),
                            _ => io_error("tls handshake", e),
                        });
                    }
                }
                let info = tls::SessionInfo::of(&conn);
                timings.tls = Some(start.elapsed());
                emit(&Event::TlsDone(&info));
                (
                    Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))),
                    Some(info),
                )
            }
        };
        Ok(Exchange {
            stream,
            buf: Vec::new(),
            start,
            deadline,
            timings,
            observer,
            decoder: None,
            eof: false,
            local,
            peer,
            tls_info,
            bytes_sent: 0,
            bytes_received: 0,
            head_bytes: Vec::new(),
        })
    }

    fn emit(&mut self, ev: &Event<'_>) {
        if let Some(o) = self.observer.as_mut() {
            o(ev);
        }
    }

    /// Sends request bytes exactly as given (`send(2)` until all are written).
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (op `send request`),
    /// [`ErrorKind::Os`](crate::ErrorKind::Os), [`ErrorKind::Tls`](crate::ErrorKind::Tls).
    pub fn send(&mut self, request: &[u8]) -> Result<()> {
        const OP: &str = "send request";
        set_timeouts(self.stream.tcp(), self.deadline, OP)?;
        self.stream
            .write_all(request)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_error(OP, e))?;
        self.bytes_sent += request.len() as u64;
        self.timings.request_sent = Some(self.start.elapsed());
        self.emit(&Event::Sent(request));
        Ok(())
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self, op: &'static str) -> Result<usize> {
        if self.eof {
            return Ok(0);
        }
        set_timeouts(self.stream.tcp(), self.deadline, op)?;
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A server that closes without TLS close_notify: the framing decides
                // whether anything was lost.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break 0,
                Err(e) => return Err(io_error(op, e)),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(0);
        }
        if self.timings.first_byte.is_none() {
            self.timings.first_byte = Some(self.start.elapsed());
        }
        self.bytes_received += n as u64;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the response head (skipping 1xx interim answers, which the observer still
    /// sees) and prepares the body's framing for a `method` request (`HEAD` has no body).
    ///
    /// # Errors
    /// - [`ErrorKind::Protocol`](crate::ErrorKind::Protocol): not HTTP (`malformed status
    ///   line`), a head past [`MAX_HEAD_BYTES`], a bad `Content-Length`, or a connection
    ///   closed before a complete head (`empty reply from server`).
    /// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) with op `wait for first byte`
    ///   or `read response head`; [`ErrorKind::Os`](crate::ErrorKind::Os);
    ///   [`ErrorKind::Tls`](crate::ErrorKind::Tls).
    pub fn read_head(&mut self, method: &str) -> Result<ResponseHead> {
        loop {
            if let Some((head, n)) = parse_response_head(&self.buf)? {
                let raw: Vec<u8> = self.buf.drain(..n).collect();
                self.emit(&Event::HeadReceived(&raw, &head));
                self.head_bytes.extend_from_slice(&raw);
                if (100..200).contains(&head.status) && head.status != 101 {
                    continue;
                }
                self.decoder = Some(BodyDecoder::new(framing(method, &head)?));
                return Ok(head);
            }
            let op = if self.timings.first_byte.is_none() {
                "wait for first byte"
            } else {
                "read response head"
            };
            if self.fill(op)? == 0 {
                return Err(if self.buf.is_empty() {
                    Error::protocol(
                        OP_HTTP,
                        "empty reply from server: it closed the connection without answering",
                    )
                } else {
                    Error::protocol(
                        OP_HTTP,
                        format!(
                            "connection closed in the middle of the response head ({} bytes)",
                            self.buf.len()
                        ),
                    )
                });
            }
        }
    }

    /// The exact bytes of the response head, 1xx interim heads included (for `-i` and
    /// raw mode).
    pub fn head_bytes(&self) -> &[u8] {
        &self.head_bytes
    }

    /// Bytes received but not yet consumed as head or body (after a failed
    /// [`read_head`](Exchange::read_head), what the peer sent; for raw mode).
    pub fn unparsed(&self) -> &[u8] {
        &self.buf
    }

    /// Reads the next piece of the body; `Ok(None)` once the body is complete (by its
    /// framing, or by the end of stream for a close-delimited body).
    ///
    /// # Errors
    /// - [`ErrorKind::Protocol`](crate::ErrorKind::Protocol): a malformed chunked body, or
    ///   a body cut short by the end of stream (`truncated ...`).
    /// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) with op `read body`;
    ///   [`ErrorKind::Os`](crate::ErrorKind::Os); [`ErrorKind::Tls`](crate::ErrorKind::Tls).
    /// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when called before
    ///   [`read_head`](Exchange::read_head).
    pub fn read_body(&mut self) -> Result<Option<BodyPiece>> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Err(Error::invalid_input(OP_HTTP, "read_body before read_head"));
            };
            if decoder.is_done() {
                self.finish_total();
                return Ok(None);
            }
            if !self.buf.is_empty() {
                let mut data = Vec::new();
                let n = decoder.decode(&self.buf, &mut data)?;
                let wire: Vec<u8> = self.buf.drain(..n).collect();
                if !wire.is_empty() {
                    self.emit(&Event::BodyReceived(&wire));
                    return Ok(Some(BodyPiece { wire, data }));
                }
            }
            if self.fill("read body")? == 0 {
                let mut body_bytes = 0;
                if let Some(d) = self.decoder.as_ref() {
                    d.finish()?;
                    body_bytes = d.body_bytes();
                }
                self.finish_total();
                // Done from now on, keeping the count (a close-framed body ends here).
                let mut done = BodyDecoder::new(Framing::Empty);
                done.body_bytes = body_bytes;
                self.decoder = Some(done);
                return Ok(None);
            }
        }
    }

    fn finish_total(&mut self) {
        if self.timings.total.is_none() {
            self.timings.total = Some(self.start.elapsed());
        }
    }

    /// The phase timings so far.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Our address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What the TLS handshake agreed on (`None` for plain HTTP).
    pub fn tls_info(&self) -> Option<&tls::SessionInfo> {
        self.tls_info.as_ref()
    }

    /// Bytes written to the connection (request bytes; TLS overhead not counted).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes read from the connection (after TLS decryption).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Decoded body bytes so far.
    pub fn body_bytes(&self) -> u64 {
        self.decoder.as_ref().map_or(0, BodyDecoder::body_bytes)
    }
}

/// `Some(None)` when the deadline has passed, `Some(Some(left))` before it, `None` without.
fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    })
}

fn set_timeouts(tcp: &TcpStream, deadline: Option<Instant>, op: &'static str) -> Result<()> {
    let t = match remaining(deadline) {
        Some(Some(t)) => Some(t),
        Some(None) => return Err(Error::timeout(op)),
        None => None,
    };
    tcp.set_read_timeout(t)
        .and_then(|()| tcp.set_write_timeout(t))
        .map_err(|e| Error::from_io("setsockopt", e))
}

fn io_error(op: &'static str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::timeout(op),
        _ => tls::from_io(op, e),
    }
}

/// One `getaddrinfo(3)` call (type SOCK_STREAM), on a helper thread when there is a
/// deadline so that a slow resolver cannot outlast it.
fn resolve(
    host: &str,
    port: u16,
    family: Option<Family>,
    deadline: Option<Instant>,
) -> Result<Vec<SocketAddr>> {
    let numeric = host
        .split('%')
        .next()
        .unwrap_or(host)
        .parse::<IpAddr>()
        .is_ok();
    let flags = if numeric {
        crate::resolve::AI_NUMERICHOST
    } else {
        0
    };
    let host_owned = host.to_string();
    let lookup = move || -> Result<Vec<SocketAddr>> {
        let infos = crate::resolve::getaddrinfo(
            Some(&host_owned),
            Some(&Port::Number(port)),
            family,
            Some(SockType::Stream),
            0,
            flags,
        )?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for info in infos {
            if !addrs.contains(&info.address) {
                addrs.push(info.address);
            }
        }
        Ok(addrs)
    };
    let addrs = match remaining(deadline) {
        // A numeric lookup never waits: no deadline applies to it.
        None => lookup()?,
        Some(_) if numeric => lookup()?,
        Some(None) => return Err(Error::timeout("getaddrinfo")),
        Some(Some(left)) => {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("getaddrinfo".into())
                .spawn(move || {
                    let _ = tx.send(lookup());
                })
                .map_err(|e| Error::from_io("getaddrinfo", e))?;
            rx.recv_timeout(left)
                .map_err(|_| Error::timeout("getaddrinfo"))??
        }
    };
    if addrs.is_empty() {
        return Err(Error::gai("getaddrinfo", libc::EAI_NONAME));
    }
    Ok(addrs)
}

/// Happy Eyeballs (RFC 8305) over the ordered addresses, as the CLI's `connect` does
/// ([`crate::client::connect_happy_addrs`]), on a one-thread tokio runtime; the winner comes
/// back as a blocking std socket. Returns it and the number of attempts started.
///
/// A deadline already passed is handed on as a zero timeout, exactly as
/// [`crate::client::connect_happy`] hands on what its lookup left: the race then decides,
/// so a refusal stays a refusal (`[Errno 111]`) even at the deadline.
fn connect_happy(addrs: Vec<SocketAddr>, deadline: Option<Instant>) -> Result<(TcpStream, usize)> {
    let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let opts = crate::client::ConnectOptions {
        timeout,
        ..crate::client::ConnectOptions::default()
    };
    let race = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::from_io("tokio runtime", e))?;
        rt.block_on(crate::client::connect_happy_addrs(addrs, &opts))
    };
    // Called from inside a tokio runtime (a blocking call in async code), creating or
    // dropping a runtime there would panic: race on a thread of our own instead.
    let conn = if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(race).join()).map_err(|_| {
            Error::new(
                crate::ErrorKind::Os,
                "connect",
                None,
                "connect thread failed",
            )
        })??
    } else {
        race()?
    };
    let tcp = conn
        .stream
        .into_std()
        .map_err(|e| Error::from_io("connect", e))?;
    tcp.set_nonblocking(false)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok((tcp, conn.attempts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn urls() {
        let u = Url::parse("http://example.com").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.target.as_str()),
            (Scheme::Http, "example.com", 80, "/")
        );
        let u = Url::parse("HTTPS://User:p%40ss@Example.COM:8443?q=1#f").unwrap();
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 8443);
        assert_eq!(u.target, "/?q=1");
        assert_eq!(u.userinfo.as_deref(), Some("User:p@ss"));
        let u = Url::parse("http://[fe80::1%25lo]:81/").unwrap();
        assert_eq!(u.host, "fe80::1%lo");
        assert_eq!(u.host_header(), "[fe80::1]:81");
        assert_eq!(u.to_string(), "http://[fe80::1%25lo]:81/");
        let u = Url::parse("http://bücher.example/ä").unwrap();
        assert_eq!(u.host, "xn--bcher-kva.example");
        assert_eq!(u.target, "/%C3%A4");
        assert_eq!(Url::parse("localhost:8080/x").unwrap().port, 8080);
        assert_eq!(Url::parse("http://h:/").unwrap().port, 80);
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "",
            "ftp://h/",
            "://h",
            "http://",
            "http:///x",
            "http://h:70000/",
            "http://h:65536/",
            "http://h:-1/",
            "http://h:8x/",
            "http://[::1/",
            "http://[nope]/",
            "http://::1/",
            "http://h/a b",
            "http://h/\n",
            "http://a..b/",
        ] {
            let e = Url::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
        }
        let e = Url::parse("http://h:70000/").unwrap_err();
        assert!(e.to_string().contains("port must be 0-65535"), "{e}");
        let e = Url::parse("gopher://h/").unwrap_err();
        assert!(e.to_string().contains("unsupported URL scheme"), "{e}");
    }

    #[test]
    fn joins() {
        let base = Url::parse("http://h:8080/a/b/c?x").unwrap();
        for (r, want) in [
            ("d", "http://h:8080/a/b/d"),
            ("./d/", "http://h:8080/a/b/d/"),
            ("../../../../d", "http://h:8080/d"),
            ("?y", "http://h:8080/a/b/c?y"),
            ("/p?q#f", "http://h:8080/p?q"),
            ("//other:1/z", "http://other:1/z"),
            ("HTTPS://x/", "https://x/"),
            ("", "http://h:8080/a/b/c?x"),
        ] {
            assert_eq!(base.join(r).unwrap().to_string(), want, "{r}");
        }
    }

    #[test]
    fn requests() {
        let url = Url::parse("http://[::1]:8080/p").unwrap();
        let mut r = Request::new("POST", &url, Version::Http10).unwrap();
        r.add_header_line("User-Agent: me").unwrap();
        r.add_header_line("Accept:").unwrap();
        r.add_header_line("X-Empty;").unwrap();
        r.add_header_line("X-A: 1").unwrap();
        r.add_header_line("X-A: 2").unwrap();
        r.set_body(b"hi".to_vec());
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert_eq!(
            text,
            "POST /p HTTP/1.0\r\nHost: [::1]:8080\r\nConnection: close\r\nUser-Agent: me\r\n\
             X-Empty: \r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert!(r.add_header_line("X: a\r\nY: b").is_err());
        assert!(r.add_header_line("no colon").is_err());
        assert!(r.add_header_line("Bad Name: x").is_err());
        assert!(Request::new("GE T", &url, Version::Http11).is_err());
        let u = Url::parse("http://a:b@h/").unwrap();
        let r = Request::new("GET", &u, Version::Http11).unwrap();
        assert!(
            r.headers()
                .any(|(n, v)| n == "Authorization" && v == "Basic YTpi")
        );
    }

    #[test]
    fn heads() {
        let (h, n) = parse_response_head(b"HTTP/1.0 404 Not Found\r\nX: a\r\nx: b\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(n, 38);
        assert_eq!(h.status_line(), "HTTP/1.0 404 Not Found");
        assert_eq!(h.header_all("X").count(), 2);
        let e = parse_response_head(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.to_string().contains("malformed status line"), "{e}");
        assert!(parse_response_head(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        // Many small headers: the header array grows.
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..1000 {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_response_head(&many).unwrap().unwrap().0.headers.len(),
            1000
        );
        // Past 64 KiB: refused, complete or not.
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() <= MAX_HEAD_BYTES {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(parse_response_head(&big).is_err());
        big.extend_from_slice(b"\r\n");
        let e = parse_response_head(&big).unwrap_err();
        assert!(e.to_string().contains("64 KiB"), "{e}");
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            minor_version: 1,
            status,
            reason: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn framings() {
        let cl = head(200, &[("Content-Length", "5")]);
        assert_eq!(framing("GET", &cl).unwrap(), Framing::Length(5));
        assert_eq!(framing("HEAD", &cl).unwrap(), Framing::Empty);
        assert_eq!(framing("GET", &head(304, &[])).unwrap(), Framing::Empty);
        assert_eq!(framing("GET", &head(200, &[])).unwrap(), Framing::Close);
        let te = head(
            200,
            &[
                ("Transfer-Encoding", "gzip, chunked"),
                ("Content-Length", "5"),
            ],
        );
        assert_eq!(framing("GET", &te).unwrap(), Framing::Chunked);
        assert_eq!(
            framing("GET", &head(200, &[("Content-Length", "5, 5")])).unwrap(),
            Framing::Length(5)
        );
        for bad in ["-1", "5, 6", "x", ""] {
            assert!(framing("GET", &head(200, &[("Content-Length", bad)])).is_err());
        }
    }

    fn decode_all(framing: Framing, wire: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool)> {
        let mut d = BodyDecoder::new(framing);
        let mut out = Vec::new();
        let mut used = 0;
        for piece in wire.chunks(step) {
            let n = d.decode(piece, &mut out)?;
            used += n;
            if n < piece.len() {
                break;
            }
        }
        Ok((out, used, d.is_done()))
    }

    #[test]
    fn chunked() {
        let wire = b"5;ext=1\r\nhello\r\n1A\r\n abcdefghijklmnopqrstuvwxy\r\n0\r\nT: x\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 1000] {
            let (out, used, done) = decode_all(Framing::Chunked, wire, step).unwrap();
            assert_eq!(out, b"hello abcdefghijklmnopqrstuvwxy", "step {step}");
            assert_eq!(used, wire.len() - 4);
            assert!(done);
        }
        // Truncated: not done, and finish() says so.
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        d.decode(b"a\r\nhel", &mut out).unwrap();
        let e = d.finish().unwrap_err();
        assert!(e.to_string().contains("truncated chunked body"), "{e}");
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"11111111111111111\r\n",
            b"5 x\r\n",
        ] {
            let r = decode_all(Framing::Chunked, bad, 1000);
            assert!(
                r.is_err() || !r.unwrap().2,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(decode_all(Framing::Chunked, b"zz\r\n", 1).is_err());
        assert!(decode_all(Framing::Chunked, b"5\r\nhelloXX", 1).is_err());
    }

    #[test]
    fn lengths() {
        let (out, used, done) = decode_all(Framing::Length(3), b"abcdef", 2).unwrap();
        assert_eq!((out.as_slice(), used, done), (&b"abc"[..], 3, true));
        let mut d = BodyDecoder::new(Framing::Length(10));
        d.decode(b"abc", &mut Vec::new()).unwrap();
        let e = d.finish().unwrap_err();
        assert!(e.to_string().contains("after 3 of 10"), "{e}");
        assert!(BodyDecoder::new(Framing::Close).finish().is_ok());
    }

    #[test]
    fn redirects() {
        assert_eq!(redirect_method(303, "POST"), ("GET".into(), false));
        assert_eq!(redirect_method(302, "POST"), ("GET".into(), false));
        assert_eq!(redirect_method(307, "POST"), ("POST".into(), true));
        assert_eq!(redirect_method(301, "PUT"), ("PUT".into(), true));
        assert_eq!(
            head(301, &[("Location", " /x ")])
                .redirect_location()
                .as_deref(),
            Some("/x")
        );
        assert_eq!(head(200, &[("Location", "/x")]).redirect_location(), None);
    }

    /// A one-shot server on 127.0.0.1 that reads a request head and answers `reply`.
    fn one_shot(reply: &'static [u8]) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s.write_all(reply);
                std::thread::sleep(Duration::from_secs(3));
            }
        });
        port
    }

    fn fetch(port: u16) -> Result<(ResponseHead, Vec<u8>, Timings)> {
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x"))?;
        let req = Request::new("GET", &url, Version::Http11)?;
        let opts = Options {
            max_time: Some(Duration::from_secs(5)),
            ..Options::default()
        };
        let mut events = 0;
        let mut count = |_: &Event<'_>| events += 1;
        let mut ex = Exchange::open(&url, &opts, Some(&mut count))?;
        ex.send(&req.to_bytes())?;
        let head = ex.read_head("GET")?;
        let mut body = Vec::new();
        while let Some(p) = ex.read_body()? {
            body.extend_from_slice(&p.data);
        }
        let t = ex.timings();
        drop(ex);
        assert!(events >= 5, "{events} events");
        Ok((head, body, t))
    }

    #[test]
    fn exchange_reads_a_chunked_answer_from_a_keep_alive_server() {
        let port =
            one_shot(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        let (head, body, t) = fetch(port).unwrap();
        assert_eq!((head.status, body.as_slice()), (200, &b"abc"[..]));
        assert!(
            t.total.is_some_and(|total| total < Duration::from_secs(3)),
            "{t:?}"
        );
        assert!(t.first_byte >= t.request_sent && t.request_sent.is_some_and(|r| r >= t.connect));
    }

    #[tokio::test]
    async fn exchange_inside_a_tokio_runtime_does_not_panic() {
        let port = one_shot(b"HTTP/1.0 204 No Content\r\n\r\n");
        let (head, body, _) = fetch(port).unwrap();
        assert_eq!((head.status, body.len()), (204, 0));
    }

    #[test]
    fn exchange_refused_is_an_os_error() {
        // A bound socket that does not listen: refused, and held so no parallel test can
        // listen on the port meanwhile (as on the port of a dropped listener).
        let (_holder, closed_addr) = crate::test_support::closed_port();
        let port = closed_addr.port();
        let e = fetch(port).unwrap_err();
        assert!(e.is_errno(libc::ECONNREFUSED), "{e}");
    }

    #[test]
    fn raw_methods() {
        assert_eq!(raw_request_method(b"HEAD / HTTP/1.1\r\n"), "HEAD");
        assert_eq!(raw_request_method(b"\r\n"), "");
    }
}
