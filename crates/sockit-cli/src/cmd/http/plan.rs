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
use super::connect_to::{parse_connect_to, parse_resolve};
use super::data::{path_segment, read_input, read_small};
use super::urls::{Shown, remote_name, with_path};

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

pub(super) fn bad(message: impl Into<String>) -> anyhow::Error {
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
}
