//! The TLS clap groups: the client side (`connect --tls`) and the server side (`listen
//! --tls`), and the one server configuration (given or ephemeral certificate) every TLS
//! server uses.

use std::path::PathBuf;

/// TLS for `connect` (ncat's `--ssl`): the server's certificate is verified by default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsClientArgs {
    /// Speak TLS (rustls) over the TCP connection; the certificate is verified against the
    /// system's roots and the host name.
    #[arg(help_heading = "TLS", long = "tls")]
    pub tls: bool,
    /// With --tls: trust the CA certificates in this PEM file instead of the system's.
    #[arg(
        help_heading = "TLS",
        long = "cacert",
        value_name = "FILE",
        requires = "tls"
    )]
    pub cacert: Option<PathBuf>,
    /// With --tls: do not verify the server's certificate. Dangerous.
    #[arg(help_heading = "TLS", long = "insecure", requires = "tls")]
    pub insecure: bool,
    /// With --tls: present this client certificate chain (PEM) when the server asks for
    /// one (mutual TLS); needs --key.
    #[arg(help_heading = "TLS", long = "cert", value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With --cert: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        help_heading = "TLS",
        long = "key",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,
}

/// The client identity of `--cert FILE --key FILE` (clap makes each need the other).
pub fn identity(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<sockit::tls::Identity> {
    Some(sockit::tls::Identity {
        cert: cert.clone()?,
        key: key.clone()?,
    })
}

impl TlsClientArgs {
    /// The client configuration when --tls was given (a `warning` event for --insecure).
    pub fn config(
        &self,
        reporter: &crate::report::Reporter,
    ) -> sockit::Result<Option<std::sync::Arc<sockit::tls::rustls::ClientConfig>>> {
        if !self.tls {
            return Ok(None);
        }
        if self.insecure {
            reporter.warn_on_stderr(
                "--insecure: the server's certificate is not verified; \
                 anyone on the path can read and change this connection"
                    .into(),
            );
        }
        let (config, _) = sockit::tls::client_config(&sockit::tls::ClientOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            alpn: Vec::new(),
            identity: identity(&self.cert, &self.key),
        })
        .map_err(|e| {
            flag_named(
                e,
                &[
                    ("cacert", self.cacert.as_deref()),
                    ("cert", self.cert.as_deref()),
                    ("key", self.key.as_deref()),
                ],
            )
        })?;
        Ok(Some(config))
    }
}

/// TLS for `listen` (ncat's `--ssl --ssl-cert --ssl-key`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsServerArgs {
    /// Speak TLS (rustls) with each client, presenting --cert/--key; without them an
    /// ephemeral self-signed certificate made at start, its SHA-256 fingerprint printed on
    /// stderr.
    #[arg(help_heading = "TLS", long = "tls")]
    pub tls: bool,
    /// With --tls: the server's certificate chain (PEM); needs --key.
    #[arg(help_heading = "TLS", long = "cert", value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With --tls: the server's private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --cert.
    #[arg(help_heading = "TLS", long = "key", value_name = "FILE", requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// With --tls: require a client certificate that chains to a CA certificate in this
    /// PEM file (mutual TLS); clients without one fail their handshake.
    #[arg(
        help_heading = "TLS",
        long = "cacert",
        value_name = "FILE",
        requires = "tls"
    )]
    pub cacert: Option<PathBuf>,
}

impl TlsServerArgs {
    /// The server configuration when --tls was given (see [`server_tls_config`]), for a
    /// listener on `listen_host`.
    pub fn config(
        &self,
        listen_host: Option<&str>,
        reporter: &crate::report::Reporter,
    ) -> sockit::Result<Option<std::sync::Arc<sockit::tls::rustls::ServerConfig>>> {
        if !self.tls {
            return Ok(None);
        }
        let names: Vec<String> = listen_host.map(str::to_string).into_iter().collect();
        server_tls_config(
            self.cert.as_deref(),
            self.key.as_deref(),
            self.cacert.as_deref(),
            &names,
            reporter,
        )
        .map(Some)
    }
}

/// An error about one of the files of `files` (its operation is the file's path) names
/// the flag that gave it, as `allowfile FILE: …` does: `cacert /x: [Errno 2] …`.
fn flag_named(e: sockit::Error, files: &[(&str, Option<&std::path::Path>)]) -> sockit::Error {
    for (flag, path) in files {
        if let Some(p) = path
            && e.op() == p.display().to_string()
        {
            let op = format!("{flag} {}", p.display());
            return e.with_op(op);
        }
    }
    e
}

/// The names an ephemeral certificate is made for: `localhost`, 127.0.0.1 and ::1, and
/// `extra` (a listen host; not an unspecified address such as 0.0.0.0, which no client
/// connects to, nor a zone's `%` suffix).
pub fn ephemeral_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for e in extra {
        let e = e.trim_start_matches('[').trim_end_matches(']');
        let e = e.split('%').next().unwrap_or(e).to_string();
        let unspecified = e
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if !e.is_empty() && !unspecified && !names.contains(&e) {
            names.push(e);
        }
    }
    names
}

/// A TLS server's configuration: from the `--cert`/`--key` files, or, with neither, an
/// ephemeral self-signed certificate for [`ephemeral_names`] of `names` (valid for the
/// whole run), whose SHA-256 fingerprint is printed on stderr in `openssl x509
/// -fingerprint -sha256`'s format so a client can compare it (the `certificate` event,
/// a person's to see). `client_ca`: mutual TLS.
pub fn server_tls_config(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
    client_ca: Option<&std::path::Path>,
    names: &[String],
    reporter: &crate::report::Reporter,
) -> sockit::Result<std::sync::Arc<sockit::tls::rustls::ServerConfig>> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            sockit::tls::server_config(cert, key, &[], client_ca).map_err(|e| {
                flag_named(
                    e,
                    &[
                        ("cert", Some(cert)),
                        ("key", Some(key)),
                        ("cacert", client_ca),
                    ],
                )
            })
        }
        (None, None) => {
            let names = ephemeral_names(names);
            let e = sockit::tls::Ephemeral::generate(&names)?;
            reporter.tell(&sockit::serve::Event::Certificate {
                sha256_fingerprint: e.fingerprint(),
                names,
            });
            e.server_config(&[], client_ca)
                .map_err(|e| flag_named(e, &[("cacert", client_ca)]))
        }
        _ => Err(sockit::Error::invalid_input(
            "tls",
            "--cert FILE and --key FILE go together",
        )),
    }
}

/// The refusal for --tls over anything but TCP.
pub fn tls_needs_tcp() -> sockit::Error {
    sockit::Error::invalid_input("tls", "--tls needs a TCP connection (not -u or --unix)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ephemeral_certificate_names_the_listen_host() {
        // Regression: the listen host (127.0.0.2, an IPv6 address) was missing from the SAN.
        let names = |h: &str| ephemeral_names(&[h.to_string()]);
        assert_eq!(
            names("127.0.0.2"),
            ["localhost", "127.0.0.1", "::1", "127.0.0.2"]
        );
        assert_eq!(names("[2001:db8::1]")[3], "2001:db8::1");
        assert_eq!(names("fe80::1%lo")[3], "fe80::1");
        for same in ["0.0.0.0", "::", "[::]", "127.0.0.1", "[::1]", "localhost"] {
            assert_eq!(names(same).len(), 3, "{same}");
        }
        assert_eq!(names("host.example")[3], "host.example");
        assert_eq!(ephemeral_names(&[]).len(), 3);
    }
}
