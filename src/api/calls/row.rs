//! The call as the API shows it: how a stored call renders, and the tenant-scoped lookups.

use crate::api::request::found;
use crate::platform::http::{rfc3339, ApiError};
use crate::scheduling::emails::EmailFacts;
use crate::store::agents;
use crate::store::calls::{self, Call};
use crate::store::tenant::Tenant;
use phone_agent_core::hours::Routing;
use serde_json::{json, Value};

/// The API's JSON for `call`.
pub(super) fn render(call: &Call) -> Value {
    // Declared contact fields sit beside name and email, as the request gave them.
    let mut contact = call
        .contact_fields
        .as_deref()
        .and_then(|f| serde_json::from_str::<Value>(f).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    contact["name"] = json!(call.contact_name);
    contact["email"] = json!(call.contact_email);
    json!({
        "id": call.id,
        "status": call.status,
        "direction": call.direction,
        "to": call.to_number,
        "from": call.from_number,
        "agent_id": call.agent_id,
        "provider": call.provider,
        "provider_call_id": call.provider_call_id,
        "start_at": call.start_at.map(rfc3339),
        "time_zone": call.time_zone,
        "contact": contact,
        "metadata": serde_json::from_str::<Value>(&call.metadata).unwrap_or_else(|_| json!({})),
        "ical_uid": call.ical_uid,
        "attempt": call.attempt,
        "sequence": call.ics_sequence,
        "email_status": call.email_status,
        "last_error": call.last_error,
        // Set while the tenant's hourly outbound cap (OUTBOUND_CALLS_PER_HOUR) holds the due call.
        "dial_after": call.dial_after.map(rfc3339),
        "dispatched_at": call.dispatched_at.map(rfc3339),
        "answered_at": call.answered_at.map(rfc3339),
        "ended_at": call.ended_at.map(rfc3339),
        "duration_seconds": call.duration_seconds,
        "summary": call.summary,
        // Per-turn latencies and their p50/p95, written by the call session at hang-up.
        "metrics": call.metrics.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
        // The post-call analysis (`{status, values, success, success_reason, errors, raw}`),
        // once the end-of-call job has it; null when the agent defines none.
        "analysis": call.analysis.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
        // How the number routed an incoming call: {decision: open|closed, reason}.
        "routing": call.routing.as_deref().and_then(Routing::parse).map(Routing::to_json),
        "created_at": rfc3339(call.created_at),
        "updated_at": rfc3339(call.updated_at),
    })
}

/// What an email about `call` says, if the call has a contact to send it to.
pub(super) fn email_facts<'a>(call: &'a Call, agent_name: &'a str) -> Option<EmailFacts<'a>> {
    Some(EmailFacts {
        tenant_id: call.tenant_id.as_str(),
        call_id: call.id.as_str(),
        to_email: call.contact_email.as_deref()?,
        to_name: call.contact_name.as_deref(),
        agent_name,
        phone_number: &call.to_number,
        start_at: call.start_at?,
        time_zone: call.time_zone.as_deref(),
    })
}

/// The tenant's call `id`, or 404.
pub(super) async fn find(tenant: &Tenant, id: &str) -> Result<Call, ApiError> {
    found(calls::get(tenant, id).await?, "call", id)
}

/// The call's agent's name, if it has an agent that still exists.
pub(super) async fn agent_of(tenant: &Tenant, call: &Call) -> Result<Option<String>, ApiError> {
    Ok(match &call.agent_id {
        Some(id) => agents::get(tenant, id.as_str()).await?.map(|a| a.name),
        None => None,
    })
}

/// The name emails give the call's agent.
pub(super) async fn agent_name(tenant: &Tenant, call: &Call) -> String {
    match &call.agent_id {
        Some(id) => agents::get(tenant, id.as_str()).await.ok().flatten(),
        None => None,
    }
    .map_or_else(|| "Your agent".to_owned(), |a| a.name)
}
