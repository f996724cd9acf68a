//! curl's `-w/--write-out FORMAT`: `%{variable}`, `%{json}`, `%{header_json}`,
//! `%header{name}`, `%{stdout}`/`%{stderr}`, `%{onerror}`, `%%`, `\n` `\r` `\t`, with the
//! values printed as curl 7.88 prints them (times `0.001234`, `%{http_code}` `200` or
//! `000`, `%{scheme}` `HTTP`). The parser follows curl's `tool_writeout.c`: an unknown
//! variable prints nothing and a warning; text that is no variable is printed as it is.

use std::time::Duration;

/// One transfer's values, as `-w` names them.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// The last response's `Content-Type`.
    pub content_type: Option<Vec<u8>>,
    /// The error that ended the transfer, in sockit's words.
    pub errormsg: Option<String>,
    /// sockit's exit code for the transfer (0 on success).
    pub exitcode: u8,
    /// The `-o`/`-O` file written.
    pub filename_effective: Option<String>,
    /// The last status code (0 when there was no response).
    pub http_code: u16,
    /// The last response's version: `1.1`, `1.0`; `0` when there was none.
    pub http_version: String,
    /// Our address of the last connection (empty when there was none).
    pub local_ip: String,
    /// Our port of the last connection.
    pub local_port: u16,
    /// The last request's method.
    pub method: String,
    /// Connections opened.
    pub num_connects: u64,
    /// Headers in the last response.
    pub num_headers: u64,
    /// Redirects followed.
    pub num_redirects: u64,
    /// The redirect a `-L`-less transfer did not follow.
    pub redirect_url: Option<String>,
    /// The `Referer` the last request sent.
    pub referer: Option<String>,
    /// The server's address of the last connection.
    pub remote_ip: String,
    /// The server's port of the last connection.
    pub remote_port: u16,
    /// `HTTP` or `HTTPS` once connected.
    pub scheme: Option<&'static str>,
    /// Body bytes of the last response (as received, before --compressed decoding).
    pub size_download: u64,
    /// Head bytes of every response.
    pub size_header: u64,
    /// Bytes of every request sent.
    pub size_request: u64,
    /// Request body bytes sent.
    pub size_upload: u64,
    /// 0 when the server's certificate verified (or no TLS), 1 otherwise (curl: the
    /// OpenSSL verify code).
    pub ssl_verify_result: u8,
    /// curl's times, summed over the redirects as curl sums them.
    pub time_namelookup: Duration,
    /// See `time_namelookup`.
    pub time_connect: Duration,
    /// 0 without TLS.
    pub time_appconnect: Duration,
    /// See `time_namelookup`.
    pub time_pretransfer: Duration,
    /// See `time_namelookup`.
    pub time_starttransfer: Duration,
    /// From the start until the last redirect began.
    pub time_redirect: Duration,
    /// From the start to the end.
    pub time_total: Duration,
    /// The URL given.
    pub url: String,
    /// The last URL.
    pub url_effective: String,
    /// The last response's headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where write-out text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// stdout (the default).
    Stdout,
    /// stderr after `%{stderr}`.
    Stderr,
}

enum Value {
    Str(Option<Vec<u8>>),
    Int(u64),
    /// A status code: `%03d` as text, a number in JSON.
    Code(u16),
    Time(Duration),
}

/// The variables `%{json}` holds, in curl's order (sorted by name).
const JSON_NAMES: &[&str] = &[
    "content_type",
    "errormsg",
    "exitcode",
    "filename_effective",
    "ftp_entry_path",
    "http_code",
    "http_connect",
    "http_version",
    "local_ip",
    "local_port",
    "method",
    "num_connects",
    "num_headers",
    "num_redirects",
    "proxy_ssl_verify_result",
    "redirect_url",
    "referer",
    "remote_ip",
    "remote_port",
    "response_code",
    "scheme",
    "size_download",
    "size_header",
    "size_request",
    "size_upload",
    "speed_download",
    "speed_upload",
    "ssl_verify_result",
    "time_appconnect",
    "time_connect",
    "time_namelookup",
    "time_pretransfer",
    "time_redirect",
    "time_starttransfer",
    "time_total",
    "url",
    "url_effective",
    "urlnum",
];

/// curl 7.88 variables sockit does not have (they print nothing, with a warning).
const UNSUPPORTED: &[&str] = &["certs", "curl_version", "num_certs"];

fn per_second(bytes: u64, t: Duration) -> u64 {
    let secs = t.as_secs_f64();
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

impl Values {
    fn get(&self, name: &str) -> Option<Value> {
        let s = |v: &str| Value::Str(Some(v.as_bytes().to_vec()));
        let opt = |v: &Option<String>| Value::Str(v.as_ref().map(|x| x.as_bytes().to_vec()));
        Some(match name {
            "content_type" => Value::Str(self.content_type.clone()),
            "errormsg" => opt(&self.errormsg),
            "exitcode" => Value::Int(u64::from(self.exitcode)),
            "filename_effective" => opt(&self.filename_effective),
            "ftp_entry_path" => Value::Str(None),
            "http_code" | "response_code" => Value::Code(self.http_code),
            "http_connect" | "proxy_ssl_verify_result" | "urlnum" => Value::Int(0),
            "http_version" => s(&self.http_version),
            "local_ip" => s(&self.local_ip),
            "local_port" => Value::Int(u64::from(self.local_port)),
            "method" => s(&self.method),
            "num_connects" => Value::Int(self.num_connects),
            "num_headers" => Value::Int(self.num_headers),
            "num_redirects" => Value::Int(self.num_redirects),
            "redirect_url" => opt(&self.redirect_url),
            "referer" => opt(&self.referer),
            "remote_ip" => s(&self.remote_ip),
            "remote_port" => Value::Int(u64::from(self.remote_port)),
            "scheme" => Value::Str(self.scheme.map(|x| x.as_bytes().to_vec())),
            "size_download" => Value::Int(self.size_download),
            "size_header" => Value::Int(self.size_header),
            "size_request" => Value::Int(self.size_request),
            "size_upload" => Value::Int(self.size_upload),
            "speed_download" => Value::Int(per_second(self.size_download, self.time_total)),
            "speed_upload" => Value::Int(per_second(self.size_upload, self.time_total)),
            "ssl_verify_result" => Value::Int(u64::from(self.ssl_verify_result)),
            "time_appconnect" => Value::Time(self.time_appconnect),
            "time_connect" => Value::Time(self.time_connect),
            "time_namelookup" => Value::Time(self.time_namelookup),
            "time_pretransfer" => Value::Time(self.time_pretransfer),
            "time_redirect" => Value::Time(self.time_redirect),
            "time_starttransfer" => Value::Time(self.time_starttransfer),
            "time_total" => Value::Time(self.time_total),
            "url" => s(&self.url),
            "url_effective" => s(&self.url_effective),
            _ => return None,
        })
    }

    /// The first value of a header of the last response (`%header{name}`, curl 7.88's).
    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Seconds as curl prints them: `%.6f` of the microseconds.
fn seconds(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// A JSON string as curl's `jsonWriteString` writes it: `"` `\` and control bytes escaped,
/// other bytes as they are.
fn json_string(out: &mut Vec<u8>, bytes: &[u8], lowercase: bool) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b if lowercase => out.push(b.to_ascii_lowercase()),
            b => out.push(b),
        }
    }
    out.push(b'"');
}

fn write_text(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(Some(b)) => out.extend_from_slice(b),
        Value::Str(None) => {}
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Code(c) => out.extend_from_slice(format!("{c:03}").as_bytes()),
        Value::Time(d) => out.extend_from_slice(seconds(*d).as_bytes()),
    }
}

fn write_json_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(Some(b)) => json_string(out, b, false),
        Value::Str(None) => out.extend_from_slice(b"null"),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Code(c) => out.extend_from_slice(c.to_string().as_bytes()),
        Value::Time(d) => out.extend_from_slice(seconds(*d).as_bytes()),
    }
}

/// `%{json}`: every supported variable, in curl's order.
pub fn json(v: &Values) -> Vec<u8> {
    let mut out = b"{".to_vec();
    for (i, name) in JSON_NAMES.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_string(&mut out, name.as_bytes(), false);
        out.push(b':');
        if let Some(value) = v.get(name) {
            write_json_value(&mut out, &value);
        }
    }
    out.push(b'}');
    out
}

/// `%{header_json}`: the last response's headers, names in lower case, each name once with
/// its values in a list, one name per line (curl's layout).
pub fn header_json(v: &Values) -> Vec<u8> {
    let mut out = b"{".to_vec();
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in &v.headers {
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) {
            continue;
        }
        if !seen.is_empty() {
            out.extend_from_slice(b",\n");
        }
        json_string(&mut out, name.as_bytes(), true);
        out.extend_from_slice(b":[");
        let values = v
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(&lower));
        for (i, (_, value)) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_string(&mut out, value, false);
        }
        out.push(b']');
        seen.push(lower);
    }
    out.extend_from_slice(b"\n}");
    out
}

/// The write-out text of `format` for a transfer, in pieces by target, and the warnings
/// (unknown variables) to print once.
pub fn render(format: &[u8], v: &Values, failed: bool) -> (Vec<(Target, Vec<u8>)>, Vec<String>) {
    let mut pieces: Vec<(Target, Vec<u8>)> = Vec::new();
    let mut warnings = Vec::new();
    let mut target = Target::Stdout;
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    let f = format;
    while i < f.len() {
        if f[i] == b'%' && i + 1 < f.len() {
            if f[i + 1] == b'%' {
                out.push(b'%');
                i += 2;
            } else if f[i + 1] == b'{' {
                let Some(len) = f[i + 2..].iter().position(|&b| b == b'}') else {
                    out.extend_from_slice(b"%{");
                    i += 2;
                    continue;
                };
                let name = String::from_utf8_lossy(&f[i + 2..i + 2 + len]).to_ascii_lowercase();
                i += 2 + len + 1;
                match name.as_str() {
                    "onerror" => {
                        if !failed {
                            break;
                        }
                    }
                    "stdout" | "stderr" => {
                        pieces.push((target, std::mem::take(&mut out)));
                        target = if name == "stdout" {
                            Target::Stdout
                        } else {
                            Target::Stderr
                        };
                    }
                    "json" => out.extend(json(v)),
                    "header_json" => out.extend(header_json(v)),
                    other => match v.get(other) {
                        Some(value) => write_text(&mut out, &value),
                        None if UNSUPPORTED.contains(&other) => warnings.push(format!(
                            "--write-out variable '{other}' is not supported by sockit"
                        )),
                        None => warnings.push(format!("unknown --write-out variable: '{other}'")),
                    },
                }
            } else if f[i + 1..].starts_with(b"header{") {
                let from = i + 8;
                match f[from..].iter().position(|&b| b == b'}') {
                    Some(len) => {
                        if let Some(value) = v.header(&f[from..from + len]) {
                            out.extend_from_slice(value);
                        }
                        i = from + len + 1;
                    }
                    None => {
                        out.extend_from_slice(b"%header{");
                        i = from;
                    }
                }
            } else {
                out.extend_from_slice(&f[i..i + 2]);
                i += 2;
            }
        } else if f[i] == b'\\' && i + 1 < f.len() {
            match f[i + 1] {
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                other => out.extend_from_slice(&[b'\\', other]),
            }
            i += 2;
        } else {
            out.push(f[i]);
            i += 1;
        }
    }
    pieces.push((target, out));
    pieces.retain(|(_, b)| !b.is_empty());
    (pieces, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            content_type: Some(b"text/plain".to_vec()),
            http_code: 200,
            http_version: "1.1".into(),
            method: "GET".into(),
            scheme: Some("HTTP"),
            size_download: 1036,
            time_total: Duration::from_micros(2_379),
            time_namelookup: Duration::from_micros(16),
            url: "http://127.0.0.1:8000/file".into(),
            url_effective: "http://127.0.0.1:8000/file".into(),
            headers: vec![
                ("Set-Cookie".into(), b"a=1".to_vec()),
                ("X-One".into(), b"first".to_vec()),
                ("set-cookie".into(), b"b=2".to_vec()),
                ("X-Q".into(), b"say \"hi\"\\".to_vec()),
            ],
            ..Values::default()
        }
    }

    fn text(format: &str, v: &Values) -> String {
        let (pieces, _) = render(format.as_bytes(), v, false);
        pieces
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn variables_print_as_curl_7_88_prints_them() {
        let v = values();
        assert_eq!(
            text(
                "%{http_code} %{response_code} %{scheme} %{time_total} %{time_namelookup} %{time_appconnect}",
                &v
            ),
            "200 200 HTTP 0.002379 0.000016 0.000000"
        );
        assert_eq!(
            text("%{HTTP_CODE}|%{errormsg}|%{redirect_url}", &v),
            "200||"
        );
        let none = Values::default();
        assert_eq!(text("%{http_code} %{remote_port}", &none), "000 0");
        // curl's escapes and the text that is not a variable
        assert_eq!(
            text("%%|\\\\|\\n|\\x|%|%{|%header{|%z", &v),
            "%|\\\\|\n|\\x|%|%{|%header{|%z"
        );
        assert_eq!(text("[%header{SET-COOKIE}][%header{nope}]", &v), "[a=1][]");
    }

    #[test]
    fn targets_onerror_and_unknown_variables() {
        let v = values();
        let (pieces, warnings) = render(b"a%{stderr}b%{nosuch}%{certs}%{stdout}c", &v, false);
        assert_eq!(
            pieces,
            vec![
                (Target::Stdout, b"a".to_vec()),
                (Target::Stderr, b"b".to_vec()),
                (Target::Stdout, b"c".to_vec())
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("'nosuch'"));
        assert_eq!(text("ok%{onerror}failed", &v), "ok");
        let (pieces, _) = render(b"ok%{onerror}failed", &v, true);
        assert_eq!(pieces[0].1, b"okfailed");
    }

    #[test]
    fn json_and_header_json() {
        let v = values();
        let j: serde_json::Value = serde_json::from_slice(&json(&v)).unwrap();
        assert_eq!(j["http_code"], 200);
        assert_eq!(j["time_total"].as_f64(), Some(0.002379));
        assert_eq!(j["errormsg"], serde_json::Value::Null);
        assert_eq!(j["scheme"], "HTTP");
        assert_eq!(j.as_object().unwrap().len(), JSON_NAMES.len());
        let h = header_json(&v);
        assert_eq!(
            String::from_utf8(h.clone()).unwrap(),
            "{\"set-cookie\":[\"a=1\",\"b=2\"],\n\"x-one\":[\"first\"],\n\"x-q\":[\"say \\\"hi\\\"\\\\\"]\n}"
        );
        let h: serde_json::Value = serde_json::from_slice(&h).unwrap();
        assert_eq!(h["set-cookie"][1], "b=2");
    }
}
