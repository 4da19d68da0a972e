//! `GET /healthz`: liveness, and whether the store answers.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::ApiJson;
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

async fn health(State(state): State<AppState>) -> Result<ApiJson<Value>, ApiError> {
    state.store.ping().await?;
    Ok(ApiJson(json!({
        "status": "ok",
        "store": state.store.backend(),
        "widget": state.assets.missing().is_none(),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}
