//! curl's options that `sockit http` does not have. Each is parsed (a flag's value is
//! never taken for the URL or for another flag) and then refused with a message that names
//! the flag and what curl uses it for — never misread, never a bare "unexpected argument".

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::curl_flags::CURL_FLAGS;

/// The curl options added as hidden arguments (their long names are their ids): those
/// whose name and id sockit does not use itself.
static ADDED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// curl's options whose meaning sockit already has: accepted, and nothing to do.
pub const SATISFIED: &[(&str, &str)] = &[
    (
        "no-buffer",
        "sockit writes the body to stdout as it arrives",
    ),
    ("globoff", "sockit does no URL globbing"),
    ("tlsv1", "sockit speaks TLS 1.2 and 1.3 only"),
    ("tlsv1.0", "sockit speaks TLS 1.2 and 1.3 only"),
    ("tlsv1.1", "sockit speaks TLS 1.2 and 1.3 only"),
    ("tlsv1.2", "sockit speaks TLS 1.2 and 1.3 only"),
    ("tcp-nodelay", "sockit always sets TCP_NODELAY"),
    ("no-npn", "rustls never offers NPN"),
    ("no-keepalive", "sockit sets no TCP keepalive"),
    ("disable", "sockit reads no .curlrc"),
    ("fail-early", "sockit makes one transfer per command"),
];

/// The curl options given on the command line that sockit does not have (a clap group,
/// flattened last into `sockit http`'s options so that sockit's own take precedence).
#[derive(Debug, Clone, Default)]
pub struct CurlOnly {
    /// The first one given (command-line order): its long name.
    pub first: Option<&'static str>,
}

impl CurlOnly {
    /// The refusal for the first curl-only option given, if any.
    pub fn refusal(&self) -> Option<String> {
        let long = self.first?;
        let (_, short, _, what) = CURL_FLAGS.iter().find(|f| f.0 == long)?;
        let name = match short {
            Some(c) => format!("--{long} (-{c})"),
            None => format!("--{long}"),
        };
        let why = match long {
            "socks4" | "socks4a" | "socks5" | "socks5-hostname" => {
                "give the proxy as -x socks4://, socks4a://, socks5:// or socks5h://HOST:PORT"
                    .to_string()
            }
            "preproxy" | "noproxy" => "sockit http takes one proxy, -x URL".to_string(),
            "http2" | "http2-prior-knowledge" | "http3" | "http3-only" => {
                "sockit http speaks HTTP/1.0 and HTTP/1.1 only".to_string()
            }
            "netrc" | "netrc-file" | "netrc-optional" => {
                "sockit reads no .netrc: give -u USER:PASSWORD (repeated runs are --repeat)"
                    .to_string()
            }
            "form" | "form-string" => {
                "no multipart forms: send a body you built with --data-binary @FILE and its \
                 Content-Type with -H"
                    .to_string()
            }
            "cookie-jar" | "junk-session-cookies" => {
                "no cookie engine: -b 'NAME=VALUE' sends a cookie".to_string()
            }
            "next" | "parallel" | "parallel-max" | "parallel-immediate" => {
                "sockit http makes one transfer per run (see --repeat)".to_string()
            }
            _ => format!("in curl: {}", lower_first(what.trim_end_matches('.'))),
        };
        Some(format!(
            "curl's {name} is not supported ({why}); see sockit http --help"
        ))
    }
}

/// A sentence's first letter in lower case, unless it begins an acronym (`SSL ciphers to
/// use` stays, `Use HTTP` becomes `use HTTP`).
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if !b.is_ascii_uppercase() => {
            format!("{}{}", a.to_ascii_lowercase(), &text[a.len_utf8()..])
        }
        _ => text.to_string(),
    }
}

/// Drops clap's "a similar argument exists" tip when it names one of curl's options that
/// sockit refuses (`--foo` suggested `--tftp-no-options`): a tip must lead somewhere.
pub fn tidy_parse_error(e: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue};
    let hidden = |s: &str| {
        let long = s.trim_start_matches('-');
        ADDED.get().is_some_and(|a| a.contains(&long))
    };
    let refused = match e.get(ContextKind::SuggestedArg) {
        Some(ContextValue::String(s)) => hidden(s),
        Some(ContextValue::Strings(v)) => v.iter().all(|s| hidden(s)),
        _ => false,
    };
    if refused {
        e.remove(ContextKind::SuggestedArg);
    }
}

impl clap::FromArgMatches for CurlOnly {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given: Vec<(usize, &'static str)> = Vec::new();
        for &long in ADDED.get().map(Vec::as_slice).unwrap_or_default() {
            if SATISFIED.iter().any(|(s, _)| *s == long) {
                continue;
            }
            if m.try_contains_id(long).unwrap_or(false)
                && m.value_source(long) == Some(ValueSource::CommandLine)
            {
                given.push((m.index_of(long).unwrap_or(usize::MAX), long));
            }
        }
        given.sort();
        Ok(CurlOnly {
            first: given.first().map(|g| g.1),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for CurlOnly {
    fn augment_args(cmd: Command) -> Command {
        // sockit's own options (and clap's help/version) keep their names and letters.
        let longs: Vec<String> = cmd
            .get_arguments()
            .flat_map(|a| {
                [
                    a.get_long().map(str::to_string),
                    Some(a.get_id().to_string()),
                ]
            })
            .flatten()
            .chain(["help".to_string(), "version".to_string()])
            .collect();
        let shorts: Vec<char> = cmd
            .get_arguments()
            .filter_map(Arg::get_short)
            .chain(['h', 'V'])
            .collect();
        let mut cmd = cmd;
        let mut added = Vec::new();
        for &(long, short, takes_value, _) in CURL_FLAGS {
            if longs.iter().any(|l| l == long) {
                continue;
            }
            added.push(long);
            let mut arg = Arg::new(long).long(long).hide(true).required(false);
            if let Some(c) = short.filter(|c| !shorts.contains(c)) {
                arg = arg.short(c);
            }
            arg = if takes_value {
                arg.action(ArgAction::Append)
                    .num_args(1)
                    .allow_hyphen_values(true)
                    .value_name("VALUE")
            } else {
                arg.action(ArgAction::SetTrue)
            };
            cmd = cmd.arg(arg);
        }
        let _ = ADDED.set(added);
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_s_words_keep_their_acronyms() {
        // Regression: --ciphers' refusal read "in curl: sSL ciphers to use".
        assert_eq!(lower_first("SSL ciphers to use"), "SSL ciphers to use");
        assert_eq!(lower_first("Use HTTP 2"), "use HTTP 2");
        assert_eq!(lower_first("X"), "X");
    }
}
