//! The one lifecycle of every server: signals registered before the `listening` line,
//! SIGTERM → drain (`--drain SECS`) → exit 0, a second SIGTERM / SIGINT (130) / SIGHUP
//! (129) → abort at once with RST, through the library's [`Stop`] controller. And the one
//! of a measuring run (`bench`, `http --repeat`): SIGINT or SIGTERM stops it and what was
//! measured is reported, marked partial ([`stop_on_signals`]).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sockit::serve::{Phase, Stop};
use tokio::signal::unix::{SignalKind, signal};

/// The runtime servers run their accept loops, sessions and signal watcher on (one
/// thread: the work is I/O bound).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // tokio panics (exit 101) when its signal driver's socket pair finds no descriptor
    // left; at a tiny `ulimit -n` say so first. The runtime takes 5 (epoll and a dup of
    // it, its waker, the signal pair); 6 leaves room for the first socket. The probe's
    // files are closed at the end of the statement.
    match (0..6)
        .map(|_| std::fs::File::open("/dev/null"))
        .collect::<std::io::Result<Vec<_>>>()
    {
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
            return Err(anyhow::Error::new(e)
                .context("tokio runtime (the open-file limit, ulimit -n, is too small)"));
        }
        _ => {}
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            let named = e.raw_os_error() == Some(libc::EMFILE);
            anyhow::Error::new(e).context(if named {
                "tokio runtime (the open-file limit, ulimit -n, is too small)"
            } else {
                "tokio runtime"
            })
        })
}

/// A server's stop controller, driven by the signals.
#[derive(Debug)]
pub struct Lifecycle {
    stop: Stop,
    code: Arc<AtomicU8>,
}

impl Lifecycle {
    /// Registers SIGTERM, SIGINT and SIGHUP handlers now (call it before printing the
    /// `listening` line, inside the runtime) and watches them in a task:
    /// - SIGTERM: [`Stop::drain`] for `drain` (exit 0); a second one aborts;
    /// - SIGINT: abort, exit 130; SIGHUP: abort, exit 129.
    ///
    /// # Errors
    /// When a handler cannot be registered.
    pub fn start(drain: Duration) -> anyhow::Result<Lifecycle> {
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let stop = Stop::new();
        let code = Arc::new(AtomicU8::new(0));
        let (s, c) = (stop.clone(), code.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = term.recv() => {
                        if s.phase() == Phase::Running {
                            s.drain(drain);
                        } else {
                            s.abort();
                        }
                    }
                    Some(()) = int.recv() => {
                        c.store(130, Ordering::SeqCst);
                        s.abort();
                    }
                    Some(()) = hup.recv() => {
                        c.store(129, Ordering::SeqCst);
                        s.abort();
                    }
                    else => return,
                }
            }
        });
        Ok(Lifecycle { stop, code })
    }

    /// The stop controller to hand the server.
    pub fn stop(&self) -> Stop {
        self.stop.clone()
    }

    /// The exit code the signals asked for: 0 after SIGTERM, 130 after SIGINT, 129 after
    /// SIGHUP.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code.load(Ordering::SeqCst))
    }
}

/// The signal that stopped a measuring run (SIGINT or SIGTERM), 0 before one came.
static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// The signal that stopped a measuring run ([`stop_on_signals`]): `libc::SIGINT`,
/// `libc::SIGTERM`, or 0 when none came.
pub fn stopped_by() -> i32 {
    STOPPED_BY.load(Ordering::Relaxed)
}

/// From now on SIGINT and SIGTERM stop a measuring run (`who`: `bench`, `http`): the
/// returned flag turns true, [`stopped_by`] says which signal, and the caller reports
/// what it measured, marked partial (exit 130 after SIGINT; after SIGTERM the run's own
/// code). A second signal exits at once (130 for SIGINT, 143 for SIGTERM).
///
/// # Errors
/// When a handler cannot be registered.
pub fn stop_on_signals(who: &'static str) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let context = || format!("{who}: signal handler");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .with_context(context)?;
    // installed here, before the run, so that no signal is missed
    let (mut int, mut term) = rt
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .with_context(context)?;
    let flag = stop.clone();
    std::thread::Builder::new()
        .name(format!("{who}-signals"))
        .spawn(move || {
            rt.block_on(async {
                for n in 0..2 {
                    let s = tokio::select! {
                        _ = int.recv() => libc::SIGINT,
                        _ = term.recv() => libc::SIGTERM,
                    };
                    if n == 1 {
                        std::process::exit(128 + s);
                    }
                    STOPPED_BY.store(s, Ordering::Relaxed);
                    flag.store(true, Ordering::Relaxed);
                }
            })
        })
        .with_context(context)?;
    Ok(stop)
}

/// SIGINT and SIGTERM for a one-shot client (`connect`, `scan`): both are caught (also
/// when the shell started the command with SIGINT ignored, as `cmd &` does in a script),
/// so a hanging connect ends at once, its files removed: SIGINT with 130, SIGTERM with
/// 143, the codes nc's default actions give.
#[derive(Debug)]
pub struct Interrupt {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Interrupt {
    /// Registers the handlers now (inside a runtime), before the connect.
    ///
    /// # Errors
    /// When a handler cannot be registered.
    pub fn register() -> anyhow::Result<Interrupt> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
        })
    }

    /// Waits for SIGINT or SIGTERM; the exit code it asks for (130, 143).
    pub async fn recv(&mut self) -> u8 {
        tokio::select! {
            _ = self.int.recv() => 130,
            _ = self.term.recv() => 143,
        }
    }
}

/// For a command that runs outside a runtime (`scan`): from now on SIGINT exits 130 and
/// SIGTERM 143 at once, from a thread of its own (stdout is flushed as the process ends).
///
/// # Errors
/// When a handler cannot be registered.
pub fn exit_on_interrupt(who: &'static str) -> anyhow::Result<()> {
    let context = || format!("{who}: signal handler");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .with_context(context)?;
    let mut signals = rt.block_on(async { Interrupt::register() })?;
    std::thread::Builder::new()
        .name(format!("{who}-signals"))
        .spawn(move || {
            let code = rt.block_on(signals.recv());
            crate::exit::clear_progress();
            std::process::exit(i32::from(code));
        })
        .with_context(context)?;
    Ok(())
}
