//! `/api/v1/agents`: who speaks on a call (prompt, first message, voice, LLM, retry policy,
//! call backs and the countries it may dial).

use super::request::{
    audited_delete, audited_update, field_error, found, invalid_fields, json_body, list_of,
};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, rfc3339, ApiError, ApiResult};
use crate::store::agents::{self, Agent};
use crate::store::audit::{self, Change};
use crate::store::tenant::Tenant;
use phone_agent_core::agents::parse_agent;
use phone_agent_core::appointments::check_feed_url;
use phone_agent_core::scheduling::request::FieldError;
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
        "calendar",
    ] {
        v[key] = config.get(key).cloned().unwrap_or(Value::Null);
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
    let spec = parse_agent(&body).map_err(field_errors)?;
    check_feed_url(&spec.config, app.config()?.allow_private_targets)
        .map_err(|e| field_errors(vec![e]))?;
    let agent = agents::insert(&Tenant::of(app, who)?, &spec).await?;
    let after = render(&agent);
    audit::log(
        app,
        who,
        &Change::created("agent.create", ("agent", agent.id.as_str()), &after),
    )
    .await;
    Ok(json_response(201, &after))
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
    let spec = parse_agent(&merged).map_err(field_errors)?;
    check_feed_url(&spec.config, app.config()?.allow_private_targets)
        .map_err(|e| field_errors(vec![e]))?;
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
    Ok(json_response(200, &render(&agent)))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of::<Agent>(req, app, who, render).await
}
