//! The one text of an error about an address a server was given (QA D12): every server
//! says the same thing for the same input.
//!
//! - A bad address names the argument and the address as given:
//!   `listen address 127.0.0.1:99999: port must be 0-65535, not 99999`
//!   (`--metrics 127.0.0.1:99999: …` for the metrics endpoint).
//! - A failed call on it names the call and the address: `bind 1.2.3.4:80: [Errno 99]
//!   Cannot assign requested address` (the address bound), `getaddrinfo nosuch:80:
//!   [Errno -2] Name or service not known` (the address as given); for an endpoint other
//!   than the listen address the flag comes with the address:
//!   `bind --metrics 127.0.0.1:9090: [Errno 98] Address already in use`.
//!
//! Under `--json` the error object's `op` is the call (`bind`, `getaddrinfo`) or, for a
//! bad address, the argument (`listen address`); the address is in its `message`.

use sockit::{Error, ErrorKind};

/// The argument every server takes its own address from.
pub const LISTEN_ADDRESS: &str = "listen address";

/// Names an error that parsing `text`, the address given for `flag` (`None`: the listen
/// address), ended with: every such error is about the address.
pub fn bad_address(flag: Option<&str>, text: &str, e: Error) -> Error {
    // an empty value is shown as one (`listen address "": empty port`)
    let text = if text.is_empty() { "\"\"" } else { text };
    let e = match e.place() {
        Some(_) => e,
        None => e.at(text),
    };
    address_error(flag, text, e)
}

/// Names an error of binding the address `text` given for `flag` (`None`: the listen
/// address), as the module docs say. An error that names no place (the library's errors
/// of the address rule and of `bind(2)` do) is not about the address and passes as it is.
pub fn address_error(flag: Option<&str>, text: &str, e: Error) -> Error {
    let Some(place) = e.place().map(str::to_string) else {
        return e;
    };
    // No address given (the default one): the address the library tried.
    let text = if text.is_empty() {
        place.as_str()
    } else {
        text
    };
    let flagged = |at: &str| match flag {
        Some(flag) => format!("{flag} {at}"),
        None => at.to_string(),
    };
    match e.kind() {
        ErrorKind::InvalidInput => e
            .with_op(flag.unwrap_or(LISTEN_ADDRESS).to_string())
            .at(text),
        // The lookup of the address as given.
        ErrorKind::Gai => {
            let at = flagged(text);
            e.at(at)
        }
        // A call on the address the library tried (bind: the address bound).
        _ => e.at(flagged(&place)),
    }
}

/// The words of an address argument as one text (`127.0.0.1 80`, `127.0.0.1:80`).
pub fn address_text(words: &[String]) -> String {
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_text_per_bad_address() {
        let port = sockit::addr::Port::parse("99999").unwrap_err();
        assert_eq!(
            bad_address(None, "127.0.0.1:99999", port.clone()).to_string(),
            "listen address 127.0.0.1:99999: port must be 0-65535, not 99999"
        );
        assert_eq!(
            bad_address(Some("--metrics"), "127.0.0.1:99999", port).to_string(),
            "--metrics 127.0.0.1:99999: port must be 0-65535, not 99999"
        );
        let bind = Error::from_errno("bind", libc::EADDRNOTAVAIL).at("1.2.3.4:80");
        let e = address_error(None, "1.2.3.4:80", bind.clone());
        assert_eq!(
            e.to_string(),
            "bind 1.2.3.4:80: [Errno 99] Cannot assign requested address"
        );
        assert_eq!(e.op(), "bind");
        assert_eq!(
            address_error(Some("--metrics"), "1.2.3.4:80", bind).to_string(),
            "bind --metrics 1.2.3.4:80: [Errno 99] Cannot assign requested address"
        );
        let gai = Error::gai("getaddrinfo", libc::EAI_NONAME).at("nosuch:80");
        assert_eq!(
            address_error(None, "nosuch 80", gai).to_string(),
            "getaddrinfo nosuch 80: [Errno -2] Name or service not known"
        );
        // not about the address: unchanged
        let ttl = Error::invalid_input("setsockopt(IP_TTL)", "ttl must be 1-255, not 300");
        assert_eq!(address_error(None, "x", ttl.clone()), ttl);
    }
}
