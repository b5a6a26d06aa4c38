//! `/api/v1/audit-log`: who changed what, newest first.

use super::request::{page, query, rows_response};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{rfc3339, ApiResult};
use crate::store::db;
use phone_agent_core::pagination::Cursor;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

#[derive(Deserialize)]
struct Row {
    id: i64,
    actor: String,
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
    request_id: String,
    at: i64,
}

impl Row {
    fn render(&self) -> Value {
        let parse = |s: &Option<String>| {
            s.as_deref()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
        };
        json!({
            "id": self.id, "actor": self.actor, "action": self.action,
            "resource_type": self.resource_type, "resource_id": self.resource_id,
            "before": parse(&self.before), "after": parse(&self.after),
            "request_id": self.request_id, "at": rfc3339(self.at),
        })
    }
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let page = page(&q)?;
    let (at, after_id) = page.bounds();
    // Entries are keyed by their integer id; the cursor carries it as text.
    let after_id: i64 = if after_id.is_empty() {
        i64::MAX
    } else {
        after_id.parse().unwrap_or(i64::MAX)
    };
    let rows: Vec<Row> = db::all(
        &app.db()?,
        "SELECT id, actor, action, resource_type, resource_id, before, after, request_id, at FROM audit_log
         WHERE tenant_id = ?1 AND (at, id) < (?2, ?3)
           AND (?4 IS NULL OR resource_type = ?4) AND (?5 IS NULL OR resource_id = ?5)
           AND (?6 IS NULL OR action = ?6)
         ORDER BY at DESC, id DESC LIMIT ?7",
        &[&who.tenant_id, &at, &after_id, &q.get("resource_type"), &q.get("resource_id"), &q.get("action"), &page.fetch()],
    )
    .await?;
    rows_response(
        rows,
        &page,
        |r| Cursor {
            created_at: r.at,
            id: r.id.to_string(),
        },
        Row::render,
    )
}
