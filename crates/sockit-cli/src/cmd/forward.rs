//! `sockit forward LISTEN TARGET`: accept on LISTEN and relay each connection (or UDP
//! peer) to TARGET (socat `TCP-LISTEN:…,fork TCP:…`), on the library's server core.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sockit::forward::{Endpoint, ForwardOptions, Forwarder};

use crate::args::address::{address_error, bad_address};
use crate::args::{
    FamilyArgs, IdleArgs, ProxyArgs, RelayServerArgs, RetryArgs, SpliceArgs, parse_secs,
};
use crate::report::{JsonTo, Reporter};

/// Arguments of `sockit forward`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Addresses: PORT, HOST:PORT, [V6]:PORT, optionally prefixed tcp: or \
udp:; unix:PATH (or /path, ./path, @abstract) for a Unix stream socket; unixgram:PATH for a Unix \
datagram socket (TARGET only). A LISTEN without \
host binds 127.0.0.1 (::1 with -6).\n\nTCP and Unix stream sessions move their bytes with \
splice(2) (zero-copy) unless -x/-o, TLS, a PROXY header or --no-splice; the -v closed line says zero-copy or copied.\n\nA reset on one side is passed on to the other as a reset \
and reported without -v; SIGTERM drains sessions for --drain SECS, then aborts them with RST.\n\n\
Examples:\n  sockit forward 8080 127.0.0.1:80\n  sockit forward -u \
5353 127.0.0.1:53\n  sockit forward unix:/tmp/web.sock 127.0.0.1:80\n  sockit forward --tls --cert c.pem \
--key k.pem 8443 127.0.0.1:80\n  sockit forward --tls-target --cacert ca.pem 8080 127.0.0.1:443\n  \
sockit forward --send-proxy v2 --retry 5 8080 127.0.0.1:80"
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
    #[arg(help_heading = "Connection", short = 'w', long = "wait", value_name = "SECS", allow_negative_numbers = true, value_parser = crate::args::parse_timeout_secs)]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub retry: RetryArgs,
    /// Open each target connection with a PROXY protocol header (HAProxy's v1 text or v2
    /// binary) naming the client and the address it reached.
    #[arg(help_heading = "Connection", long = "send-proxy", value_name = "VERSION", value_parser = ["v1", "v2"])]
    pub send_proxy: Option<String>,
    #[command(flatten)]
    pub idle: IdleArgs,
    /// TCP/Unix client to UDP target: after the client's end of input, relay replies for
    /// SECS more, then close the client (default 0.5, like socat's -t).
    #[arg(help_heading = "Data", short = 'q', long = "quit-after", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs)]
    pub quit: Option<Duration>,
    /// --max-conns, --allow/--deny, --drain, -v/--json, --stats-interval, --metrics, -x/-o,
    /// socket options.
    #[command(flatten)]
    pub server: RelayServerArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub splice: SpliceArgs,
}

/// TLS on either side of the relay (stunnel's two modes).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Terminate TLS from each client (stunnel's server mode), presenting --cert/--key;
    /// without them an ephemeral self-signed certificate (its SHA-256 fingerprint on
    /// stderr).
    #[arg(help_heading = "TLS", long = "tls")]
    pub tls: bool,
    /// With --tls: the certificate chain (PEM) presented to clients; needs --key.
    #[arg(help_heading = "TLS", long = "cert", value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With --tls: its private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --cert.
    #[arg(help_heading = "TLS", long = "key", value_name = "FILE", requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// Speak TLS to the target (stunnel's client mode), verifying its certificate against
    /// the system's roots (or --cacert) and its host (or --sni).
    #[arg(help_heading = "TLS", long = "tls-target")]
    pub tls_target: bool,
    /// With --tls-target: trust the CA certificates in this PEM file instead of the
    /// system's.
    #[arg(
        help_heading = "TLS",
        long = "cacert",
        value_name = "FILE",
        requires = "tls_target"
    )]
    pub cacert: Option<PathBuf>,
    /// With --tls-target: do not verify the target's certificate. Dangerous.
    #[arg(
        help_heading = "TLS",
        long = "insecure",
        requires = "tls_target",
        conflicts_with = "cacert"
    )]
    pub insecure: bool,
    /// With --tls-target: the name to send as SNI and verify in the target's certificate
    /// (default: the target's host).
    #[arg(
        help_heading = "TLS",
        long = "sni",
        value_name = "NAME",
        requires = "tls_target"
    )]
    pub sni: Option<String>,
}

impl TlsArgs {
    /// The server side (`--tls`): its configuration, for a listener on `listen_host`.
    fn server(
        &self,
        listen: &Endpoint,
        listen_host: Option<&str>,
        reporter: &crate::report::Reporter,
    ) -> anyhow::Result<Option<std::sync::Arc<sockit::tls::rustls::ServerConfig>>> {
        if !self.tls {
            return Ok(None);
        }
        // A usage error before any certificate is made (and its fingerprint printed).
        listen.check_tls_listener()?;
        let names: Vec<String> = listen_host.map(str::to_string).into_iter().collect();
        Ok(Some(crate::args::server_tls_config(
            self.cert.as_deref(),
            self.key.as_deref(),
            None,
            &names,
            reporter,
        )?))
    }

    /// The target side (`--tls-target`).
    fn target(
        &self,
        reporter: &crate::report::Reporter,
    ) -> anyhow::Result<Option<sockit::forward::TargetTls>> {
        if !self.tls_target {
            return Ok(None);
        }
        if let Some(name) = &self.sni {
            sockit::tls::server_name(name)?;
        }
        let client = crate::args::TlsClientArgs {
            tls: true,
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            cert: None,
            key: None,
        };
        Ok(client
            .config(reporter)?
            .map(|config| sockit::forward::TargetTls {
                config,
                name: self.sni.clone(),
            }))
    }
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

/// -4/-6 apply to both sides: a numeric target of the other family could never be
/// reached, so it is refused at start rather than failing every client later.
fn check_target_family(target: &Endpoint, family: &FamilyArgs) -> anyhow::Result<()> {
    if let Endpoint::Ip { host: Some(h), .. } = target
        && let Ok(ip) = h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        && ((family.ipv6 && ip.is_ipv4()) || (family.ipv4 && ip.is_ipv6()))
    {
        let flag = if family.ipv6 { "-6" } else { "-4" };
        return Err(sockit::Error::invalid_input(
            "forward",
            format!("{flag} applies to the target too, and {ip} is of the other family"),
        )
        .into());
    }
    Ok(())
}

/// Runs `sockit forward`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out = args.server.output.clone();
    Reporter::run_server(&out, JsonTo::Stdout, |r| serve(args, r))
}

fn serve(args: Args, reporter: &std::sync::Arc<Reporter>) -> anyhow::Result<ExitCode> {
    let listen =
        Endpoint::parse(&args.listen, args.udp).map_err(|e| bad_address(None, &args.listen, e))?;
    let target_error = |e| bad_address(Some("target address"), &args.target, e);
    let mut target = Endpoint::parse(&args.target, args.udp).map_err(target_error)?;
    target.check_target().map_err(target_error)?;
    check_target_family(&target, &args.family)?;
    let lookup = args.family.connect_options();
    // The target as the connect_failed event names it, default host filled in.
    target = Endpoint::parse(&shown(&target, &lookup), false).unwrap_or(target);
    let opts = ForwardOptions {
        max_conns: args.server.admit.max_conns(),
        idle_timeout: args.idle.timeout,
        connect_timeout: args.wait,
        retry: args.retry.retry()?,
        tls: args.tls.server(
            &listen,
            match &listen {
                Endpoint::Ip { host, .. } => host.as_deref(),
                _ => None,
            },
            reporter,
        )?,
        tls_target: args.tls.target(reporter)?,
        send_proxy: args.send_proxy.as_deref().map(|v| match v {
            "v1" => sockit::proxy_protocol::Version::V1,
            _ => sockit::proxy_protocol::Version::V2,
        }),
        eof_grace: args.quit.unwrap_or(sockit::forward::UDP_EOF_GRACE),
        access: args.server.admit.access()?,
        proxy_from: args.server.admit.proxy_sources()?,
        lookup: lookup.clone(),
        sockopts: args.server.sockopts.options(),
        log: args.server.log.shared()?,
        proxy: args.proxy.proxy()?,
        splice: args.splice.splice(),
    };
    let rt = crate::lifecycle::runtime()?;
    let result = rt.block_on(async {
        let (life, ops) = args.server.start(reporter, &args.family)?;
        let fwd = Forwarder::bind(&listen, target, opts)
            .map_err(|e| address_error(None, &args.listen, e))?;
        sockit::serve::activation::check_all_taken("forward")?;
        ops.serving(fwd.transport());
        reporter.listening(&fwd.listening(), None)?;
        let sink = ops.sink();
        ops.start(life.stop())?;
        reporter.applied(fwd.applied());
        fwd.run(sink, life.stop()).await?;
        Ok(life.exit_code())
    });
    reporter.flush();
    rt.shutdown_background();
    result
}
