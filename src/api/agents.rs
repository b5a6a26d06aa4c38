//! `/api/v1/agents`: who speaks on a call (prompt, first message, voice, LLM, retry policy,
//! call backs, the countries it may dial and its HTTP tools). The secret its HTTP tools are
//! signed with is made with the agent and shown in the creation's answer, then only to admins
//! at `GET /api/v1/agents/{id}/tools-secret`; `POST` there replaces it.

use super::request::{
    audited_delete, audited_update, field_error, found, invalid_fields, json_body, list_of,
};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, rfc3339, secret_bytes, ApiError, ApiResult};
use crate::store::agents::{self, Agent};
use crate::store::audit::{self, Change};
use crate::store::tenant::Tenant;
use phone_agent_core::agents::parse_agent_for;
use phone_agent_core::appointments::feed_origin;
use phone_agent_core::auth::Role;
use phone_agent_core::scheduling::request::FieldError;
use phone_agent_core::webhooks::signatures::new_endpoint_secret;
use serde_json::{json, Value};
use worker::Request;

/// The API shape of an agent: its columns, and each config section as a top-level field.
pub fn render(agent: &Agent) -> Value {
    let config: Value = serde_json::from_str(&agent.config).unwrap_or_else(|_| json!({}));
    let mut v = json!({
        "id": agent.id,
        "name": agent.name,
        "system_prompt": agent.system_prompt,
        "first_message": agent.first_message,
        "created_at": rfc3339(agent.created_at),
        "updated_at": rfc3339(agent.updated_at),
    });
    for key in [
        "voice",
        "llm",
        "retry",
        "session",
        "stt",
        "callbacks",
        "allowed_countries",
        "analysis",
        "recording",
        "http_tools",
        "sms",
        "calendar",
        "variables",
        "reminders",
    ] {
        v[key] = config.get(key).cloned().unwrap_or(Value::Null);
    }
    v
}

/// An agent as `who` may read it: admins (who alone edit agents) see everything; other roles
/// see only the origin of a calendar feed address, which is a credential for private calendars.
fn render_for(agent: &Agent, who: &Principal) -> Value {
    let mut v = render(agent);
    if who.role != Role::Admin {
        if let Some(url) = v.pointer_mut("/calendar/feed_url") {
            if let Some(origin) = url.as_str().map(feed_origin) {
                *url = Value::String(origin);
            }
        }
    }
    v
}

/// Field errors from the core in the API's 422 shape.
pub fn field_errors(errors: Vec<FieldError>) -> ApiError {
    invalid_fields(
        errors
            .into_iter()
            .map(|e| field_error(&e.field, e.code, e.message))
            .collect(),
    )
}

pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let spec = parse_agent_for(&body, app.config()?.allow_private_targets).map_err(field_errors)?;
    let secret = new_endpoint_secret(&secret_bytes()?);
    let agent = agents::insert(&Tenant::of(app, who)?, &spec, &secret).await?;
    let after = render(&agent);
    audit::log(
        app,
        who,
        &Change::created("agent.create", ("agent", agent.id.as_str()), &after),
    )
    .await;
    // Shown once here (never in the audit entry), then only at `tools-secret`.
    let mut created = after;
    created["tools_secret"] = Value::String(secret);
    Ok(json_response(201, &created))
}

/// Applies the given fields over the stored agent and validates the result as a whole, so
/// there is one set of rules for creating and changing an agent.
pub(super) async fn update(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let tenant = Tenant::of(app, who)?;
    let missing = || ApiError::not_found(format!("no agent {id}"));
    let before = render(&agents::get(&tenant, id).await?.ok_or_else(missing)?);
    let merged = phone_agent_core::patch::merge(&before, &body, &["name", "system_prompt"])
        .map_err(field_errors)?;
    let spec =
        parse_agent_for(&merged, app.config()?.allow_private_targets).map_err(field_errors)?;
    let after = render(
        &agents::update(&tenant, id, &spec)
            .await?
            .ok_or_else(missing)?,
    );
    audited_update(app, who, "agent.update", ("agent", id), &before, after).await
}

/// Deletes an agent nothing uses any more: 409 `agent_in_use` naming the numbers and open
/// calls that still do.
pub(super) async fn delete(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let before = render(&found(agents::get(&tenant, id).await?, "agent", id)?);
    found(agents::delete(&tenant, id).await?, "agent", id)??;
    audited_delete(app, who, "agent.delete", ("agent", id), &before).await
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let agent = agents::get(&Tenant::of(app, who)?, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    Ok(json_response(200, &render_for(&agent, who)))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of::<Agent>(req, app, who, |agent| render_for(agent, who)).await
}

/// `GET /api/v1/agents/{id}/tools-secret` (admins): the secret the agent's HTTP tools are
/// signed with (`null` for an agent made before tools secrets, until its first rotation).
pub(super) async fn tools_secret(app: &App, who: &Principal, id: &str) -> ApiResult {
    let secret = found(
        agents::tools_secret(&Tenant::of(app, who)?, id).await?,
        "agent",
        id,
    )?;
    audit::log(
        app,
        who,
        &Change::done("agent.read_tools_secret", ("agent", id), None),
    )
    .await;
    Ok(json_response(
        200,
        &json!({"id": id, "tools_secret": secret}),
    ))
}

/// `POST /api/v1/agents/{id}/tools-secret` (admins): a new secret, used from the next tool call.
pub(super) async fn rotate_tools_secret(app: &App, who: &Principal, id: &str) -> ApiResult {
    let secret = new_endpoint_secret(&secret_bytes()?);
    let rotated = agents::rotate_tools_secret(&Tenant::of(app, who)?, id, &secret).await?;
    found(rotated.then_some(()), "agent", id)?;
    audit::log(
        app,
        who,
        &Change::done("agent.rotate_tools_secret", ("agent", id), None),
    )
    .await;
    Ok(json_response(
        200,
        &json!({"id": id, "tools_secret": secret}),
    ))
}
