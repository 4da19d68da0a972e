//! The widget's built files (`cargo xtask widget` writes them to `widget/dist/`), loaded
//! once at start-up and compressed ahead of time with brotli and gzip.
//!
//! `widget.js` (the loader a site owner's script tag names) is served short-lived, so a
//! new release reaches pages within minutes; every other file has a content-hashed name and
//! is cached for a year as immutable.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The loader's name, in the dist directory and in the URL.
pub const LOADER: &str = "widget.js";

/// One file, ready to send in any of its encodings.
#[derive(Debug, Clone)]
pub struct Asset {
    pub content_type: &'static str,
    pub etag: HeaderValue,
    pub raw: Bytes,
    pub gzip: Bytes,
    pub brotli: Bytes,
}

/// The widget's files by name.
#[derive(Debug, Default)]
pub struct Assets {
    files: HashMap<String, Asset>,
    /// Why nothing was loaded, when nothing was.
    missing: Option<String>,
}

impl Assets {
    /// Loads every file of `dir` (not recursive). A missing directory is not an error: the
    /// server still runs, and `/widget.js` explains how to build the widget.
    pub fn load(dir: &Path) -> Self {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                return Self {
                    files: HashMap::new(),
                    missing: Some(format!("the widget is not built ({}: {err}); run `cargo xtask widget`", dir.display())),
                };
            }
        };
        let mut files = HashMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
            if !path.is_file() || name.starts_with('.') {
                continue;
            }
            match std::fs::read(&path) {
                Ok(raw) => {
                    files.insert(name.clone(), Asset::new(content_type(&name), raw));
                }
                Err(err) => tracing::warn!(file = %path.display(), error = %err, "skipping an unreadable widget file"),
            }
        }
        let missing = (!files.contains_key(LOADER))
            .then(|| format!("the widget is not built ({} has no {LOADER}); run `cargo xtask widget`", dir.display()));
        tracing::info!(dir = %dir.display(), files = files.len(), "loaded the widget's files");
        Self { files, missing }
    }

    pub fn get(&self, name: &str) -> Option<&Asset> {
        self.files.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Why the widget cannot be served, if it cannot.
    pub fn missing(&self) -> Option<&str> {
        self.missing.as_deref()
    }
}

impl Asset {
    pub fn new(content_type: &'static str, raw: Vec<u8>) -> Self {
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&raw))[..32]);
        let gzip = {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let _ = enc.write_all(&raw);
            enc.finish().unwrap_or_default()
        };
        let brotli = {
            let mut out = Vec::new();
            let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
            let _ = brotli::BrotliCompress(&mut raw.as_slice(), &mut out, &params);
            out
        };
        Self {
            content_type,
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
            raw: raw.into(),
            gzip: gzip.into(),
            brotli: brotli.into(),
        }
    }

    /// The response for a request with these headers: 304 when the ETag matches, else the
    /// best encoding the client accepts.
    pub fn respond(&self, request: &HeaderMap, cache_control: &'static str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
        // Lets the embedding page's own performance tools (Resource Timing's transferSize,
        // encodedBodySize) see what the widget costs; it reveals nothing but sizes and times.
        headers.insert("timing-allow-origin", HeaderValue::from_static("*"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if request.get(header::IF_NONE_MATCH).is_some_and(|v| etag_matches(v, &self.etag)) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let accepts = |coding: &str| {
            request
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|part| {
                    let mut pieces = part.trim().split(';');
                    let name = pieces.next().unwrap_or("").trim();
                    let refused = pieces.any(|p| p.trim().replace(' ', "") == "q=0");
                    name.eq_ignore_ascii_case(coding) && !refused
                })
        };
        let body = if accepts("br") && self.brotli.len() < self.raw.len() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            self.brotli.clone()
        } else if accepts("gzip") && self.gzip.len() < self.raw.len() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            self.gzip.clone()
        } else {
            self.raw.clone()
        };
        (StatusCode::OK, headers, Body::from(body)).into_response()
    }
}

/// `If-None-Match` may list several tags, or `*`.
pub fn etag_matches(header: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(value) = header.to_str() else { return false };
    let Ok(etag) = etag.to_str() else { return false };
    value.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == etag || t == "*")
}

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("html") => "text/html; charset=utf-8",
        Some("map") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_accepted_encoding_is_chosen() {
        let asset = Asset::new("text/javascript", "console.log('cornetta');".repeat(50).into_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br"));
        let response = asset.respond(&headers, "no-cache");
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "br");
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, br;q=0"));
        assert_eq!(asset.respond(&headers, "no-cache").headers()[header::CONTENT_ENCODING], "gzip");
        headers.remove(header::ACCEPT_ENCODING);
        assert!(asset.respond(&headers, "no-cache").headers().get(header::CONTENT_ENCODING).is_none());
        headers.insert(header::IF_NONE_MATCH, asset.etag.clone());
        assert_eq!(asset.respond(&headers, "no-cache").status(), StatusCode::NOT_MODIFIED);
    }
}
