//! HTTP plumbing shared by every route: the one error type, its single mapping to a JSON
//! response, request ids, and the per-request log line.

use futures_util::StreamExt;
use phone_agent_core::agents::AgentInUse;
use phone_agent_core::auth::{new_token, NoRandomness};
use phone_agent_core::carrier::Carrier;
use phone_agent_core::config::ConfigError;
use phone_agent_core::delivery::TestRefusal;
use phone_agent_core::features::{FeatureUnavailable, ScheduleRefusal};
use phone_agent_core::ids::{self, RowId};
use phone_agent_core::limits::{body_read, BodyRead, BoundedBody, TooLarge};
use phone_agent_core::media::access::StreamRefusal;
use phone_agent_core::recording::LinkError;
use phone_agent_core::routing::Forbidden;
use phone_agent_core::webhooks::signatures::Rejection;
use phone_agent_core::webhooks::Provider;
use serde::Serialize;
use serde_json::{json, Value};
use worker::{Request, Response};

/// An error as the client sees it: status, stable code, human message, optional details.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
    /// The methods the path supports, for the `Allow` header of a 405.
    pub allow: Option<String>,
}

impl ApiError {
    /// Any error with a status and a stable code.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            allow: None,
        }
    }

    /// Attaches machine-readable details (e.g. the list of invalid fields).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Tells the client when to try again.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 404 for a route or resource that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 401 for missing or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// 500 for our own faults; the detail goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        log_line(json!({"level": "error", "msg": "internal error", "error": detail.to_string()}));
        Self::new(500, "internal", "internal error")
    }

    /// Builds the JSON error response (the only place errors become HTTP).
    pub fn to_response(&self, request_id: &str) -> Response {
        let mut error =
            json!({"code": self.code, "message": self.message, "request_id": request_id});
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
        if let Some(seconds) = self.retry_after {
            let _ = response
                .headers_mut()
                .set("retry-after", &seconds.to_string());
        }
        if let Some(allow) = &self.allow {
            let _ = response.headers_mut().set("allow", allow);
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<NoRandomness> for ApiError {
    fn from(e: NoRandomness) -> Self {
        ApiError::internal(e)
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        // A deployment problem, not the caller's: name the variable so the operator can fix it.
        ApiError::new(500, "config_error", e.to_string())
    }
}

impl From<FeatureUnavailable> for ApiError {
    fn from(e: FeatureUnavailable) -> Self {
        // The server, not the request, lacks something: 503 until the operator sets it.
        let details = json!({"feature": e.feature, "missing": e.missing});
        ApiError::new(503, "feature_unavailable", e.to_string()).with_details(details)
    }
}

impl From<ScheduleRefusal> for ApiError {
    fn from(refusal: ScheduleRefusal) -> Self {
        match refusal {
            ScheduleRefusal::Server(unavailable) => unavailable.into(),
            // The request named it: a field error, so the client can drop or change that field.
            ScheduleRefusal::Requested { field, unavailable } => {
                ApiError::new(422, "invalid_fields", "some fields are invalid").with_details(
                    json!([{
                        "field": field,
                        "code": "feature_unavailable",
                        "message": unavailable.to_string(),
                        "feature": unavailable.feature,
                        "missing": unavailable.missing,
                    }]),
                )
            }
        }
    }
}

impl From<StreamRefusal> for ApiError {
    fn from(refusal: StreamRefusal) -> Self {
        let status = match refusal {
            StreamRefusal::MissingToken => 401,
            StreamRefusal::InvalidToken | StreamRefusal::NotVerified => 403,
            StreamRefusal::TooManySockets => 409,
        };
        ApiError::new(status, refusal.code(), refusal.to_string())
    }
}

/// The request's method as sent. workers-rs's `Request::method` reads any method it has no
/// variant for (`QUERY`, `PROPFIND`, …) as GET, which would run a GET handler for it.
pub fn request_method(req: &Request) -> String {
    req.inner().method()
}

/// 405 with the method named and the route table's `Allow` (the methods the path supports).
pub fn method_not_allowed(method: &str, allow: String) -> ApiError {
    let mut error = ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed on this route"),
    );
    error.allow = Some(allow);
    error
}

impl From<TestRefusal> for ApiError {
    fn from(refusal: TestRefusal) -> Self {
        // The endpoint's state, not the request, is in the way: resuming it lets the same call work.
        ApiError::new(409, "endpoint_not_enabled", refusal.to_string())
    }
}

impl From<AgentInUse> for ApiError {
    fn from(in_use: AgentInUse) -> Self {
        let details = json!({"numbers": in_use.numbers, "open_calls": in_use.open_calls});
        ApiError::new(409, "agent_in_use", in_use.to_string()).with_details(details)
    }
}

impl From<LinkError> for ApiError {
    fn from(refusal: LinkError) -> Self {
        match refusal {
            LinkError::NoKey => ApiError::new(503, "not_configured", refusal.to_string()),
            LinkError::Forged => ApiError::new(403, "invalid_link", refusal.to_string()),
            LinkError::Expired => ApiError::new(410, "link_expired", refusal.to_string()),
        }
    }
}

impl From<Forbidden> for ApiError {
    fn from(refusal: Forbidden) -> Self {
        ApiError::new(403, "forbidden", refusal.to_string())
    }
}

/// The carrier a `{carrier}` path segment names; 404 for any other.
pub fn known_carrier(segment: &str) -> Result<Carrier, ApiError> {
    Carrier::parse(segment)
        .ok_or_else(|| ApiError::not_found(format!("unknown carrier {segment:?}")))
}

/// The HTTP answer to a rejected signature (503 for our misconfiguration, else 401).
pub(crate) fn rejection_error(provider: Provider, rejection: &Rejection) -> ApiError {
    if rejection.is_configuration_error() {
        // Our misconfiguration: a 5xx makes the provider retry once it is fixed.
        return ApiError::new(
            503,
            "provider_not_configured",
            format!(
                "no usable verification secret is configured for {}",
                provider.as_str()
            ),
        );
    }
    ApiError::new(
        401,
        "invalid_signature",
        format!("the {} signature could not be verified", provider.as_str()),
    )
}

/// Result of a route handler.
pub type ApiResult = Result<Response, ApiError>;

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &Value) -> Response {
    let mut response = Response::builder()
        .with_status(status)
        .fixed(body.to_string().into_bytes());
    // Headers of a response we just built are mutable, so this cannot fail.
    let _ = response
        .headers_mut()
        .set("content-type", "application/json; charset=utf-8");
    response
}

/// Milliseconds since the Unix epoch, from the runtime clock (the core never reads it).
pub fn now_ms() -> i64 {
    // `Date.now()`: no Date object per call (the media path asks 50 times a second).
    js_sys::Date::now() as i64
}

/// RFC 3339 (UTC, milliseconds) for a stored millisecond timestamp.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A uniform random number in [0, 1), e.g. for retry jitter.
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::getrandom(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// A fresh row id of type `T`, like `call_06bq2…`: a UUIDv7 from the runtime clock, so ids sort
/// by creation time (see `phone_agent_core::ids`). The one way rows get ids (the store's and the
/// handlers'). Without randomness it fails closed (a 500, like [`new_secret`]). For identifiers
/// only: a key, secret or token comes from [`new_secret`].
pub fn new_id<T: RowId>() -> Result<T, NoRandomness> {
    ids::new_id(T::PREFIX, now_ms(), getrandom::getrandom).map(T::from)
}

/// An id that labels log lines or an instance, never a row: when randomness fails it still
/// carries the time rather than failing the request it labels.
pub fn trace_id(prefix: &str) -> String {
    ids::new_id(prefix, now_ms(), getrandom::getrandom)
        .unwrap_or_else(|_| ids::encode_id(prefix, now_ms(), &[0; ids::ID_RANDOM_BYTES]))
}

/// A secret like `pa_live_7f3k…` (128 random bits): API keys, live tickets, stream tokens.
/// Without randomness it is a 500, never a predictable value.
pub fn new_secret(prefix: &str) -> Result<String, ApiError> {
    new_token(prefix, getrandom::getrandom).map_err(ApiError::internal)
}

/// `N` random bytes for key material (endpoint signing secrets); fails closed like
/// [`new_secret`].
pub fn secret_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ApiError::internal(NoRandomness(e.to_string())))?;
    Ok(bytes)
}

/// Headers on every response the worker builds: nothing it serves is a page to render, frame or
/// sniff, and no URL of ours leaks through `Referer` (the dashboard's assets get their own
/// policy from `public/_headers`).
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("x-frame-options", "DENY"),
];

/// Adds the request id and [`SECURITY_HEADERS`] to a response. Responses proxied from a Durable
/// Object have immutable headers, so the headers are copied rather than set in place; upgrade
/// (101) responses are left alone.
pub fn finish(response: Response, request_id: &str) -> Response {
    if response.status_code() == 101 {
        return response;
    }
    let headers = response.headers().clone();
    let _ = headers.set("x-request-id", request_id);
    for (name, value) in SECURITY_HEADERS {
        let _ = headers.set(name, value);
    }
    response.with_headers(headers)
}

/// A request id to propagate: the caller's `x-request-id` when it is sane, else a new one.
pub fn request_id(incoming: Option<String>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') =>
        {
            id
        }
        _ => trace_id("req"),
    }
}

/// Writes one structured log line (one JSON object per event).
pub fn log_line(value: Value) {
    emit(&value.to_string());
}

/// Hands a serialized log line to the runtime's console: the one string is the line, so it is
/// copied out of the wasm once and never formatted again.
fn emit(line: &str) {
    worker::web_sys::console::log_1(&wasm_bindgen::JsValue::from_str(line));
}

/// A value a handler adds to its request's log line ([`crate::platform::app::App::log_field`]).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LogValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for LogValue {
    fn from(value: &str) -> Self {
        LogValue::Str(value.to_owned())
    }
}

impl From<String> for LogValue {
    fn from(value: String) -> Self {
        LogValue::Str(value)
    }
}

impl From<bool> for LogValue {
    fn from(value: bool) -> Self {
        LogValue::Bool(value)
    }
}

impl From<usize> for LogValue {
    fn from(value: usize) -> Self {
        LogValue::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

/// The one line every request logs (`"msg": "request"`): what operators filter on, then what
/// the handler did. Serialized straight into the line's text, with no JSON tree in between.
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// The route table's label (`POST /webhooks/{provider}`), not the raw path.
    pub route: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: i64,
    pub request_id: &'a str,
    /// The handler's fields, in the order it added them.
    pub fields: &'a [(&'static str, LogValue)],
}

impl Serialize for RequestLine<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(8 + self.fields.len()))?;
        let level = if self.status >= 500 { "error" } else { "info" };
        map.serialize_entry("level", level)?;
        map.serialize_entry("msg", "request")?;
        map.serialize_entry("method", self.method)?;
        map.serialize_entry("route", self.route)?;
        map.serialize_entry("path", self.path)?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("duration_ms", &self.duration_ms)?;
        map.serialize_entry("request_id", self.request_id)?;
        for (key, value) in self.fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Writes a request's log line.
pub fn log_request(line: &RequestLine<'_>) {
    // Serializing strings, integers and booleans into a `String` cannot fail.
    if let Ok(text) = serde_json::to_string(line) {
        emit(&text);
    }
}

impl From<TooLarge> for ApiError {
    fn from(e: TooLarge) -> Self {
        ApiError::new(413, "payload_too_large", e.to_string())
    }
}

/// Reads a request body of at most `limit` bytes: a declared `Content-Length` over it is
/// refused unread, and a streamed (chunked) body is cancelled as soon as it passes the limit,
/// so no more than the limit is ever held. The one body reader of every route.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let headers = req.headers();
    let read = body_read(
        headers.get("content-length")?.as_deref(),
        headers.get("transfer-encoding")?.as_deref(),
        limit,
    )?;
    if read == BodyRead::Whole {
        // One `arrayBuffer()`: the stream's reader, a promise per chunk and the lock's release
        // were the largest cost of an accepted webhook (bench/README.md, session 8).
        let body = req.bytes().await?;
        if body.len() > limit {
            return Err(TooLarge { limit }.into());
        }
        return Ok(body);
    }
    // No body at all (`stream` refuses) reads as empty.
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new());
    };
    let mut body = BoundedBody::new(limit);
    while let Some(chunk) = stream.next().await {
        // Dropping the stream on return cancels it: the rest is never read.
        body.push(&chunk?)?;
    }
    Ok(body.into_bytes())
}

/// 426 unless the request asks for a WebSocket upgrade; `what` names the route in the message.
pub fn require_websocket(req: &Request, what: &str) -> Result<(), ApiError> {
    let upgrade = req
        .headers()
        .get("upgrade")
        .ok()
        .flatten()
        .unwrap_or_default();
    if upgrade.eq_ignore_ascii_case("websocket") {
        Ok(())
    } else {
        Err(ApiError::new(
            426,
            "upgrade_required",
            format!("{what} is a WebSocket: send Upgrade: websocket"),
        ))
    }
}
