//! `sockit proxy [ADDR]`: a SOCKS5, SOCKS4/4a and HTTP proxy server on one port (the
//! library's `sockit::proxy::server`), on the shared reporter, lifecycle and flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sockit::Port;
use sockit::addr::parse_host_port;
use sockit::proxy::Credentials;
use sockit::proxy::policy::DestPolicy;
use sockit::proxy::server::{DEFAULT_PORT, ProxyOptions, ProxyServer};
use sockit::proxy::session::{DEFAULT_HANDSHAKE_TIMEOUT, ServerConfig};

use crate::args::address::{address_error, address_text, bad_address};
use crate::args::{FamilyArgs, IdleArgs, RelayServerArgs, parse_positive_secs};
use crate::report::{JsonTo, Reporter};

/// The largest `--auth-file` read (1 MiB).
const MAX_AUTH_FILE: u64 = 1 << 20;

/// Arguments of `sockit proxy`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "One port serves SOCKS5 (CONNECT, UDP ASSOCIATE), SOCKS4/4a \
(CONNECT) and HTTP (CONNECT, and plain requests with an absolute http:// URI), told apart \
by the first byte. A malformed or refused handshake gets the protocol's own error reply \
and a handshake_failed event; the README lists each case.\n\n\
With --auth, SOCKS5 clients must use username/password (RFC 1929) and HTTP clients Basic \
credentials (a 407 with a challenge otherwise); SOCKS4, which has no password, is \
refused. --allow-dest/--deny-dest are checked on the address a target resolves to, so a \
name cannot reach a denied address.\n\n\
Examples:\n  sockit proxy\n  sockit proxy 127.0.0.1:3128 --auth alice:secret -v\n  \
sockit proxy --deny-dest 10.0.0.0/8 --allow-dest 0.0.0.0/0:80,443"
)]
pub struct Args {
    /// Where to listen: `HOST PORT`, `HOST:PORT`, `[V6]:PORT` or `PORT`
    /// (default 127.0.0.1 1080; port 0 picks a free port).
    #[arg(value_name = "ADDR", num_args = 0..=2)]
    pub addr: Vec<String>,
    /// Require these credentials (USER:PASS; repeatable).
    #[arg(long = "auth", value_name = "USER:PASS")]
    pub auth: Vec<String>,
    /// Require credentials from FILE: one USER:PASS per line; blank lines and lines
    /// starting with # are skipped.
    #[arg(long = "auth-file", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Connect clients only to these destinations: CIDR[:PORTS] (PORTS like 80,443 or
    /// 8000-8080; repeatable), checked on the resolved address.
    #[arg(
        help_heading = "Limits",
        long = "allow-dest",
        value_name = "CIDR[:PORTS]"
    )]
    pub allow_dest: Vec<String>,
    /// Never connect clients to these destinations (wins over --allow-dest).
    #[arg(
        help_heading = "Limits",
        long = "deny-dest",
        value_name = "CIDR[:PORTS]"
    )]
    pub deny_dest: Vec<String>,
    /// Time to resolve and connect to a target, in seconds (default 30).
    #[arg(help_heading = "Limits", short = 'w', long = "wait", value_name = "SECS", allow_negative_numbers = true,
          value_parser = parse_positive_secs)]
    pub wait: Option<Duration>,
    /// Time a client has for its whole handshake, in seconds (default 10).
    #[arg(help_heading = "Limits", long = "handshake-timeout", value_name = "SECS", allow_negative_numbers = true,
          value_parser = parse_positive_secs)]
    pub handshake_timeout: Option<Duration>,
    /// How long a SOCKS BIND waits for its incoming connection, in seconds (default 60).
    #[arg(help_heading = "Limits", long = "bind-timeout", value_name = "SECS", allow_negative_numbers = true,
          value_parser = parse_positive_secs)]
    pub bind_timeout: Option<Duration>,
    /// Refuse SOCKS5 UDP ASSOCIATE (reply 7, command not supported).
    #[arg(long = "no-udp")]
    pub no_udp: bool,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub idle: IdleArgs,
    /// --max-conns, --allow/--deny, --drain, -v/--json, --stats-interval, --metrics, -x/-o,
    /// socket options.
    #[command(flatten)]
    pub server: RelayServerArgs,
}

/// The credentials of `--auth` and `--auth-file`.
fn users(args: &Args) -> anyhow::Result<Vec<Credentials>> {
    let mut users = Vec::new();
    for a in &args.auth {
        users.push(credentials(a).context("--auth")?);
    }
    if let Some(path) = &args.auth_file {
        users.extend(auth_file(path)?);
    }
    Ok(users)
}

/// `USER:PASS`, with the colon required (a proxy password may be empty, never missing).
fn credentials(text: &str) -> sockit::Result<Credentials> {
    if !text.contains(':') {
        return Err(sockit::Error::invalid_input(
            "proxy auth",
            "expected USER:PASS (a colon between them)",
        ));
    }
    Credentials::parse(text)
}

/// Reads `--auth-file`: one `USER:PASS` per line; an error names the line.
fn auth_file(path: &Path) -> anyhow::Result<Vec<Credentials>> {
    let bytes = sockit::files::read_capped(path, MAX_AUTH_FILE, None, "auth file")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        sockit::Error::invalid_input("auth file", format!("{}: not UTF-8 text", path.display()))
    })?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let c = credentials(line).map_err(|e| {
            sockit::Error::invalid_input(
                "auth file",
                format!("{} line {}: {}", path.display(), i + 1, e.message()),
            )
        })?;
        users.push(c);
    }
    if users.is_empty() {
        return Err(sockit::Error::invalid_input(
            "auth file",
            format!("{}: no USER:PASS line", path.display()),
        )
        .into());
    }
    Ok(users)
}

/// Runs `sockit proxy`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reporter = Reporter::new(&args.server.output, JsonTo::Stdout);
    match serve(args, &reporter) {
        Ok(code) => Ok(code),
        Err(e) => Ok(reporter.fail(&e)),
    }
}

fn serve(args: Args, reporter: &std::sync::Arc<Reporter>) -> anyhow::Result<ExitCode> {
    let (host, port) = if args.addr.is_empty() {
        (None, Port::Number(DEFAULT_PORT))
    } else {
        let hp = parse_host_port(&args.addr)
            .map_err(|e| bad_address(None, &address_text(&args.addr), e))?;
        (hp.host, hp.port)
    };
    let users = users(&args)?;
    let opts = ProxyOptions {
        max_conns: args.server.admit.max_conns(),
        idle_timeout: args.idle.timeout,
        connect_timeout: Some(
            args.wait
                .unwrap_or(sockit::proxy::server::DEFAULT_CONNECT_TIMEOUT),
        ),
        bind_timeout: args
            .bind_timeout
            .unwrap_or(sockit::proxy::server::DEFAULT_BIND_TIMEOUT),
        access: args.server.admit.access()?,
        proxy_from: args.server.admit.proxy_sources()?,
        dest: DestPolicy::parse(&args.allow_dest, &args.deny_dest)?,
        session: ServerConfig {
            users,
            handshake_timeout: args.handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            udp_associate: !args.no_udp,
            ..ServerConfig::default()
        },
        lookup: args.family.connect_options(),
        sockopts: args.server.sockopts.options(),
        log: args.server.log.shared()?,
        datagram_events: args.server.output.verbose >= 2,
    };
    let open = opts.session.users.is_empty();
    let rt = crate::lifecycle::runtime()?;
    let result = rt.block_on(async {
        let (life, ops) = args.server.start(reporter, &args.family)?;
        let server = ProxyServer::bind(host.as_deref(), &port, opts)
            .map_err(|e| address_error(None, &address_text(&args.addr), e))?;
        ops.serving(sockit::serve::Transport::Tcp);
        reporter.listening(&server.listening(), None)?;
        let sink = ops.sink();
        ops.start(life.stop())?;
        if !server.is_loopback() && open {
            reporter.warn_on_stderr(format!(
                "proxy on {} without --auth: anyone who can reach it can use it",
                server.local()
            ));
        }
        reporter.applied(server.applied());
        server.run(sink, life.stop()).await?;
        Ok(life.exit_code())
    });
    reporter.flush();
    rt.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_file_lines() {
        let dir = std::env::temp_dir().join(format!("sockit-authfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("users");
        std::fs::write(&f, "# users\n\nalice:secret\r\nbob:pa:ss\n").unwrap();
        let users = auth_file(&f).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].password, "pa:ss");
        std::fs::write(&f, "alice:secret\nbob\n").unwrap();
        let e = auth_file(&f).unwrap_err().to_string();
        assert!(e.contains("line 2: expected USER:PASS"), "{e}");
        std::fs::write(&f, "# nothing\n").unwrap();
        assert!(
            auth_file(&f)
                .unwrap_err()
                .to_string()
                .contains("no USER:PASS line")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
