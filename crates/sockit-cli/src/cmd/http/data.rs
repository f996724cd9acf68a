//! The request body from curl's data flags (`-d`, `--data-binary`, `--data-raw`,
//! `--data-urlencode`, and sockit's `--data-file`), joined with `&` in command-line order
//! as curl joins them; and the files they name.

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use clap::{Arg, ArgAction, ArgMatches, Command};
use sockit::Error;

/// How one data argument becomes body bytes (curl's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// `-d`/`--data`/`--data-ascii`: text, or `@FILE` whose CR and LF bytes are dropped.
    Ascii,
    /// `--data-binary`: text, or `@FILE` sent byte for byte.
    Binary,
    /// `--data-raw`: text, `@` included.
    Raw,
    /// `--data-urlencode`: `content`, `=content`, `name=content`, `@FILE`, `name@FILE`,
    /// the content percent-encoded.
    Urlencode,
    /// sockit's `--data-file FILE`: the file's bytes (`-` is stdin), as `--data-binary @FILE`.
    File,
}

/// The data flags (a clap group that keeps their command-line order).
#[derive(Debug, Clone, Default)]
pub struct DataArgs {
    /// Each data argument, in command-line order.
    pub parts: Vec<(DataKind, String)>,
}

const FLAGS: &[(&str, Option<char>, DataKind, &str)] = &[
    (
        "data",
        Some('d'),
        DataKind::Ascii,
        "Request body (POST unless -X/-G/-T): TEXT, or @FILE (@- stdin) without its CR/LF \
         bytes; repeated -d are joined with &",
    ),
    ("data-ascii", None, DataKind::Ascii, "Same as -d"),
    (
        "data-binary",
        None,
        DataKind::Binary,
        "Request body: TEXT, or @FILE sent byte for byte",
    ),
    (
        "data-raw",
        None,
        DataKind::Raw,
        "Request body TEXT, with no @FILE meaning",
    ),
    (
        "data-urlencode",
        None,
        DataKind::Urlencode,
        "Percent-encoded body part: CONTENT, =CONTENT, NAME=CONTENT, @FILE or NAME@FILE",
    ),
    (
        "data-file",
        None,
        DataKind::File,
        "Request body from a file's bytes, or - for stdin (sockit's; = --data-binary @FILE)",
    ),
];

impl clap::FromArgMatches for DataArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut parts: Vec<(usize, DataKind, String)> = Vec::new();
        for &(id, _, kind, _) in FLAGS {
            if let (Some(values), Some(indices)) = (m.get_many::<String>(id), m.indices_of(id)) {
                for (v, i) in values.zip(indices) {
                    parts.push((i, kind, v.clone()));
                }
            }
        }
        parts.sort_by_key(|p| p.0);
        Ok(DataArgs {
            parts: parts.into_iter().map(|(_, k, v)| (k, v)).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for DataArgs {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = cmd;
        for &(id, short, kind, help) in FLAGS {
            let mut arg = Arg::new(id)
                .long(id)
                .help_heading("Data")
                .help(help)
                .action(ArgAction::Append)
                .num_args(1)
                .allow_hyphen_values(true)
                .value_name(if kind == DataKind::File {
                    "FILE"
                } else {
                    "DATA"
                });
            if let Some(c) = short {
                arg = arg.short(c);
            }
            if id == "data-ascii" {
                arg = arg.hide(true);
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl DataArgs {
    /// The body: each part's bytes, joined with `&` (curl's rule for repeated data flags).
    ///
    /// # Errors
    /// A file that cannot be read (Os, or InvalidInput past 1 GiB), stdin likewise.
    pub fn body(&self) -> anyhow::Result<Option<Vec<u8>>> {
        if self.parts.is_empty() {
            return Ok(None);
        }
        let mut body = Vec::new();
        for (i, (kind, value)) in self.parts.iter().enumerate() {
            if i > 0 {
                body.push(b'&');
            }
            body.extend(part(*kind, value)?);
        }
        Ok(Some(body))
    }
}

/// One data argument's bytes.
fn part(kind: DataKind, value: &str) -> anyhow::Result<Vec<u8>> {
    Ok(match kind {
        DataKind::Raw => value.as_bytes().to_vec(),
        DataKind::File => read_input(Path::new(value), "the request body")?,
        DataKind::Ascii | DataKind::Binary => match value.strip_prefix('@') {
            Some(path) => {
                let bytes = read_input(Path::new(path), "the request body")?;
                if kind == DataKind::Ascii {
                    // as curl 8.7 and later: carriage returns and newlines are dropped
                    bytes
                        .into_iter()
                        .filter(|b| *b != b'\r' && *b != b'\n')
                        .collect()
                } else {
                    bytes
                }
            }
            None => value.as_bytes().to_vec(),
        },
        DataKind::Urlencode => {
            // curl: `name@file` / `@file` read a file; `name=content` / `=content` /
            // `content` encode the content. The first '=' or '@' decides.
            match value.find(['=', '@']) {
                Some(i) if value.as_bytes()[i] == b'@' => {
                    let bytes = read_input(Path::new(&value[i + 1..]), "--data-urlencode")?;
                    name_eq(&value[..i], &urlencode(&bytes))
                }
                Some(i) => name_eq(&value[..i], &urlencode(&value.as_bytes()[i + 1..])),
                None => urlencode(value.as_bytes()).into_bytes(),
            }
        }
    })
}

/// `name=encoded`, or `encoded` alone when the name is empty.
fn name_eq(name: &str, encoded: &str) -> Vec<u8> {
    if name.is_empty() {
        encoded.as_bytes().to_vec()
    } else {
        format!("{name}={encoded}").into_bytes()
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved ones (`A-Z a-z 0-9 - . _ ~`),
/// a space as `+` (HTML forms' rule, RFC 1866), as curl's `--data-urlencode` does.
pub fn urlencode(bytes: &[u8]) -> String {
    escape(bytes, true)
}

/// Percent-encodes a URL path segment as curl 7.88 does for `-T`'s file name: a space
/// is `%20`, and the hex digits are lower case (`up%3fload.txt`).
pub fn path_segment(bytes: &[u8]) -> String {
    escape(bytes, false)
}

/// `space_plus`: a form's encoding (space `+`, upper-case hex, as `--data-urlencode`);
/// else a path segment's (space `%20`, lower-case hex, as `-T`'s file name).
fn escape(bytes: &[u8], space_plus: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b' ' && space_plus {
            out.push('+');
        } else if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if space_plus {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The largest file read into memory as a request body or upload: 1 GiB (`/dev/zero` is
/// refused, not read until memory runs out).
const MAX_BODY_FILE: u64 = 1 << 30;

/// The largest file read as a `-w` format or `-H @FILE` headers: 1 MiB.
const MAX_SMALL_FILE: u64 = 1 << 20;

/// A file's bytes (`-` is stdin), for a request body, an upload or a raw request: at
/// most 1 GiB.
pub fn read_input(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    read_at_most(path, what, MAX_BODY_FILE, "request file")
}

/// A small file's bytes (`-` is stdin) — a `-w @FILE` format, `-H @FILE` headers — at
/// most 1 MiB: `/dev/zero` is refused after 1 MiB, naming what the file was for.
pub fn read_small(path: &Path, what: &str, role: &str) -> anyhow::Result<Vec<u8>> {
    read_at_most(path, what, MAX_SMALL_FILE, role)
}

/// One capped reader for every file a flag names: at most `cap` bytes, else a refusal
/// (`larger than 1 MiB, not a format file`).
fn read_at_most(path: &Path, what: &str, cap: u64, role: &str) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .take(cap + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::from_io("stdin", e))
            .with_context(|| format!("cannot read {what}"))?;
        if buf.len() as u64 > cap {
            return Err(anyhow::Error::new(Error::invalid_input(
                "stdin",
                format!("larger than {}, not a {role}", size_text(cap)),
            )))
            .with_context(|| format!("cannot read {what}"));
        }
        return Ok(buf);
    }
    sockit::files::read_capped(path, cap, None, role).with_context(|| format!("cannot read {what}"))
}

/// `1 GiB`, `1 MiB`.
fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencode_like_curl() {
        assert_eq!(urlencode(b"a b&c=d/~._-+"), "a+b%26c%3Dd%2F~._-%2B");
        assert_eq!(urlencode("ä".as_bytes()), "%C3%A4");
    }

    #[test]
    fn path_segments_as_curl_writes_them() {
        // Regression: -T's file name had %3F where curl 7.88 writes %3f.
        assert_eq!(path_segment(b"up?load a.txt"), "up%3fload%20a.txt");
        assert_eq!(urlencode(b"?"), "%3F");
    }

    #[test]
    fn small_files_are_capped_at_1_mib() {
        // Regression: -w @/dev/zero and -H @/dev/zero read 1 GiB before refusing, and
        // -w's message said "not a request file".
        let e = read_small(Path::new("/dev/zero"), "the -w @FILE file", "format file").unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("larger than 1 MiB, not a format file"),
            "{text}"
        );
        assert!(text.starts_with("cannot read the -w @FILE file"), "{text}");
    }

    #[test]
    fn parts_join_and_encode() {
        let d = DataArgs {
            parts: vec![
                (DataKind::Ascii, "a=1".into()),
                (DataKind::Raw, "@x".into()),
                (DataKind::Urlencode, "n=a b".into()),
                (DataKind::Urlencode, "=c&d".into()),
                (DataKind::Urlencode, "plain text".into()),
            ],
        };
        assert_eq!(d.body().unwrap().unwrap(), b"a=1&@x&n=a+b&c%26d&plain+text");
        assert_eq!(DataArgs::default().body().unwrap(), None);
    }
}
