//! Outbound text messages, sent from the `messages` outbox with the machinery of the email
//! outbox: a lease (`locked_until`) keeps the API request, the alarm and the cron from sending
//! one message twice at once, the core delivery policy decides retries (a carrier's 429/5xx or
//! a timeout is retried on `DELIVERY_RETRY_SCHEDULE`, a 4xx is final), and the `Scheduler`
//! wakes for the next due attempt. The suppression list is checked again at send: a recipient
//! who opted out after the message was queued gets nothing (the message is `skipped`).

use crate::platform::http::{log_line, now_ms, ApiError};
use crate::platform::outbound;
use crate::scheduling::outbox::{self, settle, Leasing};
use crate::store::messages::{self, Leased};
use crate::store::outbox::Attempt;
use crate::store::suppressions;
use crate::store::tenant::Tenant;
use phone_agent_core::carrier::{Carrier, Sms};
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{response_excerpt, REQUEST_TIMEOUT_MS};
use serde_json::json;
use std::time::Duration;
use worker::d1::D1Database;
use worker::Env;

/// Sends message `id` now (the first attempt right after it is queued), then leaves a failure
/// to the scheduler.
pub async fn send_now(env: &Env, id: &str) {
    let context = json!({"level": "error", "msg": "send message", "message_id": id});
    outbox::send_now::<Messages>(env, async |_: &D1Database| Ok(vec![id.to_owned()]), context)
        .await;
}

/// The text-message outbox.
pub struct Messages;

impl Leasing for Messages {
    type Row = Leased;
    const LOG: (&'static str, &'static str) = ("message attempt", "message_id");

    /// Sends leased message `m` once (unless its recipient opted out) and records how it went.
    async fn handle(
        _env: &Env,
        db: &D1Database,
        config: &Config,
        id: &str,
        m: Leased,
    ) -> Result<(), ApiError> {
        let attempt_no = m.attempts + 1;
        // The reply to a keyword goes to whoever sent it, STOP included (the carriers' rule: the
        // opt-out is confirmed once); everything else respects the list as it is now.
        let tenant = Tenant::on(db, m.tenant_id.clone());
        if m.kind != "keyword_reply" && suppressions::contains(&tenant, &m.to_number).await? {
            let attempted = Attempt {
                status: "skipped",
                attempts: m.attempts,
                next_attempt_at: None,
                error: Some("the recipient opted out before it was sent"),
                at: now_ms(),
            };
            messages::record_attempt(db, id, &attempted, None).await?;
            log_line(
                json!({"level": "info", "msg": "message skipped", "message_id": id,
                            "reason": "recipient_opted_out"}),
            );
            return Ok(());
        }
        let carrier = Carrier::parse(&m.provider).unwrap_or(Carrier::Twilio);
        let status_url = format!(
            "{}/sms/{}",
            m.base_url.as_deref().unwrap_or_default(),
            carrier.as_str()
        );
        let request = carrier.send_sms(
            config,
            &Sms {
                to: &m.to_number,
                from: &m.from_number,
                text: &m.body,
                status_url: &status_url,
            },
        );
        let (outcome, error, provider_message_id) = match request {
            Err(e) => (None, Some(e.to_string()), None),
            Ok(request) => {
                match outbound::carrier(&request, Duration::from_millis(REQUEST_TIMEOUT_MS)).await {
                    Ok(reply) => {
                        let read = carrier.sms_reply(reply.status, &reply.body);
                        let error = match &read {
                            Ok(_) => None,
                            Err(e) => Some(format!("{e}: {}", response_excerpt(&reply.body, 300))),
                        };
                        (Some(reply.outcome(&["retry-after"])), error, read.ok())
                    }
                    Err(failure) => (Some(failure.outcome()), Some(failure.to_string()), None),
                }
            }
        };
        let attempted = settle(
            config,
            attempt_no,
            now_ms(),
            outcome.as_ref(),
            ["sent", "dead"],
            error.as_deref(),
        );
        messages::record_attempt(db, id, &attempted, provider_message_id.as_deref()).await?;
        log_line(
            json!({"level": "info", "msg": "message attempt", "message_id": id,
                        "attempt": attempt_no, "result": attempted.status, "error": error}),
        );
        Ok(())
    }
}
