//! `/api/v1/appointments`: the appointments agents booked on their calendars (list, get), and
//! booking, rescheduling and canceling through the API with the rules a call's tools follow.

use super::agents::field_errors;
use super::request::{found, json_body, list_of};
use crate::pipeline;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, now_ms, ApiError, ApiResult};
use crate::platform::zones;
use crate::store::agents;
use crate::store::appointments::{self, Appointment, NewAppointment};
use crate::store::emails;
use crate::store::tenant::Tenant;
use phone_agent_core::appointments::{
    calendar_of, clear_of, parse_booking, parse_reschedule, BookingError, Calendar, Slot,
};
use phone_agent_core::ids::{AgentId, AppointmentId};
use phone_agent_core::zones::Zone;
use serde_json::Value;
use worker::Request;

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of(req, app, who, Appointment::json).await
}

/// One appointment with the invitation emails sent about it.
pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let appointment = found(appointments::get(&tenant, id).await?, "appointment", id)?;
    let emails: Vec<Value> = emails::for_appointment(&tenant, id)
        .await?
        .iter()
        .map(emails::Email::json)
        .collect();
    let mut body = appointment.json();
    body["emails"] = Value::from(emails);
    Ok(json_response(200, &body))
}

/// A booking rule's refusal: 409 naming the rule. The body is well formed; it conflicts with the
/// agent's calendar or its appointments as they are now.
/// An unreadable calendar feed is 503: nothing the client can change, and later may work.
fn refused(e: BookingError) -> ApiError {
    let status = match e {
        BookingError::FeedUnavailable(_) => 503,
        _ => 409,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// `slot`, unless the agent calendar's feed is busy over it (or cannot be read).
async fn clear_in_feed(
    app: &App,
    calendar: &Calendar,
    zone: &Zone<'_>,
    slot: Slot,
    now: i64,
) -> Result<Slot, ApiError> {
    let allow_private = app.config()?.allow_private_targets;
    let busy = pipeline::calendar_feed::busy(&app.env, allow_private, calendar, zone, now)
        .await
        .map_err(refused)?;
    clear_of(slot, &busy).map_err(refused)
}

/// The calendar of the tenant's agent `agent_id` and its zone; 409 `no_calendar` without one.
async fn calendar(tenant: &Tenant, agent_id: &str) -> Result<(Calendar, Zone<'static>), ApiError> {
    let agent = found(agents::get(tenant, agent_id).await?, "agent", agent_id)?;
    let config: Value = serde_json::from_str(&agent.config).unwrap_or(Value::Null);
    let calendar = calendar_of(&config).ok_or_else(|| refused(BookingError::NoCalendar))?;
    let zone = zones::zone(Some(&calendar.time_zone))
        .ok_or_else(|| ApiError::internal(format!("unknown time zone {}", calendar.time_zone)))?;
    Ok((calendar, zone))
}

/// `POST /api/v1/appointments {agent_id, start_at, name?, note?, caller_number?, email?}`.
pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let request = parse_booking(&body).map_err(field_errors)?;
    let tenant = Tenant::of(app, who)?;
    let (calendar, zone) = calendar(&tenant, &request.agent_id).await?;
    let now = now_ms();
    let slot = calendar
        .bookable(&zone, request.start_at, now)
        .map_err(refused)?;
    let slot = clear_in_feed(app, &calendar, &zone, slot, now).await?;
    let id: AppointmentId = new_id()?;
    let agent_id = AgentId::from(request.agent_id.as_str());
    let new = NewAppointment {
        id: &id,
        agent_id: &agent_id,
        call_id: None,
        slot_start: slot.start,
        slot_end: slot.end,
        time_zone: zone.name(),
        caller_number: request.caller_number.as_deref(),
        name: request.name.as_deref(),
        note: request.note.as_deref(),
        email: request.email.as_deref(),
        now,
    };
    let booked = pipeline::appointments::book(&app.env, &tenant, &new)
        .await?
        .map_err(|e| match e {
            // The API books without a call, so only the slot can be taken.
            BookingError::AlreadyBooked => refused(BookingError::SlotTaken),
            e => refused(e),
        })?;
    Ok(json_response(201, &booked.json()))
}

/// `POST /api/v1/appointments/{id}/reschedule {start_at}`: moves it to another free slot of
/// its agent's calendar (409 `slot_taken` when another appointment holds it).
pub(super) async fn reschedule(
    req: &mut Request,
    app: &App,
    who: &Principal,
    id: &str,
) -> ApiResult {
    let body = json_body(req).await?;
    let start_at = parse_reschedule(&body).map_err(field_errors)?;
    let tenant = Tenant::of(app, who)?;
    let current = found(appointments::get(&tenant, id).await?, "appointment", id)?;
    if current.status != "booked" {
        return Err(refused(BookingError::AlreadyCanceled));
    }
    let (calendar, zone) = calendar(&tenant, current.agent_id.as_str()).await?;
    let now = now_ms();
    let slot = calendar.bookable(&zone, start_at, now).map_err(refused)?;
    let slot = clear_in_feed(app, &calendar, &zone, slot, now).await?;
    let moved = pipeline::appointments::reschedule(&app.env, &tenant, &current, slot, now)
        .await?
        .map_err(refused)?;
    Ok(json_response(200, &moved.json()))
}

/// `POST /api/v1/appointments/{id}/cancel`: frees the slot; 409 when it is canceled already.
pub(super) async fn cancel(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let current = found(appointments::get(&tenant, id).await?, "appointment", id)?;
    let canceled = pipeline::appointments::cancel(&app.env, &tenant, &current, now_ms())
        .await?
        .map_err(refused)?;
    Ok(json_response(200, &canceled.json()))
}
