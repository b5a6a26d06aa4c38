//! The `recordings` job table: a carrier's finished recording, queued by its status callback
//! and copied into R2 (leased, attempted, recorded) by the scheduler.

use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::outbox::{self, Attempt, Queue, Step};
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{CallId, RecordingId};
use worker::d1::D1Database;

/// A recording about to be queued.
pub struct NewRecording<'a> {
    pub id: RecordingId,
    pub tenant_id: &'a str,
    pub call_id: &'a str,
    pub provider: &'a str,
    pub provider_recording_id: &'a str,
    pub media_url: &'a str,
    pub duration_seconds: Option<i64>,
    /// Why the recording is refused without a fetch (queued `dead` with this error, so the
    /// refusal is on record): e.g. a media URL outside the carrier's origins.
    pub refused: Option<&'a str>,
    pub now: i64,
}

/// Queues `recording`, due now (or `dead` at once when refused); a carrier's retry of the same
/// recording queues nothing. Whether it is new. The call's agent's `recording.transcription`
/// (and model) is copied onto the row: the job transcribes what the call's agent asked for,
/// whatever the agent says later.
pub async fn queue(db: &D1Database, r: &NewRecording<'_>) -> Result<bool, StoreError> {
    let changed = db::run(
        db,
        "INSERT INTO recordings (id, tenant_id, call_id, provider, provider_recording_id, media_url,
           duration_seconds, status, next_attempt_at, last_error, created_at, updated_at,
           transcription, transcription_model, transcription_status)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?9 IS NULL THEN 'pending' ELSE 'dead' END,
           CASE WHEN ?9 IS NULL THEN ?8 END, ?9, ?8, ?8, t.engine, t.model,
           CASE WHEN t.engine IS NOT NULL AND ?9 IS NULL THEN 'pending' END
         FROM (SELECT NULLIF(json_extract(a.config, '$.recording.transcription'), 'none') AS engine,
                 json_extract(a.config, '$.recording.transcription_model') AS model
               FROM (SELECT 1) LEFT JOIN calls c ON c.id = ?3 AND c.tenant_id = ?2
               LEFT JOIN agents a ON a.id = c.agent_id) t
         WHERE true
         ON CONFLICT (provider, provider_recording_id) DO NOTHING",
        &[
            &r.id,
            &r.tenant_id,
            &r.call_id,
            &r.provider,
            &r.provider_recording_id,
            &r.media_url,
            &r.duration_seconds,
            &r.now,
            &r.refused,
        ],
    )
    .await?;
    Ok(changed > 0)
}

/// The job table: recordings still to store or to transcribe, due at `next_attempt_at`.
pub const QUEUE: Queue = Queue::new(
    "recordings",
    "status = 'pending' OR transcription_status = 'pending'",
    "next_attempt_at",
);

row! {
    /// A recording leased for one attempt.
    pub struct Leased {
        tenant_id: String,
        provider: String,
        call_id: CallId,
        media_url: String,
        duration_seconds: Option<i64>,
        attempts: i64,
        status: String,
        r2_key: Option<String>,
        content_type: Option<String>,
        transcription: Option<String>,
        transcription_model: Option<String>,
        transcription_status: Option<String>,
        transcription_attempts: i64,
        transcript: Option<String>,
    }
}

impl outbox::Leased for Leased {
    const QUEUE: &'static Queue = &QUEUE;
    const COLUMNS: &'static str = Leased::COLUMNS;
}

/// Records attempt `a` at storing recording `id` (`status`: `pending` to retry, `stored` or
/// `dead`; a dead recording's pending transcription fails with it) with the stored object, once
/// stored (key, content type, size), and releases its lease.
pub async fn record_attempt(
    db: &D1Database,
    id: &str,
    a: &Attempt<'_>,
    object: Option<(&str, &str, i64)>,
) -> Result<(), StoreError> {
    let (key, content_type, size) = match object {
        Some((k, c, s)) => (Some(k), Some(c), Some(s)),
        None => (None, None, None),
    };
    let more = ", r2_key = COALESCE(?7, r2_key), content_type = COALESCE(?8, content_type),
           size_bytes = COALESCE(?9, size_bytes),
           transcription_status = CASE WHEN ?1 = 'dead' AND transcription_status = 'pending'
             THEN 'failed' ELSE transcription_status END";
    outbox::recorded(
        db,
        &QUEUE,
        &outbox::ROW,
        id,
        a,
        more,
        &[&key, &content_type, &size],
    )?
    .run()
    .await?;
    Ok(())
}

/// Records attempt `a` at transcribing stored recording `id` (`status`: `pending` to retry,
/// `done` or `failed`) with the transcript (JSON), once made (kept even when announcing it
/// failed), and releases its lease.
pub async fn record_transcription(
    db: &D1Database,
    id: &str,
    a: &Attempt<'_>,
    transcript: Option<&str>,
) -> Result<(), StoreError> {
    let step = Step {
        status: ("transcription_status", "?1"),
        attempts: "transcription_attempts",
        error: "transcription_error",
    };
    let more = ", transcript = COALESCE(?7, transcript),
           transcribed_at = CASE WHEN ?7 IS NOT NULL THEN ?5 ELSE transcribed_at END";
    outbox::recorded(db, &QUEUE, &step, id, a, more, &[&transcript])?
        .run()
        .await?;
    Ok(())
}

row! {
    /// A call's stored recording.
    pub struct Stored {
        r2_key: String,
        content_type: String,
        size_bytes: i64,
    }
}

/// The latest stored recording of call `call_id` (any tenant: reached through a signed link
/// that names the call).
pub async fn stored_for_call_unscoped(
    db: &D1Database,
    call_id: &str,
) -> Result<Option<Stored>, StoreError> {
    db::first(
        db,
        &format!(
            "SELECT {} FROM recordings WHERE call_id = ?1 AND status = 'stored'
             ORDER BY created_at DESC LIMIT 1",
            Stored::COLUMNS
        ),
        &[&call_id],
    )
    .await
}

row! {
    /// The latest recording of a call that was stored (even if since deleted), as the API shows it.
    pub struct CallRecording {
        id: String,
        status: String,
        content_type: Option<String>,
        size_bytes: Option<i64>,
        duration_seconds: Option<i64>,
        transcription: Option<String>,
        transcription_model: Option<String>,
        transcription_status: Option<String>,
        transcription_error: Option<String>,
        transcript: Option<String>,
        transcribed_at: Option<i64>,
        created_at: i64,
    }
}

/// The tenant's call `call_id`'s latest recording that reached R2 (stored, or stored then
/// deleted by retention).
pub async fn latest_of_call(
    tenant: &Tenant,
    call_id: &str,
) -> Result<Option<CallRecording>, StoreError> {
    tenant
        .first(
            &format!(
                "SELECT {} FROM recordings WHERE tenant_id = ?1 AND call_id = ?2
                   AND status IN ('stored', 'deleted')
                 ORDER BY created_at DESC LIMIT 1",
                CallRecording::COLUMNS
            ),
            &[&call_id],
        )
        .await
}

row! {
    /// A stored recording past its tenant's retention.
    pub struct Expired {
        id: String,
        r2_key: Option<String>,
    }
}

/// Up to `limit` stored recordings (across tenants) older than their tenant's retention at
/// `now`: `recording_retention_days`, else `default_ms`; a retention of 0 keeps them forever.
/// A recording whose job holds a lease is left for a later run.
pub async fn expired_unscoped(
    db: &D1Database,
    now: i64,
    default_ms: i64,
    limit: i64,
) -> Result<Vec<Expired>, StoreError> {
    db::all(
        db,
        "SELECT r.id AS id, r.r2_key AS r2_key FROM recordings r JOIN tenants t ON t.id = r.tenant_id
         WHERE r.status = 'stored'
           AND COALESCE(CAST(round(t.recording_retention_days * 86400000) AS INTEGER), ?2) > 0
           AND r.created_at < ?1 - COALESCE(CAST(round(t.recording_retention_days * 86400000) AS INTEGER), ?2)
           AND (r.locked_until IS NULL OR r.locked_until < ?1)
         ORDER BY r.created_at LIMIT ?3",
        &[&now, &default_ms, &limit],
    )
    .await
}

/// Marks recording `id` deleted (its object is gone from R2): its transcript goes with it, and
/// a transcription still owed is given up.
pub async fn mark_deleted(db: &D1Database, id: &str, now: i64) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE recordings SET status = 'deleted', deleted_at = ?2, updated_at = ?2, transcript = NULL,
           next_attempt_at = NULL,
           transcription_status = CASE WHEN transcription_status = 'pending' THEN 'failed'
             ELSE transcription_status END,
           transcription_error = CASE WHEN transcription_status = 'pending'
             THEN 'the recording was deleted (retention)' ELSE transcription_error END
         WHERE id = ?1 AND status = 'stored'",
        &[&id, &now],
    )
    .await?;
    Ok(())
}
