//! `--exec PROGRAM [ARGS…]`: a program per connection, the socket as its stdin/stdout.
//!
//! The program is started from its argv (never through a shell: a name with `;` or spaces
//! is one word, looked up on PATH as is). Its stdout is relayed to the socket and the
//! socket to its stdin with [`relay_stream`](crate::relay::relay_stream): the end of its
//! output (it exited or closed stdout) half-closes the socket (`shutdown(SHUT_WR)`), and
//! the peer's end of input closes its stdin. Nothing it wrote is lost: its stdout is read
//! to the end before the socket is shut down. Bytes the peer sends after the program
//! stopped reading are discarded (`EPIPE` on its stdin is not an error). When the relay
//! ends the program is waited for (killed after [`GRACE`] if it is still running).
//!
//! `--sh-exec CMD` is the argv [`shell`] makes (`/bin/sh -c CMD`): the only way to a
//! shell, asked for explicitly. The program's environment is this process's, without
//! socket activation's `LISTEN_*` variables, plus ncat's variables and the same values
//! under sockit's names ([`program_env`]). With [`Run::crlf`] (`-C`) what it writes
//! reaches the peer with its line ends as CRLF ([`Crlf`](crate::relay::Crlf)).

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::process::{ChildStdin, Command};

use super::{Ctx, Mode};
use crate::error::{Error, Result};
use crate::relay::{self, Counters, End, RelayOptions, Tap};
use crate::serve::close::{close_as, relay_end};
use crate::serve::{
    BoxStream, CloseReason, Ending, Event, Peer, Session, StreamListener, Transport,
};

/// How long a program may run on after its connection's relay ended.
pub const GRACE: Duration = Duration::from_secs(2);

/// A program's stdin that swallows `EPIPE`: once the program stops reading, the peer's
/// remaining bytes are discarded instead of ending the relay (and losing its output).
struct Stdin {
    inner: Option<ChildStdin>,
}

impl AsyncWrite for Stdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Ok(buf.len()));
        };
        match Pin::new(inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.inner = None;
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(inner).poll_flush(cx) {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.inner = None;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing the pipe is the program's end of input.
        self.inner = None;
        Poll::Ready(Ok(()))
    }
}

/// Checks that `program` can be run, as `execvp(3)` looks it up — a name with a `/` as it
/// is, others in each `PATH` entry (`/bin:/usr/bin` when `PATH` is unset) — so a typo
/// fails before anything is bound instead of with the first peer.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the program: an
/// empty name, a path that is missing, a directory or not executable, a name not on
/// `PATH`.
pub fn check_program(program: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let usage = |m: String| Error::invalid_input("exec", m);
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return Err(usage(
            "--exec needs a program name, not an empty word".into(),
        ));
    }
    if program.contains('/') {
        let p = std::path::Path::new(program);
        if runnable(p) {
            return Ok(());
        }
        let why = match std::fs::metadata(p) {
            Err(e) => Error::from_io("stat", e).message().to_string(),
            Ok(m) if m.is_dir() => "is a directory".to_string(),
            Ok(_) => "not executable".to_string(),
        };
        return Err(usage(format!("{program}: {why}")));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    let found = std::env::split_paths(&path).take(1000).any(|dir| {
        let dir = if dir.as_os_str().is_empty() {
            ".".into()
        } else {
            dir
        };
        runnable(&dir.join(program))
    });
    if found {
        Ok(())
    } else {
        Err(usage(format!(
            "{program}: no executable of that name on PATH"
        )))
    }
}

/// The shell that `--sh-exec CMD` runs its command with.
pub const SHELL: &str = "/bin/sh";

/// The argv of `--sh-exec CMD`: `/bin/sh -c CMD` (ncat's).
pub fn shell(cmd: &str) -> Vec<String> {
    vec![SHELL.to_string(), "-c".to_string(), cmd.to_string()]
}

/// The variables a program gets for one peer, ncat's first: `NCAT_REMOTE_ADDR`,
/// `NCAT_REMOTE_PORT`, `NCAT_LOCAL_ADDR`, `NCAT_LOCAL_PORT`, `NCAT_PROTO`, then the same
/// values as `SOCKIT_REMOTE_ADDR` … `SOCKIT_PROTO`. Addresses are numeric (IPv6 without
/// brackets); a Unix socket's is its path (`@name`, empty for an unnamed peer) with empty
/// ports; the protocol is `TCP`, `UDP` or `UNIX`.
pub fn program_env(
    transport: Transport,
    local: Option<&Peer>,
    remote: &Peer,
) -> Vec<(String, String)> {
    let split = |p: Option<&Peer>| match p {
        Some(Peer::Ip(a)) => (crate::addr::host_text(a), a.port().to_string()),
        Some(Peer::Unix(Some(u))) => (u.to_string(), String::new()),
        _ => (String::new(), String::new()),
    };
    let (remote_addr, remote_port) = split(Some(remote));
    let (local_addr, local_port) = split(local);
    let proto = match transport {
        Transport::Tcp => "TCP",
        Transport::Udp => "UDP",
        Transport::Unix | Transport::Unixgram => "UNIX",
    };
    let mut env = Vec::with_capacity(10);
    for prefix in ["NCAT", "SOCKIT"] {
        for (name, value) in [
            ("REMOTE_ADDR", &remote_addr),
            ("REMOTE_PORT", &remote_port),
            ("LOCAL_ADDR", &local_addr),
            ("LOCAL_PORT", &local_port),
            ("PROTO", &proto.to_string()),
        ] {
            env.push((format!("{prefix}_{name}"), value.clone()));
        }
    }
    env
}

/// One run of a program for one peer.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The program and its arguments (`--exec`; [`shell`] for `--sh-exec`).
    pub argv: &'a [String],
    /// Variables added to its environment ([`program_env`]).
    pub env: Vec<(String, String)>,
    /// `-C`: its output's line ends become CRLF on their way to the peer.
    pub crlf: bool,
}

/// A program's output as the peer gets it: as written, or with CRLF line ends (`-C`).
pub(crate) type Output = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

/// Starts the program of `run` with piped stdin and stdout (stderr inherited), killed if
/// dropped; returns it with its stdin and its output ([`Output`]).
pub(crate) fn spawn(run: &Run<'_>) -> Result<(tokio::process::Child, ChildStdin, Output)> {
    let (program, args) = run
        .argv
        .split_first()
        .ok_or_else(|| Error::invalid_input("exec", "--exec needs a program"))?;
    let mut cmd = Command::new(program);
    // Socket activation's variables were for this process, not the program's.
    for var in crate::serve::activation::VARIABLES {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .args(args)
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::from_io(format!("exec {program}"), e))?;
    let pipe = |what| Error::invalid_input("exec", format!("{program}: no {what} pipe"));
    let stdin = child.stdin.take().ok_or_else(|| pipe("stdin"))?;
    let stdout = child.stdout.take().ok_or_else(|| pipe("stdout"))?;
    let output: Output = if run.crlf {
        Box::new(relay::Crlf::new(stdout))
    } else {
        Box::new(stdout)
    };
    Ok((child, stdin, output))
}

/// Runs the program of `run` with `stream` as its stdin/stdout until both directions end,
/// counting into `counters` (`bytes_sent`: from the program to the peer).
///
/// # Errors
/// The spawn error (`exec NAME: [Errno 2] No such file or directory`); relay errors are
/// the inner result.
pub async fn run_program(
    run: &Run<'_>,
    stream: &mut BoxStream,
    idle_timeout: Option<Duration>,
    tap: Option<&dyn Tap>,
    counters: &Counters,
) -> Result<Result<End>> {
    let (mut child, stdin, mut stdout) = spawn(run)?;
    // Bytes still reaching a slow reader are traffic (relay::idle).
    counters.watch_send_queues(&[std::os::fd::AsFd::as_fd(&**stream)]);
    let mut stdin = Stdin { inner: Some(stdin) };
    let opts = RelayOptions {
        idle_timeout,
        quit_after_eof: None,
        shutdown_on_eof: true,
        end_on_remote_eof: false,
    };
    let result = {
        let (mut r, mut w) = tokio::io::split(&mut *stream);
        relay::relay_stream_counted(
            &mut stdout,
            &mut stdin,
            &mut r,
            &mut w,
            &opts,
            tap,
            counters,
        )
        .await
    };
    drop(stdin);
    drop(stdout);
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    Ok(result)
}

/// Accepts connections and runs the program for each (one peer: for the first, then
/// returns its result).
pub(crate) async fn serve(listener: StreamListener, ctx: &Arc<Ctx>) -> Result<()> {
    let keep = ctx.opts.mode != Mode::One;
    let mut acceptor = ctx.acceptor(&listener);
    let result = loop {
        let (stream, session) = match acceptor.next(&ctx.stop).await {
            Ok(Some(x)) => x,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        ctx.accepted(&session);
        if keep {
            tokio::spawn({
                let ctx = ctx.clone();
                async move {
                    if let Err(e) = session_task(stream, session, &ctx).await {
                        ctx.emit(Event::Warning {
                            message: e.to_string(),
                        });
                    }
                }
            });
        } else {
            drop(acceptor);
            drop(listener);
            let r = session_task(stream, session, ctx).await;
            ctx.finish().await;
            return r;
        }
    };
    drop(acceptor);
    drop(listener);
    if result.is_err() {
        ctx.stop.abort();
    }
    ctx.finish().await;
    result
}

/// One connection's program; the spawn error comes back (after the `closed` event).
async fn session_task(stream: BoxStream, session: Session, ctx: &Ctx) -> Result<()> {
    let mut stream = match ctx.wrap(stream) {
        Ok(s) => s,
        Err(e) => {
            ctx.closed(
                &session,
                Ending::new(CloseReason::Error).error(Some(e.clone())),
            );
            return Err(e);
        }
    };
    let keep = ctx.opts.mode != Mode::One;
    let tap = match &ctx.opts.log {
        Some(l) if keep => Some(l.tap(Some(session.label()))),
        Some(l) => Some(l.tap(None)),
        None => None,
    };
    let tap = tap.as_ref().map(|t| t as &dyn Tap);
    let counters = Counters::new();
    // The address the peer reached (a wildcard listener's own); a Unix one's path.
    let local = match socket2::SockRef::from(&stream)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
    {
        Some(a) => Peer::Ip(a),
        None => ctx.local.clone(),
    };
    let run = Run {
        argv: &ctx.opts.exec,
        env: program_env(ctx.transport, Some(&local), session.peer()),
        crlf: ctx.opts.exec_crlf,
    };
    let ran = tokio::select! {
        r = run_program(&run, &mut stream, ctx.opts.idle_timeout, tap, &counters) => Some(r),
        _ = ctx.stop.aborted() => None,
    };
    let totals = counters.totals();
    match ran {
        None => {
            close_as(stream, CloseReason::Aborted, None).await;
            ctx.closed(&session, Ending::new(CloseReason::Aborted).totals(totals));
            Ok(())
        }
        Some(Err(spawn)) => {
            close_as(stream, CloseReason::Error, Some(&spawn)).await;
            ctx.closed(
                &session,
                Ending::new(CloseReason::Error)
                    .totals(totals)
                    .error(Some(spawn.clone())),
            );
            Err(spawn)
        }
        Some(Ok(result)) => {
            let (reason, error) = relay_end(&result);
            let closing = relay::idle::close_reason(reason, &stream);
            close_as(stream, closing, error.as_ref()).await;
            ctx.closed(&session, Ending::new(reason).totals(totals).error(error));
            Ok(())
        }
    }
}
