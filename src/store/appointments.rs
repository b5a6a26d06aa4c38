//! The `appointments` table: slots booked on an agent's calendar. The partial unique index on
//! (tenant, agent, slot start) over live rows is what refuses a second booking of a slot, so a
//! booking is one guarded insert and never a read-then-write.

use crate::store::db::row;
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{AgentId, AppointmentId, CallId};

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
    pub now: i64,
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
/// skipped, not raised, so the race's loser is told which rule stopped it).
pub async fn book(tenant: &Tenant, new: &NewAppointment<'_>) -> Result<Booking, StoreError> {
    let changed = tenant
        .run(
            "INSERT INTO appointments (tenant_id, id, agent_id, call_id, slot_start, slot_end,
               time_zone, status, caller_number, name, note, sequence, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'booked', ?8, ?9, ?10, 0, ?11, ?11
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
                &new.now,
            ],
        )
        .await?;
    if changed == 1 {
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

/// Cancels the tenant's booked appointment `id` (freeing its slot) and bumps its sequence; the
/// row after, or `None` when it is not booked (absent or canceled already).
pub async fn cancel(
    tenant: &Tenant,
    id: &str,
    now: i64,
) -> Result<Option<Appointment>, StoreError> {
    tenant
        .first(
            &format!(
                "UPDATE appointments SET status = 'canceled', sequence = sequence + 1,
                   updated_at = ?3
                 WHERE tenant_id = ?1 AND id = ?2 AND status = 'booked' RETURNING {}",
                Appointment::COLUMNS
            ),
            &[&id, &now],
        )
        .await
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
            "sequence": self.sequence,
            "created_at": rfc3339(self.created_at), "updated_at": rfc3339(self.updated_at),
        })
    }
}
