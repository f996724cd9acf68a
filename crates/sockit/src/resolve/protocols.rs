//! The protocols database: `/etc/protocols` (or an explicit file), else an embedded table.
//!
//! Same contract as [`Services`](super::Services): parsed once, O(1) lookups, glibc's
//! answers (case-sensitive names and aliases, the first matching line wins).

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use super::services::Source;
use crate::error::{Error, Result};

/// The system protocols file read by [`Protocols::system`].
pub const SYSTEM_PROTOCOLS: &str = "/etc/protocols";

/// The embedded table, in protocols(5) format, with its source written at the top.
const EMBEDDED_PROTOCOLS: &str = include_str!("data/protocols");

/// One line of the protocols database (C `struct protoent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protoent {
    /// The official protocol name (`tcp`).
    pub name: String,
    /// Other names (`TCP`).
    pub aliases: Vec<String>,
    /// The IP protocol number (6; Linux lists `mptcp` as 262, beyond the 8-bit IP field).
    pub number: i32,
}

/// A parsed protocols database (protocols(5)) with O(1) lookups by name and by number.
#[derive(Debug, Clone)]
pub struct Protocols {
    source: Source,
    entries: Vec<Protoent>,
    by_number: HashMap<i32, u32>,
    by_name: HashMap<String, u32>,
}

impl Protocols {
    /// The system database, parsed once per process: `/etc/protocols`, or the embedded
    /// table when that file is missing or unreadable.
    pub fn system() -> &'static Protocols {
        static SYSTEM: OnceLock<Protocols> = OnceLock::new();
        SYSTEM.get_or_init(|| Protocols::load(Path::new(SYSTEM_PROTOCOLS)))
    }

    /// The database in `path`, or the embedded table when the file cannot be read.
    pub fn load(path: &Path) -> Protocols {
        Protocols::open(path).unwrap_or_else(|_| Protocols::embedded())
    }

    /// Reads and parses the file at `path` (no fallback).
    ///
    /// # Errors
    /// As [`read_database`](super::read_database): the errno when the file cannot be read,
    /// `InvalidInput` when it is larger than [`MAX_DATABASE_FILE`](super::MAX_DATABASE_FILE).
    pub fn open(path: &Path) -> Result<Protocols> {
        let text = super::read_database(path, "protocols file")?;
        Ok(Protocols::parse(&text, Source::File(path.to_path_buf())))
    }

    /// The embedded table (IANA protocol numbers, named as Debian's netbase names them).
    pub fn embedded() -> Protocols {
        Protocols::parse(EMBEDDED_PROTOCOLS, Source::Embedded)
    }

    /// Parses protocols(5) text: `name number [aliases…] [# comment]`, one per line.
    /// Lines whose number is not a decimal `i32` are skipped.
    pub fn parse(text: &str, source: Source) -> Protocols {
        let mut db = Protocols {
            source,
            entries: Vec::new(),
            by_number: HashMap::new(),
            by_name: HashMap::new(),
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_ascii_whitespace();
            let (Some(name), Some(number)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<i32>() else {
                continue;
            };
            let entry = Protoent {
                name: name.to_string(),
                aliases: fields.map(str::to_string).collect(),
                number,
            };
            let idx = db.entries.len() as u32;
            db.by_number.entry(number).or_insert(idx);
            for n in std::iter::once(&entry.name).chain(&entry.aliases) {
                db.by_name.entry(n.clone()).or_insert(idx);
            }
            db.entries.push(entry);
        }
        db
    }

    /// Which data this database holds.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[Protoent] {
        &self.entries
    }

    /// The first entry whose name or alias is `name` (case-sensitive).
    pub fn by_name(&self, name: &str) -> Option<&Protoent> {
        Some(&self.entries[*self.by_name.get(name)? as usize])
    }

    /// [`by_name`](Self::by_name) as Python's `getprotobyname` answers it.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `protocol not found`;
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a NUL in `name`.
    pub fn getprotobyname(&self, name: &str) -> Result<&Protoent> {
        const OP: &str = "getprotobyname";
        super::check_no_nul(OP, name)?;
        self.by_name(name)
            .ok_or_else(|| Error::new(crate::ErrorKind::Os, OP, None, "protocol not found"))
    }

    /// [`by_number`](Self::by_number) as `getprotobynumber(3)` answers it (Python has no
    /// such function).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `protocol not found`.
    pub fn getprotobynumber(&self, number: i32) -> Result<&Protoent> {
        self.by_number(number).ok_or_else(|| {
            Error::new(
                crate::ErrorKind::Os,
                "getprotobynumber",
                None,
                "protocol not found",
            )
        })
    }

    /// The first entry for protocol number `number`.
    pub fn by_number(&self, number: i32) -> Option<&Protoent> {
        Some(&self.entries[*self.by_number.get(&number)? as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_embedded_answers() {
        for db in [
            Protocols::embedded(),
            Protocols::load(Path::new("/nonexistent")),
        ] {
            assert_eq!(db.by_name("tcp").unwrap().number, 6);
            assert_eq!(db.by_name("ICMP").unwrap().number, 1);
            assert_eq!(db.by_name("IPv6-ICMP").unwrap().number, 58);
            assert!(db.by_name("Tcp").is_none());
            assert_eq!(db.by_number(17).unwrap().name, "udp");
            assert_eq!(db.by_number(0).unwrap().name, "ip");
        }
    }
}
