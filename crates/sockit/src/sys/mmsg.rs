//! Batched datagram I/O: `recvmmsg(2)` and `sendmmsg(2)` (Linux).
//!
//! One [`DgramBatch`] owns the slots (payload buffer, sender address, `iovec`, `mmsghdr`)
//! for up to `batch` datagrams. [`DgramBatch::recv`] fills slots with one `recvmmsg` call;
//! [`DgramBatch::echo`] sends slots back to their senders with one `sendmmsg` call. The
//! raw pointers inside the headers are rebuilt before each call, so the struct may move.

use std::io;
use std::os::fd::RawFd;

/// Slots for a batch of datagrams and their sender addresses.
pub struct DgramBatch {
    slot_bytes: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    filled: usize,
}

impl std::fmt::Debug for DgramBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DgramBatch")
            .field("batch", &self.hdrs.len())
            .field("slot_bytes", &self.slot_bytes)
            .field("filled", &self.filled)
            .finish()
    }
}

// SAFETY (Send): the raw pointers in `iovs`/`hdrs` only ever point into this struct's own
// vectors and are rewritten before every system call.
unsafe impl Send for DgramBatch {}

impl DgramBatch {
    /// Room for `batch` datagrams of up to `slot_bytes` bytes each. The buffer is
    /// zero-allocated, so pages a datagram never touches cost no memory.
    pub fn new(batch: usize, slot_bytes: usize) -> DgramBatch {
        let batch = batch.max(1);
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all
        // zero bytes is a valid (empty) value.
        let (addr0, iov0, hdr0) = unsafe {
            (
                std::mem::zeroed::<libc::sockaddr_storage>(),
                std::mem::zeroed::<libc::iovec>(),
                std::mem::zeroed::<libc::mmsghdr>(),
            )
        };
        DgramBatch {
            slot_bytes,
            bufs: vec![0u8; batch * slot_bytes],
            addrs: vec![addr0; batch],
            iovs: vec![iov0; batch],
            hdrs: vec![hdr0; batch],
            filled: 0,
        }
    }

    /// How many datagrams one call can carry.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Points every header at its own slot; `lens` gives each iovec's length (the slot
    /// size for receiving, the datagram's length for sending).
    fn link(&mut self, range: std::ops::Range<usize>, receiving: bool) {
        let base = self.bufs.as_mut_ptr();
        for i in range {
            let len = if receiving {
                self.slot_bytes
            } else {
                self.hdrs[i].msg_len as usize
            };
            // SAFETY: i < batch, so the slot i*slot_bytes .. +slot_bytes lies inside bufs.
            self.iovs[i].iov_base = unsafe { base.add(i * self.slot_bytes) }.cast();
            self.iovs[i].iov_len = len;
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            if receiving {
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            }
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
    }

    /// `recvmmsg(fd, …, MSG_DONTWAIT)`: receives up to [`capacity`](Self::capacity)
    /// datagrams without blocking. Returns how many (0 is never returned: no datagram is
    /// `EAGAIN`).
    ///
    /// # Errors
    /// The errno of the call (`EAGAIN` when nothing is queued).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.hdrs.len();
        self.link(0..n, true);
        // SAFETY: hdrs holds n initialised headers whose name and iov pointers point into
        // this struct's buffers, valid for the call; a null timeout is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            self.filled = 0;
            return Err(io::Error::last_os_error());
        }
        self.filled = rc as usize;
        Ok(self.filled)
    }

    /// Datagrams received by the last [`recv`](Self::recv).
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Payload of received datagram `i` (`i < filled()`).
    pub fn payload(&self, i: usize) -> &[u8] {
        let len = (self.hdrs[i].msg_len as usize).min(self.slot_bytes);
        &self.bufs[i * self.slot_bytes..i * self.slot_bytes + len]
    }

    /// True when datagram `i` was longer than a slot (`MSG_TRUNC`).
    pub fn truncated(&self, i: usize) -> bool {
        self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Sender of datagram `i`, when it is an IP address.
    pub fn sender(&self, i: usize) -> Option<std::net::SocketAddr> {
        // SAFETY: addrs[i] is a sockaddr_storage the kernel filled with msg_namelen bytes.
        unsafe {
            super::sockaddr_to_std(
                (&self.addrs[i] as *const libc::sockaddr_storage).cast(),
                self.hdrs[i].msg_hdr.msg_namelen,
            )
        }
    }

    /// `sendmmsg(fd, …, MSG_DONTWAIT)`: sends datagrams `range` (of the last receive)
    /// back to their senders, each whole. Returns how many were sent, from the start of
    /// `range`.
    ///
    /// # Errors
    /// The errno of the first datagram when none was sent (`EAGAIN` when the socket's
    /// send buffer is full).
    pub fn echo(&mut self, fd: RawFd, range: std::ops::Range<usize>) -> io::Result<usize> {
        let range = range.start..range.end.min(self.filled);
        if range.is_empty() {
            return Ok(0);
        }
        self.link(range.clone(), false);
        // SAFETY: the headers of `range` are initialised and point into this struct's
        // buffers (payload lengths and sender addresses from the last recvmmsg).
        let rc = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr().add(range.start),
                range.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        // sendmmsg sets msg_len of each datagram sent to the bytes sent, which for a
        // datagram is its whole length: the payload lengths stay as they were.
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }
}
