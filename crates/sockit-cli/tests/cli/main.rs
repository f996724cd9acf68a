//! The one integration test binary: runs the built `sockit` against real peers on loopback.
//!
//! Every test binds 127.0.0.1 or ::1 with port 0, bounds every wait, and kills what it
//! starts. Modules are split by subcommand so they can grow independently.

mod common;
mod daemons;
mod peers;

mod bench;
mod connect;
mod data;
mod echo;
mod forward;
mod http;
mod http_curl;
mod listen;
mod lookups;
mod ncat;
mod ops;
mod proxy;
mod scan;
mod servers;
mod splice;
mod tour;
mod tunnels;
