//! Tests of `sockit` (listen).
