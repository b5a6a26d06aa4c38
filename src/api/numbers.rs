//! `/api/v1/numbers`: our phone numbers, each answered by an agent (optionally ringing the
//! owner first); also the caller id of the agent's scheduled calls. Numbers belong to the
//! deployment's carrier accounts, so only the bootstrap key assigns one to a tenant (otherwise
//! any tenant could claim someone else's number and take its calls); the tenant's admins then
//! choose which of their agents answers it.

use super::agents::field_errors;
use super::request::{field_error, invalid_fields, json_body, page, query, rows_response};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, now_ms, rfc3339, ApiError, ApiResult};
use crate::store::audit;
use crate::store::db;
use crate::store::tenant::Tenant;
use phone_agent_core::agents::parse_number;
use phone_agent_core::pagination::Cursor;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

#[derive(Deserialize)]
struct Row {
    id: String,
    number: String,
    agent_id: String,
    owner_phone: Option<String>,
    ring_owner_first: i64,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, number, agent_id, owner_phone, ring_owner_first, created_at, updated_at";

impl Row {
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "number": self.number,
            "agent_id": self.agent_id,
            "owner_phone": self.owner_phone,
            "ring_owner_first": self.ring_owner_first != 0,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        })
    }
}

pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    if !who.bootstrap {
        // Refused before the body is read: the answer is the same whoever holds the number.
        return Err(ApiError::new(
            403,
            "forbidden",
            "numbers are assigned to tenants by the deployment's ADMIN_API_KEY; \
             your admins then choose the agent that answers with PATCH /api/v1/numbers/{id}",
        ));
    }
    let body = json_body(req).await?;
    let spec = parse_number(&body).map_err(field_errors)?;
    let tenant_id = match body.get("tenant_id") {
        None | Some(Value::Null) => who.tenant_id.clone(),
        Some(Value::String(t)) if tenant_exists(app, t).await? => t.clone(),
        Some(Value::String(t)) => {
            return Err(invalid_fields(json!([field_error(
                "tenant_id",
                "unknown_tenant",
                format!("no tenant {t}")
            )])))
        }
        Some(_) => {
            return Err(invalid_fields(json!([field_error(
                "tenant_id",
                "invalid_type",
                "tenant_id must be a string"
            )])))
        }
    };
    if crate::store::agents::get(
        &Tenant::new(app.db()?, tenant_id.as_str().into()),
        &spec.agent_id,
    )
    .await?
    .is_none()
    {
        return Err(invalid_fields(json!([field_error(
            "agent_id",
            "unknown_agent",
            format!("no agent {} in tenant {tenant_id}", spec.agent_id)
        )])));
    }
    let id = new_id("num")?;
    let now = now_ms();
    let inserted = db::run(
        &app.db()?,
        "INSERT INTO phone_numbers (id, tenant_id, number, agent_id, owner_phone, ring_owner_first, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (number) DO NOTHING",
        &[
            &id,
            &tenant_id,
            &spec.number,
            &spec.agent_id,
            &spec.owner_phone,
            &spec.ring_owner_first,
            &now,
            &now,
        ],
    )
    .await?;
    if inserted == 0 {
        // Only the bootstrap key gets here, and it may know every assignment.
        return Err(ApiError::new(
            409,
            "conflict",
            format!("{} is already registered", spec.number),
        ));
    }
    let row = find(app, &tenant_id, &id).await?;
    let mut after = row.render();
    after["tenant_id"] = Value::String(tenant_id);
    audit::log(
        app,
        who,
        "number.create",
        ("phone_number", &id),
        None,
        Some(&after),
    )
    .await;
    Ok(json_response(201, &row.render()))
}

async fn tenant_exists(app: &App, tenant_id: &str) -> Result<bool, ApiError> {
    let found = db::ids(
        &app.db()?,
        "SELECT id FROM tenants WHERE id = ?",
        &[&tenant_id],
    )
    .await?;
    Ok(!found.is_empty())
}

async fn find(app: &App, tenant_id: &str, id: &str) -> Result<Row, ApiError> {
    db::first(
        &app.db()?,
        &format!("SELECT {COLUMNS} FROM phone_numbers WHERE id = ? AND tenant_id = ?"),
        &[&id, &tenant_id],
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no number {id}")))
}

/// Changes the agent, owner phone or ring-owner-first of a number (the number itself is its
/// identity: register a new one instead). Validated by the same rules as creation.
pub(super) async fn update(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let before = find(app, &who.tenant_id, id).await?.render();
    if body.get("number").is_some_and(|n| n != &before["number"]) {
        return Err(invalid_fields(json!([field_error(
            "number",
            "immutable",
            "a number cannot be changed; register the new number instead"
        )])));
    }
    let merged =
        phone_agent_core::patch::merge(&before, &body, &["agent_id"]).map_err(field_errors)?;
    let spec = parse_number(&merged).map_err(field_errors)?;
    if crate::store::agents::get(&Tenant::of(app, who)?, &spec.agent_id)
        .await?
        .is_none()
    {
        return Err(invalid_fields(json!([field_error(
            "agent_id",
            "unknown_agent",
            format!("no agent {}", spec.agent_id)
        )])));
    }
    db::run(
        &app.db()?,
        "UPDATE phone_numbers SET agent_id = ?, owner_phone = ?, ring_owner_first = ?, updated_at = ?
         WHERE id = ? AND tenant_id = ?",
        &[&spec.agent_id, &spec.owner_phone, &spec.ring_owner_first, &now_ms(), &id, &who.tenant_id],
    )
    .await?;
    crate::gateway::voice::forget_number(app, &spec.number).await;
    let after = find(app, &who.tenant_id, id).await?.render();
    audit::log(
        app,
        who,
        "number.update",
        ("phone_number", id),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(json_response(200, &after))
}

pub(super) async fn delete(app: &App, who: &Principal, id: &str) -> ApiResult {
    let before = find(app, &who.tenant_id, id).await?.render();
    db::run(
        &app.db()?,
        "DELETE FROM phone_numbers WHERE id = ? AND tenant_id = ?",
        &[&id, &who.tenant_id],
    )
    .await?;
    if let Some(number) = before["number"].as_str() {
        crate::gateway::voice::forget_number(app, number).await;
    }
    audit::log(
        app,
        who,
        "number.delete",
        ("phone_number", id),
        Some(&before),
        None,
    )
    .await;
    Ok(json_response(200, &json!({"id": id, "deleted": true})))
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    Ok(json_response(
        200,
        &find(app, &who.tenant_id, id).await?.render(),
    ))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let page = page(&q)?;
    let (at, id) = page.bounds();
    let rows: Vec<Row> = db::all(
        &app.db()?,
        &format!(
            "SELECT {COLUMNS} FROM phone_numbers WHERE tenant_id = ?1 AND (created_at, id) < (?2, ?3)
               AND (?4 IS NULL OR agent_id = ?4)
             ORDER BY created_at DESC, id DESC LIMIT ?5"
        ),
        &[&who.tenant_id, &at, &id, &q.get("agent_id"), &page.fetch()],
    )
    .await?;
    rows_response(
        rows,
        &page,
        |r| Cursor {
            created_at: r.created_at,
            id: r.id.clone(),
        },
        Row::render,
    )
}
