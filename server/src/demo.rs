//! The example shop page, served on its own address so that it is another origin than the
//! API, exactly as a merchant's site is. `{{CORNETTA_URL}}` and `{{SITE_KEY}}` in its HTML
//! files become this server's URL and the default site's key.
//!
//! Under `/csp/` the same files come with the strict Content-Security-Policy of a careful
//! merchant (the widget README's directives), and under `/csp-no-wasm/` with the same policy
//! lacking `'wasm-unsafe-eval'`, where the widget must fall back to a plain link.

use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

#[derive(Debug, Clone)]
struct Demo {
    dir: PathBuf,
    api_url: String,
    site_key: String,
}

pub async fn router(state: &AppState, dir: &Path) -> anyhow::Result<Router> {
    let site = state.store.list_sites().await?.into_iter().next().context("the database has no site for the example page")?;
    let demo = Demo { dir: dir.to_owned(), api_url: state.settings.public_url.clone(), site_key: site.key.to_string() };
    Ok(Router::new()
        .route("/", get(index))
        .route("/csp/", get(strict_index))
        .route("/csp-no-wasm/", get(no_wasm_index))
        .route("/{*path}", get(file))
        .with_state(demo))
}

/// The policy a site with Cornetta at `api` needs: the strict policy
/// (`default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'`) plus the
/// Cornetta origin where the widget loads from it (script, fetch, the QR image).
fn policy(api: &str, wasm: bool) -> String {
    let eval = if wasm { " 'wasm-unsafe-eval'" } else { "" };
    format!("default-src 'self' {api}; script-src 'self'{eval} {api}; style-src 'self'")
}

#[derive(Debug, Clone, Copy)]
enum Csp {
    None,
    Strict,
    NoWasm,
}

async fn index(State(demo): State<Demo>) -> Response {
    serve(&demo, "index.html", Csp::None).await
}

async fn strict_index(State(demo): State<Demo>) -> Response {
    serve(&demo, "index.html", Csp::Strict).await
}

async fn no_wasm_index(State(demo): State<Demo>) -> Response {
    serve(&demo, "index.html", Csp::NoWasm).await
}

async fn file(State(demo): State<Demo>, UrlPath(path): UrlPath<String>) -> Response {
    if let Some(rest) = path.strip_prefix("csp/") {
        serve(&demo, rest, Csp::Strict).await
    } else if let Some(rest) = path.strip_prefix("csp-no-wasm/") {
        serve(&demo, rest, Csp::NoWasm).await
    } else {
        serve(&demo, &path, Csp::None).await
    }
}

async fn serve(demo: &Demo, path: &str, csp: Csp) -> Response {
    if path.split('/').any(|part| part == ".." || part.starts_with('.')) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let full = demo.dir.join(path);
    let full = if full.is_dir() { full.join("index.html") } else { full };
    let Ok(bytes) = tokio::fs::read(&full).await else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let name = full.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let content_type = crate::assets::content_type(name);
    let body = if name.ends_with(".html") {
        String::from_utf8_lossy(&bytes).replace("{{CORNETTA_URL}}", &demo.api_url).replace("{{SITE_KEY}}", &demo.site_key).into_bytes()
    } else {
        bytes
    };
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        body,
    )
        .into_response();
    let policy = match csp {
        Csp::None => None,
        Csp::Strict => Some(policy(&demo.api_url, true)),
        Csp::NoWasm => Some(policy(&demo.api_url, false)),
    };
    if let Some(value) = policy.and_then(|p| HeaderValue::from_str(&p).ok()) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}
