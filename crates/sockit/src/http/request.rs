//! Requests: the bytes a client sends (RFC 9112 §3: request line, headers, body), and
//! the method a redirect leads to (RFC 9110 §15.4).

use super::{OP_HTTP, USER_AGENT, Url};
use crate::error::{Error, Result};

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
        req.set_default_header("Host", &url.host_header())?;
        req.set_default_header("User-Agent", USER_AGENT)?;
        req.set_default_header("Accept", "*/*")?;
        if let Some(userinfo) = &url.userinfo {
            req.set_default_header("Authorization", &basic_authorization(userinfo))?;
        }
        req.set_default_header("Connection", "close")?;
        Ok(req)
    }

    /// Sets a default header (replacing a default of the same name; a header the user
    /// gave with [`add_header_line`](Request::add_header_line) wins over it).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) as
    /// [`add_header_line`](Request::add_header_line): a name that is not a token, or a
    /// value with CR, LF or NUL (one rule for every header, so that no flag's value
    /// smuggles another header).
    pub fn set_default_header(&mut self, name: &str, value: &str) -> Result<()> {
        check_header(name, value)?;
        if self
            .headers
            .iter()
            .any(|h| !h.default && h.name.eq_ignore_ascii_case(name))
        {
            return Ok(());
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
        Ok(())
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
        check_header(name, value)?;
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
        let length = body.len().to_string();
        // a token name and a number: nothing to refuse
        let _ = self.set_default_header("Content-Length", &length);
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
        let mut bytes = self.head_bytes();
        if let Some(body) = &self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }

    /// The head of the request: request line, headers and the blank line, without the
    /// body (sent apart after `Expect: 100-continue`, RFC 9110 §10.1.1).
    pub fn head_bytes(&self) -> Vec<u8> {
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
        out.into_bytes()
    }

    /// True when the request asks the server to confirm before the body is sent
    /// (`Expect: 100-continue`).
    pub fn expects_continue(&self) -> bool {
        self.body.as_ref().is_some_and(|b| !b.is_empty())
            && self.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("Expect")
                    && h.value.eq_ignore_ascii_case("100-continue")
            })
    }
}

/// The `Authorization` value of HTTP Basic authentication (RFC 7617) for
/// `user:password`: `Basic ` and the base64 of the bytes.
///
/// # Examples
/// ```
/// assert_eq!(sockit::http::basic_authorization("a:b"), "Basic YTpi");
/// ```
pub fn basic_authorization(credentials: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes())
    )
}

/// The one check of every header sent: the name is a token (RFC 9110 §5.1) and the value
/// has no CR, LF or NUL (RFC 9110 §5.5), which would end the header and start another.
fn check_header(name: &str, value: &str) -> Result<()> {
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Regression: -A, -e and -b values went out with their CR/LF (header injection)
        // while -H refused them: one rule for every header.
        for v in ["a\r\nX-Injected: 1", "a\nb", "a\0b"] {
            let e = r.set_default_header("User-Agent", v).unwrap_err();
            assert!(e.to_string().contains("line break or NUL"), "{e}");
        }
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
    fn redirect_methods() {
        assert_eq!(redirect_method(303, "POST"), ("GET".into(), false));
        assert_eq!(redirect_method(302, "POST"), ("GET".into(), false));
        assert_eq!(redirect_method(307, "POST"), ("POST".into(), true));
        assert_eq!(redirect_method(301, "PUT"), ("PUT".into(), true));
    }

    #[test]
    fn raw_methods() {
        assert_eq!(raw_request_method(b"HEAD / HTTP/1.1\r\n"), "HEAD");
        assert_eq!(raw_request_method(b"\r\n"), "");
    }
}
