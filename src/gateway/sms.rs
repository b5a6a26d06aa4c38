//! `POST /sms/{carrier}`: the carriers' messaging webhooks (Twilio's incoming-message webhook
//! and `StatusCallback`, Telnyx's `message.received` / `message.sent` / `message.finalized`).
//! Verify like every carrier webhook → read (core `sms::read_webhook`) → find the tenant (our
//! message the report is about, else the number texted) → publish the canonical `sms.*` event
//! through the event outbox (deduplicated on the carrier's key) → a new inbound message is kept
//! and, when it is an opt-out keyword, maintains the tenant's suppression list and is answered
//! with the carrier-standard reply (Twilio: TwiML `<Message>`; Telnyx: the messaging API,
//! through the outbox).

use crate::gateway::webhooks::verify_request;
use crate::pipeline::forwarding::{self, NewEvent, Published};
use crate::platform::alarm;
use crate::platform::app::App;
use crate::platform::http::{
    json_response, log_line, new_id, now_ms, read_body, rfc3339, ApiError, ApiResult,
};
use crate::store::messages::{self, Incoming, Outgoing};
use crate::store::numbers;
use crate::store::suppressions;
use crate::store::tenant::Tenant;
use phone_agent_core::carrier::Carrier;
use phone_agent_core::ids::{EventId, MessageId};
use phone_agent_core::limits::WEBHOOK_BODY_LIMIT;
use phone_agent_core::sms::{read_webhook, twiml_reply, Keyword, SmsWebhook, SOURCE_KEYWORD};
use phone_agent_core::webhooks::canonical::{envelope, original_payload};
use serde_json::json;
use worker::{Request, Response};

/// Receives one messaging webhook of `carrier`.
pub async fn receive(mut req: Request, app: &App, carrier: Carrier) -> ApiResult {
    if !carrier.texts() {
        return Err(ApiError::not_found(format!(
            "no text messages through {carrier}"
        )));
    }
    let config = app.config()?;
    let provider = carrier.webhook_provider();
    let content_type = req.headers().get("content-type")?;
    let body = read_body(&mut req, WEBHOOK_BODY_LIMIT).await?;
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let url = req.url()?;
    let now = now_ms();
    verify_request(config, provider, url.as_str(), &headers, &body, now)?;
    let sms = read_webhook(carrier, &body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_payload",
            format!("cannot read this {carrier} message event: {e}"),
        )
    })?;

    let db = app.db()?;
    // A report on our message names its tenant (and call); otherwise our number does.
    let ours = if sms.inbound() {
        None
    } else {
        messages::report_unscoped(
            &db,
            carrier.as_str(),
            &sms.provider_message_id,
            report_status(&sms),
            sms.error_code.as_deref(),
            now,
        )
        .await?
    };
    let tenant_id = match &ours {
        Some(message) => Some(message.tenant_id.clone()),
        None => numbers::route_any_tenant(&db, sms.our_number())
            .await?
            .map(|route| route.tenant_id),
    };
    let Some(tenant_id) = tenant_id else {
        // Not one of our numbers: nobody's event. Logged, and answered so the carrier stops.
        log_line(
            json!({"level": "warn", "msg": "message for an unknown number",
                        "provider": carrier.as_str(), "number": sms.our_number()}),
        );
        return answer(
            carrier,
            None,
            json!({"received": true, "ignored": "unknown number"}),
        );
    };
    let message_id = ours.as_ref().map(|m| m.id.as_str());
    let call_id = ours.as_ref().and_then(|m| m.call_id.as_deref());
    let event = sms.canonical(message_id);
    let payload = envelope(
        &event,
        provider,
        call_id,
        &rfc3339(now),
        original_payload(&body),
    );
    let published = forwarding::publish(
        &db,
        &NewEvent {
            tenant_id: tenant_id.as_str(),
            provider: provider.as_str(),
            provider_event_id: &event.provider_event_id,
            event_type: &event.event_type,
            call_id,
            received_at: now,
            content_type: content_type.as_deref(),
            raw_body: &String::from_utf8_lossy(&body),
            payload: &payload,
        },
        &new_id::<EventId>()?,
    )
    .await?;

    // Only a new message acts: a replay neither suppresses again nor replies twice.
    let (event_id, duplicate, reply) = match published {
        Published::New(id, deliveries) => {
            let reply = if sms.inbound() {
                let tenant = Tenant::new(db, tenant_id.clone());
                let base_url = config
                    .public_base_url
                    .clone()
                    .unwrap_or_else(|| url.origin().ascii_serialization());
                incoming(app, &tenant, carrier, &sms, &base_url, now).await?
            } else {
                None
            };
            if deliveries > 0 {
                let env = app.env.clone();
                let first = id.clone();
                app.ctx.wait_until(async move {
                    forwarding::deliver_event(&env, &first).await;
                });
            }
            (id, false, reply)
        }
        Published::Duplicate(id) => (id, true, None),
    };
    app.log_field("provider", provider.as_str());
    app.log_field("event_id", event_id.as_str());
    app.log_field("type", event.event_type.as_str());
    app.log_field("duplicate", duplicate);
    let twilio_reply = match (carrier, reply) {
        (Carrier::Twilio, Some(keyword)) => Some(keyword.reply()),
        _ => None,
    };
    answer(
        carrier,
        twilio_reply,
        json!({"received": true, "id": event_id, "type": event.event_type,
               "duplicate": duplicate}),
    )
}

/// The status a report leaves our message in.
fn report_status(sms: &SmsWebhook) -> &'static str {
    match sms.event_type.as_str() {
        "sms.delivered" => "delivered",
        "sms.failed" => "failed",
        _ => "sent",
    }
}

/// Keeps a new inbound message and acts on its keyword: the suppression list changes, and a
/// Telnyx texter gets the reply through the outbox (Twilio's comes back in the TwiML). Returns
/// the keyword, if the message was one.
async fn incoming(
    app: &App,
    tenant: &Tenant,
    carrier: Carrier,
    sms: &SmsWebhook,
    base_url: &str,
    now: i64,
) -> Result<Option<Keyword>, ApiError> {
    let text = sms.text.as_deref().unwrap_or_default();
    messages::receive(
        tenant,
        &Incoming {
            id: &new_id::<MessageId>()?,
            provider: carrier.as_str(),
            provider_message_id: &sms.provider_message_id,
            from: &sms.from,
            to: &sms.to,
            body: text,
            now,
        },
    )
    .await?;
    let Some(keyword) = Keyword::of(text) else {
        return Ok(None);
    };
    match keyword {
        Keyword::OptOut => {
            suppressions::add(tenant, &sms.from, SOURCE_KEYWORD).await?;
        }
        Keyword::OptIn => {
            suppressions::remove(tenant, &sms.from).await?;
        }
        Keyword::Help => {}
    }
    log_line(
        json!({"level": "info", "msg": "sms keyword", "tenant_id": tenant.id(),
                    "keyword": format!("{keyword:?}"), "provider": carrier.as_str()}),
    );
    if carrier == Carrier::Telnyx {
        messages::queue(
            tenant,
            &Outgoing {
                id: &new_id::<MessageId>()?,
                kind: "keyword_reply",
                provider: carrier.as_str(),
                from: &sms.to,
                to: &sms.from,
                body: keyword.reply(),
                call_id: None,
                base_url,
                now,
            },
        )
        .await?;
        let env = app.env.clone();
        app.ctx
            .wait_until(async move { alarm::wake_at(&env, now).await });
    }
    Ok(Some(keyword))
}

/// Twilio reads its messaging webhooks' answers as TwiML; Telnyx ignores the body.
fn answer(carrier: Carrier, reply: Option<&str>, body: serde_json::Value) -> ApiResult {
    if carrier != Carrier::Twilio {
        return Ok(json_response(200, &body));
    }
    let mut response = Response::builder()
        .with_status(200)
        .fixed(twiml_reply(reply).into_bytes());
    let _ = response
        .headers_mut()
        .set("content-type", "text/xml; charset=utf-8");
    Ok(response)
}
