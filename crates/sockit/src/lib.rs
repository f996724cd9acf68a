//! sockit: Python's `socket` module, done right, in Rust.
//!
//! The library behind the `sockit` command. It never prints and never exits the process:
//! every function returns [`Result`], and an [`Error`] carries an [`ErrorKind`] that
//! mirrors Python's exception tree and prints Python's message
//! (`connect: [Errno 111] Connection refused`).
//!
//! # Layers, bottom up
//!
//! | layer | modules | contract |
//! | --- | --- | --- |
//! | system | [`sys`] (hidden) | the only `unsafe` and raw `libc` code (`#![deny(unsafe_code)]` elsewhere) |
//! | errors | [`error`] | one `Error { kind, op, code, message }`; kinds map to exit codes |
//! | addresses and lookups | [`addr`], [`resolve`], [`unix`] | address text ↔ addresses; getaddrinfo and the databases; Unix paths and the stale-aware bind |
//! | sockets | [`socket`], [`sockopt`] | the Python-shaped blocking [`Socket`]; socket options set and read back |
//! | clients | [`client`], [`retry`], [`tls`] | `create_connection`, RFC 8305 `connect_happy`; retries with back-off; rustls configurations |
//! | data paths | [`relay`], [`dump`], [`access`] | half-close and reset aware relays; traffic taps; allow/deny lists |
//! | the server core | [`serve`], [`proxy_protocol`] | bind, admission, sessions, lingering close and abort, drain with a deadline, one event vocabulary; the PROXY protocol header |
//! | servers (modes on the core) | [`echo`], [`forward`], [`proxy`], [`listen`] | the echo server (mio event loops); port forwarding (tokio); SOCKS4/5 and HTTP proxies: the client, the wire codecs, a server's sessions; netcat's listen mode: one peer, `-k`, `--broker`, `--exec` (tokio) |
//! | tools | [`http`], [`mod@bench`], [`scan`] | raw HTTP; the load generator; port scans |
//!
//! Each layer uses only the layers listed before it. What may block and what ends
//! a loop is stated in each module's docs (smoltcp's habit): servers stop through
//! [`serve::Stop`], and every wait of a data path is bounded by an idle timeout, a drain
//! deadline or the peer.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod access;
pub mod addr;
pub mod bench;
pub mod client;
pub mod dump;
pub mod echo;
pub mod error;
pub mod files;
pub mod forward;
pub mod http;
pub mod listen;
pub mod proxy;
pub mod proxy_protocol;
pub mod relay;
pub mod repr;
pub mod resolve;
pub mod retry;
pub mod scan;
pub mod serve;
pub mod socket;
pub mod sockopt;
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod sys;
pub mod tls;
pub mod unix;

pub use addr::{Family, Port, Protocol, SockType};
pub use error::{Error, ErrorKind, Result};
pub use socket::Socket;

/// Helpers shared by the unit tests of several modules.
#[cfg(test)]
pub(crate) mod test_support {
    use std::net::SocketAddr;

    /// A closed TCP port on 127.0.0.1 (connects are refused): a bound socket that does not
    /// listen, held for as long as the returned socket lives, so no parallel test can
    /// listen there meanwhile (as on the port of a dropped listener).
    pub(crate) fn closed_port() -> (socket2::Socket, SocketAddr) {
        let holder =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        holder
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = holder.local_addr().unwrap().as_socket().unwrap();
        (holder, addr)
    }
}
