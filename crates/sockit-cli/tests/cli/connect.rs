//! Tests of `sockit` (connect).
