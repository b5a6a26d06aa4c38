//! `/api/v1/tenants`: only the bootstrap `ADMIN_API_KEY` creates tenants; each new tenant
//! gets its first admin key, shown once; its quotas are set here too.

use super::agents::field_errors;
use super::keys;
use super::request::{field_error, invalid_fields, json_body, list_response, page, query};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, now_ms, rfc3339, ApiError, ApiResult};
use crate::store::audit::{self, Change};
use crate::store::keys::NewKey;
use crate::store::tenant::Tenant;
use crate::store::tenants::{self, TenantRow};
use crate::store::usage;
use phone_agent_core::auth::Role;
use phone_agent_core::ids::{KeyId, TenantId};
use phone_agent_core::usage::{month_start, parse_quotas};
use serde_json::{json, Value};
use worker::Request;

fn render(t: &TenantRow) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": rfc3339(t.created_at)})
}

pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let name = match body.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 100 => n.to_owned(),
        _ => {
            return Err(invalid_fields(json!([field_error(
                "name",
                "required",
                "name is a non-empty string of at most 100 bytes"
            )])))
        }
    };
    let tenant_id: TenantId = new_id()?;
    let key_id: KeyId = new_id()?;
    let (key, prefix) = keys::generate()?;
    let now = now_ms();
    let after = json!({"id": tenant_id, "name": name, "admin_key_id": key_id});
    let admin_key = NewKey {
        id: &key_id,
        name: "admin",
        role: Role::Admin,
        key: &key,
        prefix: &prefix,
    };
    let change = Change::created("tenant.create", ("tenant", tenant_id.as_str()), &after);
    tenants::insert(&app.db()?, &tenant_id, &name, now, &admin_key, who, &change).await?;
    Ok(json_response(
        201,
        &json!({
            "id": tenant_id, "name": name, "created_at": rfc3339(now),
            "api_key": {"id": key_id, "name": "admin", "role": "admin", "prefix": prefix, "key": key},
        }),
    ))
}

pub(super) async fn list(req: &Request, app: &App) -> ApiResult {
    let window = page(&query(req)?)?;
    list_response(tenants::list(&app.db()?, &window).await?, render)
}

/// `PATCH /api/v1/tenants/{id}`: the tenant's own `quotas` (`max_concurrent_calls`,
/// `monthly_minutes`; 0 unlimited, `null` back to the deployment's `QUOTA_*` default).
pub(super) async fn update(req: &mut Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let body = json_body(req).await?;
    let patch = match body.get("quotas") {
        Some(quotas) => parse_quotas(quotas).map_err(field_errors)?,
        None => {
            return Err(invalid_fields(json!([field_error(
                "quotas",
                "required",
                "quotas is the one setting a tenant has"
            )])))
        }
    };
    let db = app.db()?;
    if !usage::set_quotas(&db, id, patch).await? {
        return Err(ApiError::not_found(format!("no tenant {id}")));
    }
    let tenant = Tenant::on(&db, TenantId::from(id));
    let standing = usage::standing(&tenant, &month_start(now_ms())).await?;
    let after = json!({"id": id, "quotas": {
        "max_concurrent_calls": standing.max_concurrent_calls,
        "monthly_minutes": standing.monthly_minutes,
    }});
    audit::log(
        app,
        who,
        &Change::done("tenant.update", ("tenant", id), Some(&after)),
    )
    .await;
    Ok(json_response(200, &after))
}
