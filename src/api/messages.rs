//! `/api/v1/messages`: the tenant's text messages. `POST` queues one in the outbox (sent by
//! `scheduling/messages.rs`, first attempt at once); a number on the suppression list is
//! refused here and checked again at send. `GET` lists sent and received ones.

use super::agents::field_errors;
use super::request::{field_error, invalid_fields, json_body, list_of};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, now_ms, rfc3339, ApiError, ApiResult};
use crate::scheduling;
use crate::store::messages::{self, Message, Outgoing};
use crate::store::tenant::Tenant;
use crate::store::{calls, numbers, suppressions};
use phone_agent_core::ids::MessageId;
use phone_agent_core::sms::{carrier_for, parse_message};
use serde_json::{json, Value};
use worker::Request;

/// The API shape of a message.
fn render(m: &Message) -> Value {
    json!({
        "id": m.id,
        "direction": m.direction,
        "kind": m.kind,
        "provider": m.provider,
        "from": m.from_number,
        "to": m.to_number,
        "body": m.body,
        "call_id": m.call_id,
        "status": m.status,
        "provider_message_id": m.provider_message_id,
        "attempts": m.attempts,
        "last_error": m.last_error,
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
    })
}

/// Queues `{to, from?, body, call_id?, provider?}`: `202` with the pending message.
pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let m = parse_message(&body).map_err(field_errors)?;
    let config = app.config()?;
    let tenant = Tenant::of(app, who)?;
    let unknown = |field: &str, code: &str, message: String| {
        invalid_fields(json!([field_error(field, code, message)]))
    };
    let from = match &m.from {
        Some(from) if numbers::owns(&tenant, from).await? => from.clone(),
        Some(from) => {
            return Err(unknown(
                "from",
                "unknown_number",
                format!("{from} is not one of your numbers"),
            ))
        }
        None => match numbers::oldest(&tenant).await? {
            Some(number) => number,
            None => config.default_from_number.clone().ok_or_else(|| {
                unknown(
                    "from",
                    "required",
                    "you have no number and DEFAULT_FROM_NUMBER is not set: name a from".into(),
                )
            })?,
        },
    };
    if let Some(call_id) = &m.call_id {
        if calls::get(&tenant, call_id).await?.is_none() {
            return Err(unknown(
                "call_id",
                "unknown_call",
                format!("no call {call_id}"),
            ));
        }
    }
    if suppressions::contains(&tenant, &m.to).await? {
        return Err(ApiError::new(
            409,
            "recipient_opted_out",
            format!("{} is on your suppression list", m.to),
        ));
    }
    let carrier = carrier_for(m.provider, config).map_err(|missing| {
        ApiError::new(
            503,
            "feature_unavailable",
            format!("text messages need {missing}"),
        )
        .with_details(json!({"feature": "sms", "missing": [missing]}))
    })?;
    let base_url = match &config.public_base_url {
        Some(base) => base.clone(),
        None => req.url()?.origin().ascii_serialization(),
    };
    let id = new_id::<MessageId>()?;
    let queued = messages::queue(
        &tenant,
        &Outgoing {
            id: &id,
            kind: "message",
            provider: carrier.as_str(),
            from: &from,
            to: &m.to,
            body: &m.body,
            call_id: m.call_id.as_deref(),
            base_url: &base_url,
            now: now_ms(),
        },
    )
    .await?;
    let env = app.env.clone();
    app.ctx.wait_until(async move {
        scheduling::messages::send_now(&env, id.as_str()).await;
    });
    Ok(json_response(202, &render(&queued)))
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let message = messages::get(&Tenant::of(app, who)?, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no message {id}")))?;
    Ok(json_response(200, &render(&message)))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of::<Message>(req, app, who, render).await
}
