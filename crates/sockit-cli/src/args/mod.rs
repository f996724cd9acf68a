//! Command-line arguments shared by the subcommands: clap groups ([`groups`], the servers'
//! [`server`], TLS's [`tls`]), value parsers ([`parse`]), local stdio ([`stdio`]) and the
//! one text of an error about a server's address ([`address`]).

pub mod address;
pub mod groups;
pub mod parse;
pub mod server;
pub mod stdio;
pub mod tls;

pub use address::{address_error, bad_address};
pub use groups::*;
pub use parse::*;
pub use server::*;
pub use stdio::*;
pub use tls::*;
