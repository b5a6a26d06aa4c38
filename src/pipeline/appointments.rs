//! `appointment.booked|canceled` events: published through the event outbox like the `call.*`
//! events we make ourselves, whether a call or the API changed the appointment.

use crate::pipeline::call_status::OWN_PROVIDER;
use crate::pipeline::forwarding::{self, NewEvent, Published};
use crate::platform::alarm;
use crate::platform::http::{log_line, new_id, rfc3339, ApiError};
use crate::store::appointments::Appointment;
use phone_agent_core::ids::EventId;
use serde_json::json;
use worker::d1::D1Database;
use worker::Env;

/// Publishes `event_type` for `appointment` of `tenant_id` (deduplicated per appointment,
/// type and sequence). A failure is logged, never raised: the change itself is stored and the
/// API shows it.
pub async fn publish(
    env: &Env,
    db: &D1Database,
    tenant_id: &str,
    event_type: &str,
    appointment: &Appointment,
    now: i64,
) {
    let key = format!("{}:{event_type}:{}", appointment.id, appointment.sequence);
    let call_id = appointment.call_id.as_ref().map(|c| c.as_str());
    let payload = json!({"type": event_type, "timestamp": rfc3339(now), "data": {
        "provider": OWN_PROVIDER, "provider_event_id": key, "call_id": call_id,
        "agent_id": appointment.agent_id, "appointment": appointment.json()}});
    let raw = payload.to_string();
    let published = async {
        forwarding::publish(
            db,
            &NewEvent {
                tenant_id,
                provider: OWN_PROVIDER,
                provider_event_id: &key,
                event_type,
                call_id,
                received_at: now,
                content_type: Some("application/json"),
                raw_body: &raw,
                payload: &payload,
            },
            &new_id::<EventId>()?,
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    match published {
        Ok(Published::New(_, deliveries)) if deliveries > 0 => alarm::wake_at(env, now).await,
        Ok(_) => {}
        Err(e) => log_line(
            json!({"level": "error", "msg": "appointment event not published",
            "type": event_type, "appointment_id": appointment.id, "error": e.message}),
        ),
    }
}
