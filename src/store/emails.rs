//! The `emails` outbox: confirmation emails about calls, queued with the change they announce
//! and sent (leased, attempted, recorded) by the scheduler.

use crate::store::call_events::{self, Event, When};
use crate::store::db::{self, row, Arg};
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{CallId, EmailId};
use phone_agent_core::scheduling::email::EmailKind;
use serde_json::Value;
use worker::d1::{D1Database, D1PreparedStatement};

/// An email about to be queued.
pub struct NewEmail<'a> {
    pub id: EmailId,
    pub tenant_id: &'a str,
    pub call_id: &'a str,
    pub kind: EmailKind,
    pub sequence: u32,
    /// Resend's `Idempotency-Key` (per call, change and sequence).
    pub idempotency_key: String,
    pub to_email: &'a str,
    /// The Resend request body, or why none could be built (the email is then stored dead).
    pub request: Result<String, String>,
    pub now: i64,
}

/// Statements that queue `email` (and retire the call's older unsent ones, which it
/// supersedes) and show it on the call, all only if `only_if` (SQL with `?` placeholders for
/// `only_if_args`) selects a row: the email commits with the change it announces.
pub(in crate::store) fn queue(
    db: &D1Database,
    email: &NewEmail<'_>,
    only_if: &str,
    only_if_args: &[&dyn Arg],
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    let call_email_status = if email.request.is_err() {
        "failed"
    } else {
        "pending"
    };
    let mut supersede_args: Vec<&dyn Arg> = vec![&email.now, &email.call_id];
    supersede_args.extend_from_slice(only_if_args);
    Ok(vec![
        db::stmt(
            db,
            &format!(
                "UPDATE emails SET status = 'superseded', next_attempt_at = NULL, updated_at = ?1
                 WHERE call_id = ?2 AND status = 'pending' AND EXISTS ({only_if})"
            ),
            &supersede_args,
        )?,
        insert(db, email, only_if, only_if_args)?,
        db::stmt(
            db,
            "UPDATE calls SET email_status = ?1 WHERE id = ?2
               AND EXISTS (SELECT 1 FROM emails WHERE id = ?3)",
            &[&call_email_status, &email.call_id, &email.id],
        )?,
    ])
}

/// The insert of `email` into the outbox, only if `only_if` selects a row (placeholders from
/// `?13`) and no email has its idempotency key yet; stored dead when it has no body.
pub(in crate::store) fn insert(
    db: &D1Database,
    email: &NewEmail<'_>,
    only_if: &str,
    only_if_args: &[&dyn Arg],
) -> Result<D1PreparedStatement, StoreError> {
    let (status, request, error, next) = match &email.request {
        Ok(body) => ("pending", body.as_str(), None, Some(email.now)),
        Err(e) => ("dead", "{}", Some(e.as_str()), None),
    };
    let kind = email.kind.as_str();
    let mut insert_args: Vec<&dyn Arg> = vec![
        &email.id,
        &email.tenant_id,
        &email.call_id,
        &kind,
        &email.sequence,
        &email.idempotency_key,
        &email.to_email,
        &request,
        &status,
        &next,
        &error,
        &email.now,
    ];
    insert_args.extend_from_slice(only_if_args);
    db::stmt(
        db,
        &format!(
            "INSERT INTO emails (id, tenant_id, call_id, kind, sequence, idempotency_key, to_email,
               request, status, next_attempt_at, last_error, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12
             WHERE EXISTS ({only_if})
             ON CONFLICT (idempotency_key) DO NOTHING"
        ),
        &insert_args,
    )
}

row! {
    /// An email as the API shows it on its call.
    pub struct Email {
        id: EmailId,
        kind: String,
        sequence: i64,
        status: String,
        attempts: i64,
        next_attempt_at: Option<i64>,
        last_status_code: Option<i64>,
        last_error: Option<String>,
        provider_message_id: Option<String>,
        created_at: i64,
    }
}

/// The emails about the tenant's call `call_id`, oldest first.
pub async fn for_call(tenant: &Tenant, call_id: &str) -> Result<Vec<Email>, StoreError> {
    tenant
        .all(
            &format!(
                "SELECT {} FROM emails WHERE tenant_id = ?1 AND call_id = ?2
                 ORDER BY created_at, sequence",
                Email::COLUMNS
            ),
            &[&call_id],
        )
        .await
}

/// The pending emails of call `call_id` (any tenant: sent right after the API answers).
pub async fn pending_for_call_unscoped(
    db: &D1Database,
    call_id: &str,
) -> Result<Vec<String>, StoreError> {
    db::ids(
        db,
        "SELECT id FROM emails WHERE call_id = ?1 AND status = 'pending'",
        &[&call_id],
    )
    .await
}

/// Up to `limit` emails due at `now` and not leased, across tenants.
pub async fn due_unscoped(
    db: &D1Database,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    db::ids(
        db,
        "SELECT id FROM emails WHERE status = 'pending' AND next_attempt_at <= ?1
           AND (locked_until IS NULL OR locked_until < ?1)
         ORDER BY next_attempt_at LIMIT ?2",
        &[&now, &limit],
    )
    .await
}

/// When the next pending email is due, if any (across tenants).
pub async fn next_due_unscoped(db: &D1Database) -> Result<Option<i64>, StoreError> {
    db::earliest(
        db,
        "SELECT min(next_attempt_at) AS at FROM emails WHERE status = 'pending'",
        &[],
    )
    .await
}

row! {
    /// An email leased for one attempt.
    pub struct Leased {
        call_id: CallId,
        kind: String,
        sequence: i64,
        idempotency_key: String,
        request: String,
        attempts: i64,
    }
}

/// Leases email `id` until `until` if it is due at `now` and nobody holds it; the email as
/// leased.
pub async fn lease(
    db: &D1Database,
    id: &str,
    until: i64,
    now: i64,
) -> Result<Option<Leased>, StoreError> {
    db::first(
        db,
        &format!(
            "UPDATE emails SET locked_until = ?1 WHERE id = ?2 AND status = 'pending'
               AND next_attempt_at <= ?3 AND (locked_until IS NULL OR locked_until < ?3)
             RETURNING {}",
            Leased::COLUMNS
        ),
        &[&until, &id, &now],
    )
    .await
}

/// How one attempt at an email ended.
pub struct Attempted<'a> {
    pub email_id: &'a str,
    /// `pending` (to retry), `sent` or `dead`.
    pub status: &'a str,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub status_code: Option<i64>,
    pub error: Option<&'a str>,
    pub provider_message_id: Option<&'a str>,
    /// What the call shows: `retrying`, `sent` or `failed`.
    pub call_email_status: &'a str,
    pub at: i64,
    /// The call's history entry, when this attempt deserves one.
    pub history: Option<&'a Value>,
}

/// Records the attempt at leased `email`: the email's state, the call's email status (an
/// older email never overwrites a newer one's) and the history entry, in one batch.
pub async fn record_attempt(
    db: &D1Database,
    email: &Leased,
    attempted: &Attempted<'_>,
) -> Result<(), StoreError> {
    let mut statements = vec![
        db::stmt(
            db,
            "UPDATE emails SET status = ?1, attempts = ?2, next_attempt_at = ?3, locked_until = NULL,
               last_status_code = ?4, last_error = ?5, provider_message_id = COALESCE(?6, provider_message_id),
               updated_at = ?7
             WHERE id = ?8",
            &[
                &attempted.status,
                &attempted.attempts,
                &attempted.next_attempt_at,
                &attempted.status_code,
                &attempted.error,
                &attempted.provider_message_id,
                &attempted.at,
                &attempted.email_id,
            ],
        )?,
        db::stmt(
            db,
            "UPDATE calls SET email_status = ?1 WHERE id = ?2
               AND NOT EXISTS (SELECT 1 FROM emails WHERE call_id = ?2 AND sequence > ?3)",
            &[&attempted.call_email_status, &email.call_id, &email.sequence],
        )?,
    ];
    if let Some(detail) = attempted.history {
        let event = Event::new(&email.call_id, "email", "scheduler", detail, attempted.at);
        statements.push(call_events::row(db, &event, When::Always)?);
    }
    db::batch(db, statements).await?;
    Ok(())
}
