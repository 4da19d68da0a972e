//! Figures for the closing notes, one module per area; `cornetta-bench <area>` runs one.

pub mod qr;
