//! Response heads: the status line and headers (RFC 9112 §4, §5), parsed with httparse
//! and bounded by [`MAX_HEAD_BYTES`].

use super::{MAX_HEAD_BYTES, OP_HTTP};
use crate::error::{Error, Result};

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ErrorKind;

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

    /// A head with this status and headers (HTTP/1.1, no reason phrase).
    pub(in crate::http) fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
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
    fn redirect_locations() {
        assert_eq!(
            head(301, &[("Location", " /x ")])
                .redirect_location()
                .as_deref(),
            Some("/x")
        );
        assert_eq!(head(200, &[("Location", "/x")]).redirect_location(), None);
    }
}
