//! Tests of `sockit` (lookups).
