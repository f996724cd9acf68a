//! The load generator: ping-pong and stream, TCP and UDP, with an HDR histogram.
