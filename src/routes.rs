//! The HTTP surface: one table of (method, path, who may call it, handler) from which come the
//! dispatch, the 404s, the 405s with their `Allow` header, the role checks and the log labels
//! (the decisions are the core's `routing.rs`; docs/architecture.md says which file serves each
//! handler).

use crate::api::{self, Api};
use crate::gateway::{recordings, voice, webhooks};
use crate::live::media;
use crate::platform::app::App;
use crate::platform::health;
use crate::platform::http::{
    known_carrier, method_not_allowed, request_method, ApiError, ApiResult,
};
use phone_agent_core::routing::Gate::{Administer, Bootstrap, Operate, Public, Read};
use phone_agent_core::routing::{resolve, Gate, Outcome, Resolution, Route};
use phone_agent_core::webhooks::Provider;
use worker::Request;

/// Paths under this prefix that no public route serves need an API key before even a 404 or
/// 405, so an unauthenticated caller cannot map the API.
const API_PREFIX: &str = "/api/v1";

/// One table line.
const fn route(label: &'static str, gate: Gate<Open, Api>) -> Route<Open, Api> {
    Route { label, gate }
}

/// Every route the worker serves. The gate is the role a caller needs (`Public`: none). The
/// e2e tests (openapi, routes) parse the lines between the markers: one `route(..)` per line.
#[rustfmt::skip]
const ROUTES: &[Route<Open, Api>] = &[
    // route-table:begin
    route("GET /health", Public(Open::Health)),
    route("POST /webhooks/{provider}", Public(Open::Webhook)),
    route("POST /voice/{carrier}/status", Public(Open::CarrierStatus)),
    route("POST /voice/{carrier}/incoming", Public(Open::IncomingCall)),
    route("POST /voice/{carrier}/recording", Public(Open::RecordingStatus)),
    route("GET /media/{carrier}/{call_id}", Public(Open::Media)),
    route("GET /api/v1/openapi.json", Public(Open::Document)),
    route("POST /api/v1/agents", Administer(Api::AgentCreate)),
    route("GET /api/v1/agents", Read(Api::AgentList)),
    route("GET /api/v1/agents/{id}", Read(Api::AgentGet)),
    route("PATCH /api/v1/agents/{id}", Administer(Api::AgentUpdate)),
    route("DELETE /api/v1/agents/{id}", Administer(Api::AgentDelete)),
    route("GET /api/v1/agents/{id}/tools-secret", Administer(Api::AgentToolsSecret)),
    route("POST /api/v1/agents/{id}/tools-secret", Administer(Api::AgentRotateToolsSecret)),
    route("POST /api/v1/numbers", Administer(Api::NumberCreate)),
    route("GET /api/v1/numbers", Read(Api::NumberList)),
    route("GET /api/v1/numbers/{id}", Read(Api::NumberGet)),
    route("PATCH /api/v1/numbers/{id}", Administer(Api::NumberUpdate)),
    route("DELETE /api/v1/numbers/{id}", Administer(Api::NumberDelete)),
    route("POST /api/v1/calls", Operate(Api::CallSchedule)),
    route("GET /api/v1/calls", Read(Api::CallList)),
    route("GET /api/v1/calls/{id}", Read(Api::CallGet)),
    route("PATCH /api/v1/calls/{id}", Operate(Api::CallReschedule)),
    route("DELETE /api/v1/calls/{id}", Operate(Api::CallCancel)),
    route("GET /api/v1/calls/{id}/session", Read(Api::CallSession)),
    route("GET /api/v1/calls/{id}/transcript", Read(Api::CallTranscript)),
    route("GET /api/v1/calls/{id}/recording", Public(Open::Recording)),
    route("GET /api/v1/calls/{id}/live", Read(Api::CallLive)),
    route("POST /api/v1/calls/{id}/live-ticket", Read(Api::LiveTicket)),
    route("POST /api/v1/endpoints", Administer(Api::EndpointCreate)),
    route("GET /api/v1/endpoints", Read(Api::EndpointList)),
    route("GET /api/v1/endpoints/{id}", Read(Api::EndpointGet)),
    route("PATCH /api/v1/endpoints/{id}", Administer(Api::EndpointUpdate)),
    route("DELETE /api/v1/endpoints/{id}", Administer(Api::EndpointDelete)),
    route("POST /api/v1/endpoints/{id}/rotate-secret", Administer(Api::EndpointRotate)),
    route("GET /api/v1/endpoints/{id}/secret", Administer(Api::EndpointSecret)),
    route("POST /api/v1/endpoints/{id}/test", Administer(Api::EndpointTest)),
    route("GET /api/v1/events", Read(Api::EventList)),
    route("GET /api/v1/events/{id}", Read(Api::EventGet)),
    route("POST /api/v1/events/{id}/replay", Operate(Api::EventReplay)),
    route("GET /api/v1/deliveries", Read(Api::DeliveryList)),
    route("POST /api/v1/deliveries/redrive", Operate(Api::DeliveryRedrive)),
    route("GET /api/v1/deliveries/{id}", Read(Api::DeliveryGet)),
    route("POST /api/v1/deliveries/{id}/replay", Operate(Api::DeliveryReplay)),
    route("POST /api/v1/api-keys", Administer(Api::KeyCreate)),
    route("GET /api/v1/api-keys", Administer(Api::KeyList)),
    route("GET /api/v1/api-keys/{id}", Administer(Api::KeyGet)),
    route("DELETE /api/v1/api-keys/{id}", Administer(Api::KeyRevoke)),
    route("POST /api/v1/tenants", Bootstrap(Api::TenantCreate)),
    route("GET /api/v1/tenants", Bootstrap(Api::TenantList)),
    route("PATCH /api/v1/tenants/{id}", Bootstrap(Api::TenantUpdate)),
    route("GET /api/v1/audit-log", Administer(Api::AuditLog)),
    route("GET /api/v1/me", Read(Api::Me)),
    route("GET /api/v1/usage", Read(Api::Usage)),
    route("GET /api/v1/appointments", Read(Api::AppointmentList)),
    route("GET /api/v1/appointments/{id}", Read(Api::AppointmentGet)),
    route("POST /api/v1/appointments", Operate(Api::AppointmentCreate)),
    route("POST /api/v1/appointments/{id}/cancel", Operate(Api::AppointmentCancel)),
    route(
        "POST /api/v1/appointments/{id}/reschedule",
        Operate(Api::AppointmentReschedule),
    ),
    // route-table:end
];

/// The handlers that need no credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    Health,
    Webhook,
    CarrierStatus,
    IncomingCall,
    Media,
    Document,
    RecordingStatus,
    Recording,
}

/// Routes a request; returns the route's log label and the handler's result.
pub async fn dispatch(req: Request, app: &App) -> (&'static str, ApiResult) {
    let path = req.path();
    let method = request_method(&req);
    match resolve(ROUTES, API_PREFIX, &method, &path) {
        Resolution::Open(Outcome::Run {
            label,
            handler,
            params,
        }) => (label, open(*handler, req, app, &params).await),
        Resolution::Open(Outcome::MethodNotAllowed { template, allow }) => {
            (template, Err(method_not_allowed(&method, allow)))
        }
        Resolution::Open(Outcome::NotFound) => (
            "not found",
            Err(ApiError::not_found(format!("no route for {path}"))),
        ),
        Resolution::Private(outcome) => api::dispatch(req, app, &method, outcome).await,
    }
}

/// Runs a public handler with its path parameters.
async fn open(handler: Open, req: Request, app: &App, params: &[&str]) -> ApiResult {
    match (handler, params) {
        (Open::Health, []) => health::get(app, api::local_development(&req)).await,
        (Open::Webhook, [provider]) => webhooks::receive(req, app, known_provider(provider)?).await,
        (Open::CarrierStatus, [carrier]) => {
            let provider = known_carrier(carrier)?.webhook_provider();
            webhooks::receive(req, app, provider).await
        }
        (Open::IncomingCall, [carrier]) => voice::incoming(req, app, known_carrier(carrier)?).await,
        (Open::Media, [carrier, call_id]) => media::connect(req, app, carrier, call_id).await,
        (Open::Document, []) => api::openapi(app).await,
        (Open::RecordingStatus, [carrier]) => {
            recordings::receive(req, app, known_carrier(carrier)?).await
        }
        (Open::Recording, [call_id]) => recordings::download(req, app, call_id).await,
        _ => Err(ApiError::internal(format!(
            "route table: {handler:?} has no handler for {} parameters",
            params.len()
        ))),
    }
}

fn known_provider(slug: &str) -> Result<Provider, ApiError> {
    Provider::from_slug(slug)
        .ok_or_else(|| ApiError::not_found(format!("unknown webhook provider {slug:?}")))
}
