//! The one HTTP error type: every failure becomes `{"error": {"code", "message"}}` with the
//! right status. Internal errors are logged and answered with a fixed body, never echoed.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cornetta_shared::api::{ErrorBody, ErrorDetail};

use crate::store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, bad query string).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no or unknown credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: known credentials (or origin) without the right to do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405: a known path asked with a method it does not take; the `Allow` header lists them.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with what is stored.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 412: an `If-Match` naming a version that is no longer the current one.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid (a phone number that does not exist, a size out of range).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// 429.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 503: a part the request needs is not available (e.g. the widget is not built).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 500: our fault. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Invalid { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(err) => {
                // `{:#}` prints the chain; our errors never carry personal data in their text.
                tracing::error!(error = %format!("{err:#}"), "internal error");
                "internal error; the details were logged on the server".to_owned()
            }
            other => {
                tracing::debug!(status = status.as_u16(), code = other.code(), "request refused");
                other.to_string()
            }
        };
        let body = ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message } };
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimited { retry_after_secs } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(message) => Self::conflict("conflict", message),
            StoreError::AlreadyWithdrawn(message) => Self::conflict("already_withdrawn", message),
            StoreError::NotFound(message) => Self::NotFound(message),
            StoreError::Invalid(message) => Self::invalid("invalid", message),
            other => Self::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(err) => {
                // serde's message names the field and what was expected; drop axum's prefix.
                Self::invalid("invalid_body", body_error_text(&err.body_text()))
            }
            JsonRejection::JsonSyntaxError(err) => {
                Self::bad_request("malformed_json", body_error_text(&err.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected a body with Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(err) => {
                if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Self::PayloadTooLarge(format!("request body is larger than the {} byte limit", crate::http::JSON_BODY_LIMIT))
                } else {
                    Self::bad_request("unreadable_body", "the request body could not be read")
                }
            }
            other => Self::bad_request("unreadable_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid("invalid_query", body_error_text(&rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        // A path segment that is not UTF-8 once percent-decoded (`/v1/consents/%FF/receipt`)
        // names no resource; say which part is wrong rather than axum's plain-text answer.
        Self::bad_request("invalid_path", rejection.body_text().trim_start_matches("Invalid URL: ").to_owned())
    }
}

/// axum's rejection texts start with "Failed to deserialize …: "; keep serde's part, which
/// names the field (`purposes[0]: purpose "promo" is unknown; …`).
fn body_error_text(text: &str) -> String {
    let detail = match text.strip_prefix("Failed to ") {
        Some(rest) => rest.split_once(": ").map_or(text, |(_, detail)| detail),
        None => text,
    };
    detail.trim_end_matches('.').to_owned()
}
