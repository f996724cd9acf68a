//! Raw HTTP/1.x over a socket: request bytes out, response head parsed with httparse, framing.
