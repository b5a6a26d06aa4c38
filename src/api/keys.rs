//! `/api/v1/api-keys`: keys of the caller's tenant. A key is shown once, at creation; only
//! its SHA-256 is stored, so a leaked table reveals no usable key.

use super::request::{field_error, found, invalid_fields, json_body, list_of};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, new_secret, rfc3339, ApiError, ApiResult};
use crate::store::audit::Change;
use crate::store::keys::{self, ApiKey, NewKey};
use crate::store::tenant::Tenant;
use phone_agent_core::auth::Role;
use phone_agent_core::ids::KeyId;
use serde_json::{json, Value};
use worker::Request;

/// The API shape of a key (never the key itself, nor its hash).
fn render(k: &ApiKey) -> Value {
    json!({
        "id": k.id, "name": k.name, "role": k.role, "prefix": k.prefix,
        "created_at": rfc3339(k.created_at),
        "last_used_at": k.last_used_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
    })
}

/// A new secret key and its displayable prefix: `pa_live_` + 128 random bits.
pub fn generate() -> Result<(String, String), ApiError> {
    let key = new_secret("pa_live")?;
    let prefix = key.chars().take(12).collect();
    Ok((key, prefix))
}

/// Parses `{name, role}` for a new key.
pub fn parse_new_key(body: &Value) -> Result<(String, Role), ApiError> {
    let mut errors = Vec::new();
    let name = match body.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 100 => n.to_owned(),
        _ => {
            errors.push(field_error(
                "name",
                "required",
                "name is a non-empty string of at most 100 bytes",
            ));
            String::new()
        }
    };
    let role = match body.get("role") {
        None | Some(Value::Null) => Some(Role::Viewer),
        Some(v) => serde_json::from_value::<Role>(v.clone()).ok(),
    };
    if role.is_none() {
        errors.push(field_error(
            "role",
            "invalid_value",
            "role is admin, operator or viewer",
        ));
    }
    match role {
        Some(role) if errors.is_empty() => Ok((name, role)),
        _ => Err(invalid_fields(Value::from(errors))),
    }
}

pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let body = json_body(req).await?;
    let (name, role) = parse_new_key(&body)?;
    let (key, prefix) = generate()?;
    let id: KeyId = new_id()?;
    let tenant = Tenant::of(app, who)?;
    let after = json!({"id": id, "name": name, "role": role, "prefix": prefix});
    let new_key = NewKey {
        id: &id,
        name: &name,
        role,
        key: &key,
        prefix: &prefix,
    };
    let change = Change::created("api_key.create", ("api_key", id.as_str()), &after);
    keys::insert(&tenant, &new_key, who, &change).await?;
    let mut body = render(&find(&tenant, id.as_str()).await?);
    body["key"] = Value::String(key);
    Ok(json_response(201, &body))
}

async fn find(tenant: &Tenant, id: &str) -> Result<ApiKey, ApiError> {
    found(keys::get(tenant, id).await?, "api key", id)
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let key = find(&Tenant::of(app, who)?, id).await?;
    Ok(json_response(200, &render(&key)))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    list_of::<ApiKey>(req, app, who, render).await
}

pub(super) async fn revoke(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let before = render(&find(&tenant, id).await?);
    let change = Change {
        action: "api_key.revoke",
        resource_type: "api_key",
        resource_id: Some(id),
        before: Some(&before),
        after: None,
    };
    keys::revoke(&tenant, id, who, &change).await?;
    Ok(json_response(200, &render(&find(&tenant, id).await?)))
}
