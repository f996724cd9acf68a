//! The slides' lookups: host name, host by name, service by port, and a gaierror.
//!
//! ```sh
//! cargo run --example lookups
//! python3 ../shared/seed-programs/lookups.py     # the same answers, line for line
//! ```

mod common;

use std::io::Write;

use sockit::resolve::{self, AI_NUMERICHOST};

fn main() {
    common::main(run)
}

fn run() -> common::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "hostname {}", resolve::gethostname()?)?;
    let localhost = resolve::gethostbyname("localhost")?;
    writeln!(out, "gethostbyname localhost {localhost}")?;
    for port in [80, 53, 25, 110, 143, 23, 119, 70, 21, 20] {
        match resolve::getservbyport(port, Some("tcp")) {
            Ok(name) => writeln!(out, "getservbyport {port} tcp {name}")?,
            Err(e) => writeln!(out, "getservbyport {port} tcp error {e}")?,
        }
    }
    // The slides' mistyped name, looked up numerically only, so no DNS query leaves.
    for bad in ["www.googlx.co", "256.1.1.1"] {
        if let Err(e) = resolve::getaddrinfo(Some(bad), None, None, None, 0, AI_NUMERICHOST) {
            let code = e.code().unwrap_or(0);
            writeln!(out, "getaddrinfo {bad} AI_NUMERICHOST gaierror {code}")?;
        }
    }
    Ok(())
}
