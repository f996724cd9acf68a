//! Relays: stdin/stdout to a socket, and socket to socket (forward), half-close aware.
