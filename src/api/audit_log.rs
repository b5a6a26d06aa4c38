//! `/api/v1/audit-log`: who changed what, newest first.

use super::request::{list_response, page, query};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::method_not_allowed;
use crate::platform::http::{rfc3339, ApiError, ApiResult};
use crate::store::audit::{self, Entry, Filter};
use crate::store::tenant::Tenant;
use phone_agent_core::auth::Access;
use serde_json::{json, Value};
use worker::{Method, Request};

fn render(e: &Entry) -> Value {
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
    };
    json!({
        "id": e.id, "actor": e.actor, "action": e.action,
        "resource_type": e.resource_type, "resource_id": e.resource_id,
        "before": parse(&e.before), "after": parse(&e.after),
        "request_id": e.request_id, "at": rfc3339(e.at),
    })
}

/// Routes `/api/v1/audit-log`.
pub async fn route(
    req: Request,
    app: &App,
    who: &Principal,
    method: &Method,
    tail: &[&str],
) -> (&'static str, ApiResult) {
    match (method, tail) {
        (Method::Get, []) => ("GET /api/v1/audit-log", list(&req, app, who).await),
        (_, []) => ("/api/v1/audit-log", Err(method_not_allowed(method))),
        _ => (
            "not found",
            Err(ApiError::not_found("no such audit-log route")),
        ),
    }
}

async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    who.require(Access::Administer)?;
    let q = query(req)?;
    let window = page(&q)?;
    let filter = Filter {
        resource_type: q.get("resource_type"),
        resource_id: q.get("resource_id"),
        action: q.get("action"),
    };
    list_response(
        audit::list(&Tenant::of(app, who)?, &filter, &window).await?,
        render,
    )
}
