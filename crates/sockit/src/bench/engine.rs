//! The run: load threads, each with a single-threaded tokio runtime and its share of the
//! connections, started on one clock; their counts and histograms become the [`Report`].
//!
//! Contract: [`run`] blocks until every thread has stopped, which each does by itself
//! (the duration, the count, or the time limit of [`MAX_DURATION`](super::MAX_DURATION)).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::config::Config;
use super::conn::{Clock, Ctx, Halt, PERIOD, READ_BUF, pattern};
use super::connect::{ConnError, connect_all, io_err};
use super::dgram::udp_pingpong;
use super::histogram::{merge_histograms, new_histogram};
use super::interval::Interval;
use super::report::{Report, RunError, StopReason};
use super::stream::drive_stream;
use crate::error::{Error, Result};

/// A look at a run in progress, given to [`run`]'s callback about ten times a second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the load started (warm-up included).
    pub elapsed: Duration,
    /// Warm-up plus the measured time limit.
    pub planned: Duration,
    /// False during the warm-up.
    pub measuring: bool,
    /// Measured requests so far.
    pub requests: u64,
    /// Connections set up.
    pub connected: usize,
}

/// What [`run_with`] reports while a run goes on.
#[derive(Debug)]
pub enum Event<'a> {
    /// A look at the run, about ten times a second.
    Progress(&'a Progress),
    /// One interval's figures ([`Config::interval`]), in order, the last one ending with
    /// the run.
    Interval(&'a Interval),
}

/// Runs a benchmark to its end, calling `on_progress` about ten times a second
/// ([`run_with`] also gives the intervals).
///
/// Blocks the calling thread; starts `min(threads, connections)` OS threads.
///
/// # Errors
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) from
///   [`Config::validate`].
/// - The first connect error (for example `connect: [Errno 111] Connection refused`, or
///   [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)) when no connection could be set
///   up. Errors after that are counted in the [`Report`], not returned.
pub fn run(config: &Config, mut on_progress: impl FnMut(&Progress)) -> Result<Report> {
    run_with(config, |e| {
        if let Event::Progress(p) = e {
            on_progress(p)
        }
    })
}

/// Runs a benchmark to its end as [`run`] does, giving `on_event` the progress and, with
/// [`Config::interval`], each interval's figures.
///
/// # Errors
/// As [`run`].
pub fn run_with(config: &Config, mut on_event: impl FnMut(Event<'_>)) -> Result<Report> {
    config.validate()?;
    let nthreads = config.threads.min(config.connections).max(1);
    let shared = Arc::new(Shared {
        cfg: config.clone(),
        timeout: config.effective_timeout(),
        pat: pattern(config.size.max(READ_BUF) + PERIOD),
        slots: (0..nthreads).map(|_| Slot(AtomicU64::new(0))).collect(),
        intervals: config
            .interval
            .map(|_| (0..nthreads).map(|_| Mutex::new(new_histogram())).collect()),
    });
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, usize, Vec<ConnError>)>();
    let mut go_txs = Vec::with_capacity(nthreads);
    let mut handles = Vec::with_capacity(nthreads);
    let connect_deadline = Instant::now() + config.connect_timeout;
    for t in 0..nthreads {
        let n = (config.connections - t).div_ceil(nthreads);
        let (go_tx, go_rx) = mpsc::channel::<Option<Go>>();
        go_txs.push(go_tx);
        let (shared, ready_tx) = (shared.clone(), ready_tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || worker(t, n, shared, connect_deadline, ready_tx, go_rx))
            .map_err(|e| Error::from_io("bench thread", e))?;
        handles.push(h);
    }
    drop(ready_tx);

    // 1. every thread sets up its connections
    let mut ok_per_thread = vec![0usize; nthreads];
    let mut connect_errors = Vec::new();
    for _ in 0..nthreads {
        match ready_rx.recv() {
            Ok((t, ok, errs)) => {
                ok_per_thread[t] = ok;
                connect_errors.extend(errs);
            }
            Err(_) => break, // a thread died; its join below reports it
        }
    }
    let connected: usize = ok_per_thread.iter().sum();
    let halted = || {
        config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    if connected == 0 {
        for tx in &go_txs {
            let _ = tx.send(None);
        }
        for h in handles {
            let _ = h.join();
        }
        if halted() {
            // stopped while connecting: the (empty) partial report, not an error
            let mut r = Report::empty(&config.target, config.mode, config.size);
            r.connections = config.connections as u64;
            r.threads = nthreads as u64;
            r.rate = config.rate;
            r.warmup = config.warmup;
            for (kind, e) in connect_errors {
                *r.errors_by_kind.entry(kind.to_string()).or_insert(0) += 1;
                r.first_error.get_or_insert_with(|| RunError::new(kind, &e));
            }
            r.partial = true;
            r.stopped_by = StopReason::Stopped;
            r.derive();
            r.unanswered = 0;
            return Ok(r);
        }
        return Err(connect_errors
            .into_iter()
            .next()
            .map(|(_, e)| e)
            .unwrap_or_else(|| Error::new(crate::ErrorKind::Os, "bench", None, "no connection")));
    }

    // 2. the clock starts for everyone at once
    let start = Instant::now();
    let measure = start + config.warmup;
    let end = measure + config.effective_duration();
    let mut first = 0;
    for (t, tx) in go_txs.iter().enumerate() {
        let _ = tx.send(Some(Go {
            clock: Clock {
                start,
                measure,
                end,
            },
            first_index: first,
            connected,
        }));
        first += ok_per_thread[t];
    }
    let planned = config.warmup + config.effective_duration();
    let snapshot = |shared: &Shared| {
        let now = Instant::now();
        Progress {
            elapsed: now - start,
            planned,
            measuring: now >= measure,
            requests: shared
                .slots
                .iter()
                .map(|s| s.0.load(Ordering::Relaxed))
                .sum(),
            connected,
        }
    };
    // intervals: from the end of the warm-up, each one's requests from the progress
    // counters and its latencies from the threads' interval histograms
    let mut iv_start = measure;
    let mut iv_done = 0u64;
    let mut interval = |from: Instant, to: Instant, done: u64, on: &mut dyn FnMut(Event<'_>)| {
        let Some(hs) = &shared.intervals else { return };
        let taken: Vec<Histogram<u64>> = hs
            .iter()
            .filter_map(|h| {
                h.lock()
                    .ok()
                    .map(|mut h| std::mem::replace(&mut *h, new_histogram()))
            })
            .collect();
        let histogram = merge_histograms(&taken);
        if to <= from && done <= iv_done && histogram.is_empty() {
            // nothing happened after the last tick: no empty interval at the end
            return;
        }
        let iv = Interval::new(
            from - measure,
            to - measure,
            done.saturating_sub(iv_done),
            histogram,
        );
        iv_done = done;
        on(Event::Interval(&iv));
    };
    let mut next_iv = config.interval.map(|d| measure + d);
    while !handles.iter().all(|h| h.is_finished()) {
        let now = Instant::now();
        let wake = next_iv.map_or(now + PROGRESS, |t| t.max(now).min(now + PROGRESS));
        std::thread::sleep(wake - now);
        let p = snapshot(&shared);
        on_event(Event::Progress(&p));
        if let (Some(t), Some(d)) = (next_iv, config.interval)
            && Instant::now() >= t
            // a tick at or after the end belongs to the last interval, below: a reply
            // that lands between that tick and the threads' end would be lost otherwise
            && t < end
            // else the run ended first: its last interval ends with it, below
            && !handles.iter().all(|h| h.is_finished())
        {
            interval(iv_start, t, p.requests, &mut on_event);
            iv_start = t;
            next_iv = Some(t + d);
        }
    }
    let last = snapshot(&shared);
    on_event(Event::Progress(&last));

    // 3. results
    let mut per_conn: Vec<(usize, ConnStats)> = Vec::with_capacity(connected);
    let mut hists = Vec::with_capacity(nthreads);
    let mut finished: Option<Instant> = None;
    let (mut cpu, mut wait) = (Duration::ZERO, Duration::ZERO);
    for h in handles {
        let tr = h.join().map_err(|_| {
            Error::new(
                crate::ErrorKind::Os,
                "bench",
                None,
                "a load thread panicked",
            )
        })?;
        per_conn.extend(tr.conns);
        hists.push(tr.hist);
        finished = finished.max(Some(tr.finished));
        cpu += tr.cpu;
        wait += tr.wait;
    }
    let load_time = start.elapsed();
    per_conn.sort_by_key(|(i, _)| *i);
    let mut r = Report::empty(&config.target, config.mode, config.size);
    r.connections = config.connections as u64;
    r.connected = connected as u64;
    r.threads = nthreads as u64;
    r.rate = config.rate;
    r.warmup = config.warmup;
    r.histogram = merge_histograms(&hists);
    r.requests_per_connection = Vec::with_capacity(connected);
    let secs = load_time.as_secs_f64().max(1e-9);
    r.cpu_pct = Some(100.0 * cpu.as_secs_f64() / secs);
    r.cpu_wait_pct = Some(100.0 * wait.as_secs_f64() / (secs * nthreads as f64));
    let count_error = |r: &mut Report, (kind, e): ConnError| {
        *r.errors_by_kind.entry(kind.to_string()).or_insert(0) += 1;
        r.first_error.get_or_insert_with(|| RunError::new(kind, &e));
    };
    for e in connect_errors {
        count_error(&mut r, e);
    }
    let mut errored = 0;
    for (_, c) in per_conn {
        r.requests += c.requests;
        r.sent += c.sent;
        r.sent_total += c.sent_all;
        r.extra_bytes += c.extra_bytes;
        r.unsent += c.unsent;
        r.requests_per_connection.push(c.requests);
        r.bytes_sent += c.bytes_sent;
        r.bytes_received += c.bytes_received;
        r.mismatches += c.mismatches;
        r.lost += c.lost;
        r.truncated += c.truncated;
        r.late += c.late;
        r.duplicates += c.duplicates;
        r.lost_bytes += c.lost_bytes;
        if let Some(e) = c.error {
            errored += 1;
            count_error(&mut r, e);
        }
    }
    // The run's real measured time: from the end of the warm-up until the last connection
    // stopped (not until the last reply, which made one quick request look like thousands
    // per second), and never past the end (requests in flight then were abandoned).
    // Stream mode too: connections that all died early end the measured time there.
    let stop = finished.unwrap_or_else(Instant::now).min(end).max(measure);
    r.elapsed = stop - measure;
    // the last interval ends with the run, and takes whatever the threads recorded
    // after the last tick
    interval(iv_start, stop.max(iv_start), last.requests, &mut on_event);
    let halted = halted();
    r.partial = halted;
    r.stopped_by = if halted {
        StopReason::Stopped
    } else if errored == connected {
        StopReason::Errors
    } else if let Some(n) = config.count {
        if r.requests + r.lost >= n {
            StopReason::Count
        } else {
            StopReason::TimeLimit
        }
    } else {
        StopReason::Duration
    };
    r.derive();
    if halted && r.elapsed < shared.timeout {
        // stopped too soon to tell a server that does not reply from one not asked yet
        r.unanswered = 0;
    }
    Ok(r)
}

/// A progress counter on its own cache line (one writer: its thread).
#[repr(align(128))]
pub(super) struct Slot(pub(super) AtomicU64);

pub(super) struct Shared {
    pub(super) cfg: Config,
    pub(super) timeout: Duration,
    pub(super) pat: Vec<u8>,
    pub(super) slots: Vec<Slot>,
    /// Per thread, the latencies of the current interval (with [`Config::interval`]).
    pub(super) intervals: Option<Vec<Mutex<Histogram<u64>>>>,
}

/// How often the progress callback is called.
const PROGRESS: Duration = Duration::from_millis(100);
/// How often a load thread looks at [`Config::stop`].
const STOP_POLL: Duration = Duration::from_millis(20);

pub(super) struct Go {
    pub(super) clock: Clock,
    pub(super) first_index: usize,
    pub(super) connected: usize,
}

#[derive(Default)]
pub(super) struct ConnStats {
    pub(super) requests: u64,
    pub(super) sent: u64,
    /// Requests (stream: chunks) sent, warm-up included.
    pub(super) sent_all: u64,
    /// Stream: bytes received beyond those written.
    pub(super) extra_bytes: u64,
    pub(super) unsent: u64,
    pub(super) duplicates: u64,
    pub(super) bytes_sent: u64,
    pub(super) bytes_received: u64,
    pub(super) mismatches: u64,
    pub(super) lost: u64,
    pub(super) truncated: u64,
    pub(super) late: u64,
    pub(super) lost_bytes: u64,
    pub(super) error: Option<ConnError>,
    pub(super) last_done: Option<Instant>,
}

pub(super) struct ThreadResult {
    pub(super) conns: Vec<(usize, ConnStats)>,
    pub(super) hist: Histogram<u64>,
    /// When this thread's connections had all stopped.
    pub(super) finished: Instant,
    /// On-CPU and runnable-but-waiting time of this thread during the load phase.
    pub(super) cpu: Duration,
    pub(super) wait: Duration,
}

/// This thread's (on-CPU, waiting-for-a-CPU) times from `/proc/thread-self/schedstat`
/// (zero where there is no such file).
pub(super) fn sched_times() -> (Duration, Duration) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = text
        .split_whitespace()
        .map(|x| Duration::from_nanos(x.parse().unwrap_or(0)));
    (f.next().unwrap_or_default(), f.next().unwrap_or_default())
}

pub(super) enum Conn {
    Tcp(tokio::net::TcpStream),
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixStream),
    UnixDgram(tokio::net::UnixDatagram),
}

thread_local! {
    /// This thread's latency histogram (every connection of a thread records here).
    pub(super) static HIST: RefCell<Histogram<u64>> = RefCell::new(new_histogram());
    /// This thread's measured requests, published to its progress slot.
    pub(super) static DONE: Cell<u64> = const { Cell::new(0) };
}

/// One load thread: set up its connections, wait for the clock, run them.
pub(super) fn worker(
    t: usize,
    n: usize,
    shared: Arc<Shared>,
    connect_deadline: Instant,
    ready: mpsc::Sender<(usize, usize, Vec<ConnError>)>,
    go: mpsc::Receiver<Option<Go>>,
) -> ThreadResult {
    let empty = || ThreadResult {
        conns: Vec::new(),
        hist: new_histogram(),
        finished: Instant::now(),
        cpu: Duration::ZERO,
        wait: Duration::ZERO,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send((t, 0, vec![io_err("bench runtime", e)]));
            return empty();
        }
    };
    if shared.cfg.rate.is_some() {
        // open-loop pacing: let the kernel fire this thread's timers within 1 µs
        let _ = crate::sys::timer::set_timer_slack(1_000);
    }
    // A stop from outside ends the connect phase (and its connection check) at once: the
    // connections are dropped with the runtime and the run reports what it has (nothing).
    let (conns, errs) = rt.block_on(async {
        let stopped = async {
            match &shared.cfg.stop {
                Some(stop) => {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(STOP_POLL).await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = connect_all(n, &shared, connect_deadline) => r,
            () = stopped => (Vec::new(), Vec::new()),
        }
    });
    let _ = ready.send((t, conns.len(), errs));
    // drop the sender now: if another thread died before reporting, the main thread's
    // wait for reports ends once every live thread has reported
    drop(ready);
    let Ok(Some(go)) = go.recv() else {
        return empty();
    };
    let (cpu0, wait0) = sched_times();
    let local = tokio::task::LocalSet::new();
    let halt = Rc::new(Halt::default());
    let results = local.block_on(&rt, async {
        if let Some(stop) = shared.cfg.stop.clone() {
            // a stop from outside halts every connection of this thread
            let halt = halt.clone();
            tokio::task::spawn_local(async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(STOP_POLL).await;
                }
                halt.trigger();
            });
        }
        let mut tasks = Vec::with_capacity(conns.len());
        for (i, conn) in conns.into_iter().enumerate() {
            let gidx = go.first_index + i;
            let budget = shared.cfg.count.map(|c| {
                let k = go.connected as u64;
                c / k + u64::from((gidx as u64) < c % k)
            });
            let ctx = Ctx {
                halt: halt.clone(),
                shared: shared.clone(),
                thread: t,
                clock: go.clock,
                id: gidx,
                budget,
                first_send: shared.cfg.rate.map(|r| {
                    let interval = go.connected as f64 / r;
                    go.clock.start
                        + Duration::from_secs_f64(interval * gidx as f64 / go.connected as f64)
                }),
                interval: shared
                    .cfg
                    .rate
                    .map(|r| Duration::from_secs_f64(go.connected as f64 / r)),
            };
            tasks.push(tokio::task::spawn_local(async move {
                let st = match conn {
                    Conn::Tcp(mut s) => {
                        let (r, w) = s.split();
                        drive_stream(r, w, &ctx).await
                    }
                    Conn::Unix(mut s) => {
                        let (r, w) = s.split();
                        drive_stream(r, w, &ctx).await
                    }
                    Conn::Udp(s) => udp_pingpong(&s, &ctx).await,
                    Conn::UnixDgram(s) => udp_pingpong(&s, &ctx).await,
                };
                (gidx, st)
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(r) => out.push(r),
                Err(_) => out.push((
                    go.first_index + i,
                    ConnStats {
                        error: Some((
                            "os",
                            Error::new(crate::ErrorKind::Os, "bench", None, "task failed"),
                        )),
                        ..ConnStats::default()
                    },
                )),
            }
        }
        out
    });
    let finished = Instant::now();
    let (cpu1, wait1) = sched_times();
    let hist = HIST.with(|h| std::mem::replace(&mut *h.borrow_mut(), new_histogram()));
    ThreadResult {
        conns: results,
        hist,
        finished,
        cpu: cpu1.saturating_sub(cpu0),
        wait: wait1.saturating_sub(wait0),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Mode, Target};
    use super::*;
    use std::net::SocketAddr;

    /// A small blocking echo server thread on 127.0.0.1 for one test.
    pub(super) fn echo_thread() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(16) {
                let Ok(mut s) = s else { break };
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut b = [0u8; 4096];
                    loop {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&b[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        a
    }

    #[test]
    pub(super) fn count_is_split_over_connections() {
        let a = echo_thread();
        let mut c = Config::new(Target::Tcp(a));
        c.connections = 3;
        c.threads = 2;
        c.count = Some(100);
        c.duration = Some(Duration::from_secs(10));
        let r = run(&c, |_| {}).unwrap();
        assert_eq!(r.requests, 100);
        assert_eq!(r.requests_per_connection, vec![34, 33, 33]);
        assert_eq!(r.stopped_by, StopReason::Count);
        assert_eq!(r.histogram.len(), 100);
        assert!(!r.data_errors());
        assert_eq!(r.error_count(), 0);
    }

    #[test]
    pub(super) fn stream_mode_echoes_everything() {
        let a = echo_thread();
        let mut c = Config::new(Target::Tcp(a));
        c.mode = Mode::Stream;
        c.size = 16384;
        c.duration = Some(Duration::from_millis(300));
        let r = run(&c, |_| {}).unwrap();
        assert!(r.bytes_received > 0);
        assert_eq!(r.lost_bytes, 0);
        assert_eq!(r.mismatches, 0);
        assert_eq!(r.error_count(), 0, "{:?}", r.first_error);
    }

    #[test]
    pub(super) fn refused_is_an_error() {
        // A bound socket that does not listen: refused, and held so no parallel test can
        // listen on the port meanwhile (as on the port of a dropped listener).
        let (_holder, a) = crate::test_support::closed_port();
        let c = Config::new(Target::Tcp(a));
        let e = run(&c, |_| {}).unwrap_err();
        assert!(e.is_errno(libc::ECONNREFUSED), "{e}");
    }
}

#[cfg(test)]
mod stop_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::super::{Config, Event, Mode, StopReason, Target};
    use super::run_with;

    fn echo() -> std::net::SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(8) {
                let Ok(mut s) = s else { break };
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut b = [0u8; 65536];
                    while let Ok(n @ 1..) = s.read(&mut b) {
                        if s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        a
    }

    #[test]
    fn a_stop_from_outside_ends_the_run_with_a_partial_report_and_intervals() {
        for mode in [Mode::PingPong, Mode::Stream] {
            let stop = Arc::new(AtomicBool::new(false));
            let mut c = Config::new(Target::Tcp(echo()));
            c.mode = mode;
            c.connections = 2;
            c.duration = Some(Duration::from_secs(30));
            c.interval = Some(Duration::from_millis(100));
            c.stop = Some(stop.clone());
            let t = Instant::now();
            let mut intervals = Vec::new();
            let r = run_with(&c, |e| {
                if let Event::Interval(iv) = e {
                    intervals.push((iv.start, iv.end, iv.requests));
                    if intervals.len() == 3 {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            })
            .unwrap();
            assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
            assert!(r.partial, "{mode:?}");
            assert_eq!(r.stopped_by, StopReason::Stopped);
            assert_eq!(r.error_count(), 0, "{:?}", r.first_error);
            assert_eq!(r.lost_bytes, 0, "{mode:?}");
            assert!(r.requests > 0);
            // the intervals tile the measured time and add up to its requests
            assert!(intervals.len() >= 3, "{intervals:?}");
            for w in intervals.windows(2) {
                assert_eq!(w[0].1, w[1].0);
            }
            // (the last one ends with the run; a thread that ends just as an interval
            // does may leave that one a little past the run's end)
            let last = intervals.last().unwrap().1;
            assert!(
                last.abs_diff(r.elapsed) < Duration::from_millis(100),
                "{last:?} {r:?}"
            );
            assert_eq!(intervals.iter().map(|i| i.2).sum::<u64>(), r.requests);
        }
    }

    #[test]
    fn shards_add_up_to_the_whole() {
        let mut c = Config::new(Target::Tcp("127.0.0.1:9".parse().unwrap()));
        c.connections = 5;
        c.count = Some(101);
        c.rate = Some(1000.0);
        let parts: Vec<Config> = (1..=3).map(|i| c.shard(i, 3).unwrap()).collect();
        assert_eq!(parts.iter().map(|p| p.connections).sum::<usize>(), 5);
        assert_eq!(parts.iter().map(|p| p.count.unwrap()).sum::<u64>(), 101);
        let rate: f64 = parts.iter().map(|p| p.rate.unwrap()).sum();
        assert!((rate - 1000.0).abs() < 1e-9, "{rate}");
        assert!(c.shard(0, 3).is_err() && c.shard(4, 3).is_err());
        c.connections = 1;
        assert!(c.shard(1, 2).is_err(), "an empty slice is refused");
    }
}
