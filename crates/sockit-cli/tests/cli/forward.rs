//! Tests of `sockit` (forward).
