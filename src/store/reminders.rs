//! The `reminders` table: reminders before a scheduled call, planned with the call (see the
//! core's `reminders`), moved and cancelled in the batches that move and cancel it, and handed to
//! the email outbox by the sweep when due.

use crate::store::db::{self, row};
use crate::store::emails::{self, NewEmail};
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{CallId, ReminderId, TenantId};
use phone_agent_core::reminders::Channel;
use serde::Deserialize;
use worker::d1::{D1Database, D1PreparedStatement};

/// A reminder about to be stored with its call.
pub struct NewReminder {
    pub id: ReminderId,
    pub channel: Channel,
    pub before_minutes: u32,
    pub start_at: i64,
    pub due_at: i64,
    /// Its time had passed when planned: stored as `skipped`, never sent.
    pub skipped: bool,
}

/// The inserts of `reminders` for the tenant's call `call_id`, each only if the call exists
/// (the batch's call insert may have lost to an idempotent twin).
pub(in crate::store) fn plan(
    tenant: &Tenant,
    call_id: &CallId,
    reminders: &[NewReminder],
    now: i64,
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    reminders
        .iter()
        .map(|r| {
            let channel = r.channel.as_str();
            let status = if r.skipped { "skipped" } else { "pending" };
            tenant.stmt(
                "INSERT INTO reminders (tenant_id, id, call_id, channel, before_minutes, start_at,
                   due_at, status, created_at, updated_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9
                 WHERE EXISTS (SELECT 1 FROM calls WHERE tenant_id = ?1 AND id = ?3)
                 ON CONFLICT (call_id, channel, before_minutes) DO NOTHING",
                &[
                    &r.id,
                    call_id,
                    &channel,
                    &r.before_minutes,
                    &r.start_at,
                    &r.due_at,
                    &status,
                    &now,
                ],
            )
        })
        .collect()
}

/// Moves call `call_id`'s reminders to its new start `start_at`, if the reschedule in the same
/// batch happened (the call is at ICS `sequence`, changed at `now`): each is due again before the
/// new time (sent again if it already went out for the old one), or skipped if that has passed.
pub(in crate::store) fn moved(
    db: &D1Database,
    call_id: &CallId,
    start_at: i64,
    sequence: i64,
    now: i64,
) -> Result<D1PreparedStatement, StoreError> {
    db::stmt(
        db,
        "UPDATE reminders SET start_at = ?2, due_at = ?2 - before_minutes * 60000,
           status = CASE WHEN ?2 - before_minutes * 60000 > ?4 THEN 'pending' ELSE 'skipped' END,
           email_id = NULL, updated_at = ?4
         WHERE call_id = ?1 AND status != 'cancelled'
           AND EXISTS (SELECT 1 FROM calls WHERE id = ?1 AND ics_sequence = ?3 AND updated_at = ?4)",
        &[call_id, &start_at, &sequence, &now],
    )
}

/// Cancels call `call_id`'s reminders not yet handed to the outbox (a queued one not yet sent
/// is superseded by the cancellation email).
pub(in crate::store) fn cancelled(
    db: &D1Database,
    call_id: &CallId,
    now: i64,
) -> Result<D1PreparedStatement, StoreError> {
    db::stmt(
        db,
        "UPDATE reminders SET status = 'cancelled', updated_at = ?2
         WHERE call_id = ?1 AND status IN ('pending', 'skipped')",
        &[call_id, &now],
    )
}

row! {
    /// A reminder as the API shows it on its call.
    pub struct Reminder {
        id: ReminderId,
        channel: String,
        before_minutes: i64,
        due_at: i64,
        status: String,
        email_id: Option<String>,
    }
}

/// The reminders of the tenant's call `call_id`, earliest first.
pub async fn for_call(tenant: &Tenant, call_id: &str) -> Result<Vec<Reminder>, StoreError> {
    tenant
        .all(
            &format!(
                "SELECT {} FROM reminders WHERE tenant_id = ?1 AND call_id = ?2
                 ORDER BY due_at, channel",
                Reminder::COLUMNS
            ),
            &[&call_id],
        )
        .await
}

/// A due reminder with what its message says.
#[derive(Deserialize)]
pub struct Due {
    pub id: ReminderId,
    pub tenant_id: TenantId,
    pub call_id: CallId,
    pub channel: String,
    pub before_minutes: i64,
    pub start_at: i64,
    pub ics_sequence: i64,
    pub to_number: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub time_zone: Option<String>,
    pub agent_name: Option<String>,
}

/// Up to `limit` reminders due at `now`, across tenants, earliest first.
pub async fn due_unscoped(db: &D1Database, now: i64, limit: i64) -> Result<Vec<Due>, StoreError> {
    db::all(
        db,
        "SELECT r.id, r.tenant_id, r.call_id, r.channel, r.before_minutes, r.start_at,
                c.ics_sequence, c.to_number,
                c.contact_name, c.contact_email, c.time_zone, a.name AS agent_name
         FROM reminders r JOIN calls c ON c.id = r.call_id LEFT JOIN agents a ON a.id = c.agent_id
         WHERE r.status = 'pending' AND r.due_at <= ?1
         ORDER BY r.due_at LIMIT ?2",
        &[&now, &limit],
    )
    .await
}

/// When the next pending reminder is due, if any (across tenants).
pub async fn next_due_unscoped(db: &D1Database) -> Result<Option<i64>, StoreError> {
    db::earliest(
        db,
        "SELECT min(due_at) AS at FROM reminders WHERE status = 'pending'",
        &[],
    )
    .await
}

/// Hands reminder `id` to the email outbox as `email` (in one batch): only while it is pending
/// and its call is still scheduled for the start it was planned for, still ahead at `now`. The
/// reminder is then `queued` (naming its email), else `skipped`. A second sweep racing this one
/// finds it no longer pending, and the email's idempotency key makes a repeat insert nothing.
pub async fn hand_over(
    db: &D1Database,
    id: &ReminderId,
    email: Option<&NewEmail<'_>>,
    now: i64,
) -> Result<(), StoreError> {
    const STILL_DUE: &str = "SELECT 1 FROM reminders r JOIN calls c ON c.id = r.call_id
        WHERE r.id = ? AND r.status = 'pending' AND c.status = 'scheduled'
          AND c.start_at = r.start_at AND r.start_at > ?";
    let mut statements = Vec::new();
    let key = email.map(|e| e.idempotency_key.as_str());
    if let Some(email) = email {
        statements.push(emails::insert(db, email, STILL_DUE, &[id, &now])?);
    }
    statements.push(db::stmt(
        db,
        "UPDATE reminders SET
           email_id = (SELECT id FROM emails WHERE idempotency_key = ?2),
           status = CASE WHEN EXISTS (SELECT 1 FROM emails WHERE idempotency_key = ?2)
                         THEN 'queued' ELSE 'skipped' END,
           updated_at = ?3
         WHERE id = ?1 AND status = 'pending'",
        &[id, &key, &now],
    )?);
    db::batch(db, statements).await?;
    Ok(())
}
