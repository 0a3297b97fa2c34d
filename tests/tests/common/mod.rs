//! The shared harness (`e2e::harness`), under the name every test file uses.

#![allow(unused_imports)]

pub use e2e::harness::*;
