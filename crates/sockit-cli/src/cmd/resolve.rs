//! `sockit resolve NAME…`: the addresses of names (one getaddrinfo call each, AF_UNSPEC
//! unless -4/-6), like `getent ahosts`; `--reverse ADDR…`: the names of addresses
//! (gethostbyaddr), like `getent hosts`. No tokio on these paths.

use std::process::ExitCode;

use serde_json::json;
use sockit::resolve::{self, AI_CANONNAME, AI_NUMERICHOST, AddrInfo};
use sockit::{Error, Family, SockType};

use super::lookup::Answers;

/// A socket type to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TypeArg {
    /// SOCK_STREAM (TCP).
    Stream,
    /// SOCK_DGRAM (UDP).
    Dgram,
    /// SOCK_RAW.
    Raw,
}

/// Arguments of `sockit resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Host names (or addresses) to look up; with --reverse, addresses to name.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Names of addresses instead (gethostbyaddr; may send a DNS PTR query).
    #[arg(short = 'r', long = "reverse", conflicts_with_all = ["ipv4", "ipv6", "socktype", "canonical", "numeric"])]
    pub reverse: bool,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Only records for this socket type (default: every type, as getent ahosts).
    #[arg(long = "type", value_name = "TYPE", value_enum)]
    pub socktype: Option<TypeArg>,
    /// Also print the canonical name (AI_CANONNAME).
    #[arg(long = "canonical")]
    pub canonical: bool,
    /// Numeric addresses only: no name lookups at all (AI_NUMERICHOST).
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// Print each call made, Python-style, on stderr.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// One JSON object per name on stdout.
    #[arg(long = "json")]
    pub json: bool,
}

/// Runs `sockit resolve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut answers = Answers::new("resolve", args.json);
    for name in &args.names {
        if args.reverse {
            if args.verbose > 0 {
                crate::exit::stderr_line(format_args!("sockit: resolve: gethostbyaddr({name:?})"));
            }
            match reverse(name) {
                Ok(h) => {
                    let mut text = format!("{name} {}", h.name);
                    for a in &h.aliases {
                        text.push(' ');
                        text.push_str(a);
                    }
                    let addrs: Vec<String> = h.addresses.iter().map(|a| a.to_string()).collect();
                    answers.ok(
                        text,
                        json!({"key": name, "name": h.name, "aliases": h.aliases, "addresses": addrs}),
                    )?;
                }
                Err(e) => answers.err(name, e)?,
            }
            continue;
        }
        match forward(&args, name) {
            Ok(recs) => {
                let canon = recs
                    .iter()
                    .map(|r| r.canonname.as_str())
                    .find(|c| !c.is_empty())
                    .unwrap_or(name);
                let lines: Vec<String> = recs
                    .iter()
                    .map(|r| {
                        let mut l = format!(
                            "{name} {} {} {}",
                            sockit::addr::host_text(&r.address),
                            r.family,
                            r.socktype.map_or("0", SockType::name)
                        );
                        if args.canonical {
                            l.push(' ');
                            l.push_str(canon);
                        }
                        l
                    })
                    .collect();
                let records: Vec<serde_json::Value> = recs
                    .iter()
                    .map(|r| {
                        json!({
                            "address": sockit::addr::host_text(&r.address),
                            "family": r.family.name(),
                            "type": r.socktype.map(SockType::name),
                            "proto": r.protocol,
                        })
                    })
                    .collect();
                let mut obj = json!({"key": name, "addresses": records});
                if args.canonical {
                    obj["canonname"] = json!(canon);
                }
                answers.ok(lines.join("\n"), obj)?;
            }
            Err(e) => answers.err(name, e)?,
        }
    }
    answers.finish()
}

/// One getaddrinfo call for a name, with the flags' family, type and flags.
fn forward(args: &Args, name: &str) -> sockit::Result<Vec<AddrInfo>> {
    if name.is_empty() {
        return Err(Error::invalid_input("resolve", "empty host name"));
    }
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Some(Family::Inet),
        (_, true) => Some(Family::Inet6),
        _ => None,
    };
    let socktype = args.socktype.map(|t| match t {
        TypeArg::Stream => SockType::Stream,
        TypeArg::Dgram => SockType::Dgram,
        TypeArg::Raw => SockType::Raw,
    });
    let mut flags = 0;
    if args.canonical {
        flags |= AI_CANONNAME;
    }
    if args.numeric {
        flags |= AI_NUMERICHOST;
    }
    if args.verbose > 0 {
        let mut f = Vec::new();
        if args.canonical {
            f.push("AI_CANONNAME");
        }
        if args.numeric {
            f.push("AI_NUMERICHOST");
        }
        // The call as made: a non-ASCII name is shown IDNA-encoded, as it is passed on
        // (`bücher.example` → `xn--bcher-kva.example`); a name IDNA refuses is shown as
        // given (the call then fails before any lookup).
        let passed = resolve::encode_host("getaddrinfo", name).unwrap_or_else(|_| name.to_string());
        crate::exit::stderr_line(format_args!(
            "sockit: resolve: getaddrinfo({passed:?}, None, {}, {}, 0, {})",
            family.map_or("AF_UNSPEC", Family::name),
            socktype.map_or("0", SockType::name),
            if f.is_empty() {
                "0".to_string()
            } else {
                f.join("|")
            }
        ));
    }
    resolve::getaddrinfo(Some(name), None, family, socktype, 0, flags)
}

/// gethostbyaddr for one address (an empty one is refused before the lookup).
fn reverse(addr: &str) -> sockit::Result<resolve::HostEnt> {
    if addr.is_empty() {
        return Err(Error::invalid_input("resolve", "empty address"));
    }
    resolve::gethostbyaddr(addr)
}
