//! Forwarding canonical events to endpoints: persist → deliver → record every attempt →
//! retry on the delivery policy's schedule → dead-letter. All state lives in D1, so a worker
//! restart between attempts loses nothing; a lease (`locked_until`) keeps overlapping senders
//! (first attempt, scheduler alarm, cron) from sending the same attempt twice.

use crate::platform::alarm;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, now_ms, random_unit, ApiError};
use crate::platform::outbound::{self, Failure};
use crate::store::db;
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{decide, response_excerpt, Decision, Outcome, REQUEST_TIMEOUT_MS};
use phone_agent_core::targets::check_target;
use phone_agent_core::webhooks::signatures::sign_standard;
use serde::Deserialize;
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

/// An event to store and forward.
pub struct NewEvent<'a> {
    pub tenant_id: &'a str,
    pub provider: &'a str,
    /// Dedupe key, unique per provider.
    pub provider_event_id: &'a str,
    pub event_type: &'a str,
    pub call_id: Option<&'a str>,
    pub received_at: i64,
    pub content_type: Option<&'a str>,
    pub raw_body: &'a str,
    /// The canonical envelope body, exactly as endpoints will receive it.
    pub payload: &'a Value,
}

/// Whether `publish` stored a new event or found the same one already stored.
pub enum Published {
    /// Stored, with this many deliveries created for matching endpoints.
    New(String, usize),
    Duplicate(String),
}

/// Creates one pending delivery per enabled endpoint whose filter matches the event's type
/// (`*`, an exact type, or a `prefix.*` wildcard); existing deliveries are left alone.
const FAN_OUT: &str = "
INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
SELECT 'dlv_' || lower(hex(randomblob(13))), e.tenant_id, e.id, p.id, 'pending', ?2, ?2, ?2
FROM webhook_events e JOIN endpoints p ON p.tenant_id = e.tenant_id
WHERE e.id = ?1 AND p.status = 'enabled' AND p.deleted_at IS NULL
  AND (?3 IS NULL OR p.id = ?3)
  AND (p.event_types IS NULL OR EXISTS (
        SELECT 1 FROM json_each(p.event_types) t
        WHERE t.value = e.type OR t.value = '*'
           OR (substr(t.value, -2) = '.*'
               AND substr(e.type, 1, length(t.value) - 1) = substr(t.value, 1, length(t.value) - 1))))
ON CONFLICT (event_id, endpoint_id) DO NOTHING";

/// Stores the event and its deliveries in one transaction; a duplicate creates nothing.
pub async fn publish(
    db: &D1Database,
    event: &NewEvent<'_>,
    event_id: &str,
) -> std::result::Result<Published, ApiError> {
    let payload = event.payload.to_string();
    let insert = db::stmt(
        db,
        "INSERT INTO webhook_events (id, tenant_id, provider, provider_event_id, type, call_id,
           received_at, content_type, raw_body, payload)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (provider, provider_event_id) DO NOTHING",
        &[
            &event_id,
            &event.tenant_id,
            &event.provider,
            &event.provider_event_id,
            &event.event_type,
            &event.call_id,
            &event.received_at,
            &event.content_type,
            &event.raw_body,
            &payload,
        ],
    )?;
    let fan_out = db::stmt(
        db,
        FAN_OUT,
        &[&event_id, &event.received_at, &None::<String>],
    )?;
    let changes = db::batch(db, vec![insert, fan_out]).await?;
    if changes.first().copied().unwrap_or(0) > 0 {
        let deliveries = changes.get(1).copied().unwrap_or(0);
        return Ok(Published::New(event_id.to_owned(), deliveries));
    }
    #[derive(Deserialize)]
    struct Existing {
        id: String,
    }
    let existing: Option<Existing> = db::first(
        db,
        "SELECT id FROM webhook_events WHERE provider = ? AND provider_event_id = ?",
        &[&event.provider, &event.provider_event_id],
    )
    .await?;
    let id = existing
        .map(|e| e.id)
        .ok_or_else(|| ApiError::internal("event neither inserted nor found"))?;
    Ok(Published::Duplicate(id))
}

/// Puts an event's deliveries (optionally one endpoint's) back to pending as a new retry
/// series, creating deliveries for endpoints that match now; returns how many are pending.
pub async fn replay(
    db: &D1Database,
    tenant_id: &str,
    event_id: &str,
    endpoint_id: Option<&str>,
) -> std::result::Result<usize, ApiError> {
    let now = now_ms();
    let reset = db::stmt(
        db,
        "UPDATE deliveries SET status = 'pending', series_attempts = 0, next_attempt_at = ?1,
           locked_until = NULL, updated_at = ?1
         WHERE tenant_id = ?2 AND event_id = ?3 AND (?4 IS NULL OR endpoint_id = ?4)
           AND status != 'pending'
           AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted_at IS NULL)",
        &[&now, &tenant_id, &event_id, &endpoint_id],
    )?;
    let fan_out = db::stmt(db, FAN_OUT, &[&event_id, &now, &endpoint_id])?;
    let changes = db::batch(db, vec![reset, fan_out]).await?;
    Ok(changes.iter().sum())
}

/// Sends every due delivery of one event right away (the first attempt after the ack).
pub async fn deliver_event(env: &Env, event_id: &str) {
    let result = async {
        let db = env.d1("DB")?;
        let ids: Vec<String> = db::ids(
            &db,
            "SELECT id FROM deliveries WHERE event_id = ? AND status = 'pending'",
            &[&event_id],
        )
        .await?;
        send_all(env, &db, ids).await?;
        // Whatever is still pending (a failed first attempt) is the scheduler's now.
        if let Some(at) = next_due(&db).await? {
            alarm::wake_at(env, at).await;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = result {
        log_line(
            json!({"level": "error", "msg": "deliver event", "event_id": event_id, "error": e.message}),
        );
    }
}

/// Sends up to one batch of due deliveries; returns how many were attempted.
pub async fn deliver_due(env: &Env) -> std::result::Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let due: Vec<String> = db::ids(
        &db,
        "SELECT d.id FROM deliveries d JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
           AND (d.locked_until IS NULL OR d.locked_until < ?1)
           AND p.status = 'enabled' AND p.deleted_at IS NULL
         ORDER BY d.next_attempt_at LIMIT ?2",
        &[&now, &BATCH],
    )
    .await?;
    let count = due.len();
    send_all(env, &db, due).await?;
    Ok(count)
}

/// When the next pending delivery is due, if any.
pub async fn next_due(db: &D1Database) -> std::result::Result<Option<i64>, ApiError> {
    #[derive(Deserialize)]
    struct Next {
        at: Option<i64>,
    }
    let next: Option<Next> = db::first(
        db,
        "SELECT min(d.next_attempt_at) AS at FROM deliveries d JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.status = 'pending' AND p.status = 'enabled' AND p.deleted_at IS NULL",
        &[],
    )
    .await?;
    Ok(next.and_then(|n| n.at))
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

#[derive(Deserialize)]
struct Leased {
    attempts: i64,
    series_attempts: i64,
    event_id: String,
    payload: String,
    endpoint_id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
    endpoint_status: String,
    deleted_at: Option<i64>,
}

/// One attempt of one delivery, if it is still due and nobody else holds it.
async fn attempt(
    db: &D1Database,
    config: &Config,
    delivery_id: &str,
) -> std::result::Result<(), ApiError> {
    let started = now_ms();
    let leased = db::run(
        db,
        "UPDATE deliveries SET locked_until = ?1 WHERE id = ?2 AND status = 'pending'
           AND next_attempt_at <= ?3 AND (locked_until IS NULL OR locked_until < ?3)",
        &[&(started + LEASE_MS), &delivery_id, &started],
    )
    .await?;
    if leased == 0 {
        return Ok(());
    }
    let Some(d) = db::first::<Leased>(
        db,
        "SELECT d.attempts, d.series_attempts, e.id AS event_id, e.payload, p.id AS endpoint_id,
           p.url, p.secret, p.previous_secret, p.previous_secret_expires_at,
           p.status AS endpoint_status, p.deleted_at
         FROM deliveries d JOIN webhook_events e ON e.id = d.event_id
           JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.id = ?",
        &[&delivery_id],
    )
    .await?
    else {
        return Ok(());
    };

    if d.endpoint_status != "enabled" || d.deleted_at.is_some() {
        // Paused endpoints keep their backlog; it is sent when they are enabled again.
        db::run(
            db,
            "UPDATE deliveries SET locked_until = NULL WHERE id = ?",
            &[&delivery_id],
        )
        .await?;
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
                match sign_standard(&secrets, &d.event_id, timestamp, d.payload.as_bytes()) {
                    Err(e) => (None, None, Some(format!("cannot sign: {e}")), 0),
                    Ok(signature) => {
                        let timestamp = timestamp.to_string();
                        // Only the excerpt is kept (+4: its last character may be multi-byte).
                        let reply = outbound::send_capped(
                            Method::Post,
                            &d.url,
                            &[
                                ("content-type", "application/json"),
                                (
                                    "user-agent",
                                    concat!("phone-agent/", env!("CARGO_PKG_VERSION")),
                                ),
                                ("webhook-id", &d.event_id),
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
                            Ok(reply) => {
                                let outcome = Outcome::Status {
                                    code: reply.status,
                                    retry_after: reply.header("retry-after").map(str::to_owned),
                                };
                                (
                                    Some(outcome),
                                    Some(response_excerpt(&reply.body, EXCERPT_BYTES)),
                                    None,
                                    latency,
                                )
                            }
                            Err(Failure::Timeout) => (
                                Some(Outcome::Timeout),
                                None,
                                Some("timed out".into()),
                                latency,
                            ),
                            Err(e @ Failure::Network(_)) => (
                                Some(Outcome::NetworkError),
                                None,
                                Some(e.to_string()),
                                latency,
                            ),
                        }
                    }
                }
            }
        };

    let finished = now_ms();
    // A refused target or an unusable secret will not fix itself: dead-letter at once.
    let decision = match &outcome {
        None => Decision::Dead,
        Some(outcome) => decide(
            &config.delivery_retry_schedule,
            u32::try_from(series_no).unwrap_or(u32::MAX),
            finished,
            finished,
            outcome,
            random_unit(),
        ),
    };
    let status_code = match &outcome {
        Some(Outcome::Status { code, .. }) => Some(i64::from(*code)),
        _ => None,
    };
    let (status, next_attempt_at) = match decision {
        Decision::Delivered => ("succeeded", None),
        Decision::Retry { at_unix_ms } => ("pending", Some(at_unix_ms)),
        Decision::Dead => ("dead", None),
        Decision::DisableEndpoint => ("failed", None),
    };
    let mut statements = vec![
        db::stmt(
            db,
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms, response_excerpt, error)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[&delivery_id, &attempt_no, &started, &status_code, &latency, &excerpt, &error],
        )?,
        db::stmt(
            db,
            "UPDATE deliveries SET status = ?1, attempts = ?2, series_attempts = ?3,
               first_attempt_at = COALESCE(first_attempt_at, ?4), next_attempt_at = ?5,
               locked_until = NULL, last_status_code = ?6, last_response = ?7, last_error = ?8,
               updated_at = ?9
             WHERE id = ?10",
            &[
                &status,
                &attempt_no,
                &series_no,
                &started,
                &next_attempt_at,
                &status_code,
                &excerpt,
                &error,
                &finished,
                &delivery_id,
            ],
        )?,
    ];
    if decision == Decision::DisableEndpoint {
        statements.push(db::stmt(
            db,
            "UPDATE endpoints SET status = 'disabled', disabled_reason = ?, updated_at = ? WHERE id = ?",
            &[&"endpoint answered 410 Gone", &finished, &d.endpoint_id],
        )?);
    }
    db::batch(db, statements).await?;
    log_line(json!({
        "level": "info", "msg": "delivery attempt", "delivery_id": delivery_id, "event_id": d.event_id,
        "endpoint_id": d.endpoint_id, "attempt": attempt_no, "status_code": status_code,
        "latency_ms": latency, "result": status, "error": error,
    }));
    Ok(())
}
