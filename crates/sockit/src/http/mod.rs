//! Raw HTTP/1.x over a socket: the bytes on the wire, and one exchange that sends them.
//!
//! Python: the slides' `s.sendall(b"GET / HTTP/1.1\r\n\r\n")` then `s.recv(4096)`, made
//! exact: RFC 9112 (HTTP/1.1 message syntax and framing), RFC 9110 (semantics),
//! RFC 3986 (URLs).
//!
//! The module has two halves, as smoltcp keeps wire formats apart from behaviour (and as
//! hyper's `proto/h1` splits its files):
//!
//! **Bytes on the wire** — pure functions and state machines, no I/O:
//! - `url`: [`Url::parse`] / [`Url::join`] / [`Url`]'s `Display` (they round-trip);
//! - `request`: [`Request`] and [`Request::to_bytes`], [`redirect_method`];
//! - `response`: [`parse_response_head`] (httparse; heads larger than
//!   [`MAX_HEAD_BYTES`] are refused);
//! - `body`: [`framing`] (Content-Length, chunked, or until close; RFC 9112 §6.3) and
//!   [`BodyDecoder`] (chunked decoding, truncation detection);
//! - `coding`: [`ContentDecoder`] (gzip and deflate content codings, streamed).
//!
//! **Doing the exchange** — `exchange`: [`Exchange`]: resolve the host with one
//! `getaddrinfo(3)` call ([`crate::client::resolve_until`]), connect with Happy Eyeballs
//! (RFC 8305, [`crate::client::connect_happy_blocking`]) under the connect timeout, the
//! TLS handshake (rustls, see [`crate::tls`]), send the request, read the head and the
//! body. Every phase is timed ([`Timings`], microseconds in the CLI). Contracts:
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

mod body;
mod coding;
mod conn;
mod exchange;
mod request;
mod response;
mod url;

pub use body::{BodyDecoder, Framing, framing};
pub use coding::{ACCEPT_ENCODING, ContentDecoder};
pub use exchange::{
    BodyPiece, Event, Exchange, MAX_INTERIM_RESPONSES, Observer, Options, Route, Timings,
};
pub use request::{Request, Version, basic_authorization, raw_request_method, redirect_method};
pub use response::{ResponseHead, escape_bytes, parse_response_head};
pub use url::{Scheme, Url};

/// The largest response head accepted (status line, headers and the blank line): 64 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The `User-Agent` sockit sends: `sockit/VERSION`.
pub const USER_AGENT: &str = concat!("sockit/", env!("CARGO_PKG_VERSION"));

const OP_URL: &str = "url";
const OP_HTTP: &str = "http";

/// The value of one hexadecimal digit.
fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
