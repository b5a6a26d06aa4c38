//! The `recordings` job table: a carrier's finished recording, queued by its status callback
//! and copied into R2 (leased, attempted, recorded) by the scheduler.

use crate::store::db::{self, row};
use crate::store::error::StoreError;
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
    pub now: i64,
}

/// Queues `recording`, due now; a carrier's retry of the same recording queues nothing.
/// Whether it is new.
pub async fn queue(db: &D1Database, r: &NewRecording<'_>) -> Result<bool, StoreError> {
    let changed = db::run(
        db,
        "INSERT INTO recordings (id, tenant_id, call_id, provider, provider_recording_id, media_url,
           duration_seconds, status, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?8)
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
        "SELECT id FROM recordings WHERE status = 'pending' AND next_attempt_at <= ?1
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
        "SELECT min(next_attempt_at) AS at FROM recordings WHERE status = 'pending'",
        &[],
    )
    .await
}

row! {
    /// A recording leased for one attempt.
    pub struct Leased {
        tenant_id: String,
        call_id: CallId,
        media_url: String,
        duration_seconds: Option<i64>,
        attempts: i64,
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
            "UPDATE recordings SET locked_until = ?1 WHERE id = ?2 AND status = 'pending'
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
           size_bytes = COALESCE(?7, size_bytes), updated_at = ?8
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
