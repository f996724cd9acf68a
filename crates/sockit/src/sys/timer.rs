//! `timerfd_create(2)`: a timer with nanosecond resolution whose expiry is a readable file
//! descriptor, for waits finer than tokio's 1 ms timer wheel (the bench's open-loop pacing).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A one-shot `CLOCK_MONOTONIC` timer file descriptor (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct TimerFd(OwnedFd);

impl TimerFd {
    /// `timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)`.
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: plain system call with constant arguments; the result is checked.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        Ok(TimerFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `timerfd_settime(2)`: fire once, `after` from now (at least 1 ns; a zero value
    /// would disarm the timer).
    pub fn set_after(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the fd is owned and open; spec is a valid itimerspec; old value not asked.
        let rc =
            unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `read(2)` of the expiry count: 0 when it has not fired yet (EAGAIN).
    pub fn expirations(&self) -> io::Result<u64> {
        let mut n = 0u64;
        // SAFETY: reads at most 8 bytes into a valid u64 owned by this frame.
        let rc = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut n as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n)
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Registers the timer with the current tokio runtime's reactor, for readiness only.
///
/// # Panics
/// Outside a tokio runtime (as `AsyncFd` does).
pub fn register(timer: TimerFd) -> io::Result<tokio::io::unix::AsyncFd<TimerFd>> {
    // SAFETY: TimerFd owns its descriptor (OwnedFd), keeps it open for its whole life and
    // as_raw_fd always returns that same descriptor, as register_with_interest requires.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(timer, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)
}

/// `prctl(PR_SET_TIMERSLACK, ns)` for the calling thread: how late the kernel may fire
/// its timers (default 50 µs).
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only this thread.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_after_the_delay() {
        let t = TimerFd::new().unwrap();
        assert_eq!(t.expirations().unwrap(), 0);
        let start = std::time::Instant::now();
        t.set_after(Duration::from_micros(300)).unwrap();
        let mut fired = 0;
        for _ in 0..10_000 {
            fired = t.expirations().unwrap();
            if fired > 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        assert_eq!(fired, 1);
        assert!(start.elapsed() >= Duration::from_micros(300));
        set_timer_slack(1_000).unwrap();
    }
}
