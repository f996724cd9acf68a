//! Datagram ping-pong (UDP and Unix datagrams): one datagram in flight per socket,
//! with lost, truncated, late and duplicate replies told apart.

use std::io;
use std::time::Instant;

use super::conn::{Ctx, Wait, fill_msg};
use super::connect::io_err;
use super::engine::ConnStats;

/// How many recent datagrams' outcomes are remembered to tell a duplicate reply (to an
/// answered datagram) from a late one (to a lost datagram).
pub(super) const UDP_HISTORY: usize = 4096;

/// UDP: what became of a recent datagram.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Unknown,
    Answered,
    Lost,
}

/// A connected datagram socket for [`udp_pingpong`]: UDP or Unix.
pub(super) trait Datagrams: crate::relay::DatagramSocket {
    /// Tells the runtime the socket is drained without the `recv(2)` that would fail
    /// with `EAGAIN` (the next datagram's edge wakes the task).
    fn drained(&self);
}

impl Datagrams for tokio::net::UdpSocket {
    fn drained(&self) {
        let _ = self.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

impl Datagrams for tokio::net::UnixDatagram {
    fn drained(&self) {
        let _ = self.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

/// Datagram ping-pong (UDP or Unix datagrams) on one connected socket.
pub(super) async fn udp_pingpong<S: Datagrams>(s: &S, ctx: &Ctx) -> ConnStats {
    let sh = &*ctx.shared;
    let m = sh.cfg.size;
    let verify = sh.cfg.verify;
    let mut st = ConnStats::default();
    let mut sbuf = vec![0u8; m];
    let mut old = vec![0u8; m];
    // one byte more than a request: a longer reply is seen as such (a mismatch)
    let mut rbuf = vec![0u8; (m + 1).max(65_536)];
    let mut fates = vec![Fate::Unknown; UDP_HISTORY];
    let mut sleep = Box::pin(tokio::time::sleep(sh.timeout));
    let (mut seq, mut measured) = (0u64, 0u64);
    let pacer = ctx.pacer();
    'requests: while let Some(t0) = ctx.next_start(seq, measured, &pacer).await {
        fill_msg(&mut sbuf, &sh.pat, ctx.id, seq);
        if let Err(e) = s.send_datagram(&sbuf).await {
            st.error = Some(io_err("send", e));
            break;
        }
        let is_measured = t0 >= ctx.clock.measure;
        st.sent_all += 1;
        if is_measured {
            // a datagram sent uses up one request of the count, answered or lost
            measured += 1;
            st.sent += 1;
            st.bytes_sent += m as u64;
        }
        let wait = Wait::new(Instant::now(), sh.timeout, ctx.clock.end);
        fates[(seq % UDP_HISTORY as u64) as usize] = Fate::Unknown;
        let n = loop {
            let n = tokio::select! {
                biased;
                res = s.recv_datagram(&mut rbuf) => match res {
                    Ok(n) => n,
                    Err(e) => {
                        st.error = Some(io_err("recv", e));
                        break 'requests;
                    }
                },
                _ = wait.elapsed(&mut sleep, &ctx.halt) => {
                    if !wait.timeout || ctx.halt.is_set() {
                        break 'requests; // in flight at the end: abandoned, not counted
                    }
                    st.lost += 1;
                    fates[(seq % UDP_HISTORY as u64) as usize] = Fate::Lost;
                    break None;
                }
            };
            // A reply carrying an earlier sequence number (and, verifying, exactly that
            // datagram's bytes) answers an earlier datagram: late if that one was lost,
            // a duplicate if it was answered. Anything else is this datagram's reply.
            if m >= 8 && n >= 8 {
                let s_seq = u64::from_le_bytes(rbuf[..8].try_into().unwrap_or([0; 8]));
                let earlier = s_seq < seq
                    && (!verify
                        || n == m && {
                            fill_msg(&mut old, &sh.pat, ctx.id, s_seq);
                            rbuf[..n] == old[..]
                        });
                if earlier {
                    let fate = if seq - s_seq < UDP_HISTORY as u64 {
                        fates[(s_seq % UDP_HISTORY as u64) as usize]
                    } else {
                        Fate::Lost
                    };
                    if fate == Fate::Answered {
                        st.duplicates += 1;
                    } else {
                        st.late += 1;
                    }
                    continue;
                }
            }
            break Some(n);
        };
        if let Some(n) = n {
            // One datagram was in flight and its reply is in: tell tokio the socket is
            // drained without the recv(2) that would fail with EAGAIN (the next reply's
            // edge wakes us; a late datagram queued meanwhile is read first, and skipped).
            s.drained();
            let t1 = Instant::now();
            fates[(seq % UDP_HISTORY as u64) as usize] = Fate::Answered;
            if n < m {
                st.truncated += 1;
            } else if verify && rbuf[..n] != sbuf[..] {
                st.mismatches += 1;
            }
            if is_measured {
                st.requests += 1;
                st.bytes_received += n as u64;
                st.last_done = Some(t1);
                ctx.record(t1 - t0);
            }
        }
        seq += 1;
    }
    st.unsent = ctx.due_in_window().saturating_sub(st.sent);
    st
}
