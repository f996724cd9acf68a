//! The one error type of the library, shaped like Python's socket exception tree.
//!
//! Every fallible function returns [`Result<T>`]; the [`Error`] carries the
//! [`ErrorKind`] (which Python exception it corresponds to), the operation that
//! failed (`"connect"`, `"getaddrinfo"`), the numeric code where one exists (errno,
//! EAI code or h_errno) and the C library's message for it. Its `Display` is the
//! operation followed by Python's text, so a learner sees the same words:
//!
//! ```
//! use sockit::{Error, ErrorKind};
//! let e = Error::from_errno("connect", libc::ECONNREFUSED);
//! assert_eq!(e.kind(), ErrorKind::Os);
//! assert_eq!(e.to_string(), "connect: [Errno 111] Connection refused");
//! assert_eq!(Error::timeout("accept").to_string(), "accept: timed out");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::io;

/// Which Python exception an [`Error`] corresponds to.
///
/// The CLI maps each kind to its exit code (DESIGN.md): Os 1, InvalidInput 2, Gai 3,
/// Host 4, Timeout 5, Tls 6, Protocol 7, Proxy 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `OSError` (`socket.error`): a system call failed; `code` is the errno when there
    /// is one (`getservbyport`'s "port/proto not found" has none, as in Python).
    Os,
    /// `ValueError` / `OverflowError`: an argument was refused before any system call.
    InvalidInput,
    /// `socket.gaierror`: `getaddrinfo(3)`/`getnameinfo(3)` failed; `code` is the EAI code.
    Gai,
    /// `socket.herror`: an address lookup failed; `code` is the h_errno value.
    Host,
    /// `socket.timeout` (`TimeoutError`): a deadline expired.
    Timeout,
    /// `ssl.SSLError`: the TLS handshake or record layer failed.
    Tls,
    /// No Python counterpart: the peer's bytes were not what the protocol allows.
    Protocol,
    /// No Python counterpart: a proxy refused the request or failed to carry it out
    /// (`proxy: SOCKS5 reply 5: connection refused by destination`); `code` is the
    /// proxy's reply code (SOCKS5 `REP`, SOCKS4 `CD`, the HTTP status) when it sent one.
    Proxy,
}

impl ErrorKind {
    /// The short lower-case name used in JSON output (`"os"`, `"gai"`, `"timeout"` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Os => "os",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Gai => "gai",
            ErrorKind::Host => "host",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Proxy => "proxy",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed socket operation: `{ kind, op, code, message }`, and where it was tried
/// ([`Error::at`]: an address or a path), if that was said.
///
/// `Display` prints `op: ` (`op AT: ` with a place) and then Python's text for the
/// exception: `[Errno N] message` when there is a code (Os, Gai, Host), `timed out` for
/// Timeout, and the bare message otherwise: `bind 127.0.0.1:80: [Errno 13] Permission
/// denied`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}{}: {}", self.at.as_deref().map(|a| format!(" {a}")).unwrap_or_default(), self.python_text())]
pub struct Error {
    kind: ErrorKind,
    op: Cow<'static, str>,
    code: Option<i32>,
    message: String,
    at: Option<String>,
}

/// `Result<T, sockit::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an error from its four parts.
    pub fn new(
        kind: ErrorKind,
        op: impl Into<Cow<'static, str>>,
        code: Option<i32>,
        message: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            op: op.into(),
            code,
            message: message.into(),
            at: None,
        }
    }

    /// An [`ErrorKind::Os`] error for `errno`, with the C library's `strerror(3)` text.
    pub fn from_errno(op: impl Into<Cow<'static, str>>, errno: i32) -> Self {
        Error::new(ErrorKind::Os, op, Some(errno), crate::sys::strerror(errno))
    }

    /// Converts an `io::Error` from a system call: its errno is kept (kind Os); an error
    /// without errno keeps its text; `TimedOut` without errno becomes [`ErrorKind::Timeout`];
    /// an `io::Error` that wraps a sockit `Error` gives that error back unchanged.
    pub fn from_io(op: impl Into<Cow<'static, str>>, err: io::Error) -> Self {
        // An io::Error made from a sockit Error (`From<Error> for io::Error`, e.g. a TLS
        // failure inside a stream) gives that error back, kind and all.
        if err.raw_os_error().is_none()
            && let Some(inner) = err.get_ref().and_then(|i| i.downcast_ref::<Error>())
        {
            return inner.clone();
        }
        match err.raw_os_error() {
            Some(errno) => Error::from_errno(op, errno),
            None if err.kind() == io::ErrorKind::TimedOut => Error::timeout(op),
            None if err.kind() == io::ErrorKind::InvalidInput => {
                Error::invalid_input(op, err.to_string())
            }
            None => Error::new(ErrorKind::Os, op, None, err.to_string()),
        }
    }

    /// The last OS error (`errno`) for `op`.
    pub fn last_os_error(op: impl Into<Cow<'static, str>>) -> Self {
        Error::from_io(op, io::Error::last_os_error())
    }

    /// An [`ErrorKind::Timeout`] error: Python's `socket.timeout('timed out')`.
    pub fn timeout(op: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Timeout, op, None, "timed out")
    }

    /// An [`ErrorKind::InvalidInput`] error (Python's `ValueError`/`OverflowError`).
    pub fn invalid_input(op: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, op, None, message)
    }

    /// An [`ErrorKind::Gai`] error for an EAI code, with `gai_strerror(3)`'s text.
    ///
    /// `EAI_SYSTEM` becomes an Os error with the current errno, as in CPython.
    pub fn gai(op: impl Into<Cow<'static, str>>, code: i32) -> Self {
        if code == libc::EAI_SYSTEM {
            return Error::last_os_error(op);
        }
        Error::new(
            ErrorKind::Gai,
            op,
            Some(code),
            crate::sys::gai_strerror(code),
        )
    }

    /// An [`ErrorKind::Host`] error for an h_errno value (`1` is "Unknown host").
    pub fn host(op: impl Into<Cow<'static, str>>, h_errno: i32) -> Self {
        let message = match h_errno {
            1 => "Unknown host",
            2 => "Host name lookup failure",
            3 => "Unknown server error",
            4 => "No address associated with name",
            _ => "Resolver internal error",
        };
        Error::new(ErrorKind::Host, op, Some(h_errno), message)
    }

    /// An [`ErrorKind::Tls`] error; the operation is `tls`.
    pub fn tls(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Tls, "tls", None, message)
    }

    /// An [`ErrorKind::Protocol`] error: the peer's bytes broke the protocol `op` speaks.
    pub fn protocol(op: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, op, None, message)
    }

    /// An [`ErrorKind::Proxy`] error: the proxy refused or failed; the operation is
    /// `proxy`, and `code` the proxy's reply code when there is one. `Display` is
    /// `proxy: MESSAGE` (no `[Errno …]`: the code is the proxy's, not the system's).
    pub fn proxy(code: Option<i32>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Proxy, "proxy", code, message)
    }

    /// Which Python exception this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed, e.g. `"connect"`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The errno, EAI code or h_errno, where one exists.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The C library's text for the code (or the library's own message).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the operation was tried (an address, a path), as [`Error::at`] set it.
    pub fn place(&self) -> Option<&str> {
        self.at.as_deref()
    }

    /// The same error, saying where the operation was tried: `at` (an address or a
    /// path, as the user wrote or the server bound it) follows the operation in
    /// `Display` (`bind 127.0.0.1:80: [Errno 13] Permission denied`); the operation
    /// itself stays the call's name.
    pub fn at(mut self, at: impl Into<String>) -> Self {
        self.at = Some(at.into());
        self
    }

    /// The same error with another operation name (`"recv"` → `"echo recv"`).
    pub fn with_op(mut self, op: impl Into<Cow<'static, str>>) -> Self {
        self.op = op.into();
        self
    }

    /// Python's `str()` of the exception, without the operation:
    /// `[Errno 111] Connection refused`, `timed out`, `port must be 0-65535.`
    pub fn python_text(&self) -> String {
        match (self.kind, self.code) {
            (ErrorKind::Os | ErrorKind::Gai | ErrorKind::Host, Some(code)) => {
                format!("[Errno {code}] {}", self.message)
            }
            _ => self.message.clone(),
        }
    }

    /// True when this is an Os error with the given errno.
    pub fn is_errno(&self, errno: i32) -> bool {
        self.kind == ErrorKind::Os && self.code == Some(errno)
    }
}

/// Serialised as the JSON vocabulary's error object:
/// `{"kind":"os","op":"connect","code":111,"message":"connect: [Errno 111] Connection refused"}`
/// (`message` is the whole `Display` text).
impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Error", 4)?;
        st.serialize_field("kind", self.kind.as_str())?;
        st.serialize_field("op", &*self.op)?;
        st.serialize_field("code", &self.code)?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match (e.kind, e.code) {
            (ErrorKind::Os, Some(errno)) => io::Error::from_raw_os_error(errno),
            (ErrorKind::Timeout, _) => io::Error::new(io::ErrorKind::TimedOut, e),
            (ErrorKind::InvalidInput, _) => io::Error::new(io::ErrorKind::InvalidInput, e),
            _ => io::Error::other(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_op_then_python_text() {
        assert_eq!(
            Error::from_errno("connect", libc::ECONNREFUSED).to_string(),
            "connect: [Errno 111] Connection refused"
        );
        assert_eq!(
            Error::gai("getaddrinfo", libc::EAI_NONAME).to_string(),
            "getaddrinfo: [Errno -2] Name or service not known"
        );
        assert_eq!(
            Error::host("gethostbyaddr", 1).to_string(),
            "gethostbyaddr: [Errno 1] Unknown host"
        );
        assert_eq!(Error::timeout("accept").to_string(), "accept: timed out");
        let refused = Error::proxy(Some(5), "SOCKS5 reply 5: connection refused by destination");
        assert_eq!(
            refused.to_string(),
            "proxy: SOCKS5 reply 5: connection refused by destination"
        );
        assert_eq!(
            (refused.kind().as_str(), refused.code()),
            ("proxy", Some(5))
        );
        assert_eq!(
            Error::invalid_input("getservbyport", "port must be 0-65535.").to_string(),
            "getservbyport: port must be 0-65535."
        );
    }

    #[test]
    fn io_errors_keep_errno() {
        let e = Error::from_io("recv", io::Error::from_raw_os_error(libc::EAGAIN));
        assert!(e.is_errno(libc::EAGAIN));
        assert_eq!(e.message(), "Resource temporarily unavailable");
        let back: io::Error = e.into();
        assert_eq!(back.raw_os_error(), Some(libc::EAGAIN));
    }

    #[test]
    fn io_errors_carrying_a_sockit_error_give_it_back() {
        let tls = Error::tls("certificate verify failed: unknown issuer");
        let wrapped: io::Error = tls.clone().into();
        assert_eq!(Error::from_io("recv", wrapped), tls);
        let t: io::Error = Error::timeout("connect").into();
        assert_eq!(Error::from_io("recv", t), Error::timeout("connect"));
    }
}
