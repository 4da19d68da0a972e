//! `GET /v1/link` and `GET /v1/qr`: a wa.me link for a number and message, and its QR code.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cornetta_shared::api::LinkResponse;
use cornetta_shared::link::LinkError;
use cornetta_shared::{PhoneNumber, Region, WaLink};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ApiJson, ApiQuery, ClientIp};
use crate::error::ApiError;
use crate::limits::Bucket;
use crate::qr::options::RawOptions;
use crate::qr::{Format, QrError, RenderOptions};
use crate::state::{AppState, Settings};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/link", get(link)).route("/v1/qr", get(qr_code))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkQuery {
    phone: Option<String>,
    text: Option<String>,
    region: Option<String>,
}

/// Parses `phone` (with `region`, or the configured default, for national formats).
pub(crate) fn parse_phone(settings: &Settings, phone: Option<&str>, region: Option<&str>) -> Result<PhoneNumber, ApiError> {
    let phone = phone.ok_or_else(|| ApiError::invalid("missing_phone", "the phone parameter is required, e.g. phone=+393331234567"))?;
    let region = match region.filter(|r| !r.is_empty()) {
        Some(r) => Some(Region::parse(r).map_err(|e| ApiError::invalid("invalid_region", e.to_string()))?),
        None => settings.default_region,
    };
    PhoneNumber::parse(phone, region).map_err(|e| ApiError::invalid("invalid_phone", e.to_string()))
}

pub(crate) fn make_link(phone: PhoneNumber, text: Option<&str>) -> Result<WaLink, ApiError> {
    WaLink::new(phone, text).map_err(|e| match e {
        LinkError::TextTooLong { .. } => ApiError::invalid("text_too_long", e.to_string()),
        LinkError::UrlTooLong { .. } => ApiError::invalid("link_too_long", e.to_string()),
    })
}

async fn link(State(state): State<AppState>, ClientIp(ip): ClientIp, ApiQuery(q): ApiQuery<LinkQuery>) -> Result<ApiJson<LinkResponse>, ApiError> {
    state.limits.check(Bucket::PublicRead, ip)?;
    let phone = parse_phone(&state.settings, q.phone.as_deref(), q.region.as_deref())?;
    let link = make_link(phone, q.text.as_deref())?;
    Ok(ApiJson(LinkResponse { url: link.url().to_owned(), phone: link.phone().to_string() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QrQuery {
    phone: Option<String>,
    text: Option<String>,
    region: Option<String>,
    format: Option<String>,
    size: Option<String>,
    dpi: Option<String>,
    margin: Option<String>,
    ecc: Option<String>,
    fg: Option<String>,
    bg: Option<String>,
    label: Option<String>,
}

/// The print options every QR route takes: `format`, `size` (px, or `3cm`/`30mm`/`1in`),
/// `dpi`, `margin`, `ecc`, `fg`, `bg`, `label`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenderQuery {
    pub(crate) format: Option<String>,
    pub(crate) size: Option<String>,
    pub(crate) dpi: Option<String>,
    pub(crate) margin: Option<String>,
    pub(crate) ecc: Option<String>,
    pub(crate) fg: Option<String>,
    pub(crate) bg: Option<String>,
    pub(crate) label: Option<String>,
}

impl RenderQuery {
    pub(crate) fn raw(&self) -> RawOptions<'_> {
        RawOptions {
            format: self.format.as_deref(),
            size: self.size.as_deref(),
            dpi: self.dpi.as_deref(),
            margin: self.margin.as_deref(),
            ecc: self.ecc.as_deref(),
            fg: self.fg.as_deref(),
            bg: self.bg.as_deref(),
            label: self.label.as_deref(),
        }
    }

    /// Parsed options; a wrong one is a 422 naming the parameter.
    pub(crate) fn options(&self) -> Result<RenderOptions, ApiError> {
        RenderOptions::parse(&self.raw(), Format::Svg).map_err(|e| ApiError::invalid("invalid_parameter", e.message))
    }
}

async fn qr_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> Result<Response, ApiError> {
    state.limits.check(Bucket::PublicRead, ip)?;
    let render = RenderQuery { format: q.format, size: q.size, dpi: q.dpi, margin: q.margin, ecc: q.ecc, fg: q.fg, bg: q.bg, label: q.label };
    let options = render.options()?;
    let phone = parse_phone(&state.settings, q.phone.as_deref(), q.region.as_deref())?;
    let link = make_link(phone, q.text.as_deref())?;
    qr_response(&headers, link.url(), &options, None)
}

/// The image of `data` with `options`: a strong ETag over both (an identical request is
/// answered 304 without drawing), a day of caching, and `download` as the attachment's
/// file name when given.
pub(crate) fn qr_response(headers: &HeaderMap, data: &str, options: &RenderOptions, download: Option<&str>) -> Result<Response, ApiError> {
    let etag = {
        let key = format!("v2|{data}|{}", options.cache_key());
        format!("\"{}\"", &hex::encode(Sha256::digest(key.as_bytes()))[..32])
    };
    let etag = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let cache = HeaderValue::from_static("public, max-age=86400");
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| crate::assets::etag_matches(v, &etag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache)]).into_response());
    }
    let rendered = options.render(data).map_err(|e| match e {
        QrError::TooLong { .. } => ApiError::invalid("link_too_long_for_qr", e.to_string()),
        other => ApiError::invalid("invalid_parameter", other.to_string()),
    })?;
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(rendered.format.content_type())),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
        rendered.bytes,
    )
        .into_response();
    if let Some(name) = download {
        let value = format!("attachment; filename=\"{}.{}\"", name.replace(['"', '\\'], ""), rendered.format.extension());
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}
