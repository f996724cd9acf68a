//! One exchange over one connection: lookup, connect (Happy Eyeballs), TLS, send the
//! request, read the head and the body, each phase timed.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BodyDecoder, OP_HTTP, ResponseHead, Scheme, Url, framing, parse_response_head};
use crate::addr::Family;
use crate::error::{Error, Result};
use crate::tls;

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
        let addrs =
            crate::client::resolve_until(&url.host, url.port, opts.family, connect_deadline)?;
        let mut timings = Timings {
            dns: start.elapsed(),
            ..Timings::default()
        };
        emit(&Event::Resolved(&addrs));
        let ordered = crate::client::happy_order(addrs);
        emit(&Event::Connecting(&ordered));
        let (tcp, attempts) = crate::client::connect_happy_blocking(ordered, connect_deadline)?;
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
    ///   line`), a head past [`MAX_HEAD_BYTES`](super::MAX_HEAD_BYTES), a bad `Content-Length`, or a connection
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
                self.decoder = Some(BodyDecoder::ended(body_bytes));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Request, Version};

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
}
