//! `/api/v1/agents`: who speaks on a call (prompt, first message, voice, LLM, retry policy,
//! call backs and the countries it may dial).

use super::request::{field_error, invalid_fields, json_body, list_response, query, Page};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::method_not_allowed;
use crate::platform::http::{json_response, new_id, now_ms, rfc3339, ApiError, ApiResult};
use crate::store::audit;
use crate::store::db;
use phone_agent_core::agents::parse_agent;
use phone_agent_core::auth::Access;
use phone_agent_core::pagination::Cursor;
use phone_agent_core::scheduling::request::FieldError;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Method, Request};

/// An agent row.
#[derive(Deserialize)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub system_prompt: String,
    pub first_message: Option<String>,
    pub config: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, system_prompt, first_message, config, created_at, updated_at";

impl AgentRow {
    fn render(&self) -> Value {
        let config: Value = serde_json::from_str(&self.config).unwrap_or_else(|_| json!({}));
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "system_prompt": self.system_prompt,
            "first_message": self.first_message,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        });
        for key in [
            "voice",
            "llm",
            "retry",
            "session",
            "stt",
            "callbacks",
            "allowed_countries",
        ] {
            v[key] = config.get(key).cloned().unwrap_or(Value::Null);
        }
        v
    }
}

/// The tenant's agent `id`, if it exists.
pub async fn find(app: &App, tenant_id: &str, id: &str) -> Result<Option<AgentRow>, ApiError> {
    db::first(
        &app.db()?,
        &format!("SELECT {COLUMNS} FROM agents WHERE id = ? AND tenant_id = ?"),
        &[&id, &tenant_id],
    )
    .await
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

/// Routes `/api/v1/agents/...`.
pub async fn route(
    mut req: Request,
    app: &App,
    who: &Principal,
    method: &Method,
    tail: &[&str],
) -> (&'static str, ApiResult) {
    match (method, tail) {
        (Method::Post, []) => ("POST /api/v1/agents", create(&mut req, app, who).await),
        (Method::Get, []) => ("GET /api/v1/agents", list(&req, app, who).await),
        (Method::Get, [id]) => ("GET /api/v1/agents/{id}", get(app, who, id).await),
        (Method::Patch, [id]) => (
            "PATCH /api/v1/agents/{id}",
            update(&mut req, app, who, id).await,
        ),
        (_, [] | [_]) => ("/api/v1/agents", Err(method_not_allowed(method))),
        _ => ("not found", Err(ApiError::not_found("no such agent route"))),
    }
}

async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    who.require(Access::Administer)?;
    let body = json_body(req).await?;
    let spec = parse_agent(&body).map_err(field_errors)?;
    let id = new_id("ag")?;
    let now = now_ms();
    db::run(
        &app.db()?,
        "INSERT INTO agents (id, tenant_id, name, system_prompt, first_message, config, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            &id,
            &who.tenant_id,
            &spec.name,
            &spec.system_prompt,
            &spec.first_message,
            &spec.config.to_string(),
            &now,
            &now,
        ],
    )
    .await?;
    let row = find(app, &who.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::internal("agent vanished after insert"))?;
    audit::log(
        app,
        who,
        "agent.create",
        ("agent", &id),
        None,
        Some(&row.render()),
    )
    .await;
    Ok(json_response(201, &row.render()))
}

/// Applies the given fields over the stored agent and validates the result as a whole, so
/// there is one set of rules for creating and changing an agent.
async fn update(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    who.require(Access::Administer)?;
    let body = json_body(req).await?;
    let row = find(app, &who.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    let before = row.render();
    let merged = phone_agent_core::patch::merge(&before, &body, &["name", "system_prompt"])
        .map_err(field_errors)?;
    let spec = parse_agent(&merged).map_err(field_errors)?;
    db::run(
        &app.db()?,
        "UPDATE agents SET name = ?, system_prompt = ?, first_message = ?, config = ?, updated_at = ?
         WHERE id = ? AND tenant_id = ?",
        &[
            &spec.name,
            &spec.system_prompt,
            &spec.first_message,
            &spec.config.to_string(),
            &now_ms(),
            &id,
            &who.tenant_id,
        ],
    )
    .await?;
    let after = find(app, &who.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?
        .render();
    audit::log(
        app,
        who,
        "agent.update",
        ("agent", id),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(json_response(200, &after))
}

async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    who.require(Access::Read)?;
    let row = find(app, &who.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    Ok(json_response(200, &row.render()))
}

async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    who.require(Access::Read)?;
    let page = Page::from_query(&query(req)?)?;
    let (at, id) = page.bounds();
    let rows: Vec<AgentRow> = db::all(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM agents WHERE tenant_id = ? AND (created_at, id) < (?, ?)
             ORDER BY created_at DESC, id DESC LIMIT ?"
        ),
        &[&who.tenant_id, &at, &id, &page.fetch()],
    )
    .await?;
    list_response(
        rows,
        &page,
        |r| Cursor {
            created_at: r.created_at,
            id: r.id.clone(),
        },
        AgentRow::render,
    )
}
