//! Waking the `Scheduler` Durable Object: any layer that makes work due asks for an alarm here,
//! without depending on the work the scheduler runs.

use crate::platform::http::log_line;
use serde_json::json;
use worker::Env;

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
