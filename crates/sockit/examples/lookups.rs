//! The slides' lookups: host name, host by name, service by port, and a gaierror.
//!
//! ```sh
//! cargo run --example lookups
//! python3 ../shared/seed-programs/lookups.py     # the same answers, line for line
//! ```

use sockit::resolve::{self, AI_NUMERICHOST};

fn main() {
    if let Err(e) = run() {
        eprintln!("{}: {e}", env!("CARGO_CRATE_NAME"));
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    println!("hostname {}", resolve::gethostname()?);
    println!(
        "gethostbyname localhost {}",
        resolve::gethostbyname("localhost")?
    );
    for port in [80, 53, 25, 110, 143, 23, 119, 70, 21, 20] {
        match resolve::getservbyport(port, Some("tcp")) {
            Ok(name) => println!("getservbyport {port} tcp {name}"),
            Err(e) => println!("getservbyport {port} tcp error {e}"),
        }
    }
    // The slides' mistyped name, looked up numerically only, so no DNS query leaves.
    for bad in ["www.googlx.co", "256.1.1.1"] {
        if let Err(e) = resolve::getaddrinfo(Some(bad), None, None, None, 0, AI_NUMERICHOST) {
            println!(
                "getaddrinfo {bad} AI_NUMERICHOST gaierror {}",
                e.code().unwrap_or(0)
            );
        }
    }
    Ok(())
}
