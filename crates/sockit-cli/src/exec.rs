//! `--exec PROGRAM [ARGS…]`: a program per connection, the socket as its stdin/stdout.
//!
//! The program is started from its argv (never through a shell: a name with `;` or spaces
//! is one word, looked up on PATH as is). Its stdout is relayed to the socket and the
//! socket to its stdin with [`sockit::relay::relay_stream`]: the end of its output (it
//! exited or closed stdout) half-closes the socket (`shutdown(SHUT_WR)`), and the peer's
//! end of input closes its stdin. Nothing it wrote is lost: its stdout is read to the end
//! before the socket is shut down. Bytes the peer sends after the program stopped reading
//! are discarded (EPIPE on its stdin is not an error). When the relay ends the program
//! is waited for (killed after a grace period if it is still running). Socket
//! activation's `LISTEN_*` variables are removed from its environment.

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use sockit::relay::{self, Outcome, RelayOptions, Tap};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::{ChildStdin, Command};

/// How long a program may run on after its connection's relay ended.
const GRACE: Duration = Duration::from_secs(2);

/// A program's stdin that swallows EPIPE: once the program stops reading, the peer's
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

/// Runs `argv` with the connection as its stdin/stdout until both directions end.
///
/// The relay totals: `bytes_sent` went from the program to the peer, `bytes_received`
/// from the peer to the program.
///
/// # Errors
/// The spawn error (`exec NAME: No such file or directory`); relay errors are in the
/// returned [`Outcome`].
pub async fn run_program<R, W>(
    argv: &[String],
    sock_r: &mut R,
    sock_w: &mut W,
    idle_timeout: Option<Duration>,
    tap: Option<&dyn Tap>,
) -> anyhow::Result<Outcome>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("--exec needs a program"))?;
    let mut cmd = Command::new(program);
    // Socket activation's variables were for this process, not the program's.
    for var in sockit::serve::activation::VARIABLES {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::Error::new(sockit::Error::from_io(format!("exec {program}"), e)))?;
    let mut stdin = Stdin {
        inner: child.stdin.take(),
    };
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("exec {program}: no stdout pipe"))?;
    let opts = RelayOptions {
        idle_timeout,
        quit_after_eof: None,
        shutdown_on_eof: true,
        end_on_remote_eof: false,
    };
    let outcome = relay::relay_stream(&mut stdout, &mut stdin, sock_r, sock_w, &opts, tap).await;
    drop(stdin);
    drop(stdout);
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    Ok(outcome)
}
