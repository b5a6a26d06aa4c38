//! One way to send the durable work that is due: the email, text-message and recording
//! outboxes and the reminder hand-over each list what is due and attempt one item (lease it in
//! the store's `outbox`, handle it, record where [`settle`] leaves it); [`send_due`] runs a
//! batch of any of them for the scheduler.

use crate::platform::alarm;
use crate::platform::app::load_config;
use crate::platform::http::{log_line, now_ms, random_unit, ApiError};
use crate::store::outbox::{self, Attempt, Leased};
use phone_agent_core::config::Config;
use phone_agent_core::delivery::{decide_attempt, Decision, Outcome, REQUEST_TIMEOUT_MS};
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

/// A kind of durable work the scheduler sends when due.
// Only the scheduler calls it, on the one thread a worker has: nothing needs its futures `Send`.
#[allow(async_fn_in_trait)]
pub trait Outbox {
    /// One due item, as the queue lists it.
    type Item;
    /// The `msg` of the log line of an item whose attempt failed.
    const ATTEMPT_FAILED: &'static str;

    /// Up to one batch of items due at `now`, across tenants.
    async fn due(db: &D1Database, now: i64) -> Result<Vec<Self::Item>, ApiError>;

    /// One attempt at `item`, found due at `now`; nothing when it no longer is or someone else
    /// holds it.
    async fn attempt(
        env: &Env,
        db: &D1Database,
        config: &Config,
        item: &Self::Item,
        now: i64,
    ) -> Result<(), ApiError>;

    /// The ids that name `item` in a log line (a JSON object).
    fn ids(item: &Self::Item) -> Value;

    /// When the next item is due, if any.
    async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError>;
}

/// An outbox whose items are rows of a store queue, each leased for its attempt.
#[allow(async_fn_in_trait)]
pub trait Leasing {
    /// The row as an attempt leases it.
    type Row: Leased;
    /// How long an attempt holds its row: longer than it can take (by default, one request to
    /// a provider).
    const LEASE_MS: i64 = REQUEST_TIMEOUT_MS as i64 + 45_000;
    /// Rows attempted per scheduler run.
    const BATCH: i64 = 50;
    /// The `msg` of the log line of a row whose attempt failed, and the row id's field in it.
    const LOG: (&'static str, &'static str);

    /// The attempt at row `id`, leased as `row`: handled, and where it ends recorded (releasing
    /// the lease).
    async fn handle(
        env: &Env,
        db: &D1Database,
        config: &Config,
        id: &str,
        row: Self::Row,
    ) -> Result<(), ApiError>;
}

impl<L: Leasing> Outbox for L {
    type Item = String;
    const ATTEMPT_FAILED: &'static str = L::LOG.0;

    async fn due(db: &D1Database, now: i64) -> Result<Vec<String>, ApiError> {
        Ok(outbox::due_unscoped::<L::Row>(db, now, L::BATCH).await?)
    }

    async fn attempt(
        env: &Env,
        db: &D1Database,
        config: &Config,
        id: &String,
        _now: i64,
    ) -> Result<(), ApiError> {
        attempt::<L>(env, db, config, id).await
    }

    fn ids(id: &String) -> Value {
        Value::Object(
            [(L::LOG.1.to_owned(), Value::String(id.clone()))]
                .into_iter()
                .collect(),
        )
    }

    async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
        Ok(outbox::next_due_unscoped(db, L::Row::QUEUE).await?)
    }
}

/// One attempt at row `id` of `L`'s queue, if it is still due and nobody else holds it.
pub async fn attempt<L: Leasing>(
    env: &Env,
    db: &D1Database,
    config: &Config,
    id: &str,
) -> Result<(), ApiError> {
    let started = now_ms();
    match outbox::lease::<L::Row>(db, id, started + L::LEASE_MS, started).await? {
        Some(row) => L::handle(env, db, config, id, row).await,
        None => Ok(()),
    }
}

/// Attempts the rows of `L`'s queue that `rows` names now (their first attempt, right after
/// they were queued, off the request path), then wakes the scheduler for whatever they left
/// pending; a failure is logged as `context`.
pub async fn send_now<L: Leasing>(
    env: &Env,
    rows: impl AsyncFnOnce(&D1Database) -> Result<Vec<String>, ApiError>,
    context: Value,
) {
    let first_attempts = async {
        let db = env.d1("DB")?;
        let ids = rows(&db).await?;
        let config = load_config(env)?;
        for id in ids {
            attempt::<L>(env, &db, &config, &id).await?;
        }
        L::next_due(&db).await
    };
    alarm::after_first_attempts(env, first_attempts, context).await;
}

/// Attempts up to one batch of `O`'s due items; returns how many were attempted. One item's
/// failure is logged and does not stop the others.
pub async fn send_due<O: Outbox>(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let due = O::due(&db, now).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let config = load_config(env)?;
    for item in &due {
        if let Err(e) = O::attempt(env, &db, &config, item, now).await {
            let mut line = json!({"level": "error", "msg": O::ATTEMPT_FAILED, "error": e.message});
            if let (Some(line), Value::Object(ids)) = (line.as_object_mut(), O::ids(item)) {
                line.extend(ids);
            }
            log_line(line);
        }
    }
    Ok(due.len())
}

/// Where the core's retry policy leaves a job after attempt number `attempts`, ended at `at`
/// with `outcome` (`None`: it could not be made) and `error`: `pending` again at the retry
/// time, else `done` when delivered and `dead` when not. A 410 means nothing outside webhook
/// deliveries: it is as final as an exhausted schedule.
pub fn settle<'a>(
    config: &Config,
    attempts: i64,
    at: i64,
    outcome: Option<&Outcome>,
    [done, dead]: [&'a str; 2],
    error: Option<&'a str>,
) -> Attempt<'a> {
    let decision = decide_attempt(
        &config.delivery_retry_schedule,
        attempts,
        at,
        outcome,
        random_unit(),
    );
    let (status, next_attempt_at) = match decision {
        Decision::Delivered => (done, None),
        Decision::Retry { at_unix_ms } => ("pending", Some(at_unix_ms)),
        Decision::Dead | Decision::DisableEndpoint => (dead, None),
    };
    Attempt {
        status,
        attempts,
        next_attempt_at,
        error,
        at,
    }
}
