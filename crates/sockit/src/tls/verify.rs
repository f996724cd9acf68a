//! Server certificate checks: webpki's, with curl's trust anchors and words on top
//! ([`Verifier`]), and `--insecure`'s ([`AcceptAnyServerCert`]).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore};

use crate::error::{Error, Result};

/// The verifier of a client that verifies: rustls's webpki verifier (chain to a trusted
/// root, validity dates, the server's name), and two things curl (OpenSSL) does on top:
///
/// - **Trust anchors as they are.** A server certificate that is itself one of the
///   `--cacert` certificates (byte for byte) is trusted as the server's certificate: when
///   it is marked CA (`basicConstraints CA:TRUE`, which OpenSSL 3's `req -x509` sets), and
///   when it is a leaf whose issuer is not in the file (the server's own certificate given
///   as `--cacert`). webpki refuses both (a CA certificate as an end entity; an unknown
///   issuer); OpenSSL (`X509_V_FLAG_PARTIAL_CHAIN`, which curl sets) and curl accept a
///   trusted certificate as a chain of one. Its dates are still checked (webpki checks
///   them before the CA mark and the issuer), and so is its name. Every other certificate
///   is verified fully.
/// - **Words.** An untrusted certificate that signed itself (issuer = subject, nothing
///   else presented) is `self-signed certificate`, as OpenSSL says, not `unknown issuer`.
#[derive(Debug)]
pub(super) struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    anchors: Vec<CertificateDer<'static>>,
}

impl Verifier {
    /// A verifier for `roots`, trusting the `anchors` certificates as they are.
    pub(super) fn new(
        roots: RootCertStore,
        anchors: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Verifier> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::tls(format!("cannot build the certificate verifier: {e}")))?;
        Ok(Verifier { inner, anchors })
    }
}

/// The error for an untrusted self-signed certificate.
#[derive(Debug)]
struct SelfSigned;

impl std::fmt::Display for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "self-signed certificate (the server's certificate is signed by itself and not \
             trusted: --cacert FILE holding it trusts it)",
        )
    }
}

impl std::error::Error for SelfSigned {}

/// True when the certificate names itself as its issuer (a self-signed certificate).
fn is_self_signed(cert: &CertificateDer<'_>) -> bool {
    webpki::EndEntityCert::try_from(cert).is_ok_and(|c| c.issuer() == c.subject())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let err = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let ca_as_leaf = matches!(
            &err,
            rustls::Error::InvalidCertificate(CertificateError::Other(other))
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                )
        );
        let untrusted = matches!(
            &err,
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            )
        );
        let unknown_issuer = matches!(
            &err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
        match () {
            // webpki checks the dates before the CA mark and the issuer: they are fine here
            _ if (ca_as_leaf || unknown_issuer)
                && self
                    .anchors
                    .iter()
                    .any(|a| a.as_ref() == end_entity.as_ref()) =>
            {
                let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&cert, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            _ if (ca_as_leaf || untrusted)
                && intermediates.is_empty()
                && is_self_signed(end_entity) =>
            {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(SelfSigned)),
                )))
            }
            _ => Err(err),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// `--insecure`: accepts any certificate chain and name, but still checks that the
/// handshake was signed by the presented key, so the session is at least consistent.
#[derive(Debug)]
pub(super) struct AcceptAnyServerCert(pub(super) Arc<CryptoProvider>);

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
    use rustls::pki_types::pem::PemObject;

    use super::*;

    fn cert(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("test certificate")
    }

    const CA_LEAF: &str = include_str!("testdata/ca-leaf.pem");
    const CA_LEAF_EXPIRED: &str = include_str!("testdata/ca-leaf-expired.pem");
    const SELF_SIGNED: &str = include_str!("testdata/self-signed-leaf.pem");
    const OTHER_CA_LEAF: &str = include_str!("testdata/leaf-of-other-ca.pem");
    const OTHER_CA_LEAF_EXPIRED: &str = include_str!("testdata/leaf-of-other-ca-expired.pem");

    /// A verifier trusting `trusted` (a --cacert file with these certificates).
    fn verifier(trusted: &[&str]) -> Verifier {
        let certs: Vec<_> = trusted.iter().map(|p| cert(p)).collect();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(certs.iter().cloned());
        Verifier::new(roots, certs, super::super::provider()).expect("verifier")
    }

    fn verify(v: &Verifier, leaf: &str, name: &str) -> std::result::Result<(), String> {
        let name = ServerName::try_from(name.to_string()).expect("name");
        v.verify_server_cert(&cert(leaf), &[], &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| crate::tls::tls_error(&e).to_string())
    }

    #[test]
    fn a_trusted_ca_marked_certificate_is_accepted_as_the_server_s() {
        // Regression: `openssl req -x509` certificates (CA:TRUE) given with --cacert failed
        // with "CA certificate used as end-entity certificate"; curl accepts them.
        let v = verifier(&[CA_LEAF]);
        assert_eq!(verify(&v, CA_LEAF, "127.0.0.1"), Ok(()));
        // its name is still checked, and so are its dates
        let e = verify(&v, CA_LEAF, "127.0.0.2").unwrap_err();
        assert!(e.contains("name mismatch"), "{e}");
        let v = verifier(&[CA_LEAF_EXPIRED]);
        let e = verify(&v, CA_LEAF_EXPIRED, "127.0.0.1").unwrap_err();
        assert!(e.contains("expired"), "{e}");
        // a CA certificate that is not itself trusted is still refused
        let v = verifier(&[SELF_SIGNED]);
        let e = verify(&v, CA_LEAF, "127.0.0.1").unwrap_err();
        assert!(e.contains("self-signed certificate"), "{e}");
    }

    #[test]
    fn the_server_s_own_leaf_in_cacert_is_trusted_as_it_is() {
        // Regression: `--cacert leaf.pem` holding the server's own CA:FALSE certificate,
        // issued by a CA not in the file, was refused ("unknown issuer"); curl and
        // `openssl s_client -partial_chain` accept it.
        let v = verifier(&[OTHER_CA_LEAF]);
        assert_eq!(verify(&v, OTHER_CA_LEAF, "127.0.0.1"), Ok(()));
        // its name and dates are still checked
        let e = verify(&v, OTHER_CA_LEAF, "127.0.0.2").unwrap_err();
        assert!(e.contains("name mismatch"), "{e}");
        let v = verifier(&[OTHER_CA_LEAF_EXPIRED]);
        let e = verify(&v, OTHER_CA_LEAF_EXPIRED, "127.0.0.1").unwrap_err();
        assert!(e.contains("expired"), "{e}");
        // not in the file: still an unknown issuer
        let v = verifier(&[CA_LEAF]);
        let e = verify(&v, OTHER_CA_LEAF, "127.0.0.1").unwrap_err();
        assert!(e.contains("unknown issuer"), "{e}");
    }

    #[test]
    fn an_untrusted_self_signed_certificate_says_so() {
        // Regression: this said "bad certificate signature" or "unknown issuer"; curl and
        // OpenSSL say "self-signed certificate".
        let v = verifier(&[CA_LEAF]);
        let e = verify(&v, SELF_SIGNED, "127.0.0.1").unwrap_err();
        assert!(
            e.starts_with("tls: certificate verify failed: self-signed certificate"),
            "{e}"
        );
        // trusted, a self-signed end-entity certificate is fine (webpki accepts it)
        let v = verifier(&[SELF_SIGNED, CA_LEAF]);
        assert_eq!(verify(&v, SELF_SIGNED, "127.0.0.1"), Ok(()));
    }
}
