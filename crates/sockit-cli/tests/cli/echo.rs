//! Tests of `sockit` (echo).
