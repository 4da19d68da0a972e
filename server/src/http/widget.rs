//! The widget's files: `GET /widget.js` (the loader, short-lived cache) and
//! `GET /widget/{file}` (content-hashed glue and wasm, cached for a year).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::assets::LOADER;
use crate::error::ApiError;
use crate::http::ApiPath;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/widget.js", get(loader)).route("/widget/{file}", get(file))
}

async fn loader(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.assets.get(LOADER) {
        Some(asset) => asset.respond(&headers, "public, max-age=300"),
        None => {
            // Still valid JavaScript, so the page's console says what is wrong.
            let why = state.assets.missing().unwrap_or("the widget is not built").replace('\\', "\\\\").replace('"', "\\\"");
            let body = format!("console.error(\"Cornetta: {why}\");\n");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
                ],
                body,
            )
                .into_response()
        }
    }
}

async fn file(State(state): State<AppState>, headers: HeaderMap, ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    match state.assets.get(&name).filter(|_| name != LOADER) {
        Some(asset) => Ok(asset.respond(&headers, "public, max-age=31536000, immutable")),
        None => Err(ApiError::NotFound(format!("no widget file {:?}", name.chars().take(80).collect::<String>()))),
    }
}
