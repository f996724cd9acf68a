//! Tests of `sockit` (tour).
