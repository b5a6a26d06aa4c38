//! The `reminders` table: reminders before a scheduled call or a booked appointment, planned
//! with it (see the core's `reminders`), moved and cancelled in the batches that move and cancel
//! it, and handed to the email or text-message outbox by the sweep when due.

use crate::platform::http::new_id;
use crate::store::db::{self, row, Arg};
use crate::store::emails::{self, NewEmail};
use crate::store::error::StoreError;
use crate::store::messages::{self, Outgoing};
use crate::store::outbox::Queue;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{AppointmentId, CallId, ReminderId, TenantId};
use phone_agent_core::reminders::{Planned, Subject};
use serde::Deserialize;
use worker::d1::{D1Database, D1PreparedStatement};

/// What reminders are about: one call or one appointment.
#[derive(Clone, Copy)]
pub enum ReminderSubject<'a> {
    /// A scheduled call.
    Call(&'a CallId),
    /// A booked appointment.
    Appointment(&'a AppointmentId),
}

impl<'a> ReminderSubject<'a> {
    /// The column naming it in `reminders`.
    fn column(self) -> &'static str {
        match self {
            ReminderSubject::Call(_) => "call_id",
            ReminderSubject::Appointment(_) => "appointment_id",
        }
    }

    /// Its id, as a statement's argument.
    fn id(self) -> &'a dyn Arg {
        match self {
            ReminderSubject::Call(id) => id,
            ReminderSubject::Appointment(id) => id,
        }
    }
}

/// The inserts of the reminders `planned` for the tenant's `subject`, each with a fresh id and
/// only if the subject is there: the call exists (the batch's insert may have lost to an
/// idempotent twin), the appointment is booked at the planned start (the batch's booking may
/// have lost the slot).
pub(in crate::store) fn insert(
    tenant: &Tenant,
    subject: ReminderSubject,
    planned: &[Planned],
    now: i64,
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    let (kind, there) = match subject {
        ReminderSubject::Call(_) => (
            Subject::Call,
            "SELECT 1 FROM calls WHERE tenant_id = ?1 AND id = ?4",
        ),
        ReminderSubject::Appointment(_) => (
            Subject::Appointment,
            "SELECT 1 FROM appointments WHERE tenant_id = ?1 AND id = ?4
               AND status = 'booked' AND slot_start = ?7",
        ),
    };
    let column = subject.column();
    let sql = format!(
        "INSERT INTO reminders (tenant_id, id, subject, {column}, channel, before_minutes,
           start_at, due_at, status, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10
         WHERE EXISTS ({there})
         ON CONFLICT ({column}, channel, before_minutes) DO NOTHING"
    );
    planned
        .iter()
        .map(|p| {
            let id: ReminderId = new_id()?;
            let status = if p.skipped { "skipped" } else { "pending" };
            tenant.stmt(
                &sql,
                &[
                    &id,
                    &kind.as_str(),
                    subject.id(),
                    &p.channel.as_str(),
                    &p.before_minutes,
                    &p.start_at,
                    &p.due_at,
                    &status,
                    &now,
                ],
            )
        })
        .collect()
}

/// Moves `subject`'s reminders to its new start `start_at`, if the reschedule in the same batch
/// happened (the call is at ICS `sequence`, changed at `now`; the appointment is booked at
/// `start_at` and `sequence`): each is due again before the new time (sent again if it already
/// went out for the old one), or skipped if that has passed.
pub(in crate::store) fn moved(
    db: &D1Database,
    subject: ReminderSubject,
    start_at: i64,
    sequence: i64,
    now: i64,
) -> Result<D1PreparedStatement, StoreError> {
    let happened = match subject {
        ReminderSubject::Call(_) => {
            "SELECT 1 FROM calls WHERE id = ?1 AND ics_sequence = ?3 AND updated_at = ?4"
        }
        ReminderSubject::Appointment(_) => {
            "SELECT 1 FROM appointments WHERE id = ?1 AND status = 'booked'
               AND slot_start = ?2 AND sequence = ?3"
        }
    };
    let column = subject.column();
    db::stmt(
        db,
        &format!(
            "UPDATE reminders SET start_at = ?2, due_at = ?2 - before_minutes * 60000,
               status = CASE WHEN ?2 - before_minutes * 60000 > ?4 THEN 'pending' ELSE 'skipped' END,
               email_id = NULL, message_id = NULL, updated_at = ?4
             WHERE {column} = ?1 AND status != 'cancelled' AND EXISTS ({happened})"
        ),
        &[subject.id(), &start_at, &sequence, &now],
    )
}

/// Cancels `subject`'s reminders not yet handed to the outbox (a queued one not yet sent is
/// superseded by the cancellation email): a call's in the batch that follows its cancellation,
/// an appointment's if the cancellation in the same batch happened (it is canceled at
/// `sequence`).
pub(in crate::store) fn cancelled(
    db: &D1Database,
    subject: ReminderSubject,
    sequence: i64,
    now: i64,
) -> Result<D1PreparedStatement, StoreError> {
    let happened = match subject {
        ReminderSubject::Call(_) => "",
        ReminderSubject::Appointment(_) => {
            "AND EXISTS (SELECT 1 FROM appointments WHERE id = ?1 AND status = 'canceled'
                           AND sequence = ?2)"
        }
    };
    let column = subject.column();
    db::stmt(
        db,
        &format!(
            "UPDATE reminders SET status = 'cancelled', updated_at = ?3
             WHERE {column} = ?1 AND status IN ('pending', 'skipped') {happened}"
        ),
        &[subject.id(), &sequence, &now],
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
crate::store::db::from_row!(Due {
    id,
    tenant_id,
    call_id,
    channel,
    before_minutes,
    start_at,
    ics_sequence,
    to_number,
    from_number,
    provider,
    base_url,
    contact_name,
    contact_email,
    time_zone,
    agent_name
});

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
crate::store::db::from_row!(DueAppointment {
    id,
    tenant_id,
    appointment_id,
    channel,
    before_minutes,
    start_at,
    agent_name,
    provider,
    our_number,
    base_url
});

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
