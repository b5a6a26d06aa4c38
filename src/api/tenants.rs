//! `/api/v1/tenants`: only the bootstrap `ADMIN_API_KEY` creates tenants; each new tenant
//! gets its first admin key, shown once.

use super::keys;
use super::request::{field_error, invalid_fields, json_body, page, query, rows_response};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, now_ms, rfc3339, ApiResult};
use crate::store::audit::{self, Change};
use crate::store::db;
use phone_agent_core::auth::Role;
use phone_agent_core::pagination::Cursor;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Request;

#[derive(Deserialize)]
struct Row {
    id: String,
    name: String,
    created_at: i64,
}

impl Row {
    fn render(&self) -> Value {
        json!({"id": self.id, "name": self.name, "created_at": rfc3339(self.created_at)})
    }
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
    let tenant_id = new_id("ten")?;
    let key_id = new_id("key")?;
    let (key, prefix) = keys::generate()?;
    let now = now_ms();
    let db = app.db()?;
    let after = json!({"id": tenant_id, "name": name, "admin_key_id": key_id});
    db::batch(
        &db,
        vec![
            db::stmt(
                &db,
                "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
                &[&tenant_id, &name, &now],
            )?,
            keys::insert(
                &db,
                &tenant_id,
                &key_id,
                "admin",
                Role::Admin,
                &key,
                &prefix,
            )?,
            audit::statement(
                &db,
                who,
                &Change {
                    action: "tenant.create",
                    resource_type: "tenant",
                    resource_id: Some(&tenant_id),
                    before: None,
                    after: Some(&after),
                },
            )?,
        ],
    )
    .await?;
    Ok(json_response(
        201,
        &json!({
            "id": tenant_id, "name": name, "created_at": rfc3339(now),
            "api_key": {"id": key_id, "name": "admin", "role": "admin", "prefix": prefix, "key": key},
        }),
    ))
}

pub(super) async fn list(req: &Request, app: &App) -> ApiResult {
    let page = page(&query(req)?)?;
    let (at, id) = page.bounds();
    let rows: Vec<Row> = db::all(
        &app.db()?,
        "SELECT id, name, created_at FROM tenants WHERE (created_at, id) < (?, ?)
         ORDER BY created_at DESC, id DESC LIMIT ?",
        &[&at, &id, &page.fetch()],
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
