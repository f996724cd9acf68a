//! One module per subcommand, each with `Args` and `run(args) -> Result<ExitCode>`.
pub mod bench;
pub mod completions;
pub mod connect;
pub mod echo_server;
pub mod forward;
pub mod hostname;
pub mod http;
pub mod listen;
pub mod lookup;
pub mod man;
pub mod protocol;
pub mod proxy;
pub mod resolve;
pub mod scan;
pub mod service;
pub mod tour;
