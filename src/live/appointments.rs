//! The booking tools: `find_slots` offers free slots of the agent's calendar,
//! `book_appointment` books the one the caller chose, `reschedule_appointment` and
//! `cancel_appointment` change the caller's own appointment.
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
use crate::store::appointments::{self, NewAppointment};
use crate::store::dialing;
use crate::store::tenant::Tenant;
use phone_agent_core::appointments::{
    calendar_of, caller_appointment, clear_of, BookingError, Calendar, Held, MAX_SLOTS_LISTED,
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

/// Runs one of the booking tools; the JSON text is what the model reads.
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
            email,
        }) => {
            let given = Given {
                name: name.as_deref(),
                note: note.as_deref(),
                email: email.as_deref(),
            };
            book(session, start_at.timestamp_millis(), given).await
        }
        Ok(Tool::RescheduleAppointment {
            start_at,
            appointment_id,
        }) => {
            let start = start_at.timestamp_millis();
            change(session, appointment_id.as_deref(), Some(start)).await
        }
        Ok(Tool::CancelAppointment { appointment_id }) => {
            change(session, appointment_id.as_deref(), None).await
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
    /// The contact the call was scheduled for, if any.
    contact_email: Option<String>,
    contact_name: Option<String>,
}

/// What the caller told the model for a booking.
struct Given<'a> {
    name: Option<&'a str>,
    note: Option<&'a str>,
    email: Option<&'a str>,
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
    let Some(agent) = agent else {
        return Err(BookingError::NoCalendar.into());
    };
    let (Some(agent_id), Some(config)) = (agent.agent_id, agent.config) else {
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
        contact_email: agent.contact_email,
        contact_name: agent.contact_name,
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
        (&booked, busy.intervals()),
        MAX_SLOTS_LISTED,
    );
    let slots: Vec<Value> = slots
        .iter()
        .map(|s| json!({"start_at": local(&cx.zone, s.start), "end_at": local(&cx.zone, s.end)}))
        .collect();
    Ok(json!({"time_zone": cx.zone.name(), "slots": slots}))
}

async fn book(session: &Rc<Session>, start: i64, given: Given<'_>) -> Result<Value, Failure> {
    let cx = context(session).await?;
    let now = now_ms();
    let slot = cx.calendar.bookable(&cx.zone, start, now)?;
    let slot = clear_of(slot, &feed_busy(session, &cx, now).await?)?;
    let id: AppointmentId = new_id().map_err(internal)?;
    // The invitation goes where the caller said, else to the contact the call was made for.
    let email = given.email.or(cx.contact_email.as_deref());
    let new = NewAppointment {
        id: &id,
        agent_id: &cx.agent_id,
        call_id: Some(&cx.call_id),
        slot_start: slot.start,
        slot_end: slot.end,
        time_zone: cx.zone.name(),
        caller_number: cx.caller.as_deref(),
        name: given.name.or(cx.contact_name.as_deref()),
        note: given.note,
        email,
        now,
    };
    pipeline::appointments::book(&session.env, &cx.tenant, &new)
        .await
        .map_err(internal)??;
    Ok(json!({"booked": true, "appointment_id": id,
              "start_at": local(&cx.zone, slot.start), "end_at": local(&cx.zone, slot.end),
              "invitation_to": email}))
}

/// Reschedules (to `start`) or cancels the caller's appointment: `requested` if the model named
/// one, else the caller's own. Which appointments the call may touch is the core's decision
/// ([`caller_appointment`]), over those this call booked or that are for the number calling; an
/// id outside them is answered as unknown, so the model cannot reach another caller's.
async fn change(
    session: &Rc<Session>,
    requested: Option<&str>,
    start: Option<i64>,
) -> Result<Value, Failure> {
    let cx = context(session).await?;
    let now = now_ms();
    let held = appointments::of_caller(
        &cx.tenant,
        &cx.agent_id,
        &cx.call_id,
        cx.caller.as_deref(),
        now,
    )
    .await
    .map_err(internal)?;
    let view: Vec<Held<'_>> = held
        .iter()
        .map(|a| Held {
            id: a.id.as_str(),
            call_id: a.call_id.as_ref().map(|c| c.as_str()),
            caller_number: a.caller_number.as_deref(),
        })
        .collect();
    let chosen =
        match caller_appointment(&view, requested, cx.call_id.as_str(), cx.caller.as_deref()) {
            Ok(i) => &held[i],
            Err(e @ BookingError::WhichAppointment(_)) => {
                // The model asks the caller which one; it may read them back.
                let listed: Vec<Value> = held
                .iter()
                .map(|a| json!({"appointment_id": a.id, "start_at": local(&cx.zone, a.slot_start)}))
                .collect();
                return Ok(
                    json!({"error": e.to_string(), "code": e.code(), "appointments": listed}),
                );
            }
            Err(e) => return Err(e.into()),
        };
    let env = &session.env;
    match start {
        Some(start) => {
            let slot = cx.calendar.bookable(&cx.zone, start, now)?;
            let slot = clear_of(slot, &feed_busy(session, &cx, now).await?)?;
            let moved = pipeline::appointments::reschedule(env, &cx.tenant, chosen, slot, now)
                .await
                .map_err(internal)??;
            Ok(json!({"rescheduled": true, "appointment_id": moved.id,
                      "start_at": local(&cx.zone, moved.slot_start),
                      "end_at": local(&cx.zone, moved.slot_end)}))
        }
        None => {
            let canceled = pipeline::appointments::cancel(env, &cx.tenant, chosen, now)
                .await
                .map_err(internal)??;
            Ok(json!({"canceled": true, "appointment_id": canceled.id,
                      "start_at": local(&cx.zone, canceled.slot_start)}))
        }
    }
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
