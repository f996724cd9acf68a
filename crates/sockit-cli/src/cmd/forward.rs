//! `sockit forward LISTEN TARGET`: accept on LISTEN and relay each connection (or UDP
//! peer) to TARGET (socat `TCP-LISTEN:…,fork TCP:…`).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sockit::access::AccessList;
use sockit::forward::{Endpoint, Event, EventSink, ForwardOptions, Forwarder, LocalAddr};

use crate::args::{FamilyArgs, SocketOptArgs, TrafficLogArgs, parse_secs};

/// `--max-conns N`: at least 1 (0 would accept and close every client).
pub(crate) fn parse_max_conns(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would refuse every client)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("not a whole number: {text:?}")),
    }
}

/// Arguments of `sockit forward`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Addresses: PORT, HOST:PORT, [V6]:PORT, optionally prefixed tcp: or \
udp:; unix:PATH (or /path, ./path, @abstract) for a Unix stream socket; unixgram:PATH for a Unix \
datagram socket (TARGET only). A LISTEN without \
host binds 127.0.0.1 (::1 with -6).\n\nExamples:\n  sockit forward 8080 127.0.0.1:80\n  sockit forward -u \
5353 127.0.0.1:53\n  sockit forward unix:/tmp/web.sock 127.0.0.1:80"
)]
pub struct Args {
    /// Where to accept: PORT, HOST:PORT, udp:PORT, unix:PATH …
    pub listen: String,
    /// Where to relay each connection: HOST:PORT, udp:HOST:PORT, unix:PATH, unixgram:PATH …
    pub target: String,
    /// UDP on both sides (unless an address says tcp: or unix:).
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// Time to connect to the target, in seconds (lookup and every address).
    #[arg(short = 'w', long = "wait", value_name = "SECS", allow_negative_numbers = true, value_parser = crate::args::parse_timeout_secs)]
    pub wait: Option<Duration>,
    /// End a session after SECS without traffic either way (UDP sessions: default 60).
    #[arg(short = 'i', long = "idle-timeout", value_name = "SECS", allow_negative_numbers = true,
          value_parser = crate::args::parse_idle_secs)]
    pub idle: Option<Duration>,
    /// TCP/Unix client to UDP target: after the client's end of input, relay replies for
    /// SECS more, then close the client (default 0.5, like socat's -t).
    #[arg(short = 'q', long = "quit-after", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub quit: Option<Duration>,
    /// At most N sessions at once; more are accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = sockit::forward::DEFAULT_MAX_CONNS,
          value_parser = parse_max_conns)]
    pub max_conns: usize,
    /// Admit only peers in these networks (CIDR, repeatable or comma-separated).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Refuse peers in these networks (wins over --allow).
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<String>,
    /// Print sessions (accept, connect, close with bytes each way) on stderr.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print events as JSON objects on stdout, one per line, after the listening line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub log: TrafficLogArgs,
    #[command(flatten)]
    pub sockopts: SocketOptArgs,
}

/// An address word as the forwarder uses it: the default host filled in (`tcp:[::1]:80`).
fn shown(e: &Endpoint, lookup: &sockit::client::ConnectOptions) -> String {
    match e {
        Endpoint::Ip {
            proto,
            host: None,
            port,
        } => Endpoint::Ip {
            proto: *proto,
            host: Some(sockit::forward::default_host(lookup).to_string()),
            port: port.clone(),
        }
        .to_string(),
        other => other.to_string(),
    }
}

fn print_event(verbose: u8, json_out: bool, target: &str, ev: &Event) {
    if json_out {
        let obj = match ev {
            Event::Accepted { id, peer } => json!({"event": "accepted", "id": id, "peer": peer}),
            Event::Refused { peer, reason } => {
                json!({"event": "refused", "peer": peer, "reason": reason})
            }
            Event::Connected { id, target } => {
                json!({"event": "connected", "id": id, "target": target})
            }
            Event::ConnectFailed { id, error } => json!({"event": "connect_failed", "id": id,
                "error": {"kind": error.kind().as_str(), "code": error.code(),
                          "message": error.to_string()}}),
            Event::Closed {
                id,
                peer,
                bytes_to_target,
                bytes_to_client,
                duration,
                error,
            } => json!({"event": "closed", "id": id, "peer": peer,
                "bytes_to_target": bytes_to_target, "bytes_to_client": bytes_to_client,
                "duration_us": duration.as_micros() as u64,
                "error": error.as_ref().map(|e| json!({"kind": e.kind().as_str(),
                    "code": e.code(), "message": e.to_string()}))}),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{obj}");
        let _ = out.flush();
        return;
    }
    // A target that cannot be reached is an error: said without -v too (as socat does).
    if verbose == 0 && !matches!(ev, Event::ConnectFailed { .. }) {
        return;
    }
    let line = match ev {
        Event::Accepted { id, peer } => format!("#{id} accepted {peer}"),
        Event::Refused { peer, reason } => format!("refused {peer}: {reason}"),
        Event::Connected { id, target } => format!("#{id} connected to {target}"),
        Event::ConnectFailed { id, error } => {
            format!("#{id} target {target} failed, client closed: {error}")
        }
        Event::Closed {
            id,
            peer,
            bytes_to_target,
            bytes_to_client,
            duration,
            error,
        } => {
            let why = error.as_ref().map_or(String::new(), |e| format!(" ({e})"));
            format!(
                "#{id} closed {peer}: {bytes_to_target} bytes to target, {bytes_to_client} bytes \
                 to client, {:.3} s{why}",
                duration.as_secs_f64()
            )
        }
    };
    crate::exit::stderr_line(format_args!("sockit: {line}"));
}

/// Runs `sockit forward`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let listen = Endpoint::parse(&args.listen, args.udp).context("listen address")?;
    let target = Endpoint::parse(&args.target, args.udp).context("target address")?;
    target.check_target().context("target address")?;
    // -4/-6 apply to both sides: a numeric target of the other family could never be
    // reached, so it is refused here rather than failing every client later.
    if let Endpoint::Ip { host: Some(h), .. } = &target
        && let Ok(ip) = h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        && ((args.family.ipv6 && ip.is_ipv4()) || (args.family.ipv4 && ip.is_ipv6()))
    {
        let flag = if args.family.ipv6 { "-6" } else { "-4" };
        return Err(sockit::Error::invalid_input(
            "forward",
            format!("{flag} applies to the target too, and {ip} is of the other family"),
        )
        .into());
    }
    let access = AccessList::parse(&args.allow, &args.deny)?;
    let log = args.log.shared()?;
    let opts = ForwardOptions {
        max_conns: args.max_conns,
        idle_timeout: args.idle,
        connect_timeout: args.wait,
        eof_grace: args.quit.unwrap_or(sockit::forward::UDP_EOF_GRACE),
        access,
        lookup: args.family.connect_options(),
        sockopts: args.sockopts.options(),
        log,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (verbose, json_out) = (args.verbose, args.json);
    let listen_text = shown(&listen, &opts.lookup);
    let target_text = shown(&target, &opts.lookup);
    let result = rt.block_on(async move {
        // Signals are registered before the `listening` line, so a SIGTERM or SIGINT sent
        // as soon as the line is read is handled, not the default action (death by signal).
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let fwd = Forwarder::bind(&listen, target, opts)
            .with_context(|| format!("listen on {listen_text}"))?;
        let unix_path = match fwd.local_addr()? {
            LocalAddr::Ip(addr, _) => {
                crate::output::print_listening(&addr, None)?;
                None
            }
            LocalAddr::Unix(a) => {
                crate::output::print_listening_unix(&a.to_string())?;
                a.path().map(std::path::Path::to_path_buf)
            }
        };
        if verbose > 0 {
            for a in fwd.applied() {
                crate::exit::stderr_line(format_args!("sockit: {a}"));
            }
        }
        let events: EventSink =
            Arc::new(move |ev| print_event(verbose, json_out, &target_text, &ev));
        // SIGTERM: stop accepting and let the sessions in flight finish; a second SIGTERM
        // ends at once. SIGINT: exit 130 at once; SIGHUP (the terminal went away) 129.
        let (tx, rx) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            let mut n = 0;
            while term.recv().await.is_some() {
                n += 1;
                let _ = tx.send(n);
            }
        });
        let (mut first, mut second) = (rx.clone(), rx);
        let stop = async move {
            let _ = first.wait_for(|n| *n >= 1).await;
        };
        let code = tokio::select! {
            r = fwd.run_until(events, stop) => { r?; ExitCode::SUCCESS }
            _ = int.recv() => ExitCode::from(130),
            _ = hup.recv() => ExitCode::from(129),
            _ = second.wait_for(|n| *n >= 2) => ExitCode::SUCCESS,
        };
        if let Some(p) = unix_path {
            let _ = std::fs::remove_file(p);
        }
        Ok(code)
    });
    rt.shutdown_background();
    result
}
