//! io_uring (Linux): many `connect(2)` calls in flight on one ring, for the port scanner.
//!
//! A [`ConnectRing`] has a fixed number of slots. [`ConnectRing::connect`] hands it a
//! socket and a destination and queues an `IORING_OP_CONNECT`; the ring owns the socket
//! and the destination's `sockaddr` until the completion, which
//! [`ConnectRing::reap`] hands back with the socket. [`ConnectRing::cancel`] queues an
//! `IORING_OP_ASYNC_CANCEL` for a slot's connect (its completion then says `ECANCELED`,
//! or the connect's own result when it won the race). [`ConnectRing::submit_and_wait`] is
//! one `io_uring_enter(2)`: it submits everything queued and waits, at most a given time,
//! for one completion.
//!
//! On loopback the kernel answers a SYN within the submitting call (the RST or SYN-ACK is
//! processed when the socket lock is released), so a batch of connects completes in one
//! `io_uring_enter`: the per-port cost is the kernel's TCP work, without a system call of
//! its own.
//!
//! [`ConnectRing::new`] fails (and the caller falls back to epoll) when the kernel refuses
//! io_uring: `ENOSYS` (too old, or compiled out), `EPERM` (`kernel.io_uring_disabled`, a
//! seccomp filter), or a ring without `IORING_OP_CONNECT`, `IORING_OP_ASYNC_CANCEL` or the
//! timed wait (`IORING_FEAT_EXT_ARG`, Linux 5.11).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{IoUring, opcode, types};

/// `user_data` bit of the cancel requests, whose completions are not handed out.
const CANCEL: u64 = 1 << 63;

/// A connect in flight: the socket and its destination, owned by the ring until the
/// completion arrives.
struct InFlight {
    socket: socket2::Socket,
    /// The `sockaddr` the SQE points to; boxed so it never moves while the kernel may read it.
    addr: Box<socket2::SockAddr>,
    generation: u32,
}

/// A ring of `connect(2)` operations (see the module docs).
pub struct ConnectRing {
    // Declared first so it is dropped first: closing the ring cancels and waits for the
    // requests still in flight before the sockets and addresses below are freed.
    ring: IoUring,
    slots: Vec<Option<InFlight>>,
    generation: u32,
}

impl std::fmt::Debug for ConnectRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectRing")
            .field("slots", &self.slots.len())
            .field("in_flight", &self.slots.iter().flatten().count())
            .finish()
    }
}

/// One finished connect: the slot, the socket back, and the result (`0` connected, else a
/// negated errno: `-ECONNREFUSED`, `-ECANCELED` after [`ConnectRing::cancel`] …).
#[derive(Debug)]
pub struct Completion {
    /// The slot given to [`ConnectRing::connect`].
    pub slot: usize,
    /// The socket given to [`ConnectRing::connect`].
    pub socket: socket2::Socket,
    /// `0` or a negated errno.
    pub result: i32,
}

impl ConnectRing {
    /// A ring for `slots` connects in flight: `io_uring_setup(2)` with
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` where the kernel has them
    /// (6.1), else plain; then `IORING_REGISTER_PROBE` to check the operations it needs.
    /// The ring must be used by the thread that made it.
    ///
    /// # Errors
    /// The setup's error (`ENOSYS`, `EPERM`, `ENOMEM` …), or `Unsupported` naming what the
    /// kernel lacks.
    pub fn new(slots: usize) -> io::Result<ConnectRing> {
        let slots = slots.clamp(1, 4096);
        // Room for a connect and a cancel per slot, queued in one turn.
        let entries = (2 * slots).next_power_of_two() as u32;
        let ring = match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
        {
            Ok(ring) => ring,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries)?,
            Err(e) => return Err(e),
        };
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without IORING_FEAT_EXT_ARG (Linux 5.11)",
            ));
        }
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::Connect::CODE, "IORING_OP_CONNECT"),
            (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring without {name}"),
                ));
            }
        }
        Ok(ConnectRing {
            ring,
            slots: (0..slots).map(|_| None).collect(),
            generation: 0,
        })
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// True when `slot` has a connect in flight.
    pub fn busy(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(Option::is_some)
    }

    fn user_data(slot: usize, generation: u32) -> u64 {
        (u64::from(generation) << 32) | slot as u64
    }

    /// Makes room in the submission queue for one entry (submitting what is queued).
    fn room(&mut self) -> io::Result<()> {
        if self.ring.submission().is_full() {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// Queues `connect(socket, addr)` in `slot` (submitted by the next
    /// [`submit_and_wait`](Self::submit_and_wait)).
    ///
    /// # Errors
    /// `InvalidInput` (with the socket dropped) for a slot out of range or busy; the
    /// error of `io_uring_enter` when the queue had to be flushed to make room.
    pub fn connect(
        &mut self,
        slot: usize,
        socket: socket2::Socket,
        addr: SocketAddr,
    ) -> io::Result<()> {
        if slot >= self.slots.len() || self.busy(slot) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("connect ring: slot {slot} is busy or out of range"),
            ));
        }
        self.room()?;
        self.generation = self.generation.wrapping_add(1);
        let addr = Box::new(socket2::SockAddr::from(addr));
        let entry = opcode::Connect::new(
            types::Fd(socket.as_raw_fd()),
            addr.as_ptr().cast(),
            addr.len(),
        )
        .build()
        .user_data(Self::user_data(slot, self.generation));
        // SAFETY: the entry points to the socket's descriptor and to the boxed sockaddr;
        // both are stored in the slot below and stay there, unmoved and open, until the
        // completion for this user_data is reaped (or the ring, dropped first, is gone).
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("connect ring: submission queue full"))?;
        self.slots[slot] = Some(InFlight {
            socket,
            addr,
            generation: self.generation,
        });
        Ok(())
    }

    /// Queues a cancel of `slot`'s connect, if one is in flight.
    ///
    /// # Errors
    /// The error of `io_uring_enter` when the queue had to be flushed to make room.
    pub fn cancel(&mut self, slot: usize) -> io::Result<()> {
        let Some(Some(op)) = self.slots.get(slot) else {
            return Ok(());
        };
        let target = Self::user_data(slot, op.generation);
        self.room()?;
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(CANCEL | target);
        // SAFETY: a cancel refers to no memory of ours.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("connect ring: submission queue full"))?;
        Ok(())
    }

    /// Submits what is queued and waits up to `timeout` (`None`: without a limit) for at
    /// least one completion; returns at once when one is ready. One `io_uring_enter(2)`.
    ///
    /// # Errors
    /// The error of `io_uring_enter`, other than the wait's end (`ETIME`) and `EINTR`.
    pub fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let ts;
        let args = io_uring::types::SubmitArgs::new();
        let result = match timeout {
            Some(t) => {
                ts = types::Timespec::from(t);
                self.ring
                    .submitter()
                    .submit_with_args(1, &args.timespec(&ts))
            }
            None => self.ring.submitter().submit_with_args(1, &args),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves the finished connects into `out` (the sockets come back with them).
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        for cqe in self.ring.completion() {
            let data = cqe.user_data();
            if data & CANCEL != 0 {
                continue;
            }
            let slot = (data & 0xffff_ffff) as usize;
            let generation = (data >> 32) as u32;
            let Some(entry) = self.slots.get_mut(slot) else {
                continue;
            };
            if entry.as_ref().is_some_and(|op| op.generation == generation)
                && let Some(op) = entry.take()
            {
                drop(op.addr);
                out.push(Completion {
                    slot,
                    socket: op.socket,
                    result: cqe.result(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_complete_with_the_socket_back() {
        let mut ring = match ConnectRing::new(4) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipped: io_uring refused here: {e}");
                return;
            }
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let (_holder, closed) = crate::test_support::closed_port();
        let sock =
            || socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        ring.connect(0, sock(), open).unwrap();
        ring.connect(1, sock(), closed).unwrap();
        assert!(ring.busy(0) && ring.busy(1));
        assert!(ring.connect(1, sock(), closed).is_err(), "slot 1 is busy");
        let mut done = Vec::new();
        for _ in 0..50 {
            ring.submit_and_wait(Some(Duration::from_millis(100)))
                .unwrap();
            ring.reap(&mut done);
            if done.len() == 2 {
                break;
            }
        }
        done.sort_by_key(|c| c.slot);
        assert_eq!(done.len(), 2, "{done:?}");
        assert_eq!(done[0].result, 0);
        assert_eq!(done[1].result, -libc::ECONNREFUSED);
        assert_eq!(
            done[0].socket.peer_addr().unwrap().as_socket(),
            Some(open),
            "the socket handed back is the one connected"
        );
        assert!(!ring.busy(0) && !ring.busy(1));
    }
}
