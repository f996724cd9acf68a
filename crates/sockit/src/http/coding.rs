//! Content codings (RFC 9110 §8.4.1): the `gzip` and `deflate` bodies a client asks for
//! with `Accept-Encoding` (curl's `--compressed`), decoded as they arrive with flate2, in
//! bounded steps.

use std::io::Write;

use super::{OP_HTTP, ResponseHead};
use crate::error::{Error, Result};

/// The `Accept-Encoding` value of a client that decodes what [`ContentDecoder`] decodes.
pub const ACCEPT_ENCODING: &str = "deflate, gzip";

/// Input is fed to the decompressor this many bytes at a time, so that one step's output
/// stays bounded (deflate expands at most about 1032:1: about 1 MiB per step).
const STEP: usize = 1024;

enum Coding {
    Gzip(Gzip),
    /// `deflate`: zlib-wrapped (RFC 1950) as the RFC says, or raw deflate (RFC 1951) as
    /// some servers send it; decided by the first two bytes, as curl and browsers do.
    Deflate(DeflateState),
}

/// `gzip`: one member after another (RFC 1952 §2.2); after the end of a member, the next
/// bytes must begin another (`1f 8b`), or the body must end.
struct Gzip {
    member: flate2::write::GzDecoder<Vec<u8>>,
    /// After a member's end: the bytes of the next member's magic seen so far.
    between: Option<Vec<u8>>,
    /// Bytes fed in all (an empty body is no stream at all).
    fed: u64,
}

/// The magic bytes that begin a gzip member (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Gzip {
    fn new() -> Gzip {
        Gzip {
            member: flate2::write::GzDecoder::new(Vec::new()),
            between: None,
            fed: 0,
        }
    }

    fn junk() -> Error {
        Error::protocol(
            OP_HTTP,
            "bad compressed body: junk after the end of the gzip stream (not another gzip \
             member)",
        )
    }

    fn write(&mut self, mut input: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.fed += input.len() as u64;
        while !input.is_empty() {
            if let Some(magic) = self.between.as_mut() {
                let take = (GZIP_MAGIC.len() - magic.len()).min(input.len());
                magic.extend_from_slice(&input[..take]);
                input = &input[take..];
                if magic[..] != GZIP_MAGIC[..magic.len()] {
                    return Err(Gzip::junk());
                }
                if magic.len() == GZIP_MAGIC.len() {
                    self.between = None;
                    self.member = flate2::write::GzDecoder::new(Vec::new());
                    self.member.write_all(&GZIP_MAGIC).map_err(corrupt)?;
                }
                continue;
            }
            let n = self.member.write(input).map_err(corrupt)?;
            out.append(self.member.get_mut());
            if n == 0 {
                // the member is complete (its CRC and length read): check them
                self.member.try_finish().map_err(corrupt)?;
                out.append(self.member.get_mut());
                self.between = Some(Vec::new());
            }
            input = &input[n..];
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        match &self.between {
            Some(magic) if magic.is_empty() => Ok(Vec::new()),
            Some(_) => Err(Gzip::junk()),
            None if self.fed == 0 => Ok(Vec::new()),
            None => {
                // a member whose trailer has not fully arrived fails its check here
                self.member.try_finish().map_err(corrupt)?;
                Ok(std::mem::take(self.member.get_mut()))
            }
        }
    }
}

enum DeflateState {
    Undecided(Vec<u8>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    Raw(flate2::write::DeflateDecoder<Vec<u8>>),
}

/// Decodes a body's content codings (`Content-Encoding: gzip`, `deflate`, `x-gzip`, or
/// several in a row), streaming: [`decode`](ContentDecoder::decode) each piece of the body
/// as it arrives, then [`finish`](ContentDecoder::finish).
pub struct ContentDecoder {
    /// The codings in the order they are undone (the last one applied first).
    codings: Vec<Coding>,
}

impl std::fmt::Debug for ContentDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentDecoder")
            .field("codings", &self.codings.len())
            .finish()
    }
}

impl ContentDecoder {
    /// The decoder for a response's `Content-Encoding`; `Ok(None)` when the body is not
    /// encoded (no header, or `identity`).
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a coding other than gzip and
    /// deflate (`br`, `zstd`, …), which was not asked for.
    pub fn for_head(head: &ResponseHead) -> Result<Option<ContentDecoder>> {
        ContentDecoder::of_header(head, "Content-Encoding", |other| {
            format!(
                "the body is encoded with {other:?}, which sockit does not decode (it asked \
                 for {ACCEPT_ENCODING})"
            )
        })
    }

    /// The decoder for a response's `Transfer-Encoding` codings other than `chunked`
    /// (RFC 9112 §6.1: `gzip, chunked` is a gzip body sent in chunks; the chunks are
    /// [`BodyDecoder`](super::BodyDecoder)'s); `Ok(None)` when there are none. Transfer
    /// codings are the message's, not the content's: they are undone whether or not
    /// they were asked for, as curl does.
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a coding other than gzip
    /// and deflate.
    pub fn for_transfer(head: &ResponseHead) -> Result<Option<ContentDecoder>> {
        ContentDecoder::of_header(head, "Transfer-Encoding", |other| {
            format!("the body is sent with transfer coding {other:?}, which sockit does not decode")
        })
    }

    fn of_header(
        head: &ResponseHead,
        header: &str,
        unknown: impl Fn(&str) -> String,
    ) -> Result<Option<ContentDecoder>> {
        let names: Vec<String> = head
            .header_all(header)
            .flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty() && c != "identity" && c != "chunked")
                    .collect::<Vec<_>>()
            })
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let mut codings = Vec::with_capacity(names.len());
        for name in names.iter().rev() {
            codings.push(match name.as_str() {
                "gzip" | "x-gzip" => Coding::Gzip(Gzip::new()),
                "deflate" => Coding::Deflate(DeflateState::Undecided(Vec::new())),
                other => return Err(Error::protocol(OP_HTTP, unknown(other))),
            });
        }
        Ok(Some(ContentDecoder { codings }))
    }

    /// Decodes a piece of the encoded body, handing the decoded bytes to `sink` in pieces
    /// of bounded size.
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for bytes that are not valid
    /// gzip or deflate data; whatever `sink` returns.
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        for step in input.chunks(STEP) {
            let mut data = step.to_vec();
            for coding in &mut self.codings {
                data = coding.write(&data)?;
                if data.is_empty() {
                    break;
                }
            }
            if !data.is_empty() {
                sink(&data)?;
            }
        }
        Ok(())
    }

    /// Ends the body: flushes what the decompressors hold, and checks that each encoded
    /// stream was complete.
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for an encoded stream cut short
    /// or corrupt at its end; whatever `sink` returns.
    pub fn finish(&mut self, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut carry: Vec<u8> = Vec::new();
        for coding in &mut self.codings {
            let mut out = if carry.is_empty() {
                Vec::new()
            } else {
                coding.write(&carry)?
            };
            out.extend(coding.finish()?);
            carry = out;
        }
        if !carry.is_empty() {
            sink(&carry)?;
        }
        Ok(())
    }
}

fn corrupt(e: std::io::Error) -> Error {
    Error::protocol(OP_HTTP, format!("bad compressed body: {e}"))
}

impl Coding {
    /// Feeds `input`, returning the output produced so far.
    fn write(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        match self {
            Coding::Gzip(g) => g.write(input),
            Coding::Deflate(state) => {
                if let DeflateState::Undecided(head) = state {
                    head.extend_from_slice(input);
                    if head.len() < 2 {
                        return Ok(Vec::new());
                    }
                    let buffered = std::mem::take(head);
                    // RFC 1950: CM 8 (deflate) and (CMF*256 + FLG) divisible by 31.
                    let zlib = buffered[0] & 0x0f == 8
                        && (u16::from(buffered[0]) << 8 | u16::from(buffered[1])) % 31 == 0;
                    *state = if zlib {
                        DeflateState::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                    } else {
                        DeflateState::Raw(flate2::write::DeflateDecoder::new(Vec::new()))
                    };
                    return self.write(&buffered);
                }
                match state {
                    DeflateState::Zlib(d) => {
                        d.write_all(input).map_err(corrupt)?;
                        Ok(std::mem::take(d.get_mut()))
                    }
                    DeflateState::Raw(d) => {
                        d.write_all(input).map_err(corrupt)?;
                        Ok(std::mem::take(d.get_mut()))
                    }
                    DeflateState::Undecided(_) => Ok(Vec::new()),
                }
            }
        }
    }

    /// Ends the stream: the last output.
    fn finish(&mut self) -> Result<Vec<u8>> {
        let cut = || Error::protocol(OP_HTTP, "bad compressed body: the stream is cut short");
        match self {
            Coding::Gzip(g) => g.finish(),
            Coding::Deflate(DeflateState::Undecided(head)) if head.is_empty() => Ok(Vec::new()),
            Coding::Deflate(DeflateState::Undecided(_)) => Err(cut()),
            Coding::Deflate(DeflateState::Zlib(d)) => {
                d.try_finish().map_err(corrupt)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Coding::Deflate(DeflateState::Raw(d)) => {
                d.try_finish().map_err(corrupt)?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::tests::head;

    fn decode_all(coding: &str, wire: &[u8], step: usize) -> Result<Vec<u8>> {
        let h = head(200, &[("Content-Encoding", coding)]);
        let mut d = ContentDecoder::for_head(&h)?.expect("a decoder");
        let mut out = Vec::new();
        let mut sink = |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        };
        for piece in wire.chunks(step) {
            d.decode(piece, &mut sink)?;
        }
        d.finish(&mut sink)?;
        Ok(out)
    }

    fn text() -> Vec<u8> {
        (0..5000)
            .flat_map(|i: u32| format!("line {i}\n").into_bytes())
            .collect()
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_decode_in_any_piece_size() {
        let t = text();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&t).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&t).unwrap();
        let zl = zl.finish().unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&t).unwrap();
        let raw = raw.finish().unwrap();
        for step in [1, 7, 4096, 1 << 20] {
            assert_eq!(decode_all("gzip", &gz, step).unwrap(), t, "gzip {step}");
            assert_eq!(decode_all("x-gzip", &gz, step).unwrap(), t, "x-gzip {step}");
            assert_eq!(decode_all("deflate", &zl, step).unwrap(), t, "zlib {step}");
            assert_eq!(decode_all("deflate", &raw, step).unwrap(), t, "raw {step}");
        }
        // two codings: gzip applied after deflate is undone first
        let mut both = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        both.write_all(&zl).unwrap();
        let both = both.finish().unwrap();
        assert_eq!(decode_all("deflate, gzip", &both, 100).unwrap(), t);
    }

    #[test]
    fn bad_or_unknown_codings_are_protocol_errors() {
        let e = decode_all("gzip", b"not gzip at all", 100).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Protocol, "{e}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text()).unwrap();
        let gz = gz.finish().unwrap();
        let e = decode_all("gzip", &gz[..gz.len() / 2], 100).unwrap_err();
        assert!(e.to_string().contains("bad compressed body"), "{e}");
        // Regression: junk after a complete gzip member was "incomplete deflate stream".
        for junk in [&b"\n"[..], b"junk after", b"\x1f"] {
            let mut bytes = gz.clone();
            bytes.extend_from_slice(junk);
            for step in [1, 3, 100_000] {
                let e = decode_all("gzip", &bytes, step).unwrap_err();
                assert!(
                    e.to_string()
                        .contains("junk after the end of the gzip stream"),
                    "{junk:?} {step}: {e}"
                );
            }
        }
        // two members in a row are one body (RFC 1952 §2.2)
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        let mut want = text();
        want.extend(text());
        for step in [1, 5, 100_000] {
            assert_eq!(decode_all("gzip", &two, step).unwrap(), want, "{step}");
        }
        assert_eq!(decode_all("gzip", b"", 10).unwrap(), b"");
        let e = ContentDecoder::for_head(&head(200, &[("Content-Encoding", "br")])).unwrap_err();
        assert!(e.to_string().contains("\"br\""), "{e}");
        assert!(
            ContentDecoder::for_head(&head(200, &[("Content-Encoding", "identity")]))
                .unwrap()
                .is_none()
        );
    }
}
