//! URLs: `http://` and `https://` text split the way a request needs it (RFC 3986),
//! and references resolved against a base (RFC 3986 §5.2, for redirects).

use std::fmt;

use super::{OP_URL, hex_val};
use crate::error::{Error, Result};

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
    /// `[fe80::1%25lo]`). Non-ASCII bytes in the path are percent-encoded as UTF-8. The
    /// path's `.` and `..` segments are removed (RFC 3986 §5.2.4 `remove_dot_segments`,
    /// as curl does: `/a/../b/./c` is `/b/c`, and `/../../etc/passwd` is `/etc/passwd`);
    /// [`Url::parse_path_as_is`] keeps them.
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
    /// assert_eq!(Url::parse("http://h/a/../b/./c").unwrap().target, "/b/c");
    /// ```
    pub fn parse(text: &str) -> Result<Url> {
        Url::parse_with(text, true)
    }

    /// [`Url::parse`] without removing the path's `.` and `..` segments (curl's
    /// `--path-as-is`): they are sent as they are.
    ///
    /// # Errors
    /// As [`Url::parse`].
    ///
    /// # Examples
    /// ```
    /// use sockit::http::Url;
    /// assert_eq!(Url::parse_path_as_is("http://h/a/../b").unwrap().target, "/a/../b");
    /// ```
    pub fn parse_path_as_is(text: &str) -> Result<Url> {
        Url::parse_with(text, false)
    }

    fn parse_with(text: &str, squash: bool) -> Result<Url> {
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
        } else if squash {
            remove_dot_segments(path)
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

    /// True when `other` has the same origin (RFC 6454 §4: scheme, host and port), the
    /// test for handing credentials on after a redirect (curl's, since CVE-2022-27776).
    ///
    /// # Examples
    /// ```
    /// use sockit::http::Url;
    /// let a = Url::parse("http://h/x").unwrap();
    /// assert!(a.same_origin(&Url::parse("http://H:80/y").unwrap()));
    /// assert!(!a.same_origin(&Url::parse("http://h:8080/x").unwrap()));
    /// assert!(!a.same_origin(&Url::parse("https://h/x").unwrap()));
    /// ```
    pub fn same_origin(&self, other: &Url) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }

    /// Resolves a reference (a redirect's `Location`) against this URL (RFC 3986 §5.2):
    /// absolute URLs, `//authority/...`, `/path`, `?query` and relative paths; `.` and
    /// `..` segments are removed, in absolute references too. A space in the reference
    /// is percent-encoded as curl does (`%20` in the path, `+` in the query), so that a
    /// server's `Location: /a b` is followed.
    ///
    /// # Errors
    /// As [`Url::parse`] for the resulting URL (other whitespace and control characters
    /// are refused).
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
        self.join_with(reference, true)
    }

    /// [`Url::join`] keeping `.` and `..` segments (curl's `--path-as-is`).
    ///
    /// # Errors
    /// As [`Url::join`].
    pub fn join_path_as_is(&self, reference: &str) -> Result<Url> {
        self.join_with(reference, false)
    }

    fn join_with(&self, reference: &str, squash: bool) -> Result<Url> {
        let reference = encode_spaces(reference.trim());
        let reference = reference.as_str();
        let has_scheme = reference.find(':').is_some_and(|i| {
            i > 0
                && reference[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && reference[i..].starts_with("://")
        });
        if has_scheme {
            return Url::parse_with(reference, squash);
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return Url::parse_with(&format!("{}://{rest}", self.scheme.as_str()), squash);
        }
        if let Some(c) = reference
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid_input(
                OP_URL,
                format!("malformed URL reference {reference:?}: contains {c:?}"),
            ));
        }
        let squashed = |t: &str| {
            if squash {
                remove_dot_segments(t)
            } else {
                t.to_string()
            }
        };
        let reference = reference.split('#').next().unwrap_or("");
        let target = if reference.is_empty() {
            self.target.clone()
        } else if reference.starts_with('/') {
            squashed(reference)
        } else if reference.starts_with('?') {
            let path = self.target.split('?').next().unwrap_or("/");
            format!("{path}{reference}")
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            squashed(&format!("{dir}{reference}"))
        };
        let mut url = self.clone();
        url.target = encode_non_ascii(&target);
        Ok(url)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.is_ipv6() {
            match self.host.split_once('%') {
                Some((ip, zone)) => format!("[{ip}%25{}]", encode_zone(zone)),
                None => format!("[{}]", self.host),
            }
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
            // RFC 6874 writes the zone after "%25"; a bare "%" is accepted, as curl does.
            Some((a, z)) => (
                a,
                Some(zone_id(z.strip_prefix("25").unwrap_or(z)).map_err(|why| bad(&why))?),
            ),
            None => (inside, None),
        };
        let ip: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| bad(&format!("{inside:?} is not an IPv6 address")))?;
        let host = match zone {
            Some(z) => format!("{ip}%{z}"),
            None => ip.to_string(),
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

/// The longest zone id: an interface name (`IFNAMSIZ` 16 with its NUL) or index.
const MAX_ZONE_ID: usize = 15;

/// A zone id as written in a URL (RFC 6874 `ZoneID`, percent-encoded), decoded: 1 to
/// [`MAX_ZONE_ID`] printable ASCII characters other than `/` and `%` (an interface name or
/// number), so that it names an interface and [`encode_zone`] writes it back.
fn zone_id(text: &str) -> std::result::Result<String, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (
                b.get(i + 1).and_then(|&h| hex_val(h)),
                b.get(i + 2).and_then(|&l| hex_val(l)),
            ) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(format!("zone id {text:?} has a '%' that is not %XX")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let printable = |c: &u8| c.is_ascii_graphic() && !matches!(c, b'/' | b'%');
    if out.is_empty() || out.len() > MAX_ZONE_ID || !out.iter().all(printable) {
        return Err(format!(
            "zone id {:?} is not an interface name or number (1 to {MAX_ZONE_ID} printable \
             characters, no '/' or '%')",
            String::from_utf8_lossy(&out)
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A zone id for a URL: RFC 3986 `unreserved` characters as they are, others as `%XX`.
fn encode_zone(zone: &str) -> String {
    let mut out = String::with_capacity(zone.len());
    for &b in zone.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

/// A reference with its spaces percent-encoded as curl's `CURLU_URLENCODE` does for a
/// redirect: `%20` before the query, `+` in it (the fragment keeps `%20`).
fn encode_spaces(reference: &str) -> String {
    if !reference.contains(' ') {
        return reference.to_string();
    }
    let (before, fragment) = match reference.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (reference, None),
    };
    let (path, query) = match before.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before, None),
    };
    let mut out = path.replace(' ', "%20");
    if let Some(q) = query {
        out.push('?');
        out.push_str(&q.replace(' ', "+"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(&f.replace(' ', "%20"));
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
            // Regression: absolute references kept their dot segments, relative ones
            // did not; and a raw space was refused where curl encodes it.
            ("http://o/a/../b/./c", "http://o/b/c"),
            ("//o/../x", "http://o/x"),
            ("/a b?c d", "http://h:8080/a%20b?c+d"),
            ("http://o/a b", "http://o/a%20b"),
        ] {
            assert_eq!(base.join(r).unwrap().to_string(), want, "{r}");
        }
        assert_eq!(
            base.join_path_as_is("http://o/a/../b").unwrap().to_string(),
            "http://o/a/../b"
        );
        assert_eq!(
            base.join_path_as_is("../d").unwrap().to_string(),
            "http://h:8080/a/b/../d"
        );
        for bad in ["/a\tb", "/a\nb", "http://o/\rx"] {
            assert!(base.join(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dot_segments_are_removed_unless_as_is() {
        // Regression: `/a/../b/./c` and `/../../etc/passwd` were sent unchanged; curl
        // sends `/b/c` and `/etc/passwd` (RFC 3986 §5.2.4), and keeps them with
        // --path-as-is.
        for (text, want) in [
            ("http://h/a/../b/./c", "/b/c"),
            ("http://h/../../etc/passwd", "/etc/passwd"),
            ("http://h/a/b/..", "/a/"),
            ("http://h/a/./", "/a/"),
            ("http://h/a/..?x=/../y", "/?x=/../y"),
            ("http://h//x/./y", "//x/y"),
            ("http://h/%2e%2e/x", "/%2e%2e/x"),
        ] {
            assert_eq!(Url::parse(text).unwrap().target, want, "{text}");
        }
        let u = Url::parse_path_as_is("http://h/../../etc/passwd").unwrap();
        assert_eq!(u.target, "/../../etc/passwd");
    }

    #[test]
    fn origins() {
        let u = |s| Url::parse(s).unwrap();
        assert!(u("http://127.0.0.1:19500/a").same_origin(&u("http://127.0.0.1:19500/b")));
        assert!(!u("http://127.0.0.1:19500/").same_origin(&u("http://127.0.0.1:18080/")));
        assert!(!u("https://h/").same_origin(&u("http://h:443/")));
        assert!(!u("http://a/").same_origin(&u("http://b/")));
    }

    #[test]
    fn zone_ids_are_interface_names_and_round_trip() {
        // Regression: `%25a%20b` decoded to arbitrary bytes (a space here, U+FFFD for
        // %ff), and the URL printed back did not parse again.
        for bad in [
            "http://[fe80::1%25a%20b]/",
            "http://[fe80::1%25%ff]/",
            "http://[fe80::1%25%00]/",
            "http://[fe80::1%25a%2fb]/",
            "http://[fe80::1%25]/",
            "http://[fe80::1%25abcdefghijklmnop]/",
            "http://[fe80::1%25a%2]/",
        ] {
            let e = Url::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
            assert!(e.to_string().contains("zone id"), "{bad}: {e}");
        }
        for (text, host, back) in [
            (
                "http://[fe80::1%25eth0]/",
                "fe80::1%eth0",
                "http://[fe80::1%25eth0]/",
            ),
            (
                "http://[fe80::1%eth0]/",
                "fe80::1%eth0",
                "http://[fe80::1%25eth0]/",
            ),
            (
                "http://[fe80::1%253]/",
                "fe80::1%3",
                "http://[fe80::1%253]/",
            ),
            (
                "http://[fe80::1%25a%3Ab]/",
                "fe80::1%a:b",
                "http://[fe80::1%25a%3Ab]/",
            ),
        ] {
            let u = Url::parse(text).unwrap();
            assert_eq!(u.host, host, "{text}");
            assert_eq!(u.to_string(), back, "{text}");
            assert_eq!(Url::parse(&u.to_string()).unwrap(), u, "{text}");
        }
    }

    proptest! {
        #[test]
        fn printed_urls_parse_back_to_the_same_url(
            https in any::<bool>(),
            host in prop_oneof![
                "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,5}){0,2}",
                any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
                any::<std::net::Ipv6Addr>().prop_map(|a| format!("[{a}]")),
                (any::<std::net::Ipv6Addr>(), "[!-~]{1,15}")
                    .prop_map(|(a, z): (std::net::Ipv6Addr, String)| {
                        format!("[{a}%25{}]", super::encode_zone(&z))
                    }),
            ],
            port in proptest::option::of(any::<u16>()),
            path in "(/[a-zA-Z0-9._~!$&'()*+,;=:@%-]{0,8}){0,3}(\\?[a-z=&]{0,8})?",
        ) {
            let text = format!(
                "{}://{host}{}{path}",
                if https { "https" } else { "http" },
                port.map(|p| format!(":{p}")).unwrap_or_default()
            );
            // Zones with '/' or '%' are refused; every accepted URL round-trips.
            if let Ok(u) = Url::parse(&text) {
                let again = Url::parse(&u.to_string());
                prop_assert_eq!(again.as_ref().ok(), Some(&u), "{} -> {}", text, u);
            }
        }
    }
}
