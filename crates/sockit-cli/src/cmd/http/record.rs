//! The figures of one transfer ([`Record`]): what `-w` and `--json` report, filled in as
//! the exchanges go (times summed over the redirects as curl sums them).

use std::time::{Duration, Instant};

use serde::Serialize;
use sockit::http::{self, Exchange, ResponseHead, Scheme, Url};

use super::plan::Plan;
use super::writeout::Values;

/// The TLS session of an exchange, for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct TlsJson {
    version: String,
    cipher: String,
    alpn: Option<String>,
}

/// One request and its answer, for `--json` (µs since that request began).
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeJson {
    url: String,
    method: String,
    http_version: String,
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_port: Option<u16>,
    reused: bool,
    tls: Option<TlsJson>,
    bytes_sent: u64,
    bytes_received: u64,
    head_bytes: u64,
    body_bytes: u64,
    time_namelookup_us: Option<u64>,
    time_connect_us: Option<u64>,
    time_appconnect_us: Option<u64>,
    time_pretransfer_us: Option<u64>,
    time_request_sent_us: Option<u64>,
    time_starttransfer_us: Option<u64>,
    time_total_us: Option<u64>,
}

/// Microseconds, saturating.
pub fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Everything a transfer reports, filled in as it goes (so that a failure still has the
/// figures up to it).
#[derive(Debug, Clone)]
pub struct Record {
    /// When the transfer began.
    pub start: Instant,
    /// `-w`'s values.
    pub values: Values,
    /// `--json`'s exchanges, in order.
    pub exchanges: Vec<ExchangeJson>,
    /// The last exchange's timings (for `--repeat`).
    pub last_timings: Option<http::Timings>,
}

impl Record {
    /// A transfer of `plan` beginning now.
    pub fn new(plan: &Plan) -> Record {
        Record {
            start: Instant::now(),
            values: Values {
                url: plan.url_text.clone(),
                url_effective: plan.shown.text(&plan.url),
                method: plan.method.clone(),
                http_version: "0".into(),
                filename_effective: plan.output.as_ref().map(|p| p.display().to_string()),
                ..Values::default()
            },
            exchanges: Vec::new(),
            last_timings: None,
        }
    }

    /// True when the last exchange went over a kept connection and got no byte back: the
    /// server had closed it meanwhile (a new connection may try again).
    pub fn reused_without_answer(&self) -> bool {
        self.exchanges
            .last()
            .is_some_and(|e| e.reused && e.bytes_received == 0)
    }

    /// The transfer ended, with this result: `-w`'s total, exit code and message.
    pub fn finish(&mut self, result: &anyhow::Result<()>) {
        self.values.time_total = self.start.elapsed();
        if let Err(e) = result {
            self.values.exitcode = crate::exit::code_for(e);
            self.values.errormsg = Some(crate::exit::python_text(e));
        }
    }

    /// Adds an exchange's figures: times summed as curl sums them (each phase since its
    /// request began, at least 1 µs), the connection, the sizes.
    pub(super) fn account(
        &mut self,
        ex: &Exchange<'_>,
        url: &Url,
        method: &str,
        head: Option<&ResponseHead>,
    ) {
        let t = ex.timings();
        let add = |sum: &mut Duration, d: Option<Duration>| {
            if let Some(d) = d {
                *sum += d.max(Duration::from_micros(1));
            }
        };
        let v = &mut self.values;
        add(&mut v.time_namelookup, t.dns);
        add(&mut v.time_connect, t.connect);
        add(&mut v.time_appconnect, t.tls);
        add(&mut v.time_pretransfer, t.pretransfer);
        add(&mut v.time_starttransfer, t.first_byte);
        v.size_header += ex.head_bytes().len() as u64;
        v.size_download = ex.body_bytes();
        self.last_timings = Some(t);
        let opt = |d: Option<Duration>| d.map(us);
        self.exchanges.push(ExchangeJson {
            url: url.to_string(),
            method: method.to_string(),
            http_version: head.map_or_else(String::new, |h| format!("HTTP/1.{}", h.minor_version)),
            status: head.map_or(0, |h| h.status),
            reason: head.map_or_else(String::new, |h| h.reason.clone()),
            headers: head.map_or_else(Vec::new, |h| {
                h.headers
                    .iter()
                    .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect()
            }),
            peer_host: ex.peer_addr().map(|a| sockit::addr::host_text(&a)),
            peer_port: ex.peer_addr().map(|a| a.port()),
            peer_path: ex.unix_path().map(|p| p.display().to_string()),
            local_host: ex.local_addr().map(|a| sockit::addr::host_text(&a)),
            local_port: ex.local_addr().map(|a| a.port()),
            reused: ex.is_reused(),
            tls: ex.tls_info().map(|i| TlsJson {
                version: i.version.clone(),
                cipher: i.cipher.clone(),
                alpn: i.alpn.clone(),
            }),
            bytes_sent: ex.bytes_sent(),
            bytes_received: ex.bytes_received(),
            head_bytes: ex.head_bytes().len() as u64,
            body_bytes: ex.body_bytes(),
            time_namelookup_us: opt(t.dns),
            time_connect_us: opt(t.connect),
            time_appconnect_us: opt(t.tls),
            time_pretransfer_us: opt(t.pretransfer),
            time_request_sent_us: opt(t.request_sent),
            time_starttransfer_us: opt(t.first_byte),
            time_total_us: opt(t.total),
        });
    }

    /// The connection of an exchange: addresses, scheme, whether it was new.
    pub(super) fn connected(&mut self, ex: &Exchange<'_>, url: &Url, insecure: bool) {
        let v = &mut self.values;
        if !ex.is_reused() {
            v.num_connects += 1;
        }
        // over a Unix socket, curl reports its path and the URL's port
        (v.remote_ip, v.remote_port) = match (ex.peer_addr(), ex.unix_path()) {
            (Some(a), _) => (sockit::addr::host_text(&a), a.port()),
            (None, Some(p)) => (p.display().to_string(), url.port),
            (None, None) => (String::new(), 0),
        };
        v.local_ip = ex
            .local_addr()
            .map_or_else(String::new, |a| sockit::addr::host_text(&a));
        v.local_port = ex.local_addr().map_or(0, |a| a.port());
        v.scheme = Some(match url.scheme {
            Scheme::Http => "HTTP",
            Scheme::Https => "HTTPS",
        });
        v.ssl_verify_result = u8::from(url.scheme == Scheme::Https && insecure);
    }

    pub(super) fn head(&mut self, head: &ResponseHead) {
        let v = &mut self.values;
        v.http_code = head.status;
        // as curl 7.88 prints CURL_HTTP_VERSION_1_0 and _1_1
        v.http_version = match head.minor_version {
            0 => "1".to_string(),
            n => format!("1.{n}"),
        };
        v.content_type = head.header("Content-Type").map(<[u8]>::to_vec);
        v.headers = head.headers.clone();
        v.num_headers = head.headers.len() as u64;
    }

    /// The `--json` object of a finished transfer: the last exchange's fields at the top,
    /// `redirects`, and `exchanges` with every exchange in order.
    pub fn json(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Response<'a> {
            event: &'static str,
            #[serde(flatten)]
            last: Option<&'a ExchangeJson>,
            redirects: u64,
            exchanges: &'a [ExchangeJson],
        }
        serde_json::to_value(Response {
            event: "response",
            last: self.exchanges.last(),
            redirects: self.values.num_redirects,
            exchanges: &self.exchanges,
        })
        .unwrap_or_default()
    }
}
