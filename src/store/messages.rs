//! The `messages` table: text messages. Outbound ones are an outbox the scheduler leases,
//! attempts and records (the `recordings` job's lease shape); inbound ones are kept for the
//! list. A carrier's message id is unique, so a replayed webhook finds the row it made.

use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::outbox::{self, Attempt, Queue, Step};
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{MessageId, TenantId};
use worker::d1::{D1Database, D1PreparedStatement};

row! {
    /// A message as listed.
    pub struct Message from "messages WHERE tenant_id = ?1" {
        id: MessageId,
        direction: String,
        kind: String,
        provider: String,
        from_number: String,
        to_number: String,
        body: String,
        call_id: Option<String>,
        status: String,
        provider_message_id: Option<String>,
        attempts: i64,
        last_error: Option<String>,
        created_at: i64,
        updated_at: i64,
    }
}

listed!(
    Message,
    created_at,
    Message::SELECT,
    ["direction", "status", "call_id"]
);

/// An outbound message about to be queued.
pub struct Outgoing<'a> {
    pub id: &'a MessageId,
    /// `message`, `confirmation`, `keyword_reply` or `reminder`.
    pub kind: &'a str,
    pub provider: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    pub call_id: Option<&'a str>,
    pub base_url: &'a str,
    pub now: i64,
}

/// Queues `m` for the tenant, due now.
pub async fn queue(tenant: &Tenant, m: &Outgoing<'_>) -> Result<Message, StoreError> {
    tenant
        .first(
            &format!(
                "INSERT INTO messages (tenant_id, id, direction, kind, provider, from_number,
                   to_number, body, call_id, status, base_url, next_attempt_at, created_at,
                   updated_at)
                 VALUES (?1, ?2, 'outbound', ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, ?10, ?10)
                 RETURNING {}",
                Message::COLUMNS
            ),
            &[
                m.id,
                &m.kind,
                &m.provider,
                &m.from,
                &m.to,
                &m.body,
                &m.call_id,
                &m.base_url,
                &m.now,
            ],
        )
        .await?
        .ok_or(StoreError::Missing("queued message not returned"))
}

/// [`queue`] as a statement of a batch, of the tenant `tenant_id`, and only if `only_if` (SQL
/// with its placeholders from `?11`) selects a row: a reminder hands its text over with its
/// own status change.
pub(in crate::store) fn queue_if(
    db: &D1Database,
    tenant_id: &TenantId,
    m: &Outgoing<'_>,
    only_if: &str,
    only_if_args: &[&dyn db::Arg],
) -> Result<D1PreparedStatement, StoreError> {
    let mut args: Vec<&dyn db::Arg> = vec![
        tenant_id,
        m.id,
        &m.kind,
        &m.provider,
        &m.from,
        &m.to,
        &m.body,
        &m.call_id,
        &m.base_url,
        &m.now,
    ];
    args.extend_from_slice(only_if_args);
    db::stmt(
        db,
        &format!(
            "INSERT INTO messages (tenant_id, id, direction, kind, provider, from_number,
               to_number, body, call_id, status, base_url, next_attempt_at, created_at,
               updated_at)
             SELECT ?1, ?2, 'outbound', ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, ?10, ?10
             WHERE EXISTS ({only_if})"
        ),
        &args,
    )
}

/// An inbound message about to be kept.
pub struct Incoming<'a> {
    pub id: &'a MessageId,
    pub provider: &'a str,
    pub provider_message_id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    pub now: i64,
}

/// Keeps an inbound message; a carrier's retry of the same message keeps nothing.
pub async fn receive(tenant: &Tenant, m: &Incoming<'_>) -> Result<(), StoreError> {
    tenant
        .run(
            "INSERT INTO messages (tenant_id, id, direction, kind, provider, provider_message_id,
               from_number, to_number, body, status, created_at, updated_at)
             VALUES (?1, ?2, 'inbound', 'message', ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?8)
             ON CONFLICT (provider, provider_message_id) DO NOTHING",
            &[
                m.id,
                &m.provider,
                &m.provider_message_id,
                &m.from,
                &m.to,
                &m.body,
                &m.now,
            ],
        )
        .await?;
    Ok(())
}

/// The tenant's message `id`, if any.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Message>, StoreError> {
    tenant
        .first(&format!("{} AND id = ?2", Message::SELECT), &[&id])
        .await
}

row! {
    /// Our outbound message a carrier reports on.
    pub struct Sent {
        id: MessageId,
        tenant_id: TenantId,
        call_id: Option<String>,
    }
}

/// Records a carrier's delivery report on our message with its id (`sent`, `delivered`,
/// `failed`), across tenants (the report names only the carrier's id); `None` when the id is
/// not one of our messages. A report never moves a message back (a late `sent` after
/// `delivered`).
pub async fn report_unscoped(
    db: &D1Database,
    provider: &str,
    provider_message_id: &str,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<Option<Sent>, StoreError> {
    let rank = "CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'failed' THEN 2
                ELSE 0 END";
    let new_rank = "CASE ?3 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'failed' THEN 2
                    ELSE 0 END";
    db::run(
        db,
        &format!(
            "UPDATE messages SET status = ?3, last_error = COALESCE(?4, last_error), updated_at = ?5
             WHERE provider = ?1 AND provider_message_id = ?2 AND direction = 'outbound'
               AND {rank} < {new_rank}"
        ),
        &[&provider, &provider_message_id, &status, &error, &now],
    )
    .await?;
    db::first(
        db,
        &format!(
            "SELECT {} FROM messages WHERE provider = ?1 AND provider_message_id = ?2",
            Sent::COLUMNS
        ),
        &[&provider, &provider_message_id],
    )
    .await
}

/// The outbox: pending outbound messages, due at `next_attempt_at`.
pub const QUEUE: Queue = Queue::new("messages", "status = 'pending'", "next_attempt_at");

row! {
    /// A message leased for one attempt.
    pub struct Leased {
        tenant_id: TenantId,
        kind: String,
        provider: String,
        from_number: String,
        to_number: String,
        body: String,
        base_url: Option<String>,
        attempts: i64,
    }
}

impl outbox::Leased for Leased {
    const QUEUE: &'static Queue = &QUEUE;
    const COLUMNS: &'static str = Leased::COLUMNS;
}

/// Records attempt `a` at message `id` (`status`: `pending` to retry, `sent`, `skipped` or
/// `dead`) and releases its lease. A delivery report that arrived before this (the carrier can
/// be faster than our bookkeeping) is not overwritten.
pub async fn record_attempt(
    db: &D1Database,
    id: &str,
    a: &Attempt<'_>,
    provider_message_id: Option<&str>,
) -> Result<(), StoreError> {
    let step = Step {
        status: (
            "status",
            "CASE WHEN status IN ('delivered', 'failed') THEN status ELSE ?1 END",
        ),
        ..outbox::ROW
    };
    let more = ", provider_message_id = COALESCE(?7, provider_message_id)";
    outbox::recorded(db, &QUEUE, &step, id, a, more, &[&provider_message_id])?
        .run()
        .await?;
    Ok(())
}
