//! Moving a call through its state machine: the one place a call's status changes.
//! The core decides whether a transition applies; a compare-and-set on the old status (and, when
//! given, on the attempt and the due time) makes concurrent writers — alarm, cron, API requests,
//! provider webhooks — safe without locks: exactly one of them wins each transition.
//!
//! Also here, because they follow from a status change: the canonical `call.*` event of a change
//! we caused ourselves (a provider's own callback is already forwarded as its canonical event, so
//! webhook-caused changes emit nothing more), and the no-answer / busy retry, which re-schedules
//! the same call row as attempt + 1.

use crate::pipeline::campaigns;
use crate::pipeline::forwarding::{self, OwnEvent};
use crate::platform::alarm;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, rfc3339, ApiError};
use crate::store::agents;
use crate::store::call_queue::{self, StreamWatch};
use crate::store::calls::{self, Call, Guard};
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::agents::retry_policy;
use phone_agent_core::ids::CallId;
use phone_agent_core::scheduling::state::{
    is_terminal, retry_after_outcome, transition, Transition,
};
use phone_agent_core::scheduling::{CallProvider, CallStatus};
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

/// Outcome of asking for a status change.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The call moved from the given status.
    Moved(CallStatus),
    /// Repeated, stale or invalid: nothing changed.
    Unchanged,
    /// No such call.
    NoCall,
}

/// A requested status change and the conditions it holds under.
pub struct Change<'a> {
    /// The new status.
    pub to: CallStatus,
    /// Who asks: `api`, `scheduler`, `webhook:<provider>`.
    pub source: &'a str,
    /// Recorded with the transition (and in the emitted event's data).
    pub detail: Value,
    /// Only for this attempt: a callback of an earlier attempt is stale and changes nothing.
    pub attempt: Option<i64>,
    /// Only if the call is due by then (dispatch claims; a reschedule may have moved it).
    pub due_by: Option<i64>,
    /// Emit the canonical `call.<status>` event (changes we cause ourselves).
    pub emit: bool,
}

impl Change<'static> {
    /// A change the scheduler causes to `attempt` of a call: emitted, and not bound to a due
    /// time unless [`Change::due_by`] adds one.
    pub fn by_scheduler(to: CallStatus, detail: Value, attempt: i64) -> Self {
        Change {
            to,
            source: "scheduler",
            detail,
            attempt: Some(attempt),
            due_by: None,
            emit: true,
        }
    }

    /// The same change, only if the call is due by `at` (a dispatch claim).
    pub fn due_by(self, at: i64) -> Self {
        Change {
            due_by: Some(at),
            ..self
        }
    }
}

/// Applies `change` if the state machine and its conditions allow it, recording the transition
/// in `call_events` atomically with the status change; then emits its event and, for a
/// no-answer or busy outcome, schedules the retry the agent's policy asks for.
pub async fn apply(
    env: &Env,
    db: &D1Database,
    call_id: &str,
    change: &Change<'_>,
    now: i64,
) -> Result<Applied, ApiError> {
    let Some(call) = calls::get_unscoped(db, call_id).await? else {
        return Ok(Applied::NoCall);
    };
    if change.attempt.is_some_and(|a| a != call.attempt) {
        log_line(
            json!({"level": "info", "msg": "stale call update ignored", "call_id": call_id,
            "attempt": change.attempt, "current_attempt": call.attempt, "to": change.to.as_str(),
            "source": change.source}),
        );
        return Ok(Applied::Unchanged);
    }
    // Bland dials by itself at the time we gave it, so its first callback may be the first news
    // that the call left `scheduled`: record the hand-over before the reported status.
    if call.provider == CallProvider::Bland
        && call.status == CallStatus::Scheduled
        && change.source.starts_with("webhook:")
        && !matches!(
            change.to,
            CallStatus::Scheduled | CallStatus::Dispatching | CallStatus::Canceled
        )
    {
        for step in [CallStatus::Dispatching, CallStatus::Queued] {
            let handed_over = Change {
                to: step,
                source: change.source,
                detail: json!({"reason": "provider reported the call"}),
                attempt: Some(call.attempt),
                due_by: None,
                emit: false,
            };
            compare_and_set(db, &call.id, &handed_over, now).await?;
        }
    }
    let applied = compare_and_set(db, &call.id, change, now).await?;
    if let Applied::Moved(_) = applied {
        if change.emit {
            let key = format!("{}:{}:{}", call.id, change.to.as_str(), call.attempt);
            let data = json!({"status": change.to.as_str(), "detail": change.detail});
            emit(
                env,
                db,
                call_id,
                &format!("call.{}", change.to.as_str()),
                &key,
                data,
                now,
            )
            .await?;
        }
        // A campaign retries through its contact (paced, inside its window), not the call.
        if is_terminal(change.to) && campaigns::campaign_of(&call).is_some() {
            campaigns::call_ended(env, db, &call, change.to, now).await?;
        } else if matches!(change.to, CallStatus::NoAnswer | CallStatus::Busy) {
            schedule_retry(env, db, &call, change.to, now).await?;
        }
        if change.to == CallStatus::InProgress && call.provider.carrier().is_some() {
            arm_stream_deadline(env, db, &call.id, now).await?;
        }
    }
    Ok(applied)
}

/// An answered carrier call must have its media stream within `STREAM_CONNECT_TIMEOUT_SECONDS`,
/// else the scheduler hangs it up as `failed` (`stream_timeout`); a stream already connected
/// (the session reports in-progress itself) arms nothing.
async fn arm_stream_deadline(
    env: &Env,
    db: &D1Database,
    call_id: &CallId,
    now: i64,
) -> Result<(), ApiError> {
    let timeout_secs = load_config(env)?.stream_connect_timeout_secs;
    let deadline = now + i64::try_from(timeout_secs * 1000).unwrap_or(i64::MAX / 2);
    if call_queue::watch_stream(db, call_id, StreamWatch::Answered { deadline }).await? {
        alarm::wake_at(env, deadline).await;
    }
    Ok(())
}

/// The transition itself: decide with the core, then the store's compare-and-set (the status
/// and its history row in one batch). Another writer may win; re-read and decide again.
async fn compare_and_set(
    db: &D1Database,
    call_id: &CallId,
    change: &Change<'_>,
    now: i64,
) -> Result<Applied, ApiError> {
    let to = change.to;
    let guard = Guard {
        attempt: change.attempt,
        due_by: change.due_by,
    };
    for _ in 0..3 {
        let Some(from) = calls::status_unscoped(db, call_id.as_str()).await? else {
            return Ok(Applied::NoCall);
        };
        match transition(from, to) {
            Transition::Apply => {}
            Transition::Ignore => return Ok(Applied::Unchanged),
            Transition::Reject(invalid) => {
                log_line(
                    json!({"level": "warn", "msg": "invalid call transition", "call_id": call_id,
                    "error": invalid.to_string(), "source": change.source}),
                );
                return Ok(Applied::Unchanged);
            }
        }
        if calls::set_status(
            db,
            call_id,
            (from, to),
            &guard,
            change.source,
            &change.detail,
            now,
        )
        .await?
        {
            return Ok(Applied::Moved(from));
        }
        if change.attempt.is_some() || change.due_by.is_some() {
            // The status may be unchanged while a condition failed (rescheduled, retried): a
            // re-read would decide the same; nothing applies.
            let still = calls::status_unscoped(db, call_id.as_str()).await?;
            if still == Some(from) {
                return Ok(Applied::Unchanged);
            }
        }
    }
    Ok(Applied::Unchanged)
}

/// Stores the canonical event `event_type` about a call (deduplicated on `key`, unique per
/// change, so a retried request cannot emit it twice) and wakes the scheduler to forward it.
pub async fn emit(
    env: &Env,
    db: &D1Database,
    call_id: &str,
    event_type: &str,
    key: &str,
    extra: Value,
    now: i64,
) -> Result<(), ApiError> {
    let Some(call) = calls::get_unscoped(db, call_id).await? else {
        return Ok(());
    };
    let mut data = json!({
        "call_id": call.id,
        "provider_call_id": call.provider_call_id,
        "dial_provider": call.provider,
        "status": call.status,
        "attempt": call.attempt,
        "to": call.to_number,
        "from": call.from_number,
        "agent_id": call.agent_id,
        "start_at": call.start_at.map(rfc3339),
    });
    if let (Some(target), Value::Object(extra)) = (data.as_object_mut(), extra) {
        target.extend(extra);
    }
    forwarding::publish_own(
        env,
        db,
        OwnEvent {
            tenant_id: call.tenant_id.as_str(),
            event_type,
            key,
            call_id: Some(call.id.as_str()),
            data,
            now,
        },
    )
    .await
}

/// After a no-answer or busy outcome, re-schedules the same call as the next attempt when the
/// agent's policy allows another one. The compare-and-set on (status, attempt) makes a repeated
/// callback schedule at most one retry.
async fn schedule_retry(
    env: &Env,
    db: &D1Database,
    call: &Call,
    outcome: CallStatus,
    now: i64,
) -> Result<(), ApiError> {
    let agent = match &call.agent_id {
        Some(id) => {
            let tenant = Tenant::on(db, call.tenant_id.clone());
            agents::get(&tenant, id.as_str()).await?
        }
        None => None,
    };
    let config: Value = agent
        .and_then(|a| serde_json::from_str(&a.config).ok())
        .unwrap_or(Value::Null);
    let policy = retry_policy(&config);
    let attempt = u32::try_from(call.attempt).unwrap_or(u32::MAX);
    let Some(now_utc) = DateTime::from_timestamp_millis(now) else {
        return Ok(());
    };
    let Some(at) = retry_after_outcome(policy, outcome, attempt, now_utc) else {
        return Ok(());
    };
    let at = at.timestamp_millis();
    let next = call.attempt + 1;
    let detail = json!({"attempt": next, "after": outcome.as_str(), "start_at": rfc3339(at),
                        "previous_provider_call_id": call.provider_call_id});
    if !calls::retry(db, call, outcome, at, &detail, now).await? {
        return Ok(());
    }
    let key = format!("{}:scheduled:{next}", call.id);
    emit(
        env,
        db,
        call.id.as_str(),
        "call.scheduled",
        &key,
        json!({"retry_of": outcome.as_str()}),
        now,
    )
    .await?;
    alarm::wake_at(env, at).await;
    Ok(())
}
