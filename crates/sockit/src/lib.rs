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
pub mod socket;
pub mod sockopt;
#[doc(hidden)]
pub mod sys;
pub mod tls;
pub mod unix;

pub use addr::{Family, Port, Protocol, SockType};
pub use error::{Error, ErrorKind, Result};
pub use socket::Socket;
