//! Recordings copied from the carrier into R2, from the `recordings` job table with the same
//! machinery as the email outbox: a lease keeps the alarm and the cron from fetching one twice
//! at once, the core delivery policy decides retries (a carrier 5xx, a network failure or an
//! R2 failure is retried with backoff; an oversized or refused download is dead), and
//! `call.recording.ready` is announced once the object is stored, with a short-lived signed link.

use crate::pipeline::call_status;
use crate::platform::app::load_config;
use crate::platform::http::secret_bytes;
use crate::platform::http::{log_line, now_ms, ApiError};
use crate::platform::outbound;
use crate::scheduling::outbox::{settle, Leasing};
use crate::store::outbox::Attempt;
use crate::store::recordings::{self, Leased};
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{Outcome, REQUEST_TIMEOUT_MS};
use phone_agent_core::recording::{
    fetch_authorization, object_key, sign_link, CONTENT_TYPE, LINK_VALIDITY_SECS,
    MAX_RECORDING_BYTES, RETENTION_BATCH,
};
use phone_agent_core::recording_transcript::{self, Engine, MAX_RESPONSE_BYTES};
use phone_agent_core::webhooks::callback::CallbackKey;
use serde_json::{json, Value};
use std::time::Duration;
use worker::d1::D1Database;
use worker::{Env, HttpMetadata, Method};

/// A download of the largest recording takes longer than a webhook delivery.
const DOWNLOAD_TIMEOUT_MS: u64 = 4 * REQUEST_TIMEOUT_MS;
/// Transcribing an hour of audio takes the provider a minute or two.
const TRANSCRIBE_TIMEOUT_MS: u64 = 180_000;
/// An attempt (download, then transcription) is leased for longer than it can take.
const LEASE_MS: i64 = (DOWNLOAD_TIMEOUT_MS + TRANSCRIBE_TIMEOUT_MS) as i64 + 60_000;

/// The recordings job: each recording copied into R2, then transcribed.
pub struct Recordings;

impl Leasing for Recordings {
    type Row = Leased;
    const LEASE_MS: i64 = LEASE_MS;
    /// Recordings fetched per scheduler run (each may be megabytes).
    const BATCH: i64 = 5;
    const LOG: (&'static str, &'static str) = ("recording attempt", "recording_id");

    /// The audio (download, R2, `call.recording.ready`) while it is not stored, then its
    /// transcription when the agent asked for one.
    async fn handle(
        env: &Env,
        db: &D1Database,
        config: &Config,
        id: &str,
        r: Leased,
    ) -> Result<(), ApiError> {
        let audio = if r.status == "pending" {
            match store_audio(env, db, config, id, &r).await? {
                Some(audio) => Some(audio),
                // Not stored (retried or dead): nothing to transcribe yet.
                None => return Ok(()),
            }
        } else {
            None
        };
        if r.transcription_status.as_deref() == Some("pending") {
            transcribe(env, db, config, id, &r, audio).await?;
        }
        Ok(())
    }
}

/// Deletes up to one batch of stored recordings past their tenant's retention (R2 object first,
/// then the row marked `deleted`; an R2 failure leaves the row for the next run); returns how
/// many were deleted.
pub async fn expire_due(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let config = load_config(env)?;
    let now = now_ms();
    let expired =
        recordings::expired_unscoped(&db, now, config.recording_retention_ms, RETENTION_BATCH)
            .await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let bucket = env.bucket("RECORDINGS")?;
    let mut deleted = 0;
    for r in expired {
        if let Some(key) = r.r2_key.as_deref() {
            if let Err(e) = bucket.delete(key).await {
                log_line(
                    json!({"level": "error", "msg": "recording retention: R2 delete",
                    "recording_id": r.id, "error": e.to_string()}),
                );
                continue;
            }
        }
        recordings::mark_deleted(&db, &r.id, now).await?;
        deleted += 1;
    }
    Ok(deleted)
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

/// The audio step: the recording's bytes once stored in R2 and announced, else `None` (the
/// attempt is recorded for a retry, or the job is dead).
async fn store_audio(
    env: &Env,
    db: &D1Database,
    config: &Config,
    id: &str,
    r: &Leased,
) -> Result<Option<Vec<u8>>, ApiError> {
    let attempt_no = r.attempts + 1;
    let key = object_key(&r.tenant_id, r.call_id.as_str(), id);
    let (outcome, error, audio) =
        match fetch_and_store(env, config, &r.provider, &r.media_url, &key).await {
            Ok(audio) => (None, None, Some(audio)),
            Err((outcome, error)) => (outcome, Some(error), None),
        };
    let size = audio
        .as_ref()
        .map(|a| i64::try_from(a.len()).unwrap_or(i64::MAX));
    let mut error = error;
    if let Some(size) = size {
        let (url, expires) = download_link(config, r.call_id.as_str(), now_ms())
            .map_or((None, None), |(u, e)| (Some(u), Some(e)));
        let data = json!({"recording": {"id": id, "url": url, "expires_at": expires,
            "content_type": CONTENT_TYPE, "size_bytes": size,
            "duration_seconds": r.duration_seconds}});
        error = announce(env, db, r, id, "call.recording.ready", data, "recording").await;
    }
    let mut attempt = step_end(
        config,
        attempt_no,
        size.is_some(),
        outcome,
        ["stored", "dead"],
        error.as_deref(),
    );
    if attempt.status == "stored" {
        // A transcription still owed is due again after this attempt's lease, should this
        // instance be lost before it runs (it runs next, in this attempt).
        attempt.next_attempt_at =
            (r.transcription_status.as_deref() == Some("pending")).then_some(attempt.at + LEASE_MS);
    }
    let object = size.map(|s| (key.as_str(), CONTENT_TYPE, s));
    recordings::record_attempt(db, id, &attempt, object).await?;
    log_line(
        json!({"level": "info", "msg": "recording attempt", "recording_id": id,
        "call_id": r.call_id, "attempt": attempt_no, "result": attempt.status, "error": error}),
    );
    Ok(if attempt.status == "stored" {
        audio
    } else {
        None
    })
}

/// Where attempt number `attempts` at a step of the job leaves it by the core's retry policy:
/// `done` once it made its result (`made`) and announced it, else retried as its `outcome`
/// says, or like a network failure when only the announcement failed (the event is
/// deduplicated), until the step is `dead`.
fn step_end<'a>(
    config: &Config,
    attempts: i64,
    made: bool,
    outcome: Option<Outcome>,
    labels: [&'a str; 2],
    error: Option<&'a str>,
) -> Attempt<'a> {
    let outcome = match (made, error) {
        (true, None) => Some(Outcome::Status {
            code: 200,
            retry_after: None,
        }),
        (true, Some(_)) => Some(Outcome::NetworkError),
        (false, _) => outcome,
    };
    settle(config, attempts, now_ms(), outcome.as_ref(), labels, error)
}

/// Publishes `event` about recording `id` of `r`'s call with `data`, once per recording (a
/// retry's is deduplicated by its key); why it failed, as the attempt's error naming `what`.
async fn announce(
    env: &Env,
    db: &D1Database,
    r: &Leased,
    id: &str,
    event: &str,
    data: Value,
    what: &str,
) -> Option<String> {
    let call_id = r.call_id.as_str();
    let key = format!("{call_id}:{}:{id}", event.trim_start_matches("call."));
    let emitted = call_status::emit(env, db, call_id, event, &key, data, now_ms()).await;
    emitted
        .err()
        .map(|e| format!("announcing the {what}: {}", e.message))
}

/// The transcription step (the audio is stored): the transcript made (once: a transcript
/// already kept is only announced again), stored, and `call.recording.transcribed` published.
/// A failure is retried on the delivery schedule, then the transcription is `failed`; the
/// stored audio is never touched.
async fn transcribe(
    env: &Env,
    db: &D1Database,
    config: &Config,
    id: &str,
    r: &Leased,
    audio: Option<Vec<u8>>,
) -> Result<(), ApiError> {
    let attempt_no = r.transcription_attempts + 1;
    let result: Result<String, (Option<Outcome>, String)> = async {
        let transcript = match &r.transcript {
            Some(kept) => kept.clone(),
            None => {
                let engine = r
                    .transcription
                    .as_deref()
                    .and_then(Engine::parse)
                    .flatten()
                    .ok_or((None, "unknown transcription engine".to_owned()))?;
                let model = r
                    .transcription_model
                    .clone()
                    .unwrap_or_else(|| engine.default_model().to_owned());
                let audio = match audio {
                    Some(audio) => audio,
                    None => read_stored(env, r).await?,
                };
                let content_type = r.content_type.as_deref().unwrap_or(CONTENT_TYPE);
                let boundary = format!(
                    "phone-agent-{}",
                    hex(&secret_bytes::<12>().map_err(|e| (None, e.message))?)
                );
                let request = recording_transcript::request(
                    config,
                    engine,
                    &model,
                    &audio,
                    content_type,
                    &boundary,
                )
                .map_err(|e| (None, e.to_string()))?;
                let headers: Vec<(&str, &str)> = request
                    .headers
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect();
                let reply = outbound::send(
                    Method::Post,
                    &request.url,
                    &headers,
                    Some(&request.body),
                    Duration::from_millis(TRANSCRIBE_TIMEOUT_MS),
                    MAX_RESPONSE_BYTES,
                )
                .await
                .map_err(|f| (Some(f.outcome()), f.to_string()))?;
                if !(200..300).contains(&reply.status) {
                    let retry = recording_transcript::retryable_status(reply.status);
                    return Err((
                        retry.then(|| reply.outcome(&["retry-after"])),
                        format!("{} answered HTTP {}", engine.as_str(), reply.status),
                    ));
                }
                let transcript = recording_transcript::parse_answer(engine, &model, &reply.body)
                    .map_err(|e| (Some(Outcome::NetworkError), e.to_string()))?;
                serde_json::to_string(&transcript).map_err(|e| (None, e.to_string()))?
            }
        };
        Ok(transcript)
    }
    .await;
    let (transcript, mut error, outcome) = match result {
        Ok(t) => (Some(t), None, None),
        Err((outcome, error)) => (None, Some(error), outcome),
    };
    if let Some(text) = &transcript {
        // Kept first, so a failed announcement never asks the provider twice.
        let kept = Attempt {
            status: "pending",
            attempts: r.transcription_attempts,
            next_attempt_at: Some(now_ms() + LEASE_MS),
            error: None,
            at: now_ms(),
        };
        recordings::record_transcription(db, id, &kept, Some(text)).await?;
        let value: Value = serde_json::from_str(text).unwrap_or_default();
        let data = json!({"recording": {"id": id}, "transcript": value});
        let event = "call.recording.transcribed";
        error = announce(env, db, r, id, event, data, "transcript").await;
    }
    let attempt = step_end(
        config,
        attempt_no,
        transcript.is_some(),
        outcome,
        ["done", "failed"],
        error.as_deref(),
    );
    recordings::record_transcription(db, id, &attempt, None).await?;
    log_line(
        json!({"level": if error.is_some() { "warn" } else { "info" },
        "msg": "recording transcription attempt", "recording_id": id, "call_id": r.call_id,
        "attempt": attempt_no, "result": attempt.status, "error": error}),
    );
    Ok(())
}

/// The stored audio of `r`, read back from R2 (a retried transcription).
async fn read_stored(env: &Env, r: &Leased) -> Result<Vec<u8>, (Option<Outcome>, String)> {
    let key = r
        .r2_key
        .as_deref()
        .ok_or((None, "the recording has no stored object".to_owned()))?;
    let read = async {
        let bucket = env.bucket("RECORDINGS")?;
        let Some(object) = bucket.get(key).execute().await? else {
            return Ok(None);
        };
        match object.body() {
            Some(body) => Ok(Some(body.bytes().await?)),
            None => Ok(None),
        }
    }
    .await
    .map_err(|e: worker::Error| (Some(Outcome::NetworkError), format!("R2: {e}")))?;
    read.ok_or((None, "the stored recording is gone".to_owned()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads the audio (bounded) and puts it in R2 under `key`; the bytes, or the outcome for
/// the retry policy (`None`: never worth retrying) and why.
async fn fetch_and_store(
    env: &Env,
    config: &Config,
    provider: &str,
    media_url: &str,
    key: &str,
) -> Result<Vec<u8>, (Option<Outcome>, String)> {
    let auth =
        fetch_authorization(config, provider, media_url).map_err(|e| (None, e.to_string()))?;
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    // One byte past the cap tells a recording that is too large from one exactly at it.
    let reply = outbound::send(
        Method::Get,
        media_url,
        &headers,
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
    let stored = async {
        let bucket = env.bucket("RECORDINGS")?;
        bucket
            .put(key, reply.body.clone())
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
    Ok(reply.body)
}
