//! Client connects: Python's `create_connection` and RFC 8305 Happy Eyeballs (`connect_happy`).
