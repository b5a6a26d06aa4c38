//! `GET /health`: is the worker able to reach its storage and is it configured?

use crate::platform::app::App;
use crate::platform::http::{json_response, now_ms, ApiResult};
use phone_agent_core::config::Config;
use phone_agent_core::features::features;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// Identity of this Wasm instance: a panic resets the instance, so a changed id after a
/// request means that request crashed it (the bad-input suite checks exactly this).
static INSTANCE: OnceLock<(String, i64)> = OnceLock::new();

/// Records the instance's identity on its first request.
pub fn instance() -> &'static (String, i64) {
    INSTANCE.get_or_init(|| (crate::platform::http::trace_id("inst"), now_ms()))
}

/// Reports D1, KV and configuration checks; 503 when any fails so load balancers notice. A weak
/// `ADMIN_API_KEY` fails the configuration check, except in local development (`local`: the
/// request came to a loopback host) where it is a warning.
pub async fn get(app: &App, local: bool) -> ApiResult {
    let d1 = check_d1(app).await;
    let kv = check_kv(app).await;
    let weak_admin_key = app.config().ok().and_then(|c| c.weak_admin_key());
    let config = match (app.config_error(), weak_admin_key) {
        (Some(e), _) => json!({"ok": false, "error": e.to_string()}),
        (None, Some(weak)) if local => json!({"ok": true, "warnings": [format!(
            "{weak} (accepted here only because this is local development)"
        )]}),
        (None, Some(weak)) => json!({"ok": false, "error": weak.to_string()}),
        (None, None) => json!({"ok": true}),
    };
    let healthy = [&d1, &kv, &config].iter().all(|c| c["ok"] == true);
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": {"d1": d1, "kv": kv, "config": config},
        "features": app.config().ok().map(feature_report),
        "instance": {"id": instance().0, "started_at": crate::platform::http::rfc3339(instance().1)},
    });
    Ok(json_response(if healthy { 200 } else { 503 }, &body))
}

/// `{name: {ok, missing}}` per feature: variable names only, never their values. An unusable
/// feature does not fail the health check (a deployment may not want it), it is only reported.
fn feature_report(config: &Config) -> Value {
    // Inserted rather than collected: each `collect` into a map compiles a sort.
    let mut report = Map::new();
    for f in features(config) {
        report.insert(f.name.clone(), json!({"ok": f.ok(), "missing": f.missing}));
    }
    Value::Object(report)
}

/// Queries a migrated table, so "reachable" also means "migrations applied". The one statement
/// outside the store: platform sits below it, and this probe needs no more than the binding.
async fn check_d1(app: &App) -> Value {
    let started = now_ms();
    let result = match app.db() {
        Ok(db) => db
            .prepare("SELECT count(*) AS n FROM tenants")
            .first::<Value>(None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.message),
    };
    outcome(result, started)
}

async fn check_kv(app: &App) -> Value {
    let started = now_ms();
    let result = match app.kv() {
        Ok(kv) => kv
            .get("health:probe")
            .text()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.message),
    };
    outcome(result, started)
}

fn outcome(result: Result<(), String>, started: i64) -> Value {
    let latency_ms = now_ms() - started;
    match result {
        Ok(()) => json!({"ok": true, "latency_ms": latency_ms}),
        Err(error) => json!({"ok": false, "latency_ms": latency_ms, "error": error}),
    }
}
