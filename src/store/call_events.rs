//! The `call_events` table: a call's history. Every row is written by [`row`], batched with the
//! change it records (the status change itself is `calls::set_status`), or alone by [`record`]
//! for what changes nothing else on the call.

use crate::platform::http::now_ms;
use crate::store::db::{self, row, Arg};
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::CallId;
use phone_agent_core::scheduling::CallStatus;
use serde_json::Value;
use worker::d1::{D1Database, D1PreparedStatement};

/// One history entry about a call.
pub struct Event<'a> {
    pub call_id: &'a CallId,
    /// `status`, `retry`, `reschedule`, `deferred`, `dispatch`, `email`, `note`, `callback` …
    pub kind: &'a str,
    pub from: Option<CallStatus>,
    pub to: Option<CallStatus>,
    /// `api`, `scheduler`, `session`, `webhook:<provider>`.
    pub source: &'a str,
    pub detail: &'a Value,
    pub at: i64,
}

impl<'a> Event<'a> {
    /// An entry of `kind` about `call_id` at `at` that moves nothing (`from`, `to` empty).
    pub fn new(
        call_id: &'a CallId,
        kind: &'a str,
        source: &'a str,
        detail: &'a Value,
        at: i64,
    ) -> Self {
        Event {
            call_id,
            kind,
            from: None,
            to: None,
            source,
            detail,
            at,
        }
    }

    /// Such an entry, recorded now.
    pub fn note(call_id: &'a CallId, kind: &'a str, source: &'a str, detail: &'a Value) -> Self {
        Self::new(call_id, kind, source, detail, now_ms())
    }

    /// The entry recording the call's move `from` (nothing: a new call) → `to`.
    pub fn moving(self, from: Option<CallStatus>, to: CallStatus) -> Self {
        Event {
            from,
            to: Some(to),
            ..self
        }
    }
}

/// When the entry is written, relative to the statement before it in the same batch.
pub(in crate::store) enum When<'a> {
    /// Always.
    Always,
    /// Only if the statement before it changed a row (the change it records happened).
    Changed,
    /// Only if the call `id` exists (inserted earlier in the batch, or not).
    CallExists(&'a CallId),
}

/// The insert of `event`, for the batch that makes the change it records.
pub(in crate::store) fn row(
    db: &D1Database,
    event: &Event<'_>,
    when: When<'_>,
) -> Result<D1PreparedStatement, StoreError> {
    let (condition, extra): (&str, Option<&dyn Arg>) = match &when {
        When::Always => ("1", None),
        When::Changed => ("changes() > 0", None),
        When::CallExists(id) => ("EXISTS (SELECT 1 FROM calls WHERE id = ?8)", Some(id)),
    };
    let from = event.from.map(CallStatus::as_str);
    let to = event.to.map(CallStatus::as_str);
    let detail = event.detail.to_string();
    let mut args: Vec<&dyn Arg> = vec![
        event.call_id,
        &event.at,
        &event.kind,
        &from,
        &to,
        &event.source,
        &detail,
    ];
    args.extend(extra);
    db::stmt(
        db,
        &format!(
            "INSERT INTO call_events (call_id, at, kind, from_status, to_status, source, detail)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE {condition}"
        ),
        &args,
    )
}

/// Commits `change` (a write to the call), `event` (only when `when` holds) and `more`, in one
/// batch (a transaction); whether `change` changed a row.
pub(in crate::store) async fn commit(
    db: &D1Database,
    change: D1PreparedStatement,
    (event, when): (&Event<'_>, When<'_>),
    more: Vec<D1PreparedStatement>,
) -> Result<bool, StoreError> {
    let mut statements = vec![change, row(db, event, when)?];
    statements.extend(more);
    let changes = db::batch(db, statements).await?;
    Ok(changes.first().copied().unwrap_or(0) > 0)
}

/// Records an entry on its own (nothing else about the call changes with it).
pub async fn record(db: &D1Database, event: &Event<'_>) -> Result<(), StoreError> {
    row(db, event, When::Always)?.run().await?;
    Ok(())
}

row! {
    /// A history entry as stored.
    pub struct Entry {
        at: i64,
        kind: String,
        from_status: Option<CallStatus>,
        to_status: Option<CallStatus>,
        source: String,
        detail: String,
    }
}

/// The history of the tenant's call `call_id`, oldest first.
pub async fn for_call(tenant: &Tenant, call_id: &str) -> Result<Vec<Entry>, StoreError> {
    tenant
        .all(
            &format!(
                "SELECT {} FROM call_events
                 WHERE call_id = ?2 AND call_id IN (SELECT id FROM calls WHERE tenant_id = ?1)
                 ORDER BY id",
                Entry::COLUMNS
            ),
            &[&call_id],
        )
        .await
}
