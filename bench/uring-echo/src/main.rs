//! uring-echo: an io_uring echo server (TCP and UDP on one 127.0.0.1 port), kept as a
//! benchmark peer. It is the measurement behind `sockit echo-server`'s engine: whether
//! io_uring's fewer system calls make a round trip cheaper than epoll's on this kind of
//! machine (see bench/README.md, "io_uring").
//!
//! Design: one ring per core (SO_REUSEPORT), `IORING_SETUP_SINGLE_ISSUER |
//! DEFER_TASKRUN`, multishot accept, multishot `recv` with a ring of provided buffers
//! (1,024 x 16 KiB), `send` of each received buffer (MSG_WAITALL), multishot `recvmsg` and
//! `sendmsg` for UDP; one `io_uring_enter(2)` submits and waits. There is no flow control
//! (a client that does not read makes it hold buffers), no stop, no limits: a measuring
//! instrument, not a server to deploy.
//!
//! usage: uring-echo [HOST:PORT]   (default 127.0.0.1:7000; loopback only)
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

const TCP_BGID: u16 = 0;
const UDP_BGID: u16 = 1;
const TCP_NBUF: u16 = 1024;
const TCP_BUFSZ: usize = 16 * 1024;
const UDP_NBUF: u16 = 256;
const UDP_BUFSZ: usize = 65536 + 256;

const OP_ACCEPT: u64 = 0;
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_URECV: u64 = 3;
const OP_USEND: u64 = 4;

fn ud(op: u64, gen_: u32, idx: u32) -> u64 {
    op << 60 | (gen_ as u64 & 0x0fff_ffff) << 32 | idx as u64
}
fn ud_split(u: u64) -> (u64, u32, u32) {
    (u >> 60, ((u >> 32) & 0x0fff_ffff) as u32, u as u32)
}

struct BufRing {
    ring: *mut types::BufRingEntry,
    mask: u16,
    tail: u16,
    bufs: Vec<u8>,
    bufsz: usize,
}

impl BufRing {
    fn new(ring: &IoUring, bgid: u16, n: u16, bufsz: usize) -> BufRing {
        let bytes = n as usize * std::mem::size_of::<types::BufRingEntry>();
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED);
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(p as u64, n, bgid, 0)
                .expect("register_buf_ring");
        }
        let mut b = BufRing {
            ring: p as *mut _,
            mask: n - 1,
            tail: 0,
            bufs: vec![0u8; n as usize * bufsz],
            bufsz,
        };
        for bid in 0..n {
            b.push(bid);
        }
        b.publish();
        b
    }
    fn push(&mut self, bid: u16) {
        unsafe {
            let e = &mut *self.ring.add((self.tail & self.mask) as usize);
            e.set_addr(self.bufs.as_ptr().add(bid as usize * self.bufsz) as u64);
            e.set_len(self.bufsz as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }
    fn publish(&self) {
        unsafe {
            let t = types::BufRingEntry::tail(self.ring) as *const std::sync::atomic::AtomicU16;
            (*t).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }
    fn ptr(&self, bid: u16) -> *const u8 {
        unsafe { self.bufs.as_ptr().add(bid as usize * self.bufsz) }
    }
    fn slice(&self, bid: u16, len: usize) -> &[u8] {
        &self.bufs[bid as usize * self.bufsz..][..len]
    }
}

struct Conn {
    fd: RawFd,
    gen_: u32,
    queue: VecDeque<(u16, u32, u32)>,
    sending: bool,
    recv_active: bool,
    eof: bool,
}

struct Udp {
    fd: RawFd,
    hdr: Box<libc::msghdr>,
    // per bid: the msghdr + iovec used to send that buffer back
    out: Vec<(libc::msghdr, libc::iovec)>,
}

struct Server {
    ring: IoUring,
    tbufs: BufRing,
    ubufs: Option<BufRing>,
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    gen_: u32,
    listen_fd: RawFd,
    udp: Option<Udp>,
    sqes: Vec<squeue::Entry>,
    need_recv: Vec<u32>,
    dirty: bool,
}

impl Server {
    fn push(&mut self, e: squeue::Entry) {
        self.sqes.push(e);
    }
    fn flush_sqes(&mut self) {
        let mut i = 0;
        while i < self.sqes.len() {
            let mut sq = self.ring.submission();
            while i < self.sqes.len() {
                if unsafe { sq.push(&self.sqes[i]) }.is_err() {
                    break;
                }
                i += 1;
            }
            drop(sq);
            if i < self.sqes.len() {
                self.ring.submit().expect("submit");
            }
        }
        self.sqes.clear();
    }
    fn start_recv(&mut self, idx: u32) {
        let c = self.conns[idx as usize].as_mut().unwrap();
        c.recv_active = true;
        let e = opcode::RecvMulti::new(types::Fd(c.fd), TCP_BGID)
            .build()
            .user_data(ud(OP_RECV, c.gen_, idx));
        self.push(e);
    }
    fn start_send(&mut self, idx: u32) {
        let c = self.conns[idx as usize].as_mut().unwrap();
        let &(bid, off, len) = c.queue.front().unwrap();
        c.sending = true;
        let p = unsafe { self.tbufs.ptr(bid).add(off as usize) };
        let e = opcode::Send::new(types::Fd(c.fd), p, len - off)
            .flags(libc::MSG_WAITALL)
            .build()
            .user_data(ud(OP_SEND, c.gen_, idx));
        self.sqes.push(e);
    }
    fn maybe_free(&mut self, idx: u32) {
        let c = self.conns[idx as usize].as_ref().unwrap();
        if !c.recv_active && !c.sending {
            let c = self.conns[idx as usize].take().unwrap();
            for (bid, _, _) in c.queue {
                self.tbufs.push(bid);
                self.dirty = true;
            }
            unsafe { libc::close(c.fd) };
            self.free.push(idx);
        }
    }
    fn fail(&mut self, idx: u32) {
        let c = self.conns[idx as usize].as_mut().unwrap();
        c.eof = true;
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
    }
    fn on_cqe(&mut self, user_data: u64, res: i32, flags: u32) {
        let (op, g, idx) = ud_split(user_data);
        match op {
            OP_ACCEPT => {
                if res >= 0 {
                    let fd = res;
                    let one: libc::c_int = 1;
                    unsafe {
                        libc::setsockopt(
                            fd,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            &one as *const _ as *const _,
                            4,
                        )
                    };
                    self.gen_ = self.gen_.wrapping_add(1) & 0x0fff_ffff;
                    let c = Conn {
                        fd,
                        gen_: self.gen_,
                        queue: VecDeque::new(),
                        sending: false,
                        recv_active: false,
                        eof: false,
                    };
                    let idx = match self.free.pop() {
                        Some(i) => {
                            self.conns[i as usize] = Some(c);
                            i
                        }
                        None => {
                            self.conns.push(Some(c));
                            self.conns.len() as u32 - 1
                        }
                    };
                    self.start_recv(idx);
                }
                if !cqueue::more(flags) {
                    let e = opcode::AcceptMulti::new(types::Fd(self.listen_fd))
                        .flags(libc::SOCK_CLOEXEC)
                        .build()
                        .user_data(ud(OP_ACCEPT, 0, 0));
                    self.push(e);
                }
            }
            OP_RECV => {
                let Some(c) = self.conns[idx as usize].as_mut() else {
                    return;
                };
                if c.gen_ != g {
                    return;
                }
                let more = cqueue::more(flags);
                if !more {
                    c.recv_active = false;
                }
                if res > 0 {
                    let bid = cqueue::buffer_select(flags).expect("bid");
                    c.queue.push_back((bid, 0, res as u32));
                    if !c.sending {
                        self.start_send(idx);
                    }
                    let c = self.conns[idx as usize].as_mut().unwrap();
                    if !more && !c.eof {
                        self.start_recv(idx);
                    }
                } else if res == -libc::ENOBUFS && !c.eof {
                    self.need_recv.push(idx);
                } else {
                    // EOF or error
                    c.eof = true;
                    if res < 0 {
                        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
                    }
                    if !more {
                        self.maybe_free(idx);
                    }
                }
            }
            OP_SEND => {
                let Some(c) = self.conns[idx as usize].as_mut() else {
                    return;
                };
                if c.gen_ != g {
                    return;
                }
                c.sending = false;
                if res < 0 {
                    self.fail(idx);
                    self.maybe_free(idx);
                    return;
                }
                let front = c.queue.front_mut().unwrap();
                front.1 += res as u32;
                if front.1 >= front.2 {
                    let (bid, _, _) = c.queue.pop_front().unwrap();
                    self.tbufs.push(bid);
                    self.dirty = true;
                }
                let c = self.conns[idx as usize].as_mut().unwrap();
                if !c.queue.is_empty() {
                    self.start_send(idx);
                } else {
                    self.maybe_free(idx);
                }
            }
            OP_URECV => {
                let u = self.udp.as_mut().unwrap();
                if res > 0 {
                    let bid = cqueue::buffer_select(flags).expect("bid");
                    let ub = self.ubufs.as_ref().unwrap();
                    let buf = ub.slice(bid, res as usize);
                    if let Ok(m) = types::RecvMsgOut::parse(buf, &u.hdr) {
                        let name = m.name_data();
                        let payload = m.payload_data();
                        let (h, iov) = &mut u.out[bid as usize];
                        iov.iov_base = payload.as_ptr() as *mut _;
                        iov.iov_len = payload.len();
                        h.msg_name = name.as_ptr() as *mut _;
                        h.msg_namelen = name.len() as u32;
                        h.msg_iov = iov;
                        h.msg_iovlen = 1;
                        let e = opcode::SendMsg::new(types::Fd(u.fd), h as *const _)
                            .build()
                            .user_data(ud(OP_USEND, 0, bid as u32));
                        self.sqes.push(e);
                    } else {
                        self.ubufs.as_mut().unwrap().push(bid);
                        self.dirty = true;
                    }
                }
                if !cqueue::more(flags) {
                    let u = self.udp.as_ref().unwrap();
                    let e = opcode::RecvMsgMulti::new(types::Fd(u.fd), &*u.hdr, UDP_BGID)
                        .build()
                        .user_data(ud(OP_URECV, 0, 0));
                    self.sqes.push(e);
                }
            }
            OP_USEND => {
                self.ubufs.as_mut().unwrap().push(idx as u16);
                self.dirty = true;
            }
            _ => {}
        }
    }

    fn run(&mut self) {
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            self.flush_sqes();
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => panic!("enter: {e}"),
            }
            loop {
                cqes.clear();
                cqes.extend(
                    self.ring
                        .completion()
                        .map(|c| (c.user_data(), c.result(), c.flags())),
                );
                if cqes.is_empty() {
                    break;
                }
                for &(u, r, f) in &cqes {
                    self.on_cqe(u, r, f);
                }
            }
            if self.dirty {
                self.tbufs.publish();
                if let Some(u) = &self.ubufs {
                    u.publish();
                }
                self.dirty = false;
                for idx in std::mem::take(&mut self.need_recv) {
                    if self.conns[idx as usize]
                        .as_ref()
                        .is_some_and(|c| !c.recv_active && !c.eof)
                    {
                        self.start_recv(idx);
                    }
                }
            }
        }
    }
}

fn main() {
    let text = std::env::args().nth(1).unwrap_or("127.0.0.1:7000".into());
    let addr: SocketAddr = match text.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("uring-echo: bad address {text:?}: {e} (want HOST:PORT)");
            std::process::exit(2);
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("uring-echo: {addr} is not a loopback address");
        std::process::exit(2);
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut hs = vec![];
    for _ in 0..threads {
        hs.push(std::thread::spawn(move || {
            if let Err(e) = worker(addr) {
                eprintln!("uring-echo: {addr}: {e}");
                std::process::exit(1);
            }
        }));
    }
    for h in hs {
        let _ = h.join();
    }
}

fn worker(addr: SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    l.set_reuse_address(true)?;
    l.set_reuse_port(true)?;
    l.bind(&addr.into())?;
    l.listen(4096)?;
    let u = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    u.set_reuse_address(true)?;
    u.set_reuse_port(true)?;
    u.bind(&addr.into())?;
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(16384)
        .build(1024)?;
    let tbufs = BufRing::new(&ring, TCP_BGID, TCP_NBUF, TCP_BUFSZ);
    let ubufs = BufRing::new(&ring, UDP_BGID, UDP_NBUF, UDP_BUFSZ);
    let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as u32;
    let zero: (libc::msghdr, libc::iovec) = unsafe { std::mem::zeroed() };
    let udp = Udp {
        fd: u.into_raw_fd(),
        hdr,
        out: vec![zero; UDP_NBUF as usize],
    };
    let listen_fd = l.as_raw_fd();
    std::mem::forget(l);
    let mut s = Server {
        ring,
        tbufs,
        ubufs: Some(ubufs),
        conns: vec![],
        free: vec![],
        gen_: 0,
        listen_fd,
        udp: Some(udp),
        sqes: vec![],
        need_recv: vec![],
        dirty: false,
    };
    s.push(
        opcode::AcceptMulti::new(types::Fd(listen_fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(OP_ACCEPT, 0, 0)),
    );
    let u = s.udp.as_ref().unwrap();
    let e = opcode::RecvMsgMulti::new(types::Fd(u.fd), &*u.hdr, UDP_BGID)
        .build()
        .user_data(ud(OP_URECV, 0, 0));
    s.push(e);
    s.run();
    Ok(())
}
