//! Tests of `sockit` (bench).
