//! `/api/v1/numbers`: our phone numbers, each answered by an agent (optionally ringing the
//! owner first); also the caller id of the agent's scheduled calls. Numbers belong to the
//! deployment's carrier accounts, so only the bootstrap key assigns one to a tenant (otherwise
//! any tenant could claim someone else's number and take its calls); the tenant's admins then
//! choose which of their agents answers it.

use super::agents::field_errors;
use super::request::{
    audited_delete, audited_update, field_error, found, invalid_fields, json_body, list_of,
};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, rfc3339, ApiError, ApiResult};
use crate::platform::zones::IntlZones;
use crate::store::audit::{self, Change};
use crate::store::numbers::{self, Number};
use crate::store::tenant::Tenant;
use crate::store::{agents, tenants};
use phone_agent_core::agents::{parse_number, NumberSpec};
use phone_agent_core::ids::AgentId;
use serde_json::{json, Value};
use worker::Request;

/// The caller id a call of `agent_id` goes out with: `given`, else the tenant's first number the
/// agent answers, else `DEFAULT_FROM_NUMBER`; `None` when there is none ([`no_caller_id`]).
pub(super) async fn caller_id(
    tenant: &Tenant,
    agent_id: &AgentId,
    given: Option<&String>,
    default: Option<&String>,
) -> Result<Option<String>, ApiError> {
    if let Some(from) = given {
        return Ok(Some(from.clone()));
    }
    Ok(numbers::first_of_agent(tenant, agent_id)
        .await?
        .or_else(|| default.cloned()))
}

/// The 422 of a call without a caller id.
pub(super) fn no_caller_id() -> ApiError {
    invalid_fields(json!([field_error(
        "from",
        "required",
        "no caller id: give from, register a number for the agent, or set DEFAULT_FROM_NUMBER"
    )]))
}

/// The API shape of a number.
fn render(n: &Number) -> Value {
    json!({
        "id": n.id,
        "number": n.number,
        "agent_id": n.agent_id,
        "owner_phone": n.owner_phone,
        "ring_owner_first": n.ring_owner_first,
        "hours": n.hours.as_deref().and_then(|h| serde_json::from_str::<Value>(h).ok()),
        "after_hours_agent_id": n.after_hours_agent_id,
        "created_at": rfc3339(n.created_at),
        "updated_at": rfc3339(n.updated_at),
    })
}

/// The number's agents (the one answering, and the after-hours one) must be the tenant's:
/// another tenant's agent id is as unknown as a made-up one.
async fn check_agents(tenant: &Tenant, spec: &NumberSpec) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let agents = [
        ("agent_id", Some(&spec.agent_id)),
        ("after_hours_agent_id", spec.after_hours_agent_id.as_ref()),
    ];
    for (field, id) in agents {
        let Some(id) = id else { continue };
        if agents::get(tenant, id).await?.is_none() {
            errors.push(field_error(
                field,
                "unknown_agent",
                format!("no agent {id}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_fields(Value::Array(errors)))
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
    let spec = parse_number(&body, &IntlZones).map_err(field_errors)?;
    let tenant_id = match body.get("tenant_id") {
        None | Some(Value::Null) => who.tenant_id.clone(),
        Some(Value::String(t)) if tenants::exists(&app.db()?, t).await? => t.clone(),
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
    let tenant = Tenant::new(app.db()?, tenant_id.as_str().into());
    check_agents(&tenant, &spec).await?;
    let Some(number) = numbers::insert(&tenant, &spec).await? else {
        // Only the bootstrap key gets here, and it may know every assignment.
        return Err(ApiError::new(
            409,
            "conflict",
            format!("{} is already registered", spec.number),
        ));
    };
    let mut after = render(&number);
    after["tenant_id"] = Value::String(tenant_id);
    audit::log(
        app,
        who,
        &Change::created(
            "number.create",
            ("phone_number", number.id.as_str()),
            &after,
        ),
    )
    .await;
    Ok(json_response(201, &render(&number)))
}

/// Changes the agent, owner phone, ring-owner-first, hours or after-hours agent of a number (the number itself is its
/// identity: register a new one instead). Validated by the same rules as creation.
pub(super) async fn update(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let tenant = Tenant::of(app, who)?;
    let before = render(&found(numbers::get(&tenant, id).await?, "number", id)?);
    if body.get("number").is_some_and(|n| n != &before["number"]) {
        return Err(invalid_fields(json!([field_error(
            "number",
            "immutable",
            "a number cannot be changed; register the new number instead"
        )])));
    }
    let merged =
        phone_agent_core::patch::merge(&before, &body, &["agent_id"]).map_err(field_errors)?;
    let spec = parse_number(&merged, &IntlZones).map_err(field_errors)?;
    check_agents(&tenant, &spec).await?;
    let updated = numbers::update(&tenant, id, &spec).await?;
    crate::gateway::voice::forget_number(app, &spec.number).await;
    let after = render(&found(updated, "number", id)?);
    audited_update(
        app,
        who,
        "number.update",
        ("phone_number", id),
        &before,
        after,
    )
    .await
}

pub(super) async fn delete(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let number = found(numbers::get(&tenant, id).await?, "number", id)?;
    numbers::delete(&tenant, id).await?;
    crate::gateway::voice::forget_number(app, &number.number).await;
    audited_delete(
        app,
        who,
        "number.delete",
        ("phone_number", id),
        &render(&number),
    )
    .await
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let number = found(
        numbers::get(&Tenant::of(app, who)?, id).await?,
        "number",
        id,
    )?;
    Ok(json_response(200, &render(&number)))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of::<Number>(req, app, who, render).await
}
