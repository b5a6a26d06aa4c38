//! Dispatching scheduled calls, run by the `Scheduler` (alarm at the exact start time, cron as
//! the safety net for a missed alarm):
//!
//! - Twilio / Telnyx: at `start_at` the call is claimed with `scheduled → dispatching` (a
//!   compare-and-set in `call_status`, guarded by attempt and due time, so the alarm and the cron
//!   firing together dial once), then the carrier's create-call API is called.
//! - Bland: Bland keeps the timer. The call is handed to Bland's send-call API with `start_time`
//!   as soon as it is scheduled (`bland.rs`; retried here if that failed), and at `start_at` it
//!   is marked `queued` (Bland is dialling).
//! - Every Twilio / Telnyx dial (API calls, call backs, retries) first takes one of the tenant's
//!   `OUTBOUND_CALLS_PER_HOUR` slots; with none free the call stays `scheduled` with
//!   `dial_after` set to when the hour's window frees (a `deferred` event), never failed.
//! - A tenant over its quotas (concurrent calls, monthly minutes) holds its dials back the same
//!   way (`dial_after` now + `QUOTA_RECHECK_SECONDS`, a `deferred` event, reason `over_quota`).
//! - A call stuck in `dispatching` (the worker died between claim and dial) is failed after a
//!   grace period rather than dialled again: a second dial could ring the person twice.

use crate::pipeline::call_status::{self, Applied, Change};
use crate::platform::app::load_config;
use crate::platform::http::{log_line, now_ms, rfc3339, ApiError};
use crate::platform::outbound;
use crate::scheduling::bland::submit_bland;
use crate::store::call_queue::{self, Queue, StreamWatch};
use crate::store::calls::{self, Call};
use crate::store::dialing;
use crate::store::tenant::Tenant;
use crate::store::usage;
use phone_agent_core::carrier::ControlError;
use phone_agent_core::config::Config;
use phone_agent_core::delivery::REQUEST_TIMEOUT_MS;
use phone_agent_core::dialing::{outbound_deferral, HOUR_MS};
use phone_agent_core::ids::CallId;
use phone_agent_core::scheduling::dispatch::Dial;
use phone_agent_core::scheduling::CallStatus;
use phone_agent_core::usage::{month_start, Quotas};
use phone_agent_core::webhooks::callback::{CallbackKey, CALLBACK_VALIDITY_SECS};
use serde_json::json;
use std::time::Duration;
use worker::d1::D1Database;
use worker::Env;

/// A claim older than this without any carrier news means the dial was interrupted.
const STUCK_DISPATCH_MS: i64 = 5 * 60_000;
/// Calls handled per scheduler run.
const BATCH: i64 = 50;

/// Runs every due dispatch step; returns how many calls were handled.
pub async fn run_due(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let mut handled = 0;

    let carrier_due = call_queue::due_unscoped(&db, Queue::CarrierDue, now, BATCH).await?;
    let bland_unsubmitted =
        call_queue::due_unscoped(&db, Queue::BlandUnsubmitted, now, BATCH).await?;
    let bland_started = call_queue::due_unscoped(&db, Queue::BlandStarted, now, BATCH).await?;
    let stuck =
        call_queue::due_unscoped(&db, Queue::StuckDispatching, now - STUCK_DISPATCH_MS, BATCH)
            .await?;
    let no_stream = call_queue::due_unscoped(&db, Queue::StreamTimeout, now, BATCH).await?;
    if carrier_due.is_empty()
        && bland_unsubmitted.is_empty()
        && bland_started.is_empty()
        && stuck.is_empty()
        && no_stream.is_empty()
    {
        return Ok(0);
    }
    let config = load_config(env)?;

    for call in carrier_due {
        handled += 1;
        if let Err(e) = dial(env, &db, &config, &call.id, call.attempt).await {
            log_line(
                json!({"level": "error", "msg": "dial", "call_id": call.id, "error": e.message}),
            );
        }
    }
    for call in bland_unsubmitted {
        handled += 1;
        if let Err(e) = submit_bland(env, &db, &config, call.id.as_str()).await {
            log_line(
                json!({"level": "error", "msg": "bland submit", "call_id": call.id, "error": e.message}),
            );
        }
    }
    for call in bland_started {
        handled += 1;
        // Bland dials by itself at start_time: the call is out of our hands (no more changes).
        for to in [CallStatus::Dispatching, CallStatus::Queued] {
            let detail = json!({"reason": "Bland dials at the scheduled time"});
            let change = Change::by_scheduler(to, detail, call.attempt).due_by(now);
            if let Err(e) = call_status::apply(env, &db, call.id.as_str(), &change, now).await {
                log_line(
                    json!({"level": "error", "msg": "bland hand-over", "call_id": call.id, "error": e.message}),
                );
            }
        }
    }
    for call in stuck {
        handled += 1;
        let detail =
            json!({"error": "dispatch was interrupted; not dialled again to avoid a double call"});
        let change = Change::by_scheduler(CallStatus::Failed, detail, call.attempt);
        if let Err(e) = call_status::apply(env, &db, call.id.as_str(), &change, now).await {
            log_line(
                json!({"level": "error", "msg": "stuck dispatch", "call_id": call.id, "error": e.message}),
            );
        }
    }
    for call in no_stream {
        handled += 1;
        if let Err(e) = end_without_stream(env, &db, &config, &call.id).await {
            log_line(
                json!({"level": "error", "msg": "stream timeout", "call_id": call.id, "error": e.message}),
            );
        }
    }
    Ok(handled)
}

/// Ends an answered call whose media stream never connected: hung up through the carrier's
/// REST API (else the caller hears silence until they give up) and failed with
/// `stream_timeout`, the usual cause being a stream URL the carrier cannot reach.
async fn end_without_stream(
    env: &Env,
    db: &D1Database,
    config: &Config,
    call_id: &CallId,
) -> Result<(), ApiError> {
    let now = now_ms();
    if !call_queue::watch_stream(db, call_id, StreamWatch::TimedOut { now }).await? {
        return Ok(());
    }
    let Some(call) = calls::get_unscoped(db, call_id.as_str()).await? else {
        return Ok(());
    };
    let request = match (call.provider.carrier(), call.provider_call_id.as_deref()) {
        (Some(carrier), Some(id)) => carrier.end_call(config, id),
        _ => None,
    };
    let hangup = match request {
        None => json!("not possible (no carrier call id, REST credentials or REST hang-up)"),
        Some(request) => {
            match outbound::control(&request, Duration::from_millis(REQUEST_TIMEOUT_MS)).await {
                Ok(()) => json!("sent"),
                Err(e) => json!(e),
            }
        }
    };
    let timeout = config.stream_connect_timeout_secs;
    let error = format!(
        "stream_timeout: the media stream did not connect within {timeout} s of the answer \
         (is PUBLIC_BASE_URL reachable by the carrier?)"
    );
    call_queue::set_last_error(db, &call.id, &error, false).await?;
    let detail = json!({"reason": "stream_timeout", "timeout_seconds": timeout, "hangup": hangup});
    let change = Change::by_scheduler(CallStatus::Failed, detail, call.attempt);
    call_status::apply(env, db, call.id.as_str(), &change, now).await?;
    Ok(())
}

/// When the next dispatch step is due, if any.
pub async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
    Ok(call_queue::next_due_unscoped(db, STUCK_DISPATCH_MS).await?)
}

/// Claims and dials one Twilio / Telnyx call attempt.
async fn dial(
    env: &Env,
    db: &D1Database,
    config: &Config,
    call_id: &CallId,
    attempt: i64,
) -> Result<(), ApiError> {
    let now = now_ms();
    let Some(call) = calls::get_unscoped(db, call_id.as_str()).await? else {
        return Ok(());
    };
    let tenant = Tenant::on(db, call.tenant_id);
    if !within_quota(env, db, &tenant, config, call_id, attempt, now).await? {
        return Ok(());
    }
    if !take_outbound_slot(env, db, &tenant, config, call_id, attempt, now).await? {
        return Ok(());
    }
    let claim = Change::by_scheduler(
        CallStatus::Dispatching,
        json!({"attempt": attempt}),
        attempt,
    )
    .due_by(now);
    // Exactly one dispatcher gets past this line per attempt.
    if !matches!(
        call_status::apply(env, db, call_id.as_str(), &claim, now).await?,
        Applied::Moved(_)
    ) {
        return Ok(());
    }
    let Some(call) = calls::get_unscoped(db, call_id.as_str()).await? else {
        return Ok(());
    };
    let stream_token = calls::ensure_token(db, &call.id).await?;
    let result = place(config, &call, &stream_token).await;
    let now = now_ms();
    let (to, detail) = match result {
        Ok(provider_call_id) => {
            let detail = json!({"provider": call.provider, "provider_call_id": provider_call_id,
                                "attempt": call.attempt});
            call_queue::dialled(db, &call, &provider_call_id, &detail, now).await?;
            (
                CallStatus::Queued,
                json!({"provider_call_id": provider_call_id}),
            )
        }
        Err(error) => {
            call_queue::set_last_error(db, &call.id, &error, false).await?;
            (CallStatus::Failed, json!({"error": error}))
        }
    };
    let change = Change::by_scheduler(to, detail, call.attempt);
    call_status::apply(env, db, call.id.as_str(), &change, now).await?;
    Ok(())
}

/// Whether the call's tenant is within its quotas (concurrent calls, monthly minutes); when it
/// is not, the call waits `QUOTA_RECHECK_SECONDS` (still `scheduled`, `dial_after` set, a
/// `deferred` entry with reason `over_quota`) and is looked at again then: never dropped.
async fn within_quota(
    env: &Env,
    db: &D1Database,
    tenant: &Tenant,
    config: &Config,
    call_id: &CallId,
    attempt: i64,
    now: i64,
) -> Result<bool, ApiError> {
    let standing = usage::standing(tenant, &month_start(now)).await?;
    let quotas = Quotas::effective(
        (standing.max_concurrent_calls, standing.monthly_minutes),
        &config.quotas,
    );
    let Some(over) = quotas.over(standing.live_calls, standing.month_minutes) else {
        return Ok(true);
    };
    let recheck_ms =
        i64::try_from(config.quota_recheck_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let until = now.saturating_add(recheck_ms);
    let mut detail = over.detail();
    detail["attempt"] = json!(attempt);
    detail["dial_after"] = json!(rfc3339(until));
    call_queue::defer(db, call_id, attempt, until, &detail, now).await?;
    log_line(
        json!({"level": "warn", "msg": "quota: dial deferred", "call_id": call_id,
               "tenant_id": tenant.id(), "quota": over.quota(), "dial_after": until}),
    );
    crate::platform::alarm::wake_at(env, until).await;
    Ok(false)
}

/// Takes one of the tenant's outbound slots of the last hour for this attempt; `false` when
/// there is none, after deferring the call to when the window frees. The count and the insert
/// are one statement, so concurrent dispatchers cannot overrun the cap; a slot already taken
/// for this attempt (the alarm and the cron racing) counts once, and the claim after this
/// decides which of them dials.
async fn take_outbound_slot(
    env: &Env,
    db: &D1Database,
    tenant: &Tenant,
    config: &Config,
    call_id: &CallId,
    attempt: i64,
    now: i64,
) -> Result<bool, ApiError> {
    let cap = config.outbound_calls_per_hour;
    let window =
        dialing::take_outbound_slot(tenant, call_id, attempt, (now - HOUR_MS, cap), now).await?;
    let Some(window) = window else {
        return Ok(false);
    };
    if window.mine > 0 {
        return Ok(true);
    }
    let dials = u32::try_from(window.n).unwrap_or(u32::MAX);
    // Full a moment ago but not now (a dial just left the window): the next run tries again.
    let until = outbound_deferral(dials, cap, window.oldest, now).unwrap_or(now + 1);
    let detail = json!({"reason": "outbound_cap", "limit_per_hour": cap, "attempt": attempt,
                        "dial_after": rfc3339(until)});
    call_queue::defer(db, call_id, attempt, until, &detail, now).await?;
    log_line(
        json!({"level": "warn", "msg": "outbound cap: dial deferred", "call_id": call_id,
                    "tenant_id": tenant.id(), "dial_after": until}),
    );
    crate::platform::alarm::wake_at(env, until).await;
    Ok(false)
}

/// Calls the carrier's create-call API; the carrier's call id, or why there is none.
async fn place(config: &Config, call: &Call, stream_token: &str) -> Result<String, String> {
    let (Some(from), Some(base_url)) = (call.from_number.as_deref(), call.base_url.as_deref())
    else {
        return Err("the call has no caller id or callback base URL".into());
    };
    let callback_key = CallbackKey::for_config(config)
        .ok_or("no key to sign callback URLs (set CALLBACK_SIGNING_KEY or ADMIN_API_KEY)")?;
    let dial = Dial {
        call_id: call.id.as_str(),
        attempt: u32::try_from(call.attempt).unwrap_or(1),
        to: &call.to_number,
        from,
        base_url,
        stream_token,
        callback_key: &callback_key,
        callback_expires: now_ms().div_euclid(1000) + CALLBACK_VALIDITY_SECS,
    };
    let carrier = call
        .provider
        .carrier()
        .ok_or_else(|| ControlError::NotDialled(call.provider.as_str().to_owned()).to_string())?;
    let request = carrier.dial(config, &dial).map_err(|e| e.to_string())?;
    let reply = outbound::carrier(&request, Duration::from_millis(REQUEST_TIMEOUT_MS))
        .await
        .map_err(|f| {
            format!(
                "{}: {f}; the call may or may not have been placed",
                carrier.as_str()
            )
        })?;
    carrier
        .dial_reply(reply.status, &reply.body)
        .map_err(|e| e.to_string())
}
