//! Differential test: the library against CPython's answers in
//! `../shared/oracle/vectors/` (services_byport, services_byname, protocols, hosts,
//! getaddrinfo, getnameinfo, inet).
//!
//! Every row ends in exactly one bucket, and the test prints the counts:
//! - **agree**: the same value, or the same error kind and code (the same message for
//!   Python's code-less `OSError`s such as `port/proto not found`);
//! - **inexpressible**: the call cannot be written with the library's Rust types (Python
//!   `TypeError`s, bytes or bools as hosts and ports, families and socket types sockit has no
//!   name for, integers wider than the argument);
//! - **deliberate**: a documented decision makes sockit answer differently; each reason is in
//!   [`DELIBERATE`] and counted separately;
//! - **skipped**: rows that cannot be replayed here (counted per reason): the machine's data
//!   files differ from the recording's checksums (`meta.json`), or the row made the C
//!   library ask DNS and its answer depends on a hosts file (so it cannot run under
//!   `no-dns` either), or `no-dns` is not available.
//!
//! Any other difference fails the test, with the row's id and both answers.
//!
//! No DNS query ever leaves this test: rows the recording shows asking DNS (`dns` lists),
//! and rows with non-ASCII host names (where IDNA implementations may differ), run in a child
//! process under `../shared/tools/no-dns` (a loopback-only namespace whose resolver reads
//! only a hosts file). The rest run here: the recording proves the C library answered them
//! without DNS, from the same `/etc/hosts` (checked by checksum).

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};
use sockit::addr::{inet_aton, inet_ntoa, inet_ntop, inet_pton};
use sockit::resolve::{self, AddrInfo};
use sockit::{Error, ErrorKind, Family, Port, SockType};

/// The documented differences from CPython: (key, reason).
const DELIBERATE: &[(&str, &str)] = &[
    (
        "port-range",
        "ports outside 0..=65535 (or port text that is not a plain number or name) are \
         refused before any system call; CPython wraps 70000 to 4464 or hands the text to \
         the C library",
    ),
    (
        "nul",
        "a NUL byte in a name is refused as InvalidInput; CPython raises TypeError (host \
         functions) or silently cuts the name at the NUL (getaddrinfo)",
    ),
    (
        "too-long",
        "host names over 253 bytes are refused as InvalidInput; CPython passes them to the C \
         library, which answers EAI_NONAME",
    ),
    (
        "idna",
        "non-ASCII names are encoded with UTS 46 transitional processing (idna crate); \
         CPython uses the IDNA 2003 codec",
    ),
];

/// The result of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Agree,
    Inexpressible,
    Deliberate(&'static str),
    Disagree(String),
    Skipped(&'static str),
}

/// What the library answered, in Python's shapes.
enum Got {
    Ret(Value),
    Err(Error),
}

/// The `../shared` folder beside the repository (CARGO_MANIFEST_DIR/../../../shared).
fn shared_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(
        dir.join("oracle/vectors").is_dir(),
        "the oracle needs ../shared beside the repository: {} is missing \
         (expected ../shared/oracle/vectors and ../shared/tools/no-dns)",
        dir.display()
    );
    dir
}

fn load(area: &str) -> Value {
    let path = shared_dir().join(format!("oracle/vectors/{area}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn sha256(path: &str) -> Option<String> {
    let out = Command::new("sha256sum").arg(path).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// Which recorded data files match this machine's.
struct DataFiles {
    services: bool,
    hosts: bool,
    protocols: bool,
}

fn data_files() -> DataFiles {
    let meta = load("meta");
    let files = &meta["data_files"];
    let same = |recorded: &Value, path: &str| {
        recorded["sha256"].as_str().is_some()
            && recorded["sha256"].as_str() == sha256(path).as_deref()
    };
    DataFiles {
        services: same(&files["/etc/services"], "/etc/services"),
        hosts: same(&files["/etc/hosts"], "/etc/hosts"),
        protocols: same(&files["protocols"], "/etc/protocols"),
    }
}

// ---------------------------------------------------------------------------------------
// Decoding Python values

/// An integer argument: plain JSON numbers, `{"$const":…,"value":n}`, `{"$int":"…"}`.
/// `None` for anything else (bools, floats, strings, bytes: not integers in Rust).
fn py_int(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::Object(o) => {
            if let Some(c) = o.get("value") {
                c.as_i64().map(i128::from)
            } else {
                o.get("$int")?.as_str()?.parse().ok()
            }
        }
        _ => None,
    }
}

fn py_bytes(v: &Value) -> Option<Vec<u8>> {
    let hex = v.get("$bytes").or_else(|| v.get("$bytearray"))?.as_str()?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A port argument as the library takes it: Python's int or str, through `Port::parse`
/// (the one place sockit turns text into a port). `None` when not expressible.
fn py_port(v: &Value) -> Option<Result<Option<Port>, Error>> {
    match v {
        Value::Null => Some(Ok(None)),
        Value::String(s) => Some(Port::parse(s).map(Some)),
        Value::Bool(_) => None,
        _ => {
            // A named constant (an IntEnum such as AF_INET6) as a port: CPython refuses it
            // ("Int or String expected"); Rust has no such value.
            if v.get("$const").is_some() {
                return None;
            }
            let n = py_int(v)?;
            Some(Port::parse(&n.to_string()).map(Some))
        }
    }
}

fn py_family(v: &Value) -> Option<Option<Family>> {
    match py_int(v)? {
        0 => Some(None),
        n => i32::try_from(n).ok().and_then(Family::from_raw).map(Some),
    }
}

fn py_socktype(v: &Value) -> Option<Option<SockType>> {
    match py_int(v)? {
        0 => Some(None),
        n => i32::try_from(n).ok().and_then(SockType::from_raw).map(Some),
    }
}

fn py_i32(v: &Value) -> Option<i32> {
    if v.is_boolean() {
        return None;
    }
    i32::try_from(py_int(v)?).ok()
}

/// Python's exception as (kind, code); `None` for a TypeError (not expressible).
fn py_exc(exc: &Value) -> Option<(ErrorKind, Option<i32>)> {
    let code = exc.get("errno").and_then(Value::as_i64).map(|c| c as i32);
    let kind = match exc["type"].as_str()? {
        "gaierror" => ErrorKind::Gai,
        "herror" => ErrorKind::Host,
        "OSError" => ErrorKind::Os,
        "OverflowError" | "ValueError" | "UnicodeError" => ErrorKind::InvalidInput,
        "TimeoutError" => ErrorKind::Timeout,
        _ => return None,
    };
    Some((kind, code))
}

// ---------------------------------------------------------------------------------------
// Comparing

fn ip_eq(py: &Value, ip: IpAddr) -> bool {
    let Some(text) = py.as_str() else {
        return false;
    };
    let text = text.split('%').next().unwrap_or(text);
    text.parse::<IpAddr>().is_ok_and(|p| p == ip)
}

fn addrinfo_eq(py: &Value, r: &AddrInfo) -> bool {
    let f = py_int(&py[0]) == Some(r.family.as_raw() as i128);
    let t = py_int(&py[1]) == Some(r.socktype.map_or(0, SockType::as_raw) as i128);
    let p = py_int(&py[2]) == Some(r.protocol as i128);
    let c = py[3].as_str() == Some(r.canonname.as_str());
    let sa = &py[4];
    let a = ip_eq(&sa[0], r.address.ip())
        && py_int(&sa[1]) == Some(r.address.port() as i128)
        && match r.address {
            SocketAddr::V4(_) => sa.as_array().is_some_and(|s| s.len() == 2),
            SocketAddr::V6(v6) => {
                py_int(&sa[2]) == Some(v6.flowinfo() as i128)
                    && py_int(&sa[3]) == Some(v6.scope_id() as i128)
            }
        };
    f && t && p && c && a
}

fn hostent_value(h: &resolve::HostEnt) -> Value {
    json!([
        h.name,
        h.aliases,
        h.addresses
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
    ])
}

fn hostent_eq(py: &Value, got: &Value) -> bool {
    py[0] == got[0]
        && py[1] == got[1]
        && py[2].as_array().map(Vec::len) == got[2].as_array().map(Vec::len)
        && py[2]
            .as_array()
            .into_iter()
            .flatten()
            .zip(got[2].as_array().into_iter().flatten())
            .all(|(p, g)| {
                g.as_str()
                    .and_then(|g| g.parse().ok())
                    .is_some_and(|ip| ip_eq(p, ip))
            })
}

/// Compares the library's answer with the recorded one.
fn compare(case: &Value, got: &Got, eq: impl Fn(&Value, &Value) -> bool) -> Outcome {
    match (case.get("ret"), case.get("exc"), got) {
        (Some(ret), _, Got::Ret(v)) => {
            if eq(ret, v) {
                Outcome::Agree
            } else {
                Outcome::Disagree(format!("CPython {ret}, sockit {v}"))
            }
        }
        (_, Some(exc), Got::Err(e)) => match py_exc(exc) {
            Some((kind, code)) if kind == e.kind() => {
                let same = match kind {
                    ErrorKind::InvalidInput => true,
                    ErrorKind::Os if code.is_none() => {
                        e.code().is_none() && exc["str"].as_str() == Some(e.message())
                    }
                    _ => code == e.code(),
                };
                if same {
                    Outcome::Agree
                } else {
                    Outcome::Disagree(format!("CPython {exc}, sockit {e:?}"))
                }
            }
            _ => Outcome::Disagree(format!("CPython {exc}, sockit {e:?}")),
        },
        (Some(ret), _, Got::Err(e)) => Outcome::Disagree(format!("CPython {ret}, sockit {e:?}")),
        (_, Some(exc), Got::Ret(v)) => Outcome::Disagree(format!("CPython {exc}, sockit {v}")),
        _ => Outcome::Disagree("row has neither ret nor exc".into()),
    }
}

fn got<T>(r: sockit::Result<T>, f: impl FnOnce(T) -> Value) -> Got {
    match r {
        Ok(v) => Got::Ret(f(v)),
        Err(e) => Got::Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// Running one row

/// A string host argument (`None` for None); `Err(())` when not expressible.
fn py_host(v: &Value) -> Result<Option<&str>, ()> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(()),
    }
}

fn is_typeerror(case: &Value) -> bool {
    case["exc"]["type"].as_str() == Some("TypeError")
}

fn run_case(case: &Value) -> Outcome {
    if is_typeerror(case) && !has_nul(case) {
        return Outcome::Inexpressible;
    }
    if case.get("kwargs").is_some() {
        return run_kwargs(case);
    }
    let args = case["args"].as_array().cloned().unwrap_or_default();
    let f = case["fn"].as_str().unwrap_or("");
    let s = |i: usize| args.get(i).and_then(Value::as_str);
    let outcome = match (f, args.len()) {
        ("getservbyname", 1 | 2) => {
            let (Some(name), proto) = (s(0), args.get(1)) else {
                return Outcome::Inexpressible;
            };
            let proto = match proto {
                None => None,
                Some(Value::String(p)) => Some(p.as_str()),
                Some(_) => return Outcome::Inexpressible,
            };
            let g = got(resolve::getservbyname(name, proto), |p| json!(p));
            compare(case, &g, |a, b| a == b)
        }
        ("getservbyport", 1 | 2) => {
            if args[0].is_boolean() {
                return Outcome::Inexpressible;
            }
            let Some(n) = py_int(&args[0]) else {
                return Outcome::Inexpressible;
            };
            let proto = match args.get(1) {
                None => None,
                Some(Value::String(p)) => Some(p.as_str()),
                Some(_) => return Outcome::Inexpressible,
            };
            let g = match u16::try_from(n) {
                Ok(port) => got(resolve::getservbyport(port, proto), |n| json!(n)),
                Err(_) => Got::Err(Port::parse(&n.to_string()).expect_err("out of range")),
            };
            compare(case, &g, |a, b| a == b)
        }
        ("getprotobyname", 1) => {
            let Some(name) = s(0) else {
                return Outcome::Inexpressible;
            };
            let g = got(resolve::getprotobyname(name), |n| json!(n));
            compare(case, &g, |a, b| a == b)
        }
        ("gethostbyname", 1) => {
            let Some(name) = s(0) else {
                return Outcome::Inexpressible;
            };
            let g = got(resolve::gethostbyname(name), |a| json!(a.to_string()));
            compare(case, &g, |a, b| a == b)
        }
        ("gethostbyname_ex", 1) | ("gethostbyaddr", 1) => {
            let Some(name) = s(0) else {
                return Outcome::Inexpressible;
            };
            let r = if f == "gethostbyaddr" {
                resolve::gethostbyaddr(name)
            } else {
                resolve::gethostbyname_ex(name)
            };
            let g = got(r, |h| hostent_value(&h));
            compare(case, &g, hostent_eq)
        }
        ("getaddrinfo", 2..=6) => {
            let Ok(host) = py_host(&args[0]) else {
                return Outcome::Inexpressible;
            };
            let Some(port) = py_port(&args[1]) else {
                return Outcome::Inexpressible;
            };
            let int_arg = |i: usize| args.get(i).map_or(Some(0), py_i32);
            let (Some(family), Some(socktype), Some(proto), Some(flags)) = (
                args.get(2).map_or(Some(None), py_family),
                args.get(3).map_or(Some(None), py_socktype),
                int_arg(4),
                int_arg(5),
            ) else {
                return Outcome::Inexpressible;
            };
            run_getaddrinfo(case, host, port, family, socktype, proto, flags)
        }
        ("getnameinfo", 2) => run_getnameinfo(case, &args[0], &args[1]),
        ("inet_aton", 1) => {
            let Some(t) = s(0) else {
                return Outcome::Inexpressible;
            };
            let g = got(inet_aton(t), |b| json!({"$bytes": hex(&b)}));
            compare(case, &g, |a, b| a == b)
        }
        ("inet_ntoa", 1) => {
            let Some(b) = py_bytes(&args[0]) else {
                return Outcome::Inexpressible;
            };
            let g = got(inet_ntoa(&b), |t| json!(t));
            compare(case, &g, |a, b| a == b)
        }
        ("inet_pton", 2) => {
            let (Some(Some(fam)), Some(t)) = (py_family(&args[0]), s(1)) else {
                return Outcome::Inexpressible;
            };
            let g = got(inet_pton(fam, t), |b| json!({"$bytes": hex(&b)}));
            compare(case, &g, |a, b| a == b)
        }
        ("inet_ntop", 2) => {
            let (Some(Some(fam)), Some(b)) = (py_family(&args[0]), py_bytes(&args[1])) else {
                return Outcome::Inexpressible;
            };
            let g = got(inet_ntop(fam, &b), |t| json!(t));
            compare(case, &g, |a, b| a == b)
        }
        _ => Outcome::Inexpressible,
    };
    deliberate(case, outcome)
}

fn run_kwargs(case: &Value) -> Outcome {
    // getaddrinfo(host=…, port=…, family=…, type=…, proto=…, flags=…)
    let kw = &case["kwargs"];
    if case["fn"] != "getaddrinfo" || is_typeerror(case) {
        return Outcome::Inexpressible;
    }
    let Ok(host) = py_host(&kw["host"]) else {
        return Outcome::Inexpressible;
    };
    let Some(port) = py_port(&kw["port"]) else {
        return Outcome::Inexpressible;
    };
    let int_kw = |k: &str| kw.get(k).map_or(Some(0), py_i32);
    let (Some(family), Some(socktype), Some(proto), Some(flags)) = (
        kw.get("family").map_or(Some(None), py_family),
        kw.get("type").map_or(Some(None), py_socktype),
        int_kw("proto"),
        int_kw("flags"),
    ) else {
        return Outcome::Inexpressible;
    };
    let o = run_getaddrinfo(case, host, port, family, socktype, proto, flags);
    deliberate(case, o)
}

fn run_getaddrinfo(
    case: &Value,
    host: Option<&str>,
    port: Result<Option<Port>, Error>,
    family: Option<Family>,
    socktype: Option<SockType>,
    proto: i32,
    flags: i32,
) -> Outcome {
    let g = match port {
        Err(e) => Got::Err(e),
        Ok(port) => match resolve::getaddrinfo(host, port.as_ref(), family, socktype, proto, flags)
        {
            Ok(recs) => {
                let ret = case.get("ret").cloned().unwrap_or(Value::Null);
                let same = ret.as_array().is_some_and(|py| {
                    py.len() == recs.len() && py.iter().zip(&recs).all(|(p, r)| addrinfo_eq(p, r))
                });
                if same {
                    return Outcome::Agree;
                }
                Got::Ret(Value::String(format!("{recs:?}")))
            }
            Err(e) => Got::Err(e),
        },
    };
    compare(case, &g, |_, _| false)
}

/// Python's getnameinfo(sockaddr, flags): the tuple's host is made an address with one
/// numeric getaddrinfo (as CPython does), then the library's typed getnameinfo is asked.
fn run_getnameinfo(case: &Value, sa: &Value, flags: &Value) -> Outcome {
    let Some(t) = sa.as_array() else {
        return Outcome::Inexpressible;
    };
    let (Some(host), Some(port)) = (
        t.first().and_then(Value::as_str),
        t.get(1).and_then(py_port),
    ) else {
        return Outcome::Inexpressible;
    };
    let Some(flags) = py_i32(flags) else {
        return Outcome::Inexpressible;
    };
    if t.len() > 4 || t.len() < 2 {
        return Outcome::Inexpressible;
    }
    let flowinfo = t.get(2).map_or(Some(0), py_int);
    let scope_id = t.get(3).map_or(Some(0), py_int);
    let (Some(flowinfo), Some(scope_id)) = (flowinfo, scope_id) else {
        return Outcome::Inexpressible;
    };
    let g = (|| -> sockit::Result<(String, String)> {
        let port = port?;
        let recs = resolve::getaddrinfo(
            Some(host),
            port.as_ref(),
            None,
            Some(SockType::Dgram),
            0,
            resolve::AI_NUMERICHOST,
        )?;
        let [rec] = recs.as_slice() else {
            return Err(Error::new(
                ErrorKind::Os,
                "getnameinfo",
                None,
                "sockaddr resolved to multiple addresses",
            ));
        };
        let addr = match rec.address {
            SocketAddr::V4(a) => {
                if t.len() != 2 {
                    return Err(Error::new(
                        ErrorKind::Os,
                        "getnameinfo",
                        None,
                        "IPv4 sockaddr must be 2 tuple",
                    ));
                }
                SocketAddr::V4(a)
            }
            SocketAddr::V6(a) => {
                // Wider than u32: Python's OverflowError; the library checks the rest.
                let (Ok(flow), Ok(scope)) = (u32::try_from(flowinfo), u32::try_from(scope_id))
                else {
                    return Err(Error::invalid_input(
                        "getnameinfo",
                        "flowinfo must be 0-1048575.",
                    ));
                };
                SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), flow, scope))
            }
        };
        resolve::getnameinfo(&addr, flags)
    })();
    let g = got(g, |(h, s)| json!([h, s]));
    compare(case, &g, |a, b| a == b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn has_nul(case: &Value) -> bool {
    case["args"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a.as_str().is_some_and(|s| s.contains('\0')))
}

/// Turns a disagreement into a deliberate difference when one of [`DELIBERATE`] explains it.
fn deliberate(case: &Value, outcome: Outcome) -> Outcome {
    let Outcome::Disagree(detail) = outcome else {
        return outcome;
    };
    let outcome = classify(case, &detail);
    // SOCKIT_ORACLE_TRACE=1: show why each deliberate row differs.
    if std::env::var_os("SOCKIT_ORACLE_TRACE").is_some() {
        if let Outcome::Deliberate(k) = &outcome {
            eprintln!("deliberate {k} {}: {} -- {detail}", case["id"], case["py"]);
        }
    }
    outcome
}

fn classify(case: &Value, detail: &str) -> Outcome {
    let args: Vec<Value> = match case.get("kwargs") {
        Some(kw) => ["host", "port"].iter().map(|k| kw[*k].clone()).collect(),
        None => case["args"].as_array().cloned().unwrap_or_default(),
    };
    let f = case["fn"].as_str().unwrap_or("");
    let host = match f {
        "getnameinfo" => args.first().and_then(|t| t[0].as_str()),
        _ => args.first().and_then(Value::as_str),
    };
    if has_nul(case) {
        return Outcome::Deliberate("nul");
    }
    if let Some(h) = host {
        if !h.is_ascii() {
            return Outcome::Deliberate("idna");
        }
        if h.trim_end_matches('.').len() > resolve::MAX_HOST_LEN {
            return Outcome::Deliberate("too-long");
        }
    }
    let port_arg = match f {
        "getaddrinfo" => args.get(1).cloned(),
        "getnameinfo" => args.first().map(|t| t[1].clone()),
        _ => None,
    };
    if let Some(p) = port_arg {
        if py_port(&p).is_some_and(|r| r.is_err()) {
            return Outcome::Deliberate("port-range");
        }
    }
    Outcome::Disagree(detail.to_string())
}

// ---------------------------------------------------------------------------------------
// Routing: here, under no-dns, or skipped

/// Names and addresses a hosts file answers, here or inside no-dns (which adds
/// `::1 localhost ip6-localhost ip6-loopback` and `127.0.1.1 <hostname>`).
struct HostsNames {
    names: HashSet<String>,
    addrs: HashSet<IpAddr>,
}

fn hosts_names() -> HostsNames {
    let mut names: HashSet<String> = ["localhost", "ip6-localhost", "ip6-loopback"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut addrs: HashSet<IpAddr> = ["127.0.0.1", "::1", "127.0.1.1"]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    if let Ok(h) = resolve::gethostname() {
        names.insert(h.to_ascii_lowercase());
    }
    for line in std::fs::read_to_string("/etc/hosts")
        .unwrap_or_default()
        .lines()
    {
        let mut w = line.split('#').next().unwrap_or("").split_whitespace();
        if let Some(a) = w.next().and_then(|a| a.parse().ok()) {
            addrs.insert(a);
        }
        names.extend(w.map(str::to_ascii_lowercase));
    }
    HostsNames { names, addrs }
}

impl HostsNames {
    fn name(&self, n: &str) -> bool {
        let n = resolve::encode_host("oracle", n).unwrap_or_else(|_| n.to_string());
        self.names
            .contains(n.trim_end_matches('.').to_ascii_lowercase().as_str())
    }

    /// True when a hosts file (this machine's or no-dns's) can change the row's answer.
    fn touches(&self, case: &Value) -> bool {
        if case["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "etc_hosts"))
        {
            return true;
        }
        let f = case["fn"].as_str().unwrap_or("");
        let args = case["args"].as_array().cloned().unwrap_or_default();
        let host = match f {
            "getnameinfo" => args.first().and_then(|t| t[0].as_str()),
            _ => case
                .get("kwargs")
                .and_then(|k| k["host"].as_str())
                .or_else(|| args.first().and_then(Value::as_str)),
        };
        let dns_names = case["dns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| q[0].as_str());
        if host.into_iter().chain(dns_names).any(|n| self.name(n)) {
            return true;
        }
        // Reverse lookups of an address a hosts file names.
        let reverse = f == "gethostbyaddr"
            || (f == "getnameinfo"
                && py_int(args.get(1).unwrap_or(&Value::Null))
                    .is_some_and(|fl| fl & resolve::NI_NUMERICHOST as i128 == 0));
        if reverse {
            if let Some(h) = host {
                let h = h.split('%').next().unwrap_or(h);
                let ip = h
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| inet_aton(h).ok().map(IpAddr::from));
                if ip.is_some_and(|ip| self.addrs.contains(&ip)) {
                    return true;
                }
            }
        }
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Here,
    NoDns,
    Skip(&'static str),
}

fn route(area: &str, case: &Value, files: &DataFiles, hosts: &HostsNames) -> Route {
    let host_area = matches!(area, "hosts" | "getaddrinfo" | "getnameinfo");
    if host_area && !(files.hosts && files.services) {
        return Route::Skip("data files differ from the recording (hosts or services)");
    }
    if area.starts_with("services") && !files.services {
        return Route::Skip("data files differ from the recording (services)");
    }
    if area == "protocols" && !files.protocols {
        return Route::Skip("data files differ from the recording (protocols)");
    }
    if !host_area {
        return Route::Here;
    }
    // CPython refused the arguments before any system call: if sockit did not, its call
    // could reach the resolver, so such rows always run inside no-dns.
    let refused = matches!(
        case["exc"]["type"].as_str(),
        Some("OverflowError" | "ValueError" | "UnicodeError" | "TypeError")
    );
    if refused {
        return Route::NoDns;
    }
    let touches = hosts.touches(case);
    let asked_dns = case.get("dns").is_some();
    let interfaces = case["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "interfaces"));
    let non_ascii = case["args"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(case.get("kwargs").map(|k| &k["host"]))
        .any(|a| a.as_str().is_some_and(|s| !s.is_ascii()));
    match (asked_dns, interfaces, non_ascii, touches) {
        (true, _, _, true) => {
            Route::Skip("asked DNS in the recording and a hosts file changes the answer")
        }
        (false, true, _, true) => {
            Route::Skip("depends on interfaces and a hosts file changes the answer")
        }
        (true, _, _, false) | (false, true, _, false) | (false, false, true, false) => Route::NoDns,
        // Non-ASCII names whose encoding is a name the hosts file answers (`ＬＯＣＡＬＨＯＳＴ`),
        // and rows the recording shows answered without DNS.
        (false, false, _, _) => Route::Here,
    }
}

const AREAS: &[&str] = &[
    "services_byport",
    "services_byname",
    "protocols",
    "hosts",
    "getaddrinfo",
    "getnameinfo",
    "inet",
];

#[derive(Default)]
struct Tally {
    agree: usize,
    inexpressible: usize,
    deliberate: BTreeMap<&'static str, usize>,
    skipped: BTreeMap<String, usize>,
    disagree: Vec<String>,
}

impl Tally {
    fn add(&mut self, id: &str, o: Outcome) {
        match o {
            Outcome::Agree => self.agree += 1,
            Outcome::Inexpressible => self.inexpressible += 1,
            Outcome::Deliberate(k) => *self.deliberate.entry(k).or_default() += 1,
            Outcome::Skipped(r) => *self.skipped.entry(r.to_string()).or_default() += 1,
            Outcome::Disagree(d) => self.disagree.push(format!("{id}: {d}")),
        }
    }
}

/// Runs the services_byport rows (`[port, proto, name-or-error-index]`).
fn byport_rows(v: &Value, tally: &mut Tally) {
    let errors = v["errors"].as_array().cloned().unwrap_or_default();
    for row in v["rows"].as_array().into_iter().flatten() {
        let (Some(port), proto) = (row[0].as_u64(), row[1].as_str()) else {
            tally.add("byport-row", Outcome::Inexpressible);
            continue;
        };
        let id = format!("byport {port}/{}", proto.unwrap_or("-"));
        let case = match &row[2] {
            Value::String(s) => json!({ "ret": s }),
            n => json!({ "exc": errors.get(n.as_u64().unwrap_or(0) as usize) }),
        };
        let g = match u16::try_from(port) {
            Ok(p) => got(resolve::getservbyport(p, proto), |n| json!(n)),
            Err(_) => Got::Err(Port::parse(&port.to_string()).expect_err("range")),
        };
        tally.add(&id, compare(&case, &g, |a, b| a == b));
    }
}

fn cases(v: &Value) -> impl Iterator<Item = &Value> {
    v["cases"].as_array().into_iter().flatten()
}

/// Runs the rows routed to no-dns in a child process; returns (id, outcome) pairs, or None
/// when no-dns cannot run here.
fn run_under_no_dns(ids: &[String]) -> Option<Vec<(String, Outcome)>> {
    if ids.is_empty() {
        return Some(Vec::new());
    }
    let list = std::env::temp_dir().join(format!("sockit-oracle-ids-{}", std::process::id()));
    std::fs::write(&list, ids.join("\n")).ok()?;
    let exe = std::env::current_exe().ok()?;
    let out = Command::new("bash")
        .arg(shared_dir().join("tools/no-dns"))
        .arg(exe)
        .args(["oracle_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("SOCKIT_ORACLE_IDS", &list)
        .output();
    let _ = std::fs::remove_file(&list);
    let out = out.ok()?;
    if !out.status.success() {
        eprintln!(
            "no-dns child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut res = Vec::new();
    for line in text.lines() {
        // The harness may print `test oracle_child ... ` before the first row on its line.
        let Some(at) = line.find("ORACLE\t") else {
            continue;
        };
        let mut p = line[at..].splitn(4, '\t');
        if p.next() != Some("ORACLE") {
            continue;
        }
        let (Some(id), Some(kind), detail) = (p.next(), p.next(), p.next().unwrap_or("")) else {
            continue;
        };
        let o = match kind {
            "agree" => Outcome::Agree,
            "inexpressible" => Outcome::Inexpressible,
            "disagree" => Outcome::Disagree(detail.to_string()),
            k => match DELIBERATE.iter().find(|(d, _)| *d == k) {
                Some((d, _)) => Outcome::Deliberate(d),
                None => Outcome::Disagree(format!("unknown outcome {k}")),
            },
        };
        res.push((id.to_string(), o));
    }
    (res.len() == ids.len()).then_some(res)
}

/// The child half: runs the listed rows (inside no-dns) and prints one line per row.
#[test]
fn oracle_child() {
    let Some(list) = std::env::var_os("SOCKIT_ORACLE_IDS") else {
        return; // only meaningful when started by `oracle` under no-dns
    };
    let ids: HashSet<String> = std::fs::read_to_string(list)
        .expect("id list")
        .lines()
        .map(str::to_string)
        .collect();
    for area in AREAS {
        let v = load(area);
        for case in cases(&v) {
            let id = case["id"].as_str().unwrap_or("");
            if !ids.contains(id) {
                continue;
            }
            let (kind, detail) = match run_case(case) {
                Outcome::Agree => ("agree", String::new()),
                Outcome::Inexpressible => ("inexpressible", String::new()),
                Outcome::Deliberate(k) => (k, String::new()),
                Outcome::Disagree(d) => ("disagree", d.replace(['\t', '\n'], " ")),
                Outcome::Skipped(_) => ("inexpressible", String::new()),
            };
            println!("ORACLE\t{id}\t{kind}\t{detail}");
        }
    }
}

#[test]
fn oracle() {
    let started = Instant::now();
    let files = data_files();
    let hosts = hosts_names();
    let mut tally = Tally::default();
    let mut to_no_dns = Vec::new();
    // SOCKIT_ORACLE_TRACE=1: name each row run here on stderr (to pair with strace output).
    let trace = std::env::var_os("SOCKIT_ORACLE_TRACE").is_some();
    for area in AREAS {
        let v = load(area);
        if *area == "services_byport" {
            if files.services {
                byport_rows(&v, &mut tally);
            } else {
                let n = v["rows"].as_array().map_or(0, Vec::len);
                *tally
                    .skipped
                    .entry("data files differ from the recording (services)".into())
                    .or_default() += n;
            }
        }
        for case in cases(&v) {
            let id = case["id"].as_str().unwrap_or("?");
            match route(area, case, &files, &hosts) {
                Route::Here => {
                    if trace {
                        eprintln!("oracle row {id}");
                    }
                    let o = run_case(case);
                    if trace && o == Outcome::Inexpressible {
                        eprintln!("inexpressible {id}: {}", case["py"]);
                    }
                    tally.add(id, o)
                }
                Route::NoDns => to_no_dns.push(id.to_string()),
                Route::Skip(r) => tally.add(id, Outcome::Skipped(r)),
            }
        }
    }
    let no_dns_rows = to_no_dns.len();
    match run_under_no_dns(&to_no_dns) {
        Some(res) => res.into_iter().for_each(|(id, o)| tally.add(&id, o)),
        None => {
            *tally
                .skipped
                .entry("needs no-dns, which cannot run here".into())
                .or_default() += no_dns_rows
        }
    }

    let deliberate: usize = tally.deliberate.values().sum();
    let skipped: usize = tally.skipped.values().sum();
    println!(
        "oracle: {} agree, {} inexpressible in Rust's types, {} deliberate differences \
         ({} skipped; {} rows ran under no-dns) in {:?}",
        tally.agree,
        tally.inexpressible,
        deliberate,
        skipped,
        no_dns_rows,
        started.elapsed()
    );
    for (k, n) in &tally.deliberate {
        let reason = DELIBERATE.iter().find(|(d, _)| d == k).map_or("", |d| d.1);
        println!("  deliberate {k}: {n} rows: {reason}");
    }
    for (r, n) in &tally.skipped {
        println!("  skipped: {n} rows: {r}");
    }
    for d in tally.disagree.iter().take(60) {
        println!("  DISAGREE {d}");
    }
    assert!(
        tally.disagree.is_empty(),
        "{} rows disagree with CPython (listed above)",
        tally.disagree.len()
    );
    assert!(tally.agree > 90_000, "too few rows agree: {}", tally.agree);
}
