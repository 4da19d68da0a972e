//! The HTTP API: one module per resource, each with its own `router()`, merged here; and
//! the extractors every route shares (JSON and query with our error shape, bearer tokens,
//! the public site key + Origin check, the client address).

mod audit;
pub(crate) mod campaigns;
mod consents;
mod health;
mod ledger;
pub(crate) mod link;
pub(crate) mod sites;
mod whatsapp;
mod widget;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, OptionalFromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Role, Site, TokenInfo};

/// Largest JSON body accepted, in bytes. A consent is well under 4 KB.
pub const JSON_BODY_LIMIT: usize = 16 * 1024;
/// How long one request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole application. Tests drive it with `oneshot` or bind it to port 0.
pub fn app(state: AppState) -> Router {
    // Public routes are called from merchants' pages on any origin; each handler then
    // checks the Origin against the site's allowed origins and stores nothing otherwise.
    let public_cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(86_400));
    let public = Router::new().merge(consents::public_router()).merge(sites::public_router()).layer(public_cors);
    Router::new()
        .merge(health::router())
        .merge(link::router())
        .merge(widget::router())
        .merge(consents::router())
        .merge(sites::router())
        .merge(campaigns::router())
        .merge(crate::console::router())
        .merge(ledger::router())
        .merge(audit::router())
        .merge(ledger::public_router())
        .merge(whatsapp::router())
        .merge(public)
        .fallback(not_found)
        .layer(axum::middleware::map_response(method_not_allowed))
        .layer(axum::middleware::from_fn(refuse_encoded_bodies))
        .layer(axum::middleware::from_fn(refuse_nul_in_urls))
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span every log line of a request carries: its method and the route it matched, as
/// written in the router (`/v1/subjects/{phone}/status`), never the path itself. Paths
/// carry phone numbers (status, erasure) and query strings more; an unknown path is not
/// logged at all, since it may be anything a client typed.
fn request_span(request: &Request) -> tracing::Span {
    let route = request.extensions().get::<MatchedPath>().map_or("(no route)", MatchedPath::as_str);
    tracing::info_span!("request", method = %request.method(), route)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see the README for the API".into())
}

/// axum answers a known path asked with another method 405 and an empty body; give it our
/// error body too. (axum's method router adds the `Allow` header around this layer, so the
/// answer still lists the methods the route takes.)
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    ApiError::MethodNotAllowed("this route does not take that method; the Allow header lists the ones it does".into()).into_response()
}

/// A body sent with a `Content-Encoding` (gzip, br, …) would be read as its compressed
/// bytes: refused whole, 415 with `Accept-Encoding: identity` (RFC 7694), before any handler
/// sees it. Nothing Cornetta serves compresses what it sends, and a signed webhook is
/// signed over the bytes as sent.
async fn refuse_encoded_bodies(request: Request, next: axum::middleware::Next) -> Response {
    let refused = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case(b"identity"))
        .map(|v| String::from_utf8_lossy(v).chars().take(40).collect::<String>());
    let Some(shown) = refused else { return next.run(request).await };
    let mut response =
        ApiError::UnsupportedMediaType(format!("request bodies are read as sent: Content-Encoding {shown:?} is not accepted; send the body uncompressed")).into_response();
    response.headers_mut().insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    response
}

/// What a request holding a NUL character (U+0000) is answered: no Cornetta value may hold
/// one. PostgreSQL cannot store it in text, and SQLite's `length()` stops at it (so a check
/// constraint would refuse a name the API had taken): left alone, either store would answer
/// 500 for something the client sent.
fn nul_refused(place: &str) -> ApiError {
    ApiError::invalid("nul_character", format!("the {place} holds a NUL character (U+0000), which no value may contain; remove it"))
}

/// Whether JSON text holds a NUL character: the escape `\u0000` inside a string (`\\u0000`
/// is a backslash and "u0000"), or a raw NUL byte (not valid JSON, refused either way).
pub(crate) fn json_has_nul(json: &[u8]) -> bool {
    let mut rest = json;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        if rest.get(at + 1..at + 6) == Some(b"u0000") {
            return true;
        }
        rest = rest.get(at + 2..).unwrap_or_default();
    }
    json.contains(&0)
}

/// Refuses `%00` in the path or query of any route (the console's included), before a
/// handler could pass it to the store.
async fn refuse_nul_in_urls(request: Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri();
    if uri.path().contains("%00") {
        return nul_refused("URL's path").into_response();
    }
    if uri.query().is_some_and(|q| q.contains("%00")) {
        return nul_refused("URL's query").into_response();
    }
    next.run(request).await
}

/// `Json` whose rejections use our error shape, and which refuses NUL characters.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The bytes first (within the body limit), so that they can be searched once parsed.
        let (parts, body) = req.into_parts();
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state).await.map_err(JsonRejection::from)?;
        let axum::Json(value) = axum::Json::<T>::from_request(Request::from_parts(parts, axum::body::Body::from(bytes.clone())), state).await?;
        if json_has_nul(&bytes) {
            return Err(nul_refused("request body"));
        }
        Ok(Self(value))
    }
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections use our error shape. A value that is not UTF-8 once
/// percent-decoded (`text=%FF`) is refused naming its parameter: axum's `Query` would put
/// U+FFFD in its place, so a link or QR code would silently carry other text than was sent.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(query) = parts.uri.query()
            && let Some(pair) = query.split('&').find(|pair| percent_encoding::percent_decode_str(pair).decode_utf8().is_err())
        {
            let name = pair.split('=').next().unwrap_or_default();
            let name = crate::consents::clip(&percent_encoding::percent_decode_str(name).decode_utf8_lossy(), 64);
            return Err(ApiError::invalid("invalid_query", format!("{name} is not UTF-8 once percent-decoded")));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `Path` whose rejections use our error shape.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = <axum::extract::Path<T> as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// A valid, unrevoked bearer token. Missing or unknown: 401.
#[derive(Debug, Clone)]
pub struct Bearer(pub TokenInfo);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized("this endpoint needs a bearer token: Authorization: Bearer crn_…".into()));
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
        match crate::tokens::authenticate(&state.store, secret).await? {
            Some(token) => Ok(Bearer(token)),
            None => Err(ApiError::Unauthorized("the bearer token is unknown or revoked".into())),
        }
    }
}

impl OptionalFromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            <Bearer as FromRequestParts<AppState>>::from_request_parts(parts, state).await.map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Bearer {
    /// 403 unless the token has `role` (admins have every role) and reaches `site`.
    pub fn require(&self, role: Role, site: Option<&Site>) -> Result<(), ApiError> {
        if !self.0.has_role(role) {
            return Err(ApiError::forbidden("wrong_role", format!("this needs a token with role {role} (this one is {})", self.0.role)));
        }
        if let Some(site) = site
            && !self.0.reaches_site(&site.id)
        {
            return Err(ApiError::forbidden("wrong_site", format!("this token is not valid for site {}", site.key)));
        }
        Ok(())
    }
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop when the
/// server is configured to trust its proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.settings.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if let Some(ip) = forwarded {
                return Ok(ClientIp(ip));
            }
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientIp(peer.unwrap_or(IpAddr::from([127, 0, 0, 1]))))
    }
}

/// The request's `Origin` header, if any.
#[derive(Debug, Clone)]
pub struct RequestOrigin(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Not `to_str`: an Origin with bytes beyond ASCII would read as no Origin at all and be
        // told it has none; read lossily, it is refused as the origin it is (allowed origins
        // are ASCII, international names in punycode).
        Ok(Self(parts.headers.get(header::ORIGIN).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())))
    }
}

impl RequestOrigin {
    /// 403 unless the request comes from one of the site's allowed origins.
    pub fn check(&self, site: &Site) -> Result<(), ApiError> {
        match &self.0 {
            None => Err(ApiError::forbidden(
                "origin_missing",
                "this endpoint is for the widget on a site's pages: the request has no Origin header",
            )),
            Some(origin) if site.allows_origin(&origin.to_ascii_lowercase()) => Ok(()),
            Some(origin) => Err(ApiError::forbidden(
                "origin_not_allowed",
                format!(
                    "origin {origin} is not allowed for site {key}; add it with `cornetta site update {key} --add-origin {origin}` \
                     or PUT /v1/sites/{key}/origins",
                    origin = origin.chars().take(100).collect::<String>(),
                    key = site.key,
                ),
            )),
        }
    }
}

/// The request's `User-Agent`, clipped.
#[derive(Debug, Clone)]
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ua = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
        Ok(Self(ua.map(|ua| crate::consents::clip(ua, crate::consents::MAX_USER_AGENT_CHARS))))
    }
}

#[cfg(test)]
mod tests {
    use super::json_has_nul;

    #[test]
    fn nul_is_found_as_an_escape_or_a_byte_and_only_there() {
        // NUL escaped, NUL followed by a digit, NUL after an escaped backslash, a raw NUL byte.
        for json in [r#"{"name":"\u0000"}"#, r#"{"a":"\u00001"}"#, r#"["\\\u0000"]"#, "{\"a\":\"\0\"}"] {
            assert!(json_has_nul(json.as_bytes()), "{json}");
        }
        // A backslash and "u0000" as text, other control characters, escapes at the very end.
        for json in [r#"{"name":"Acme"}"#, r#"{"a":"\\u0000"}"#, r#"{"a":"\u0001"}"#, r#"{"a":"\"\\"}"#, r#""\"#] {
            assert!(!json_has_nul(json.as_bytes()), "{json}");
        }
    }
}
