//! The `find_slots` and `book_appointment` tools: the agent offers free slots of its calendar
//! and books the one the caller chose.
//!
//! The model only proposes; every rule is checked here at run time, from the agent record and
//! D1, never from the prompt: the agent must have a calendar, the time must be a slot of its
//! grid inside its hours and horizon, a call books at most one appointment, and the tenant,
//! agent and caller come from the call itself (the model cannot name them). Storage refuses a
//! second booking of a slot (see `store/appointments.rs`), so concurrent calls cannot both win.

use crate::live::session::Session;
use crate::pipeline;
use crate::platform::http::{new_id, now_ms, ApiError};
use crate::platform::zones;
use crate::store::appointments::{self, Booking, NewAppointment};
use crate::store::dialing;
use crate::store::tenant::Tenant;
use phone_agent_core::appointments::{
    calendar_of, clear_of, BookingError, Calendar, MAX_SLOTS_LISTED,
};
use phone_agent_core::ids::{AgentId, AppointmentId, CallId, TenantId};
use phone_agent_core::session::{Tool, ToolCall};
use phone_agent_core::zones::Zone;
use serde_json::{json, Value};
use std::rc::Rc;

/// Why a tool run gave no result.
enum Failure {
    /// A booking rule said no; the code tells the model which.
    Refused(BookingError),
    /// Bad arguments or our own fault.
    Error(String),
}

impl From<BookingError> for Failure {
    fn from(e: BookingError) -> Self {
        Failure::Refused(e)
    }
}

/// Runs `find_slots` or `book_appointment`; the JSON text is what the model reads.
pub async fn run(session: &Rc<Session>, call: &ToolCall) -> String {
    let result = match call.tool() {
        Ok(Tool::FindSlots { from, to }) => {
            let range = (
                from.map(|t| t.timestamp_millis()),
                to.map(|t| t.timestamp_millis()),
            );
            find(session, range).await
        }
        Ok(Tool::BookAppointment {
            start_at,
            name,
            note,
        }) => {
            book(
                session,
                start_at.timestamp_millis(),
                name.as_deref(),
                note.as_deref(),
            )
            .await
        }
        Ok(_) => Err(Failure::Error(format!(
            "{} is not a booking tool",
            call.name
        ))),
        Err(e) => Err(Failure::Error(e.to_string())),
    };
    match result {
        Ok(value) => value.to_string(),
        Err(Failure::Refused(e)) => json!({"error": e.to_string(), "code": e.code()}).to_string(),
        Err(Failure::Error(message)) => json!({ "error": message }).to_string(),
    }
}

/// The call's tenant, agent and calendar, read when the tool runs (an agent whose calendar
/// was removed mid-call stops booking).
struct Context {
    tenant: Tenant,
    call_id: CallId,
    agent_id: AgentId,
    calendar: Calendar,
    zone: Zone<'static>,
    caller: Option<String>,
}

async fn context(session: &Rc<Session>) -> Result<Context, Failure> {
    let info = session
        .info()
        .ok_or_else(|| Failure::Error("the call is not connected".into()))?;
    let db = session
        .env
        .d1("DB")
        .map_err(|e| internal(ApiError::from(e)))?;
    let tenant = Tenant::new(db, TenantId::from(info.tenant_id.as_str()));
    let agent = dialing::agent_of(&tenant, &info.call_id)
        .await
        .map_err(internal)?;
    let (Some(agent_id), Some(config)) = (
        agent.as_ref().and_then(|a| a.agent_id.clone()),
        agent.and_then(|a| a.config),
    ) else {
        return Err(BookingError::NoCalendar.into());
    };
    let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
    let calendar = calendar_of(&config).ok_or(BookingError::NoCalendar)?;
    let zone = zones::zone(Some(&calendar.time_zone))
        .ok_or_else(|| Failure::Error(format!("unknown time zone {}", calendar.time_zone)))?;
    // The caller is whoever is not our number on this call.
    let caller = if info.direction == "inbound" {
        info.from_number.clone()
    } else {
        Some(info.to_number.clone())
    };
    Ok(Context {
        tenant,
        call_id: CallId::from(info.call_id.as_str()),
        agent_id,
        calendar,
        zone,
        caller,
    })
}

async fn find(
    session: &Rc<Session>,
    (from, to): (Option<i64>, Option<i64>),
) -> Result<Value, Failure> {
    let cx = context(session).await?;
    let now = now_ms();
    let from = from.unwrap_or(now).max(now);
    let to = to.unwrap_or(i64::MAX).min(cx.calendar.horizon_end(now));
    let (booked, busy) = if from < to {
        (
            appointments::booked_starts(&cx.tenant, &cx.agent_id, (from, to))
                .await
                .map_err(internal)?,
            feed_busy(session, &cx, now).await?,
        )
    } else {
        Default::default()
    };
    let slots = cx.calendar.free_slots(
        &cx.zone,
        (from, to),
        now,
        (&booked, &busy),
        MAX_SLOTS_LISTED,
    );
    let slots: Vec<Value> = slots
        .iter()
        .map(|s| json!({"start_at": local(&cx.zone, s.start), "end_at": local(&cx.zone, s.end)}))
        .collect();
    Ok(json!({"time_zone": cx.zone.name(), "slots": slots}))
}

async fn book(
    session: &Rc<Session>,
    start: i64,
    name: Option<&str>,
    note: Option<&str>,
) -> Result<Value, Failure> {
    let cx = context(session).await?;
    let now = now_ms();
    let slot = cx.calendar.bookable(&cx.zone, start, now)?;
    let slot = clear_of(slot, &feed_busy(session, &cx, now).await?)?;
    let id: AppointmentId = new_id().map_err(internal)?;
    let outcome = appointments::book(
        &cx.tenant,
        &NewAppointment {
            id: &id,
            agent_id: &cx.agent_id,
            call_id: Some(&cx.call_id),
            slot_start: slot.start,
            slot_end: slot.end,
            time_zone: cx.zone.name(),
            caller_number: cx.caller.as_deref(),
            name,
            note,
            now,
        },
    )
    .await
    .map_err(internal)?;
    match outcome {
        Booking::Booked => {}
        Booking::SlotTaken => return Err(BookingError::SlotTaken.into()),
        Booking::CallHasOne => return Err(BookingError::AlreadyBooked.into()),
    }
    let booked = appointments::get(&cx.tenant, id.as_str())
        .await
        .map_err(internal)?
        .ok_or_else(|| Failure::Error("the appointment vanished".into()))?;
    let db = session
        .env
        .d1("DB")
        .map_err(|e| internal(ApiError::from(e)))?;
    pipeline::appointments::publish(
        &session.env,
        &db,
        cx.tenant.id().as_str(),
        "appointment.booked",
        &booked,
        now,
    )
    .await;
    Ok(json!({"booked": true, "appointment_id": id,
              "start_at": local(&cx.zone, slot.start), "end_at": local(&cx.zone, slot.end)}))
}

/// The busy times of the agent's calendar feed (none without one).
async fn feed_busy(
    session: &Rc<Session>,
    cx: &Context,
    now: i64,
) -> Result<phone_agent_core::ical::busy::Busy, Failure> {
    let allow_private = session
        .config
        .as_ref()
        .is_some_and(|c| c.allow_private_targets);
    Ok(
        pipeline::calendar_feed::busy(&session.env, allow_private, &cx.calendar, &cx.zone, now)
            .await?,
    )
}

/// `ms` on the calendar's wall clock, as the model should read it back to the caller.
fn local(zone: &Zone<'_>, ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| zone.at(t).to_rfc3339())
        .unwrap_or_default()
}

fn internal(e: impl Into<ApiError>) -> Failure {
    Failure::Error(format!("could not book: {}", e.into().message))
}
