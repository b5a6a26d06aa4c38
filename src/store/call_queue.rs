//! The dispatcher's side of the `calls` table: the queues of calls due for dialling or for
//! Bland, leases, what a dial or submission left on the call, and holds under the outbound cap.
//! System work across tenants (the scheduler serves them all).

use crate::store::call_events::{self, Event, When};
use crate::store::calls::Call;
use crate::store::db;
use crate::store::error::StoreError;
use phone_agent_core::ids::CallId;
use phone_agent_core::scheduling::CallStatus;
use serde::Deserialize;
use serde_json::Value;
use worker::d1::D1Database;

/// The carrier placed `call` as `provider_call_id`: kept (for this attempt, if not known yet)
/// with a `dispatch` history entry.
pub async fn dialled(
    db: &D1Database,
    call: &Call,
    provider_call_id: &str,
    detail: &Value,
    now: i64,
) -> Result<(), StoreError> {
    let change = db::stmt(
        db,
        "UPDATE calls SET provider_call_id = ?1, last_error = NULL
         WHERE id = ?2 AND attempt = ?3 AND provider_call_id IS NULL",
        &[&provider_call_id, &call.id, &call.attempt],
    )?;
    let event = Event::new(&call.id, "dispatch", "scheduler", detail, now);
    call_events::commit(db, change, (&event, When::Always), Vec::new()).await?;
    Ok(())
}

/// Bland accepted `call` as `bland_call_id`: kept, lease released, with a `dispatch` history
/// entry, only if the call is still the attempt and time submitted. `false` when a reschedule
/// or cancel raced the submission and won.
pub async fn handed_to_bland(
    db: &D1Database,
    call: &Call,
    bland_call_id: &str,
    detail: &Value,
    now: i64,
) -> Result<bool, StoreError> {
    let change = db::stmt(
        db,
        "UPDATE calls SET provider_call_id = ?1, locked_until = NULL, last_error = NULL
         WHERE id = ?2 AND status = 'scheduled' AND attempt = ?3 AND start_at = ?4
           AND provider_call_id IS NULL",
        &[&bland_call_id, &call.id, &call.attempt, &call.start_at],
    )?;
    let event = Event::new(&call.id, "dispatch", "scheduler", detail, now);
    call_events::commit(db, change, (&event, When::Changed), Vec::new()).await
}

/// Keeps why the last dial or submission of call `id` failed; `release` also ends its lease.
pub async fn set_last_error(
    db: &D1Database,
    id: &CallId,
    error: &str,
    release: bool,
) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE calls SET last_error = ?1,
           locked_until = CASE WHEN ?3 THEN NULL ELSE locked_until END
         WHERE id = ?2",
        &[&error, id, &release],
    )
    .await?;
    Ok(())
}

/// Leases the scheduled Bland call `id` for submission until `until`, unless another submitter
/// holds it or it already has Bland's id; the call as leased.
pub async fn lease_bland(
    db: &D1Database,
    id: &str,
    until: i64,
    now: i64,
) -> Result<Option<Call>, StoreError> {
    db::first(
        db,
        &format!(
            "UPDATE calls SET locked_until = ?1 WHERE id = ?2 AND status = 'scheduled'
               AND provider = 'bland' AND provider_call_id IS NULL
               AND (locked_until IS NULL OR locked_until < ?3)
             RETURNING {}",
            Call::COLUMNS
        ),
        &[&until, &id, &now],
    )
    .await
}

/// A call for the dispatcher to act on, at the attempt it saw.
#[derive(Deserialize)]
pub struct Due {
    pub id: CallId,
    pub attempt: i64,
}
crate::store::db::from_row!(Due { id, attempt });

/// Which of the dispatcher's queues.
#[derive(Clone, Copy)]
pub enum Queue {
    /// Twilio / Telnyx calls due to be dialled (and not held by the outbound cap).
    CarrierDue,
    /// Bland calls not yet handed to Bland (and not leased by a submitter).
    BlandUnsubmitted,
    /// Bland calls Bland holds whose start time has come.
    BlandStarted,
    /// Claims older than the grace period without carrier news (`now` is the cut-off).
    StuckDispatching,
    /// Answered carrier calls whose media stream has not connected by its deadline.
    StreamTimeout,
}

/// Up to `limit` calls in `queue` at `now`, across tenants.
pub async fn due_unscoped(
    db: &D1Database,
    queue: Queue,
    now: i64,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    let sql = match queue {
        Queue::CarrierDue => {
            "SELECT id, attempt FROM calls WHERE status = 'scheduled' AND provider IN ('twilio', 'telnyx')
               AND start_at <= ?1 AND COALESCE(dial_after, 0) <= ?1 ORDER BY start_at LIMIT ?2"
        }
        Queue::BlandUnsubmitted => {
            "SELECT id, attempt FROM calls WHERE status = 'scheduled' AND provider = 'bland'
               AND provider_call_id IS NULL AND (locked_until IS NULL OR locked_until < ?1)
             ORDER BY start_at LIMIT ?2"
        }
        Queue::BlandStarted => {
            "SELECT id, attempt FROM calls WHERE status = 'scheduled' AND provider = 'bland'
               AND provider_call_id IS NOT NULL AND start_at <= ?1 ORDER BY start_at LIMIT ?2"
        }
        Queue::StuckDispatching => {
            "SELECT id, attempt FROM calls WHERE status = 'dispatching' AND dispatched_at < ?1 LIMIT ?2"
        }
        Queue::StreamTimeout => {
            "SELECT id, attempt FROM calls WHERE stream_deadline_at <= ?1 AND status = 'in_progress'
               AND stream_connected_at IS NULL ORDER BY stream_deadline_at LIMIT ?2"
        }
    };
    db::all(db, sql, &[&now, &limit]).await
}

/// When the dispatcher next has work, if ever: a start (or the cap's hold) coming due, a Bland
/// lease ending, a claim reaching `stuck_after_ms`, or an answered call's stream deadline.
pub async fn next_due_unscoped(
    db: &D1Database,
    stuck_after_ms: i64,
) -> Result<Option<i64>, StoreError> {
    db::earliest(
        db,
        "SELECT min(at) AS at FROM (
           SELECT min(max(start_at, COALESCE(dial_after, 0))) AS at FROM calls
             WHERE status = 'scheduled'
             AND (provider IN ('twilio', 'telnyx') OR provider_call_id IS NOT NULL)
           UNION ALL
           SELECT min(COALESCE(locked_until, 0)) FROM calls
             WHERE status = 'scheduled' AND provider = 'bland' AND provider_call_id IS NULL
           UNION ALL
           SELECT min(dispatched_at) + ?1 FROM calls WHERE status = 'dispatching'
           UNION ALL
           SELECT min(stream_deadline_at) FROM calls WHERE stream_deadline_at IS NOT NULL
             AND status = 'in_progress' AND stream_connected_at IS NULL)",
        &[&stuck_after_ms],
    )
    .await
}

/// Holds the scheduled attempt of call `id` until `until` (the outbound cap is full), with its
/// `deferred` history entry; a later hold already set stays.
pub async fn defer(
    db: &D1Database,
    id: &CallId,
    attempt: i64,
    until: i64,
    detail: &Value,
    now: i64,
) -> Result<(), StoreError> {
    let change = db::stmt(
        db,
        "UPDATE calls SET dial_after = ?1 WHERE id = ?2 AND status = 'scheduled'
           AND attempt = ?3 AND (dial_after IS NULL OR dial_after < ?1)",
        &[&until, id, &attempt],
    )?;
    let event = Event::new(id, "deferred", "scheduler", detail, now)
        .moving(Some(CallStatus::Scheduled), CallStatus::Scheduled);
    call_events::commit(db, change, (&event, When::Changed), Vec::new()).await?;
    Ok(())
}

/// A step in watching for the media stream a carrier's answer must be followed by: an answered
/// call whose stream never connects by its deadline is ended (see `scheduling::dispatch`).
pub enum StreamWatch {
    /// The carrier answered: unless the stream already connected (or the owner's phone rings
    /// instead), it must connect by this deadline; an earlier deadline already set stays.
    Answered { deadline: i64 },
    /// The owner's phone rings first: no stream is expected until the AI takes over.
    OwnerRinging,
    /// The call was handed its stream markup: the owner no longer rings, and an answered call's
    /// stream must connect by this deadline.
    Expected { deadline: i64 },
    /// A verified media stream took the call at this time: no deadline any more.
    Connected { at: i64 },
    /// The scheduler takes a deadline passed by this time for ending the call.
    TimedOut { now: i64 },
}

/// Applies one [`StreamWatch`] step to call `id`; `true` when it changed the row (for
/// `Answered`, a deadline was set; for `TimedOut`, this run took the call, so it is ended once —
/// not when the stream connected meanwhile or another scheduler run took it).
pub async fn watch_stream(
    db: &D1Database,
    id: &CallId,
    step: StreamWatch,
) -> Result<bool, StoreError> {
    let (sql, time) = match step {
        StreamWatch::Answered { deadline } => (
            "UPDATE calls SET stream_deadline_at = ?2 WHERE id = ?1 AND status = 'in_progress'
               AND stream_connected_at IS NULL AND stream_deadline_at IS NULL AND owner_ringing = 0
               AND provider IN ('twilio', 'telnyx', 'exotel')",
            Some(deadline),
        ),
        StreamWatch::OwnerRinging => (
            "UPDATE calls SET owner_ringing = 1, stream_deadline_at = NULL
             WHERE id = ?1 AND stream_connected_at IS NULL",
            None,
        ),
        StreamWatch::Expected { deadline } => (
            "UPDATE calls SET owner_ringing = 0,
               stream_deadline_at = CASE WHEN status = 'in_progress' AND stream_connected_at IS NULL
                                         THEN COALESCE(stream_deadline_at, ?2) END
             WHERE id = ?1",
            Some(deadline),
        ),
        StreamWatch::Connected { at } => (
            "UPDATE calls SET stream_connected_at = COALESCE(stream_connected_at, ?2),
               stream_deadline_at = NULL, owner_ringing = 0 WHERE id = ?1",
            Some(at),
        ),
        StreamWatch::TimedOut { now } => (
            "UPDATE calls SET stream_deadline_at = NULL WHERE id = ?1 AND stream_deadline_at <= ?2
               AND stream_connected_at IS NULL AND status = 'in_progress'",
            Some(now),
        ),
    };
    let changed = match time {
        Some(time) => db::run(db, sql, &[id, &time]).await?,
        None => db::run(db, sql, &[id]).await?,
    };
    Ok(changed > 0)
}
