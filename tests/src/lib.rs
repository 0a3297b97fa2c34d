//! Drives the real local stack from outside, for the end-to-end tests and the benchmarks.

pub mod harness;
pub mod issuer;
