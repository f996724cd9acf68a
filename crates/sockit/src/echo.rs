//! The echo server (tokio): TCP, UDP and Unix, concurrent and bounded.
