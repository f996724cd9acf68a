//! Test peers: the programs the tests talk to (nc, ncat, socat, openssl …), and what a
//! test does when one is missing.
//!
//! - A test that needs a peer starts with `require_peer!("socat");`. When the program is
//!   not on PATH, the test prints one loud line on the terminal (past the test harness's
//!   capture), `skipped: needs socat (apt-get install socat) [module::test]`, counts the
//!   skip and returns: it passes. With `SOCKIT_REQUIRE_PEERS=1` (set by `.ci/run` after
//!   installing the peers) it fails instead, naming the package.
//! - A test that needs a peer for one part only asks [`require`] and skips that part.
//! - The count of skips is printed once, when the test binary exits (an `atexit` handler
//!   registered by the first check, so it runs after every test, parallel or not):
//!   `peers: 2 checks skipped for a missing program: socat x2 (apt-get install socat)`.
//! - python3 is a prerequisite, not an optional peer: it runs the slides' programs in
//!   `../shared/seed-programs` and the test servers that many tests start through helpers,
//!   which cannot make their test return. Without it a test fails, always, with
//!   `needs python3 (apt-get install python3)` ([`need`], [`python3`]).
//!
//! `.ci/run` owns the package list; [`package`] names the package of each program.
//! Shared by the CLI tests (`common.rs` re-exports it) and the library's
//! `tests/examples.rs` (included there by path).

use std::io::Write;
use std::process::Command;
use std::sync::{Mutex, Once};

/// Programs the suite cannot do without: a missing one fails the test in every mode.
const PREREQUISITES: &[&str] = &["python3"];

/// The Debian package that installs `prog` (the names `.ci/run` installs); a program not
/// listed is its own package.
pub fn package(prog: &str) -> &str {
    match prog {
        "nc" => "netcat-openbsd",
        "danted" => "dante-server",
        "systemd-socket-activate" => "systemd",
        "man" => "man-db",
        "ip" | "ss" => "iproute2",
        "unshare" | "prlimit" | "nsenter" => "util-linux",
        "ps" | "pgrep" => "procps",
        "script" => "bsdutils",
        "promtool" => "prometheus",
        "proxychains" => "proxychains4",
        _ => prog,
    }
}

/// True when `prog` is an executable file in a PATH directory (no shell is run).
fn on_path(prog: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(prog))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// True when `SOCKIT_REQUIRE_PEERS` is set to something other than empty or `0`.
fn peers_required() -> bool {
    std::env::var_os("SOCKIT_REQUIRE_PEERS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The programs whose absence skipped a check, one entry per skip.
static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Prints the count of skips; runs once, when the test binary exits.
extern "C" fn print_skip_count() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let mut line = format!(
        "peers: {} check{} skipped for a missing program",
        skipped.len(),
        if skipped.len() == 1 { "" } else { "s" }
    );
    let mut progs: Vec<&String> = skipped.iter().collect();
    progs.sort();
    progs.dedup();
    for (i, prog) in progs.iter().enumerate() {
        let n = skipped.iter().filter(|p| p == prog).count();
        let sep = if i == 0 { ": " } else { ", " };
        line.push_str(&format!(
            "{sep}{prog} x{n} (apt-get install {})",
            package(prog)
        ));
    }
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Registers [`print_skip_count`] to run at exit, once per test binary.
fn count_skips_at_exit() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: atexit(3) only stores the pointer to a function that lives for the whole
        // program; the function takes no arguments, returns nothing and never unwinds (it
        // only formats and writes, ignoring errors).
        let _ = unsafe { libc::atexit(print_skip_count) };
    });
}

/// Whether the test may use `prog`: true when it is on PATH. Otherwise prints
/// `skipped: needs PROG (apt-get install PKG) [test]` to the terminal, counts the skip
/// and returns false; with `SOCKIT_REQUIRE_PEERS=1` it panics naming the package
/// instead. A prerequisite (python3) panics when missing in every mode ([`need`]).
#[must_use]
#[track_caller]
pub fn require(prog: &str) -> bool {
    count_skips_at_exit();
    if PREREQUISITES.contains(&prog) {
        need(prog);
    }
    if on_path(prog) {
        return true;
    }
    let pkg = package(prog);
    assert!(
        !peers_required(),
        "needs {prog} (apt-get install {pkg}): SOCKIT_REQUIRE_PEERS=1 makes a missing peer \
         a failure"
    );
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    // Straight to the terminal: the harness captures `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipped: needs {prog} (apt-get install {pkg}) [{test}]"
    );
    SKIPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(prog.to_string());
    false
}

/// Returns from the test (which passes) when the peer `prog` is missing; see [`require`].
macro_rules! require_peer {
    ($prog:expr) => {
        if !$crate::peers::require($prog) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require_peer;

/// Panics naming the package when the prerequisite `prog` (python3) is not on PATH, so a
/// missing one is never a bare `No such file or directory` from a spawn.
#[track_caller]
pub fn need(prog: &str) {
    assert!(
        on_path(prog),
        "needs {prog} (apt-get install {}): a prerequisite of the tests (README, \
         Prerequisites)",
        package(prog)
    );
}

/// A `Command` for `python3` (a prerequisite: fails naming it when missing).
#[track_caller]
pub fn python3() -> Command {
    need("python3");
    Command::new("python3")
}
