//! Cornetta's server: the HTTP API, the consent ledger, QR codes, the console and the CLI.
//!
//! `app(state)` is the whole HTTP application, so tests drive it in-process or bind it to
//! port 0; `cli::run` is what the `cornetta` binary calls.

pub mod assets;
pub mod campaigns;
pub mod cli;
pub mod console;
pub mod consents;
pub mod demo;
pub mod erasure;
pub mod error;
pub mod export;
pub mod http;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod notice;
pub mod qr;
pub mod receipt;
pub mod sites;
pub mod state;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod widget_settings;
pub mod whatsapp;

pub use http::app;
