//! The URLs of `sockit http` beyond the request: `-O`'s file name, where a redirect's
//! `Location` leads, and the URL as curl shows it (`%{url_effective}`).

use std::path::PathBuf;

use sockit::Error;
use sockit::http::Url;

use super::plan::bad;

/// `-O`: the file name of the URL's last path segment.
pub(super) fn remote_name(url: &Url) -> anyhow::Result<PathBuf> {
    let path = url.target.split('?').next().unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() {
        return Err(bad(format!(
            "-O: the URL {url} has no file name (it ends with '/'): use -o FILE"
        )));
    }
    if name == "." || name == ".." {
        return Err(bad(format!(
            "-O: the URL {url} has no file name ({name:?} is not one): use -o FILE"
        )));
    }
    Ok(PathBuf::from(name))
}

/// The URL a redirect's `Location` leads to. A `Location` sockit cannot follow (another
/// scheme, bytes that are no URL) is the server's fault: a protocol error (exit 7), as
/// every bad byte from a peer.
pub fn redirect_target(url: &Url, location: &str, path_as_is: bool) -> anyhow::Result<Url> {
    let joined = if path_as_is {
        url.join_path_as_is(location)
    } else {
        url.join(location)
    };
    joined.map_err(|e| {
        anyhow::Error::new(Error::protocol(
            "http",
            format!("cannot follow the redirect: {}", e.message()),
        ))
        .context(format!("bad redirect Location {location:?}"))
    })
}

/// How curl shows a URL (`%{url_effective}`): the scheme in lower case and the authority
/// as typed (host case, port, user name), then the request target sockit sends (dot
/// segments removed, `/` for an empty path), then the fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    origin: String,
    fragment: Option<String>,
}

impl Shown {
    /// The shown form of `text`, a URL or, after a redirect, a reference resolved against
    /// `base`.
    pub fn of(text: &str, base: Option<&Shown>) -> Shown {
        let text = text.trim();
        let (before, fragment) = match text.split_once('#') {
            Some((b, f)) => (b, Some(f.to_string())),
            None => (text, None),
        };
        let authority = |rest: &str| -> String {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            rest[..end].to_string()
        };
        let origin = match (before.find("://"), base) {
            (Some(i), _) => format!(
                "{}://{}",
                before[..i].to_ascii_lowercase(),
                authority(&before[i + 3..])
            ),
            (None, Some(b)) => match before.strip_prefix("//") {
                Some(rest) => {
                    let scheme = b.origin.split("://").next().unwrap_or("http");
                    format!("{scheme}://{}", authority(rest))
                }
                None => b.origin.clone(),
            },
            (None, None) => format!("http://{}", authority(before)),
        };
        // a reference without a fragment keeps its base's (RFC 9110 §10.2.2)
        let fragment = fragment.or_else(|| base.and_then(|b| b.fragment.clone()));
        Shown { origin, fragment }
    }

    /// The text for `url` (its request target) shown this way.
    pub fn text(&self, url: &Url) -> String {
        match &self.fragment {
            Some(f) => format!("{}{}#{f}", self.origin, url.target),
            None => format!("{}{}", self.origin, url.target),
        }
    }
}

/// A URL text with at least `/` after its authority (`http://h` → `http://h/`).
pub(super) fn with_path(text: &str) -> String {
    let after = text.find("://").map_or(0, |i| i + 3);
    if text[after..].contains('/') {
        text.to_string()
    } else {
        format!("{text}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_as_curl_shows_them() {
        // Regression: %{url_effective} was sockit's normalised URL (lower-case host, no
        // default port, no fragment); curl 7.88 keeps the URL as typed, its path
        // normalised.
        let shown = |t: &str| Shown::of(t, None).text(&Url::parse(t).unwrap());
        for (typed, want) in [
            (
                "HTTP://LocalHost:80/a/../b/./c#frag",
                "http://LocalHost:80/b/c#frag",
            ),
            (
                "127.0.0.1:8000/x/%7e?q=%7E",
                "http://127.0.0.1:8000/x/%7e?q=%7E",
            ),
            ("http://u:p@h:8000", "http://u:p@h:8000/"),
            ("http://h:8000?x", "http://h:8000/?x"),
            ("http://[::1]:8000/x", "http://[::1]:8000/x"),
        ] {
            assert_eq!(shown(typed), want, "{typed}");
        }
        let base = Shown::of("http://Host:81/a#f", None);
        let next =
            |loc: &str, url: &str| Shown::of(loc, Some(&base)).text(&Url::parse(url).unwrap());
        assert_eq!(next("/b", "http://host:81/b"), "http://Host:81/b#f");
        assert_eq!(next("//Other/c#g", "http://other/c"), "http://Other/c#g");
        assert_eq!(next("HTTPS://X:443/d", "https://x/d"), "https://X:443/d#f");
        assert_eq!(with_path("http://h"), "http://h/");
        assert_eq!(with_path("http://h/d/"), "http://h/d/");
    }

    #[test]
    fn redirect_targets_that_cannot_be_followed_are_protocol_errors() {
        // Regression: `Location: ftp://…` and unparsable ones exited 2 (bad input): they
        // are bad bytes from the peer, exit 7.
        let base = Url::parse("http://h/a").unwrap();
        for loc in ["ftp://h/x", "http://[nope]/", "/a\tb"] {
            let e = redirect_target(&base, loc, false).unwrap_err();
            assert_eq!(
                crate::exit::sockit_error(&e).map(sockit::Error::kind),
                Some(sockit::ErrorKind::Protocol),
                "{loc}: {e:#}"
            );
        }
        assert_eq!(
            redirect_target(&base, "/x y", false).unwrap().target,
            "/x%20y"
        );
    }

    #[test]
    fn remote_names() {
        let u = |s| Url::parse(s).unwrap();
        assert_eq!(
            remote_name(&u("http://h/a/b.txt?x=1")).unwrap(),
            PathBuf::from("b.txt")
        );
        assert!(remote_name(&u("http://h/a/")).is_err());
        assert!(remote_name(&u("http://h")).is_err());
        let e = remote_name(&Url::parse_path_as_is("http://h/..").unwrap()).unwrap_err();
        assert!(e.to_string().contains("\"..\" is not one"), "{e}");
    }
}
