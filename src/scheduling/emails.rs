//! Confirmation emails through Resend, sent from an outbox (`emails`) with the same machinery as
//! webhook deliveries: the core delivery policy decides retries, a lease (`locked_until`) keeps
//! the API request, the alarm and the cron from sending one email twice at once, and the
//! `Scheduler` wakes for the next due attempt. Resend's `Idempotency-Key` (per call, change and
//! sequence) plus a body stored once make a resend after a crash harmless.

use crate::platform::alarm;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, new_id, now_ms, random_unit, ApiError};
use crate::platform::outbound::{self, Failure};
use crate::platform::zones;
use crate::store::db;
use chrono::DateTime;
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{decide, response_excerpt, Decision, Outcome, REQUEST_TIMEOUT_MS};
use phone_agent_core::scheduling::email::{
    confirmation_email, idempotency_key, CallEmail, EmailKind,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use worker::d1::{D1Database, D1PreparedStatement};
use worker::{Env, Method};

/// An attempt is leased for longer than it can take.
const LEASE_MS: i64 = REQUEST_TIMEOUT_MS as i64 + 45_000;
/// Length of the calendar slot in invitations.
const SLOT_MINUTES: u32 = 15;
/// Due emails sent per scheduler run.
const BATCH: i64 = 50;

/// What an email about a call says.
pub struct EmailFacts<'a> {
    pub tenant_id: &'a str,
    pub call_id: &'a str,
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    pub agent_name: &'a str,
    pub phone_number: &'a str,
    pub start_at: i64,
    pub time_zone: Option<&'a str>,
}

/// Statements that queue one email (and retire older unsent ones of the same call, which the
/// new sequence supersedes). `only_if` is SQL that must select a row for the email to be queued,
/// so it commits with the change it announces (e.g. the call row the same batch inserted).
/// Without a usable `EMAIL_FROM` the email is stored as dead with the reason, visible on the call.
pub fn enqueue(
    db: &D1Database,
    config: &Config,
    facts: &EmailFacts,
    kind: EmailKind,
    sequence: u32,
    now: i64,
    only_if: (&str, &[&dyn db::Arg]),
) -> Result<Vec<D1PreparedStatement>, ApiError> {
    let start = DateTime::from_timestamp_millis(facts.start_at).unwrap_or_default();
    let dtstamp = DateTime::from_timestamp_millis(now).unwrap_or_default();
    let built = match config.providers.email_from.as_deref() {
        None => Err("EMAIL_FROM is not set".to_owned()),
        Some(from) => confirmation_email(&CallEmail {
            kind,
            call_id: facts.call_id,
            sequence,
            from,
            to_email: facts.to_email,
            to_name: facts.to_name,
            agent_name: facts.agent_name,
            phone_number: facts.phone_number,
            start,
            time_zone: zones::zone(facts.time_zone),
            duration_minutes: SLOT_MINUTES,
            dtstamp,
        })
        .map_err(|e| e.to_string()),
    };
    let (status, request, error, next) = match built {
        Ok(body) => ("pending", body.to_string(), None, Some(now)),
        Err(e) => ("dead", "{}".to_owned(), Some(e), None),
    };
    let key = idempotency_key(facts.call_id, sequence, kind);
    let id = new_id("eml")?;
    let (condition, condition_args) = only_if;
    let kind_name = kind.as_str();
    let mut insert_args: Vec<&dyn db::Arg> = vec![
        &id,
        &facts.tenant_id,
        &facts.call_id,
        &kind_name,
        &sequence,
        &key,
        &facts.to_email,
        &request,
        &status,
        &next,
        &error,
        &now,
    ];
    insert_args.extend_from_slice(condition_args);
    let email_status = if status == "dead" {
        "failed"
    } else {
        "pending"
    };
    let mut supersede_args: Vec<&dyn db::Arg> = vec![&now, &facts.call_id];
    supersede_args.extend_from_slice(condition_args);
    Ok(vec![
        db::stmt(
            db,
            &format!(
                "UPDATE emails SET status = 'superseded', next_attempt_at = NULL, updated_at = ?1
                 WHERE call_id = ?2 AND status = 'pending' AND EXISTS ({condition})"
            ),
            &supersede_args,
        )?,
        db::stmt(
            db,
            &format!(
                "INSERT INTO emails (id, tenant_id, call_id, kind, sequence, idempotency_key, to_email,
                   request, status, next_attempt_at, last_error, created_at, updated_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12
                 WHERE EXISTS ({condition})
                 ON CONFLICT (idempotency_key) DO NOTHING"
            ),
            &insert_args,
        )?,
        db::stmt(
            db,
            "UPDATE calls SET email_status = ? WHERE id = ? AND EXISTS (SELECT 1 FROM emails WHERE id = ?)",
            &[&email_status, &facts.call_id, &id],
        )?,
    ])
}

/// Sends a call's due emails now (the first attempt right after the API answers), then leaves
/// whatever failed to the scheduler.
pub async fn send_for_call(env: &Env, call_id: &str) {
    let result = async {
        let db = env.d1("DB")?;
        let ids: Vec<String> = db::ids(
            &db,
            "SELECT id FROM emails WHERE call_id = ? AND status = 'pending'",
            &[&call_id],
        )
        .await?;
        let config = load_config(env)?;
        for id in ids {
            attempt(&db, &config, &id).await?;
        }
        if let Some(at) = next_due(&db).await? {
            alarm::wake_at(env, at).await;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = result {
        log_line(
            json!({"level": "error", "msg": "send call emails", "call_id": call_id, "error": e.message}),
        );
    }
}

/// Sends up to one batch of due emails; returns how many were attempted.
pub async fn send_due(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let due: Vec<String> = db::ids(
        &db,
        "SELECT id FROM emails WHERE status = 'pending' AND next_attempt_at <= ?1
           AND (locked_until IS NULL OR locked_until < ?1)
         ORDER BY next_attempt_at LIMIT ?2",
        &[&now, &BATCH],
    )
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let config = load_config(&env.clone())?;
    let count = due.len();
    for id in due {
        if let Err(e) = attempt(&db, &config, &id).await {
            log_line(
                json!({"level": "error", "msg": "email attempt", "email_id": id, "error": e.message}),
            );
        }
    }
    Ok(count)
}

/// When the next pending email is due, if any.
pub async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
    #[derive(Deserialize)]
    struct Next {
        at: Option<i64>,
    }
    let next: Option<Next> = db::first(
        db,
        "SELECT min(next_attempt_at) AS at FROM emails WHERE status = 'pending'",
        &[],
    )
    .await?;
    Ok(next.and_then(|n| n.at))
}

/// One attempt of one email, if it is still due and nobody else holds it.
async fn attempt(db: &D1Database, config: &Config, email_id: &str) -> Result<(), ApiError> {
    let started = now_ms();
    let leased = db::run(
        db,
        "UPDATE emails SET locked_until = ?1 WHERE id = ?2 AND status = 'pending'
           AND next_attempt_at <= ?3 AND (locked_until IS NULL OR locked_until < ?3)",
        &[&(started + LEASE_MS), &email_id, &started],
    )
    .await?;
    if leased == 0 {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct Leased {
        call_id: String,
        kind: String,
        sequence: i64,
        idempotency_key: String,
        request: String,
        attempts: i64,
    }
    let Some(e) = db::first::<Leased>(
        db,
        "SELECT call_id, kind, sequence, idempotency_key, request, attempts FROM emails WHERE id = ?",
        &[&email_id],
    )
    .await?
    else {
        return Ok(());
    };
    let attempt_no = e.attempts + 1;
    let (outcome, error, message_id) = match config.providers.resend_api_key.as_deref() {
        None => (None, Some("RESEND_API_KEY is not set".to_owned()), None),
        Some(key) => {
            let url = format!("{}/emails", config.providers.resend_api_url);
            let auth = format!("Bearer {key}");
            let reply = outbound::send(
                Method::Post,
                &url,
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                    ("idempotency-key", &e.idempotency_key),
                    (
                        "user-agent",
                        concat!("phone-agent/", env!("CARGO_PKG_VERSION")),
                    ),
                ],
                Some(e.request.as_bytes()),
                Duration::from_millis(REQUEST_TIMEOUT_MS),
            )
            .await;
            match reply {
                Ok(reply) => {
                    let ok = (200..300).contains(&reply.status);
                    let message_id = serde_json::from_slice::<Value>(&reply.body)
                        .ok()
                        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
                    let error = (!ok).then(|| {
                        format!(
                            "Resend answered HTTP {}: {}",
                            reply.status,
                            response_excerpt(&reply.body, 300)
                        )
                    });
                    let outcome = Outcome::Status {
                        code: reply.status,
                        retry_after: reply
                            .header("retry-after")
                            .or_else(|| reply.header("ratelimit-reset"))
                            .map(str::to_owned),
                    };
                    (Some(outcome), error, message_id)
                }
                Err(Failure::Timeout) => (Some(Outcome::Timeout), Some("timed out".into()), None),
                Err(f @ Failure::Network(_)) => {
                    (Some(Outcome::NetworkError), Some(f.to_string()), None)
                }
            }
        }
    };
    let finished = now_ms();
    let decision = match &outcome {
        // Not configured: retrying cannot help until an operator acts; the email is dead.
        None => Decision::Dead,
        Some(outcome) => decide(
            &config.delivery_retry_schedule,
            u32::try_from(attempt_no).unwrap_or(u32::MAX),
            finished,
            finished,
            outcome,
            random_unit(),
        ),
    };
    let (status, next_attempt_at, call_email_status) = match decision {
        Decision::Delivered => ("sent", None, "sent"),
        Decision::Retry { at_unix_ms } => ("pending", Some(at_unix_ms), "retrying"),
        // 410 means nothing for an email API: it is as final as an exhausted schedule.
        Decision::Dead | Decision::DisableEndpoint => ("dead", None, "failed"),
    };
    let status_code = match &outcome {
        Some(Outcome::Status { code, .. }) => Some(i64::from(*code)),
        _ => None,
    };
    let mut statements = vec![
        db::stmt(
            db,
            "UPDATE emails SET status = ?1, attempts = ?2, next_attempt_at = ?3, locked_until = NULL,
               last_status_code = ?4, last_error = ?5, provider_message_id = COALESCE(?6, provider_message_id),
               updated_at = ?7
             WHERE id = ?8",
            &[
                &status,
                &attempt_no,
                &next_attempt_at,
                &status_code,
                &error,
                &message_id,
                &finished,
                &email_id,
            ],
        )?,
        // The call shows its latest email's state; an older email never overwrites a newer one's.
        db::stmt(
            db,
            "UPDATE calls SET email_status = ?1 WHERE id = ?2
               AND NOT EXISTS (SELECT 1 FROM emails WHERE call_id = ?2 AND sequence > ?3)",
            &[&call_email_status, &e.call_id, &e.sequence],
        )?,
    ];
    if status != "pending" || attempt_no == 1 {
        // The history records each email's outcome and its first failure, not every retry.
        let detail = json!({"email_id": email_id, "kind": e.kind, "sequence": e.sequence,
            "status": call_email_status, "attempt": attempt_no, "status_code": status_code,
            "error": error, "resend_id": message_id});
        statements.push(db::stmt(
            db,
            "INSERT INTO call_events (call_id, at, kind, source, detail) VALUES (?, ?, 'email', 'scheduler', ?)",
            &[&e.call_id, &finished, &detail.to_string()],
        )?);
    }
    db::batch(db, statements).await?;
    log_line(
        json!({"level": "info", "msg": "email attempt", "email_id": email_id, "call_id": e.call_id,
        "attempt": attempt_no, "status_code": status_code, "result": status, "error": error}),
    );
    Ok(())
}
