//! Batched datagram I/O: `recvmmsg(2)` and `sendmmsg(2)` (Linux).
//!
//! One [`DgramBatch`] owns the slots (payload buffer, sender address, `iovec`, `mmsghdr`)
//! for up to `batch` datagrams. [`DgramBatch::recv`] fills slots with one `recvmmsg` call;
//! [`DgramBatch::echo`] sends slots back to their senders with one `sendmmsg` call. The
//! raw pointers inside the headers point into the struct's heap vectors (set once; the
//! vectors never grow), so the struct itself may move.

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
    /// Slots `0..dirty` have lengths changed since they were last reset for receiving.
    dirty: usize,
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
// heap vectors, which move with it to another thread.
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
        let mut b = DgramBatch {
            slot_bytes,
            bufs: vec![0u8; batch * slot_bytes],
            addrs: vec![addr0; batch],
            iovs: vec![iov0; batch],
            hdrs: vec![hdr0; batch],
            filled: 0,
            dirty: 0,
        };
        b.link();
        b
    }

    /// How many datagrams one call can carry.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Points every header at its own slot and sender address. The pointers target the
    /// vectors' heap storage, which never moves or grows, so this is done once.
    fn link(&mut self) {
        let base = self.bufs.as_mut_ptr();
        for i in 0..self.hdrs.len() {
            // SAFETY: i < batch, so the slot i*slot_bytes .. +slot_bytes lies inside bufs.
            self.iovs[i].iov_base = unsafe { base.add(i * self.slot_bytes) }.cast();
            self.iovs[i].iov_len = self.slot_bytes;
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
        }
        self.dirty = 0;
    }

    /// Restores the receive lengths (slot size, address size) of the slots the last
    /// calls changed.
    #[inline]
    fn reset_for_recv(&mut self) {
        for i in 0..self.dirty {
            self.iovs[i].iov_len = self.slot_bytes;
            self.hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        }
        self.dirty = 0;
    }

    /// `recvmmsg(fd, …, MSG_DONTWAIT)`: receives up to [`capacity`](Self::capacity)
    /// datagrams without blocking. Returns how many (0 is never returned: no datagram is
    /// `EAGAIN`).
    ///
    /// # Errors
    /// The errno of the call (`EAGAIN` when nothing is queued).
    #[inline]
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_flags(fd, 0)
    }

    /// [`recv`](Self::recv) with more `flags`: `MSG_TRUNC` makes each datagram's length
    /// (`payload_len`) its real length even when it was longer than a slot (Linux, for
    /// datagram sockets).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    #[inline]
    pub fn recv_flags(&mut self, fd: RawFd, flags: libc::c_int) -> io::Result<usize> {
        let n = self.hdrs.len();
        self.reset_for_recv();
        // SAFETY: hdrs holds n initialised headers whose name and iov pointers point into
        // this struct's buffers, valid for the call; a null timeout is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | flags,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            self.filled = 0;
            return Err(io::Error::last_os_error());
        }
        self.filled = rc as usize;
        self.dirty = self.filled;
        Ok(self.filled)
    }

    /// Datagrams received by the last [`recv`](Self::recv).
    #[inline]
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Payload of received datagram `i` (`i < filled()`).
    #[inline]
    pub fn payload(&self, i: usize) -> &[u8] {
        let len = (self.hdrs[i].msg_len as usize).min(self.slot_bytes);
        &self.bufs[i * self.slot_bytes..i * self.slot_bytes + len]
    }

    /// Length of received datagram `i` as the kernel reported it: with `MSG_TRUNC` in
    /// [`recv_flags`](Self::recv_flags), its real length, which may exceed the slot.
    #[inline]
    pub fn payload_len(&self, i: usize) -> usize {
        self.hdrs[i].msg_len as usize
    }

    /// True when datagram `i` was longer than a slot (`MSG_TRUNC`).
    #[inline]
    pub fn truncated(&self, i: usize) -> bool {
        self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Sender of datagram `i`, when it is an IP address.
    #[inline]
    pub fn sender(&self, i: usize) -> Option<std::net::SocketAddr> {
        // SAFETY: addrs[i] is a sockaddr_storage the kernel filled with msg_namelen bytes.
        unsafe {
            super::sockaddr_to_std(
                (&self.addrs[i] as *const libc::sockaddr_storage).cast(),
                self.hdrs[i].msg_hdr.msg_namelen,
            )
        }
    }

    /// Sender of datagram `i` as a socket address of any family (a Unix datagram
    /// socket's sender: a path, an abstract name, or unnamed).
    pub fn sender_sockaddr(&self, i: usize) -> socket2::SockAddr {
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: SockAddrStorage is repr(transparent) over sockaddr_storage (socket2's
        // documented way in); addrs[i] holds msg_namelen (at most its size) bytes the
        // kernel wrote, and SockAddr reads no further.
        unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = self.addrs[i];
            socket2::SockAddr::new(storage, self.hdrs[i].msg_hdr.msg_namelen)
        }
    }

    /// `sendmmsg(fd, …, MSG_DONTWAIT)`: sends datagrams `range` (of the last receive)
    /// back to their senders, each whole. Returns how many were sent, from the start of
    /// `range`.
    ///
    /// # Errors
    /// The errno of the first datagram when none was sent (`EAGAIN` when the socket's
    /// send buffer is full).
    #[inline]
    pub fn echo(&mut self, fd: RawFd, range: std::ops::Range<usize>) -> io::Result<usize> {
        let range = range.start..range.end.min(self.filled);
        if range.is_empty() {
            return Ok(0);
        }
        for i in range.clone() {
            self.iovs[i].iov_len = self.hdrs[i].msg_len as usize;
        }
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

#[cfg(test)]
mod tests {
    use super::DgramBatch;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn batch_receives_and_echoes_each_datagram_whole_twice_over() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        let mut batch = DgramBatch::new(4, 2048);
        for round in 0..2 {
            let msgs: [&[u8]; 3] = [b"one", b"", b"three"];
            for m in msgs {
                client.send(m).unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
            let n = batch.recv(server.as_raw_fd()).unwrap();
            assert_eq!(n, 3, "round {round}");
            for (i, m) in msgs.iter().enumerate() {
                assert_eq!(batch.payload(i), *m);
                assert!(!batch.truncated(i));
                assert_eq!(batch.sender(i), Some(client.local_addr().unwrap()));
            }
            assert_eq!(batch.echo(server.as_raw_fd(), 0..3).unwrap(), 3);
            let mut buf = [0u8; 16];
            for m in msgs {
                let got = client.recv(&mut buf).unwrap();
                assert_eq!(&buf[..got], m);
            }
        }
        let e = batch.recv(server.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }
}
