//! What a TLS client trusts and what a TLS server presents: PEM files, root stores, and
//! the rustls configurations built from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::errors::tls_error;
use super::provider;
use super::verify::{AcceptAnyServerCert, Verifier};
#[cfg(any(doc, test))]
use crate::error::ErrorKind;
use crate::error::{Error, Result};

/// What a TLS client trusts and asks for.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A PEM file of CA certificates to trust instead of the system's roots (`--cacert`).
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate, unverified (`--insecure`). Dangerous: warn the user.
    pub insecure: bool,
    /// ALPN protocol ids to offer, most preferred first (empty: no ALPN extension).
    pub alpn: Vec<Vec<u8>>,
    /// A client certificate chain and its private key (PEM files) to present when the
    /// server asks for one (mutual TLS; curl's `--cert`/`--key`, ncat's
    /// `--ssl-cert`/`--ssl-key`). `None`: no client authentication.
    pub identity: Option<Identity>,
}

/// A certificate chain and its private key, as PEM files (`--cert FILE --key FILE`).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate chain, leaf first (PEM `CERTIFICATE` blocks).
    pub cert: PathBuf,
    /// The private key of the leaf (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Where a client's trusted roots came from (for `-v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootsSource {
    /// The system's certificate store, with this many roots.
    System(usize),
    /// The bundled Mozilla roots (webpki-roots), as the system had none.
    Webpki(usize),
    /// A `--cacert` file, with this many certificates.
    CaFile(PathBuf, usize),
    /// Nothing is verified (`--insecure`).
    Insecure,
}

/// Reads every `CERTIFICATE` block of a PEM file.
///
/// # Errors
/// [`ErrorKind::Os`] when the file cannot be read, [`ErrorKind::InvalidInput`] when it
/// holds no certificate or a malformed PEM block, or is larger than [`MAX_PEM_FILE`].
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::invalid_input(path_op(path), format!("not a PEM certificate file: {e}"))
        })?;
    if certs.is_empty() {
        return Err(Error::invalid_input(
            path_op(path),
            "no CERTIFICATE block in the file (expected PEM)",
        ));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
///
/// # Errors
/// [`ErrorKind::Os`] when the file cannot be read, [`ErrorKind::InvalidInput`] when it
/// holds no private key, only an encrypted one (a passphrase is not supported), or is
/// larger than [`MAX_PEM_FILE`].
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        // PKCS#8 `ENCRYPTED PRIVATE KEY`, or OpenSSL's legacy `Proc-Type: 4,ENCRYPTED`
        let text = String::from_utf8_lossy(&bytes);
        let message = if text.contains("ENCRYPTED") {
            "the private key is encrypted (a passphrase is not supported): decrypt it first, \
             e.g. openssl pkey -in KEY -out plain.pem"
                .to_string()
        } else {
            format!("no private key in the file (expected PEM): {e}")
        };
        Error::invalid_input(path_op(path), message)
    })
}

/// The error for a certificate chain and key rustls will not use together, worded.
fn identity_error(whose: &str, e: &rustls::Error) -> Error {
    let why = match e {
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not belong to the certificate".to_string()
        }
        other => tls_error(other).message().to_string(),
    };
    Error::tls(format!("cannot use {whose} certificate and key: {why}"))
}

/// The largest PEM file read, in bytes (4 MiB: a bundle of every public root is about
/// 200 KiB): a larger one (`/dev/zero`) is refused, not read into memory.
pub const MAX_PEM_FILE: u64 = 4 << 20;

/// A PEM file's bytes, at most [`MAX_PEM_FILE`].
fn read_pem(path: &Path) -> Result<Vec<u8>> {
    crate::files::read_capped(path, MAX_PEM_FILE, None, "PEM file")
}

fn path_op(path: &Path) -> String {
    path.display().to_string()
}

/// The trusted roots for a client, and where they came from.
///
/// # Errors
/// As [`load_certs`] for a `cacert` file; [`ErrorKind::InvalidInput`] when none of its
/// certificates can serve as a trust anchor.
pub fn root_store(cacert: Option<&Path>) -> Result<(RootCertStore, RootsSource)> {
    roots_and_anchors(cacert).map(|(roots, source, _)| (roots, source))
}

/// [`root_store`], and the certificates of the `cacert` file as they are (empty for the
/// system's roots): a server presenting one of them is trusted as it is.
fn roots_and_anchors(
    cacert: Option<&Path>,
) -> Result<(RootCertStore, RootsSource, Vec<CertificateDer<'static>>)> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = cacert {
        let certs = load_certs(path)?;
        let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            return Err(Error::invalid_input(
                path_op(path),
                "no usable CA certificate in the file",
            ));
        }
        return Ok((roots, RootsSource::CaFile(path.to_path_buf(), added), certs));
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added > 0 {
        return Ok((roots, RootsSource::System(added), Vec::new()));
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let n = roots.len();
    Ok((roots, RootsSource::Webpki(n), Vec::new()))
}

/// A client configuration: verified against the system's roots (or `cacert`), or not at
/// all with `insecure`; as curl does, a server certificate that is itself in `cacert` is
/// trusted as it is, even when it is marked CA (OpenSSL 3's `req -x509` marks it so), and
/// an untrusted self-signed certificate is reported as `self-signed certificate`; TLS 1.2 and 1.3; the given ALPN ids; the client certificate of
/// `identity` for a server that asks for one.
///
/// Python: `ssl.create_default_context(cafile=...)`, with `check_hostname=False,
/// verify_mode=CERT_NONE` for `insecure`, and `load_cert_chain(cert, key)` for `identity`.
///
/// # Errors
/// As [`root_store`], and as [`load_certs`]/[`load_key`] for `identity`;
/// [`ErrorKind::Tls`] if rustls refuses the protocol versions, or the key does not fit
/// the certificate.
pub fn client_config(opts: &ClientOptions) -> Result<(Arc<ClientConfig>, RootsSource)> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?;
    let (builder, source) = if opts.insecure {
        let verifier = Arc::new(AcceptAnyServerCert(provider));
        (
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier),
            RootsSource::Insecure,
        )
    } else {
        let (roots, source, anchors) = roots_and_anchors(opts.cacert.as_deref())?;
        let verifier = Arc::new(Verifier::new(roots, anchors, provider)?);
        (
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier),
            source,
        )
    };
    let mut config = match &opts.identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(load_certs(&id.cert)?, load_key(&id.key)?)
            .map_err(|e| identity_error("the client", &e))?,
    };
    config.alpn_protocols = opts.alpn.clone();
    Ok((Arc::new(config), source))
}

/// A server configuration from a PEM certificate chain and a PEM private key, offering
/// the given ALPN ids. With `client_ca` (a PEM file of CA certificates) every client must
/// present a certificate that chains to one of them (mutual TLS, RFC 8446 §4.3.2
/// CertificateRequest); without it no client certificate is asked for.
///
/// Python: `SSLContext(PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)`, and
/// `load_verify_locations(client_ca)` with `verify_mode = CERT_REQUIRED`.
///
/// # Errors
/// As [`load_certs`] / [`load_key`] / [`root_store`]; [`ErrorKind::Tls`] when the key does
/// not fit the certificate or is of an unsupported type.
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[Vec<u8>],
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>> {
    server_config_from(load_certs(cert)?, load_key(key)?, alpn, client_ca)
}

/// As [`server_config`], from a certificate chain and key already in memory (DER), such
/// as an [`Ephemeral`](super::Ephemeral) certificate's.
///
/// # Errors
/// As [`server_config`], less the reading of the certificate and key files.
pub fn server_config_from(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[Vec<u8>],
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let (roots, _) = root_store(Some(path))?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| {
                Error::invalid_input(path_op(path), format!("cannot verify clients: {e}"))
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| identity_error("the", &e))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}

/// The TLS server name for a host: a DNS name (sent as SNI and checked against the
/// certificate's DNS names) or an IP address (checked against its IP addresses, no SNI).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for text that is neither a DNS name nor an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    let host = host.split('%').next().unwrap_or(host);
    ServerName::try_from(host.to_string())
        .map_err(|_| Error::invalid_input("tls", format!("not a valid TLS server name: {host:?}")))
}

/// What a finished handshake agreed on (for `-v` and `--json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The ALPN protocol the peer chose, if any.
    pub alpn: Option<String>,
    /// How many certificates the peer presented (a server always some; a client only
    /// when asked for one, and then it was verified, or the handshake failed).
    pub peer_certificates: usize,
}

impl SessionInfo {
    /// Reads the agreed parameters of a connection whose handshake is done.
    pub fn of(state: &rustls::CommonState) -> SessionInfo {
        let version = match state.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(v) => format!("{v:?}"),
            None => "unknown".to_string(),
        };
        let cipher = state
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_else(|| "unknown".to_string());
        let alpn = state
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        SessionInfo {
            version,
            cipher,
            alpn,
            peer_certificates: state.peer_certificates().map_or(0, <[_]>::len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("localhost"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("bad name!").is_err());
    }

    #[test]
    fn missing_files_are_os_errors() {
        let e = load_certs(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Os);
        assert_eq!(e.code(), Some(libc::ENOENT));
    }
}
