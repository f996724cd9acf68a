//! What `sockit scan` probes: its words split into hosts and ports (see `Args`'s help),
//! the ports parsed, the hosts' names looked up.

use std::collections::HashSet;
use std::net::IpAddr;

use sockit::addr::{Family, SockType};
use sockit::scan::{Transport, targets};

use super::Args;

/// True for a word that can only be ports: digits, ',' and '-' (`22`, `20-25`, `80,443`),
/// or anything with a ',' (`http,22`); no address, range or host name has a ','.
fn is_port_word(word: &str) -> bool {
    word.contains(',')
        || (!word.is_empty() && word.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

/// `[V6]` → `V6`; anything else unchanged.
fn unbracket(h: &str) -> String {
    h.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h)
        .to_string()
}

/// The host words and the port words (see `Args`'s `after_help`), or the single
/// `HOST:PORTS` / `[V6]:PORTS` word split in two. Hosts come back without brackets.
pub(super) fn split_words(words: &[String]) -> sockit::Result<(Vec<String>, Vec<String>)> {
    let (hosts, ports) = split_words_unchecked(words)?;
    // `[::1`, `:80`: malformed addresses, never names to look up
    for h in &hosts {
        if h.is_empty() || h.contains(['[', ']']) {
            return Err(sockit::Error::invalid_input(
                "address",
                format!(
                    "malformed host {h:?} in {:?} (write HOST PORTS, HOST:PORTS or [V6]:PORTS)",
                    words.join(" ")
                ),
            ));
        }
    }
    Ok((hosts, ports))
}

fn split_words_unchecked(words: &[String]) -> sockit::Result<(Vec<String>, Vec<String>)> {
    const OP: &str = "address";
    let first = words.first().map_or("", String::as_str);
    // HOST:PORTS, [V6]:PORTS: a first word that names its ports.
    let named = if let Some(rest) = first.strip_prefix('[')
        && let Some((v6, after)) = rest.split_once(']')
    {
        match after.strip_prefix(':') {
            Some(p) => Some((v6.to_string(), p)),
            None if after.is_empty() => None,
            None => {
                return Err(sockit::Error::invalid_input(
                    OP,
                    format!("expected ':' after ']' in {first:?}"),
                ));
            }
        }
    } else if first.matches(':').count() == 1 && !targets::is_range(first) {
        first.split_once(':').map(|(h, p)| (h.to_string(), p))
    } else {
        None
    };
    match named {
        Some(_) if words.len() > 1 => Err(sockit::Error::invalid_input(
            OP,
            format!("{first:?} names its ports and more words follow (give the ports once)"),
        )),
        Some((_, "")) => Err(no_ports(first)),
        Some((host, ports)) => Ok((vec![host], vec![ports.to_string()])),
        None if words.len() < 2 => Err(no_ports(first)),
        None => {
            let split = (1..words.len())
                .find(|&i| is_port_word(&words[i]))
                .unwrap_or(words.len() - 1);
            Ok((
                words[..split].iter().map(|h| unbracket(h)).collect(),
                words[split..].to_vec(),
            ))
        }
    }
}

fn no_ports(word: &str) -> sockit::Error {
    sockit::Error::invalid_input(
        "address",
        format!("no ports to scan in {word:?} (write HOST... PORTS, HOST:PORTS or [V6]:PORTS)"),
    )
}

/// Every port of the port words, in the order given, without repeats.
pub(super) fn parse_port_words(words: &[String], transport: Transport) -> sockit::Result<Vec<u16>> {
    let mut seen = HashSet::new();
    let mut ports = Vec::new();
    for word in words {
        for p in sockit::scan::parse_ports(word, transport)? {
            if seen.insert(p) {
                ports.push(p);
            }
        }
    }
    Ok(ports)
}

/// The address to scan for a name or address, and the name's other addresses: one
/// getaddrinfo call; of a name with both families the first IPv4 answer unless `-6` (as
/// nmap does), else the first.
fn lookup(args: &Args, host: &str, transport: Transport) -> sockit::Result<(IpAddr, Vec<IpAddr>)> {
    let socktype = match transport {
        Transport::Tcp => SockType::Stream,
        Transport::Udp => SockType::Dgram,
    };
    let flags = if args.family.numeric {
        sockit::resolve::AI_NUMERICHOST
    } else {
        0
    };
    let infos = sockit::resolve::getaddrinfo(
        Some(host),
        None,
        args.family.family(),
        Some(socktype),
        0,
        flags,
    )?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for info in &infos {
        if !ips.contains(&info.address.ip()) {
            ips.push(info.address.ip());
        }
    }
    let chosen = ips
        .iter()
        .copied()
        .find(IpAddr::is_ipv4)
        .or_else(|| ips.first().copied())
        .ok_or_else(|| sockit::Error::gai("getaddrinfo", libc::EAI_NONAME))?;
    ips.retain(|ip| *ip != chosen);
    Ok((chosen, ips))
}

/// The addresses of the host words, in order, without repeats: a range's every address,
/// a name's or address's one (`-v` tells the addresses of a name left out).
pub(super) fn hosts(
    args: &Args,
    words: &[String],
    transport: Transport,
    ports: usize,
) -> sockit::Result<Vec<IpAddr>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for word in words {
        let ips = if targets::is_range(word) {
            let ips = targets::parse_range(word)?;
            if let (Some(want), Some(ip)) = (args.family.family(), ips.first())
                && (want == Family::Inet) != ip.is_ipv4()
            {
                return Err(sockit::Error::invalid_input(
                    "range",
                    format!(
                        "{word} is {} and -{} asks for {}",
                        if ip.is_ipv4() { "IPv4" } else { "IPv6" },
                        if ip.is_ipv4() { 6 } else { 4 },
                        if ip.is_ipv4() { "IPv6" } else { "IPv4" },
                    ),
                ));
            }
            ips
        } else {
            let (ip, others) = lookup(args, word, transport)?;
            if args.verbose > 0 && !others.is_empty() {
                let others: Vec<String> = others.iter().map(IpAddr::to_string).collect();
                crate::exit::stderr_line(format_args!(
                    "scan {word}: scanning {ip}; the name also has {} (not scanned{})",
                    others.join(", "),
                    if ip.is_ipv4() { "; -6 scans IPv6" } else { "" },
                ));
            }
            vec![ip]
        };
        // An IPv4-mapped IPv6 address is scanned (and printed) as the IPv4 address it is.
        for ip in ips.into_iter().map(|ip| ip.to_canonical()) {
            if seen.insert(ip) {
                out.push(ip);
            }
        }
        targets::check_size(out.len(), ports)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(words: &[&str]) -> Result<(Vec<String>, Vec<String>), String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        split_words(&words).map_err(|e| e.to_string())
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn malformed_hosts_are_usage_errors_not_lookups() {
        // Regression: `scan '[::1' 80` and `scan :80` went to getaddrinfo (exit 3).
        for words in [&["[::1", "80"][..], &[":80"][..], &["[::1]x", "80"][..]] {
            let e = split_words(&s(words)).unwrap_err();
            assert_eq!(e.kind(), sockit::ErrorKind::InvalidInput, "{words:?}");
        }
        assert!(split_words(&s(&["[::1]:80"])).is_ok());
        assert!(split_words(&s(&["[::1]", "80"])).is_ok());
    }

    #[test]
    fn words_split_into_hosts_and_ports() {
        let ok = |words: &[&str], hosts: &[&str], ports: &[&str]| {
            assert_eq!(split(words), Ok((s(hosts), s(ports))), "{words:?}");
        };
        ok(&["127.0.0.1", "22"], &["127.0.0.1"], &["22"]);
        ok(&["127.0.0.1", "22", "80"], &["127.0.0.1"], &["22", "80"]);
        ok(
            &["127.0.0.1", "127.0.0.2", "80"],
            &["127.0.0.1", "127.0.0.2"],
            &["80"],
        );
        ok(&["127.0.0.0/29", "22,80"], &["127.0.0.0/29"], &["22,80"]);
        ok(&["h1", "h2", "http"], &["h1", "h2"], &["http"]);
        ok(&["h1", "22", "http", "80"], &["h1"], &["22", "http", "80"]);
        ok(&["h1", "http,22", "ssh"], &["h1"], &["http,22", "ssh"]);
        ok(
            &["[::1]", "::1", "fd00::/120", "80"],
            &["::1", "::1", "fd00::/120"],
            &["80"],
        );
        ok(&["127.0.0.1:22"], &["127.0.0.1"], &["22"]);
        ok(&["[::1]:22,80"], &["::1"], &["22,80"]);
        ok(&["localhost:http"], &["localhost"], &["http"]);
        for (words, want) in [
            (&["127.0.0.1"][..], "no ports to scan"),
            (&["127.0.0.1:"][..], "no ports to scan"),
            (&["[::1]"][..], "no ports to scan"),
            (&["127.0.0.1:22", "80"][..], "give the ports once"),
            (&["[::1]x"][..], "expected ':'"),
        ] {
            let e = split(words).unwrap_err();
            assert!(e.contains(want), "{words:?}: {e}");
        }
    }
}
