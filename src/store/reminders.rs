//! The `reminders` table: reminders before a scheduled call, planned with the call (see the
//! core's `reminders`), moved and cancelled in the batches that move and cancel it, and handed to
//! the email or text-message outbox by the sweep when due.

use crate::store::db::{self, row};
use crate::store::emails::{self, NewEmail};
use crate::store::error::StoreError;
use crate::store::messages::{self, Outgoing};
use crate::store::outbox::Queue;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{AppointmentId, CallId, ReminderId, TenantId};
use phone_agent_core::reminders::{Channel, Subject};
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
           email_id = NULL, message_id = NULL, updated_at = ?4
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

/// The inserts of `reminders` for the tenant's appointment `appointment_id`, each only if the
/// appointment exists (the batch's booking may have lost the slot).
pub(in crate::store) fn plan_appointment(
    tenant: &Tenant,
    appointment_id: &AppointmentId,
    reminders: &[NewReminder],
    now: i64,
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    reminders
        .iter()
        .map(|r| {
            let channel = r.channel.as_str();
            let status = if r.skipped { "skipped" } else { "pending" };
            tenant.stmt(
                "INSERT INTO reminders (tenant_id, id, subject, appointment_id, channel,
                   before_minutes, start_at, due_at, status, created_at, updated_at)
                 SELECT ?1, ?2, 'appointment', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9
                 WHERE EXISTS (SELECT 1 FROM appointments WHERE tenant_id = ?1 AND id = ?3
                                 AND status = 'booked' AND slot_start = ?6)
                 ON CONFLICT (appointment_id, channel, before_minutes) DO NOTHING",
                &[
                    &r.id,
                    appointment_id,
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

/// Moves appointment `id`'s reminders to its new start `start_at`, if the reschedule in the
/// same batch happened (the appointment is booked at `start_at` and `sequence`): as [`moved`].
pub(in crate::store) fn appointment_moved(
    db: &D1Database,
    id: &AppointmentId,
    start_at: i64,
    sequence: i64,
    now: i64,
) -> Result<D1PreparedStatement, StoreError> {
    db::stmt(
        db,
        "UPDATE reminders SET start_at = ?2, due_at = ?2 - before_minutes * 60000,
           status = CASE WHEN ?2 - before_minutes * 60000 > ?4 THEN 'pending' ELSE 'skipped' END,
           email_id = NULL, message_id = NULL, updated_at = ?4
         WHERE appointment_id = ?1 AND status != 'cancelled'
           AND EXISTS (SELECT 1 FROM appointments WHERE id = ?1 AND status = 'booked'
                         AND slot_start = ?2 AND sequence = ?3)",
        &[id, &start_at, &sequence, &now],
    )
}

/// Cancels appointment `id`'s reminders not yet handed to the outbox, if the cancellation in
/// the same batch happened (the appointment is canceled at `sequence`).
pub(in crate::store) fn appointment_cancelled(
    db: &D1Database,
    id: &AppointmentId,
    sequence: i64,
    now: i64,
) -> Result<D1PreparedStatement, StoreError> {
    db::stmt(
        db,
        "UPDATE reminders SET status = 'cancelled', updated_at = ?3
         WHERE appointment_id = ?1 AND status IN ('pending', 'skipped')
           AND EXISTS (SELECT 1 FROM appointments WHERE id = ?1 AND status = 'canceled'
                         AND sequence = ?2)",
        &[id, &sequence, &now],
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
        message_id: Option<String>,
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
    pub from_number: Option<String>,
    pub provider: String,
    pub base_url: Option<String>,
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
                c.ics_sequence, c.to_number, c.from_number, c.provider, c.base_url,
                c.contact_name, c.contact_email, c.time_zone, a.name AS agent_name
         FROM reminders r JOIN calls c ON c.id = r.call_id LEFT JOIN agents a ON a.id = c.agent_id
         WHERE r.status = 'pending' AND r.due_at <= ?1 AND r.call_id IS NOT NULL
         ORDER BY r.due_at LIMIT ?2",
        &[&now, &limit],
    )
    .await
}

/// A due reminder of an appointment, with what its text is sent through (the appointment
/// itself is read when it is handed over).
#[derive(Deserialize)]
pub struct DueAppointment {
    pub id: ReminderId,
    pub tenant_id: TenantId,
    pub appointment_id: AppointmentId,
    pub channel: String,
    pub before_minutes: i64,
    pub start_at: i64,
    pub agent_name: Option<String>,
    /// The carrier and our number of the call that booked it, if one did.
    pub provider: Option<String>,
    pub our_number: Option<String>,
    pub base_url: Option<String>,
}

/// Up to `limit` appointment reminders due at `now`, across tenants, earliest first.
pub async fn due_appointments_unscoped(
    db: &D1Database,
    now: i64,
    limit: i64,
) -> Result<Vec<DueAppointment>, StoreError> {
    db::all(
        db,
        "SELECT r.id, r.tenant_id, r.appointment_id, r.channel, r.before_minutes, r.start_at,
                a.name AS agent_name, c.provider, c.base_url,
                CASE c.direction WHEN 'inbound' THEN c.to_number ELSE c.from_number END
                  AS our_number
         FROM reminders r JOIN appointments p ON p.id = r.appointment_id
           LEFT JOIN agents a ON a.id = p.agent_id LEFT JOIN calls c ON c.id = p.call_id
         WHERE r.status = 'pending' AND r.due_at <= ?1 AND r.appointment_id IS NOT NULL
         ORDER BY r.due_at LIMIT ?2",
        &[&now, &limit],
    )
    .await
}

/// The reminders waiting to be handed over, due at `due_at` (handed over in one batch with
/// their outbox row, never leased).
pub const QUEUE: Queue = Queue::new("reminders", "status = 'pending'", "due_at");

/// The outbox row a due reminder becomes.
pub enum Handed<'a> {
    /// An `emails` row of kind `reminder`.
    Email(&'a NewEmail<'a>),
    /// A `messages` row of kind `reminder`.
    Text(&'a Outgoing<'a>),
}

/// Hands reminder `id` (about a call or an appointment) to its outbox as `row` (in one batch):
/// only while it is pending and its call is still scheduled (its appointment still booked) for
/// the start it was planned for, still ahead at `now`. The reminder
/// is then `queued` (naming its row), else `skipped` (also when there is no `row`: not
/// reachable). A second sweep racing this one finds it no longer pending, and an email's
/// idempotency key makes a repeat insert nothing.
pub async fn hand_over(
    db: &D1Database,
    tenant_id: &TenantId,
    (subject, id): (Subject, &ReminderId),
    row: Option<Handed<'_>>,
    now: i64,
) -> Result<(), StoreError> {
    const CALL_STILL_DUE: &str = "SELECT 1 FROM reminders r JOIN calls c ON c.id = r.call_id
        WHERE r.id = ? AND r.status = 'pending' AND c.status = 'scheduled'
          AND c.start_at = r.start_at AND r.start_at > ?";
    const APPOINTMENT_STILL_DUE: &str = "SELECT 1 FROM reminders r
        JOIN appointments p ON p.id = r.appointment_id
        WHERE r.id = ? AND r.status = 'pending' AND p.status = 'booked'
          AND p.slot_start = r.start_at AND r.start_at > ?";
    let still_due = match subject {
        Subject::Call => CALL_STILL_DUE,
        Subject::Appointment => APPOINTMENT_STILL_DUE,
    };
    let mut statements = Vec::new();
    let (email_key, message_id) = match &row {
        Some(Handed::Email(email)) => {
            statements.push(emails::insert(db, email, still_due, &[id, &now])?);
            (Some(email.idempotency_key.as_str()), None)
        }
        Some(Handed::Text(text)) => {
            statements.push(messages::queue_if(
                db,
                tenant_id,
                text,
                still_due,
                &[id, &now],
            )?);
            (None, Some(text.id))
        }
        None => (None, None),
    };
    statements.push(db::stmt(
        db,
        "UPDATE reminders SET
           email_id = (SELECT id FROM emails WHERE idempotency_key = ?2),
           message_id = (SELECT id FROM messages WHERE id = ?3),
           status = CASE WHEN EXISTS (SELECT 1 FROM emails WHERE idempotency_key = ?2)
                           OR EXISTS (SELECT 1 FROM messages WHERE id = ?3)
                         THEN 'queued' ELSE 'skipped' END,
           updated_at = ?4
         WHERE id = ?1 AND status = 'pending'",
        &[id, &email_key, &message_id, &now],
    )?);
    db::batch(db, statements).await?;
    Ok(())
}
