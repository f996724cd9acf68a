//! The idle rule of every stream relay (`-i`), one for `connect`, `listen`, `forward` and
//! `proxy`: a relay is idle once [`RelayOptions::idle_timeout`](super::RelayOptions)
//! passed with no byte moved either way.
//!
//! "Moved" is more than what the relay itself reads and writes. A relay blocked in a write
//! to a slow reader waits for the kernel, which wakes a writer only once a third of a
//! large send buffer is free — seconds — while the reader keeps receiving what is queued.
//! So the send queues of the sockets a relay writes to ([`Counters::watch_send_queues`])
//! count too: a change in what a socket still holds to send (`ioctl(SIOCOUTQ)`) is
//! traffic (fresh-eyes QA: `-i 2` cut a session delivering 300 KB/s at 3.8 of 8 MB). A
//! peer that reads nothing leaves its queue as it is and still times out.
//!
//! An idle cut of a socket whose queue still holds bytes ([`has_unsent`]) must be a reset
//! (`SO_LINGER` 0, close): a FIN would let the peer read the part that arrived as a
//! complete stream.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::Counters;
use crate::serve::CloseReason;

/// A socket whose send queue an idle clock watches: a duplicate of its descriptor (the
/// relay may own the socket itself) and the queue's length when last looked at.
#[derive(Debug)]
pub(super) struct Queue {
    fd: OwnedFd,
    last: Option<usize>,
}

impl Queue {
    fn now(&self) -> Option<usize> {
        crate::sys::unacked_bytes(self.fd.as_fd()).ok()
    }
}

impl Counters {
    /// Makes the idle clock ([`Counters::idle_expired`]) count a change in these sockets'
    /// send queues (`ioctl(SIOCOUTQ)`) as traffic, replacing the sockets watched before.
    /// The descriptors are duplicated (`dup(2)`); one that cannot be is not watched.
    pub fn watch_send_queues(&self, fds: &[BorrowedFd<'_>]) {
        let queues = fds
            .iter()
            .filter_map(|fd| fd.try_clone_to_owned().ok())
            .map(|fd| {
                let mut q = Queue { fd, last: None };
                q.last = q.now();
                q
            })
            .collect();
        *self.queues.lock().unwrap_or_else(|p| p.into_inner()) = queues;
    }

    /// True when a watched send queue changed since it was last looked at: the kernel
    /// delivered (or took) bytes though the relay itself moved none. Notes the new
    /// lengths.
    pub(super) fn send_queues_moved(&self) -> bool {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let mut moved = false;
        for q in queues.iter_mut() {
            let now = q.now();
            moved |= now.is_some() && now != q.last;
            q.last = now;
        }
        moved
    }
}

/// True when `socket` still holds bytes it was given to send (`ioctl(SIOCOUTQ)` > 0): its
/// peer stopped taking them. An idle (or failed) relay cuts such a socket with a reset,
/// never a FIN (module docs).
pub fn has_unsent<S: AsFd>(socket: &S) -> bool {
    crate::sys::unacked_bytes(socket.as_fd()).is_ok_and(|n| n > 0)
}

/// How to close `socket` after a relay that ended for `reason`: as `reason` says, except
/// that an idle cut ([`CloseReason::Idle`]) of a socket that still holds bytes for its
/// peer ([`has_unsent`]) is an abort ([`CloseReason::Aborted`]: RST), never a FIN. For
/// [`close_as`](crate::serve::close::close_as).
pub fn close_reason<S: AsFd>(reason: CloseReason, socket: &S) -> CloseReason {
    if reason == CloseReason::Idle && has_unsent(socket) {
        CloseReason::Aborted
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn a_queue_that_drains_moved_and_one_that_stays_did_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut b, _) = l.accept().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        a.set_nonblocking(true).unwrap();
        // Fill a's send path until the kernel refuses more.
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..1000 {
            if a.write(&chunk).is_err() {
                break;
            }
        }
        let c = Counters::new();
        c.watch_send_queues(&[a.as_fd()]);
        assert!(has_unsent(&a));
        assert!(!c.send_queues_moved(), "nothing was read yet");
        // The reader takes some: the queue shrinks.
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < 1 << 20 {
            got += b.read(&mut buf).unwrap();
        }
        let t0 = std::time::Instant::now();
        while !c.send_queues_moved() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the queue never moved"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
