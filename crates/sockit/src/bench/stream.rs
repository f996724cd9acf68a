//! Stream connections (TCP, Unix): ping-pong, and stream mode (write continuously while
//! reading the echo back).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

use super::config::Mode;
use super::conn::{ABANDONED, Ctx, Halt, PERIOD, READ_BUF, Wait, fill_msg};
use super::connect::{ConnError, closed_err, io_err, timeout_err};
use super::engine::ConnStats;

/// Above this size a ping-pong message is written while its echo is read (else the
/// server's send buffer could fill while we are still writing).
pub(super) const SEQUENTIAL_MAX: usize = 16 * 1024;

/// A TCP or Unix connection: ping-pong or stream.
pub(super) async fn drive_stream<R, W>(r: R, w: W, ctx: &Ctx) -> ConnStats
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match ctx.shared.cfg.mode {
        Mode::PingPong => stream_pingpong(r, w, ctx).await,
        Mode::Stream => stream_flow(r, w, ctx).await,
    }
}

/// Reads until `buf[..want]` is filled (`*got` bytes are already there), within `wait`.
pub(super) async fn read_reply<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    got: &mut usize,
    want: usize,
    wait: Wait,
    sleep: &mut Pin<Box<Sleep>>,
    halt: &Halt,
) -> std::result::Result<(), ConnError> {
    while *got < want {
        let n = tokio::select! {
            biased;
            res = r.read(&mut buf[*got..]) => res.map_err(|e| io_err("recv", e))?,
            _ = wait.elapsed(sleep, halt) => return Err(wait.expired("recv", halt)),
        };
        if n == 0 {
            return Err(closed_err("recv"));
        }
        *got += n;
    }
    Ok(())
}

pub(super) async fn stream_pingpong<R, W>(mut r: R, mut w: W, ctx: &Ctx) -> ConnStats
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let sh = &*ctx.shared;
    let m = sh.cfg.size;
    let verify = sh.cfg.verify;
    let mut st = ConnStats::default();
    let mut sbuf = vec![0u8; m];
    let mut rbuf = vec![0u8; m.max(READ_BUF)];
    let mut carry = 0usize;
    let mut sleep = Box::pin(tokio::time::sleep(sh.timeout));
    let (mut seq, mut measured) = (0u64, 0u64);
    let pacer = ctx.pacer();
    while let Some(t0) = ctx.next_start(seq, measured, &pacer).await {
        // closed loop: t0 is now; open loop: t0 is the intended time, maybe long past
        let now = if ctx.interval.is_some() {
            Instant::now()
        } else {
            t0
        };
        let wait = Wait::new(now, sh.timeout, ctx.clock.end);
        fill_msg(&mut sbuf, &sh.pat, ctx.id, seq);
        st.sent_all += 1;
        if t0 >= ctx.clock.measure {
            st.sent += 1;
            st.bytes_sent += m as u64;
        }
        let mut got = carry;
        let res = if m <= SEQUENTIAL_MAX {
            let wr = tokio::select! {
                biased;
                res = w.write_all(&sbuf) => res.map_err(|e| io_err("send", e)),
                _ = wait.elapsed(&mut sleep, &ctx.halt) => Err(wait.expired("send", &ctx.halt)),
            };
            match wr {
                Ok(()) => {
                    read_reply(&mut r, &mut rbuf, &mut got, m, wait, &mut sleep, &ctx.halt).await
                }
                Err(e) => Err(e),
            }
        } else {
            let write = async {
                tokio::select! {
                    biased;
                    res = w.write_all(&sbuf) => res.map_err(|e| io_err("send", e)),
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wait.until)) => {
                        Err(wait.expired("send", &ctx.halt))
                    }
                    _ = ctx.halt.wait() => Err(wait.expired("send", &ctx.halt)),
                }
            };
            let (wr, rd) = tokio::join!(
                write,
                read_reply(&mut r, &mut rbuf, &mut got, m, wait, &mut sleep, &ctx.halt)
            );
            wr.and(rd)
        };
        if let Err(e) = res {
            if e.0 == ABANDONED {
                break; // in flight at the end: not an error, not counted
            }
            if e.0 == "closed" {
                st.lost_bytes += (m - got.min(m)) as u64;
            }
            st.error = Some(e);
            break;
        }
        let t1 = Instant::now();
        if verify && rbuf[..m] != sbuf[..] {
            st.mismatches += 1;
        }
        carry = got - m;
        if carry > 0 {
            // bytes beyond the echo (a server that sends more): they start the next reply
            rbuf.copy_within(m..got, 0);
        }
        if t0 >= ctx.clock.measure {
            measured += 1;
            st.requests += 1;
            st.bytes_received += m as u64;
            st.last_done = Some(t1);
            ctx.record(t1 - t0);
        }
        seq += 1;
    }
    st.unsent = ctx.due_in_window().saturating_sub(st.sent);
    st
}

pub(super) async fn stream_flow<R, W>(mut r: R, mut w: W, ctx: &Ctx) -> ConnStats
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let sh = &*ctx.shared;
    let chunk = sh.cfg.size;
    let csize = chunk as u64;
    let clock = ctx.clock;
    let hard_stop = tokio::time::Instant::from_std(clock.end + sh.timeout);
    let run_end = tokio::time::Instant::from_std(clock.end);
    let start_off = (ctx.id * 37) % PERIOD;
    // bytes handed to the kernel so far (updated after every partial write, so a byte
    // received at a position below it is an echo, and one at or above it is extra)
    let written_total = Cell::new(0u64);
    // stream position of the first chunk written in the measured window
    let measure_pos = Cell::new(u64::MAX);
    let writer_done = Cell::new(false);
    let notify = tokio::sync::Notify::new();
    let mut st = ConnStats::default();
    let mut w_err = None;
    let (mut w_reqs, mut w_all, mut w_bytes) = (0u64, 0u64, 0u64);
    let mut r_err = None;
    let (mut r_chunks, mut r_mis, mut r_bytes, mut r_total, mut extra) = (0u64, 0, 0, 0u64, 0);
    let mut last = None;
    {
        let writer = async {
            let mut off = start_off;
            'chunks: loop {
                let now = Instant::now();
                if now >= clock.end || ctx.budget.is_some_and(|b| w_reqs >= b) || ctx.halt.is_set()
                {
                    break;
                }
                if now >= clock.measure && measure_pos.get() == u64::MAX {
                    measure_pos.set(written_total.get());
                }
                // A blocked write has no timeout of its own: it is blocked because bytes
                // already written are still in the socket buffers, so they are owed, and
                // the reader ends the connection when none come back for one timeout. A
                // slow server that keeps echoing keeps it going, whatever the chunk size
                // (the kernel wakes a writer only once a third of its buffer is free, so
                // a write's own progress can pause longer than the echo's).
                let data = &sh.pat[off..off + chunk];
                let mut done = 0;
                while done < chunk {
                    let res = tokio::select! {
                        biased;
                        res = w.write(&data[done..]) => res.map_err(|e| io_err("send", e)),
                        // a write still blocked when the run ends is abandoned, not an
                        // error (as ping-pong requests in flight are): the reader counts
                        // what does not come back as lost
                        _ = tokio::time::sleep_until(run_end) => break 'chunks,
                        _ = ctx.halt.wait() => break 'chunks,
                    };
                    match res {
                        Ok(0) => {
                            w_err = Some(io_err("send", io::ErrorKind::WriteZero.into()));
                            break 'chunks;
                        }
                        Ok(n) => {
                            done += n;
                            written_total.set(written_total.get() + n as u64);
                        }
                        Err(e) => {
                            w_err = Some(e);
                            break 'chunks;
                        }
                    }
                }
                w_all += 1;
                if now >= clock.measure {
                    w_reqs += 1;
                    w_bytes += csize;
                }
                off = (off + chunk) % PERIOD;
            }
            let _ = tokio::time::timeout_at(hard_stop, w.shutdown()).await;
            writer_done.set(true);
            notify.notify_one();
        };
        let reader = async {
            let mut buf = vec![0u8; READ_BUF];
            let window_only = sh.cfg.count.is_none();
            // the chunk being received has a wrong byte
            let mut bad = false;
            // echoed bytes must keep coming: none for one timeout while some are owed
            // ends the connection (a server that reads but never echoes, or never reads)
            let mut last_rx = Instant::now();
            loop {
                if writer_done.get() && r_total >= written_total.get() {
                    break;
                }
                let stall = tokio::time::Instant::from_std(last_rx + sh.timeout).min(hard_stop);
                let n = tokio::select! {
                    biased;
                    res = r.read(&mut buf) => match res {
                        Ok(0) => {
                            if r_total < written_total.get() || !writer_done.get() {
                                r_err = Some(closed_err("recv"));
                            }
                            break;
                        }
                        Ok(n) => n,
                        Err(e) => {
                            r_err = Some(io_err("recv", e));
                            break;
                        }
                    },
                    // halted: bytes in flight are abandoned, not lost
                    _ = ctx.halt.wait() => break,
                    _ = notify.notified() => continue,
                    _ = tokio::time::sleep_until(stall) => {
                        if tokio::time::Instant::now() >= hard_stop {
                            break;
                        }
                        if r_total < written_total.get() {
                            r_err = Some(timeout_err("recv"));
                            break;
                        }
                        last_rx = Instant::now(); // nothing owed: keep waiting
                        continue;
                    }
                };
                let now = Instant::now();
                last_rx = now;
                let in_time = now >= clock.measure && (!window_only || now <= clock.end);
                // bytes beyond what was written are not echoes
                let echoed = (n as u64).min(written_total.get().saturating_sub(r_total)) as usize;
                extra += (n - echoed) as u64;
                // chunk by chunk: a chunk counts (echoed, and a mismatch if any byte of
                // it was wrong) when its last byte arrives in the measured window
                let mut i = 0;
                while i < echoed {
                    let pos = r_total + i as u64;
                    let idx = pos / csize;
                    let len = ((idx + 1) * csize - pos).min((echoed - i) as u64) as usize;
                    if sh.cfg.verify {
                        let off = (start_off + (pos % PERIOD as u64) as usize) % PERIOD;
                        bad |= buf[i..i + len] != sh.pat[off..off + len];
                    }
                    i += len;
                    let complete = (pos + len as u64) % csize == 0;
                    if complete {
                        let counted = in_time && (window_only || idx * csize >= measure_pos.get());
                        if counted {
                            r_chunks += 1;
                            r_bytes += csize;
                            r_mis += u64::from(bad);
                            last = Some(now);
                            ctx.record_progress(1);
                        }
                        bad = false;
                    }
                }
                r_total += echoed as u64;
            }
        };
        tokio::pin!(writer, reader);
        let mut writing = true;
        loop {
            tokio::select! {
                _ = &mut writer, if writing => writing = false,
                // the reader's end (an error, a stall, or every byte back) ends the writer
                _ = &mut reader => break,
            }
        }
    }
    // what came back counts: whole chunks echoed in the measured window
    st.requests = r_chunks;
    st.sent = w_reqs;
    st.sent_all = w_all;
    st.bytes_sent = w_bytes;
    st.bytes_received = r_bytes;
    st.mismatches = r_mis;
    st.extra_bytes = extra;
    st.lost_bytes = if ctx.halt.is_set() {
        0
    } else {
        written_total.get().saturating_sub(r_total)
    };
    st.last_done = last;
    st.error = w_err.or(r_err);
    st
}
