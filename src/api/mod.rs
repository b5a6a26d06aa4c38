//! `/api/v1/...`: the operator JSON API, behind `Authorization: Bearer <api key>`.

use crate::app::App;
use crate::call_session;
use crate::http::{ApiError, ApiResult};
use crate::routes::not_built;
use phone_agent_core::auth::{bearer_token, key_matches};
use worker::{Method, Request};

/// Resources of the contract; those not built yet answer 501 rather than 404.
const RESOURCES: [&str; 9] = [
    "agents",
    "numbers",
    "calls",
    "endpoints",
    "events",
    "deliveries",
    "api-keys",
    "audit-log",
    "openapi.json",
];

/// Authenticates, then routes `/api/v1/{rest..}`.
pub async fn dispatch(
    req: Request,
    app: &App,
    method: &Method,
    rest: &[&str],
) -> (&'static str, ApiResult) {
    if let Err(e) = authenticate(&req, app) {
        return ("/api/v1 (unauthenticated)", Err(e));
    }
    match (method, rest) {
        (Method::Get, ["calls", call_id, "session"]) => (
            "GET /api/v1/calls/{id}/session",
            call_session::state(app, call_id).await,
        ),
        (_, [resource, ..]) if RESOURCES.contains(resource) => (
            "/api/v1 (not built)",
            not_built(&format!("/api/v1/{resource}")),
        ),
        _ => (
            "not found",
            Err(ApiError::not_found("no such API resource")),
        ),
    }
}

fn authenticate(req: &Request, app: &App) -> Result<(), ApiError> {
    let expected = app
        .config()?
        .admin_api_key
        .as_deref()
        .ok_or_else(|| ApiError::new(500, "config_error", "ADMIN_API_KEY is not set"))?;
    let header = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <api key>"))?;
    let token = bearer_token(&header)
        .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <api key>"))?;
    if key_matches(token, expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("invalid API key"))
    }
}
