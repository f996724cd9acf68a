//! Command-line arguments shared by the subcommands: clap groups ([`groups`]), value
//! parsers ([`parse`]), local stdio ([`stdio`]) and the one text of an error about a
//! server's address ([`address`]).

pub mod address;
pub mod groups;
pub mod parse;
pub mod stdio;

pub use address::{address_error, bad_address};
pub use groups::*;
pub use parse::*;
pub use stdio::*;
