//! Command-line arguments shared by the subcommands: clap groups ([`groups`]), value
//! parsers ([`parse`]) and local stdio ([`stdio`]).

pub mod groups;
pub mod parse;
pub mod stdio;

pub use groups::*;
pub use parse::*;
pub use stdio::*;
