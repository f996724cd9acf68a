//! Local stdio of connect and listen: `-C` (the CRLF pump), `-d`, `--send-only`,
//! `--recv-only`, `-N`/`--no-shutdown`, and the traffic log of one session.

use std::time::Duration;

use super::parse::parse_secs;
use super::server::TrafficLogArgs;

/// Data handling on connect and listen: `-C`, `-d SECS`, `--send-only`, `--recv-only`,
/// `-x FILE`, `-o FILE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DataArgs {
    /// CRLF line endings: each "\n" of stdin is sent as "\r\n".
    #[arg(help_heading = "Data", short = 'C', long = "crlf")]
    pub crlf: bool,
    /// Delay between lines sent, in seconds.
    #[arg(help_heading = "Data", short = 'd', long = "delay", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub delay: Option<Duration>,
    /// Only send: what the peer sends is read and discarded.
    #[arg(
        help_heading = "Data",
        long = "send-only",
        conflicts_with = "recv_only"
    )]
    pub send_only: bool,
    /// Only receive: stdin is not read and nothing is sent (no half-close either).
    #[arg(help_heading = "Data", long = "recv-only")]
    pub recv_only: bool,
    #[command(flatten)]
    pub log: TrafficLogArgs,
}

/// Boxed local input of a relay (stdin, possibly transformed).
pub type LocalIn = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
/// Boxed local output of a relay (stdout, or a sink).
pub type LocalOut = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// `-N`, `--no-shutdown`: what end of stdin does to the socket (connect, listen).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct EofArgs {
    /// Accepted for compatibility: half-close on end of stdin is already the default.
    #[arg(help_heading = "Data", short = 'N')]
    pub shutdown_compat: bool,
    /// Keep the socket open for writing at end of stdin (no shutdown(SHUT_WR)).
    #[arg(help_heading = "Data", long = "no-shutdown")]
    pub no_shutdown: bool,
}

impl EofArgs {
    /// Whether end of stdin half-closes the socket (`shutdown(SHUT_WR)`): unless
    /// `--no-shutdown`.
    pub fn shutdown_on_eof(&self) -> bool {
        !self.no_shutdown
    }
}

impl DataArgs {
    /// Wraps the local input and output as the flags say: `--recv-only` never reads `input`
    /// (an input that never ends), `--send-only` discards the output, `-C` / `-d` rewrite
    /// and pace the input line by line (in a task feeding a pipe).
    pub fn wrap(&self, input: LocalIn, output: LocalOut) -> (LocalIn, LocalOut) {
        let output: LocalOut = if self.send_only {
            Box::new(tokio::io::sink())
        } else {
            output
        };
        if self.recv_only {
            return (Box::new(Never), output);
        }
        let input: LocalIn = if self.crlf {
            Box::new(sockit::relay::Crlf::new(input))
        } else {
            input
        };
        // `-d 0` paces nothing: the input passes as it comes (a zero sleep would still
        // wait for the timer's next millisecond tick, per line).
        let Some(delay) = self.line_delay() else {
            return (input, output);
        };
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(lines(input, ours, delay));
        (Box::new(theirs), output)
    }

    /// The `-d` delay between lines, when there is one to wait (`-d 0` is none).
    fn line_delay(&self) -> Option<Duration> {
        self.delay.filter(|d| !d.is_zero())
    }

    /// Stdin and stdout as a relay's local side, wrapped as [`DataArgs::wrap`] says. With
    /// `splice` (no `--no-splice`), each direction whose bytes pass unchanged also carries
    /// its descriptor (a pipe or a regular file), so a plain stream relay moves them with
    /// splice(2) ([`sockit::listen::relay_local`]): stdin unless `-C`, `-d` or
    /// `--recv-only`; stdout unless `--send-only`. Must be called inside a tokio runtime.
    pub fn local(&self, splice: bool) -> sockit::listen::Local {
        let (input, output) = self.wrap(crate::stdio::stdin(), crate::stdio::stdout());
        let local = sockit::listen::Local::new(input, output);
        #[cfg(target_os = "linux")]
        let local = {
            use sockit::relay::LocalFd;
            let plain_in = splice && !self.crlf && self.line_delay().is_none() && !self.recv_only;
            let plain_out = splice && !self.send_only;
            local
                .splice_input(plain_in.then(LocalFd::stdin).flatten())
                .splice_output(plain_out.then(LocalFd::stdout).flatten())
        };
        #[cfg(not(target_os = "linux"))]
        let _ = splice;
        local
    }

    /// Opens the `-x` / `-o` files, as a relay tap of one unlabelled session (None when
    /// neither was given); a write error is handled as [`TrafficLogArgs::shared`] says.
    pub fn tap(&self) -> sockit::Result<Option<sockit::dump::SessionTap>> {
        Ok(self.log.shared()?.map(|l| l.tap(None)))
    }
}

/// Copies `input` to `out` line by line, `delay` passing between two lines (`-d`; `-C`
/// is [`sockit::relay::Crlf`] on the input). Ends (closing `out`) at end of input or when
/// the reader of `out` is gone.
async fn lines(mut input: LocalIn, mut out: tokio::io::DuplexStream, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut sent_a_line = false;
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                line.push(b'\n');
                if sent_a_line {
                    tokio::time::sleep(delay).await;
                }
                if out.write_all(&line).await.is_err() {
                    return;
                }
                line.clear();
                sent_a_line = true;
            } else {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        if sent_a_line {
            tokio::time::sleep(delay).await;
        }
        let _ = out.write_all(&line).await;
    }
    let _ = out.shutdown().await;
}

/// An input that never yields a byte and never ends (`--recv-only`).
struct Never;

impl tokio::io::AsyncRead for Never {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod data_tests {
    use super::*;

    async fn through(input: &'static [u8], crlf: bool) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let args = DataArgs {
            crlf,
            ..Default::default()
        };
        let (mut r, _) = args.wrap(Box::new(input), Box::new(tokio::io::sink()));
        let mut v = Vec::new();
        r.read_to_end(&mut v).await.unwrap();
        v
    }

    #[tokio::test]
    async fn crlf_turns_lf_into_crlf_once() {
        assert_eq!(through(b"a\nb\r\nc", true).await, b"a\r\nb\r\nc");
        assert_eq!(through(b"a\nb\n", false).await, b"a\nb\n");
    }
}
