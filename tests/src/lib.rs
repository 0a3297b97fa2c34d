//! Drives the real local stack from outside, for the end-to-end tests and the benchmarks.

pub mod chart;
pub mod former_signer;
pub mod harness;
pub mod issuer;
