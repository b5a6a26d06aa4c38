//! Recordings copied from the carrier into R2, from the `recordings` job table with the same
//! machinery as the email outbox: a lease keeps the alarm and the cron from fetching one twice
//! at once, the core delivery policy decides retries (a carrier 5xx, a network failure or an
//! R2 failure is retried with backoff; an oversized or refused download is dead), and
//! `call.recording.ready` is announced once the object is stored, with a short-lived signed link.

use crate::pipeline::call_status;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, now_ms, random_unit, ApiError};
use crate::platform::outbound;
use crate::store::recordings::{self, Attempted};
use phone_agent_core::carrier::twilio_authorization;
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{decide_attempt, Decision, Outcome, REQUEST_TIMEOUT_MS};
use phone_agent_core::recording::{
    object_key, sign_link, CONTENT_TYPE, LINK_VALIDITY_SECS, MAX_RECORDING_BYTES,
};
use phone_agent_core::webhooks::callback::CallbackKey;
use serde_json::json;
use std::time::Duration;
use worker::d1::D1Database;
use worker::{Env, HttpMetadata, Method};

/// A download of the largest recording takes longer than a webhook delivery.
const DOWNLOAD_TIMEOUT_MS: u64 = 4 * REQUEST_TIMEOUT_MS;
/// An attempt is leased for longer than it can take.
const LEASE_MS: i64 = DOWNLOAD_TIMEOUT_MS as i64 + 60_000;
/// Recordings fetched per scheduler run (each may be megabytes).
const BATCH: i64 = 5;

/// Fetches up to one batch of due recordings; returns how many were attempted.
pub async fn store_due(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let due = recordings::due_unscoped(&db, now_ms(), BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let config = load_config(env)?;
    let count = due.len();
    for id in due {
        if let Err(e) = attempt(env, &db, &config, &id).await {
            log_line(
                json!({"level": "error", "msg": "recording attempt", "recording_id": id,
                "error": e.message}),
            );
        }
    }
    Ok(count)
}

/// When the next pending recording is due, if any.
pub async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
    Ok(recordings::next_due_unscoped(db).await?)
}

/// The download link of `call_id`'s recording, valid for [`LINK_VALIDITY_SECS`] from `now_ms`.
pub fn download_link(config: &Config, call_id: &str, now_ms: i64) -> Option<(String, i64)> {
    let key = CallbackKey::for_config(config)?;
    let expires = now_ms.div_euclid(1000) + LINK_VALIDITY_SECS;
    let sig = sign_link(&key, call_id, expires)?;
    let base = config.public_base_url.as_deref().unwrap_or_default();
    Some((
        format!("{base}/api/v1/calls/{call_id}/recording?expires={expires}&sig={sig}"),
        expires,
    ))
}

/// One attempt of one recording, if it is still due and nobody else holds it.
async fn attempt(env: &Env, db: &D1Database, config: &Config, id: &str) -> Result<(), ApiError> {
    let started = now_ms();
    let Some(r) = recordings::lease(db, id, started + LEASE_MS, started).await? else {
        return Ok(());
    };
    let attempt_no = r.attempts + 1;
    let key = object_key(&r.tenant_id, r.call_id.as_str(), id);
    let (outcome, error, size) = match fetch_and_store(env, config, &r.media_url, &key).await {
        Ok(size) => (
            Some(Outcome::Status {
                code: 200,
                retry_after: None,
            }),
            None,
            Some(size),
        ),
        Err((outcome, error)) => (outcome, Some(error), None),
    };
    let mut error = error;
    if let Some(size) = size {
        let (url, expires) = download_link(config, r.call_id.as_str(), now_ms())
            .map_or((None, None), |(u, e)| (Some(u), Some(e)));
        let data = json!({"recording": {"id": id, "url": url, "expires_at": expires,
            "content_type": CONTENT_TYPE, "size_bytes": size,
            "duration_seconds": r.duration_seconds}});
        let event_key = format!("{}:recording.ready:{id}", r.call_id);
        if let Err(e) = call_status::emit(
            env,
            db,
            r.call_id.as_str(),
            "call.recording.ready",
            &event_key,
            data,
            now_ms(),
        )
        .await
        {
            error = Some(format!("announcing the recording: {}", e.message));
        }
    }
    let finished = now_ms();
    let (status, next_attempt_at) = match (&error, size) {
        (None, Some(_)) => ("stored", None),
        _ => {
            // Stored but not announced: retried like a network failure (the event is deduped).
            let outcome = if size.is_some() {
                Some(Outcome::NetworkError)
            } else {
                outcome
            };
            match decide_attempt(
                &config.delivery_retry_schedule,
                attempt_no,
                finished,
                outcome.as_ref(),
                random_unit(),
            ) {
                Decision::Retry { at_unix_ms } => ("pending", Some(at_unix_ms)),
                Decision::Delivered | Decision::Dead | Decision::DisableEndpoint => ("dead", None),
            }
        }
    };
    recordings::record_attempt(
        db,
        id,
        &Attempted {
            status,
            attempts: attempt_no,
            next_attempt_at,
            error: error.as_deref(),
            object: size.map(|s| (key.as_str(), CONTENT_TYPE, s)),
            at: finished,
        },
    )
    .await?;
    log_line(
        json!({"level": "info", "msg": "recording attempt", "recording_id": id,
        "call_id": r.call_id, "attempt": attempt_no, "result": status, "error": error}),
    );
    Ok(())
}

/// Downloads the audio (bounded) and puts it in R2 under `key`; its size, or the outcome for
/// the retry policy (`None`: never worth retrying) and why.
async fn fetch_and_store(
    env: &Env,
    config: &Config,
    media_url: &str,
    key: &str,
) -> Result<i64, (Option<Outcome>, String)> {
    let auth = twilio_authorization(config).ok_or((
        None,
        "TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN is not set".to_owned(),
    ))?;
    // One byte past the cap tells a recording that is too large from one exactly at it.
    let reply = outbound::send(
        Method::Get,
        media_url,
        &[("authorization", &auth)],
        None,
        Duration::from_millis(DOWNLOAD_TIMEOUT_MS),
        MAX_RECORDING_BYTES + 1,
    )
    .await
    .map_err(|f| (Some(f.outcome()), f.to_string()))?;
    if !(200..300).contains(&reply.status) {
        return Err((
            Some(reply.outcome(&["retry-after"])),
            format!("the carrier answered HTTP {}", reply.status),
        ));
    }
    if reply.body.len() > MAX_RECORDING_BYTES {
        return Err((
            None,
            format!("the recording is larger than {MAX_RECORDING_BYTES} bytes"),
        ));
    }
    let size = i64::try_from(reply.body.len()).unwrap_or(i64::MAX);
    let stored = async {
        let bucket = env.bucket("RECORDINGS")?;
        bucket
            .put(key, reply.body)
            .http_metadata(HttpMetadata {
                content_type: Some(CONTENT_TYPE.to_owned()),
                ..HttpMetadata::default()
            })
            .execute()
            .await?;
        Ok::<_, worker::Error>(())
    }
    .await;
    stored.map_err(|e| (Some(Outcome::NetworkError), format!("R2: {e}")))?;
    Ok(size)
}
