//! The `recordings` job table: a carrier's finished recording, queued by its status callback
//! and copied into R2 (leased, attempted, recorded) by the scheduler.

use crate::store::db::{self, row};
use crate::store::error::StoreError;
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

/// Up to `limit` recordings due at `now` and not leased, across tenants.
pub async fn due_unscoped(
    db: &D1Database,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    db::ids(
        db,
        "SELECT id FROM recordings
         WHERE (status = 'pending' OR transcription_status = 'pending') AND next_attempt_at <= ?1
           AND (locked_until IS NULL OR locked_until < ?1)
         ORDER BY next_attempt_at LIMIT ?2",
        &[&now, &limit],
    )
    .await
}

/// When the next pending recording is due, if any (across tenants).
pub async fn next_due_unscoped(db: &D1Database) -> Result<Option<i64>, StoreError> {
    db::earliest(
        db,
        "SELECT min(next_attempt_at) AS at FROM recordings
         WHERE status = 'pending' OR transcription_status = 'pending'",
        &[],
    )
    .await
}

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

/// Leases recording `id` until `until` if it is due at `now` and nobody holds it.
pub async fn lease(
    db: &D1Database,
    id: &str,
    until: i64,
    now: i64,
) -> Result<Option<Leased>, StoreError> {
    db::first(
        db,
        &format!(
            "UPDATE recordings SET locked_until = ?1
             WHERE id = ?2 AND (status = 'pending' OR transcription_status = 'pending')
               AND next_attempt_at <= ?3 AND (locked_until IS NULL OR locked_until < ?3)
             RETURNING {}",
            Leased::COLUMNS
        ),
        &[&until, &id, &now],
    )
    .await
}

/// How one attempt at a recording ended.
pub struct Attempted<'a> {
    /// `pending` (to retry), `stored` or `dead`.
    pub status: &'a str,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub error: Option<&'a str>,
    /// The stored object, once stored: key, content type, size.
    pub object: Option<(&'a str, &'a str, i64)>,
    pub at: i64,
}

/// Records the attempt at recording `id` and releases its lease.
pub async fn record_attempt(
    db: &D1Database,
    id: &str,
    a: &Attempted<'_>,
) -> Result<(), StoreError> {
    let (key, content_type, size) = match a.object {
        Some((k, c, s)) => (Some(k), Some(c), Some(s)),
        None => (None, None, None),
    };
    db::run(
        db,
        "UPDATE recordings SET status = ?1, attempts = ?2, next_attempt_at = ?3, locked_until = NULL,
           last_error = ?4, r2_key = COALESCE(?5, r2_key), content_type = COALESCE(?6, content_type),
           size_bytes = COALESCE(?7, size_bytes), updated_at = ?8,
           transcription_status = CASE WHEN ?1 = 'dead' AND transcription_status = 'pending'
             THEN 'failed' ELSE transcription_status END
         WHERE id = ?9",
        &[
            &a.status,
            &a.attempts,
            &a.next_attempt_at,
            &a.error,
            &key,
            &content_type,
            &size,
            &a.at,
            &id,
        ],
    )
    .await?;
    Ok(())
}

/// How one attempt at transcribing a stored recording ended.
pub struct Transcribed<'a> {
    /// `pending` (to retry), `done` or `failed`.
    pub status: &'a str,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub error: Option<&'a str>,
    /// The transcript (JSON), once made: kept even when announcing it failed.
    pub transcript: Option<&'a str>,
    pub at: i64,
}

/// Records the transcription attempt at recording `id` and releases its lease.
pub async fn record_transcription(
    db: &D1Database,
    id: &str,
    t: &Transcribed<'_>,
) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE recordings SET transcription_status = ?1, transcription_attempts = ?2,
           next_attempt_at = ?3, locked_until = NULL, transcription_error = ?4,
           transcript = COALESCE(?5, transcript),
           transcribed_at = CASE WHEN ?5 IS NOT NULL THEN ?6 ELSE transcribed_at END, updated_at = ?6
         WHERE id = ?7",
        &[
            &t.status,
            &t.attempts,
            &t.next_attempt_at,
            &t.error,
            &t.transcript,
            &t.at,
            &id,
        ],
    )
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
