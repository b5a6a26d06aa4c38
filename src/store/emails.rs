//! The `emails` outbox: confirmation emails about calls and appointments, queued with the
//! change they announce and sent (leased, attempted, recorded) by the scheduler.

use crate::store::call_events::{self, Event, When};
use crate::store::db::{self, row, Arg};
use crate::store::error::StoreError;
use crate::store::outbox::{self, Attempt, Queue};
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{CallId, EmailId};
use phone_agent_core::scheduling::email::EmailKind;
use serde_json::Value;
use worker::d1::{D1Database, D1PreparedStatement};

/// What an email is about: its row's `call_id` or `appointment_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About<'a> {
    Call(&'a str),
    Appointment(&'a str),
}

impl<'a> About<'a> {
    /// The outbox column naming it, and its id.
    fn column(self) -> (&'static str, &'a str) {
        match self {
            About::Call(id) => ("call_id", id),
            About::Appointment(id) => ("appointment_id", id),
        }
    }
}

/// An email about to be queued.
pub struct NewEmail<'a> {
    pub id: EmailId,
    pub tenant_id: &'a str,
    pub about: About<'a>,
    pub kind: EmailKind,
    pub sequence: u32,
    /// Resend's `Idempotency-Key` (per call or appointment, change and sequence).
    pub idempotency_key: String,
    pub to_email: &'a str,
    /// The Resend request body, or why none could be built (the email is then stored dead).
    pub request: Result<String, String>,
    pub now: i64,
}

/// Statements that queue `email` (and retire the older unsent ones about the same call or
/// appointment, which it supersedes) and show it on its call, all only if `only_if` (SQL with
/// `?` placeholders for `only_if_args`) selects a row: the email commits with the change it
/// announces.
pub(in crate::store) fn queue(
    db: &D1Database,
    email: &NewEmail<'_>,
    only_if: &str,
    only_if_args: &[&dyn Arg],
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    let (column, about_id) = email.about.column();
    let call_email_status = if email.request.is_err() {
        "failed"
    } else {
        "pending"
    };
    let mut supersede_args: Vec<&dyn Arg> = vec![&email.now, &about_id];
    supersede_args.extend_from_slice(only_if_args);
    let mut statements = vec![
        db::stmt(
            db,
            &format!(
                "UPDATE emails SET status = 'superseded', next_attempt_at = NULL, updated_at = ?1
                 WHERE {column} = ?2 AND status = 'pending' AND EXISTS ({only_if})"
            ),
            &supersede_args,
        )?,
        insert(db, email, only_if, only_if_args)?,
    ];
    if let About::Call(call_id) = email.about {
        statements.push(db::stmt(
            db,
            "UPDATE calls SET email_status = ?1 WHERE id = ?2
               AND EXISTS (SELECT 1 FROM emails WHERE id = ?3)",
            &[&call_email_status, &call_id, &email.id],
        )?);
    }
    Ok(statements)
}

/// The insert of `email` into the outbox, only if `only_if` selects a row (placeholders from
/// `?14`) and no email has its idempotency key yet; stored dead when it has no body.
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
    let (call_id, appointment_id) = match email.about {
        About::Call(id) => (Some(id), None),
        About::Appointment(id) => (None, Some(id)),
    };
    let mut insert_args: Vec<&dyn Arg> = vec![
        &email.id,
        &email.tenant_id,
        &call_id,
        &appointment_id,
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
            "INSERT INTO emails (id, tenant_id, call_id, appointment_id, kind, sequence,
               idempotency_key, to_email, request, status, next_attempt_at, last_error,
               created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13
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

impl Email {
    /// The API's JSON of this email (on its call or appointment).
    pub fn json(&self) -> Value {
        use crate::platform::http::rfc3339;
        serde_json::json!({"id": self.id, "kind": self.kind, "sequence": self.sequence,
            "status": self.status, "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.map(rfc3339),
            "last_status_code": self.last_status_code, "last_error": self.last_error,
            "resend_id": self.provider_message_id, "created_at": rfc3339(self.created_at)})
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

/// The emails about the tenant's appointment `appointment_id`, oldest first.
pub async fn for_appointment(
    tenant: &Tenant,
    appointment_id: &str,
) -> Result<Vec<Email>, StoreError> {
    tenant
        .all(
            &format!(
                "SELECT {} FROM emails WHERE tenant_id = ?1 AND appointment_id = ?2
                 ORDER BY created_at, sequence",
                Email::COLUMNS
            ),
            &[&appointment_id],
        )
        .await
}

/// The pending emails about `about` (any tenant: sent right after the change is answered).
pub async fn pending_unscoped(
    db: &D1Database,
    about: About<'_>,
) -> Result<Vec<String>, StoreError> {
    let (column, id) = about.column();
    db::ids(
        db,
        &format!("SELECT id FROM emails WHERE {column} = ?1 AND status = 'pending'"),
        &[&id],
    )
    .await
}

/// The outbox: pending emails, due at `next_attempt_at`.
pub const QUEUE: Queue = Queue::new("emails", "status = 'pending'", "next_attempt_at");

row! {
    /// An email leased for one attempt.
    pub struct Leased {
        /// `None` for an appointment's email.
        call_id: Option<CallId>,
        kind: String,
        sequence: i64,
        idempotency_key: String,
        request: String,
        attempts: i64,
    }
}

impl outbox::Leased for Leased {
    const QUEUE: &'static Queue = &QUEUE;
    const COLUMNS: &'static str = Leased::COLUMNS;
}

/// How one attempt at an email ended.
pub struct Attempted<'a> {
    pub email_id: &'a str,
    /// `status`: `pending` (to retry), `sent` or `dead`.
    pub attempt: Attempt<'a>,
    pub status_code: Option<i64>,
    pub provider_message_id: Option<&'a str>,
    /// What the call shows: `retrying`, `sent` or `failed`.
    pub call_email_status: &'a str,
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
        outbox::recorded(
            db,
            &QUEUE,
            &outbox::ROW,
            attempted.email_id,
            &attempted.attempt,
            ", last_status_code = ?7, provider_message_id = COALESCE(?8, provider_message_id)",
            &[&attempted.status_code, &attempted.provider_message_id],
        )?,
        db::stmt(
            db,
            "UPDATE calls SET email_status = ?1 WHERE id = ?2
               AND NOT EXISTS (SELECT 1 FROM emails WHERE call_id = ?2 AND sequence > ?3)",
            &[
                &attempted.call_email_status,
                &email.call_id,
                &email.sequence,
            ],
        )?,
    ];
    if let (Some(detail), Some(call_id)) = (attempted.history, &email.call_id) {
        let event = Event::new(call_id, "email", "scheduler", detail, attempted.attempt.at);
        statements.push(call_events::row(db, &event, When::Always)?);
    }
    db::batch(db, statements).await?;
    Ok(())
}
