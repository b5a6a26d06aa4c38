//! Outbound text messages, sent from the `messages` outbox with the machinery of the email
//! outbox: a lease (`locked_until`) keeps the API request, the alarm and the cron from sending
//! one message twice at once, the core delivery policy decides retries (a carrier's 429/5xx or
//! a timeout is retried on `DELIVERY_RETRY_SCHEDULE`, a 4xx is final), and the `Scheduler`
//! wakes for the next due attempt. The suppression list is checked again at send: a recipient
//! who opted out after the message was queued gets nothing (the message is `skipped`).

use crate::platform::alarm;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, now_ms, random_unit, ApiError};
use crate::platform::outbound;
use crate::store::messages::{self, Attempted};
use crate::store::suppressions;
use crate::store::tenant::Tenant;
use phone_agent_core::carrier::{Carrier, Sms};
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{decide_attempt, response_excerpt, Decision, REQUEST_TIMEOUT_MS};
use serde_json::json;
use std::time::Duration;
use worker::d1::D1Database;
use worker::Env;

/// An attempt is leased for longer than it can take.
const LEASE_MS: i64 = REQUEST_TIMEOUT_MS as i64 + 45_000;
/// Due messages sent per scheduler run.
const BATCH: i64 = 50;

/// Sends message `id` now (the first attempt right after it is queued), then leaves a failure
/// to the scheduler.
pub async fn send_now(env: &Env, id: &str) {
    let first_attempt = async {
        let db = env.d1("DB")?;
        let config = load_config(env)?;
        attempt(&db, &config, id).await?;
        next_due(&db).await
    };
    let context = json!({"level": "error", "msg": "send message", "message_id": id});
    alarm::after_first_attempts(env, first_attempt, context).await;
}

/// Sends up to one batch of due messages; returns how many were attempted.
pub async fn send_due(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let due = messages::due_unscoped(&db, now_ms(), BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let config = load_config(env)?;
    let count = due.len();
    for id in due {
        if let Err(e) = attempt(&db, &config, &id).await {
            log_line(
                json!({"level": "error", "msg": "message attempt", "message_id": id, "error": e.message}),
            );
        }
    }
    Ok(count)
}

/// When the next pending message is due, if any.
pub async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
    Ok(messages::next_due_unscoped(db).await?)
}

/// One attempt of one message, if it is still due and nobody else holds it.
async fn attempt(db: &D1Database, config: &Config, id: &str) -> Result<(), ApiError> {
    let started = now_ms();
    let Some(m) = messages::lease(db, id, started + LEASE_MS, started).await? else {
        return Ok(());
    };
    let attempt_no = m.attempts + 1;
    // The reply to a keyword goes to whoever sent it, STOP included (the carriers' rule: the
    // opt-out is confirmed once); everything else respects the list as it is now.
    let tenant = Tenant::on(db, m.tenant_id.clone());
    if m.kind != "keyword_reply" && suppressions::contains(&tenant, &m.to_number).await? {
        let attempted = Attempted {
            status: "skipped",
            attempts: m.attempts,
            next_attempt_at: None,
            error: Some("the recipient opted out before it was sent"),
            provider_message_id: None,
            at: now_ms(),
        };
        messages::record_attempt(db, id, &attempted).await?;
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
    let finished = now_ms();
    let decision = decide_attempt(
        &config.delivery_retry_schedule,
        attempt_no,
        finished,
        outcome.as_ref(),
        random_unit(),
    );
    let (status, next_attempt_at) = match decision {
        Decision::Delivered => ("sent", None),
        Decision::Retry { at_unix_ms } => ("pending", Some(at_unix_ms)),
        Decision::Dead | Decision::DisableEndpoint => ("dead", None),
    };
    let attempted = Attempted {
        status,
        attempts: attempt_no,
        next_attempt_at,
        error: error.as_deref(),
        provider_message_id: provider_message_id.as_deref(),
        at: finished,
    };
    messages::record_attempt(db, id, &attempted).await?;
    log_line(
        json!({"level": "info", "msg": "message attempt", "message_id": id,
                    "attempt": attempt_no, "result": status, "error": error}),
    );
    Ok(())
}
