//! Audit log: every mutation through the API leaves who, what, before/after and request id.

use crate::api::Principal;
use crate::db;
use crate::http::{now_ms, ApiError};
use serde_json::Value;
use worker::d1::{D1Database, D1PreparedStatement};

/// What changed, for one audit entry.
pub struct Change<'a> {
    /// `<resource>.<verb>`, e.g. `endpoint.create`.
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

/// The audit insert as a statement, to batch with the mutation it describes (atomic).
pub fn statement(db: &D1Database, who: &Principal, change: &Change<'_>) -> Result<D1PreparedStatement, ApiError> {
    db::stmt(
        db,
        "INSERT INTO audit_log (tenant_id, actor, action, resource_type, resource_id, before, after, request_id, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

/// Records a change on its own (when the mutation was not a single batch).
pub async fn record(db: &D1Database, who: &Principal, change: &Change<'_>) -> Result<(), ApiError> {
    statement(db, who, change)?.run().await?;
    Ok(())
}
