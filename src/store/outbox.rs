//! The queues of durable work the scheduler sends when due (the `emails`, `messages` and
//! `recordings` outboxes; the `reminders` hand-over), their shared SQL written once. A row is
//! due when it still owes work at its due time; an attempt leases it (`locked_until`), so the
//! first attempt after an API request, the alarm and the cron never attempt one row twice at
//! once, and the attempt's record releases the lease.

use crate::store::db::{self, Arg, FromRow};
use crate::store::error::StoreError;
use worker::d1::{D1Database, D1PreparedStatement};

/// A table of queued work: which rows still owe work, and when each is due.
pub struct Queue {
    table: &'static str,
    /// SQL that selects a row still owing work.
    pending: &'static str,
    /// The column holding when it is due.
    due_at: &'static str,
}

impl Queue {
    /// The queue of `table`'s rows selected by `pending`, due at the time in column `due_at`.
    pub(in crate::store) const fn new(
        table: &'static str,
        pending: &'static str,
        due_at: &'static str,
    ) -> Self {
        Self {
            table,
            pending,
            due_at,
        }
    }

    /// SQL selecting a row due at the time bound to `?{now}` that nobody holds.
    fn due_and_free(&self, now: u8) -> String {
        format!(
            "({}) AND {} <= ?{now} AND (locked_until IS NULL OR locked_until < ?{now})",
            self.pending, self.due_at
        )
    }
}

/// A queued row as one attempt reads it when it leases the row (a leased queue's rows have
/// `locked_until`).
pub trait Leased: FromRow {
    /// The queue it is leased from.
    const QUEUE: &'static Queue;
    /// The columns it is read from.
    const COLUMNS: &'static str;
}

/// Up to `limit` ids of `L`'s queue due at `now` and not leased, across tenants, most overdue
/// first.
pub async fn due_unscoped<L: Leased>(
    db: &D1Database,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let queue = L::QUEUE;
    db::ids(
        db,
        &format!(
            "SELECT id FROM {} WHERE {} ORDER BY {} LIMIT ?2",
            queue.table,
            queue.due_and_free(1),
            queue.due_at
        ),
        &[&now, &limit],
    )
    .await
}

/// When the next row of `queue` is due, if any (across tenants).
pub async fn next_due_unscoped(db: &D1Database, queue: &Queue) -> Result<Option<i64>, StoreError> {
    db::earliest(
        db,
        &format!(
            "SELECT min({}) AS at FROM {} WHERE {}",
            queue.due_at, queue.table, queue.pending
        ),
        &[],
    )
    .await
}

/// Leases row `id` of `L`'s queue until `until` if it is due at `now` and nobody holds it; the
/// row as leased.
pub async fn lease<L: Leased>(
    db: &D1Database,
    id: &str,
    until: i64,
    now: i64,
) -> Result<Option<L>, StoreError> {
    let queue = L::QUEUE;
    db::first(
        db,
        &format!(
            "UPDATE {} SET locked_until = ?1 WHERE id = ?2 AND {} RETURNING {}",
            queue.table,
            queue.due_and_free(3),
            L::COLUMNS
        ),
        &[&until, &id, &now],
    )
    .await
}

/// How one attempt at a queued row ended.
pub struct Attempt<'a> {
    /// `pending` (to retry at `next_attempt_at`), or where the row ends.
    pub status: &'a str,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub error: Option<&'a str>,
    pub at: i64,
}

/// The columns an attempt is recorded in: a row's own, or those of a later step of the same
/// job (a recording's transcription).
pub(in crate::store) struct Step {
    /// The status column, and the SQL of its new value (`?1`: the attempt's status).
    pub status: (&'static str, &'static str),
    pub attempts: &'static str,
    pub error: &'static str,
}

/// A step recorded in the row's `status`, `attempts` and `last_error`.
pub(in crate::store) const ROW: Step = Step {
    status: ("status", "?1"),
    attempts: "attempts",
    error: "last_error",
};

/// The update that records attempt `a` at row `id` of `queue` in `step`'s columns and releases
/// the lease; `more` adds assignments (`, column = value`) with placeholders from `?7` for
/// `more_args` (`?1` is the status, `?5` the time).
pub(in crate::store) fn recorded(
    db: &D1Database,
    queue: &Queue,
    step: &Step,
    id: &str,
    a: &Attempt<'_>,
    more: &str,
    more_args: &[&dyn Arg],
) -> Result<D1PreparedStatement, StoreError> {
    let Step {
        status: (status, new_status),
        attempts,
        error,
    } = step;
    let mut args: Vec<&dyn Arg> = vec![
        &a.status,
        &a.attempts,
        &a.next_attempt_at,
        &a.error,
        &a.at,
        &id,
    ];
    args.extend_from_slice(more_args);
    db::stmt(
        db,
        &format!(
            "UPDATE {} SET {status} = {new_status}, {attempts} = ?2, next_attempt_at = ?3,
               locked_until = NULL, {error} = ?4, updated_at = ?5{more}
             WHERE id = ?6",
            queue.table
        ),
        &args,
    )
}
