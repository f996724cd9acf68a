//! Ephemeral certificates: a self-signed certificate and key made at start (rcgen), for a
//! server given `--tls` without `--cert`/`--key` (ncat's `--ssl` without `--ssl-cert`).
//!
//! Contract: a new ECDSA P-256 key and certificate each time; valid from a day before it
//! was made until rcgen's far end of validity (4096), so it never expires during a
//! session (ncat's lasts 60 seconds, nmap/nmap#2167); its subject alternative names are
//! the names and addresses given (the caller passes `localhost` and the bound address).
//! Nothing verifies it: a client compares its SHA-256 fingerprint, which
//! [`Ephemeral::fingerprint`] gives in the `openssl x509 -fingerprint -sha256` format.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};

/// A self-signed certificate and its private key, made in memory.
pub struct Ephemeral {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls::Ephemeral")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// The SHA-256 fingerprint of a DER certificate as OpenSSL prints it: 32 upper-case hex
/// pairs joined by colons (`openssl x509 -fingerprint -sha256` prints
/// `sha256 Fingerprint=` before it).
///
/// # Examples
/// ```
/// let f = sockit::tls::fingerprint_sha256(b"");
/// assert!(f.starts_with("E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8") && f.len() == 95);
/// ```
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Ephemeral {
    /// Makes a key pair and a self-signed certificate for `names` (DNS names or IP
    /// addresses, as subject alternative names; the first is also the common name).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a name rcgen
    /// refuses; [`ErrorKind::Tls`](crate::ErrorKind::Tls) when the key cannot be made
    /// or the certificate signed.
    pub fn generate(names: &[String]) -> Result<Ephemeral> {
        let key = rcgen::KeyPair::generate()
            .map_err(|e| Error::tls(format!("cannot make a key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| Error::invalid_input("tls", format!("certificate names: {e}")))?;
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, first.as_str());
        }
        let yesterday = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        params.not_before = yesterday.into();
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::tls(format!("cannot sign the certificate: {e}")))?;
        Ok(Ephemeral {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        })
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate's SHA-256 fingerprint ([`fingerprint_sha256`]).
    pub fn fingerprint(&self) -> String {
        fingerprint_sha256(&self.cert)
    }

    /// A server configuration presenting this certificate ([`server_config_from`]).
    ///
    /// # Errors
    /// As [`server_config_from`].
    ///
    /// [`server_config_from`]: super::server_config_from
    pub fn server_config(
        &self,
        alpn: &[Vec<u8>],
        client_ca: Option<&std::path::Path>,
    ) -> Result<Arc<ServerConfig>> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        super::server_config_from(vec![self.cert.clone()], key, alpn, client_ca)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_sees_the_certificate_with_its_fingerprint() {
        let e = Ephemeral::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let other = Ephemeral::generate(&["localhost".into()]).unwrap();
        assert_ne!(e.fingerprint(), other.fingerprint(), "a new one each time");
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let config = e.server_config(&[], None).unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            super::super::accept(s, config).await.map(|_| ())
        });
        // The client trusts exactly this certificate (its own root).
        let mut roots = rustls::RootCertStore::empty();
        roots.add(e.certificate().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(super::super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = super::super::connect(tcp, "127.0.0.1", Arc::new(client))
            .await
            .unwrap();
        let seen = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_eq!(fingerprint_sha256(&seen), e.fingerprint());
        server.await.unwrap().unwrap();
    }
}
