//! Forwarding canonical events to endpoints: persist → deliver → record every attempt →
//! retry on the delivery policy's schedule → dead-letter. All state lives in D1, so a worker
//! restart between attempts loses nothing; a lease (`locked_until`) keeps overlapping senders
//! (first attempt, scheduler alarm, cron) from sending the same attempt twice.

use crate::platform::alarm;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, new_id, now_ms, random_unit, rfc3339, ApiError};
use crate::platform::outbound;
use crate::store::deliveries::{self, AttemptRecord};
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{
    decide_attempt, response_excerpt, Decision, Outcome, REQUEST_TIMEOUT_MS,
};
use phone_agent_core::ids::EventId;
use phone_agent_core::targets::check_target;
use phone_agent_core::webhooks::signatures::sign_standard;
use serde_json::{json, Value};
use std::time::Duration;
use worker::d1::D1Database;
use worker::{Env, Method};

/// A delivery is leased for longer than one attempt can take (timeout plus bookkeeping).
const LEASE_MS: i64 = REQUEST_TIMEOUT_MS as i64 + 45_000;
/// How much of a target's response body is kept with the attempt.
const EXCERPT_BYTES: usize = 1024;
/// Due deliveries sent per scheduler run, and how many at once.
const BATCH: i64 = 100;
const PARALLEL: usize = 10;

pub use crate::store::events::{publish, NewEvent, Published};

/// Provider name of the events this worker emits itself (`call.*`, `campaign.*`,
/// `appointment.*`).
pub const OWN_PROVIDER: &str = "phone-agent";

/// One event of our own, before it is stored.
pub struct OwnEvent<'a> {
    pub tenant_id: &'a str,
    pub event_type: &'a str,
    /// Unique per change, so a retried request or job cannot publish the change twice.
    pub key: &'a str,
    pub call_id: Option<&'a str>,
    /// The event's `data`; `provider` and `provider_event_id` are added.
    pub data: Value,
    pub now: i64,
}

/// Stores one of our own events (deduplicated on its key) with its deliveries and wakes the
/// scheduler to send them; the same from the API, a webhook, the alarm and the cron.
pub async fn publish_own(env: &Env, db: &D1Database, event: OwnEvent<'_>) -> Result<(), ApiError> {
    let mut data = event.data;
    if let Value::Object(fields) = &mut data {
        fields.insert("provider".into(), OWN_PROVIDER.into());
        fields.insert("provider_event_id".into(), event.key.into());
    }
    let payload = json!({"type": event.event_type, "timestamp": rfc3339(event.now), "data": data});
    let raw = payload.to_string();
    let published = publish(
        db,
        &NewEvent {
            tenant_id: event.tenant_id,
            provider: OWN_PROVIDER,
            provider_event_id: event.key,
            event_type: event.event_type,
            call_id: event.call_id,
            received_at: event.now,
            content_type: Some("application/json"),
            raw_body: &raw,
            payload: &payload,
        },
        &new_id::<EventId>()?,
    )
    .await?;
    if let Published::New(_, deliveries) = published {
        if deliveries > 0 {
            alarm::wake_at(env, event.now).await;
        }
    }
    Ok(())
}

/// Sends every due delivery of one event right away (the first attempt after the ack).
pub async fn deliver_event(env: &Env, event_id: &str) {
    let first_attempts = async {
        let db = env.d1("DB")?;
        let ids = deliveries::pending_of_event(&db, event_id).await?;
        send_all(env, &db, ids).await?;
        // Whatever is still pending (a failed first attempt) is the scheduler's now.
        next_due(&db).await
    };
    let context = json!({"level": "error", "msg": "deliver event", "event_id": event_id});
    alarm::after_first_attempts(env, first_attempts, context).await;
}

/// Sends up to one batch of due deliveries; returns how many were attempted.
pub async fn deliver_due(env: &Env) -> std::result::Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let due = deliveries::due_any_tenant(&db, now, BATCH).await?;
    let count = due.len();
    send_all(env, &db, due).await?;
    Ok(count)
}

/// When the next pending delivery is due, if any.
pub async fn next_due(db: &D1Database) -> std::result::Result<Option<i64>, ApiError> {
    Ok(deliveries::next_due_any_tenant(db).await?)
}

async fn send_all(
    env: &Env,
    db: &D1Database,
    ids: Vec<String>,
) -> std::result::Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let config = load_config(env)?;
    for chunk in ids.chunks(PARALLEL) {
        let attempts = chunk.iter().map(|id| attempt(db, &config, id));
        for result in futures_util::future::join_all(attempts).await {
            if let Err(e) = result {
                log_line(json!({"level": "error", "msg": "delivery attempt", "error": e.message}));
            }
        }
    }
    Ok(())
}

/// One attempt of one delivery, if it is still due and nobody else holds it.
async fn attempt(
    db: &D1Database,
    config: &Config,
    delivery_id: &str,
) -> std::result::Result<(), ApiError> {
    let started = now_ms();
    let Some(d) = deliveries::lease(db, delivery_id, started, started + LEASE_MS).await? else {
        return Ok(());
    };

    if d.endpoint_status != "enabled" || d.deleted_at.is_some() {
        // Paused endpoints keep their backlog; it is sent when they are enabled again.
        deliveries::release(db, delivery_id).await?;
        return Ok(());
    }

    let attempt_no = d.attempts + 1;
    let series_no = d.series_attempts + 1;
    let (outcome, excerpt, error, latency) =
        match check_target(&d.url, config.allow_private_targets) {
            Err(refused) => (None, None, Some(format!("target refused: {refused}")), 0),
            Ok(_) => {
                let timestamp = started.div_euclid(1000);
                let mut secrets = vec![d.secret.as_str()];
                if let (Some(previous), Some(until)) =
                    (&d.previous_secret, d.previous_secret_expires_at)
                {
                    if until > started {
                        secrets.push(previous);
                    }
                }
                match sign_standard(
                    &secrets,
                    d.event_id.as_str(),
                    timestamp,
                    d.payload.as_bytes(),
                ) {
                    Err(e) => (None, None, Some(format!("cannot sign: {e}")), 0),
                    Ok(signature) => {
                        let timestamp = timestamp.to_string();
                        // Only the excerpt is kept (+4: its last character may be multi-byte).
                        let reply = outbound::send(
                            Method::Post,
                            &d.url,
                            &[
                                ("content-type", "application/json"),
                                (
                                    "user-agent",
                                    concat!("phone-agent/", env!("CARGO_PKG_VERSION")),
                                ),
                                ("webhook-id", d.event_id.as_str()),
                                ("webhook-timestamp", &timestamp),
                                ("webhook-signature", &signature),
                            ],
                            Some(d.payload.as_bytes()),
                            Duration::from_millis(REQUEST_TIMEOUT_MS),
                            EXCERPT_BYTES + 4,
                        )
                        .await;
                        let latency = now_ms() - started;
                        match reply {
                            Ok(reply) => (
                                Some(reply.outcome(&["retry-after"])),
                                Some(response_excerpt(&reply.body, EXCERPT_BYTES)),
                                None,
                                latency,
                            ),
                            Err(failure) => (
                                Some(failure.outcome()),
                                None,
                                Some(failure.to_string()),
                                latency,
                            ),
                        }
                    }
                }
            }
        };

    let finished = now_ms();
    let decision = decide_attempt(
        &config.delivery_retry_schedule,
        series_no,
        finished,
        outcome.as_ref(),
        random_unit(),
    );
    let status_code = outcome.as_ref().and_then(Outcome::status_code);
    let (status, next_attempt_at) = match decision {
        Decision::Delivered => ("succeeded", None),
        Decision::Retry { at_unix_ms } => ("pending", Some(at_unix_ms)),
        Decision::Dead => ("dead", None),
        Decision::DisableEndpoint => ("failed", None),
    };
    let disable = (decision == Decision::DisableEndpoint)
        .then_some((&d.endpoint_id, "endpoint answered 410 Gone"));
    deliveries::record(
        db,
        &AttemptRecord {
            delivery_id,
            attempt: attempt_no,
            series_attempt: series_no,
            started,
            finished,
            status_code,
            latency_ms: latency,
            response_excerpt: excerpt.as_deref(),
            error: error.as_deref(),
            status,
            next_attempt_at,
            disable_endpoint: disable,
        },
    )
    .await?;
    log_line(json!({
        "level": "info", "msg": "delivery attempt", "delivery_id": delivery_id, "event_id": d.event_id,
        "endpoint_id": d.endpoint_id, "attempt": attempt_no, "status_code": status_code,
        "latency_ms": latency, "result": status, "error": error,
    }));
    Ok(())
}
