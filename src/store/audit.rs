//! Audit log: every mutation through the API leaves who, what, before/after and request id.

use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{log_line, now_ms};
use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::page::{self, Listed, Page, PageOf};
use crate::store::tenant::Tenant;
use phone_agent_core::pagination::Cursor;
use serde_json::{json, Value};
use worker::d1::{D1Database, D1PreparedStatement};

row! {
    /// An audit entry as stored (`before`/`after` are JSON text).
    pub struct Entry from "audit_log WHERE tenant_id = ?1" {
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
}

impl Listed for Entry {
    const ORDER: &'static str = "at";
    const INTEGER_ID: bool = true;
    fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.at,
            id: self.id.to_string(),
        }
    }
}

/// What an audit-log list is narrowed to (each `None` is no filter).
pub struct Filter<'a> {
    /// The key id, or `admin` for the bootstrap key.
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    /// At or after (ms).
    pub from: Option<i64>,
    /// Before (ms).
    pub to: Option<i64>,
}

/// One page of the tenant's audit entries, newest first.
pub async fn list(
    tenant: &Tenant,
    filter: &Filter<'_>,
    window: &Page,
) -> Result<PageOf<Entry>, StoreError> {
    page::list(
        tenant,
        &format!(
            "{} AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR action = ?3)
               AND (?4 IS NULL OR resource_type = ?4) AND (?5 IS NULL OR resource_id = ?5)
               AND (?6 IS NULL OR at >= ?6) AND (?7 IS NULL OR at < ?7)",
            Entry::SELECT
        ),
        &[
            &filter.actor,
            &filter.action,
            &filter.resource_type,
            &filter.resource_id,
            &filter.from,
            &filter.to,
        ],
        window,
    )
    .await
}

/// What changed, for one audit entry.
pub struct Change<'a> {
    /// `<resource>.<verb>`, e.g. `endpoint.create`.
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

impl<'a> Change<'a> {
    /// `action` on `resource` (type, id), from `before` to `after`.
    fn new(
        action: &'a str,
        resource: (&'a str, &'a str),
        before: Option<&'a Value>,
        after: Option<&'a Value>,
    ) -> Self {
        Change {
            action,
            resource_type: resource.0,
            resource_id: Some(resource.1),
            before,
            after,
        }
    }

    /// The creation of `resource` (type, id) as `after`.
    pub fn created(action: &'a str, resource: (&'a str, &'a str), after: &'a Value) -> Self {
        Change::new(action, resource, None, Some(after))
    }

    /// A change of `resource` from `before` to `after`.
    pub fn updated(
        action: &'a str,
        resource: (&'a str, &'a str),
        before: &'a Value,
        after: &'a Value,
    ) -> Self {
        Change::new(action, resource, Some(before), Some(after))
    }

    /// The deletion of `resource`, which was `before`.
    pub fn deleted(action: &'a str, resource: (&'a str, &'a str), before: &'a Value) -> Self {
        Change::new(action, resource, Some(before), None)
    }

    /// An action on `resource` that is not a change of its fields (a replay, a secret read or
    /// rotated), with what it did, if anything.
    pub fn done(action: &'a str, resource: (&'a str, &'a str), detail: Option<&'a Value>) -> Self {
        Change::new(action, resource, None, detail)
    }
}

/// Runs `writes` and the audit entry of `change` in one batch: both or neither.
pub(in crate::store) async fn batch_with_entry(
    db: &D1Database,
    mut writes: Vec<D1PreparedStatement>,
    who: &Principal,
    change: &Change<'_>,
) -> Result<(), StoreError> {
    writes.push(statement(db, who, change)?);
    db::batch(db, writes).await?;
    Ok(())
}

/// The audit insert as a statement, to batch with the mutation it describes (atomic); the
/// entry belongs to `who`'s tenant.
fn statement(
    db: &D1Database,
    who: &Principal,
    change: &Change<'_>,
) -> Result<D1PreparedStatement, StoreError> {
    db::stmt(
        db,
        "INSERT INTO audit_log (tenant_id, actor, action, resource_type, resource_id, before, after, request_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &[
            &who.tenant_id,
            &who.actor,
            &change.action,
            &change.resource_type,
            &change.resource_id,
            &change.before.map(Value::to_string),
            &change.after.map(Value::to_string),
            &who.request_id,
            &now_ms(),
        ],
    )
}

/// Records a change made through the API; see [`record`].
pub async fn log(app: &App, who: &Principal, change: &Change<'_>) {
    let db = match app.db() {
        Ok(db) => db,
        Err(e) => {
            log_line(
                json!({"level": "error", "msg": "audit entry lost", "action": change.action, "error": e.message}),
            );
            return;
        }
    };
    record(&db, who, change).await;
}

/// Records a change made by an already-committed write. A failure here is logged, not
/// returned: the change happened, and the caller must not retry it because of the log.
async fn record(db: &D1Database, who: &Principal, change: &Change<'_>) {
    let result = match statement(db, who, change) {
        Ok(stmt) => stmt.run().await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = result {
        log_line(
            json!({"level": "error", "msg": "audit entry lost", "action": change.action,
            "resource_id": change.resource_id, "request_id": who.request_id, "error": error}),
        );
    }
}
