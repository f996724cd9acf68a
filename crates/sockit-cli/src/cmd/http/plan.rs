//! What a `sockit http` command asks for, checked once before anything is sent: the URL,
//! method, body and headers curl's flags make, where to connect (`--resolve`,
//! `--connect-to`, `--unix-socket`), and the request bytes for each URL of a redirect
//! chain.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sockit::Error;
use sockit::http::{self, Request, Route, Url, Version};

use super::Opts;
use super::data::{path_segment, read_input};

/// The hard cap on redirects, even with `--max-redirs -1` (curl has none: it followed
/// 2,345 redirects in 3 s and then failed with exit 56).
pub const MAX_REDIRECTS_CAP: u32 = 1000;

/// A request body larger than this waits for `100 Continue` (curl 7.88's threshold).
const EXPECT_100_BODY: usize = 1 << 20;

/// The checked request of a command.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The URL as given (curl's `%{url}`).
    pub url_text: String,
    /// The first URL (with `-G` data and `-T`'s file name applied).
    pub url: Url,
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
        let mut url = Url::parse(url_text)?;
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
                let (path_part, query) = match url.target.split_once('?') {
                    Some((p, q)) => (p.to_string(), Some(q.to_string())),
                    None => (url.target.clone(), None),
                };
                url.target = format!("{path_part}{}", path_segment(name.as_bytes()));
                if let Some(q) = query {
                    url.target = format!("{}?{q}", url.target);
                }
            }
        }
        let mut body = None;
        let mut form = false;
        if let Some(d) = data {
            if args.get {
                let sep = if url.target.contains('?') { '&' } else { '?' };
                url.target = format!("{}{sep}{}", url.target, String::from_utf8_lossy(&d));
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
                    let text = read_input(Path::new(path), "the header file (-H @FILE)")?;
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
        let follow = match (args.location, args.max_redirs) {
            (false, _) => None,
            (true, -1) => Some(None),
            (true, n) if n >= 0 => Some(Some(u32::try_from(n).unwrap_or(u32::MAX))),
            (true, n) => {
                return Err(bad(format!(
                    "--max-redirs {n}: give a number of redirects, or -1 for no count limit"
                )));
            }
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
                Some(path) => read_input(Path::new(path), "the --write-out file")?,
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
        Ok(Plan {
            url_text: url_text.to_string(),
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
        })
    }

    /// The request for `url` with `method` and `body`; `first_host` is the host the
    /// credentials were given for (they are not sent to another after a redirect), and
    /// `referer` the `Referer` to send.
    pub fn request(
        &self,
        url: &Url,
        method: &str,
        body: Option<&[u8]>,
        first_host: &str,
        referer: Option<&str>,
    ) -> anyhow::Result<Request> {
        let mut req = Request::new(method, url, self.version)?;
        let same_host = url.host == first_host;
        if let Some(ua) = &self.user_agent {
            if ua.is_empty() {
                req.add_header_line("User-Agent:")?;
            } else {
                req.set_default_header("User-Agent", ua);
            }
        }
        if let Some(r) = referer {
            req.set_default_header("Referer", r);
        }
        if same_host {
            if let Some(a) = &self.authorization {
                req.set_default_header("Authorization", a);
            }
            if let Some(c) = &self.cookie {
                req.set_default_header("Cookie", c);
            }
        }
        if self.compressed {
            req.set_default_header("Accept-Encoding", http::ACCEPT_ENCODING);
        }
        if self.keep_alive {
            // HTTP/1.1 keeps the connection by default; HTTP/1.0 must ask
            match self.version {
                Version::Http11 => req.add_header_line("Connection:")?,
                Version::Http10 => req.set_default_header("Connection", "keep-alive"),
            }
        }
        if let Some(b) = body {
            if self.form {
                req.set_default_header("Content-Type", "application/x-www-form-urlencoded");
            }
            req.set_body(b.to_vec());
            // curl 7.88: an upload (-T), or a body over 1 MiB, waits for the server's word
            if self.version == Version::Http11
                && !b.is_empty()
                && (self.upload || b.len() > EXPECT_100_BODY)
            {
                req.set_default_header("Expect", "100-continue");
            }
        }
        for line in &self.headers {
            if !same_host {
                // Credentials given for one host are not handed to another after a redirect.
                let name = line.split([':', ';']).next().unwrap_or("").trim();
                if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie")
                {
                    continue;
                }
            }
            req.add_header_line(line)?;
        }
        if self.proxy_forwards(url)
            && let Some(p) = &self.proxy
        {
            // RFC 9112 §3.2.2: a request to a proxy names the absolute URL.
            req.target = url.to_string();
            if let Some(c) = &p.auth {
                req.set_default_header("Proxy-Authorization", &sockit::proxy::http::basic_token(c));
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
        if let Some((_, _, addrs)) = self
            .resolve
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(&host) && *p == port)
        {
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
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad(format!(
            "-O: the URL {url} has no file name (it ends with '/'): use -o FILE"
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

/// `sockit http`'s URL check of a redirect target, with the URL it came from as context.
pub fn redirect_target(url: &Url, location: &str) -> anyhow::Result<Url> {
    url.join(location)
        .with_context(|| format!("bad redirect Location {location:?}"))
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

    #[test]
    fn remote_names() {
        let u = |s| Url::parse(s).unwrap();
        assert_eq!(
            remote_name(&u("http://h/a/b.txt?x=1")).unwrap(),
            PathBuf::from("b.txt")
        );
        assert!(remote_name(&u("http://h/a/")).is_err());
        assert!(remote_name(&u("http://h")).is_err());
    }
}
