//! TLS failures as [`ErrorKind::Tls`] errors worded for a person: the rustls and webpki
//! reasons in words, certificate names and dates as people write them.
//!
//! [`ErrorKind::Tls`]: crate::ErrorKind::Tls

use std::io;

use rustls::CertificateError;
use rustls::pki_types::{ServerName, UnixTime};

use crate::error::{Error, ErrorKind};

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
}
