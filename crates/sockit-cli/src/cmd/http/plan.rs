//! What a `sockit http` command asks for, checked once before anything is sent: the URL,
//! method, body and headers curl's flags make, where to connect (`--resolve`,
//! `--connect-to`, `--unix-socket`), and the request bytes for each URL of a redirect
//! chain.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sockit::Error;
use sockit::http::{self, Request, Route, Url, Version};

use super::Opts;
use super::data::{path_segment, read_input, read_small};

/// The hard cap on redirects, even with `--max-redirs -1` (curl has none: it followed
/// 2,345 redirects in 3 s and then failed with exit 56).
pub const MAX_REDIRECTS_CAP: u32 = 1000;

/// A request body larger than this waits for `100 Continue` (curl 7.88's threshold).
const EXPECT_100_BODY: usize = 1 << 20;

/// The checked request of a command.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The URL as given, with `-G`'s query and `-T`'s file name added (curl's `%{url}`).
    pub url_text: String,
    /// The first URL (with `-G` data and `-T`'s file name applied).
    pub url: Url,
    /// How the first URL is shown (`%{url_effective}`).
    pub shown: Shown,
    /// `--path-as-is`: `.` and `..` segments stay, in redirects too.
    pub path_as_is: bool,
    /// The method of the first request.
    pub method: String,
    /// True when `-X` chose it (it then stays through redirects, as in curl).
    pub method_forced: bool,
    /// The request body (`-d` & co., `-T`).
    pub body: Option<Vec<u8>>,
    /// True when the body is an upload (`-T`).
    pub upload: bool,
    /// True when the body comes from a data flag (curl then sends
    /// `Content-Type: application/x-www-form-urlencoded`).
    pub form: bool,
    /// `--raw-request`: the exact bytes to send.
    pub raw: Option<Vec<u8>>,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// `-H` lines (with `-H @FILE` read).
    pub headers: Vec<String>,
    /// `-A`: `Some("")` removes the header.
    pub user_agent: Option<String>,
    /// `-e URL`, and whether `;auto` sets it on redirects.
    pub referer: Option<String>,
    /// `-e …;auto`.
    pub auto_referer: bool,
    /// `-u USER:PASSWORD`: the `Authorization` value.
    pub authorization: Option<String>,
    /// `-b`: the `Cookie` value.
    pub cookie: Option<String>,
    /// `--compressed`.
    pub compressed: bool,
    /// Keep connections open (`--reuse`): no `Connection: close`.
    pub keep_alive: bool,
    /// `-L` and its limit: `None` without `-L`; `Some(None)` for `--max-redirs -1`.
    pub follow: Option<Option<u32>>,
    /// `--resolve` entries: host (lower case), port, addresses.
    pub resolve: Vec<(String, u16, Vec<IpAddr>)>,
    /// `--connect-to` entries: from host ("" any), from port (None any), to host ("" the
    /// same), to port (None the same).
    pub connect_to: Vec<(String, Option<u16>, String, Option<u16>)>,
    /// `--unix-socket PATH`.
    pub unix_socket: Option<PathBuf>,
    /// `-x URL` (with `-U`'s credentials).
    pub proxy: Option<sockit::proxy::client::Proxy>,
    /// `-p`: `CONNECT` through an HTTP proxy for http:// URLs too.
    pub proxytunnel: bool,
    /// `-w`'s format (read from the file for `@FILE`).
    pub write_out: Option<Vec<u8>>,
    /// `-o`/`-O`: the file the body goes to (`None`: stdout, or nothing under `--json`).
    pub output: Option<PathBuf>,
    /// `-D`: where heads go (`-` is stdout).
    pub dump_header: Option<PathBuf>,
    /// `--rate`: the interval between two runs' starts.
    pub rate_interval: Option<Duration>,
}

fn bad(message: impl Into<String>) -> anyhow::Error {
    Error::invalid_input("http", message.into()).into()
}

impl Plan {
    /// Checks the options and builds the plan.
    ///
    /// # Errors
    /// InvalidInput (exit 2) for flags that contradict each other or values that do not
    /// parse; Os for files that cannot be read.
    pub fn new(args: &Opts, url_text: &str) -> anyhow::Result<Plan> {
        let mut url = if args.path_as_is {
            Url::parse_path_as_is(url_text)?
        } else {
            Url::parse(url_text)?
        };
        // curl's %{url}: the URL as given, with what -T and -G add to it
        let (mut typed, fragment) = match url_text.split_once('#') {
            Some((t, f)) => (t.to_string(), Some(f)),
            None => (url_text.to_string(), None),
        };
        if args.json || args.repeat.is_some() {
            let what = if args.json { "--json" } else { "--repeat" };
            for (flag, value) in [("-o", &args.output), ("-D", &args.dump_header)] {
                if value.as_deref() == Some(Path::new("-")) {
                    return Err(bad(format!(
                        "{what} writes its report on stdout: {flag} - would mix into it; give \
                         {flag} FILE"
                    )));
                }
            }
        }
        let upload = match &args.upload_file {
            Some(path) => Some(read_input(path, "the upload file (-T)")?),
            None => None,
        };
        let data = args.data.body()?;
        let methods = [
            args.head.then_some("-I"),
            upload.is_some().then_some("-T"),
            (data.is_some() && !args.get).then_some("-d"),
        ];
        let chosen: Vec<&str> = methods.iter().flatten().copied().collect();
        if chosen.len() > 1 {
            return Err(bad(format!(
                "{} choose different methods: give one (as curl: \"You can only select one \
                 HTTP request method\")",
                chosen.join(" and ")
            )));
        }
        if args.get && upload.is_some() {
            return Err(bad("-G and -T choose different methods: give one"));
        }
        if let Some(path) = &args.upload_file
            && url.target.split('?').next().unwrap_or("").ends_with('/')
            && path != Path::new("-")
        {
            // curl: a URL ending in '/' gets the uploaded file's name
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(name) = name {
                let segment = path_segment(name.as_bytes());
                let (path_part, query) = match url.target.split_once('?') {
                    Some((p, q)) => (p.to_string(), Some(q.to_string())),
                    None => (url.target.clone(), None),
                };
                url.target = format!("{path_part}{segment}");
                if let Some(q) = query {
                    url.target = format!("{}?{q}", url.target);
                }
                typed = match typed.split_once('?') {
                    Some((p, q)) => format!("{}{segment}?{q}", with_path(p)),
                    None => format!("{}{segment}", with_path(&typed)),
                };
            }
        }
        let mut body = None;
        let mut form = false;
        if let Some(d) = data {
            if args.get {
                let query = String::from_utf8_lossy(&d);
                let sep = if url.target.contains('?') { '&' } else { '?' };
                url.target = format!("{}{sep}{query}", url.target);
                let sep = if typed.contains('?') { '&' } else { '?' };
                typed = format!("{typed}{sep}{query}");
            } else {
                body = Some(d);
                form = true;
            }
        }
        if let Some(u) = upload {
            body = Some(u);
        }
        let method = match (&args.method, args.head, &body, &args.upload_file) {
            (Some(m), _, _, _) => m.clone(),
            (None, true, _, _) => "HEAD".to_string(),
            (None, false, Some(_), Some(_)) => "PUT".to_string(),
            (None, false, Some(_), None) => "POST".to_string(),
            (None, false, None, _) => "GET".to_string(),
        };
        let raw = match &args.raw_request {
            Some(path) => Some(read_input(path, "the raw request")?),
            None => None,
        };
        let mut headers = Vec::new();
        for h in &args.headers {
            match h.strip_prefix('@') {
                // curl 7.55: -H @FILE, one header per line
                Some(path) => {
                    let text = read_small(Path::new(path), "the -H @FILE file", "header file")?;
                    for line in String::from_utf8_lossy(&text).lines() {
                        let line = line.trim_end_matches('\r');
                        if !line.trim().is_empty() {
                            headers.push(line.to_string());
                        }
                    }
                }
                None => headers.push(h.clone()),
            }
        }
        let (referer, auto_referer) = match &args.referer {
            Some(r) => match r.strip_suffix(";auto") {
                Some(rest) => ((!rest.is_empty()).then(|| rest.to_string()), true),
                None => (Some(r.clone()), false),
            },
            None => (None, false),
        };
        let authorization = match &args.user {
            Some(u) if !u.contains(':') => {
                return Err(bad(format!(
                    "-u {u:?} has no password: give -u USER:PASSWORD (sockit does not prompt)"
                )));
            }
            Some(u) => Some(http::basic_authorization(u)),
            None => None,
        };
        let cookie = if args.cookie.is_empty() {
            None
        } else {
            for c in &args.cookie {
                if !c.contains('=') {
                    return Err(bad(format!(
                        "-b {c:?} names a cookie file, which sockit does not read: give -b \
                         'NAME=VALUE'"
                    )));
                }
            }
            // joined as curl joins repeated -b
            Some(args.cookie.join(";"))
        };
        if args.max_redirs < -1 {
            // checked with or without -L, as curl does
            return Err(bad(format!(
                "--max-redirs {}: give a number of redirects (0 or more), or -1 for no count \
                 limit",
                args.max_redirs
            )));
        }
        let follow = match (args.location, args.max_redirs) {
            (false, _) => None,
            (true, -1) => Some(None),
            (true, n) => Some(Some(u32::try_from(n).unwrap_or(u32::MAX))),
        };
        let resolve = args
            .resolve
            .iter()
            .map(|r| parse_resolve(r))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let connect_to = args
            .connect_to
            .iter()
            .map(|r| parse_connect_to(r))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let write_out = match &args.write_out {
            Some(f) => Some(match f.strip_prefix('@') {
                Some(path) => read_small(Path::new(path), "the -w @FILE file", "format file")?,
                None => f.as_bytes().to_vec(),
            }),
            None => None,
        };
        let output = match (&args.output, args.remote_name) {
            (Some(o), _) if o == Path::new("-") => None,
            (Some(o), _) => Some(o.clone()),
            (None, true) => Some(remote_name(&url)?),
            (None, false) => None,
        };
        let rate_interval = match &args.rate {
            Some(r) => Some(parse_rate(r).map_err(bad)?),
            None => None,
        };
        if let Some(f) = fragment {
            typed = format!("{typed}#{f}");
        }
        let plan = Plan {
            shown: Shown::of(&typed, None),
            path_as_is: args.path_as_is,
            url_text: typed,
            url,
            method,
            method_forced: args.method.is_some(),
            upload: args.upload_file.is_some(),
            body,
            form,
            raw,
            version: if args.http10 {
                Version::Http10
            } else {
                Version::Http11
            },
            headers,
            user_agent: args.user_agent.clone(),
            referer,
            auto_referer,
            authorization,
            cookie,
            compressed: args.compressed,
            keep_alive: args.reuse,
            follow,
            resolve,
            connect_to,
            unix_socket: args.unix_socket.clone(),
            proxy: match &args.proxy {
                Some(text) => {
                    let mut p = sockit::proxy::client::Proxy::parse_url(text)?;
                    if let Some(u) = &args.proxy_user {
                        p.auth = Some(sockit::proxy::Credentials::parse(u)?);
                    }
                    Some(p)
                }
                None => None,
            },
            proxytunnel: args.proxytunnel,
            write_out,
            output,
            dump_header: args.dump_header.clone(),
            rate_interval,
        };
        // the first request, built once here: a value no header may carry (a line
        // break in -A, -e, -b or -H) is refused before anything is sent
        plan.request(
            &plan.url,
            &plan.method,
            plan.body.as_deref(),
            &plan.url,
            plan.referer.as_deref(),
        )?;
        Ok(plan)
    }

    /// The request for `url` with `method` and `body`; `first` is the URL the credentials
    /// were given for, and `referer` the `Referer` to send.
    ///
    /// Credentials go only to the origin they were given for, as curl does since
    /// CVE-2022-27776: after a redirect to another scheme, host or port (`http://h:1` →
    /// `http://h:2`, `https://h` → `http://h`), `-u`'s `Authorization` and the `-H`
    /// `Authorization` and `Cookie` headers are left out. `-b` cookies are sent to every
    /// host, as curl sends them.
    pub fn request(
        &self,
        url: &Url,
        method: &str,
        body: Option<&[u8]>,
        first: &Url,
        referer: Option<&str>,
    ) -> anyhow::Result<Request> {
        let mut req = Request::new(method, url, self.version)?;
        let same_origin = url.same_origin(first);
        if let Some(ua) = &self.user_agent {
            if ua.is_empty() {
                req.add_header_line("User-Agent:")?;
            } else {
                req.set_default_header("User-Agent", ua)?;
            }
        }
        if let Some(r) = referer {
            req.set_default_header("Referer", r)?;
        }
        if same_origin && let Some(a) = &self.authorization {
            req.set_default_header("Authorization", a)?;
        }
        if let Some(c) = &self.cookie {
            req.set_default_header("Cookie", c)?;
        }
        if self.compressed {
            req.set_default_header("Accept-Encoding", http::ACCEPT_ENCODING)?;
        }
        if self.keep_alive {
            // HTTP/1.1 keeps the connection by default; HTTP/1.0 must ask
            match self.version {
                Version::Http11 => req.add_header_line("Connection:")?,
                Version::Http10 => req.set_default_header("Connection", "keep-alive")?,
            }
        }
        if let Some(b) = body {
            if self.form {
                req.set_default_header("Content-Type", "application/x-www-form-urlencoded")?;
            }
            req.set_body(b.to_vec());
            // curl 7.88: an upload (-T), or a body over 1 MiB, waits for the server's word
            if self.version == Version::Http11
                && !b.is_empty()
                && (self.upload || b.len() > EXPECT_100_BODY)
            {
                req.set_default_header("Expect", "100-continue")?;
            }
        }
        for line in &self.headers {
            let name = line.split([':', ';']).next().unwrap_or("").trim();
            let credential =
                name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie");
            if credential && !same_origin {
                continue;
            }
            req.add_header_line(line)?;
        }
        if self.proxy_forwards(url)
            && let Some(p) = &self.proxy
        {
            // RFC 9112 §3.2.2: a request to a proxy names the absolute URL.
            req.target = url.to_string();
            if let Some(c) = &p.auth {
                req.set_default_header(
                    "Proxy-Authorization",
                    &sockit::proxy::http::basic_token(c),
                )?;
            }
        }
        Ok(req)
    }

    /// True when `url` goes to an HTTP proxy as a request with the absolute URL (curl's
    /// default for http:// through `-x http://…`), not through a `CONNECT` tunnel.
    pub fn proxy_forwards(&self, url: &Url) -> bool {
        matches!(&self.proxy, Some(p) if p.kind == sockit::proxy::client::ProxyType::Http)
            && url.scheme == http::Scheme::Http
            && !self.proxytunnel
    }

    /// Where to connect for `url`: `--unix-socket`, else `--connect-to` (then `--resolve`
    /// for its target), else `--resolve` for the URL's host and port; `None` to look the
    /// URL's host up. A request forwarded to an HTTP proxy ([`Plan::proxy_forwards`]) goes
    /// to the proxy.
    pub fn route(&self, url: &Url) -> Option<Route> {
        if self.proxy_forwards(url)
            && let Some(p) = &self.proxy
        {
            let port = sockit::proxy::client::port_number(&p.port).unwrap_or(1080);
            return Some(Route::Host {
                host: p.host.clone(),
                port,
            });
        }
        if let Some(p) = &self.unix_socket {
            return Some(Route::Unix(p.clone()));
        }
        let (mut host, mut port) = (url.host.clone(), url.port);
        let mut moved = false;
        if let Some((_, _, to_host, to_port)) = self.connect_to.iter().find(|(h, p, _, _)| {
            (h.is_empty() || h.eq_ignore_ascii_case(&url.host)) && p.is_none_or(|p| p == url.port)
        }) {
            if !to_host.is_empty() {
                host = to_host.clone();
            }
            port = to_port.unwrap_or(port);
            moved = true;
        }
        // an entry for the host first, then curl's wildcard `*:PORT:ADDRESS`
        let entry = self
            .resolve
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(&host) && *p == port)
            .or_else(|| self.resolve.iter().find(|(h, p, _)| h == "*" && *p == port));
        if let Some((_, _, addrs)) = entry {
            return Some(Route::Addrs(
                addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            ));
        }
        moved.then_some(Route::Host { host, port })
    }
}

/// `-O`: the file name of the URL's last path segment.
fn remote_name(url: &Url) -> anyhow::Result<PathBuf> {
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
fn parse_resolve(text: &str) -> anyhow::Result<(String, u16, Vec<IpAddr>)> {
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
fn parse_connect_to(text: &str) -> anyhow::Result<(String, Option<u16>, String, Option<u16>)> {
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

/// `--rate N[/s|/m|/h|/d]` (curl's syntax; no unit is per hour, as in curl): the
/// interval between two starts.
pub fn parse_rate(text: &str) -> Result<Duration, String> {
    let (n, unit) = text.split_once('/').unwrap_or((text, "h"));
    let per = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "--rate {text:?}: the unit must be s, m, h or d (N/s, N/m, N/h, N/d)"
            ));
        }
    };
    let n: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("--rate {text:?}: N must be a whole number above 0"))?;
    Ok(Duration::from_secs_f64(per / f64::from(n)))
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
fn with_path(text: &str) -> String {
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
    fn rates() {
        assert_eq!(parse_rate("10/s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_rate("2/m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_rate("3600"), Ok(Duration::from_secs(1)));
        for bad in ["0/s", "x/s", "1/w", "-1/s", "1.5/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

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

    /// The options of `sockit http ARGS…`.
    fn opts(args: &[&str]) -> Opts {
        #[derive(clap::Parser)]
        struct Http {
            #[command(flatten)]
            opts: Opts,
        }
        let all = std::iter::once("http").chain(args.iter().copied());
        <Http as clap::Parser>::try_parse_from(all)
            .expect("options")
            .opts
    }

    #[test]
    fn credentials_go_to_their_origin_only() {
        // Regression: after a redirect only the host was compared, so -u's password went
        // to another port, and in clear from https:// to http:// on the same host (curl
        // compares scheme, host and port: CVE-2022-27776).
        let o = opts(&[
            "-u",
            "a:b",
            "-H",
            "Cookie: c=1",
            "-H",
            "Authorization: Bearer t",
            "-b",
            "n=v",
            "https://h/",
        ]);
        let plan = Plan::new(&o, "https://h/").unwrap();
        let headers = |to: &str| -> Vec<String> {
            let req = plan
                .request(&Url::parse(to).unwrap(), "GET", None, &plan.url, None)
                .unwrap();
            req.headers().map(|(n, v)| format!("{n}: {v}")).collect()
        };
        for same in ["https://h/x", "https://H:443/y"] {
            let h = headers(same);
            assert!(h.contains(&"Authorization: Bearer t".to_string()), "{h:?}");
            assert!(h.contains(&"Cookie: c=1".to_string()), "{h:?}");
        }
        for other in ["http://h/", "https://h:8443/", "https://g/"] {
            let h = headers(other);
            assert!(
                !h.iter()
                    .any(|l| l.starts_with("Authorization") || l == "Cookie: c=1"),
                "{other}: {h:?}"
            );
            // -b's cookies go everywhere, as in curl
            assert!(h.contains(&"Cookie: n=v".to_string()), "{other}: {h:?}");
        }
    }

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
