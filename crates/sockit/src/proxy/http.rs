//! HTTP proxying on the wire: `CONNECT` tunnels (RFC 9110 §9.3.6), requests with an
//! absolute URI (RFC 9112 §3.2.2), and `Basic` proxy authentication (RFC 7617,
//! `Proxy-Authorization` / `Proxy-Authenticate`, status 407).
//!
//! Client side: [`connect_request`] builds `CONNECT host:port HTTP/1.1`, and
//! [`parse_connect_response`] reads the proxy's response head (httparse), at most
//! [`MAX_RESPONSE_HEAD`] bytes; [`read_hint`] says how many bytes a reader may take next
//! without reading past the head, so the bytes after it stay in the socket for the
//! tunnel.
//!
//! Server side: [`parse_request`] reads a request head within [`Limits`] and answers the
//! target, the credentials and, for a plain request, the head to send to the origin
//! server (origin-form target, hop-by-hop and proxy headers removed,
//! `Connection: close`). A malformed head is refused with its status: 400, 431 for a
//! header flood, 505 for another HTTP version, 501 for a scheme other than `http`.
//! [`error_response`] and [`refuse_auth`] build the answers.

use base64::Engine as _;

use super::{Credentials, Login, Malformed, Parsed, Refusal, TargetAddr, check_name};
use crate::error::{Error, Result};

/// The largest response head a client reads from a proxy (16 KiB).
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Header lines a response head may have (64).
pub const MAX_RESPONSE_HEADERS: usize = 64;
/// The `User-Agent` sent with `CONNECT`.
pub const USER_AGENT: &str = concat!("sockit/", env!("CARGO_PKG_VERSION"));
/// The realm a server names in its `Proxy-Authenticate: Basic` challenge.
pub const REALM: &str = "sockit";

// ---------------------------------------------------------------------------------------
// Client side.

/// The `CONNECT` request for `target`, with `Proxy-Authorization: Basic …` when `creds`
/// are given (sent at once: Basic needs no challenge first, as curl does it).
///
/// ```
/// use sockit::proxy::{http, TargetAddr};
/// let req = http::connect_request(&TargetAddr::domain("::1", 22).unwrap(), None);
/// assert!(req.starts_with(b"CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n"));
/// ```
pub fn connect_request(target: &TargetAddr, creds: Option<&Credentials>) -> Vec<u8> {
    let authority = target.to_string();
    let mut out = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n"
    );
    if let Some(c) = creds {
        out.push_str(&format!("Proxy-Authorization: {}\r\n", basic_token(c)));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// `Basic BASE64(user:pass)` (RFC 7617 §2).
pub fn basic_token(creds: &Credentials) -> String {
    let raw = format!("{}:{}", creds.username, creds.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    )
}

/// A proxy's response to `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    /// The status code; any 2xx opens the tunnel (RFC 9110 §9.3.6).
    pub status: u16,
    /// The reason phrase, control characters escaped, at most 200 bytes.
    pub reason: String,
    /// `HTTP/1.x`'s minor version.
    pub version: u8,
}

impl ConnectResponse {
    /// True for a 2xx status: the tunnel is open.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Reads the proxy's response head: the response and the head's length.
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for bytes that are not an HTTP/1.x
/// response head, more than [`MAX_RESPONSE_HEADERS`] header lines, or a head longer
/// than [`MAX_RESPONSE_HEAD`].
pub fn parse_connect_response(buf: &[u8]) -> Result<Option<(ConnectResponse, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let bad = |m: String| Error::protocol("proxy", format!("HTTP CONNECT response: {m}"));
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_RESPONSE_HEAD => {
            let reason = resp.reason.unwrap_or("");
            let reason: String = reason.escape_default().take(200).collect();
            Ok(Some((
                ConnectResponse {
                    status: resp.code.unwrap_or(0),
                    reason,
                    version: resp.version.unwrap_or(1),
                },
                n,
            )))
        }
        Ok(_) if buf.len() >= MAX_RESPONSE_HEAD => Err(bad(format!(
            "head longer than {} KiB",
            MAX_RESPONSE_HEAD / 1024
        ))),
        Ok(_) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(bad(format!(
            "more than {MAX_RESPONSE_HEADERS} header lines"
        ))),
        Err(e) => Err(bad(format!(
            "{e} (is it an HTTP proxy?): {}",
            buf[..buf.len().min(40)].escape_ascii()
        ))),
    }
}

/// How many bytes a client may read next without reading past the end of a response
/// head, given the bytes it has: the head ends with an empty line, so while the status
/// line is short of 12 bytes (`HTTP/1.1 200`) the rest of those, then 1 after a CR or LF
/// and 2 otherwise (the shortest end is `\n\n`).
///
/// ```
/// use sockit::proxy::http::read_hint;
/// assert_eq!(read_hint(b""), 12);
/// assert_eq!(read_hint(b"HTTP/1.1 200 OK"), 2);
/// assert_eq!(read_hint(b"HTTP/1.1 200 OK\r\n"), 1);
/// ```
pub fn read_hint(buf: &[u8]) -> usize {
    match buf.last() {
        _ if buf.len() < 12 => 12 - buf.len(),
        Some(b'\r' | b'\n') => 1,
        _ => 2,
    }
}

// ---------------------------------------------------------------------------------------
// Server side.

/// Bounds on a request head a server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest head in bytes, request line and headers together (default 16 KiB).
    pub max_head_bytes: usize,
    /// The most header lines (default 64).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// A client's request to an HTTP proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method (`CONNECT`, `GET` …).
    pub method: String,
    /// Where to connect: `CONNECT`'s authority, or the absolute URI's host and port (80
    /// when none is given).
    pub target: TargetAddr,
    /// `HTTP/1.x`'s minor version.
    pub version: u8,
    /// The decoded `Proxy-Authorization: Basic` credentials, if the request had any (a
    /// header in another scheme, or not decodable, counts as none).
    pub login: Option<Login>,
    /// For a plain request (not `CONNECT`): the head to send to the origin server. `None`
    /// for `CONNECT`.
    pub forward_head: Option<Vec<u8>>,
    /// How the request's body ends (RFC 9112 §6.3: `Content-Length`, chunked, or no body):
    /// a plain request's client bytes are relayed to that end and no further.
    pub body: crate::http::Framing,
}

impl Request {
    /// True for `CONNECT` (a tunnel), false for a plain request forwarded to the origin.
    pub fn is_connect(&self) -> bool {
        self.forward_head.is_none()
    }
}

/// The status a server answers each malformed case with.
pub fn status_for(reason: Malformed) -> (u16, &'static str) {
    match reason {
        Malformed::HeaderFlood => (431, "Request Header Fields Too Large"),
        Malformed::BadVersion => (505, "HTTP Version Not Supported"),
        Malformed::Unsupported => (501, "Not Implemented"),
        Malformed::AuthFailed => (407, "Proxy Authentication Required"),
        Malformed::Timeout => (408, "Request Timeout"),
        _ => (400, "Bad Request"),
    }
}

fn refuse(reason: Malformed, message: impl Into<String>) -> Refusal {
    let message = message.into();
    let (status, text) = status_for(reason);
    let reply = error_response(status, text, &[], &message);
    Refusal::new(reason, message, reply)
}

/// A complete error response: status line, the extra headers, `Content-Type: text/plain`,
/// `Content-Length`, `Connection: close`, and `body_text` and a newline as the body.
pub fn error_response(
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body_text: &str,
) -> Vec<u8> {
    let body = format!("{status} {reason}: {body_text}\n");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

/// The answer that opens a tunnel: `HTTP/1.1 200 Connection established`, no body.
pub fn connect_established() -> Vec<u8> {
    b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec()
}

/// The refusal of missing or wrong credentials: 407 with a
/// `Proxy-Authenticate: Basic realm="sockit"` challenge (RFC 9110 §11.7.1).
pub fn refuse_auth(login: Option<&Login>) -> Refusal {
    let message = match login {
        Some(l) => format!("HTTP proxy authentication failed for user {:?}", l.user()),
        None => "HTTP proxy authentication required (no Basic credentials)".to_string(),
    };
    let challenge = format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"");
    let reply = error_response(
        407,
        "Proxy Authentication Required",
        &[("Proxy-Authenticate", &challenge)],
        &message,
    );
    Refusal::new(Malformed::AuthFailed, message, reply)
}

/// Splits `host:port` / `[v6]:port` (an authority without userinfo).
fn parse_authority(
    text: &str,
    default_port: Option<u16>,
) -> std::result::Result<TargetAddr, Refusal> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| refuse(Malformed::BadRequest, format!("unclosed '[' in {text:?}")))?;
        (h, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match (port, default_port) {
        // digits only: u16's parser also takes a leading '+' ("host:+9")
        (Some(p), _) if !p.is_empty() => Some(p)
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0 && text.is_ascii())
            .ok_or_else(|| refuse(Malformed::NoPort, format!("bad port in {text:?}")))?,
        (_, Some(d)) => d,
        _ => {
            return Err(refuse(
                Malformed::NoPort,
                format!("CONNECT target {text:?} has no port (HOST:PORT)"),
            ));
        }
    };
    if host.is_empty() {
        return Err(refuse(
            Malformed::EmptyDomain,
            format!("empty host in {text:?}"),
        ));
    }
    if let Err(why) = check_name(host.as_bytes()) {
        return Err(refuse(Malformed::BadDomain, format!("{why}: {text:?}")));
    }
    TargetAddr::domain(host, port).map_err(|e| refuse(Malformed::BadDomain, e.message()))
}

/// Decodes `Basic TOKEN` into a login; `None` for another scheme or a bad token.
fn decode_basic(value: &[u8]) -> Option<Login> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    Some(Login {
        username: raw[..colon].to_vec(),
        password: raw[colon + 1..].to_vec(),
    })
}

/// Headers a proxy does not pass on: its own, and the hop-by-hop ones (RFC 9110 §7.6.1).
fn is_hop_by_hop(name: &str) -> bool {
    [
        "proxy-authorization",
        "proxy-connection",
        "proxy-authenticate",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reads a request head sent to a proxy.
///
/// # Errors
/// A [`Refusal`] with an HTTP error response: [`Malformed::HeaderFlood`] (431) for more
/// header lines or bytes than `limits`; [`Malformed::BadVersion`] (505) for a version
/// other than HTTP/1.x; [`Malformed::NoPort`] (400) for a `CONNECT` target without a port
/// (or port 0); [`Malformed::EmptyDomain`] / [`Malformed::BadDomain`] (400) for an empty or
/// refused host; [`Malformed::Unsupported`] (501) for an absolute URI with a scheme other
/// than `http`; [`Malformed::BadRequest`] (400) for anything else httparse refuses, and for
/// an origin-form target (`GET / HTTP/1.1`: a request for a server, not a proxy).
pub fn parse_request(buf: &[u8], limits: &Limits) -> Parsed<Request> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let flood = || {
        refuse(
            Malformed::HeaderFlood,
            format!(
                "request head over {} bytes or {} header lines",
                limits.max_head_bytes, limits.max_headers
            ),
        )
    };
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
        Ok(_) if buf.len() >= limits.max_head_bytes => return Err(flood()),
        Ok(httparse::Status::Complete(_)) => return Err(flood()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(flood()),
        Err(httparse::Error::Version) => {
            return Err(refuse(
                Malformed::BadVersion,
                "not an HTTP/1.0 or HTTP/1.1 request",
            ));
        }
        Err(e) => {
            return Err(refuse(
                Malformed::BadRequest,
                format!("malformed request head: {e}"),
            ));
        }
    };
    let method = req.method.unwrap_or_default().to_string();
    let path = req.path.unwrap_or_default();
    let version = req.version.unwrap_or(1);
    let login = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|h| decode_basic(h.value));
    if method == "CONNECT" {
        let target = parse_authority(path, None)?;
        return Ok(Some((
            Request {
                method,
                target,
                version,
                login,
                forward_head: None,
                body: crate::http::Framing::Empty,
            },
            used,
        )));
    }
    let (scheme, rest) = path.split_once("://").ok_or_else(|| {
        refuse(
            Malformed::BadRequest,
            format!("{method} {path}: not a proxy request (no absolute URI)"),
        )
    })?;
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(refuse(
            Malformed::Unsupported,
            format!("{method} {path}: only http:// URIs are proxied (use CONNECT)"),
        ));
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, origin) = rest.split_at(split);
    if authority.contains('@') {
        return Err(refuse(
            Malformed::BadRequest,
            format!("{method}: userinfo in the URI is not allowed"),
        ));
    }
    let target = parse_authority(authority, Some(80))?;
    let origin = match origin {
        "" => "/".to_string(),
        o if o.starts_with('/') => o.to_string(),
        o => format!("/{o}"),
    };
    // RFC 9110 §7.6.1: the headers named by Connection are hop-by-hop too.
    let named: Vec<String> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    // One request per connection: the body is framed (OneRequest, in the session) and
    // bytes after it (a pipelined second request) are dropped, never relayed raw. Without
    // Content-Length or Transfer-Encoding a request has no body (RFC 9112 §6.3).
    let chunked = req
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    let lengths = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .collect::<Vec<_>>();
    if chunked && !lengths.is_empty() {
        // RFC 9112 §6.3 (3): both may be an attempt at request smuggling; handled as an
        // error rather than passed on for the origin to read one of two ways.
        return Err(refuse(
            Malformed::BadRequest,
            format!("{method}: both Transfer-Encoding and Content-Length"),
        ));
    }
    let mut length: Option<usize> = None;
    for h in &lengths {
        // RFC 9112 §6.3 (5): a list, or several fields, must all say one valid number.
        for v in String::from_utf8_lossy(h.value).split(',') {
            let v = v.trim();
            let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<usize>().ok())
                .flatten()
                .ok_or_else(|| {
                    refuse(
                        Malformed::BadRequest,
                        format!(
                            "{method}: invalid Content-Length {:?}",
                            String::from_utf8_lossy(h.value)
                        ),
                    )
                })?;
            if length.is_some_and(|l| l != n) {
                return Err(refuse(
                    Malformed::BadRequest,
                    format!("{method}: Content-Length fields that disagree"),
                ));
            }
            length = Some(n);
        }
    }
    // RFC 9112 §3.2.2: the request-target's host replaces the client's Host header.
    let mut head =
        format!("{method} {origin} HTTP/1.{version}\r\nHost: {authority}\r\n").into_bytes();
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name)
            || h.name.eq_ignore_ascii_case("host")
            || named.iter().any(|n| h.name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Some((
        Request {
            method,
            target,
            version,
            login,
            forward_head: Some(head),
            body: match (chunked, length.unwrap_or(0)) {
                (true, _) => crate::http::Framing::Chunked,
                (false, 0) => crate::http::Framing::Empty,
                (false, n) => crate::http::Framing::Length(n as u64),
            },
        },
        used,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Parsed<Request> {
        parse_request(bytes, &Limits::default())
    }

    #[test]
    fn client_request_with_basic_auth() {
        let c = Credentials::parse("Aladdin:open sesame").unwrap();
        // RFC 7617 §2's example.
        assert_eq!(basic_token(&c), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let req = connect_request(&TargetAddr::domain("example.org", 443).unwrap(), Some(&c));
        let text = String::from_utf8(req).unwrap();
        assert!(
            text.starts_with("CONNECT example.org:443 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        // The server reads back what the client sent.
        let (r, used) = parse(text.as_bytes()).unwrap().unwrap();
        assert_eq!(used, text.len());
        assert!(r.is_connect());
        let login = r.login.unwrap();
        assert!(c.matches(&login.username, &login.password));
    }

    #[test]
    fn client_reads_responses() {
        let ok = b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0";
        let (r, used) = parse_connect_response(ok).unwrap().unwrap();
        assert!(r.is_success());
        assert_eq!(
            (r.status, r.reason.as_str(), used),
            (200, "Connection established", ok.len() - 7)
        );
        let denied =
            b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n";
        let (r, _) = parse_connect_response(denied).unwrap().unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.is_success()),
            (407, "Proxy Authentication Required", false)
        );
        assert_eq!(
            parse_connect_response(b"HTTP/1.1 200 OK\r\n").unwrap(),
            None
        );
        let e = parse_connect_response(&[5, 0, 0, 1]).unwrap_err();
        assert!(e.to_string().contains("is it an HTTP proxy?"), "{e}");
        let mut flood = b"HTTP/1.1 200 OK\r\n".to_vec();
        while flood.len() < MAX_RESPONSE_HEAD {
            flood.extend_from_slice(b"X: y\r\n");
        }
        assert!(parse_connect_response(&flood).is_err());
        // Bare LF line ends are a head too.
        assert!(
            parse_connect_response(b"HTTP/1.1 200 OK\n\n")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn read_hint_never_reads_past_the_head() {
        let resp = b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n";
        let mut have = 0;
        let mut reads = 0;
        while parse_connect_response(&resp[..have]).unwrap().is_none() {
            have += read_hint(&resp[..have]);
            reads += 1;
            assert!(have <= resp.len(), "read past the head");
        }
        assert_eq!(have, resp.len());
        assert!(reads < resp.len() / 2 + 2, "{reads} reads");
        let lf = b"HTTP/1.1 200\n\n";
        let mut have = 0;
        while parse_connect_response(&lf[..have]).unwrap().is_none() {
            have += read_hint(&lf[..have]);
            assert!(have <= lf.len());
        }
    }

    #[test]
    fn connect_targets() {
        let (r, _) = parse(b"CONNECT [::1]:22 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.target.to_string(), "[::1]:22");
        let (r, _) = parse(b"CONNECT 127.0.0.1:80 HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.target.to_string(), r.version),
            ("127.0.0.1:80".into(), 0)
        );
        let cases: [(&[u8], Malformed, &str); 8] = [
            (
                b"CONNECT example.org HTTP/1.1\r\n\r\n",
                Malformed::NoPort,
                "400 Bad Request",
            ),
            // regression: u16's parser took "+9" as port 9
            (
                b"CONNECT example.org:+9 HTTP/1.1\r\n\r\n",
                Malformed::NoPort,
                "400 Bad Request",
            ),
            (
                b"CONNECT example.org: HTTP/1.1\r\n\r\n",
                Malformed::NoPort,
                "400 Bad Request",
            ),
            (
                b"CONNECT example.org:0 HTTP/1.1\r\n\r\n",
                Malformed::NoPort,
                "400 Bad Request",
            ),
            (
                b"CONNECT :80 HTTP/1.1\r\n\r\n",
                Malformed::EmptyDomain,
                "400 Bad Request",
            ),
            (
                b"CONNECT a%b:80 HTTP/1.1\r\n\r\n",
                Malformed::BadDomain,
                "400 Bad Request",
            ),
            (
                b"CONNECT a:80 HTTP/2.0\r\n\r\n",
                Malformed::BadVersion,
                "505 HTTP Version",
            ),
            (
                b"CONNECT a:80 HTTP/1.1\r\nbad header\r\n\r\n",
                Malformed::BadRequest,
                "400 Bad Request",
            ),
        ];
        for (bytes, reason, status) in cases {
            let r = parse(bytes).unwrap_err();
            assert_eq!(r.reason, reason, "{}", String::from_utf8_lossy(bytes));
            let reply = String::from_utf8(r.reply).unwrap();
            assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{reply}");
            assert!(reply.contains("Connection: close\r\n"), "{reply}");
        }
    }

    #[test]
    fn header_flood_is_refused_with_431() {
        let mut many = b"CONNECT a:1 HTTP/1.1\r\n".to_vec();
        for i in 0..65 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many).unwrap_err().reason, Malformed::HeaderFlood);
        // Too many bytes without an end: refused once the limit is reached, not later.
        let mut long = b"CONNECT a:1 HTTP/1.1\r\nX: ".to_vec();
        long.resize(16 * 1024 - 1, b'y');
        assert_eq!(parse(&long).unwrap(), None);
        long.push(b'y');
        let r = parse(&long).unwrap_err();
        assert_eq!(r.reason, Malformed::HeaderFlood);
        assert!(r.reply.starts_with(b"HTTP/1.1 431 "));
        // A truncated head is incomplete.
        assert_eq!(parse(b"CONNECT a:1 HTTP/1.1\r\nHost: a").unwrap(), None);
    }

    #[test]
    fn absolute_uri_requests_are_rewritten() {
        let raw = b"GET http://127.0.0.1:8080/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
            Proxy-Authorization: Basic dTpw\r\nProxy-Connection: keep-alive\r\n\
            Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nAccept: */*\r\nContent-Length: 4\r\n\r\nbody";
        let (r, used) = parse(raw).unwrap().unwrap();
        assert_eq!(used, raw.len() - 4);
        assert_eq!(r.target.to_string(), "127.0.0.1:8080");
        assert_eq!(r.login.as_ref().map(Login::user).as_deref(), Some("u"));
        let head = String::from_utf8(r.forward_head.unwrap()).unwrap();
        assert_eq!(
            head,
            "GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nContent-Length: 4\r\n\
             Connection: close\r\n\r\n"
        );
        let (r, _) = parse(b"HEAD http://example.org HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.target.to_string(), "example.org:80");
        assert_eq!(
            String::from_utf8(r.forward_head.unwrap()).unwrap(),
            "HEAD / HTTP/1.0\r\nHost: example.org\r\nConnection: close\r\n\r\n"
        );
        // Regression: the client's Host went to the origin (RFC 9112 §3.2.2: the URI's
        // host replaces it), and a pipelined second request was relayed raw.
        let (r, _) = parse(b"GET http://127.0.0.1:9/up HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(r.forward_head.unwrap()).unwrap(),
            "GET /up HTTP/1.1\r\nHost: 127.0.0.1:9\r\nConnection: close\r\n\r\n"
        );
        // A pipelined second request in the same read: the first is parsed alone (the
        // session's OneRequest drops the rest, as it does for one that comes later).
        let (piped, used) = parse(
            b"GET http://127.0.0.1:9/a HTTP/1.1\r\nHost: a\r\n\r\nGET http://127.0.0.2:9/b HTTP/1.1\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(piped.body, crate::http::Framing::Empty);
        assert_eq!(
            used,
            "GET http://127.0.0.1:9/a HTTP/1.1\r\nHost: a\r\n\r\n".len()
        );
        // RFC 9112 §6.3: Content-Length fields that disagree, or with Transfer-Encoding,
        // are refused (a request that could be read two ways is not passed on).
        for ambiguous in [
            &b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n"[..],
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let e = parse(ambiguous).unwrap_err();
            assert_eq!(e.reason, Malformed::BadRequest);
            assert!(e.reply.starts_with(b"HTTP/1.1 400 "));
        }
        let (same, _) =
            parse(b"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(same.body, crate::http::Framing::Length(3));
        // an invalid Content-Length frames nothing: refused, not guessed
        let bad = parse(b"POST http://a/ HTTP/1.1\r\nContent-Length: 1x\r\n\r\n").unwrap_err();
        assert_eq!(bad.reason, Malformed::BadRequest);
        let (r, _) = parse(b"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(r.body, crate::http::Framing::Length(3));
        let origin = parse(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(origin.reason, Malformed::BadRequest);
        let https = parse(b"GET https://a/ HTTP/1.1\r\n\r\n").unwrap_err();
        assert!(https.reply.starts_with(b"HTTP/1.1 501 "));
        assert_eq!(
            parse(b"GET http://u@a/ HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .reason,
            Malformed::BadRequest
        );
    }

    #[test]
    fn auth_refusal_has_a_challenge() {
        let r = refuse_auth(None);
        let text = String::from_utf8(r.reply).unwrap();
        assert!(text.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"));
        assert!(
            text.contains("Proxy-Authenticate: Basic realm=\"sockit\""),
            "{text}"
        );
        assert_eq!(decode_basic(b"Digest x"), None);
        assert_eq!(decode_basic(b"Basic !!!"), None);
        assert_eq!(decode_basic(b"basic dTpw").unwrap().password, b"p");
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
            let _ = parse_connect_response(&bytes);
        }
    }
}
