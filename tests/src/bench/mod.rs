//! `cornetta-bench` subcommands, one module per area; figures come from here, never from
//! timed assertions in tests.

pub mod ledger;
pub mod qr;
pub mod raw_http;
pub mod store;
pub mod widget;
