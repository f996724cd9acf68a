//! [`Socket`]: a blocking socket with the shape and semantics of Python's `socket.socket`.

/// A socket (being written).
#[derive(Debug)]
pub struct Socket {
    _inner: (),
}
