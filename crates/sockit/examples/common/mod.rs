//! What every example does at the end: print the error as Python would show it and exit 1;
//! a closed stdout (`| head`) ends quietly, as the `sockit` command does.
#![allow(dead_code)] // each example uses part of it

/// The examples' result type.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs an example's body and turns its error into a message and an exit code.
pub fn main(run: fn() -> Result<()>) {
    if let Err(e) = run() {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return;
        }
        let name = std::env::args().next().unwrap_or_default();
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// The `HOST PORT` words: a host (name or address) and a port (number or service name,
/// checked: `port must be 0-65535`).
pub fn host_port(
    args: &mut impl Iterator<Item = String>,
    usage: &str,
    default: Option<(&str, &str)>,
) -> Result<(String, sockit::Port)> {
    let host = args.next().or(default.map(|d| d.0.to_string()));
    let port = args.next().or(default.map(|d| d.1.to_string()));
    match (host, port) {
        (Some(h), Some(p)) => Ok((h, sockit::Port::parse(&p)?)),
        _ => Err(usage.into()),
    }
}
