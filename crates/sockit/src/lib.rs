//! sockit: Python's `socket` module, done right, in Rust.
//!
//! The library behind the `sockit` command: a blocking [`Socket`] with the shape and
//! timeout semantics of Python's `socket.socket`, the lookups of the module
//! ([`resolve`]), and the pieces the command is built from — the concurrent echo server
//! ([`echo`]), stream relays ([`relay`]), client connects ([`client`]), raw HTTP
//! ([`http`]) and the load generator ([`mod@bench`]).
//!
//! Every function returns [`Result`]; an [`Error`] carries an [`ErrorKind`] that mirrors
//! Python's exception tree and prints Python's message
//! (`connect: [Errno 111] Connection refused`). The library never prints and never exits
//! the process.
#![deny(missing_docs)]

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
pub mod relay;
pub mod repr;
pub mod resolve;
pub mod scan;
pub mod serve;
pub mod socket;
pub mod sockopt;
#[doc(hidden)]
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
