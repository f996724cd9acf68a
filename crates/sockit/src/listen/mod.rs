//! netcat's listen mode (`nc -l`, `ncat -l`) as a mode on the [`serve`] core: accept
//! peers and relay them to a local input and output (the command's stdin and stdout), or
//! to a program per connection.
//!
//! Modes ([`Mode`], [`ListenOptions::exec`]):
//! - **One peer** (default): the first admitted connection (TCP, TLS or Unix stream) or
//!   the first datagram's sender (UDP or Unix datagram, then followed with `connect(2)`)
//!   is relayed to the local side with [`relay_stream`](crate::relay::relay_stream) /
//!   [`relay_datagrams`](crate::relay::relay_datagrams); the listener is closed once it
//!   came. [`Listen::run`] returns when that session ends, with the relay's error if it
//!   failed (an idle timeout is [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)).
//! - **Keep** (`-k`): clients are served at once; what each sends goes to the local
//!   output (one writer, chunks never interleave); the local input is read only while a
//!   client is connected and goes to every client (datagrams: to the most recent sender).
//! - **Broker** (`--broker`): as keep, and what one client sends also goes to every other
//!   client — not with `send_only` or `recv_only` (ncat 7.93 relays nothing then either).
//! - **Exec** (`--exec PROGRAM ARGS…`): each admitted connection runs the program, its
//!   stdin and stdout relayed to and from the socket ([`exec`]); one peer or keep. Over
//!   datagrams (`-u`), a program per sender: its datagrams to the program's stdin, each
//!   read of its stdout back as a datagram, until it ends or the session is idle (`-i`,
//!   default 60 s), at most `--max-conns` at once.
//!
//! Contract:
//! - Admission is the core's [`Admission`] (`--allow`/`--deny`, `--max-conns`); a refused
//!   peer is closed at once (a datagram dropped) with an [`Event::Refused`]. Stream
//!   connections take the core's accept path ([`serve::Acceptor`]): with
//!   [`ListenOptions::proxy_from`] a listed source's PROXY header names the peer.
//! - A session the listener ends itself (end of its input with `-q`, `send_only` at end of
//!   input, the local output gone) closes with [`close::linger_close`](serve::close): the
//!   peer gets every byte sent and a clean end of stream, never a RST for input it sent
//!   that nobody read. An idle session is shut down and closed.
//! - `send_only`: the peer's bytes are discarded, and the end of the local input ends the
//!   session (after the half-close) — with keep, every session and the listener.
//! - A stop ([`Stop`]): accepting ends at [`Stop::stopping`]; datagram sessions end then
//!   (`drained`); stream sessions go on until [`Stop::aborted`], then are aborted with
//!   RST (`aborted`, counted in [`Event::Stopped`]). The Unix socket file the listener
//!   created is removed when [`Listen::run`] returns.
//! - Errors on the local input are named `stdin: read`, on the local output `write`.
//!
//! The library never prints: everything that happens is an [`Event`] given to the sink.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sockit::listen::{Address, Listen, ListenOptions, Local};
//! use sockit::serve::Stop;
//!
//! # async fn demo() -> sockit::Result<()> {
//! // `nc -l 127.0.0.1 7000 < /dev/null > /dev/null`: one peer, its bytes counted.
//! let addr = Address::Ip { host: None, port: sockit::Port::Number(7000) };
//! let listen = Listen::bind(&addr, ListenOptions::default())?;
//! eprintln!("{}", listen.listening()); // listening 127.0.0.1 7000
//! let local = Local::new(Box::new(tokio::io::empty()), Box::new(tokio::io::sink()));
//! // #1 accepted 127.0.0.1 41530 (tcp), then #1 closed … 5000000 bytes received …, eof
//! listen.run(local, Arc::new(|ev| eprintln!("{ev}")), Stop::new()).await
//! # }
//! ```

mod dgram;
mod dgram_exec;
pub mod exec;
mod hub;
mod one;

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{UdpSocket, UnixDatagram};

use crate::access::AccessList;
use crate::addr::Port;
use crate::dump::SharedLog;
use crate::error::{Error, Result};
use crate::relay::RelayOptions;
use crate::serve::{
    self, AddrRule, Admission, BindOptions, BoxStream, Event, EventSink, Local as LocalAddr, Peer,
    ProxySources, SocketFile, Stop, StreamListener, Transport,
};
use crate::sockopt::{Applied, SocketOptions};
use crate::unix::UnixAddr;

/// Which clients a listener serves and how their data flows (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// One peer, then the listener closes (`nc -l`).
    #[default]
    One,
    /// Every client at once (`-k`).
    Keep,
    /// Every client at once, each client's bytes relayed to the others (`--broker`).
    Broker,
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `[HOST] PORT`: the host chosen by [`serve::bind_addr`]'s rule (none: 127.0.0.1).
    Ip {
        /// Host name or address.
        host: Option<String>,
        /// Port number or service name (0: a free port).
        port: Port,
    },
    /// A Unix socket path or abstract name.
    Unix(UnixAddr),
}

/// How a listener behaves; [`Default`] is `nc -l`: one peer, half-close at the end of the
/// input, the core's `--max-conns`.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// One peer, keep, or broker.
    pub mode: Mode,
    /// Datagrams: UDP, or a Unix datagram socket (`-u`).
    pub datagram: bool,
    /// A program (and its arguments) to run for each connection instead of relaying to
    /// the local side (`--exec`; `--sh-exec CMD` is [`exec::shell`]`(CMD)`); empty for
    /// none. It gets ncat's environment ([`exec::program_env`]).
    pub exec: Vec<String>,
    /// `-C` with `exec`: the line ends of what the program writes become CRLF.
    pub exec_crlf: bool,
    /// `-4`/`-6`/`-n` and `--dual-stack`: the address rule of an IP listener.
    pub rule: AddrRule,
    /// `listen(2)` backlog (0: the core's default).
    pub backlog: i32,
    /// Socket options set on the listening socket (accepted sockets inherit them).
    pub sockopts: SocketOptions,
    /// `--allow`/`--deny`.
    pub access: AccessList,
    /// The sources whose connections must open with a PROXY protocol header naming the
    /// original client (`--accept-proxy-from`; TCP listeners only): the core's accept
    /// path ([`serve::Acceptor`]).
    pub proxy_from: ProxySources,
    /// `--max-conns` (at least 1; the core's default when 0).
    pub max_conns: usize,
    /// End a session after this long without traffic either way (`-i`).
    pub idle_timeout: Option<Duration>,
    /// After the end of the local input, wait at most this long, then end (`-q`).
    pub quit_after_eof: Option<Duration>,
    /// `shutdown(SHUT_WR)` at the end of the local input (off: `--no-shutdown`).
    pub shutdown_on_eof: bool,
    /// End a one-peer session when the peer ends its stream (a terminal on stdin, or
    /// `recv_only`); otherwise the local output is shut down and the rest of the local
    /// input is still sent.
    pub end_on_remote_eof: bool,
    /// `--send-only`: the peer's bytes are discarded; the end of the local input ends.
    pub send_only: bool,
    /// `--recv-only`: the local input is not read (the caller passes one that never
    /// ends); no broker relay.
    pub recv_only: bool,
    /// Where `-x`/`-o` record both directions (one peer: unlabelled; else each session
    /// labelled `#id peer`).
    pub log: Option<Arc<SharedLog>>,
    /// TLS on each accepted TCP connection (`--tls`).
    pub tls: Option<Arc<crate::tls::rustls::ServerConfig>>,
    /// One peer: the relay counts into these (the caller reads them while it runs, for
    /// totals on a signal or a progress line); the idle clock restarts with the relay.
    pub counters: Option<Arc<crate::relay::Counters>>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            mode: Mode::One,
            datagram: false,
            exec: Vec::new(),
            exec_crlf: false,
            rule: AddrRule::default(),
            backlog: 0,
            sockopts: SocketOptions::default(),
            access: AccessList::default(),
            proxy_from: ProxySources::default(),
            max_conns: serve::DEFAULT_MAX_CONNS,
            idle_timeout: None,
            quit_after_eof: None,
            shutdown_on_eof: true,
            end_on_remote_eof: false,
            send_only: false,
            recv_only: false,
            log: None,
            tls: None,
            counters: None,
        }
    }
}

/// The local side a listener relays its peers to: the command's stdin and stdout.
///
/// Built with [`Local::new`]; on Linux, [`Local::splice_input`] and
/// [`Local::splice_output`] also give the same input and output as descriptors a relay
/// may `splice(2)` (zero-copy, [`relay_local`]).
pub struct Local {
    /// What goes to the peer(s).
    pub input: Box<dyn AsyncRead + Unpin + Send>,
    /// Where the peers' bytes go. Its `shutdown` is called when a one-peer session's
    /// peer ends its stream and the relay goes on sending (a stdout may close there).
    pub output: Box<dyn AsyncWrite + Unpin + Send>,
    #[cfg(target_os = "linux")]
    input_fd: Option<crate::relay::LocalFd>,
    #[cfg(target_os = "linux")]
    output_fd: Option<crate::relay::LocalFd>,
}

impl Local {
    /// A local side that copies: `input` to the peer(s), the peers' bytes to `output`.
    pub fn new(
        input: Box<dyn AsyncRead + Unpin + Send>,
        output: Box<dyn AsyncWrite + Unpin + Send>,
    ) -> Local {
        Local {
            input,
            output,
            #[cfg(target_os = "linux")]
            input_fd: None,
            #[cfg(target_os = "linux")]
            output_fd: None,
        }
    }

    /// The input as a descriptor a one-peer stream relay may splice from instead of
    /// reading [`Local::input`]: give it only when `input` passes the descriptor's bytes
    /// unchanged (no line rewriting, no pacing). Ignored with `recv_only`.
    #[cfg(target_os = "linux")]
    pub fn splice_input(mut self, fd: Option<crate::relay::LocalFd>) -> Local {
        self.input_fd = fd;
        self
    }

    /// The output as a descriptor a one-peer stream relay may splice to instead of
    /// writing [`Local::output`]; at the peer's end of stream it is pointed at
    /// `/dev/null` ([`LocalFd`](crate::relay::LocalFd)) where `output` would be shut
    /// down. Ignored with `send_only`.
    #[cfg(target_os = "linux")]
    pub fn splice_output(mut self, fd: Option<crate::relay::LocalFd>) -> Local {
        self.output_fd = fd;
        self
    }
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

/// Relays a connected stream and the local side both ways until the relay ends, under
/// the contract of [`relay_stream_counted`](crate::relay::relay_stream_counted) (the same
/// half-close, `-q`, idle and reset behaviour): one mechanism for `listen`'s one peer and
/// `connect`.
///
/// A direction moves its bytes with `splice(2)` (zero-copy, [`relay::splice`](crate::relay::splice))
/// when the stream is a plain TCP or Unix socket (not TLS), no `tap` needs the bytes, and
/// `local` carries that direction's descriptor ([`Local::splice_input`],
/// [`Local::splice_output`]); otherwise it copies. [`Counters::path`](crate::relay::Counters::path)
/// says which way each direction ran.
///
/// # Errors
/// As [`relay_stream`](crate::relay::relay_stream): `idle: timed out`, or the errno of a
/// failed `read`, `write`, `recv`, `send` or `shutdown`.
pub async fn relay_local(
    stream: &mut BoxStream,
    local: &mut Local,
    opts: &RelayOptions,
    tap: Option<&dyn crate::relay::Tap>,
    counters: &crate::relay::Counters,
) -> Result<crate::relay::End> {
    // Bytes still reaching a slow reader are traffic (relay::idle).
    counters.watch_send_queues(&[stream.as_fd()]);
    #[cfg(target_os = "linux")]
    if tap.is_none() && (local.input_fd.is_some() || local.output_fd.is_some()) {
        use crate::relay::{Leg, SpliceEnd, splice::SocketIo};
        if let Some(sock) = SpliceEnd::socket((**stream).as_any()) {
            let (mut sr, mut sw) = (SocketIo::new(sock), SocketIo::new(sock));
            let send = match &local.input_fd {
                Some(i) => Leg::Splice(i.end(), sock),
                None => Leg::Copy(&mut local.input, &mut sw),
            };
            let recv = match local.output_fd.take() {
                Some(o) => Leg::SpliceOut(sock, o),
                None => Leg::Copy(&mut sr, &mut local.output),
            };
            return crate::relay::relay_legs_counted(send, recv, opts, None, counters).await;
        }
    }
    let (mut r, mut w) = tokio::io::split(stream);
    crate::relay::relay_stream_counted(
        &mut local.input,
        &mut local.output,
        &mut r,
        &mut w,
        opts,
        tap,
        counters,
    )
    .await
}

/// A datagram socket of a listener: UDP or Unix.
pub(crate) enum Dgram {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Dgram {
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, Peer)> {
        match self {
            Dgram::Udp(s) => s.recv_from(buf).await.map(|(n, a)| (n, Peer::Ip(a))),
            Dgram::Unix(s) => s
                .recv_from(buf)
                .await
                .map(|(n, a)| (n, Peer::from_tokio_unix(&a))),
        }
    }

    pub(crate) fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, Peer)> {
        match self {
            Dgram::Udp(s) => s.try_recv_from(buf).map(|(n, a)| (n, Peer::Ip(a))),
            Dgram::Unix(s) => s
                .try_recv_from(buf)
                .map(|(n, a)| (n, Peer::from_tokio_unix(&a))),
        }
    }

    pub(crate) async fn send_to(&self, buf: &[u8], to: &Peer) -> std::io::Result<usize> {
        match (self, to) {
            (Dgram::Udp(s), Peer::Ip(a)) => s.send_to(buf, a).await,
            (Dgram::Unix(s), Peer::Unix(Some(u))) => match u {
                UnixAddr::Path(p) => s.send_to(buf, p).await,
                UnixAddr::Abstract(_) => {
                    let sa = u.sockaddr().map_err(std::io::Error::from)?;
                    s.async_io(tokio::io::Interest::WRITABLE, || {
                        socket2::SockRef::from(s).send_to(buf, &sa)
                    })
                    .await
                }
            },
            _ => Err(std::io::Error::from_raw_os_error(libc::EDESTADDRREQ)),
        }
    }

    /// `connect(2)` to `to`: from now on only its datagrams are received.
    pub(crate) fn connect(&self, to: &Peer) -> std::io::Result<()> {
        let sa = match to {
            Peer::Ip(a) => socket2::SockAddr::from(*a),
            Peer::Unix(Some(u)) => u.sockaddr().map_err(std::io::Error::from)?,
            Peer::Unix(None) => return Err(std::io::Error::from_raw_os_error(libc::EDESTADDRREQ)),
        };
        match self {
            Dgram::Udp(s) => socket2::SockRef::from(s).connect(&sa),
            Dgram::Unix(s) => socket2::SockRef::from(s).connect(&sa),
        }
    }
}

impl crate::relay::DatagramSocket for Dgram {
    async fn send_datagram(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Dgram::Udp(s) => s.send(buf).await,
            Dgram::Unix(s) => s.send(buf).await,
        }
    }
    async fn recv_datagram(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Dgram::Udp(s) => s.recv(buf).await,
            Dgram::Unix(s) => s.recv(buf).await,
        }
    }
}

enum Bound {
    Stream(StreamListener),
    Dgram(Dgram),
}

/// A bound listener, ready to [`run`](Listen::run).
pub struct Listen {
    bound: Bound,
    local: Peer,
    transport: Transport,
    file: Option<SocketFile>,
    applied: Vec<Applied>,
    opts: ListenOptions,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listen")
            .field("local", &self.local)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

fn usage(op: &'static str, message: &str) -> Error {
    Error::invalid_input(op, message)
}

/// The combinations a listener refuses (ncat refuses the first two too).
fn check(addr: &Address, opts: &ListenOptions) -> Result<()> {
    opts.sockopts.validate()?;
    if opts.datagram && opts.mode == Mode::Broker {
        // ncat: "UDP mode does not support connection brokering".
        return Err(usage(
            "broker",
            "UDP mode does not support connection brokering (--broker needs TCP or a Unix stream)",
        ));
    }
    if opts.mode == Mode::Broker && !opts.exec.is_empty() {
        // ncat: "Invalid option combination: --broker and -e".
        return Err(usage(
            "broker",
            "--broker and --exec cannot be combined (a program per client has no broker)",
        ));
    }
    if let Some(program) = opts.exec.first() {
        exec::check_program(program)?;
    }
    let unix = matches!(addr, Address::Unix(_));
    if opts.tls.is_some() && (opts.datagram || unix) {
        return Err(usage(
            "tls",
            "--tls needs a TCP connection (not -u or --unix)",
        ));
    }
    if (opts.datagram || unix) && !opts.proxy_from.is_empty() {
        return Err(usage(
            "accept-proxy-from",
            "a PROXY header is read on TCP listeners only (not -u or --unix)",
        ));
    }
    if unix && !opts.access.is_open() {
        return Err(usage(
            "access",
            "--allow/--deny match IP peers; a Unix listener has none",
        ));
    }
    Ok(())
}

impl Listen {
    /// Checks the options (the combinations ncat refuses, the `--exec` program looked up
    /// as `execvp(3)` does) and binds with the core's binder ([`serve::bind_addr`]'s rule
    /// then [`serve::bind_ip`], or [`serve::bind_unix`]). Must run inside a tokio runtime.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput): `-u` with
    ///   `--broker`, `--broker` with `--exec`, an `--exec` program that is not
    ///   there, `--tls` off TCP, `--allow`/`--deny` on a Unix listener, a bad socket
    ///   option, a literal of the family `-4`/`-6` exclude, `--dual-stack` off `::`.
    /// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) when the host does not resolve.
    /// - [`ErrorKind::Os`](crate::ErrorKind::Os) from `socket(2)`, `setsockopt(2)`,
    ///   `bind(2)` (named with the address: `bind 127.0.0.1:80: [Errno 13] Permission
    ///   denied`) or `listen(2)`.
    pub fn bind(addr: &Address, opts: ListenOptions) -> Result<Listen> {
        check(addr, &opts)?;
        let bopts = BindOptions {
            backlog: opts.backlog,
            dual_stack: opts.rule.dual_stack,
            sockopts: opts.sockopts.clone(),
            ..BindOptions::default()
        };
        let listener = match addr {
            Address::Unix(u) => {
                let t = if opts.datagram {
                    Transport::Unixgram
                } else {
                    Transport::Unix
                };
                serve::bind_unix(u, t, &bopts)?
            }
            Address::Ip { host, port } => {
                let (t, st) = if opts.datagram {
                    (Transport::Udp, crate::SockType::Dgram)
                } else {
                    (Transport::Tcp, crate::SockType::Stream)
                };
                let at = serve::bind_addr(host.as_deref(), port, st, &opts.rule)?;
                serve::bind_ip(at, t, &bopts)?
            }
        };
        let (local, transport) = (listener.local().clone(), listener.transport());
        let applied = listener.applied().to_vec();
        let (bound, file) = if transport.is_datagram() {
            let (socket, file) = listener.into_parts();
            let io = |e| Error::from_io("listen", e);
            let d = if transport == Transport::Udp {
                Dgram::Udp(UdpSocket::from_std(socket.into()).map_err(io)?)
            } else {
                Dgram::Unix(UnixDatagram::from_std(socket.into()).map_err(io)?)
            };
            (Bound::Dgram(d), file)
        } else {
            let (l, file) = StreamListener::register(listener)?;
            (Bound::Stream(l), file)
        };
        Ok(Listen {
            bound,
            local,
            transport,
            file,
            applied,
            opts,
        })
    }

    /// The address bound (the port the system chose for port 0).
    pub fn local(&self) -> &Peer {
        &self.local
    }

    /// The listening transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The socket options set on the listening socket, as read back.
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }

    /// The `listening` event of this listener.
    pub fn listening(&self) -> Event {
        Event::Listening {
            transport: self.transport,
            local: LocalAddr(self.local.clone()),
            role: None,
        }
    }

    /// Serves as the mode says (module docs) until its end or a stop, then reports
    /// [`Event::Stopping`] and [`Event::Stopped`] if a stop ended it, and removes the Unix
    /// socket file it created. `local` is not used with `--exec`.
    ///
    /// # Errors
    /// One peer: the session's error (the relay's, named as in the module docs; the
    /// `--exec` program's spawn error). Every mode: `accept(2)`/`recvfrom(2)` errors that
    /// would repeat (not `EMFILE`, which pauses accepting).
    pub async fn run(self, local: Local, events: EventSink, stop: Stop) -> Result<()> {
        let Listen {
            bound,
            transport,
            file,
            opts,
            local: bound_at,
            ..
        } = self;
        let max = if opts.max_conns == 0 {
            serve::DEFAULT_MAX_CONNS
        } else {
            opts.max_conns
        };
        let admission =
            Admission::with_proxy_sources(opts.access.clone(), max, opts.proxy_from.clone());
        let ctx = Arc::new(Ctx {
            opts,
            transport,
            local: bound_at,
            core: serve::Core::new(events, stop.clone(), admission, serve::RelayTo::Local),
        });
        let keep = ctx.opts.mode != Mode::One;
        let result = match bound {
            Bound::Stream(l) if !ctx.opts.exec.is_empty() => exec::serve(l, &ctx).await,
            Bound::Dgram(d) if !ctx.opts.exec.is_empty() => dgram_exec::serve(d, &ctx).await,
            Bound::Stream(l) if keep => hub::serve(l, &ctx, local).await,
            Bound::Stream(l) => one::stream(l, &ctx, local).await,
            Bound::Dgram(d) if keep => dgram::serve(d, &ctx, local).await,
            Bound::Dgram(d) => one::datagram(d, &ctx, local).await,
        };
        drop(file);
        result
    }
}

/// What every session of one listener shares: the core ([`serve::Core`]: events, stop,
/// admission, how a session's end is reported) and the listener's own.
pub(crate) struct Ctx {
    pub(crate) opts: ListenOptions,
    pub(crate) transport: Transport,
    /// The address bound.
    pub(crate) local: Peer,
    pub(crate) core: serve::Core,
}

impl std::ops::Deref for Ctx {
    type Target = serve::Core;
    fn deref(&self) -> &serve::Core {
        &self.core
    }
}

impl Ctx {
    /// The counters of the one peer's relay: the caller's ([`ListenOptions::counters`]),
    /// its idle clock restarted, or new ones.
    pub(crate) fn counters(&self) -> Arc<crate::relay::Counters> {
        match &self.opts.counters {
            Some(c) => {
                c.touch();
                Arc::clone(c)
            }
            None => Arc::new(crate::relay::Counters::new()),
        }
    }

    /// The relay options of a session with the local side (or a program).
    pub(crate) fn relay_options(&self) -> RelayOptions {
        let o = &self.opts;
        RelayOptions {
            idle_timeout: o.idle_timeout,
            // --send-only: nothing more can be exchanged after the end of the input.
            quit_after_eof: if o.send_only {
                Some(o.quit_after_eof.unwrap_or(Duration::ZERO))
            } else {
                o.quit_after_eof
            },
            shutdown_on_eof: o.shutdown_on_eof,
            end_on_remote_eof: o.end_on_remote_eof,
        }
    }

    /// An accepted stream as the session uses it: with TLS when asked (the handshake
    /// happens on first use).
    pub(crate) fn wrap(&self, stream: BoxStream) -> Result<BoxStream> {
        match &self.opts.tls {
            None => Ok(stream),
            Some(config) => {
                let fd = stream
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::from_io("dup", e))?;
                let tls = crate::tls::Stream::accept(stream, config.clone());
                Ok(Box::new(serve::WithFd::new(tls, fd)))
            }
        }
    }
}

/// Names an error of a relay's local input as the command's stdin (`stdin: read: …`
/// for the relay's `read`); other errors pass unchanged.
pub fn name_stdin(e: Error) -> Error {
    if e.op() == "read" {
        e.with_op("stdin: read")
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::CloseReason;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn one_peer_relays_both_ways_and_reports_in_the_core_vocabulary() {
        let addr = Address::Ip {
            host: Some("127.0.0.1".into()),
            port: Port::Number(0),
        };
        let listen = Listen::bind(&addr, ListenOptions::default()).unwrap();
        let Peer::Ip(at) = listen.local().clone() else {
            panic!("an IP listener")
        };
        let (mut ours, theirs) = tokio::io::duplex(1024);
        let local = Local::new(Box::new(&b"reply"[..]), Box::new(theirs));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = {
            let seen = seen.clone();
            Arc::new(move |ev: Event| seen.lock().unwrap().push(ev))
        };
        let server = tokio::spawn(listen.run(local, sink, Stop::new()));
        let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"reply");
        server.await.unwrap().unwrap();
        let mut printed = Vec::new();
        ours.read_to_end(&mut printed).await.unwrap();
        assert_eq!(printed, b"hello");
        let seen = seen.lock().unwrap();
        assert!(matches!(seen[0], Event::Accepted { id: 1, .. }), "{seen:?}");
        let Some(Event::Closed(c)) = seen.last() else {
            panic!("{seen:?}")
        };
        assert_eq!((c.bytes_sent, c.bytes_received), (5, 5));
        assert_eq!(c.reason, CloseReason::Eof);
    }

    #[test]
    fn combinations_ncat_refuses_are_refused_before_binding() {
        let addr = Address::Ip {
            host: None,
            port: Port::Number(0),
        };
        let udp_broker = ListenOptions {
            datagram: true,
            mode: Mode::Broker,
            ..Default::default()
        };
        let e = check(&addr, &udp_broker).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("connection brokering"), "{e}");
        let missing = ListenOptions {
            exec: vec!["/nonexistent-sockit-program".into()],
            ..Default::default()
        };
        assert!(check(&addr, &missing).is_err());
    }
}
