//! Tests of `sockit` (scan).
