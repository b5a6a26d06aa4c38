//! `/api/v1/...`: the operator JSON API, behind `Authorization: Bearer <api key>`.
//! One file per resource; this module authenticates and runs the handler the route table in
//! `src/routes.rs` chose (the shared request helpers are in `request.rs`).

mod agents;
mod appointments;
mod audit_log;
mod calls;
mod deliveries;
mod endpoints;
mod events;
mod keys;
mod live_tickets;
mod me;
mod numbers;
mod request;
mod sessions;
mod tenants;
mod usage;

use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{method_not_allowed, now_ms, ApiError, ApiResult};
use crate::platform::rate_limit;
use phone_agent_core::auth::{
    bearer_token, is_loopback_host, key_hash, key_matches, live_ticket, websocket_key, Role,
};
use phone_agent_core::rate_limit::client_bucket;
use phone_agent_core::routing::{Need, Outcome};
use worker::Request;

/// Where the OpenAPI document sits among the static assets: `public/` + the route's path, so
/// no other URL serves it (`/api/*` reaches the worker first) and the wasm does not carry it.
const OPENAPI_ASSET: &str = "https://assets.invalid/api/v1/openapi.json";

/// The OpenAPI 3.1 description of this API (public: it holds no data), read from the static
/// assets. A test keeps it and the route table in step.
pub async fn openapi(app: &App) -> ApiResult {
    let mut asset = app.env.assets("ASSETS")?.fetch(OPENAPI_ASSET, None).await?;
    if asset.status_code() != 200 {
        return Err(ApiError::internal(format!(
            "static assets answered {} for the OpenAPI document",
            asset.status_code()
        )));
    }
    let mut response = worker::Response::builder()
        .with_status(200)
        .fixed(asset.bytes().await?);
    let _ = response
        .headers_mut()
        .set("content-type", "application/json; charset=utf-8");
    Ok(response)
}

/// The handlers behind an API key; `src/routes.rs` says which role each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    AgentCreate,
    AgentList,
    AgentGet,
    AgentUpdate,
    AgentDelete,
    AgentToolsSecret,
    AgentRotateToolsSecret,
    NumberCreate,
    NumberList,
    NumberGet,
    NumberUpdate,
    NumberDelete,
    CallSchedule,
    CallList,
    CallGet,
    CallReschedule,
    CallCancel,
    CallSession,
    CallTranscript,
    CallLive,
    LiveTicket,
    EndpointCreate,
    EndpointList,
    EndpointGet,
    EndpointUpdate,
    EndpointDelete,
    EndpointRotate,
    EndpointSecret,
    EndpointTest,
    EventList,
    EventGet,
    EventReplay,
    DeliveryList,
    DeliveryRedrive,
    DeliveryGet,
    DeliveryReplay,
    KeyCreate,
    KeyList,
    KeyGet,
    KeyRevoke,
    TenantCreate,
    TenantList,
    TenantUpdate,
    AuditLog,
    Me,
    Usage,
    AppointmentList,
    AppointmentGet,
    AppointmentCreate,
    AppointmentCancel,
    AppointmentReschedule,
}

/// Answers a route behind an API key: authenticate (401 before anything about the path is
/// said), rate-limit, then 404 / 405 / the route's role check (403) / the handler.
pub async fn dispatch(
    req: Request,
    app: &App,
    method: &str,
    outcome: Outcome<'_, (Need, &Api)>,
) -> (&'static str, ApiResult) {
    let live_view_of = match &outcome {
        Outcome::Run {
            handler: (_, Api::CallLive),
            params,
            ..
        } => params.first().copied(),
        _ => None,
    };
    let principal = match authenticate(&req, app, live_view_of).await {
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
    match outcome {
        Outcome::Run {
            label,
            handler: (need, handler),
            params,
        } => (
            label,
            match need.admit(principal.role, principal.bootstrap) {
                Ok(()) => call(*handler, req, app, &principal, &params).await,
                Err(refusal) => Err(refusal.into()),
            },
        ),
        Outcome::MethodNotAllowed { template, allow } => {
            (template, Err(method_not_allowed(method, allow)))
        }
        Outcome::NotFound => (
            "not found",
            Err(ApiError::not_found("no such API resource")),
        ),
    }
}

/// Runs an API handler with its path parameters, once the route's role check has passed.
async fn call(
    handler: Api,
    mut req: Request,
    app: &App,
    who: &Principal,
    params: &[&str],
) -> ApiResult {
    match (handler, params) {
        (Api::AgentCreate, []) => agents::create(&mut req, app, who).await,
        (Api::AgentList, []) => agents::list(&req, app, who).await,
        (Api::AgentGet, [id]) => agents::get(app, who, id).await,
        (Api::AgentUpdate, [id]) => agents::update(&mut req, app, who, id).await,
        (Api::AgentDelete, [id]) => agents::delete(app, who, id).await,
        (Api::AgentToolsSecret, [id]) => agents::tools_secret(app, who, id).await,
        (Api::AgentRotateToolsSecret, [id]) => agents::rotate_tools_secret(app, who, id).await,
        (Api::NumberCreate, []) => numbers::create(&mut req, app, who).await,
        (Api::NumberList, []) => numbers::list(&req, app, who).await,
        (Api::NumberGet, [id]) => numbers::get(app, who, id).await,
        (Api::NumberUpdate, [id]) => numbers::update(&mut req, app, who, id).await,
        (Api::NumberDelete, [id]) => numbers::delete(app, who, id).await,
        (Api::CallSchedule, []) => calls::create(&mut req, app, who).await,
        (Api::CallList, []) => calls::list(&req, app, who).await,
        (Api::CallGet, [id]) => calls::get(app, who, id).await,
        (Api::CallReschedule, [id]) => calls::reschedule(&mut req, app, who, id).await,
        (Api::CallCancel, [id]) => calls::cancel(app, who, id).await,
        (Api::CallSession, [id]) => sessions::state(app, who, id).await,
        (Api::CallTranscript, [id]) => sessions::transcript_of(app, who, id).await,
        (Api::CallLive, [id]) => sessions::live_view(req, app, who, id).await,
        (Api::LiveTicket, [id]) => live_tickets::issue(app, who, id).await,
        (Api::EndpointCreate, []) => endpoints::create(&mut req, app, who).await,
        (Api::EndpointList, []) => endpoints::list(&req, app, who).await,
        (Api::EndpointGet, [id]) => endpoints::get(app, who, id).await,
        (Api::EndpointUpdate, [id]) => endpoints::update(&mut req, app, who, id).await,
        (Api::EndpointDelete, [id]) => endpoints::delete(app, who, id).await,
        (Api::EndpointRotate, [id]) => endpoints::rotate(&mut req, app, who, id).await,
        (Api::EndpointSecret, [id]) => endpoints::secret(app, who, id).await,
        (Api::EndpointTest, [id]) => endpoints::send_test(app, who, id).await,
        (Api::EventList, []) => events::list(&req, app, who).await,
        (Api::EventGet, [id]) => events::get(app, who, id).await,
        (Api::EventReplay, [id]) => events::replay(&mut req, app, who, id).await,
        (Api::DeliveryList, []) => deliveries::list(&req, app, who).await,
        (Api::DeliveryRedrive, []) => deliveries::redrive(&mut req, app, who).await,
        (Api::DeliveryGet, [id]) => deliveries::get(app, who, id).await,
        (Api::DeliveryReplay, [id]) => deliveries::replay(app, who, id).await,
        (Api::KeyCreate, []) => keys::create(&mut req, app, who).await,
        (Api::KeyList, []) => keys::list(&req, app, who).await,
        (Api::KeyGet, [id]) => keys::get(app, who, id).await,
        (Api::KeyRevoke, [id]) => keys::revoke(app, who, id).await,
        (Api::TenantCreate, []) => tenants::create(&mut req, app, who).await,
        (Api::TenantList, []) => tenants::list(&req, app).await,
        (Api::TenantUpdate, [id]) => tenants::update(&mut req, app, who, id).await,
        (Api::Usage, []) => usage::get(&req, app, who).await,
        (Api::AuditLog, []) => audit_log::list(&req, app, who).await,
        (Api::Me, []) => me::get(who),
        (Api::AppointmentList, []) => appointments::list(&req, app, who).await,
        (Api::AppointmentGet, [id]) => appointments::get(app, who, id).await,
        (Api::AppointmentCreate, []) => appointments::create(&mut req, app, who).await,
        (Api::AppointmentCancel, [id]) => appointments::cancel(app, who, id).await,
        (Api::AppointmentReschedule, [id]) => {
            appointments::reschedule(&mut req, app, who, id).await
        }
        _ => Err(ApiError::internal(format!(
            "route table: {handler:?} has no handler for {} parameters",
            params.len()
        ))),
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
async fn authenticate(
    req: &Request,
    app: &App,
    live_view_of: Option<&str>,
) -> Result<Principal, ApiError> {
    let credential = credential(req, live_view_of)?;
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
fn credential(req: &Request, live_view_of: Option<&str>) -> Result<Credential, ApiError> {
    if let Some(header) = req.headers().get("authorization").ok().flatten() {
        return bearer_token(&header)
            .map(|t| Credential::Key(t.to_owned()))
            .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <api key>"));
    }
    let missing = || ApiError::unauthorized("missing Authorization: Bearer <api key>");
    let Some(call_id) = live_view_of else {
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
            call_id: call_id.to_owned(),
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
