//! Cornetta's domain: validated types shared by the server and the wasm widget.
//!
//! A value of these types is valid by construction; parsing is the only way in. This crate
//! never depends on axum, sqlx or leptos.

pub mod api;
pub mod consent;
pub mod link;
pub mod phone;
pub mod widget;

pub use consent::{Action, EventId, Lang, Method, NoticeId, Purpose, Reference, SiteKey};
pub use link::WaLink;
pub use phone::{PhoneError, PhoneNumber, Region};
