//! The command line: one clap subcommand per job, each with its own `Args` in `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// sockit: a socket toolkit — Python's socket module as a command.
#[derive(Debug, Parser)]
#[command(
    name = "sockit",
    version,
    about,
    propagate_version = true,
    after_help = "New here? Start with `sockit tour`: every program of the socket-programming \
slides, run live on loopback and explained step by step.\n\
`sockit COMMAND -h` for a command's options (--help for more), `sockit man COMMAND` for its \
manual page."
)]
pub struct Cli {
    /// The job to do.
    #[command(subcommand)]
    pub command: Command,
    /// Time limit of each name lookup (getaddrinfo and friends), in seconds; 0 for none.
    /// Past it the lookup fails as a timeout (exit 5).
    #[arg(help_heading = "Connection", long = "dns-timeout", value_name = "SECS", global = true,
          default_value = DNS_TIMEOUT_DEFAULT, value_parser = crate::args::parse_secs)]
    pub dns_timeout: std::time::Duration,
}

/// The default of `--dns-timeout`: glibc's resolver gives one server 5 s twice
/// (`timeout:5 attempts:2`), so the limit only cuts lookups that would take longer than
/// one unanswering server does.
pub const DNS_TIMEOUT_DEFAULT: &str = "10";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every program of the slides live on loopback, explaining each step.
    Tour(cmd::tour::Args),
    /// Concurrent echo server: TCP, UDP (-u), both (--tcp --udp), Unix (--unix PATH).
    EchoServer(cmd::echo_server::Args),
    /// Client: stdin to the socket, the socket to stdout (nc HOST PORT).
    Connect(cmd::connect::Args),
    /// Accept a peer (many with -k) and pump it to stdin/stdout (nc -l).
    Listen(cmd::listen::Args),
    /// Accept on LISTEN and relay each connection to TARGET (socat).
    Forward(cmd::forward::Args),
    /// SOCKS5, SOCKS4/4a and HTTP proxy server on one port, with auth and destination policy.
    Proxy(cmd::proxy::Args),
    /// Report which ports of which hosts accept a connection (nc -z, nmap -sT).
    Scan(cmd::scan::Args),
    /// Addresses of names (getaddrinfo), or names of addresses with --reverse.
    Resolve(cmd::resolve::Args),
    /// This machine's host name (gethostname; --fqdn for getfqdn).
    Hostname(cmd::hostname::Args),
    /// Service names and ports (getservbyport/getservbyname): 80, 80/udp, http, http/tcp.
    Service(cmd::service::Args),
    /// Protocol names and numbers (getprotobyname): tcp, 6.
    Protocol(cmd::protocol::Args),
    /// One HTTP request over a plain or TLS socket, with exact bytes and phase timings.
    Http(cmd::http::Args),
    /// Load generator: round trips per second, latency percentiles, throughput.
    Bench(cmd::bench::Args),
    /// The manual page of sockit or of one subcommand, in roff (man -l -).
    Man(cmd::man::Args),
    /// The shell completion script: bash, zsh, fish, elvish or powershell.
    Completions(cmd::completions::Args),
}

impl Command {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Tour(a) => cmd::tour::run(a),
            Command::EchoServer(a) => cmd::echo_server::run(a),
            Command::Connect(a) => cmd::connect::run(a),
            Command::Listen(a) => cmd::listen::run(a),
            Command::Forward(a) => cmd::forward::run(a),
            Command::Proxy(a) => cmd::proxy::run(a),
            Command::Scan(a) => cmd::scan::run(a),
            Command::Resolve(a) => cmd::resolve::run(a),
            Command::Hostname(a) => cmd::hostname::run(a),
            Command::Service(a) => cmd::service::run(a),
            Command::Protocol(a) => cmd::protocol::run(a),
            Command::Http(a) => cmd::http::run(a),
            Command::Bench(a) => cmd::bench::run(a),
            Command::Man(a) => cmd::man::run(a),
            Command::Completions(a) => cmd::completions::run(a),
        }
    }
}
