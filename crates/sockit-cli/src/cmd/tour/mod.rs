//! `sockit tour`: every program of the slides, run live on loopback, in-process on the
//! library, one step after another, each explained in a sentence or two.
//!
//! Needs neither python3 nor `../shared`, and sends nothing beyond 127.0.0.1: the lookups
//! use `localhost` (IPv4) and numeric-only getaddrinfo, and the HTTP step talks to a tiny
//! responder the tour starts itself. Exits 0 only when every step behaved as the slides say.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use sockit::socket::SockAddr;
use sockit::{Family, SockType, Socket};

/// Arguments of `sockit tour`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Language of the explanations: `en` (English) or `ko` (Korean, the slides' language).
    #[arg(long, value_name = "LANG", default_value = "en", value_parser = ["en", "ko"])]
    lang: String,
}

/// A step's result: the lines it printed are already out; Err says what went wrong.
type Step = Result<(), String>;

/// One step of the tour: title and explanation in both languages, and the program.
struct Lesson {
    title: [&'static str; 2],
    explain: [&'static str; 2],
    run: fn(&mut Out) -> Step,
}

/// Where the tour writes: stdout, with each program line indented. The first write error
/// is kept and ends the tour (a full disk is reported, a closed pipe ends quietly).
struct Out {
    stdout: std::io::Stdout,
    /// 0 English, 1 Korean.
    lang: usize,
    error: Option<std::io::Error>,
}

impl Out {
    fn line(&mut self, text: impl AsRef<str>) {
        self.raw(format_args!("   {}", text.as_ref()));
    }

    /// A line in the tour's language: `[english, korean]`.
    fn say(&mut self, text: [&str; 2]) {
        self.line(text[self.lang]);
    }

    fn raw(&mut self, args: std::fmt::Arguments<'_>) {
        if self.error.is_none() {
            if let Err(e) = self
                .stdout
                .write_fmt(args)
                .and_then(|()| self.stdout.write_all(b"\n"))
            {
                self.error = Some(e);
            }
        }
    }

    /// The first write error, as the library's error (`write: [Errno 28] ...`).
    fn check(&mut self) -> anyhow::Result<()> {
        match self.error.take() {
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(e.into()),
            Some(e) => Err(sockit::Error::from_io("write", e).into()),
            None => Ok(()),
        }
    }
}

mod http;
mod lessons;

use self::lessons::LESSONS;

/// Runs `sockit tour`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let lang = usize::from(args.lang == "ko");
    let mut out = Out {
        stdout: std::io::stdout(),
        lang,
        error: None,
    };
    let total = LESSONS.len();
    let mut passed = 0;
    for (i, lesson) in LESSONS.iter().enumerate() {
        out.raw(format_args!(
            "\n== {}/{total}. {}",
            i + 1,
            lesson.title[lang]
        ));
        let width = if lang == 1 { 50 } else { 88 }; // Hangul takes two columns
        out.raw(format_args!("{}", wrap(lesson.explain[lang], width, "")));
        match (lesson.run)(&mut out) {
            Ok(()) => {
                passed += 1;
                out.line("ok");
            }
            Err(what) => out.line(format!("FAILED: {what}")),
        }
        if out.error.is_none() {
            if let Err(e) = out.stdout.flush() {
                out.error = Some(e);
            }
        }
        out.check()?;
    }
    let summary = if lang == 1 {
        format!("\n투어: {total}단계 중 {passed}단계 성공")
    } else {
        format!("\ntour: {passed} of {total} steps ok")
    };
    out.raw(format_args!("{summary}"));
    if out.error.is_none() {
        if let Err(e) = out.stdout.flush() {
            out.error = Some(e);
        }
    }
    out.check()?;
    Ok(if passed == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Wraps text at `width` columns (counting characters), each line prefixed.
fn wrap(text: &str, width: usize, prefix: &str) -> String {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(format!("{prefix}{cur}"));
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(format!("{prefix}{cur}"));
    }
    lines.join("\n")
}

/// What a call gave, in Python's words: `success`, or the error's text.
fn outcome<T>(r: &sockit::Result<T>) -> String {
    match r {
        Ok(_) => "success".to_string(),
        Err(e) => e.to_string(),
    }
}

fn fail(e: sockit::Error) -> String {
    e.to_string()
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// How long any one call of the tour may take: every step ends by itself.
const STEP_DEADLINE: Duration = Duration::from_secs(5);

/// A new IPv4 socket whose every call is bounded by [`STEP_DEADLINE`].
fn bounded(socktype: SockType) -> Result<Socket, String> {
    let mut s = Socket::new(Family::Inet, socktype, None).map_err(fail)?;
    s.set_timeout(Some(STEP_DEADLINE)).map_err(fail)?;
    Ok(s)
}

/// A bounded TCP listener on 127.0.0.1 (a free port), and its address.
fn tcp_listener() -> Result<(Socket, SockAddr), String> {
    let server = bounded(SockType::Stream)?;
    server.set_reuse_address(true).map_err(fail)?;
    server.bind(loopback()).map_err(fail)?;
    server.listen(1).map_err(fail)?;
    let addr = server.local_addr().map_err(fail)?;
    Ok((server, addr))
}

/// The Korean particle "to" after `text` read aloud: 으로 after a final consonant other
/// than ㄹ, 로 otherwise. An address ends in a digit: 0 (영), 3 (삼) and 6 (육) end in a
/// consonant, 1 (일), 7 (칠) and 8 (팔) in ㄹ, the others in a vowel.
fn ro(text: &str) -> &'static str {
    match text.chars().last() {
        Some('0' | '3' | '6') => "으로",
        _ => "로",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_particle_fits_the_last_digit() {
        // Regression: "127.0.0.1:40000로" (영 ends in a consonant: 으로).
        assert_eq!(ro("127.0.0.1:40000"), "으로");
        assert_eq!(ro("127.0.0.1:40003"), "으로");
        assert_eq!(ro("127.0.0.1:40006"), "으로");
        for d in ['1', '2', '4', '5', '7', '8', '9'] {
            assert_eq!(ro(&format!("127.0.0.1:4000{d}")), "로", "{d}");
        }
    }

    #[test]
    fn wrap_keeps_words() {
        assert_eq!(wrap("aa bb cc", 5, "> "), "> aa bb\n> cc");
    }
}
