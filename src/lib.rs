//! phone-agent edge: wires Cloudflare bindings and I/O to the pure core
//! (`phone-agent-core`). Handlers parse, call the core, and execute its decisions.
//!
//! Dependency rule: a module uses only the layers below it, never one beside or above it.
//!
//! ```text
//! routes, api          the route table and the operator API (one file per resource)
//!   ↓
//! gateway  scheduling  live    provider webhooks and voice callbacks · timed work, dialling,
//!   ↓         ↓         ↓      emails · the call session Durable Object, speech, media route
//! pipeline                     call status changes and the event outbox they publish to
//!   ↓
//! store                        D1 access
//!   ↓
//! platform                     configuration, HTTP errors, outbound fetch, auth, alarms
//! ```
//!
//! The one cycle allowed is inside `live`: the `CallSession` object and the tasks it spawns
//! (`speech`, `callbacks`) call back into it. `scripts/module-graph.py` lists the edges and
//! cycles; docs/architecture.md says where each route, table and provider protocol lives.

mod api;
mod gateway;
mod live;
mod pipeline;
mod platform;
mod routes;
mod scheduling;
mod store;

pub use live::session::CallSession;
pub use platform::rate_limit::RateLimiter;
pub use scheduling::scheduler::Scheduler;

use platform::alarm;
use platform::app::App;
use platform::health;
use platform::http::{
    finish, log_line, log_request, now_ms, request_id, request_method, RequestLine,
};
use scheduling::scheduler;
use serde_json::json;
use worker::{event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let started = now_ms();
    health::instance();
    let request_id = request_id(req.headers().get("x-request-id").ok().flatten());
    let method = request_method(&req);
    let path = req.path();
    let app = App::new(env, ctx, request_id.clone());
    let (route, result) = routes::dispatch(req, &app).await;
    let response = finish(
        result.unwrap_or_else(|e| e.to_response(&request_id)),
        &request_id,
    );
    let fields = app.take_log_fields();
    log_request(&RequestLine {
        method: &method,
        route,
        path: &path,
        status: response.status_code(),
        duration_ms: now_ms() - started,
        request_id: &request_id,
        fields: &fields,
    });
    Ok(response)
}

/// Every minute: the safety net that sends whatever is due, whichever alarm was missed.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    scheduler::run_due(&env).await;
    if let Ok(Some(at)) = scheduler::next_due(&env).await {
        alarm::wake_at(&env, at).await;
    }
    log_line(json!({
        "level": "info",
        "msg": "scheduled",
        "cron": event.cron(),
        "scheduled_time": event.schedule(),
    }));
}
