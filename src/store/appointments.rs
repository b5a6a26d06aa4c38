//! The `appointments` table: slots booked on an agent's calendar. The partial unique index on
//! (tenant, agent, slot start) over live rows is what refuses a second booking of a slot, so a
//! booking is one guarded insert and never a read-then-write.

use crate::store::db::{self, row};
use crate::store::emails::{self, NewEmail};
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::reminders::{self, ReminderSubject};
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{AgentId, AppointmentId, CallId};
use phone_agent_core::reminders::Planned;

row! {
    /// An appointment as stored.
    pub struct Appointment from "appointments WHERE tenant_id = ?1" {
        id: AppointmentId,
        agent_id: AgentId,
        call_id: Option<CallId>,
        slot_start: i64,
        slot_end: i64,
        time_zone: String,
        /// `booked` or `canceled`.
        status: String,
        caller_number: Option<String>,
        name: Option<String>,
        note: Option<String>,
        /// Where the invitations go.
        email: Option<String>,
        sequence: i64,
        created_at: i64,
        updated_at: i64,
    }
}

listed!(
    Appointment,
    created_at,
    Appointment::SELECT,
    ["agent_id", "status", "call_id"]
);

/// An appointment about to be booked.
pub struct NewAppointment<'a> {
    pub id: &'a AppointmentId,
    pub agent_id: &'a AgentId,
    pub call_id: Option<&'a CallId>,
    pub slot_start: i64,
    pub slot_end: i64,
    pub time_zone: &'a str,
    pub caller_number: Option<&'a str>,
    pub name: Option<&'a str>,
    pub note: Option<&'a str>,
    pub email: Option<&'a str>,
    pub now: i64,
}

impl NewAppointment<'_> {
    /// The row this booking stores, for what is composed before it (its invitation).
    pub fn booked(&self) -> Appointment {
        Appointment {
            id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            call_id: self.call_id.cloned(),
            slot_start: self.slot_start,
            slot_end: self.slot_end,
            time_zone: self.time_zone.to_owned(),
            status: "booked".to_owned(),
            caller_number: self.caller_number.map(str::to_owned),
            name: self.name.map(str::to_owned),
            note: self.note.map(str::to_owned),
            email: self.email.map(str::to_owned),
            sequence: 0,
            created_at: self.now,
            updated_at: self.now,
        }
    }
}

/// What became of a booking.
#[derive(Debug, PartialEq, Eq)]
pub enum Booking {
    Booked,
    /// The agent has a live appointment at that start.
    SlotTaken,
    /// The call has its live appointment already.
    CallHasOne,
}

/// Books `new` in one statement: inserted only if its call has no live appointment yet, and
/// only if no live appointment of the agent starts then (the unique index; the conflict is
/// skipped, not raised, so the race's loser is told which rule stopped it). Its invitation
/// `email` is queued in the same batch, only if the insert won.
pub async fn book(
    tenant: &Tenant,
    new: &NewAppointment<'_>,
    email: Option<&NewEmail<'_>>,
    reminders: &[Planned],
) -> Result<Booking, StoreError> {
    let mut statements = vec![tenant.stmt(
        "INSERT INTO appointments (tenant_id, id, agent_id, call_id, slot_start, slot_end,
           time_zone, status, caller_number, name, note, email, sequence, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'booked', ?8, ?9, ?10, ?11, 0, ?12, ?12
         WHERE ?4 IS NULL OR NOT EXISTS (SELECT 1 FROM appointments
           WHERE tenant_id = ?1 AND call_id = ?4 AND status != 'canceled')
         ON CONFLICT DO NOTHING",
        &[
            new.id,
            new.agent_id,
            &new.call_id,
            &new.slot_start,
            &new.slot_end,
            &new.time_zone,
            &new.caller_number,
            &new.name,
            &new.note,
            &new.email,
            &new.now,
        ],
    )?];
    if let Some(email) = email {
        // The id is fresh: the row exists only if this insert won.
        statements.extend(emails::queue(
            tenant.db(),
            email,
            "SELECT 1 FROM appointments WHERE id = ?",
            &[new.id],
        )?);
    }
    let subject = ReminderSubject::Appointment(new.id);
    statements.extend(reminders::insert(tenant, subject, reminders, new.now)?);
    let changed = db::batch(tenant.db(), statements).await?;
    if changed.first() == Some(&1) {
        return Ok(Booking::Booked);
    }
    match new.call_id {
        Some(call_id) if live_of_call(tenant, call_id).await?.is_some() => Ok(Booking::CallHasOne),
        _ => Ok(Booking::SlotTaken),
    }
}

/// The live appointment booked by the tenant's call `call_id`, if any.
pub async fn live_of_call(
    tenant: &Tenant,
    call_id: &CallId,
) -> Result<Option<Appointment>, StoreError> {
    tenant
        .first(
            &format!(
                "{} AND call_id = ?2 AND status != 'canceled'",
                Appointment::SELECT
            ),
            &[call_id],
        )
        .await
}

/// The agent's booked, not yet ended appointments that the call `call_id` booked or that are
/// for `caller`: what a caller may ask the tools to change (the core picks among them).
pub async fn of_caller(
    tenant: &Tenant,
    agent_id: &AgentId,
    call_id: &CallId,
    caller: Option<&str>,
    now: i64,
) -> Result<Vec<Appointment>, StoreError> {
    tenant
        .all(
            &format!(
                "{} AND agent_id = ?2 AND status = 'booked' AND slot_end > ?5
                   AND (call_id = ?3 OR (?4 IS NOT NULL AND caller_number = ?4))
                 ORDER BY slot_start LIMIT 20",
                Appointment::SELECT
            ),
            &[agent_id, call_id, &caller, &now],
        )
        .await
}

/// The starts of the agent's live appointments in `[from, to)`.
pub async fn booked_starts(
    tenant: &Tenant,
    agent_id: &AgentId,
    (from, to): (i64, i64),
) -> Result<Vec<i64>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Start {
        slot_start: i64,
    }
    crate::store::db::from_row!(Start { slot_start });
    let rows: Vec<Start> = tenant
        .all(
            "SELECT slot_start FROM appointments WHERE tenant_id = ?1 AND agent_id = ?2
               AND status != 'canceled' AND slot_start >= ?3 AND slot_start < ?4",
            &[agent_id, &from, &to],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.slot_start).collect())
}

/// The tenant's appointment `id`, if any.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Appointment>, StoreError> {
    tenant
        .first(&format!("{} AND id = ?2", Appointment::SELECT), &[&id])
        .await
}

/// Cancels `current` (the tenant's booked appointment as read: freeing its slot, bumping its
/// sequence), with its `email` queued in the same batch; false when the row changed since it
/// was read (canceled or moved meanwhile), and then nothing is written.
pub async fn cancel(
    tenant: &Tenant,
    current: &Appointment,
    now: i64,
    email: Option<&NewEmail<'_>>,
) -> Result<bool, StoreError> {
    let statement = tenant.stmt(
        "UPDATE appointments SET status = 'canceled', sequence = sequence + 1, updated_at = ?4
         WHERE tenant_id = ?1 AND id = ?2 AND status = 'booked' AND sequence = ?3",
        &[&current.id, &current.sequence, &now],
    )?;
    let next = current.sequence + 1;
    let subject = ReminderSubject::Appointment(&current.id);
    let reminders = reminders::cancelled(tenant.db(), subject, next, now)?;
    changed(tenant, [statement, reminders], current, "canceled", email).await
}

/// Moves `current` (the tenant's booked appointment as read) to the slot `(start, end)` and
/// bumps its sequence, with its `email` queued in the same batch. The unique index refuses a
/// slot another live appointment of the agent holds: the update is then skipped (`OR IGNORE`).
/// `None` when the row changed since it was read; `Some(false)` when the slot is taken.
pub async fn reschedule(
    tenant: &Tenant,
    current: &Appointment,
    (start, end): (i64, i64),
    now: i64,
    email: Option<&NewEmail<'_>>,
) -> Result<Option<bool>, StoreError> {
    let statement = tenant.stmt(
        "UPDATE OR IGNORE appointments SET slot_start = ?4, slot_end = ?5,
           sequence = sequence + 1, updated_at = ?6
         WHERE tenant_id = ?1 AND id = ?2 AND status = 'booked' AND sequence = ?3",
        &[&current.id, &current.sequence, &start, &end, &now],
    )?;
    let next = current.sequence + 1;
    let subject = ReminderSubject::Appointment(&current.id);
    let reminders = reminders::moved(tenant.db(), subject, start, next, now)?;
    if changed(tenant, [statement, reminders], current, "booked", email).await? {
        return Ok(Some(true));
    }
    // Skipped: either the slot is held or the row moved on since it was read.
    let now_stored = get(tenant, current.id.as_str()).await?;
    let unchanged =
        now_stored.is_some_and(|a| a.status == "booked" && a.sequence == current.sequence);
    Ok(unchanged.then_some(false))
}

/// Runs `statement` (a compare-and-set on `current`'s sequence) and `reminders` (the change to
/// its reminders, guarded on the same outcome), and queues `email` only if it left the row at
/// the next sequence with `status`; whether it changed the row.
async fn changed(
    tenant: &Tenant,
    [statement, reminders]: [worker::d1::D1PreparedStatement; 2],
    current: &Appointment,
    status: &str,
    email: Option<&NewEmail<'_>>,
) -> Result<bool, StoreError> {
    let mut statements = vec![statement, reminders];
    if let Some(email) = email {
        let next = current.sequence + 1;
        statements.extend(emails::queue(
            tenant.db(),
            email,
            "SELECT 1 FROM appointments WHERE id = ? AND sequence = ? AND status = ?",
            &[&current.id, &next, &status],
        )?);
    }
    let changed = db::batch(tenant.db(), statements).await?;
    Ok(changed.first() == Some(&1))
}

impl Appointment {
    /// The API's (and the events') JSON of this appointment; times in the calendar's zone
    /// offset are left to the reader: RFC 3339 UTC plus the zone name.
    pub fn json(&self) -> serde_json::Value {
        use crate::platform::http::rfc3339;
        serde_json::json!({
            "id": self.id, "agent_id": self.agent_id, "call_id": self.call_id,
            "start_at": rfc3339(self.slot_start), "end_at": rfc3339(self.slot_end),
            "time_zone": self.time_zone, "status": self.status,
            "caller_number": self.caller_number, "name": self.name, "note": self.note,
            "email": self.email, "sequence": self.sequence,
            "created_at": rfc3339(self.created_at), "updated_at": rfc3339(self.updated_at),
        })
    }
}
