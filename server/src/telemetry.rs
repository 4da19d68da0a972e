//! Logging: `tracing` to stderr, filtered by `CORNETTA_LOG` (or `RUST_LOG`). Spans carry
//! paths, never query strings or bodies, and phone numbers only masked.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("CORNETTA_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,sqlx=warn,tower_http=warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
