//! Changes to appointments, whether a call's tools or the API make them: each is stored with
//! its invitation email and its reminders (planned, moved or cancelled) in one batch (the email outbox, sent by the scheduler, which is woken
//! for it), then announced as `appointment.booked|rescheduled|canceled` through the event
//! outbox like the `call.*` events we make ourselves.

use crate::pipeline::forwarding::{self, OwnEvent};
use crate::platform::alarm;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, new_id, ApiError};
use crate::platform::zones;
use crate::store::agents::{self, Agent};
use crate::store::appointments::{self, Appointment, Booking, NewAppointment};
use crate::store::emails::{About, NewEmail};
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::appointments::{may_change, BookingError, Slot};
use phone_agent_core::config::Config;
use phone_agent_core::reminders::{self, Planned, Reachable};
use phone_agent_core::scheduling::email::{
    appointment_idempotency_key, invitation_email, EmailKind, InvitationEmail, Topic,
};
use serde_json::json;
use worker::Env;

/// A change's result: the appointment as stored after it, or the rule that refused it.
pub type Changed = Result<Result<Appointment, BookingError>, ApiError>;

/// Books `new` (its slot already checked against the calendar): stored with its invitation,
/// `appointment.booked` published.
pub async fn book(env: &Env, tenant: &Tenant, new: &NewAppointment<'_>) -> Changed {
    let booked = new.booked();
    let config = load_config(env)?;
    let agent = agents::get(tenant, booked.agent_id.as_str()).await?;
    let agent_name = name_of(agent.as_ref(), &booked);
    let email = compose(&config, tenant, &booked, &agent_name, EmailKind::Scheduled)?;
    let reminders = plan_reminders(agent.as_ref(), &booked, new.now);
    match appointments::book(tenant, new, email.as_ref(), &reminders).await? {
        Booking::Booked => {}
        Booking::SlotTaken => return Ok(Err(BookingError::SlotTaken)),
        Booking::CallHasOne => return Ok(Err(BookingError::AlreadyBooked)),
    }
    wake_for_reminders(env, &reminders).await;
    announced(
        env,
        tenant,
        new.id.as_str(),
        "appointment.booked",
        email.is_some(),
    )
    .await
}

/// Cancels `current` (as read): its slot is freed, the CANCEL invitation queued,
/// `appointment.canceled` published.
pub async fn cancel(env: &Env, tenant: &Tenant, current: &Appointment, now: i64) -> Changed {
    if current.status != "booked" {
        return Ok(Err(BookingError::AlreadyCanceled));
    }
    let after = Appointment {
        status: "canceled".to_owned(),
        ..next(current, now)
    };
    let config = load_config(env)?;
    let agent_name = agent_name(tenant, current).await?;
    let email = compose(&config, tenant, &after, &agent_name, EmailKind::Canceled)?;
    if !appointments::cancel(tenant, current, now, email.as_ref()).await? {
        return Ok(Err(BookingError::Changed));
    }
    let id = current.id.as_str();
    announced(env, tenant, id, "appointment.canceled", email.is_some()).await
}

/// Moves `current` (as read) to `slot` (already checked against the calendar): the updated
/// invitation (same UID, next SEQUENCE) queued, `appointment.rescheduled` published.
pub async fn reschedule(
    env: &Env,
    tenant: &Tenant,
    current: &Appointment,
    slot: Slot,
    now: i64,
) -> Changed {
    if current.status != "booked" {
        return Ok(Err(BookingError::AlreadyCanceled));
    }
    // Checked on the sequence read; the write is a compare-and-set on that same sequence.
    if let Err(e) = may_change(current.sequence) {
        return Ok(Err(e));
    }
    let after = Appointment {
        slot_start: slot.start,
        slot_end: slot.end,
        ..next(current, now)
    };
    let config = load_config(env)?;
    let agent = agents::get(tenant, current.agent_id.as_str()).await?;
    let agent_name = name_of(agent.as_ref(), current);
    let email = compose(&config, tenant, &after, &agent_name, EmailKind::Rescheduled)?;
    let moved = (slot.start, slot.end);
    match appointments::reschedule(tenant, current, moved, now, email.as_ref()).await? {
        Some(true) => {}
        Some(false) => return Ok(Err(BookingError::SlotTaken)),
        None => return Ok(Err(BookingError::Changed)),
    }
    // The stored reminders moved in the batch; these are only their new times, for the wake-up.
    wake_for_reminders(env, &plan_reminders(agent.as_ref(), &after, now)).await;
    let id = current.id.as_str();
    announced(env, tenant, id, "appointment.rescheduled", email.is_some()).await
}

/// `current` one change later (next sequence, updated now), before the change's own fields.
fn next(current: &Appointment, now: i64) -> Appointment {
    Appointment {
        id: current.id.clone(),
        agent_id: current.agent_id.clone(),
        call_id: current.call_id.clone(),
        slot_start: current.slot_start,
        slot_end: current.slot_end,
        time_zone: current.time_zone.clone(),
        status: current.status.clone(),
        caller_number: current.caller_number.clone(),
        name: current.name.clone(),
        note: current.note.clone(),
        email: current.email.clone(),
        sequence: current.sequence + 1,
        created_at: current.created_at,
        updated_at: now,
    }
}

/// After a stored change: wake the scheduler for the invitation, publish the event, and read
/// the appointment as it now is.
async fn announced(
    env: &Env,
    tenant: &Tenant,
    id: &str,
    event_type: &str,
    emailed: bool,
) -> Changed {
    let stored = appointments::get(tenant, id)
        .await?
        .ok_or_else(|| ApiError::internal("the appointment vanished"))?;
    if emailed {
        alarm::wake_at(env, stored.updated_at).await;
    }
    publish(env, tenant, event_type, &stored).await;
    Ok(Ok(stored))
}

/// The name the invitation gives the calendar: its agent's (the id once the agent is deleted).
async fn agent_name(tenant: &Tenant, appointment: &Appointment) -> Result<String, ApiError> {
    let agent = agents::get(tenant, appointment.agent_id.as_str()).await?;
    Ok(name_of(agent.as_ref(), appointment))
}

/// `agent`'s name, or the appointment's agent id once the agent is deleted.
fn name_of(agent: Option<&Agent>, appointment: &Appointment) -> String {
    agent.map_or_else(|| appointment.agent_id.to_string(), |a| a.name.clone())
}

/// The reminders `agent`'s settings give `appointment` (at its start), planned at `now`: by
/// email when it was booked with an address, by SMS when the caller's number is known.
fn plan_reminders(agent: Option<&Agent>, appointment: &Appointment, now: i64) -> Vec<Planned> {
    let config: serde_json::Value = agent
        .and_then(|a| serde_json::from_str(&a.config).ok())
        .unwrap_or_default();
    let reachable = Reachable {
        email: appointment.email.is_some(),
        text: appointment.caller_number.is_some(),
    };
    reminders::plan(&config, appointment.slot_start, now, reachable)
}

/// Wakes the scheduler for the earliest of `planned` still to be sent.
async fn wake_for_reminders(env: &Env, planned: &[Planned]) {
    if let Some(at) = planned
        .iter()
        .filter(|r| !r.skipped)
        .map(|r| r.due_at)
        .min()
    {
        alarm::wake_at(env, at).await;
    }
}

/// The invitation announcing `kind` of `appointment` (as it is after the change: its sequence
/// and `updated_at`) to the caller's address, when there is one. Without a usable `EMAIL_FROM`
/// it carries the reason and is stored dead, like a call's.
pub fn compose<'a>(
    config: &Config,
    tenant: &'a Tenant,
    appointment: &'a Appointment,
    agent_name: &str,
    kind: EmailKind,
) -> Result<Option<NewEmail<'a>>, ApiError> {
    let Some(to_email) = appointment.email.as_deref() else {
        return Ok(None);
    };
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let sequence = u32::try_from(appointment.sequence).unwrap_or(u32::MAX);
    let minutes = (appointment.slot_end - appointment.slot_start) / 60_000;
    let request = match config.providers.email_from.as_deref() {
        None => Err("EMAIL_FROM is not set".to_owned()),
        Some(from) => invitation_email(&InvitationEmail {
            kind,
            id: appointment.id.as_str(),
            topic: Topic::Appointment {
                note: appointment.note.as_deref(),
            },
            sequence,
            from,
            to_email,
            to_name: appointment.name.as_deref(),
            agent_name,
            start: at(appointment.slot_start),
            duration_minutes: u32::try_from(minutes).unwrap_or(0),
            time_zone: zones::zone(Some(&appointment.time_zone)),
            dtstamp: at(appointment.updated_at),
        })
        .map(|body| body.to_string())
        .map_err(|e| e.to_string()),
    };
    Ok(Some(NewEmail {
        id: new_id()?,
        tenant_id: tenant.id().as_str(),
        about: About::Appointment(appointment.id.as_str()),
        kind,
        sequence,
        idempotency_key: appointment_idempotency_key(appointment.id.as_str(), sequence, kind),
        to_email,
        request,
        now: appointment.updated_at,
    }))
}

/// Publishes `event_type` for `appointment` (deduplicated per appointment, type and sequence).
/// A failure is logged, never raised: the change itself is stored and the API shows it.
async fn publish(env: &Env, tenant: &Tenant, event_type: &str, appointment: &Appointment) {
    let now = appointment.updated_at;
    let key = format!("{}:{event_type}:{}", appointment.id, appointment.sequence);
    let call_id = appointment.call_id.as_ref().map(|c| c.as_str());
    let published = async {
        let event = OwnEvent {
            tenant_id: tenant.id().as_str(),
            event_type,
            key: &key,
            call_id,
            data: json!({"call_id": call_id, "agent_id": appointment.agent_id,
                "appointment": appointment.json()}),
            now,
        };
        forwarding::publish_own(env, &env.d1("DB")?, event).await
    }
    .await;
    if let Err(e) = published {
        log_line(
            json!({"level": "error", "msg": "appointment event not published",
            "type": event_type, "appointment_id": appointment.id, "error": e.message}),
        );
    }
}
