//! `/api/v1/audit-log`: who changed what, newest first.

use super::request::list_of;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{rfc3339, ApiResult};
use crate::store::audit::Entry;
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
    list_of::<Entry>(req, app, who, render).await
}
