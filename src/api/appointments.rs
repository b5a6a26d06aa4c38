//! `/api/v1/appointments`: the appointments agents booked on their calendars (list, get), and
//! booking / canceling through the API with the rules a call's tools follow.

use super::agents::field_errors;
use super::request::{found, json_body, list_of};
use crate::pipeline;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, now_ms, ApiError, ApiResult};
use crate::platform::zones;
use crate::store::agents;
use crate::store::appointments::{self, Appointment, Booking, NewAppointment};
use crate::store::tenant::Tenant;
use phone_agent_core::appointments::{calendar_of, clear_of, parse_booking, BookingError};
use phone_agent_core::ids::{AgentId, AppointmentId};
use serde_json::Value;
use worker::Request;

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of(req, app, who, Appointment::json).await
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let appointment = found(appointments::get(&tenant, id).await?, "appointment", id)?;
    Ok(json_response(200, &appointment.json()))
}

/// A booking rule's refusal: 409 naming the rule. The body is well formed; it conflicts with the
/// agent's calendar or its appointments as they are now. An unreadable calendar feed is 503:
/// nothing the client can change, and trying later may work.
fn refused(e: BookingError) -> ApiError {
    let status = match e {
        BookingError::FeedUnavailable(_) => 503,
        _ => 409,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// `POST /api/v1/appointments {agent_id, start_at, name?, note?, caller_number?}`.
pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let request = parse_booking(&body).map_err(field_errors)?;
    let tenant = Tenant::of(app, who)?;
    let agent = found(
        agents::get(&tenant, &request.agent_id).await?,
        "agent",
        &request.agent_id,
    )?;
    let config: Value = serde_json::from_str(&agent.config).unwrap_or(Value::Null);
    let calendar = calendar_of(&config).ok_or_else(|| refused(BookingError::NoCalendar))?;
    let zone = zones::zone(Some(&calendar.time_zone))
        .ok_or_else(|| ApiError::internal(format!("unknown time zone {}", calendar.time_zone)))?;
    let now = now_ms();
    let slot = calendar
        .bookable(&zone, request.start_at, now)
        .map_err(refused)?;
    let busy = pipeline::calendar_feed::busy(
        &app.env,
        app.config()?.allow_private_targets,
        &calendar,
        &zone,
        now,
    )
    .await
    .map_err(refused)?;
    let slot = clear_of(slot, &busy).map_err(refused)?;
    let id: AppointmentId = new_id()?;
    let agent_id = AgentId::from(request.agent_id.as_str());
    let outcome = appointments::book(
        &tenant,
        &NewAppointment {
            id: &id,
            agent_id: &agent_id,
            call_id: None,
            slot_start: slot.start,
            slot_end: slot.end,
            time_zone: zone.name(),
            caller_number: request.caller_number.as_deref(),
            name: request.name.as_deref(),
            note: request.note.as_deref(),
            now,
        },
    )
    .await?;
    if outcome != Booking::Booked {
        return Err(refused(BookingError::SlotTaken));
    }
    let booked = found(
        appointments::get(&tenant, id.as_str()).await?,
        "appointment",
        id.as_str(),
    )?;
    pipeline::appointments::publish(
        &app.env,
        &app.db()?,
        tenant.id().as_str(),
        "appointment.booked",
        &booked,
        now,
    )
    .await;
    Ok(json_response(201, &booked.json()))
}

/// `POST /api/v1/appointments/{id}/cancel`: frees the slot; 409 when it is canceled already.
pub(super) async fn cancel(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let now = now_ms();
    let Some(canceled) = appointments::cancel(&tenant, id, now).await? else {
        found(appointments::get(&tenant, id).await?, "appointment", id)?;
        return Err(ApiError::new(
            409,
            "already_canceled",
            format!("appointment {id} is canceled already"),
        ));
    };
    pipeline::appointments::publish(
        &app.env,
        &app.db()?,
        tenant.id().as_str(),
        "appointment.canceled",
        &canceled,
        now,
    )
    .await;
    Ok(json_response(200, &canceled.json()))
}
