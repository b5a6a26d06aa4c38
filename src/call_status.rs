//! Moving a call through its state machine: the one place a call's status changes.
//! The core decides whether a transition applies; a compare-and-set on the old status makes
//! concurrent callbacks (alarm, cron, provider webhooks) safe without locks.

use crate::db;
use crate::http::{log_line, ApiError};
use phone_agent_core::scheduling::state::{transition, Transition};
use phone_agent_core::scheduling::CallStatus;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;

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

/// Applies `to` to the call if the state machine allows it, recording the transition in
/// `call_events` atomically with the status change.
pub async fn apply(
    db: &D1Database,
    call_id: &str,
    to: CallStatus,
    source: &str,
    detail: &Value,
    now: i64,
) -> Result<Applied, ApiError> {
    #[derive(Deserialize)]
    struct Current {
        status: String,
    }
    // Another writer may win the compare-and-set; re-read and decide again a few times.
    for _ in 0..3 {
        let Some(current) =
            db::first::<Current>(db, "SELECT status FROM calls WHERE id = ?", &[&call_id]).await?
        else {
            return Ok(Applied::NoCall);
        };
        let Some(from) = CallStatus::parse(&current.status) else {
            return Err(ApiError::internal(format!(
                "call {call_id} has unknown status {}",
                current.status
            )));
        };
        match transition(from, to) {
            Transition::Apply => {}
            Transition::Ignore => return Ok(Applied::Unchanged),
            Transition::Reject(invalid) => {
                log_line(
                    json!({"level": "warn", "msg": "invalid call transition", "call_id": call_id,
                    "error": invalid.to_string(), "source": source}),
                );
                return Ok(Applied::Unchanged);
            }
        }
        let changes = db::batch(
            db,
            vec![
                db::stmt(
                    db,
                    "UPDATE calls SET status = ?1, updated_at = ?2,
                       answered_at = CASE WHEN ?1 = 'in_progress' THEN COALESCE(answered_at, ?2) ELSE answered_at END,
                       ended_at = CASE WHEN ?1 IN ('completed','no_answer','busy','failed','canceled')
                                       THEN COALESCE(ended_at, ?2) ELSE ended_at END
                     WHERE id = ?3 AND status = ?4",
                    &[&to.as_str(), &now, &call_id, &from.as_str()],
                )?,
                db::stmt(
                    db,
                    "INSERT INTO call_events (call_id, at, kind, from_status, to_status, source, detail)
                     SELECT ?1, ?2, 'status', ?3, ?4, ?5, ?6 WHERE changes() > 0",
                    &[&call_id, &now, &from.as_str(), &to.as_str(), &source, &detail.to_string()],
                )?,
            ],
        )
        .await?;
        if changes.first().copied().unwrap_or(0) > 0 {
            return Ok(Applied::Moved(from));
        }
    }
    Ok(Applied::Unchanged)
}
