//! TLS with rustls (ring backend): client and server configurations, server names, and
//! the mapping of TLS failures to [`ErrorKind::Tls`] with clear messages.
//!
//! Python: the `ssl` module (`ssl.create_default_context()`, `SSLContext.wrap_socket`).
//!
//! Contracts:
//! - A client verifies the server's certificate by default against the system's roots
//!   (`/etc/ssl/certs` through rustls-native-certs, honouring `SSL_CERT_FILE` /
//!   `SSL_CERT_DIR`), or the bundled webpki roots where the system has none. A `cacert`
//!   file *replaces* those roots, as curl's `--cacert` does. `insecure` accepts any
//!   certificate (the handshake signatures are still checked); the caller warns about it.
//! - SNI is sent for host names (not for IP addresses, RFC 6066 §3); ALPN is what the
//!   caller asks for (`http/1.1` for HTTP).
//! - Nothing here blocks except reading the PEM files; the handshakes are done by the
//!   caller's stream ([`rustls::StreamOwned`] for blocking sockets) or by [`connect`] /
//!   [`accept`] on tokio.
//! - Every failure is an [`Error`]: [`ErrorKind::Tls`] for the handshake and the record
//!   layer (`tls: certificate verify failed: unknown issuer`), [`ErrorKind::Os`] for a
//!   PEM file that cannot be read, [`ErrorKind::InvalidInput`] for one with nothing usable.
//!
//! [`ErrorKind::Tls`]: crate::ErrorKind::Tls
//! [`ErrorKind::Os`]: crate::ErrorKind::Os
//! [`ErrorKind::InvalidInput`]: crate::ErrorKind::InvalidInput

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};

use crate::error::{Error, ErrorKind, Result};

pub use rustls;
pub use tokio_rustls;

/// The ALPN protocol id of HTTP/1.1 (RFC 7301).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

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

/// The crypto provider every configuration uses: rustls's ring backend.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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
    let mut roots = RootCertStore::empty();
    if let Some(path) = cacert {
        let certs = load_certs(path)?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::invalid_input(
                path_op(path),
                "no usable CA certificate in the file",
            ));
        }
        return Ok((roots, RootsSource::CaFile(path.to_path_buf(), added)));
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added > 0 {
        return Ok((roots, RootsSource::System(added)));
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let n = roots.len();
    Ok((roots, RootsSource::Webpki(n)))
}

/// A client configuration: verified against the system's roots (or `cacert`), or not at
/// all with `insecure`; TLS 1.2 and 1.3; the given ALPN ids; the client certificate of
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
        let (roots, source) = root_store(opts.cacert.as_deref())?;
        (builder.with_root_certificates(roots), source)
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
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
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

/// Does a client handshake over a tokio stream: SNI and verification as `config` says.
///
/// Python: `ctx.wrap_socket(sock, server_hostname=host)` then `do_handshake()`.
///
/// # Errors
/// [`ErrorKind::Tls`] when the handshake fails (certificate refused, alert received,
/// peer not speaking TLS); [`ErrorKind::Os`] for a socket error;
/// [`ErrorKind::InvalidInput`] for a host that cannot be a server name.
pub async fn connect<IO>(
    io: IO,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = server_name(host)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| from_io("tls handshake", e))
}

/// Does a server handshake over a tokio stream.
///
/// Python: `ctx.wrap_socket(sock, server_side=True)`.
///
/// # Errors
/// [`ErrorKind::Tls`] when the handshake fails (the client refused the certificate or
/// does not speak TLS); [`ErrorKind::Os`] for a socket error.
pub async fn accept<IO>(
    io: IO,
    config: Arc<ServerConfig>,
) -> Result<tokio_rustls::server::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio_rustls::TlsAcceptor::from(config)
        .accept(io)
        .await
        .map_err(|e| from_io("tls handshake", e))
}

/// A TLS stream over a tokio stream whose handshake runs on first use (or on
/// [`handshake`](Stream::handshake)), so that a server can hand it to a per-connection
/// task at once and a slow client never holds the accept loop.
///
/// Python: `ctx.wrap_socket(sock, do_handshake_on_connect=True)` on a non-blocking socket.
///
/// Contracts: I/O errors of the TLS layer come out as `io::Error`s that carry a
/// [`crate::Error`] of kind [`ErrorKind::Tls`] (so [`Error::from_io`] gives it back); a
/// peer that closes the TCP connection without TLS `close_notify` reads as a plain end of
/// stream, as for a TCP socket (the relays are byte pipes with no framing to protect);
/// `poll_shutdown` sends `close_notify` and then shuts down the TCP write side, so
/// half-close works as over TCP.
pub struct Stream<IO> {
    state: StreamState<IO>,
}

enum StreamState<IO> {
    Accepting(tokio_rustls::Accept<IO>),
    Connecting(tokio_rustls::Connect<IO>),
    Ready(Box<tokio_rustls::TlsStream<IO>>),
    Failed(Error),
}

impl<IO> std::fmt::Debug for Stream<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            StreamState::Accepting(_) => "accepting",
            StreamState::Connecting(_) => "connecting",
            StreamState::Ready(_) => "ready",
            StreamState::Failed(_) => "failed",
        };
        f.debug_struct("tls::Stream")
            .field("state", &state)
            .finish()
    }
}

impl<IO> Stream<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// The server side of a connection (`accept`ed socket), handshake pending.
    pub fn accept(io: IO, config: Arc<ServerConfig>) -> Stream<IO> {
        Stream {
            state: StreamState::Accepting(tokio_rustls::TlsAcceptor::from(config).accept(io)),
        }
    }

    /// The client side of a connection to `host` (SNI and verification name), handshake
    /// pending.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a host that cannot be a TLS server name.
    pub fn connect(io: IO, host: &str, config: Arc<ClientConfig>) -> Result<Stream<IO>> {
        let name = server_name(host)?;
        Ok(Stream {
            state: StreamState::Connecting(
                tokio_rustls::TlsConnector::from(config).connect(name, io),
            ),
        })
    }

    /// Runs the handshake to its end (a no-op once done).
    ///
    /// # Errors
    /// [`ErrorKind::Tls`] when it fails (certificate refused, alert, peer not speaking
    /// TLS, peer closed during the handshake); [`ErrorKind::Os`] for a socket error.
    pub async fn handshake(&mut self) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_handshake(cx))
            .await
            .map_err(|e| Error::from_io("tls handshake", e))
    }

    /// What the handshake agreed on, once it is done.
    pub fn session_info(&self) -> Option<SessionInfo> {
        match &self.state {
            StreamState::Ready(s) => Some(SessionInfo::of(s.get_ref().1)),
            _ => None,
        }
    }

    fn poll_handshake(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::future::Future;
        use std::pin::Pin;
        use std::task::Poll;
        let done = match &mut self.state {
            StreamState::Ready(_) => return Poll::Ready(Ok(())),
            StreamState::Failed(e) => return Poll::Ready(Err(e.clone().into())),
            StreamState::Accepting(fut) => match Pin::new(fut).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map(tokio_rustls::TlsStream::from),
            },
            StreamState::Connecting(fut) => match Pin::new(fut).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map(tokio_rustls::TlsStream::from),
            },
        };
        match done {
            Ok(s) => {
                self.state = StreamState::Ready(Box::new(s));
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                let err = match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        Error::tls("the peer closed the connection during the TLS handshake")
                    }
                    _ => from_io("tls handshake", e),
                };
                self.state = StreamState::Failed(err.clone());
                Poll::Ready(Err(err.into()))
            }
        }
    }
}

/// An `io::Error` carrying the sockit error of a TLS failure (errno errors stay errno).
fn tls_io_error(op: &'static str, e: io::Error) -> io::Error {
    if e.raw_os_error().is_some() {
        return e;
    }
    match from_io(op, e) {
        err if err.kind() == ErrorKind::Tls => io::Error::other(err),
        err => err.into(),
    }
}

impl<IO> tokio::io::AsyncRead for Stream<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let StreamState::Ready(s) = &mut this.state else {
            return Poll::Ready(Err(io::Error::other("tls stream not ready")));
        };
        match std::pin::Pin::new(&mut **s).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(tls_io_error("recv", e))),
            other => other,
        }
    }
}

impl<IO> tokio::io::AsyncWrite for Stream<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        let this = self.get_mut();
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let StreamState::Ready(s) = &mut this.state else {
            return Poll::Ready(Err(io::Error::other("tls stream not ready")));
        };
        std::pin::Pin::new(&mut **s)
            .poll_write(cx, buf)
            .map_err(|e| tls_io_error("send", e))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            StreamState::Ready(s) => std::pin::Pin::new(&mut **s)
                .poll_flush(cx)
                .map_err(|e| tls_io_error("send", e)),
            _ => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match &mut this.state {
            StreamState::Ready(s) => std::pin::Pin::new(&mut **s)
                .poll_shutdown(cx)
                .map_err(|e| tls_io_error("shutdown", e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Converts an `io::Error` from a TLS stream: a rustls error inside becomes
/// [`ErrorKind::Tls`] with a clear message; anything else is [`Error::from_io`] for `op`.
pub fn from_io(op: &'static str, err: io::Error) -> Error {
    if let Some(e) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_error(e);
    }
    if err.kind() == io::ErrorKind::InvalidData && err.raw_os_error().is_none() {
        return Error::tls(format!("{err}"));
    }
    Error::from_io(op, err)
}

/// The [`ErrorKind::Tls`] error for a rustls error, worded for a person:
/// `certificate verify failed: unknown issuer`, `... name mismatch`, `... certificate has
/// expired`, `peer sent alert: handshake failure`, `peer does not speak TLS ...`.
pub fn tls_error(err: &rustls::Error) -> Error {
    use rustls::Error as E;
    let message = match err {
        E::InvalidCertificate(c) => format!("certificate verify failed: {}", cert_error_text(c)),
        E::AlertReceived(alert) => {
            let hint = match alert {
                rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::CertificateUnknown => {
                    " (the peer does not trust our certificate)"
                }
                rustls::AlertDescription::NoApplicationProtocol => " (no common ALPN protocol)",
                rustls::AlertDescription::ProtocolVersion => " (no common protocol version)",
                // TLS 1.2 servers also send it to a client without a required certificate
                rustls::AlertDescription::HandshakeFailure => {
                    " (no common protocol version or cipher suite, or the server requires a \
                     client certificate: --cert/--key)"
                }
                _ => "",
            };
            format!("peer sent alert: {}{hint}", debug_words(alert))
        }
        E::InvalidMessage(why) => format!(
            "peer does not speak TLS (or sent a corrupt record: {})",
            debug_words(why)
        ),
        E::InappropriateMessage { got_type, .. } => format!(
            "peer does not speak TLS (or sent an unexpected {} record)",
            debug_words(got_type)
        ),
        E::InappropriateHandshakeMessage { got_type, .. } => format!(
            "peer sent an unexpected handshake message: {}",
            debug_words(got_type)
        ),
        E::PeerIncompatible(why) => format!("peer is incompatible: {}", debug_words(why)),
        E::PeerMisbehaved(why) => format!("peer misbehaved: {}", debug_words(why)),
        E::InvalidCertRevocationList(why) => {
            format!("invalid certificate revocation list: {}", debug_words(why))
        }
        E::InvalidEncryptedClientHello(why) => {
            format!("encrypted client hello failed: {}", debug_words(why))
        }
        E::InconsistentKeys(why) => format!(
            "certificate and private key do not match: {}",
            debug_words(why)
        ),
        E::NoCertificatesPresented => "peer sent no certificate".to_string(),
        // The remaining variants' own texts are plain words already.
        other => other.to_string(),
    };
    Error::new(ErrorKind::Tls, "tls", None, message)
}

/// A fieldless enum's `Debug` name in words, for the rustls and webpki reasons whose
/// `Display` is their `Debug` text: `NoCipherSuitesInCommon` -> `no cipher suites in
/// common`, `UnknownCA` -> `unknown CA`, `Unknown(42)` -> `unknown (42)`. Acronyms stay
/// upper case.
fn debug_words(value: &dyn std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    let (name, rest) = match text.find(|c: char| !c.is_ascii_alphanumeric()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let chars: Vec<char> = name.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && !chars[i - 1].is_ascii_uppercase();
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
        if c.is_ascii_uppercase() && !word.is_empty() && (prev_lower || (prev_upper && next_lower))
        {
            words.push(std::mem::take(&mut word));
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = words
        .iter()
        .map(|w| {
            if w.len() > 1
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                w.clone()
            } else {
                w.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let rest = rest.trim();
    if !rest.is_empty() {
        out.push(' ');
        out.push_str(rest);
    }
    out
}

/// A certificate name as webpki presents it (its `Debug` text: `DnsName("localhost")`,
/// `IpAddress(127.0.0.1)`), as a person writes it: `localhost`, `127.0.0.1`.
fn presented_name(text: &str) -> &str {
    for prefix in ["DnsName(", "IpAddress(", "UniformResourceIdentifier("] {
        if let Some(inner) = text.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            return inner
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(inner);
        }
    }
    text
}

fn cert_error_text(err: &CertificateError) -> String {
    match err {
        CertificateError::UnknownIssuer => {
            "unknown issuer (the certificate chain does not lead to a trusted root)".to_string()
        }
        CertificateError::NotValidForName => {
            "name mismatch (the certificate is not valid for this host)".to_string()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let want = match expected {
                ServerName::DnsName(d) => d.as_ref().to_string(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                other => format!("{other:?}"),
            };
            format!(
                "name mismatch (the certificate is for {}, not {want})",
                if presented.is_empty() {
                    "no names".to_string()
                } else {
                    presented
                        .iter()
                        .map(|p| presented_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        }
        CertificateError::Expired => "certificate has expired".to_string(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "certificate has expired (valid until {}, now {})",
            utc_date(not_after),
            utc_date(time)
        ),
        CertificateError::NotValidYet => "certificate is not yet valid".to_string(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "certificate is not yet valid (valid from {}, now {})",
            utc_date(not_before),
            utc_date(time)
        ),
        CertificateError::BadSignature => "bad certificate signature".to_string(),
        CertificateError::Revoked => "certificate revoked".to_string(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate not valid for a TLS server".to_string()
        }
        CertificateError::BadEncoding => "malformed certificate (bad DER encoding)".to_string(),
        CertificateError::UnhandledCriticalExtension => {
            "certificate has an unsupported critical extension".to_string()
        }
        CertificateError::UnknownRevocationStatus => {
            "unknown revocation status (no revocation list covers the certificate)".to_string()
        }
        CertificateError::ExpiredRevocationList => {
            "certificate revocation list has expired".to_string()
        }
        CertificateError::ExpiredRevocationListContext { time, next_update } => format!(
            "certificate revocation list has expired (valid until {}, now {})",
            utc_date(next_update),
            utc_date(time)
        ),
        #[allow(deprecated)]
        CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "unsupported certificate signature algorithm".to_string()
        }
        CertificateError::InvalidOcspResponse => "invalid OCSP response".to_string(),
        CertificateError::ApplicationVerificationFailure => {
            "rejected by the application's certificate check".to_string()
        }
        CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(e) => webpki_error_text(e),
            None => other.to_string(),
        },
        // A variant added by a later rustls.
        other => debug_words(other),
    }
}

/// The webpki failures rustls passes on as [`CertificateError::Other`] (their `Display`
/// is their `Debug` name), worded as [`cert_error_text`] words its own.
fn webpki_error_text(err: &webpki::Error) -> String {
    use webpki::Error as W;
    match err {
        W::CaUsedAsEndEntity => {
            "CA certificate used as end-entity certificate (the server presented a CA certificate as its own)"
                .to_string()
        }
        W::EndEntityUsedAsCa => {
            "end-entity certificate used as CA (a server certificate signed another)".to_string()
        }
        W::CertDistrusted => "certificate is distrusted".to_string(),
        W::NameConstraintViolation => {
            "name constraint violation (the issuer may not certify these names)".to_string()
        }
        W::PathLenConstraintViolated => "certificate chain exceeds a path length limit".to_string(),
        W::MaximumPathDepthExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumSignatureChecksExceeded
        | W::MaximumNameConstraintComparisonsExceeded => {
            "certificate chain too long or too complex to verify".to_string()
        }
        W::UnsupportedCertVersion => {
            "unsupported certificate version (only X.509 v3 is accepted)".to_string()
        }
        W::UnsupportedCriticalExtension => {
            "certificate has an unsupported critical extension".to_string()
        }
        W::UnsupportedNameType => "certificate has an unsupported name type".to_string(),
        W::SignatureAlgorithmMismatch => {
            "certificate signature algorithm does not match its declaration".to_string()
        }
        W::MalformedExtensions
        | W::ExtensionValueInvalid
        | W::MalformedDnsIdentifier
        | W::MalformedNameConstraint
        | W::InvalidNetworkMaskConstraint
        | W::InvalidSerialNumber
        | W::EmptyEkuExtension => format!("malformed certificate ({})", debug_words(err)),
        other => debug_words(other),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time (Howard Hinnant's civil-from-days).
fn utc_date(t: &UnixTime) -> String {
    let secs = t.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `--insecure`: accepts any certificate chain and name, but still checks that the
/// handshake was signed by the presented key, so the session is at least consistent.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_failure() {
        let e = tls_error(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(e.kind(), ErrorKind::Tls);
        assert!(
            e.to_string()
                .starts_with("tls: certificate verify failed: unknown issuer"),
            "{e}"
        );
        let e = tls_error(&rustls::Error::InvalidCertificate(
            CertificateError::Expired,
        ));
        assert!(e.to_string().contains("expired"), "{e}");
        let e = tls_error(&rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert!(e.to_string().contains("name mismatch"), "{e}");
    }

    #[test]
    fn name_mismatch_shows_plain_names() {
        // Regression: the mismatch text showed `DnsName("localhost")` (Rust debug text).
        let e = tls_error(&rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into()),
                presented: vec![
                    "DnsName(\"localhost\")".to_string(),
                    "IpAddress(::1)".to_string(),
                ],
            },
        ));
        assert!(
            e.to_string()
                .contains("(the certificate is for localhost, ::1, not 127.0.0.1)"),
            "{e}"
        );
    }

    #[test]
    fn ca_used_as_end_entity_is_worded() {
        // Regression: rustls passes this webpki error on as `Other`, printed `CaUsedAsEndEntity`.
        let e = tls_error(&rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(webpki::Error::CaUsedAsEndEntity)),
        )));
        assert_eq!(e.kind(), ErrorKind::Tls);
        assert_eq!(
            e.to_string(),
            "tls: certificate verify failed: CA certificate used as end-entity certificate \
             (the server presented a CA certificate as its own)"
        );
    }

    #[test]
    fn no_rust_debug_names_in_common_failures() {
        let cases = [
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
            rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
            rustls::Error::InvalidCertificate(CertificateError::UnknownRevocationStatus),
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(webpki::Error::UnsupportedCriticalExtension),
            ))),
        ];
        for err in cases {
            let text = tls_error(&err).to_string();
            let camel = text
                .as_bytes()
                .windows(2)
                .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
            assert!(!camel, "{text} (from {err:?})");
        }
        assert_eq!(
            tls_error(&rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            ))
            .to_string(),
            "tls: peer sent alert: unknown CA (the peer does not trust our certificate)"
        );
    }

    #[test]
    fn debug_names_in_words() {
        assert_eq!(
            debug_words(&rustls::AlertDescription::UnknownCA),
            "unknown CA"
        );
        assert_eq!(
            debug_words(&rustls::PeerIncompatible::NoCipherSuitesInCommon),
            "no cipher suites in common"
        );
        assert_eq!(
            debug_words(&rustls::AlertDescription::Unknown(42)),
            "alert description (0x2a)"
        );
        assert_eq!(
            debug_words(&webpki::Error::UnsupportedCriticalExtension),
            "unsupported critical extension"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(
            utc_date(&UnixTime::since_unix_epoch(std::time::Duration::ZERO)),
            "1970-01-01 00:00:00 UTC"
        );
        assert_eq!(
            utc_date(&UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                951_782_400 + 3661
            ))),
            "2000-02-29 01:01:01 UTC"
        );
    }

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
