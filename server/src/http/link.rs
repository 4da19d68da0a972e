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
use crate::qr::{self, Format, Matrix};
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
    margin: Option<String>,
    ecc: Option<String>,
}

/// Reads an integer parameter within a range, naming it and the range when wrong.
fn ranged(name: &str, value: Option<&str>, default: u32, min: u32, max: u32) -> Result<u32, ApiError> {
    let Some(value) = value else { return Ok(default) };
    match value.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "invalid_parameter",
            format!("{name} must be a whole number from {min} to {max}, not {:?}", value.chars().take(20).collect::<String>()),
        )),
    }
}

async fn qr_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> Result<Response, ApiError> {
    state.limits.check(Bucket::PublicRead, ip)?;
    let format = match q.format.as_deref() {
        None => Format::Svg,
        Some(f) => Format::parse(f).ok_or_else(|| ApiError::invalid("invalid_parameter", format!("format must be svg or png, not {:?}", f.chars().take(20).collect::<String>())))?,
    };
    let size = ranged("size", q.size.as_deref(), qr::DEFAULT_SIZE_PX, qr::MIN_SIZE_PX, qr::MAX_SIZE_PX)?;
    let margin = ranged("margin", q.margin.as_deref(), qr::DEFAULT_MARGIN, 0, qr::MAX_MARGIN)?;
    let ecc = match q.ecc.as_deref() {
        None => qrcode::EcLevel::M,
        Some(e) => qr::parse_ecc(e).ok_or_else(|| ApiError::invalid("invalid_parameter", format!("ecc must be one of L, M, Q, H, not {:?}", e.chars().take(20).collect::<String>())))?,
    };
    let phone = parse_phone(&state.settings, q.phone.as_deref(), q.region.as_deref())?;
    let link = make_link(phone, q.text.as_deref())?;
    let etag = {
        let key = format!("v1|{}|{}|{size}|{margin}|{}", link.url(), format.extension(), qr::ecc_name(ecc));
        format!("\"{}\"", &hex::encode(Sha256::digest(key.as_bytes()))[..32])
    };
    let etag = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let cache = HeaderValue::from_static("public, max-age=86400");
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| crate::assets::etag_matches(v, &etag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache)]).into_response());
    }
    let matrix = Matrix::encode(link.url(), ecc).map_err(|e| ApiError::invalid("link_too_long_for_qr", e.to_string()))?;
    let body = match format {
        Format::Svg => matrix.to_svg(margin, size).into_bytes(),
        Format::Png => matrix.to_png(margin, size).map_err(|e| ApiError::invalid("invalid_parameter", e.to_string()))?,
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(format.content_type())),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        ],
        body,
    )
        .into_response())
}
