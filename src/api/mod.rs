//! `/api/v1/...`: the operator JSON API, behind `Authorization: Bearer <api key>`.
//! One file per resource; this module authenticates and routes (the shared request helpers are
//! in `request.rs`).

mod agents;
mod audit_log;
mod calls;
mod deliveries;
mod endpoints;
mod events;
mod keys;
mod live_tickets;
mod numbers;
mod request;
mod sessions;
mod tenants;

use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::method_not_allowed;
use crate::platform::http::now_ms;
use crate::platform::http::{ApiError, ApiResult};
use crate::platform::rate_limit;
use phone_agent_core::auth::{
    bearer_token, is_loopback_host, key_hash, key_matches, live_ticket, websocket_key, Role,
};
use phone_agent_core::rate_limit::client_bucket;
use worker::{Method, Request};

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
            sessions::state(app, &principal, call_id).await,
        ),
        ["calls", call_id, "live"] if *method == Method::Get => (
            "GET /api/v1/calls/{id}/live",
            sessions::live_view(req, app, &principal, call_id).await,
        ),
        ["calls", call_id, "live-ticket"] if *method == Method::Post => (
            "POST /api/v1/calls/{id}/live-ticket",
            live_tickets::issue(app, &principal, call_id).await,
        ),
        ["calls", call_id, "transcript"] if *method == Method::Get => (
            "GET /api/v1/calls/{id}/transcript",
            sessions::transcript_of(app, &principal, call_id).await,
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
    let db = app.db()?;
    let key = crate::store::keys::by_hash_any_tenant(&db, &key_hash(token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
    let now = now_ms();
    // last_used_at is informational: write it at most once a minute, off the request path.
    if key.last_used_at.is_none_or(|t| now - t > 60_000) {
        let id = key.id.clone();
        app.ctx.wait_until(async move {
            let _ = crate::store::keys::touch(&db, &id, now).await;
        });
    }
    Ok(Principal {
        tenant_id: key.tenant_id.to_string(),
        role: key.role,
        actor: key.id.to_string(),
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
