//! `/api/v1/audit-log`: who changed what, newest first, narrowed by actor, action, resource and
//! time.

use super::request::{list_response, no_field_errors, page, query, time_bound};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{rfc3339, ApiResult};
use crate::store::audit::{self, Entry, Filter};
use crate::store::tenant::Tenant;
use serde_json::{json, Value};
use worker::Request;

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

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let window = page(&q)?;
    let mut errors = Vec::new();
    let from = time_bound(&q, "from", &mut errors);
    let to = time_bound(&q, "to", &mut errors);
    no_field_errors(errors)?;
    // An empty equality filter means "any", like the other lists' filters.
    let text = |name: &str| q.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let filter = Filter {
        actor: text("actor"),
        action: text("action"),
        resource_type: text("resource_type"),
        resource_id: text("resource_id"),
        from,
        to,
    };
    list_response(
        audit::list(&Tenant::of(app, who)?, &filter, &window).await?,
        render,
    )
}
