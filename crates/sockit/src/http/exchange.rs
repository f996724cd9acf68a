//! One exchange over one connection: lookup, connect (Happy Eyeballs), TLS, send the
//! request, read the head and the body, each phase timed; then, on a keep-alive
//! connection, the next request ([`Exchange::restart`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Conn, Stream, connect_unix, io_error, set_timeouts};
use super::{
    BodyDecoder, ContentDecoder, MAX_HEAD_BYTES, OP_HTTP, ResponseHead, Scheme, Url, framing,
    parse_response_head,
};
use crate::addr::Family;
use crate::error::{Error, Result};
use crate::tls;

/// Wire bytes decoded at a time when the body has a transfer coding other than chunked,
/// so that one [`BodyPiece`] stays bounded (deflate expands about 1032:1 at most).
const TRANSFER_STEP: usize = 1024;

/// The most interim (1xx) responses accepted before the final one. A server sends one
/// `100 Continue` or a few `103 Early Hints`; one that sends them without end is refused
/// ([`ErrorKind::Protocol`](crate::ErrorKind::Protocol)) instead of read forever.
pub const MAX_INTERIM_RESPONSES: usize = 32;

/// How an [`Exchange`] connects and how long it may take.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Limit for name lookup and connect together, over all addresses (curl's
    /// `--connect-timeout`).
    pub connect_timeout: Option<Duration>,
    /// Limit for the whole exchange, from the lookup to the last body byte (`--max-time`);
    /// after [`Exchange::restart`], for that request.
    pub max_time: Option<Duration>,
    /// Only IPv4 or only IPv6 addresses (`-4` / `-6`); `None` is `AF_UNSPEC`.
    pub family: Option<Family>,
    /// The TLS client configuration for `https://` (see [`tls::client_config`]); `None`
    /// means the default: system roots, ALPN `http/1.1`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Where to connect instead of the URL's host and port; the URL still gives the
    /// `Host` header and the TLS server name. `None`: the URL's host and port.
    pub route: Option<Route>,
    /// Reach the host (the route's, else the URL's) through this proxy: connect to the
    /// proxy, then tunnel ([`crate::proxy::client::tunnel_blocking`]: SOCKS4/4a, SOCKS5
    /// or HTTP `CONNECT`) before TLS and the request. Not with [`Route::Unix`].
    pub proxy: Option<crate::proxy::client::Proxy>,
}

/// Where an [`Exchange`] connects when it is not the URL's host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Look this host and port up instead (curl's `--connect-to`).
    Host {
        /// The host to look up (a name or an address).
        host: String,
        /// The port to connect to.
        port: u16,
    },
    /// Connect to these addresses, in this order, with no lookup (curl's `--resolve`).
    Addrs(Vec<SocketAddr>),
    /// Connect to this Unix stream socket (curl's `--unix-socket`).
    Unix(PathBuf),
}

/// When each phase ended, measured from the start of the request ([`Exchange::open`], or
/// [`Exchange::restart`] on a reused connection); cumulative, as curl's
/// `-w %{time_connect}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Name lookup done (`None` on a reused connection).
    pub dns: Option<Duration>,
    /// Connection established (`None` on a reused connection).
    pub connect: Option<Duration>,
    /// TLS handshake done (`None` for plain HTTP and on a reused connection).
    pub tls: Option<Duration>,
    /// The request is about to be sent (curl's `time_pretransfer`).
    pub pretransfer: Option<Duration>,
    /// Last request byte handed to the kernel.
    pub request_sent: Option<Duration>,
    /// First response byte received (curl's `time_starttransfer`).
    pub first_byte: Option<Duration>,
    /// Response complete.
    pub total: Option<Duration>,
}

/// What happens during an exchange, in order, for an observer (the CLI's `-v`).
#[derive(Debug)]
pub enum Event<'a> {
    /// The name lookup answered these addresses (or `--resolve` gave them).
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
    /// Connected to this Unix stream socket.
    ConnectedUnix(&'a Path),
    /// The next request goes over the connection of the previous one (keep-alive).
    Reused,
    /// The TLS handshake is done.
    TlsDone(&'a tls::SessionInfo),
    /// These request bytes were sent.
    Sent(&'a [u8]),
    /// A request body of this many bytes was sent after its head (`Expect: 100-continue`).
    SentBody(usize),
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

/// The observer callback type: sees each [`Event`] as it happens.
pub type Observer<'o> = dyn FnMut(&Event<'_>) + 'o;

/// One HTTP exchange over one connection: [`open`](Exchange::open) (lookup, connect, TLS),
/// [`send`](Exchange::send), [`read_head`](Exchange::read_head),
/// [`read_body`](Exchange::read_body) until `None`; then, when
/// [`reusable`](Exchange::reusable), [`restart`](Exchange::restart) and the next request
/// on the same connection.
///
/// Python: `socket.create_connection((host, port))`, `ssl.wrap_socket`, `sendall`, `recv`.
pub struct Exchange<'o> {
    stream: Stream,
    buf: Vec<u8>,
    start: Instant,
    max_time: Option<Duration>,
    deadline: Option<Instant>,
    timings: Timings,
    observer: Option<&'o mut Observer<'o>>,
    decoder: Option<BodyDecoder>,
    /// The transfer codings other than chunked (`Transfer-Encoding: gzip, chunked`).
    transfer: Option<ContentDecoder>,
    eof: bool,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    tls_info: Option<tls::SessionInfo>,
    bytes_sent: u64,
    bytes_received: u64,
    head_bytes: Vec<u8>,
    interim: usize,
    keep_alive: bool,
    reused: bool,
    body_withheld: bool,
}

impl fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("peer", &self.peer)
            .field("unix_path", &self.unix_path)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl<'o> Exchange<'o> {
    /// Resolves `url`'s host (one `getaddrinfo(3)` call, `AI_NUMERICHOST` for an address)
    /// — or what `opts.route` says instead — connects with Happy Eyeballs (RFC 8305: IPv6
    /// first, the next address 250 ms later or at once after a failure, first to connect
    /// wins), all within `connect_timeout`, and for `https://` does the TLS handshake (SNI,
    /// ALPN, verification as `opts.tls` says).
    ///
    /// # Errors
    /// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) when the name does not resolve.
    /// - [`ErrorKind::Os`](crate::ErrorKind::Os) when every connect fails (the last
    ///   error, e.g. `connect: [Errno 111] Connection refused`).
    /// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) with op `getaddrinfo`,
    ///   `connect` or `tls handshake` when a deadline expires.
    /// - [`ErrorKind::Tls`](crate::ErrorKind::Tls) when the handshake fails.
    /// - [`ErrorKind::Proxy`](crate::ErrorKind::Proxy) when `opts.proxy` refuses (its
    ///   reply in the message), [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    ///   for a proxy with a Unix socket route.
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
        let mut timings = Timings::default();
        if opts.proxy.is_some() && matches!(opts.route, Some(Route::Unix(_))) {
            return Err(Error::invalid_input(
                "http",
                "a proxy and a Unix socket route cannot be combined",
            ));
        }
        let (conn, local, peer, unix_path) = match &opts.route {
            Some(Route::Unix(path)) => {
                timings.dns = Some(start.elapsed());
                let conn = connect_unix(path, connect_deadline)?;
                timings.connect = Some(start.elapsed());
                emit(&Event::ConnectedUnix(path));
                (Conn::Unix(conn), None, None, Some(path.clone()))
            }
            route => {
                let addrs = match (&opts.proxy, route) {
                    (Some(p), _) => {
                        let port = crate::proxy::client::port_number(&p.port)?;
                        crate::client::resolve_until(&p.host, port, opts.family, connect_deadline)?
                    }
                    (None, route) => match route {
                        Some(Route::Addrs(addrs)) => addrs_of_family(addrs, opts.family)?,
                        Some(Route::Host { host, port }) => crate::client::resolve_until(
                            host,
                            *port,
                            opts.family,
                            connect_deadline,
                        )?,
                        _ => crate::client::resolve_until(
                            &url.host,
                            url.port,
                            opts.family,
                            connect_deadline,
                        )?,
                    },
                };
                timings.dns = Some(start.elapsed());
                emit(&Event::Resolved(&addrs));
                let ordered = crate::client::happy_order(addrs);
                emit(&Event::Connecting(&ordered));
                let (mut tcp, attempts) =
                    crate::client::connect_happy_blocking(ordered, connect_deadline)?;
                if let Some(p) = &opts.proxy {
                    let (host, port) = match route {
                        Some(Route::Host { host, port }) => (host.clone(), *port),
                        Some(Route::Addrs(a)) if !a.is_empty() => {
                            (a[0].ip().to_string(), a[0].port())
                        }
                        _ => (url.host.clone(), url.port),
                    };
                    crate::proxy::client::tunnel_blocking(
                        &mut tcp,
                        p,
                        &host,
                        port,
                        opts.family,
                        connect_deadline,
                    )?;
                }
                timings.connect = Some(start.elapsed());
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
                (Conn::Tcp(tcp), Some(local), Some(peer), None)
            }
        };

        let (stream, tls_info) = match url.scheme {
            Scheme::Http => (Stream::Plain(conn), None),
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
                let mut tls_conn =
                    rustls::ClientConnection::new(config, name).map_err(|e| tls::tls_error(&e))?;
                let mut conn = conn;
                while tls_conn.is_handshaking() {
                    set_timeouts(&conn, deadline, "tls handshake")?;
                    if let Err(e) = tls_conn.complete_io(&mut conn) {
                        return Err(match e.kind() {
                            io::ErrorKind::UnexpectedEof => Error::tls(
                                "the peer closed the connection during the TLS handshake",
                            ),
                            _ => io_error("tls handshake", e),
                        });
                    }
                }
                let info = tls::SessionInfo::of(&tls_conn);
                timings.tls = Some(start.elapsed());
                emit(&Event::TlsDone(&info));
                (
                    Stream::Tls(Box::new(rustls::StreamOwned::new(tls_conn, conn))),
                    Some(info),
                )
            }
        };
        Ok(Exchange {
            stream,
            buf: Vec::new(),
            start,
            max_time: opts.max_time,
            deadline,
            timings,
            observer,
            decoder: None,
            transfer: None,
            eof: false,
            local,
            peer,
            unix_path,
            tls_info,
            bytes_sent: 0,
            bytes_received: 0,
            head_bytes: Vec::new(),
            interim: 0,
            keep_alive: false,
            reused: false,
            body_withheld: false,
        })
    }

    fn emit(&mut self, ev: &Event<'_>) {
        if let Some(o) = self.observer.as_mut() {
            o(ev);
        }
    }

    /// True when another request may go over this connection (HTTP keep-alive, RFC 9112
    /// §9.3): the last response was read to its end by its framing (not by the close of
    /// the connection), it did not say `Connection: close` (an HTTP/1.0 response must say
    /// `keep-alive`), and the peer has not closed the connection since.
    pub fn reusable(&self) -> bool {
        self.keep_alive
            && !self.body_withheld
            && !self.eof
            && self.buf.is_empty()
            && self.decoder.as_ref().is_some_and(BodyDecoder::is_done)
            && !self.stream.conn().peer_closed()
    }

    /// Starts the next request on this connection (keep-alive): the timings start again
    /// (with no lookup, connect or TLS: they are `None`), so do the byte counts, the head
    /// bytes and the `max_time` deadline. Then [`send`](Exchange::send) as after
    /// [`open`](Exchange::open).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the connection is
    /// not [`reusable`](Exchange::reusable).
    pub fn restart(&mut self) -> Result<()> {
        if !self.reusable() {
            return Err(Error::invalid_input(
                OP_HTTP,
                "the connection cannot carry another request (closed, or not keep-alive)",
            ));
        }
        self.start = Instant::now();
        self.deadline = self.max_time.map(|d| self.start + d);
        self.timings = Timings::default();
        self.decoder = None;
        self.transfer = None;
        self.bytes_sent = 0;
        self.bytes_received = 0;
        self.head_bytes.clear();
        self.interim = 0;
        self.keep_alive = false;
        self.reused = true;
        self.emit(&Event::Reused);
        Ok(())
    }

    /// True after [`restart`](Exchange::restart): this request went over the connection
    /// of an earlier one.
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// Sends request bytes exactly as given (`send(2)` until all are written).
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (op `send request`),
    /// [`ErrorKind::Os`](crate::ErrorKind::Os), [`ErrorKind::Tls`](crate::ErrorKind::Tls).
    pub fn send(&mut self, request: &[u8]) -> Result<()> {
        const OP: &str = "send request";
        if self.timings.pretransfer.is_none() {
            self.timings.pretransfer = Some(self.start.elapsed());
        }
        set_timeouts(self.stream.conn(), self.deadline, OP)?;
        self.stream
            .write_all(request)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_error(OP, e))?;
        self.bytes_sent += request.len() as u64;
        self.timings.request_sent = Some(self.start.elapsed());
        self.emit(&Event::Sent(request));
        Ok(())
    }

    /// Sends a request body after its head went with [`send`](Exchange::send) and
    /// [`wait_continue`](Exchange::wait_continue) said to go on; the observer sees
    /// [`Event::SentBody`].
    ///
    /// # Errors
    /// As [`send`](Exchange::send).
    pub fn send_body(&mut self, body: &[u8]) -> Result<()> {
        const OP: &str = "send request body";
        set_timeouts(self.stream.conn(), self.deadline, OP)?;
        self.stream
            .write_all(body)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_error(OP, e))?;
        self.bytes_sent += body.len() as u64;
        self.timings.request_sent = Some(self.start.elapsed());
        self.emit(&Event::SentBody(body.len()));
        Ok(())
    }

    /// After a request head with `Expect: 100-continue` (RFC 9110 §10.1.1): waits at most
    /// `wait` for the server's word. `Ok(true)` means send the body: `100 Continue` came
    /// (it is consumed, shown to the observer and kept in the head bytes) or nothing came
    /// in time. `Ok(false)` means the server answered with a final status instead: the
    /// body is not sent ([`read_head`](Exchange::read_head) reads that answer) and the
    /// connection will not be reused.
    ///
    /// # Errors
    /// As [`read_head`](Exchange::read_head) for bytes that are not an HTTP answer, the
    /// end of the connection, or the exchange's deadline.
    pub fn wait_continue(&mut self, wait: Duration) -> Result<bool> {
        const OP: &str = "wait for 100 Continue";
        let until = Instant::now() + wait;
        let until = self.deadline.map_or(until, |d| d.min(until));
        loop {
            if let Some((head, n)) = parse_response_head(&self.buf)? {
                if head.status == 100 {
                    let raw: Vec<u8> = self.buf.drain(..n).collect();
                    self.emit(&Event::HeadReceived(&raw, &head));
                    self.interim += 1;
                    self.head_bytes.extend_from_slice(&raw);
                    return Ok(true);
                }
                self.body_withheld = true;
                return Ok(false);
            }
            if self.eof {
                return Ok(false);
            }
            if Instant::now() >= until {
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::timeout(OP));
                }
                return Ok(true);
            }
            match self.fill_until(OP, Some(until)) {
                Ok(_) => {}
                Err(e) if e.kind() == crate::ErrorKind::Timeout => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self, op: &'static str) -> Result<usize> {
        self.fill_until(op, self.deadline)
    }

    /// [`fill`](Exchange::fill) with another deadline.
    fn fill_until(&mut self, op: &'static str, deadline: Option<Instant>) -> Result<usize> {
        if self.eof {
            return Ok(0);
        }
        set_timeouts(self.stream.conn(), deadline, op)?;
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
    /// Interim answers are bounded: at most [`MAX_INTERIM_RESPONSES`] of them, of at most
    /// [`MAX_HEAD_BYTES`](super::MAX_HEAD_BYTES) together.
    ///
    /// # Errors
    /// - [`ErrorKind::Protocol`](crate::ErrorKind::Protocol): not HTTP (`malformed status
    ///   line`), a head past [`MAX_HEAD_BYTES`](super::MAX_HEAD_BYTES), too many or too
    ///   large interim (1xx) answers, a bad `Content-Length`, or a connection closed before
    ///   a complete head (`empty reply from server`).
    /// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) with op `wait for first byte`
    ///   or `read response head`; [`ErrorKind::Os`](crate::ErrorKind::Os);
    ///   [`ErrorKind::Tls`](crate::ErrorKind::Tls).
    pub fn read_head(&mut self, method: &str) -> Result<ResponseHead> {
        loop {
            if let Some((head, n)) = parse_response_head(&self.buf)? {
                let raw: Vec<u8> = self.buf.drain(..n).collect();
                self.emit(&Event::HeadReceived(&raw, &head));
                if (100..200).contains(&head.status) && head.status != 101 {
                    self.interim += 1;
                    if self.interim > MAX_INTERIM_RESPONSES {
                        return Err(Error::protocol(
                            OP_HTTP,
                            format!(
                                "more than {MAX_INTERIM_RESPONSES} interim (1xx) responses \
                                 before the final one: refused (the last was {})",
                                head.status_line()
                            ),
                        ));
                    }
                    if self.head_bytes.len() + raw.len() > MAX_HEAD_BYTES {
                        return Err(Error::protocol(
                            OP_HTTP,
                            format!(
                                "interim (1xx) responses larger than {MAX_HEAD_BYTES} bytes \
                                 (64 KiB) together: refused"
                            ),
                        ));
                    }
                    self.head_bytes.extend_from_slice(&raw);
                    continue;
                }
                self.head_bytes.extend_from_slice(&raw);
                let framing = framing(method, &head)?;
                self.keep_alive = keeps_alive(&head) && framing != super::Framing::Close;
                self.decoder = Some(BodyDecoder::new(framing));
                self.transfer = match framing {
                    super::Framing::Empty => None,
                    _ => ContentDecoder::for_transfer(&head)?,
                };
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
    /// The pieces' `data` has the transfer codings undone: chunked, and gzip or deflate
    /// named in `Transfer-Encoding` (RFC 9112 §6.1), as curl does; a `Content-Encoding`
    /// stays (see [`ContentDecoder::for_head`]). A piece with transfer codings carries at
    /// most about 1 MiB of data.
    ///
    /// # Errors
    /// - [`ErrorKind::Protocol`](crate::ErrorKind::Protocol): a malformed chunked body, a
    ///   body cut short by the end of stream (`truncated ...`), or a transfer coding
    ///   sockit does not decode or whose bytes are bad.
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
                if let Some(mut t) = self.transfer.take() {
                    let mut data = Vec::new();
                    t.finish(&mut |b: &[u8]| {
                        data.extend_from_slice(b);
                        Ok(())
                    })?;
                    if !data.is_empty() {
                        return Ok(Some(BodyPiece {
                            wire: Vec::new(),
                            data,
                        }));
                    }
                }
                self.finish_total();
                return Ok(None);
            }
            if !self.buf.is_empty() {
                // with a transfer coding, 1 KiB of wire at a time (about 1 MiB decoded)
                let take = match self.transfer {
                    Some(_) => self.buf.len().min(TRANSFER_STEP),
                    None => self.buf.len(),
                };
                let mut data = Vec::new();
                let n = decoder.decode(&self.buf[..take], &mut data)?;
                let wire: Vec<u8> = self.buf.drain(..n).collect();
                if let Some(t) = self.transfer.as_mut() {
                    let mut decoded = Vec::new();
                    t.decode(&data, &mut |b: &[u8]| {
                        decoded.extend_from_slice(b);
                        Ok(())
                    })?;
                    data = decoded;
                }
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
                // Done from now on, keeping the count (a close-framed body ends here);
                // the transfer codings, if any, are finished on the next call.
                self.decoder = Some(BodyDecoder::ended(body_bytes));
                if self.transfer.is_none() {
                    self.finish_total();
                    return Ok(None);
                }
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

    /// When this request began ([`open`](Exchange::open) or
    /// [`restart`](Exchange::restart)): the origin of its [`Timings`].
    pub fn started(&self) -> Instant {
        self.start
    }

    /// The server's address (`None` over a Unix socket).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Our address (`None` over a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The Unix socket connected to (`--unix-socket`), if that is the route.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// What the TLS handshake agreed on (`None` for plain HTTP).
    pub fn tls_info(&self) -> Option<&tls::SessionInfo> {
        self.tls_info.as_ref()
    }

    /// Bytes written to the connection for this request (TLS overhead not counted).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes read from the connection for this request (after TLS decryption).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Decoded body bytes so far.
    pub fn body_bytes(&self) -> u64 {
        self.decoder.as_ref().map_or(0, BodyDecoder::body_bytes)
    }
}

/// The addresses of a [`Route::Addrs`] that `family` allows (`-4`/`-6` restrict given
/// addresses as they restrict a lookup).
fn addrs_of_family(addrs: &[SocketAddr], family: Option<Family>) -> Result<Vec<SocketAddr>> {
    let kept: Vec<SocketAddr> = addrs
        .iter()
        .filter(|a| match family {
            Some(Family::Inet) => a.is_ipv4(),
            Some(Family::Inet6) => a.is_ipv6(),
            _ => true,
        })
        .copied()
        .collect();
    if kept.is_empty() && !addrs.is_empty() {
        let (want, got) = match family {
            Some(Family::Inet) => ("IPv4", "IPv6"),
            _ => ("IPv6", "IPv4"),
        };
        return Err(Error::new(
            crate::ErrorKind::Gai,
            "getaddrinfo",
            None,
            format!(
                "no {want} address to connect to: the given addresses ({}) are {got} only",
                addrs
                    .iter()
                    .map(crate::addr::host_text)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(kept)
}

/// Whether a response lets the connection carry another request (RFC 9112 §9.3): HTTP/1.1
/// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
fn keeps_alive(head: &ResponseHead) -> bool {
    let tokens: Vec<String> = head
        .header_all("Connection")
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    if tokens.iter().any(|t| t == "close") {
        return false;
    }
    head.minor_version >= 1 || tokens.iter().any(|t| t == "keep-alive")
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
        assert!(t.first_byte >= t.request_sent && t.request_sent >= t.pretransfer);
        assert!(
            t.pretransfer
                .is_some_and(|p| t.connect.is_some_and(|c| p >= c)),
            "{t:?}"
        );
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

    /// A server on 127.0.0.1 that answers every request head of one connection with
    /// `reply` (keep-alive), for at most `n` requests.
    fn keep_alive_server(reply: &'static [u8], n: usize) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                for _ in 0..n {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    if s.write_all(reply).is_err() {
                        return;
                    }
                }
            }
        });
        port
    }

    #[test]
    fn restart_sends_the_next_request_on_the_same_connection() {
        let port = keep_alive_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 3);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let mut req = Request::new("GET", &url, Version::Http11).unwrap();
        req.add_header_line("Connection: keep-alive").unwrap();
        let opts = Options {
            max_time: Some(Duration::from_secs(5)),
            ..Options::default()
        };
        let mut ex = Exchange::open(&url, &opts, None).unwrap();
        let local = ex.local_addr();
        for i in 0..3 {
            if i > 0 {
                assert!(ex.reusable());
                ex.restart().unwrap();
                assert!(ex.is_reused());
                assert_eq!(ex.timings().connect, None);
            }
            ex.send(&req.to_bytes()).unwrap();
            assert_eq!(ex.read_head("GET").unwrap().status, 200);
            let mut body = Vec::new();
            while let Some(p) = ex.read_body().unwrap() {
                body.extend_from_slice(&p.data);
            }
            assert_eq!(body, b"ok");
            assert_eq!(ex.local_addr(), local);
        }
        // The server is gone after 3: the connection is no longer reusable (peer closed).
        let t0 = Instant::now();
        while ex.reusable() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!ex.reusable());
        assert!(ex.restart().is_err());
    }

    #[test]
    fn connection_close_and_http10_are_not_reusable() {
        for reply in [
            &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (head, _) = parse_response_head(reply).unwrap().unwrap();
            assert!(!keeps_alive(&head));
        }
        let (head, _) = parse_response_head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(keeps_alive(&head));
    }

    #[test]
    fn an_endless_1xx_flood_is_refused_with_bounded_memory() {
        // Regression: a server that sends `100 Continue` heads without end made the
        // exchange keep every one (RSS 1.2 GB after 12 s).
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                for _ in 0..100_000 {
                    if s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
                        return;
                    }
                }
            }
        });
        let e = fetch(port).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Protocol, "{e}");
        assert!(e.to_string().contains("interim (1xx) responses"), "{e}");
        // Large interim heads: refused by their total size.
        let big: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 103 Early Hints\r\nLink: <{}>\r\n\r\n",
                "a".repeat(20_000)
            )
            .repeat(5)
            .into_bytes()
            .into_boxed_slice(),
        );
        let e = fetch(one_shot(big)).unwrap_err();
        assert!(e.to_string().contains("64 KiB"), "{e}");
        // A few are fine, and shown in the head bytes.
        let port = one_shot(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        );
        let (head, body, _) = fetch(port).unwrap();
        assert_eq!((head.status, body.as_slice()), (200, &b"x"[..]));
    }

    #[test]
    fn transfer_codings_are_undone() {
        // Regression: `Transfer-Encoding: gzip, chunked` was written as raw gzip, exit 0.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&b"gzip in chunks\n".repeat(500)).unwrap();
        let gz = gz.finish().unwrap();
        let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
        for part in gz.chunks(100) {
            reply.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            reply.extend_from_slice(part);
            reply.extend_from_slice(b"\r\n");
        }
        reply.extend_from_slice(b"0\r\n\r\n");
        let (head, body, _) = fetch(one_shot(Box::leak(reply.into_boxed_slice()))).unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(body, b"gzip in chunks\n".repeat(500));
        // close-delimited, gzip only
        let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec();
        reply.extend_from_slice(&gz);
        let (_, body, _) = fetch(one_shot(Box::leak(reply.into_boxed_slice()))).unwrap();
        assert_eq!(body, b"gzip in chunks\n".repeat(500));
        // a coding sockit does not decode is a protocol error, never raw bytes
        let e = fetch(one_shot(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        ))
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Protocol, "{e}");
        assert!(e.to_string().contains("transfer coding \"br\""), "{e}");
    }

    #[test]
    fn route_addresses_obey_the_family() {
        // Regression: `-6 --resolve host:port:IPV4` connected over IPv4; curl fails.
        let v4 = SocketAddr::from(([127, 0, 0, 1], 80));
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(addrs_of_family(&[v4, v6], None).unwrap(), vec![v4, v6]);
        assert_eq!(
            addrs_of_family(&[v4, v6], Some(Family::Inet6)).unwrap(),
            vec![v6]
        );
        let e = addrs_of_family(&[v4], Some(Family::Inet6)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Gai, "{e}");
        assert!(e.to_string().contains("no IPv6 address"), "{e}");
        let e = addrs_of_family(&[v6], Some(Family::Inet)).unwrap_err();
        assert!(e.to_string().contains("no IPv4 address"), "{e}");
    }

    #[test]
    fn routes_go_to_addresses_and_unix_sockets_with_the_url_host() {
        // --resolve: the URL names a host that is never looked up.
        let port = one_shot(b"HTTP/1.1 204 No Content\r\n\r\n");
        let url = Url::parse("http://no-such-host.invalid:1/").unwrap();
        let opts = Options {
            max_time: Some(Duration::from_secs(5)),
            route: Some(Route::Addrs(vec![SocketAddr::from(([127, 0, 0, 1], port))])),
            ..Options::default()
        };
        let mut ex = Exchange::open(&url, &opts, None).unwrap();
        ex.send(b"GET / HTTP/1.1\r\nHost: no-such-host.invalid:1\r\n\r\n")
            .unwrap();
        assert_eq!(ex.read_head("GET").unwrap().status, 204);
        assert_eq!(ex.peer_addr().map(|a| a.port()), Some(port));
        // --unix-socket
        let dir = std::env::temp_dir().join(format!("sockit-http-unix-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s");
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix");
            }
        });
        let url = Url::parse("http://localhost/").unwrap();
        let opts = Options {
            max_time: Some(Duration::from_secs(5)),
            route: Some(Route::Unix(path.clone())),
            ..Options::default()
        };
        let mut ex = Exchange::open(&url, &opts, None).unwrap();
        ex.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        assert_eq!(ex.read_head("GET").unwrap().status, 200);
        assert_eq!(
            ex.read_body().unwrap().map(|p| p.data),
            Some(b"unix".to_vec())
        );
        assert_eq!(
            (ex.peer_addr(), ex.unix_path()),
            (None, Some(path.as_path()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
