//! Timed work: webhook retries, campaign ticks, call dispatch, reminders, confirmation emails,
//! text messages and recording downloads run when due. One `Scheduler` Durable Object keeps an
//! alarm at the earliest due time, so sub-minute retries
//! do not wait for the next cron tick; the every-minute cron runs the same sweep as a safety
//! net. Work items are leased in D1, so the alarm and cron overlapping never double-sends.

use crate::pipeline::forwarding;
use crate::platform::http::{log_line, now_ms, ApiError};
use crate::scheduling::emails::Emails;
use crate::scheduling::messages::Messages;
use crate::scheduling::outbox::{send_due, Outbox};
use crate::scheduling::recordings::{self, Recordings};
use crate::scheduling::reminders::Reminders;
use crate::scheduling::{campaigns, dispatch};
use chrono::{DateTime, Utc};
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

/// Runs every job that is due now; errors are logged per kind so one kind cannot starve another.
pub async fn run_due(env: &Env) {
    let sent = forwarding::deliver_due(env).await;
    report(sent, "deliveries sent", "due deliveries");
    // Before the dispatcher: the calls a tick writes are dialled in the same run.
    let claimed = campaigns::run_due(env).await;
    report(claimed, "campaign contacts claimed", "due campaigns");
    let dialled = dispatch::run_due(env).await;
    report(dialled, "calls dispatched", "due calls");
    let handed = send_due::<Reminders>(env).await;
    report(handed, "reminders due", "due reminders");
    let emailed = send_due::<Emails>(env).await;
    report(emailed, "emails sent", "due emails");
    let texted = send_due::<Messages>(env).await;
    report(texted, "messages sent", "due messages");
    let stored = send_due::<Recordings>(env).await;
    report(stored, "recordings stored", "due recordings");
    let deleted = recordings::expire_due(env).await;
    report(
        deleted,
        "recordings deleted (retention)",
        "recording retention",
    );
}

/// Logs how one kind of job's run went: how many it did (`done`, when any) or why it failed.
fn report(run: std::result::Result<usize, ApiError>, done: &str, failed: &str) {
    match run {
        Ok(n) if n > 0 => log_line(json!({"level": "info", "msg": done, "count": n})),
        Ok(_) => {}
        Err(e) => log_line(json!({"level": "error", "msg": failed, "error": e.message})),
    }
}

/// The earliest time any job is due.
pub async fn next_due(env: &Env) -> std::result::Result<Option<i64>, ApiError> {
    let db = env.d1("DB")?;
    let candidates = [
        forwarding::next_due(&db).await?,
        dispatch::next_due(&db).await?,
        Emails::next_due(&db).await?,
        Reminders::next_due(&db).await?,
        Recordings::next_due(&db).await?,
        Messages::next_due(&db).await?,
        campaigns::next_due(&db).await?,
    ];
    Ok(candidates.into_iter().flatten().min())
}

/// Single instance (`global`); its alarm is the only state it keeps.
#[durable_object]
pub struct Scheduler {
    state: State,
    env: Env,
}

impl DurableObject for Scheduler {
    fn new(state: State, env: Env) -> Self {
        Scheduler { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let at = req
            .url()?
            .query_pairs()
            .find(|(k, _)| k == "at")
            .and_then(|(_, v)| v.parse::<i64>().ok());
        let Some(at) = at else {
            return Response::error("missing at", 400);
        };
        let current = self.state.storage().get_alarm().await?;
        if current.is_none_or(|c| c > at) {
            self.state.storage().set_alarm(utc(at)).await?;
        }
        Response::ok("armed")
    }

    async fn alarm(&self) -> Result<Response> {
        run_due(&self.env).await;
        match next_due(&self.env).await {
            // Never spin: the next wake is at least a second away.
            Ok(Some(at)) => {
                self.state
                    .storage()
                    .set_alarm(utc(at.max(now_ms() + 1000)))
                    .await?
            }
            Ok(None) => {}
            Err(e) => {
                log_line(json!({"level": "error", "msg": "scheduler next due", "error": e.message}))
            }
        }
        Response::ok("ran")
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
