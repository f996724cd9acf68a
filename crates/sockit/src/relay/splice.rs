//! Zero-copy stream relays: each direction moves its bytes with `splice(2)` through a pipe
//! of its own, so they never enter user space.
//!
//! A direction is a [`Leg`]: either [`Leg::Copy`] (an `AsyncRead` into an `AsyncWrite`,
//! through a buffer: what taps, transforms and TLS need) or [`Leg::Splice`] between two
//! [`SpliceEnd`]s (sockets, pipes, regular files). [`relay_legs_counted`] runs two legs
//! under the same contract as [`relay_stream`](super::relay_stream) (the module docs of
//! [`relay`](super)): the same half-close, `-q`, idle and reset behaviour, the same error
//! operations (`read`/`send` for the local-to-remote direction, `recv`/`write` for the
//! other), and the same counting into [`Counters`].
//!
//! Contract of a splice leg:
//! - Bytes go `from` → pipe → `to`; the pipe is filled only when empty and emptied before
//!   the next fill, so, as with copying, a chunk read is passed on whole before the next
//!   read, and a direction never holds more than one pipe's worth.
//! - Where the kernel refuses (`EINVAL`: a file opened with `O_APPEND`, a descriptor
//!   without splice support) the leg passes on what the pipe holds through user space
//!   and copies from then on: no byte is lost or repeated. When no pipe can be made
//!   (`EMFILE`), or a tap is given, the leg copies from the start.
//! - [`Counters::path`] says which way each direction ran; [`Counters::zero_copy`] is
//!   true when both spliced every byte.
//!
//! Linux only (`splice(2)`).

use std::any::Any;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::{TcpStream, UnixStream};

use super::{Counters, Direction, End, Path, RelayOptions, STREAM_CHUNK, Tap, drive, ops, pump};
use crate::error::{Error, Result};
use crate::sys;
use crate::sys::splice::Pipe;

/// The size asked for each direction's pipe (`F_SETPIPE_SZ`, 1 MiB: `fs.pipe-max-size`'s
/// default). A larger pipe moves more per system call; past the user's
/// `fs.pipe-user-pages-soft` the kernel gives smaller pipes, which only cost more calls.
pub const SPLICE_PIPE: usize = 1 << 20;

/// Most bytes one write to a blocking pipe may carry without waiting once `poll(2)`
/// says it is writable (`PIPE_BUF`).
const PIPE_BUF: usize = 4096;

/// One side of a splice leg: a descriptor the kernel can splice from or to, with the
/// readiness the relay waits on.
#[derive(Debug, Clone, Copy)]
pub enum SpliceEnd<'a> {
    /// A TCP socket (non-blocking, on tokio's reactor).
    Tcp(&'a TcpStream),
    /// A Unix stream socket (non-blocking, on tokio's reactor).
    Unix(&'a UnixStream),
    /// A local input or output (a command's stdin or stdout): a pipe or a regular file.
    Local(&'a LocalFd),
}

/// A local input or output a relay may splice: a pipe (registered with the reactor for
/// the way it is used) or a regular file (read or written at its file position; files are
/// always ready). It holds a duplicate of the descriptor; the descriptor itself may be
/// blocking (its flags are shared with other processes and left alone), and every call
/// on it is non-blocking all the same (`SPLICE_F_NONBLOCK` on the relay's own pipe,
/// `poll(2)` before a `read(2)`/`write(2)`).
///
/// An output's end of stream ([`Leg::SpliceOut`]) points the original descriptor at
/// `/dev/null` ([`sys::point_at_dev_null`]) and closes the duplicate: a reader downstream
/// sees its end of file at once, as with a closing stdout on the copying path.
#[derive(Debug)]
pub struct LocalFd {
    file: LocalFile,
    /// An output's own descriptor (stdout), pointed at `/dev/null` at its end.
    orig: Option<BorrowedFd<'static>>,
}

#[derive(Debug)]
enum LocalFile {
    Pipe(AsyncFd<File>),
    File(File),
}

impl LocalFd {
    /// `fd` as a local input (stdin) a relay may splice from, when it is a pipe or a
    /// regular file; `None` for anything else (a terminal, a socket, a device), which the
    /// relay copies, or when it cannot be duplicated. Must be called inside a tokio
    /// runtime.
    pub fn input(fd: BorrowedFd<'_>) -> Option<LocalFd> {
        Some(LocalFd {
            file: Self::open(fd, Interest::READABLE)?,
            orig: None,
        })
    }

    /// `fd` as a local output (stdout) a relay may splice to, when it is a pipe or a
    /// regular file; `None` otherwise. `fd` stays open for the program's life, and is
    /// pointed at `/dev/null` at the end of the stream relayed to it. Must be called
    /// inside a tokio runtime.
    pub fn output(fd: BorrowedFd<'static>) -> Option<LocalFd> {
        Some(LocalFd {
            file: Self::open(fd, Interest::WRITABLE)?,
            orig: Some(fd),
        })
    }

    /// [`LocalFd::input`] of the process's stdin (descriptor 0).
    pub fn stdin() -> Option<LocalFd> {
        Self::input(io::stdin().as_fd())
    }

    /// [`LocalFd::output`] of the process's stdout (descriptor 1).
    pub fn stdout() -> Option<LocalFd> {
        Self::output(sys::stdout_fd())
    }

    fn open(fd: BorrowedFd<'_>, interest: Interest) -> Option<LocalFile> {
        let kind = sys::splice::file_kind(fd).ok()?;
        let file = File::from(fd.try_clone_to_owned().ok()?);
        match kind {
            sys::splice::Kind::Pipe => sys::register(file, interest).ok().map(LocalFile::Pipe),
            sys::splice::Kind::File => Some(LocalFile::File(file)),
            sys::splice::Kind::Other => None,
        }
    }

    /// The end a splice leg uses.
    pub fn end(&self) -> SpliceEnd<'_> {
        SpliceEnd::Local(self)
    }
}

impl<'a> SpliceEnd<'a> {
    /// The socket a boxed stream is, if it is a plain `tokio::net::TcpStream` or
    /// `UnixStream` (a TLS stream, or any wrapper, is not: its bytes must be copied).
    pub fn socket(stream: &'a dyn Any) -> Option<SpliceEnd<'a>> {
        if let Some(s) = stream.downcast_ref::<TcpStream>() {
            return Some(SpliceEnd::Tcp(s));
        }
        stream.downcast_ref::<UnixStream>().map(SpliceEnd::Unix)
    }

    /// Waits until the end is ready for `interest` and runs `f` on its descriptor, again
    /// after each `EAGAIN` (which clears the readiness seen).
    async fn io(
        &self,
        interest: Interest,
        mut f: impl FnMut(BorrowedFd<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        match *self {
            SpliceEnd::Tcp(s) => s.async_io(interest, || f(s.as_fd())).await,
            SpliceEnd::Unix(s) => s.async_io(interest, || f(s.as_fd())).await,
            SpliceEnd::Local(l) => match &l.file {
                LocalFile::Pipe(p) => p.async_io(interest, |file| f(file.as_fd())).await,
                LocalFile::File(file) => f(file.as_fd()),
            },
        }
    }

    /// Fills the empty `pipe` from this end: the bytes moved, 0 at its end.
    async fn splice_into(&self, pipe: &Pipe) -> io::Result<usize> {
        let cap = pipe.capacity();
        self.io(Interest::READABLE, |fd| {
            sys::splice::splice(fd, pipe.write_end(), cap)
        })
        .await
    }

    /// Moves up to `len` bytes from `pipe` to this end.
    async fn splice_from(&self, pipe: &Pipe, len: usize) -> io::Result<usize> {
        self.io(Interest::WRITABLE, |fd| {
            sys::splice::splice(pipe.read_end(), fd, len)
        })
        .await
    }

    /// `read(2)`; on a pipe only once `poll(2)` confirms bytes are there (its descriptor
    /// may be blocking).
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let pipe = matches!(
            self,
            SpliceEnd::Local(LocalFd {
                file: LocalFile::Pipe(_),
                ..
            })
        );
        self.io(Interest::READABLE, |fd| {
            if pipe && !ready(fd, sys::POLLIN)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            sys::splice::read(fd, buf)
        })
        .await
    }

    /// `write(2)` of some of `buf`; to a pipe at most `PIPE_BUF` bytes, once `poll(2)`
    /// confirms there is room (its descriptor may be blocking).
    async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let pipe = matches!(
            self,
            SpliceEnd::Local(LocalFd {
                file: LocalFile::Pipe(_),
                ..
            })
        );
        let buf = if pipe {
            &buf[..buf.len().min(PIPE_BUF)]
        } else {
            buf
        };
        self.io(Interest::WRITABLE, |fd| {
            if pipe && !ready(fd, sys::POLLOUT)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            sys::splice::write(fd, buf)
        })
        .await
    }

    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// The error of a write to this end as the copying path reports it: a TCP socket
    /// that refuses with `EPIPE` was reset by its peer (splice(2) to it says `EPIPE` where
    /// `send(2)` would have said `ECONNRESET` first; our own `SHUT_WR` comes only after
    /// the last write), so it is `ECONNRESET`, and the relay lets the other direction
    /// finish what the peer sent before its reset.
    fn sink_error(&self, e: io::Error) -> io::Error {
        match self {
            SpliceEnd::Tcp(_) if e.raw_os_error() == Some(libc::EPIPE) => {
                io::Error::from_raw_os_error(libc::ECONNRESET)
            }
            _ => e,
        }
    }

    /// End of input passed on: `shutdown(SHUT_WR)` on a socket; a local output is
    /// pointed at `/dev/null` ([`LocalFd`]).
    fn shutdown(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let r = match *self {
            SpliceEnd::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            SpliceEnd::Unix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            SpliceEnd::Local(LocalFd { orig: Some(o), .. }) => {
                sys::point_at_dev_null(o.as_raw_fd())
            }
            SpliceEnd::Local(_) => Ok(()),
        };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            r => r,
        }
    }
}

/// A plain socket of a splice relay as an `AsyncRead`/`AsyncWrite`, for the direction
/// of a relay that copies (its other end needs the bytes) while the other direction
/// splices the same socket. `shutdown` is `shutdown(SHUT_WR)`.
#[derive(Debug, Clone, Copy)]
pub struct SocketIo<'a>(SpliceEnd<'a>);

impl<'a> SocketIo<'a> {
    /// `end` must be a socket ([`SpliceEnd::Tcp`] or [`SpliceEnd::Unix`]); on a local
    /// end every call fails with `ENOTSOCK`.
    pub fn new(end: SpliceEnd<'a>) -> SocketIo<'a> {
        SocketIo(end)
    }
}

fn not_socket() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOTSOCK)
}

impl AsyncRead for SocketIo<'_> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::{Poll, ready};
        loop {
            let r = match self.0 {
                SpliceEnd::Tcp(s) => {
                    ready!(s.poll_read_ready(cx))?;
                    s.try_read(buf.initialize_unfilled())
                }
                SpliceEnd::Unix(s) => {
                    ready!(s.poll_read_ready(cx))?;
                    s.try_read(buf.initialize_unfilled())
                }
                SpliceEnd::Local(_) => return Poll::Ready(Err(not_socket())),
            };
            match r {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // try_read cleared the readiness: poll again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SocketIo<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::{Poll, ready};
        loop {
            let r = match self.0 {
                SpliceEnd::Tcp(s) => {
                    ready!(s.poll_write_ready(cx))?;
                    s.try_write(buf)
                }
                SpliceEnd::Unix(s) => {
                    ready!(s.poll_write_ready(cx))?;
                    s.try_write(buf)
                }
                SpliceEnd::Local(_) => return Poll::Ready(Err(not_socket())),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(self.0.shutdown())
    }
}

/// `poll(2)` with no wait: whether `fd` is ready for `events` (an error or hang-up
/// pending counts as ready: the call reports it).
fn ready(fd: BorrowedFd<'_>, events: i16) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    match sys::poll_fd(fd.as_raw_fd(), events, Some(std::time::Duration::ZERO)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        r => r,
    }
}

/// A local input to a socket through user space.
pub type CopyRead<'a> = dyn AsyncRead + Unpin + Send + 'a;
/// A local output through user space.
pub type CopyWrite<'a> = dyn AsyncWrite + Unpin + Send + 'a;

/// One direction of a stream relay, and how it moves its bytes.
pub enum Leg<'a> {
    /// Read into a buffer, write from it (see [`Path::Copy`]); a tap sees every chunk.
    Copy(&'a mut CopyRead<'a>, &'a mut CopyWrite<'a>),
    /// `splice(2)` from the first end through a pipe to the second (see the module docs).
    Splice(SpliceEnd<'a>, SpliceEnd<'a>),
    /// `splice(2)` from a socket to a local output the leg owns: at the end of the stream
    /// the output is closed for its reader ([`LocalFd`]).
    SpliceOut(SpliceEnd<'a>, LocalFd),
}

impl std::fmt::Debug for Leg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leg::Copy(..) => f.write_str("Leg::Copy"),
            Leg::Splice(a, b) => write!(f, "Leg::Splice({a:?}, {b:?})"),
            Leg::SpliceOut(a, b) => write!(f, "Leg::SpliceOut({a:?}, {b:?})"),
        }
    }
}

impl Leg<'_> {
    async fn run(
        self,
        dir: Direction,
        counters: &Counters,
        tap: Option<&dyn Tap>,
        shutdown: bool,
    ) -> Result<()> {
        match self {
            Leg::Copy(r, w) => pump(r, w, dir, counters, tap, shutdown).await,
            Leg::Splice(from, to) => splice_pump(from, to, dir, counters, tap, shutdown).await,
            Leg::SpliceOut(from, to) => {
                let r = splice_pump(from, to.end(), dir, counters, tap, shutdown).await;
                // The duplicate closes now, not when the relay ends: with the original
                // pointed at /dev/null, the reader downstream sees its end of file.
                drop(to);
                r
            }
        }
    }
}

/// Relays two legs, `send` (local to remote) and `recv` (remote to local), under the
/// contract of [`relay_stream_counted`](super::relay_stream_counted), counting into
/// `counters` (which also records each direction's [`Path`]). A tap makes every leg
/// copy (spliced bytes cannot be seen).
///
/// # Errors
/// As [`relay_stream`](super::relay_stream): `idle: timed out`, or the errno of a failed
/// `read`, `write`, `recv`, `send` or `shutdown`.
pub async fn relay_legs_counted(
    send: Leg<'_>,
    recv: Leg<'_>,
    opts: &RelayOptions,
    tap: Option<&dyn Tap>,
    counters: &Counters,
) -> Result<End> {
    let send = send.run(Direction::Send, counters, tap, opts.shutdown_on_eof);
    let recv = recv.run(Direction::Recv, counters, tap, !opts.end_on_remote_eof);
    drive(send, recv, opts, counters).await
}

/// One splice leg (module docs): through a pipe while the kernel agrees, then by copy.
async fn splice_pump(
    from: SpliceEnd<'_>,
    to: SpliceEnd<'_>,
    dir: Direction,
    counters: &Counters,
    tap: Option<&dyn Tap>,
    shutdown: bool,
) -> Result<()> {
    let (rop, wop) = ops(dir);
    let pipe = match tap {
        None => Pipe::new(SPLICE_PIPE).ok(),
        Some(_) => None,
    };
    if let Some(pipe) = &pipe {
        counters.set_path(dir, Path::Splice);
        'fill: loop {
            let n = match from.splice_into(pipe).await {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break 'fill,
                Err(e) => return Err(Error::from_io(rop, e)),
            };
            if n == 0 {
                if let Some(e) = counters.reset_instead_of_eof(dir) {
                    return Err(e);
                }
                return end_of_input(&to, shutdown);
            }
            counters.touch();
            let mut left = n;
            while left > 0 {
                match to.splice_from(pipe, left).await {
                    Ok(0) => return Err(Error::from_io(wop, io::ErrorKind::WriteZero.into())),
                    Ok(m) => {
                        left -= m;
                        counters.add(dir, m, false);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        // The sink refuses splice: what the pipe holds goes through
                        // user space, and so does the rest.
                        counters.set_path(dir, Path::Copy);
                        let mut buf = vec![0u8; left];
                        let mut got = 0;
                        while got < left {
                            match sys::splice::read(pipe.read_end(), &mut buf[got..]) {
                                Ok(0) => break,
                                Ok(k) => got += k,
                                Err(e) => return Err(Error::from_io(rop, e)),
                            }
                        }
                        to.write_all(&buf[..got])
                            .await
                            .map_err(|e| Error::from_io(wop, to.sink_error(e)))?;
                        counters.add(dir, got, false);
                        counters.touch();
                        break 'fill;
                    }
                    Err(e) => return Err(Error::from_io(wop, to.sink_error(e))),
                }
            }
            counters.touch();
        }
    }
    counters.set_path(dir, Path::Copy);
    let mut buf = vec![0u8; STREAM_CHUNK];
    loop {
        let n = from
            .read(&mut buf)
            .await
            .map_err(|e| Error::from_io(rop, e))?;
        if n == 0 {
            if let Some(e) = counters.reset_instead_of_eof(dir) {
                return Err(e);
            }
            return end_of_input(&to, shutdown);
        }
        counters.touch();
        if let Some(t) = tap {
            t.data(dir, &buf[..n]);
        }
        to.write_all(&buf[..n])
            .await
            .map_err(|e| Error::from_io(wop, to.sink_error(e)))?;
        counters.add(dir, n, false);
        counters.touch();
    }
}

fn end_of_input(to: &SpliceEnd<'_>, shutdown: bool) -> Result<()> {
    if shutdown {
        to.shutdown().map_err(|e| Error::from_io("shutdown", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn two_sockets_spliced_both_ways_with_half_close() {
        // client <-> (c_srv | relay | t_cli) <-> target
        let (mut client, c_srv) = pair().await;
        let (t_cli, mut target) = pair().await;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let want = data.clone();
        let peer = tokio::spawn(async move {
            // the target echoes everything, then closes
            let mut got = Vec::new();
            target.read_to_end(&mut got).await.unwrap();
            target.write_all(&got).await.unwrap();
            target.shutdown().await.unwrap();
            got.len()
        });
        let cl = tokio::spawn(async move {
            let (mut r, mut w) = client.split();
            let send = async {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut back = Vec::new();
            let recv = r.read_to_end(&mut back);
            let (_, n) = tokio::join!(send, recv);
            n.unwrap();
            back
        });
        let counters = Counters::new();
        let opts = RelayOptions {
            end_on_remote_eof: false,
            ..Default::default()
        };
        let (c, t) = (SpliceEnd::Tcp(&c_srv), SpliceEnd::Tcp(&t_cli));
        let end = relay_legs_counted(Leg::Splice(c, t), Leg::Splice(t, c), &opts, None, &counters)
            .await
            .unwrap();
        assert_eq!(end, End::BothClosed);
        drop((c_srv, t_cli));
        assert_eq!(peer.await.unwrap(), want.len());
        assert_eq!(cl.await.unwrap(), want);
        assert!(counters.zero_copy());
        let t = counters.totals();
        assert_eq!((t.bytes_sent, t.bytes_received), (3_000_000, 3_000_000));
    }

    #[tokio::test]
    async fn an_append_only_file_refuses_splice_and_gets_every_byte_by_copy() {
        let (mut peer, sock) = pair().await;
        let path = std::env::temp_dir().join(format!("sockit-splice-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        let file = {
            // reopen with O_APPEND: splice(2) to it is EINVAL
            drop(file);
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap()
        };
        // The output's end points the descriptor at /dev/null: a file of the test's own,
        // open for the rest of the test binary (as stdout is for the program).
        let file: &'static File = Box::leak(Box::new(file));
        let out = LocalFd::output(file.as_fd()).unwrap();
        let data: Vec<u8> = (0..500_000u32).map(|i| (i % 253) as u8).collect();
        let d2 = data.clone();
        tokio::spawn(async move {
            peer.write_all(&d2).await.unwrap();
            peer.shutdown().await.unwrap();
            let mut sink = Vec::new();
            let _ = peer.read_to_end(&mut sink).await;
        });
        let counters = Counters::new();
        let (mut empty, mut sink) = (tokio::io::empty(), tokio::io::sink());
        let r = relay_legs_counted(
            Leg::Copy(&mut empty, &mut sink),
            Leg::SpliceOut(SpliceEnd::Tcp(&sock), out),
            &RelayOptions::default(),
            None,
            &counters,
        )
        .await;
        assert_eq!(r.unwrap(), End::RemoteClosed);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(counters.path(Direction::Recv), Some(Path::Copy));
        assert!(!counters.zero_copy());
        let _ = std::fs::remove_file(&path);
    }
}
