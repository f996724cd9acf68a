//! Speed of the services database (a benchmark, not a test): all 131,070 port/protocol
//! lookups (ports 1..=65535, tcp and udp) through `sockit::resolve::getservbyport`, and the
//! one-time parse of the services file. Target: under 50 ms for the 131,070 lookups.
//!
//! Run: `cargo bench -p sockit --bench lookups`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use sockit::resolve::{self, Services};

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = black_box(f());
        best = best.min(t.elapsed());
        last = Some(v);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    // First use parses /etc/services once (or falls back to the embedded table).
    let t = Instant::now();
    let db = Services::system();
    println!(
        "first use (parse {} entries from {}): {:?}",
        db.entries().len(),
        db.source(),
        t.elapsed()
    );

    let (parse, _) = best_of(50, || Services::load(Path::new(resolve::SYSTEM_SERVICES)));
    println!("parse /etc/services again: {parse:?} (best of 50)");

    let (all, found) = best_of(20, || {
        let mut found = 0usize;
        for proto in ["tcp", "udp"] {
            for port in 1..=u16::MAX {
                if resolve::getservbyport(port, Some(proto)).is_ok() {
                    found += 1;
                }
            }
        }
        found
    });
    println!(
        "131,070 getservbyport lookups (ports 1-65535, tcp and udp; {found} found): {all:?} \
         (best of 20; {:.0} ns per lookup; target < 50 ms)",
        all.as_nanos() as f64 / 131_070.0
    );

    let (named, _) = best_of(20, || {
        db.entries()
            .iter()
            .filter(|e| resolve::getservbyname(&e.name, Some(&e.proto)).is_ok())
            .count()
    });
    println!(
        "{} getservbyname lookups (every entry's name/proto): {named:?} (best of 20)",
        db.entries().len()
    );
}
