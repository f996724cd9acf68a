//! TLS with rustls (ring backend): client and server configurations, server names, and
//! the mapping of TLS failures to [`ErrorKind::Tls`] with clear messages.
//!
//! Python: the `ssl` module (`ssl.create_default_context()`, `SSLContext.wrap_socket`).
//!
//! The module's parts: `config` (what a client trusts, what a server presents: PEM
//! files, roots, [`client_config`], [`server_config`]), `verify` (the certificate
//! checks: trust anchors as curl has them, `--insecure`), `stream` (handshakes and
//! [`Stream`] on tokio), `errors` (TLS failures worded for a person: [`tls_error`]) and
//! `ephemeral` (a self-signed certificate made at start: [`Ephemeral`]).
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
//! [`Error`]: crate::Error
//! [`ErrorKind::Tls`]: crate::ErrorKind::Tls
//! [`ErrorKind::Os`]: crate::ErrorKind::Os
//! [`ErrorKind::InvalidInput`]: crate::ErrorKind::InvalidInput

mod config;
mod ephemeral;
mod errors;
mod stream;
mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use config::{
    ClientOptions, Identity, MAX_PEM_FILE, RootsSource, SessionInfo, client_config, load_certs,
    load_key, root_store, server_config, server_config_from, server_name,
};
pub use ephemeral::{Ephemeral, fingerprint_sha256};
pub use errors::{from_io, tls_error};
pub use rustls;
pub use stream::{Stream, accept, connect};
pub use tokio_rustls;

/// The ALPN protocol id of HTTP/1.1 (RFC 7301).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider every configuration uses: rustls's ring backend.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
