//! The HTTP surface: one match from (method, path) to a handler (docs/architecture.md lists
//! every route and the file that serves it).

use crate::api;
use crate::gateway::{voice, webhooks};
use crate::live::media;
use crate::platform::app::App;
use crate::platform::health;
use crate::platform::http::{known_carrier, method_not_allowed, ApiError, ApiResult};
use phone_agent_core::webhooks::Provider;
use worker::{Method, Request};

/// Routes a request; returns the route template (for logs) and the handler's result.
pub async fn dispatch(req: Request, app: &App) -> (&'static str, ApiResult) {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method();
    match (&method, segments.as_slice()) {
        (Method::Get, ["health"]) => (
            "GET /health",
            health::get(app, api::local_development(&req)).await,
        ),
        (Method::Post, ["webhooks", provider]) => (
            "POST /webhooks/{provider}",
            match known_provider(provider) {
                Ok(provider) => webhooks::receive(req, app, provider).await,
                Err(e) => Err(e),
            },
        ),
        (Method::Post, ["voice", carrier, "status"]) => (
            "POST /voice/{carrier}/status",
            match known_carrier(carrier).map(|carrier| carrier.webhook_provider()) {
                Ok(provider) => webhooks::receive(req, app, provider).await,
                Err(e) => Err(e),
            },
        ),
        (Method::Post, ["voice", carrier, "incoming"]) => (
            "POST /voice/{carrier}/incoming",
            match known_carrier(carrier) {
                Ok(carrier) => voice::incoming(req, app, carrier).await,
                Err(e) => Err(e),
            },
        ),
        (Method::Get, ["media", carrier, call_id]) => (
            "GET /media/{carrier}/{call_id}",
            media::connect(req, app, carrier, call_id).await,
        ),
        (_, ["api", "v1", rest @ ..]) => api::dispatch(req, app, &method, rest).await,
        (
            _,
            ["health"] | ["webhooks", _] | ["voice", _, "incoming" | "status"] | ["media", _, _],
        ) => ("method not allowed", Err(method_not_allowed(&method))),
        _ => (
            "not found",
            Err(ApiError::not_found(format!("no route for {path}"))),
        ),
    }
}

fn known_provider(slug: &str) -> Result<Provider, ApiError> {
    Provider::from_slug(slug)
        .ok_or_else(|| ApiError::not_found(format!("unknown webhook provider {slug:?}")))
}
