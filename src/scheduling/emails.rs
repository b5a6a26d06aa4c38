//! Confirmation emails through Resend, sent from an outbox (`emails`) with the same machinery as
//! webhook deliveries: the core delivery policy decides retries, a lease (`locked_until`) keeps
//! the API request, the alarm and the cron from sending one email twice at once, and the
//! `Scheduler` wakes for the next due attempt. Resend's `Idempotency-Key` (per call, change and
//! sequence) plus a body stored once make a resend after a crash harmless.

use crate::platform::http::{log_line, new_id, now_ms, ApiError};
use crate::platform::outbound;
use crate::platform::zones;
use crate::scheduling::outbox::{self, settle, Leasing};
use crate::store::emails::{self, About, Attempted, Leased, NewEmail};
use chrono::DateTime;
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{response_excerpt, Outcome, REQUEST_TIMEOUT_MS};
use phone_agent_core::limits::REPLY_BODY_LIMIT;
use phone_agent_core::scheduling::email::{
    idempotency_key, invitation_email, EmailKind, InvitationEmail, Topic,
};
use serde_json::{json, Value};
use std::time::Duration;
use worker::d1::D1Database;
use worker::{Env, Method};

/// Length of the calendar slot in invitations.
const SLOT_MINUTES: u32 = 15;

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

/// The email announcing `kind` of the call `facts` describe, as ICS `sequence`, ready for the
/// store to queue with the change. Without a usable `EMAIL_FROM` it carries the reason instead
/// of a body, and is stored as dead, visible on the call.
pub fn compose<'a>(
    config: &Config,
    facts: &EmailFacts<'a>,
    kind: EmailKind,
    sequence: u32,
    now: i64,
) -> Result<NewEmail<'a>, ApiError> {
    let start = DateTime::from_timestamp_millis(facts.start_at).unwrap_or_default();
    let dtstamp = DateTime::from_timestamp_millis(now).unwrap_or_default();
    let request = match config.providers.email_from.as_deref() {
        None => Err("EMAIL_FROM is not set".to_owned()),
        Some(from) => invitation_email(&InvitationEmail {
            kind,
            id: facts.call_id,
            topic: Topic::Call {
                phone_number: facts.phone_number,
            },
            sequence,
            from,
            to_email: facts.to_email,
            to_name: facts.to_name,
            agent_name: facts.agent_name,
            start,
            time_zone: zones::zone(facts.time_zone),
            duration_minutes: SLOT_MINUTES,
            dtstamp,
        })
        .map(|body| body.to_string())
        .map_err(|e| e.to_string()),
    };
    Ok(NewEmail {
        id: new_id()?,
        tenant_id: facts.tenant_id,
        about: About::Call(facts.call_id),
        kind,
        sequence,
        idempotency_key: idempotency_key(facts.call_id, sequence, kind),
        to_email: facts.to_email,
        request,
        now,
    })
}

/// Sends a call's due emails now (the first attempt right after the API answers), then leaves
/// whatever failed to the scheduler.
pub async fn send_for_call(env: &Env, call_id: &str) {
    let pending =
        async |db: &D1Database| Ok(emails::pending_unscoped(db, About::Call(call_id)).await?);
    let context = json!({"level": "error", "msg": "send call emails", "call_id": call_id});
    outbox::send_now::<Emails>(env, pending, context).await;
}

/// The email outbox.
pub struct Emails;

impl Leasing for Emails {
    type Row = Leased;
    const LOG: (&'static str, &'static str) = ("email attempt", "email_id");

    /// Sends leased email `e` once and records how it went.
    async fn handle(
        _env: &Env,
        db: &D1Database,
        config: &Config,
        email_id: &str,
        e: Leased,
    ) -> Result<(), ApiError> {
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
                    REPLY_BODY_LIMIT,
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
                        let outcome = reply.outcome(&["retry-after", "ratelimit-reset"]);
                        (Some(outcome), error, message_id)
                    }
                    Err(failure) => (Some(failure.outcome()), Some(failure.to_string()), None),
                }
            }
        };
        let attempt = settle(
            config,
            attempt_no,
            now_ms(),
            outcome.as_ref(),
            ["sent", "dead"],
            error.as_deref(),
        );
        let call_email_status = match attempt.status {
            "sent" => "sent",
            "pending" => "retrying",
            _ => "failed",
        };
        let status_code = outcome.as_ref().and_then(Outcome::status_code);
        // The history records each email's outcome and its first failure, not every retry.
        let history = (attempt.status != "pending" || attempt_no == 1).then(|| {
            json!({"email_id": email_id, "kind": e.kind, "sequence": e.sequence,
                "status": call_email_status, "attempt": attempt_no, "status_code": status_code,
                "error": error, "resend_id": message_id})
        });
        let status = attempt.status;
        emails::record_attempt(
            db,
            &e,
            &Attempted {
                email_id,
                attempt,
                status_code,
                provider_message_id: message_id.as_deref(),
                call_email_status,
                history: history.as_ref(),
            },
        )
        .await?;
        log_line(
            json!({"level": "info", "msg": "email attempt", "email_id": email_id, "call_id": e.call_id,
            "attempt": attempt_no, "status_code": status_code, "result": status, "error": error}),
        );
        Ok(())
    }
}
