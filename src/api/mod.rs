//! `/api/v1/...`: the operator JSON API, behind `Authorization: Bearer <api key>`.
//! One file per resource; this module authenticates, routes, and holds the request helpers
//! every resource shares (JSON bodies, query parameters, pages).

mod agents;
mod audit_log;
mod calls;
mod deliveries;
mod endpoints;
mod events;
mod keys;
mod live_tickets;
mod numbers;
mod tenants;

use crate::live::session;
use crate::platform::app::App;
use crate::platform::http::method_not_allowed;
use crate::platform::http::now_ms;
use crate::platform::http::{json_response, read_body, ApiError, ApiResult};
use crate::platform::rate_limit;
use crate::store::db;
use phone_agent_core::auth::{
    bearer_token, is_loopback_host, key_hash, key_matches, live_ticket, websocket_key, Access, Role,
};
use phone_agent_core::limits::API_BODY_LIMIT;
use phone_agent_core::pagination::{self, Cursor, PageError};
use phone_agent_core::rate_limit::client_bucket;
use serde_json::{json, Value};
use std::collections::HashMap;
use worker::{Method, Request};

/// Who is calling: the tenant every query is scoped to, and what they may do.
pub struct Principal {
    pub tenant_id: String,
    pub role: Role,
    /// Audit actor: the API key's id, or `admin` for the bootstrap `ADMIN_API_KEY`.
    pub actor: String,
    /// The bootstrap key, which alone may create tenants.
    pub bootstrap: bool,
    /// Carried into audit entries.
    pub request_id: String,
}

impl Principal {
    /// 403 unless the role grants `access`.
    pub fn require(&self, access: Access) -> Result<(), ApiError> {
        if self.role.allows(access) {
            Ok(())
        } else {
            Err(ApiError::new(
                403,
                "forbidden",
                "this API key's role does not allow that",
            ))
        }
    }
}

/// The OpenAPI 3.1 description of this API (public: it holds no data). A test keeps it and
/// the router in step.
fn openapi() -> worker::Response {
    let mut response = worker::Response::builder()
        .with_status(200)
        .fixed(include_bytes!("openapi.json").to_vec());
    let _ = response
        .headers_mut()
        .set("content-type", "application/json; charset=utf-8");
    response
}

/// Authenticates, then routes `/api/v1/{rest..}`.
pub async fn dispatch(
    req: Request,
    app: &App,
    method: &Method,
    rest: &[&str],
) -> (&'static str, ApiResult) {
    if rest == ["openapi.json"] {
        return match method {
            Method::Get => ("GET /api/v1/openapi.json", Ok(openapi())),
            _ => ("/api/v1/openapi.json", Err(method_not_allowed(method))),
        };
    }
    let principal = match authenticate(&req, app, rest).await {
        Ok(p) => p,
        Err(e) => return ("/api/v1 (unauthenticated)", Err(e)),
    };
    let limit = match app.config() {
        Ok(config) => config.api_rate_limit_per_minute,
        Err(e) => return ("/api/v1", Err(e)),
    };
    if let Err(e) = rate_limit::check(&app.env, &principal.actor, limit).await {
        return ("/api/v1 (rate limited)", Err(e));
    }
    match rest {
        ["calls", call_id, "session"] if *method == Method::Get => (
            "GET /api/v1/calls/{id}/session",
            session::state(app, &principal, call_id).await,
        ),
        ["calls", call_id, "live"] if *method == Method::Get => (
            "GET /api/v1/calls/{id}/live",
            session::live_view(req, app, &principal, call_id).await,
        ),
        ["calls", call_id, "live-ticket"] if *method == Method::Post => (
            "POST /api/v1/calls/{id}/live-ticket",
            live_tickets::issue(app, &principal, call_id).await,
        ),
        ["calls", call_id, "transcript"] if *method == Method::Get => (
            "GET /api/v1/calls/{id}/transcript",
            session::transcript_of(app, &principal, call_id).await,
        ),
        ["calls", "session"] | ["calls", _, "session" | "live" | "live-ticket" | "transcript"] => {
            ("/api/v1/calls", Err(method_not_allowed(method)))
        }
        ["endpoints", tail @ ..] => endpoints::route(req, app, &principal, method, tail).await,
        ["events", tail @ ..] => events::route(req, app, &principal, method, tail).await,
        ["deliveries", tail @ ..] => deliveries::route(req, app, &principal, method, tail).await,
        ["calls", tail @ ..] => calls::route(req, app, &principal, method, tail).await,
        ["agents", tail @ ..] => agents::route(req, app, &principal, method, tail).await,
        ["numbers", tail @ ..] => numbers::route(req, app, &principal, method, tail).await,
        ["api-keys", tail @ ..] => keys::route(req, app, &principal, method, tail).await,
        ["tenants", tail @ ..] => tenants::route(req, app, &principal, method, tail).await,
        ["audit-log", tail @ ..] => audit_log::route(req, app, &principal, method, tail).await,
        _ => (
            "not found",
            Err(ApiError::not_found("no such API resource")),
        ),
    }
}

/// What a request presents to prove who it is.
enum Credential {
    /// An API key (Authorization header, or the live-view subprotocol).
    Key(String),
    /// A single-use live-view ticket for one call.
    Ticket { call_id: String, ticket: String },
}

/// Authenticates the request. A request without any credential is a plain 401; one that
/// presents a credential is first checked against its address's failure budget (429 while over
/// it, whatever the credential), and a credential that does not match spends from that budget.
async fn authenticate(req: &Request, app: &App, rest: &[&str]) -> Result<Principal, ApiError> {
    let credential = credential(req, rest)?;
    let config = app.config()?;
    let limit = config.auth_failure_limit_per_minute;
    let client = client_bucket(
        req.headers()
            .get("cf-connecting-ip")
            .ok()
            .flatten()
            .as_deref(),
    );
    rate_limit::auth_allowed(&app.env, &client, limit).await?;
    let verified = match &credential {
        Credential::Key(key) => verify_key(app, key).await,
        Credential::Ticket { call_id, ticket } => live_tickets::consume(app, call_id, ticket).await,
    }
    .map_err(|e| (e, false))
    .and_then(|principal| match config.weak_admin_key() {
        // A weak bootstrap key is public knowledge or guessable: outside local development
        // it opens nothing (a failed attempt like any other), and saying why is the fastest
        // way to get it replaced.
        Some(weak) if principal.bootstrap && !local_development(req) => {
            Err((ApiError::from(weak), true))
        }
        _ => Ok(principal),
    });
    match verified {
        Ok(principal) => Ok(principal),
        Err((e, failed)) => {
            if failed || e.status == 401 {
                rate_limit::auth_failed(&app.env, &client, limit).await;
            }
            Err(e)
        }
    }
}

/// Reads the credential: `Authorization: Bearer`, or for a live-view WebSocket upgrade (which a
/// browser cannot give headers) the `bearer.<base64url(key)>` subprotocol or a `?ticket=`.
/// An API key in the URL is refused: URLs end up in access logs.
fn credential(req: &Request, rest: &[&str]) -> Result<Credential, ApiError> {
    if let Some(header) = req.headers().get("authorization").ok().flatten() {
        return bearer_token(&header)
            .map(|t| Credential::Key(t.to_owned()))
            .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <api key>"));
    }
    let missing = || ApiError::unauthorized("missing Authorization: Bearer <api key>");
    let ["calls", call_id, "live"] = rest else {
        return Err(missing());
    };
    let upgrade = req.headers().get("upgrade").ok().flatten();
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(missing());
    }
    if let Some(key) = req
        .headers()
        .get("sec-websocket-protocol")
        .ok()
        .flatten()
        .and_then(|p| websocket_key(&p))
    {
        return Ok(Credential::Key(key));
    }
    let url = req.url()?;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if let Some(ticket) = live_ticket(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Credential::Ticket {
            call_id: (*call_id).to_owned(),
            ticket: ticket.to_owned(),
        });
    }
    if pairs.iter().any(|(k, _)| k == "key") {
        return Err(ApiError::unauthorized(
            "API keys are not accepted in URLs; get a single-use ticket from \
             POST /api/v1/calls/{id}/live-ticket and open the live view with ?ticket=",
        ));
    }
    Err(missing())
}

/// Resolves an API key: the bootstrap `ADMIN_API_KEY` (admin of the default tenant), or a
/// tenant key looked up by its hash (revoked keys are refused).
async fn verify_key(app: &App, token: &str) -> Result<Principal, ApiError> {
    let bootstrap = app
        .config()?
        .admin_api_key
        .as_deref()
        .ok_or_else(|| ApiError::new(500, "config_error", "ADMIN_API_KEY is not set"))?;
    if key_matches(token, bootstrap) {
        return Ok(Principal {
            tenant_id: "ten_default".into(),
            role: Role::Admin,
            actor: "admin".into(),
            bootstrap: true,
            request_id: app.request_id.clone(),
        });
    }
    #[derive(serde::Deserialize)]
    struct Key {
        id: String,
        tenant_id: String,
        role: Role,
        last_used_at: Option<i64>,
    }
    let db = app.db()?;
    let key: Key = db::first(
        &db,
        "SELECT id, tenant_id, role, last_used_at FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        &[&key_hash(token)],
    )
    .await?
    .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
    let now = now_ms();
    // last_used_at is informational: write it at most once a minute, off the request path.
    if key.last_used_at.is_none_or(|t| now - t > 60_000) {
        let id = key.id.clone();
        app.ctx.wait_until(async move {
            let _ = db::run(
                &db,
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
                &[&now, &id],
            )
            .await;
        });
    }
    Ok(Principal {
        tenant_id: key.tenant_id,
        role: key.role,
        actor: key.id,
        bootstrap: false,
        request_id: app.request_id.clone(),
    })
}

/// Whether the request came to a loopback host, i.e. a developer's `wrangler dev` (a weak
/// bootstrap key is tolerated there, with a warning in health).
pub fn local_development(req: &Request) -> bool {
    req.url()
        .ok()
        .and_then(|u| u.host_str().map(is_loopback_host))
        .unwrap_or(false)
}

/// Reads a JSON object body: 413 past [`API_BODY_LIMIT`] (streamed, never read further), 415
/// without a JSON content type, 400 if malformed or not an object. An empty body reads as `{}`.
pub async fn json_body(req: &mut Request) -> Result<Value, ApiError> {
    let bytes = read_body(req, API_BODY_LIMIT).await?;
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    let content_type = req.headers().get("content-type")?.unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "request bodies must be application/json",
        ));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(400, "invalid_json", format!("body is not valid JSON: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::new(
            400,
            "invalid_json",
            "body must be a JSON object",
        ))
    }
}

/// Query parameters (last value wins).
pub fn query(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    Ok(req.url()?.query_pairs().into_owned().collect())
}

/// 422 listing every invalid field: `[{field, code, message}]`.
pub fn invalid_fields(fields: Value) -> ApiError {
    ApiError::new(422, "invalid_fields", "some fields are invalid").with_details(fields)
}

/// One field error in the shape of [`invalid_fields`].
pub fn field_error(field: &str, code: &str, message: impl Into<String>) -> Value {
    json!({"field": field, "code": code, "message": message.into()})
}

/// The page window a list request asks for.
pub struct Page {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Page {
    /// Reads `limit` and `cursor`; a bad value is a 400 naming it.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let bad = |e: PageError| ApiError::new(400, "invalid_pagination", e.to_string());
        let limit = pagination::limit(query.get("limit").map(String::as_str)).map_err(bad)?;
        let after = query
            .get("cursor")
            .filter(|c| !c.is_empty())
            .map(|c| Cursor::decode(c))
            .transpose()
            .map_err(bad)?;
        Ok(Page { limit, after })
    }

    /// SQL arguments for `(created_at, id) < (?, ?)`: a position past every row when absent.
    pub fn bounds(&self) -> (i64, String) {
        match &self.after {
            Some(c) => (c.created_at, c.id.clone()),
            None => (i64::MAX, String::new()),
        }
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// `{data, next_cursor}` for rows fetched with [`Page::fetch`], newest first.
pub fn list_response<T>(
    rows: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> Cursor,
    render: impl Fn(&T) -> Value,
) -> ApiResult {
    let (rows, next_cursor) = pagination::split_page(rows, page.limit, key);
    let data: Vec<Value> = rows.iter().map(render).collect();
    Ok(json_response(
        200,
        &json!({"data": data, "next_cursor": next_cursor}),
    ))
}
