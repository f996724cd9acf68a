//! One transfer: the request to the URL and, with `-L`, the redirects it leads to — each
//! an [`Exchange`] — with the body and heads written where `-o`/`-D`/`-i` say, and the
//! figures `-w` and `--json` report kept in a [`Record`].

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sockit::http::{self, ContentDecoder, Exchange, ResponseHead, Scheme, Url};
use sockit::{Error, ErrorKind};

use super::Opts;
use super::output::Outputs;
use super::plan::{MAX_REDIRECTS_CAP, Plan};
use super::record::{Record, us};
use super::urls::{Shown, redirect_target};

/// The TLS client configuration, built once when the first https:// URL needs it.
#[derive(Default)]
pub struct TlsSetup {
    config: Option<Arc<sockit::tls::rustls::ClientConfig>>,
}

impl TlsSetup {
    fn get(&mut self, args: &Opts) -> anyhow::Result<Arc<sockit::tls::rustls::ClientConfig>> {
        if let Some(c) = &self.config {
            return Ok(c.clone());
        }
        let (config, source) = sockit::tls::client_config(&sockit::tls::ClientOptions {
            cacert: args.cacert.clone(),
            insecure: args.insecure,
            alpn: vec![sockit::tls::ALPN_HTTP1.to_vec()],
            identity: crate::args::identity(&args.cert, &args.key),
        })
        .context("cannot set up TLS")?;
        if args.verbose {
            let text = match source {
                sockit::tls::RootsSource::System(n) => {
                    format!("the system's certificate store ({n} roots)")
                }
                sockit::tls::RootsSource::Webpki(n) => {
                    format!("the bundled webpki roots ({n}; the system has none)")
                }
                sockit::tls::RootsSource::CaFile(p, n) => {
                    format!("{} ({n} certificates)", p.display())
                }
                sockit::tls::RootsSource::Insecure => "nothing (--insecure)".to_string(),
            };
            crate::exit::stderr_line(format_args!("* trusting {text}"));
        }
        self.config = Some(config.clone());
        Ok(config)
    }
}

/// What a command keeps from one transfer to the next: the TLS configuration and the
/// outputs.
pub struct Ctx<'a> {
    /// The options.
    pub args: &'a Opts,
    /// The checked request.
    pub plan: &'a Plan,
    /// The TLS configuration.
    pub tls: TlsSetup,
    /// Where bodies and heads go.
    pub outs: Outputs,
    /// The command's one reporter: its warnings (text on stderr, `warning` events on
    /// stdout with `--json`).
    pub reporter: Arc<crate::report::Reporter>,
}

/// The bytes of a request: all of it in `head`, or the head and, apart, a body that waits
/// for `100 Continue`; with the sizes `-w` reports once they are written.
struct Outgoing {
    head: Vec<u8>,
    body: Option<Vec<u8>>,
    /// The request head's length (`%{size_request}`: curl counts the head only).
    head_len: u64,
    /// The body bytes inside `head` (`%{size_upload}` once `head` is written).
    body_in_head: u64,
}

/// How long a body waits for `100 Continue` before it is sent anyway (curl's
/// `--expect100-timeout` default).
const EXPECT_100_WAIT: Duration = Duration::from_secs(1);

/// What one exchange led to.
enum Step {
    /// The answer is complete.
    Done,
    /// A redirect to follow: the URL, the `Location` as sent, the status.
    Redirect(Url, String, u16),
}

/// Where an exchange failed: its URL (a redirect's, with -L) and, for a timeout, which
/// limit expired. The context of a transfer's errors: stderr shows it as text, `--json`
/// takes its parts.
#[derive(Debug)]
pub struct FailedAt {
    /// The URL of the failing exchange.
    pub url: String,
    /// `--max-time 1s` or `--connect-timeout 0.5s`.
    pub limit: Option<String>,
    hint: Option<&'static str>,
}

impl std::fmt::Display for FailedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url)?;
        if let Some(l) = &self.limit {
            write!(f, ": {l} expired")?;
        }
        if let Some(h) = self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Adds the URL and, for a timeout, which limit expired.
fn failed_at(e: anyhow::Error, args: &Opts, url: &Url) -> anyhow::Error {
    let mut at = FailedAt {
        url: url.to_string(),
        limit: None,
        hint: None,
    };
    if let Some(err) = crate::exit::sockit_error(&e) {
        if err.kind() == ErrorKind::Timeout {
            let connect_phase = matches!(err.op(), "getaddrinfo" | "connect");
            at.limit = Some(
                match (connect_phase, args.connect_timeout(), args.max_time()) {
                    (true, Some(w), Some(m)) if w <= m => {
                        format!("--connect-timeout {}s", w.as_secs_f64())
                    }
                    (true, Some(w), None) => format!("--connect-timeout {}s", w.as_secs_f64()),
                    (_, _, Some(m)) => format!("--max-time {}s", m.as_secs_f64()),
                    _ => "the timeout".to_string(),
                },
            );
        } else if err.kind() == ErrorKind::Tls && err.message().contains("unknown issuer") {
            at.hint = Some(if args.cacert.is_some() {
                "neither the certificate nor its issuer is in the --cacert file"
            } else {
                "use --cacert FILE to trust a private CA"
            });
        }
    }
    e.context(at)
}

/// The verbose observer: `-v` events on stderr (a zero-sized function, so leaking a box of
/// it per connection costs nothing).
fn observer<'o>(verbose: bool) -> Option<&'o mut http::Observer<'o>> {
    if verbose {
        Some(Box::leak(Box::new(super::verbose::verbose_event)))
    } else {
        None
    }
}

/// A keep-alive connection kept for the next request (`--reuse`), with the origin it
/// serves.
pub struct Pooled<'o> {
    origin: String,
    ex: Exchange<'o>,
}

/// The origin a connection serves: scheme, host, port and route.
fn origin(url: &Url, route: &Option<http::Route>) -> String {
    format!(
        "{}://{}:{} {route:?}",
        url.scheme.as_str(),
        url.host,
        url.port
    )
}

/// Runs one transfer: the request and, with `-L`, its redirects. `pool` holds a
/// keep-alive connection (`--reuse`) to use and to leave for the next transfer.
pub fn transfer<'o>(
    ctx: &mut Ctx<'_>,
    pool: &mut Option<Pooled<'o>>,
    rec: &mut Record,
) -> anyhow::Result<()> {
    let (args, plan) = (ctx.args, ctx.plan);
    let mut url = plan.url.clone();
    let mut shown = plan.shown.clone();
    let mut method = plan.method.clone();
    let mut body = plan.body.clone();
    let mut referer = plan.referer.clone();
    let first = plan.url.clone();
    let mut seen: std::collections::HashSet<(String, String)> = Default::default();
    loop {
        let (request, req_method) = match &plan.raw {
            Some(bytes) => (
                Outgoing {
                    head: bytes.clone(),
                    body: None,
                    head_len: bytes.len() as u64,
                    body_in_head: 0,
                },
                http::raw_request_method(bytes),
            ),
            None => {
                let req =
                    plan.request(&url, &method, body.as_deref(), &first, referer.as_deref())?;
                let head = req.head_bytes();
                let head_len = head.len() as u64;
                let out = if req.expects_continue() {
                    Outgoing {
                        head,
                        body: req.body().map(<[u8]>::to_vec),
                        head_len,
                        body_in_head: 0,
                    }
                } else {
                    Outgoing {
                        head: req.to_bytes(),
                        body: None,
                        head_len,
                        body_in_head: req.body().map_or(0, |b| b.len() as u64),
                    }
                };
                (out, method.clone())
            }
        };
        rec.values.method = req_method.clone();
        rec.values.url_effective = shown.text(&url);
        rec.values.referer = referer.clone();
        rec.values.size_upload = 0;
        seen.insert((req_method.clone(), url.to_string()));
        if args.show_request {
            let shown = [
                request.head.as_slice(),
                request.body.as_deref().unwrap_or_default(),
            ];
            if args.json {
                // stderr may be a closed pipe: what nobody reads must not end the request.
                let mut e = io::stderr().lock();
                let _ = shown.iter().try_for_each(|b| e.write_all(b));
                let _ = e.flush();
            } else {
                let mut o = io::stdout().lock();
                shown.iter().try_for_each(|b| o.write_all(b))?;
                o.flush()?;
            }
        }
        let route = plan.route(&url);
        let here = origin(&url, &route);
        let pooled = pool.take().filter(|p| p.origin == here && p.ex.reusable());
        let mut ex = match pooled {
            Some(Pooled { mut ex, .. }) => {
                ex.restart()?;
                ex
            }
            None => {
                let opts = http::Options {
                    connect_timeout: args.connect_timeout(),
                    max_time: args.max_time(),
                    family: match (args.ipv4, args.ipv6) {
                        (true, _) => Some(sockit::Family::Inet),
                        (_, true) => Some(sockit::Family::Inet6),
                        _ => None,
                    },
                    tls: match url.scheme {
                        Scheme::Https => Some(ctx.tls.get(args)?),
                        Scheme::Http => None,
                    },
                    proxy: plan.proxy.clone().filter(|_| !plan.proxy_forwards(&url)),
                    route,
                };
                match Exchange::open(&url, &opts, observer(args.verbose)) {
                    Ok(ex) => ex,
                    Err(e) => {
                        if e.kind() == ErrorKind::Tls && url.scheme == Scheme::Https {
                            rec.values.ssl_verify_result = 1;
                        }
                        return Err(failed_at(e.into(), args, &url));
                    }
                }
            }
        };
        rec.connected(&ex, &url, args.insecure);
        let mut head: Option<ResponseHead> = None;
        let step = exchange(ctx, &mut ex, &url, &request, &req_method, rec, &mut head);
        rec.account(&ex, &url, &req_method, head.as_ref());
        if args.verbose {
            crate::exit::stderr_line(format_args!("* {}", timings_text(&ex.timings())));
        }
        let step = step.map_err(|e| failed_at(e, args, &url))?;
        let keep = plan.keep_alive && ex.reusable();
        match step {
            Step::Done => {
                if keep {
                    *pool = Some(Pooled { origin: here, ex });
                }
                return Ok(());
            }
            Step::Redirect(next, location, status) => {
                let n = rec.values.num_redirects;
                let (m, keep_body) = http::redirect_method(status, &method);
                let next_method = if plan.method_forced {
                    method.clone()
                } else {
                    m
                };
                // where it would go: curl's %{redirect_url} when the chain stops here
                let stop = |rec: &mut Record, why: String| -> anyhow::Result<()> {
                    rec.values.redirect_url = Some(next.to_string());
                    Err(failed_at(Error::protocol("http", why).into(), args, &url))
                };
                match plan.follow {
                    Some(Some(max)) if n >= u64::from(max) => {
                        return stop(
                            rec,
                            format!("too many redirects: more than {max} (--max-redirs)"),
                        );
                    }
                    Some(None) if n >= u64::from(MAX_REDIRECTS_CAP) => {
                        return stop(
                            rec,
                            format!(
                                "too many redirects: more than {MAX_REDIRECTS_CAP} (sockit's \
                                 cap, even with --max-redirs -1)"
                            ),
                        );
                    }
                    Some(None) if seen.contains(&(next_method.clone(), next.to_string())) => {
                        return stop(
                            rec,
                            format!(
                                "redirect loop: {next_method} {next} again ({n} redirect{} \
                                 followed; --max-redirs -1 stops at a repeated URL)",
                                if n == 1 { "" } else { "s" }
                            ),
                        );
                    }
                    _ => {}
                }
                rec.values.num_redirects += 1;
                method = next_method;
                if !keep_body {
                    body = None;
                }
                if args.verbose {
                    crate::exit::stderr_line(format_args!(
                        "* following {status} redirect to {next}"
                    ));
                }
                if plan.auto_referer {
                    referer = Some(url.to_string());
                }
                rec.values.time_redirect = rec.start.elapsed();
                if keep {
                    *pool = Some(Pooled { origin: here, ex });
                }
                shown = Shown::of(&location, Some(&shown));
                url = next;
            }
        }
    }
}

/// Sends the request and reads the answer: head, then body to the outputs.
fn exchange(
    ctx: &mut Ctx<'_>,
    ex: &mut Exchange<'_>,
    url: &Url,
    request: &Outgoing,
    method: &str,
    rec: &mut Record,
    head_out: &mut Option<ResponseHead>,
) -> anyhow::Result<Step> {
    let (args, plan) = (ctx.args, ctx.plan);
    let raw = plan.raw.is_some();
    ex.send(&request.head)?;
    rec.values.size_request += request.head_len;
    rec.values.size_upload = request.body_in_head;
    if let Some(body) = &request.body
        && ex.wait_continue(EXPECT_100_WAIT)?
    {
        ex.send_body(body)?;
        rec.values.size_upload = body.len() as u64;
    }
    let head = match ex.read_head(method) {
        Ok(h) => h,
        Err(e) => {
            if raw {
                // Raw mode shows whatever came back, even when it is not HTTP.
                ctx.outs.body.write(ex.head_bytes())?;
                ctx.outs.body.write(ex.unparsed())?;
                ctx.outs.flush()?;
            }
            return Err(e.into());
        }
    };
    rec.head(&head);
    *head_out = Some(head.clone());
    if let Some(d) = ctx.outs.dump.as_mut() {
        d.write(ex.head_bytes())?;
    }
    let show_head = raw || args.include || args.head;
    if let Some(location) = head.redirect_location() {
        if plan.follow.is_some() && !raw {
            let next = match redirect_target(url, &location, plan.path_as_is) {
                Ok(next) => next,
                Err(e) => {
                    rec.values.redirect_url = Some(location);
                    return Err(e);
                }
            };
            if show_head {
                ctx.outs.body.write(ex.head_bytes())?;
            }
            if plan.keep_alive {
                // read the redirect's body so that the connection can carry the next one
                while ex.read_body()?.is_some() {}
            }
            return Ok(Step::Redirect(next, location, head.status));
        }
        let target = redirect_target(url, &location, plan.path_as_is)
            .map_or(location.clone(), |u| u.to_string());
        rec.values.redirect_url = Some(target.clone());
        if !args.json && !super::silent(args) && args.repeat.is_none() {
            crate::exit::stderr_line(format_args!(
                "sockit: {} redirect to {target} (not followed: use -L)",
                head.status
            ));
        }
    }
    if args.fail && head.status >= 400 {
        return Err(Error::protocol(
            "http",
            format!("the server answered {} (--fail)", head.status_line()),
        )
        .into());
    }
    if show_head {
        ctx.outs.body.write(ex.head_bytes())?;
    }
    let mut decoder = if plan.compressed && !raw {
        ContentDecoder::for_head(&head)?
    } else {
        None
    };
    let outs = &mut ctx.outs;
    // The output's own error is kept whole (a broken pipe stays one) beside the decoder's.
    let mut write_error: Option<anyhow::Error> = None;
    let mut sink = |bytes: &[u8]| -> sockit::Result<()> {
        outs.body.write(bytes).map_err(|e| {
            write_error = Some(e);
            Error::new(ErrorKind::Os, "write", None, "output failed")
        })
    };
    let mut read = || -> sockit::Result<()> {
        while let Some(piece) = ex.read_body()? {
            if raw {
                sink(&piece.wire)?;
            } else if let Some(d) = decoder.as_mut() {
                d.decode(&piece.data, &mut sink)?;
            } else {
                sink(&piece.data)?;
            }
        }
        if let Some(d) = decoder.as_mut() {
            d.finish(&mut sink)?;
        }
        Ok(())
    };
    let result = read();
    if let Some(e) = write_error {
        return Err(e);
    }
    outs.flush()?;
    result?;
    Ok(Step::Done)
}

fn timings_text(t: &http::Timings) -> String {
    let opt = |d: Option<Duration>| d.map_or("-".to_string(), |d| us(d).to_string());
    format!(
        "timings (us since start): dns {} connect {} tls {} request_sent {} first_byte {} total {}",
        opt(t.dns),
        opt(t.connect),
        opt(t.tls),
        opt(t.request_sent),
        opt(t.first_byte),
        opt(t.total)
    )
}
