//! Tests of `sockit` (http).
