//! The services database: `/etc/services` (or an explicit file), else an embedded table.
//!
//! Contract: a file is read and parsed once (the system one on first use, behind a
//! `OnceLock`); every lookup after that is a hash-map probe plus a scan of the few entries
//! that share the key, with no system call and no allocation. Answers follow glibc's
//! `nss_files`: names and protocols are case-sensitive, the first matching line of the file
//! wins, and a lookup without a protocol takes the first line with that port or name
//! whatever its protocol (`514` is `shell`, `514/udp` is `syslog`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The system services file read by [`Services::system`].
pub const SYSTEM_SERVICES: &str = "/etc/services";

/// The embedded table, in services(5) format, with its source written at the top.
const EMBEDDED_SERVICES: &str = include_str!("data/services");

/// Which data answered a lookup: a file, or the embedded table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The file at this path (`/etc/services`, `/etc/protocols`, or one given explicitly).
    File(PathBuf),
    /// The table compiled into sockit (IANA registrations, named as netbase names them).
    Embedded,
}

impl fmt::Display for Source {
    /// The path, or `embedded`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("embedded"),
        }
    }
}

/// One line of the services database: Python's `getservbyname`/`getservbyport` answer
/// with the rest of the C `struct servent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servent {
    /// The official service name (`http`).
    pub name: String,
    /// Other names of the service (`www`).
    pub aliases: Vec<String>,
    /// The port number.
    pub port: u16,
    /// The protocol name as the file writes it (`tcp`, `udp`, `sctp`, `ddp`).
    pub proto: String,
}

/// A parsed services database (services(5)) with O(1) lookups by port and by name.
#[derive(Debug, Clone)]
pub struct Services {
    source: Source,
    entries: Vec<Servent>,
    /// Port -> indexes into `entries`, in file order.
    by_port: HashMap<u16, Vec<u32>>,
    /// Name or alias -> indexes into `entries`, in file order.
    by_name: HashMap<String, Vec<u32>>,
}

impl Services {
    /// The system database, parsed once per process: `/etc/services`, or the embedded table
    /// when that file is missing or unreadable.
    pub fn system() -> &'static Services {
        static SYSTEM: OnceLock<Services> = OnceLock::new();
        SYSTEM.get_or_init(|| Services::load(Path::new(SYSTEM_SERVICES)))
    }

    /// The database in `path`, or the embedded table when the file cannot be read.
    /// [`Services::source`] says which one it is.
    pub fn load(path: &Path) -> Services {
        Services::open(path).unwrap_or_else(|_| Services::embedded())
    }

    /// Reads and parses the file at `path` (no fallback).
    ///
    /// # Errors
    /// As [`read_database`](super::read_database): the errno when the file cannot be read,
    /// `InvalidInput` when it is larger than [`MAX_DATABASE_FILE`](super::MAX_DATABASE_FILE).
    pub fn open(path: &Path) -> Result<Services> {
        let text = super::read_database(path, "services file")?;
        Ok(Services::parse(&text, Source::File(path.to_path_buf())))
    }

    /// The embedded table (IANA registrations, named as Debian's netbase names them).
    pub fn embedded() -> Services {
        Services::parse(EMBEDDED_SERVICES, Source::Embedded)
    }

    /// Parses services(5) text: `name port/proto [aliases…] [# comment]`, one per line.
    ///
    /// As glibc: the port is read like `strtoul(…, 0)` (decimal, `0x` hex, leading-zero
    /// octal); a line without `port/proto` is skipped. Unlike glibc, a port above 65535 is
    /// skipped rather than truncated to 16 bits.
    pub fn parse(text: &str, source: Source) -> Services {
        let mut db = Services {
            source,
            entries: Vec::new(),
            by_port: HashMap::new(),
            by_name: HashMap::new(),
        };
        for (name, port, proto, aliases) in text.lines().filter_map(parse_line) {
            let entry = Servent {
                name: name.to_string(),
                aliases: aliases.map(str::to_string).collect(),
                port,
                proto: proto.to_string(),
            };
            let idx = db.entries.len() as u32;
            db.by_port.entry(port).or_default().push(idx);
            for n in std::iter::once(&entry.name).chain(&entry.aliases) {
                let v = db.by_name.entry(n.clone()).or_default();
                if v.last() != Some(&idx) {
                    v.push(idx);
                }
            }
            db.entries.push(entry);
        }
        db
    }

    /// The embedded table's text (services(5) format, its source written at the top).
    pub fn embedded_text() -> &'static str {
        EMBEDDED_SERVICES
    }

    /// Looks a port up in services(5) `text` without building a database: the answer
    /// [`getservbyport`](Self::getservbyport) gives on `Services::parse(text)`, found by
    /// reading lines only until the first match (what a one-shot command needs).
    ///
    /// # Errors
    /// As [`getservbyport`](Self::getservbyport).
    pub fn scan_port(text: &str, port: u16, proto: Option<&str>) -> Result<Servent> {
        const OP: &str = "getservbyport";
        super::check_no_nul(OP, proto.unwrap_or(""))?;
        text.lines()
            .filter_map(parse_line)
            .find(|&(_, p, pr, _)| p == port && proto.is_none_or(|want| want == pr))
            .map(owned)
            .ok_or_else(|| Error::new(crate::ErrorKind::Os, OP, None, "port/proto not found"))
    }

    /// Looks a name or alias up in services(5) `text` without building a database: the
    /// answer [`getservbyname`](Self::getservbyname) gives on `Services::parse(text)`.
    ///
    /// # Errors
    /// As [`getservbyname`](Self::getservbyname).
    pub fn scan_name(text: &str, name: &str, proto: Option<&str>) -> Result<Servent> {
        const OP: &str = "getservbyname";
        super::check_no_nul(OP, name)?;
        super::check_no_nul(OP, proto.unwrap_or(""))?;
        text.lines()
            .filter_map(parse_line)
            .find(|(n, _, pr, aliases)| {
                proto.is_none_or(|want| want == *pr)
                    && (*n == name || aliases.clone().any(|a| a == name))
            })
            .map(owned)
            .ok_or_else(|| Error::new(crate::ErrorKind::Os, OP, None, "service/proto not found"))
    }

    /// Which data this database holds.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[Servent] {
        &self.entries
    }

    /// The first entry for `port` (and `proto`, when given; case-sensitive).
    pub fn by_port(&self, port: u16, proto: Option<&str>) -> Option<&Servent> {
        self.first(self.by_port.get(&port)?, proto)
    }

    /// The first entry whose name or alias is `name` (and `proto`, when given).
    pub fn by_name(&self, name: &str, proto: Option<&str>) -> Option<&Servent> {
        self.first(self.by_name.get(name)?, proto)
    }

    /// [`by_port`](Self::by_port) as Python's `getservbyport` answers it.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `port/proto not found`;
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a NUL in `proto`.
    pub fn getservbyport(&self, port: u16, proto: Option<&str>) -> Result<&Servent> {
        const OP: &str = "getservbyport";
        super::check_no_nul(OP, proto.unwrap_or(""))?;
        self.by_port(port, proto)
            .ok_or_else(|| Error::new(crate::ErrorKind::Os, OP, None, "port/proto not found"))
    }

    /// [`by_name`](Self::by_name) as Python's `getservbyname` answers it.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `service/proto not found`;
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a NUL in either text.
    pub fn getservbyname(&self, name: &str, proto: Option<&str>) -> Result<&Servent> {
        const OP: &str = "getservbyname";
        super::check_no_nul(OP, name)?;
        super::check_no_nul(OP, proto.unwrap_or(""))?;
        self.by_name(name, proto)
            .ok_or_else(|| Error::new(crate::ErrorKind::Os, OP, None, "service/proto not found"))
    }

    fn first(&self, idxs: &[u32], proto: Option<&str>) -> Option<&Servent> {
        idxs.iter()
            .map(|&i| &self.entries[i as usize])
            .find(|e| proto.is_none_or(|p| e.proto == p))
    }
}

/// One services(5) line, borrowed: (name, port, proto, aliases); `None` for comments,
/// blank and malformed lines.
fn parse_line(line: &str) -> Option<(&str, u16, &str, std::str::SplitAsciiWhitespace<'_>)> {
    let line = line.split('#').next().unwrap_or("");
    let mut fields = line.split_ascii_whitespace();
    let name = fields.next()?;
    let (port, proto) = parse_port_proto(fields.next()?)?;
    Some((name, port, proto, fields))
}

fn owned(
    (name, port, proto, aliases): (&str, u16, &str, std::str::SplitAsciiWhitespace<'_>),
) -> Servent {
    Servent {
        name: name.to_string(),
        aliases: aliases.map(str::to_string).collect(),
        port,
        proto: proto.to_string(),
    }
}

/// `80/tcp` -> (80, "tcp"), the port read like C's `strtoul(s, &end, 0)`.
fn parse_port_proto(field: &str) -> Option<(u16, &str)> {
    let (num, proto) = field.split_once('/')?;
    if proto.is_empty() {
        return None;
    }
    let port = parse_c_ulong(num)?;
    Some((u16::try_from(port).ok()?, proto))
}

/// Whole-field `strtoul(s, &end, 0)`: decimal, `0x` hex or leading-zero octal.
pub(crate) fn parse_c_ulong(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
tcpmux\t1/tcp\t\t# TCP port service multiplexer
http\t\t80/tcp\t\twww\t# WorldWideWeb HTTP
shell\t\t514/tcp\t\tcmd\t# no passwords used
syslog\t\t514/udp
bad line
noport\t/tcp
  indented 0x10/udp  sixteen
";

    #[test]
    fn parse_and_lookups() {
        let db = Services::parse(TEXT, Source::Embedded);
        assert_eq!(db.entries().len(), 5);
        assert_eq!(db.by_port(80, Some("tcp")).unwrap().name, "http");
        assert_eq!(db.by_port(80, None).unwrap().aliases, vec!["www"]);
        assert!(db.by_port(80, Some("udp")).is_none());
        assert!(db.by_port(80, Some("TCP")).is_none());
        assert!(db.by_port(80, Some("")).is_none());
        assert_eq!(db.by_port(514, None).unwrap().name, "shell");
        assert_eq!(db.by_port(514, Some("udp")).unwrap().name, "syslog");
        assert_eq!(db.by_name("www", None).unwrap().port, 80);
        assert!(db.by_name("WWW", None).is_none());
        assert_eq!(db.by_name("cmd", Some("tcp")).unwrap().port, 514);
        assert_eq!(db.by_name("sixteen", Some("udp")).unwrap().port, 16);
    }

    #[test]
    fn scans_agree_with_the_database() {
        let text = std::fs::read_to_string(SYSTEM_SERVICES).unwrap_or_default();
        for text in [TEXT, EMBEDDED_SERVICES, text.as_str()] {
            let db = Services::parse(text, Source::Embedded);
            let mut ports: Vec<u16> = db.entries().iter().map(|e| e.port).collect();
            ports.extend([0, 3, 65535]);
            for port in ports {
                for proto in [None, Some("tcp"), Some("udp"), Some("ddp"), Some("")] {
                    assert_eq!(
                        Services::scan_port(text, port, proto).ok().as_ref(),
                        db.by_port(port, proto),
                        "{port}/{proto:?}"
                    );
                }
            }
            let mut names: Vec<&str> = db
                .entries()
                .iter()
                .flat_map(|e| std::iter::once(&e.name).chain(&e.aliases))
                .map(String::as_str)
                .collect();
            names.extend(["nosuch", "HTTP", ""]);
            for name in names {
                for proto in [None, Some("tcp"), Some("udp")] {
                    assert_eq!(
                        Services::scan_name(text, name, proto).ok().as_ref(),
                        db.by_name(name, proto),
                        "{name}/{proto:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn embedded_has_the_well_known_ports() {
        let db = Services::embedded();
        assert_eq!(db.source(), &Source::Embedded);
        for (port, proto, name) in [
            (80, "tcp", "http"),
            (53, "udp", "domain"),
            (443, "tcp", "https"),
            (22, "tcp", "ssh"),
            (25, "tcp", "smtp"),
            (143, "tcp", "imap2"),
        ] {
            assert_eq!(db.by_port(port, Some(proto)).unwrap().name, name);
        }
    }

    #[test]
    fn missing_file_falls_back_to_embedded() {
        let db = Services::load(Path::new("/nonexistent/services"));
        assert_eq!(db.source().to_string(), "embedded");
        assert_eq!(db.by_port(80, Some("tcp")).unwrap().name, "http");
    }
}
