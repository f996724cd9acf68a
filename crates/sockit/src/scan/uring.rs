//! The io_uring engine of the TCP scan: one ring per worker thread, a probe per ring slot,
//! every connect of a turn submitted (and, on loopback, answered) in one
//! `io_uring_enter(2)`.
//!
//! A worker fills its free slots from the shared [`Plan`], submits, waits until the first
//! completion or the earliest deadline, hands the results on, and cancels the connects
//! whose time ran out (`IORING_OP_ASYNC_CANCEL`: the connect then ends with `ECANCELED`,
//! reported filtered, as a timeout). A slot keeps its socket while the port it probed
//! refused ([`super::tcp`]).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::PortState;
use super::tcp::{
    Batch, Item, Kept, Outcome, Plan, Results, is_fd_shortage, outcome, result, socket_for,
};
use crate::error::{Error, Result};
use crate::sys::uring::{Completion, ConnectRing};

/// Cancels sent to one connect before the scan gives up on it (a connect that outlives
/// three cancels, each a timeout apart, would be a kernel bug; the loop stays bounded).
const MAX_CANCELS: u32 = 3;

/// Checks that this kernel lets this process use io_uring for the scan: a one-slot ring.
///
/// # Errors
/// Why not, as an Os error of `io_uring_setup` (`[Errno 1] Operation not permitted` under
/// `kernel.io_uring_disabled` or a seccomp filter, `[Errno 38]` on a kernel without it).
pub(crate) fn available() -> Result<()> {
    ConnectRing::new(1)
        .map(drop)
        .map_err(|e| Error::from_io("io_uring_setup", e))
}

/// Runs the scan on `slots.len()` worker threads with those numbers of slots, sending the
/// results to `tx`. Errors end the scan through [`Plan::fail`].
///
/// Every worker makes its ring before any makes a probe socket, so a ring never lacks the
/// descriptor that another worker's sockets took (`--parallel` near `ulimit -n`).
pub(crate) fn run(plan: &Arc<Plan>, slots: &[usize], tx: &Results) {
    let rings_made = Gate::new(slots.len());
    std::thread::scope(|s| {
        for &n in slots {
            let (tx, rings_made) = (tx.clone(), &rings_made);
            std::thread::Builder::new()
                .name("sockit-scan".into())
                .spawn_scoped(s, move || {
                    let ring = ConnectRing::new(n);
                    rings_made.pass();
                    rings_made.wait();
                    let result = ring
                        .map_err(|e| Error::from_io("io_uring_setup", e))
                        .and_then(|ring| worker(plan, ring, &tx));
                    if let Err(e) = result {
                        plan.fail(e);
                    }
                })
                .map_err(|e| {
                    rings_made.pass();
                    plan.fail(Error::from_io("scan: thread", e));
                })
                .ok();
        }
    });
}

/// Waits until `n` workers passed (made their ring, or failed to start), at most 10 s.
struct Gate {
    left: Mutex<usize>,
    all_passed: Condvar,
}

impl Gate {
    fn new(n: usize) -> Gate {
        Gate {
            left: Mutex::new(n),
            all_passed: Condvar::new(),
        }
    }

    fn pass(&self) {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.all_passed.notify_all();
        }
    }

    fn wait(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        while *left > 0 {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            left = match self.all_passed.wait_timeout(left, deadline - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// A probe in flight in a slot.
struct Probe {
    item: Item,
    start: Instant,
    seq: u64,
    cancels: u32,
}

#[derive(Default)]
struct Slot {
    probe: Option<Probe>,
    /// The socket kept from a refused connect, for the next probe.
    kept: Option<Kept>,
    /// No socket could be had for this slot (EMFILE): it makes no more probes.
    retired: bool,
}

fn worker(plan: &Plan, mut ring: ConnectRing, tx: &Results) -> Result<()> {
    let enter = |e: std::io::Error| Error::from_io("io_uring_enter", e);
    let timeout = plan.opts.timeout;
    let mut state: Vec<Slot> = (0..ring.slots()).map(|_| Slot::default()).collect();
    let mut deadlines: VecDeque<(Instant, usize, u64)> = VecDeque::new();
    let mut batch = Batch::new(tx);
    let mut done: Vec<Completion> = Vec::new();
    let (mut seq, mut in_flight, mut exhausted) = (0u64, 0usize, false);
    loop {
        if plan.stopped() {
            return Ok(());
        }
        // Fill every free slot with the next probe that needs a connect.
        'fill: for (slot, st) in state.iter_mut().enumerate() {
            if exhausted || st.retired || st.probe.is_some() {
                continue;
            }
            loop {
                let Some(item) = plan.claim() else {
                    exhausted = true;
                    break 'fill;
                };
                let sock = match socket_for(&mut st.kept, &item, plan) {
                    Ok(s) => s,
                    Err(e) if is_fd_shortage(&e) && plan.retire(item) => {
                        st.retired = true;
                        continue 'fill;
                    }
                    Err(e) => return Err(e),
                };
                // Checked once this slot's socket exists, so that its own port counts too.
                if let Some(r) = plan.own_port(&item) {
                    batch.push(r);
                    st.kept = Some(Kept::new(sock, &item, plan));
                    continue;
                }
                ring.connect(slot, sock, item.addr).map_err(enter)?;
                seq += 1;
                let start = Instant::now();
                st.probe = Some(Probe {
                    item,
                    start,
                    seq,
                    cancels: 0,
                });
                deadlines.push_back((start + timeout, slot, seq));
                in_flight += 1;
                break;
            }
        }
        if in_flight == 0 {
            // Nothing in flight: every probe handed out is done, or every slot retired
            // (the probes they gave back are another worker's now).
            batch.flush();
            return Ok(());
        }
        // Wait for the first answer, at most until the earliest deadline.
        while let Some(&(_, slot, s)) = deadlines.front()
            && state[slot].probe.as_ref().is_none_or(|p| p.seq != s)
        {
            deadlines.pop_front();
        }
        let mut wait = deadlines.front().map_or(timeout, |&(d, ..)| {
            d.saturating_duration_since(Instant::now())
        });
        // Results held back go out when they are due, even while no connect answers.
        match batch.due() {
            Some(due) if due.is_zero() => batch.flush(),
            Some(due) => wait = wait.min(due),
            None => {}
        }
        ring.submit_and_wait(Some(wait)).map_err(enter)?;
        ring.reap(&mut done);
        for c in done.drain(..) {
            let Some(p) = state[c.slot].probe.take() else {
                continue;
            };
            in_flight -= 1;
            let r = |state, reason| result(&p.item, p.start, state, reason);
            match outcome(-c.result) {
                Outcome::Open => batch.push(r(PortState::Open, None)),
                Outcome::Refused(e) => {
                    batch.push(r(PortState::Closed, Some(e)));
                    state[c.slot].kept = Some(Kept::new(c.socket, &p.item, plan));
                }
                Outcome::Port(st, e) => batch.push(r(st, Some(e))),
                Outcome::Local(e) => return Err(e),
            }
        }
        // Cancel the connects whose time ran out; the cancelled connect completes with
        // ECANCELED (filtered) on a later turn.
        let now = Instant::now();
        while let Some(&(d, slot, s)) = deadlines.front()
            && d <= now
        {
            deadlines.pop_front();
            let Some(p) = state[slot].probe.as_mut().filter(|p| p.seq == s) else {
                continue;
            };
            if p.cancels >= MAX_CANCELS {
                return Err(Error::new(
                    crate::ErrorKind::Os,
                    "io_uring",
                    None,
                    format!("a connect to {} did not end when cancelled", p.item.addr),
                ));
            }
            p.cancels += 1;
            ring.cancel(slot).map_err(enter)?;
            deadlines.push_back((now + timeout, slot, s));
        }
    }
}
