//! The request helpers every resource shares: JSON bodies, query parameters, field errors,
//! pages.

use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, read_body, ApiError, ApiResult};
use crate::store::audit::{self, Change};
use crate::store::page::{self, Filtered};
pub use crate::store::page::{Page, PageOf};
use crate::store::tenant::Tenant;
use phone_agent_core::json::whole_numbers;
use phone_agent_core::limits::API_BODY_LIMIT;
use phone_agent_core::pagination::{self, Cursor, PageError};
use serde_json::{json, Value};
use std::collections::HashMap;
use worker::Request;

/// Reads a JSON object body: 413 past [`API_BODY_LIMIT`] (streamed, never read further), 415
/// without a JSON content type, 400 if malformed or not an object. An empty body reads as `{}`;
/// whole numbers written as `5.0` read as `5`.
pub async fn json_body(req: &mut Request) -> Result<Value, ApiError> {
    json_body_limited(req, API_BODY_LIMIT).await
}

/// [`json_body`] with its own size limit (a campaign's contact list is far above the API's).
pub async fn json_body_limited(req: &mut Request, limit: usize) -> Result<Value, ApiError> {
    let bytes = read_body(req, limit).await?;
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    let content_type = req.headers().get("content-type")?.unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "request bodies must be application/json",
        ));
    }
    let mut value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(400, "invalid_json", format!("body is not valid JSON: {e}")))?;
    whole_numbers(&mut value);
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::new(
            400,
            "invalid_json",
            "body must be a JSON object",
        ))
    }
}

/// Query parameters (last value wins).
pub fn query(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    Ok(req.url()?.query_pairs().into_owned().collect())
}

/// 422 listing every invalid field: `[{field, code, message}]`.
pub fn invalid_fields(fields: Value) -> ApiError {
    ApiError::new(422, "invalid_fields", "some fields are invalid").with_details(fields)
}

/// 422 listing `errors`, unless there are none.
pub fn no_field_errors(errors: Vec<Value>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_fields(Value::from(errors)))
    }
}

/// One field error in the shape of [`invalid_fields`].
pub fn field_error(field: &str, code: &str, message: impl Into<String>) -> Value {
    json!({"field": field, "code": code, "message": message.into()})
}

/// `row`, or 404 `no <what> <id>`.
pub fn found<T>(row: Option<T>, what: &str, id: &str) -> Result<T, ApiError> {
    row.ok_or_else(|| ApiError::not_found(format!("no {what} {id}")))
}

/// Reads `limit` and `cursor`; a bad value is a 400 naming it.
pub fn page(query: &HashMap<String, String>) -> Result<Page, ApiError> {
    let bad = |e: PageError| ApiError::new(400, "invalid_pagination", e.to_string());
    let limit = pagination::limit(query.get("limit").map(String::as_str)).map_err(bad)?;
    let after = query
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| Cursor::decode(c))
        .transpose()
        .map_err(bad)?;
    Ok(Page { limit, after })
}

/// The list query parameter `name` as a time bound in ms (the core's `time_bound`); an
/// invalid one is added to `errors` as `invalid_time`.
pub fn time_bound(
    query: &HashMap<String, String>,
    name: &str,
    errors: &mut Vec<Value>,
) -> Option<i64> {
    pagination::time_bound(name, query.get(name).map(String::as_str)).unwrap_or_else(|e| {
        errors.push(field_error(name, "invalid_time", e.to_string()));
        None
    })
}

/// Answers 200 with `after`, the resource (type, id) as a change left it, once the change from
/// `before` is in the audit log as `action`.
pub async fn audited_update(
    app: &App,
    who: &Principal,
    action: &str,
    resource: (&str, &str),
    before: &Value,
    after: Value,
) -> ApiResult {
    audit::log(app, who, &Change::updated(action, resource, before, &after)).await;
    Ok(json_response(200, &after))
}

/// Answers 200 `{id, deleted: true}` for the resource (type, id), which was `before`, once its
/// deletion is in the audit log as `action`.
pub async fn audited_delete(
    app: &App,
    who: &Principal,
    action: &str,
    resource: (&str, &str),
    before: &Value,
) -> ApiResult {
    audit::log(app, who, &Change::deleted(action, resource, before)).await;
    Ok(json_response(
        200,
        &json!({"id": resource.1, "deleted": true}),
    ))
}

/// `{data, next_cursor}` for one page of the caller's `T`s, filtered by the query parameters
/// named like `T`'s filter columns.
pub async fn list_of<T: Filtered>(
    req: &Request,
    app: &App,
    who: &Principal,
    render: impl Fn(&T) -> Value,
) -> ApiResult {
    let q = query(req)?;
    let window = page(&q)?;
    let tenant = Tenant::of(app, who)?;
    let rows = page::filtered(&tenant, |c| q.get(c).map(String::as_str), &window).await?;
    list_response(rows, render)
}

/// `{data, next_cursor}` for one page of rows.
pub fn list_response<T>(page: PageOf<T>, render: impl Fn(&T) -> Value) -> ApiResult {
    let data: Vec<Value> = page.rows.iter().map(render).collect();
    Ok(json_response(
        200,
        &json!({"data": data, "next_cursor": page.next_cursor}),
    ))
}
