//! Where `sockit http` connects instead of the URL's host: the entries of `--resolve`
//! and `--connect-to` (curl's syntax).

use std::net::IpAddr;

use super::plan::bad;

/// A host of `--resolve` / `--connect-to`: IPv6 in brackets, else up to the next ':'.
fn split_host(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return Some((h, after.strip_prefix(':')?));
    }
    text.split_once(':')
}

fn port(text: &str, what: &str) -> anyhow::Result<u16> {
    text.parse::<u16>()
        .map_err(|_| bad(format!("{what}: {text:?} is not a port (0-65535)")))
}

/// `--resolve [+]HOST:PORT:ADDR[,ADDR]…`.
pub(super) fn parse_resolve(text: &str) -> anyhow::Result<(String, u16, Vec<IpAddr>)> {
    let form = || {
        bad(format!(
            "--resolve {text:?}: write HOST:PORT:ADDRESS[,ADDRESS]…"
        ))
    };
    let t = text.strip_prefix('+').unwrap_or(text);
    if t.starts_with('-') {
        return Err(bad(format!(
            "--resolve {text:?}: removing an entry (-HOST:PORT) means nothing to sockit"
        )));
    }
    let (host, rest) = split_host(t).ok_or_else(form)?;
    let (p, addrs) = rest.split_once(':').ok_or_else(form)?;
    let port = port(p, "--resolve")?;
    let addrs = addrs
        .split(',')
        .map(|a| {
            a.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| bad(format!("--resolve {text:?}: {a:?} is not an IP address")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if host.is_empty() {
        return Err(form());
    }
    Ok((host.to_ascii_lowercase(), port, addrs))
}

/// `--connect-to HOST1:PORT1:HOST2:PORT2` (empty parts: any / the same).
#[allow(clippy::type_complexity)]
pub(super) fn parse_connect_to(
    text: &str,
) -> anyhow::Result<(String, Option<u16>, String, Option<u16>)> {
    let form = || {
        bad(format!(
            "--connect-to {text:?}: write HOST1:PORT1:HOST2:PORT2"
        ))
    };
    let (h1, rest) = split_host(text).ok_or_else(form)?;
    let (p1, rest) = rest.split_once(':').ok_or_else(form)?;
    let (h2, p2) = split_host(rest).ok_or_else(form)?;
    let opt_port = |p: &str| -> anyhow::Result<Option<u16>> {
        if p.is_empty() {
            Ok(None)
        } else {
            port(p, "--connect-to").map(Some)
        }
    };
    Ok((
        h1.to_ascii_lowercase(),
        opt_port(p1)?,
        h2.to_string(),
        opt_port(p2)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_and_connect_to_entries() {
        assert_eq!(
            parse_resolve("Example.com:443:127.0.0.1,[::1]").unwrap(),
            (
                "example.com".into(),
                443,
                vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]
            )
        );
        assert_eq!(
            parse_resolve("*:80:127.0.0.1").unwrap().0,
            "*",
            "curl's wildcard"
        );
        assert!(parse_resolve("h:80").is_err());
        assert!(parse_resolve("h:x:127.0.0.1").is_err());
        assert!(parse_resolve("h:80:nope").is_err());
        assert_eq!(
            parse_connect_to("a:80:[::1]:8080").unwrap(),
            ("a".into(), Some(80), "::1".into(), Some(8080))
        );
        assert_eq!(
            parse_connect_to("::b:").unwrap(),
            ("".into(), None, "b".into(), None)
        );
        assert!(parse_connect_to("a:80").is_err());
    }
}
