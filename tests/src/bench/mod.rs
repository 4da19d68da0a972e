//! Benchmarks behind `cornetta-bench` (one module per area). Figures come from here, never
//! from timed assertions in tests.

pub mod ledger;
