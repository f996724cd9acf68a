//! Body framing (RFC 9112 §6.3: Content-Length, chunked, or until close) and the
//! decoder that follows it (RFC 9112 §7.1 chunked coding), bounded in memory.

use super::{MAX_HEAD_BYTES, OP_HTTP, ResponseHead, escape_bytes, hex_val};
use crate::error::{Error, Result};

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
    /// Reading hex digits of the size (`digits` read so far, leading zeros included).
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

    /// A decoder whose body ended after `body_bytes` bytes (a close-delimited body at
    /// the end of stream): done, keeping the count.
    pub(super) fn ended(body_bytes: u64) -> BodyDecoder {
        BodyDecoder {
            body_bytes,
            ..BodyDecoder::new(Framing::Empty)
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
                        // Leading zeros are allowed (RFC 9112 §7.1: 1*HEXDIG), however
                        // many the line holds: only the value must fit in 64 bits.
                        if size > u64::MAX >> 4 {
                            return Err(bad("chunk size too large (more than 64 bits)"));
                        }
                        self.chunk = Chunk::Size {
                            size: size << 4 | u64::from(d),
                            digits: digits.saturating_add(1),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::tests::head;

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
        // Regression: more than 16 hex digits were refused even when the extra ones are
        // leading zeros, which RFC 9112 allows.
        let wire = b"000000000000000000000000000005\r\nhello\r\n00000000000000000000\r\n\r\n";
        for step in [1, 4, 1000] {
            let (out, used, done) = decode_all(Framing::Chunked, wire, step).unwrap();
            assert_eq!(
                (out.as_slice(), used, done),
                (&b"hello"[..], wire.len(), true)
            );
        }
        // A value past 64 bits is still refused, and the line stays bounded.
        let e = decode_all(Framing::Chunked, b"10000000000000000\r\n", 1000).unwrap_err();
        assert!(e.to_string().contains("chunk size too large"), "{e}");
        let zeros = vec![b'0'; MAX_CHUNK_LINE + 1];
        let e = decode_all(Framing::Chunked, &zeros, 1000).unwrap_err();
        assert!(e.to_string().contains("chunk-size line longer"), "{e}");
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
}
