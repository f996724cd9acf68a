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
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    /// `deflate`: zlib-wrapped (RFC 1950) as the RFC says, or raw deflate (RFC 1951) as
    /// some servers send it; decided by the first two bytes, as curl and browsers do.
    Deflate(DeflateState),
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
        let names: Vec<String> = head
            .header_all("Content-Encoding")
            .flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty() && c != "identity")
                    .collect::<Vec<_>>()
            })
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let mut codings = Vec::with_capacity(names.len());
        for name in names.iter().rev() {
            codings.push(match name.as_str() {
                "gzip" | "x-gzip" => Coding::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
                "deflate" => Coding::Deflate(DeflateState::Undecided(Vec::new())),
                other => {
                    return Err(Error::protocol(
                        OP_HTTP,
                        format!(
                            "the body is encoded with {other:?}, which sockit does not decode \
                             (it asked for {ACCEPT_ENCODING})"
                        ),
                    ));
                }
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
            Coding::Gzip(d) => {
                d.write_all(input).map_err(corrupt)?;
                Ok(std::mem::take(d.get_mut()))
            }
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
            Coding::Gzip(d) => {
                d.try_finish().map_err(corrupt)?;
                Ok(std::mem::take(d.get_mut()))
            }
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
        let e = ContentDecoder::for_head(&head(200, &[("Content-Encoding", "br")])).unwrap_err();
        assert!(e.to_string().contains("\"br\""), "{e}");
        assert!(
            ContentDecoder::for_head(&head(200, &[("Content-Encoding", "identity")]))
                .unwrap()
                .is_none()
        );
    }
}
