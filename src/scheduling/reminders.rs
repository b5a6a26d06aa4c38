//! Reminders before scheduled calls: the sweep hands each due reminder to its channel's outbox
//! (e-mail: the `emails` outbox, sent and retried by `emails.rs` like every confirmation), so
//! there is one sending implementation per channel. What a call gets is planned by the core's
//! `reminders` when it is scheduled; the store moves and cancels the rows with the call.

use crate::platform::app::load_config;
use crate::platform::http::{log_line, now_ms, ApiError};
use crate::scheduling::emails::{self, EmailFacts};
use crate::store::reminders;
use phone_agent_core::reminders::{idempotency_key, Channel};
use phone_agent_core::scheduling::email::EmailKind;
use serde_json::json;
use worker::d1::D1Database;
use worker::Env;

/// Due reminders handed over per scheduler run.
const BATCH: i64 = 50;

/// Hands up to one batch of due reminders to their outbox; returns how many were looked at.
/// Run before the email sweep, so a reminder goes out in the run that finds it due.
pub async fn hand_over_due(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let due = reminders::due_unscoped(&db, now, BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let config = load_config(env)?;
    let count = due.len();
    for r in due {
        let channel = Channel::parse(&r.channel);
        let email = match (channel, r.contact_email.as_deref()) {
            (Some(Channel::Email), Some(to_email)) => {
                let facts = EmailFacts {
                    tenant_id: r.tenant_id.as_str(),
                    call_id: r.call_id.as_str(),
                    to_email,
                    to_name: r.contact_name.as_deref(),
                    agent_name: r.agent_name.as_deref().unwrap_or("Your agent"),
                    phone_number: &r.to_number,
                    start_at: r.start_at,
                    time_zone: r.time_zone.as_deref(),
                };
                let sequence = u32::try_from(r.ics_sequence).unwrap_or(u32::MAX);
                let mut email =
                    emails::compose(&config, &facts, EmailKind::Reminder, sequence, now)?;
                let before = u32::try_from(r.before_minutes).unwrap_or(u32::MAX);
                email.idempotency_key =
                    idempotency_key(r.call_id.as_str(), Channel::Email, before, r.start_at);
                Some(email)
            }
            // Not reachable on its channel (or a channel this build does not send): skipped.
            _ => None,
        };
        if let Err(e) = reminders::hand_over(&db, &r.id, email.as_ref(), now).await {
            log_line(
                json!({"level": "error", "msg": "reminder hand-over", "reminder_id": r.id,
                            "call_id": r.call_id, "error": e.to_string()}),
            );
        }
    }
    Ok(count)
}

/// When the next pending reminder is due, if any.
pub async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
    Ok(reminders::next_due_unscoped(db).await?)
}
