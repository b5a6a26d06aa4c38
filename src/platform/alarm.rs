//! Waking the `Scheduler` Durable Object: any layer that makes work due asks for an alarm here,
//! without depending on the work the scheduler runs.

use crate::platform::http::{log_line, ApiError};
use serde_json::{json, Value};
use std::future::Future;
use worker::Env;

/// Runs `first_attempts` (work sent right away, off the request path), which answers when what
/// it left pending is due, and wakes the scheduler for that. Nobody waits for this work, so a
/// failure is logged: `context` (level, msg and ids) with its `error`.
pub async fn after_first_attempts(
    env: &Env,
    first_attempts: impl Future<Output = Result<Option<i64>, ApiError>>,
    mut context: Value,
) {
    match first_attempts.await {
        Ok(Some(at)) => wake_at(env, at).await,
        Ok(None) => {}
        Err(e) => {
            context["error"] = Value::String(e.message);
            log_line(context);
        }
    }
}

/// Asks the scheduler to wake at `at_ms` (or earlier, if it already plans to).
pub async fn wake_at(env: &Env, at_ms: i64) {
    let result = async {
        let stub = env
            .durable_object("SCHEDULER")?
            .id_from_name("global")?
            .get_stub()?;
        stub.fetch_with_str(&format!("https://scheduler/wake?at={at_ms}"))
            .await?;
        Ok::<_, worker::Error>(())
    }
    .await;
    if let Err(e) = result {
        log_line(json!({"level": "error", "msg": "wake scheduler", "error": e.to_string()}));
    }
}
