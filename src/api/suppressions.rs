//! `/api/v1/suppressions`: the numbers the tenant must not message or call. Recipients add
//! themselves with an opt-out keyword (`gateway/sms.rs`); operators add and lift entries here.

use super::agents::field_errors;
use super::request::{audited_delete, json_body, list_response, page, query};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, ApiError, ApiResult};
use crate::store::audit::{self, Change};
use crate::store::suppressions::{self, Suppression};
use crate::store::tenant::Tenant;
use phone_agent_core::sms::{parse_suppression, phone_from_path, SOURCE_OPERATOR};
use serde_json::{json, Value};
use worker::Request;

/// The API shape of a suppression.
fn render(s: &Suppression) -> Value {
    json!({"phone": s.id, "source": s.source, "created_at": s.created_at})
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let window = page(&query(req)?)?;
    let rows = suppressions::list(&Tenant::of(app, who)?, &window).await?;
    list_response(rows, render)
}

/// Adds `{phone}`: 201 when new, 200 with the existing entry when it was already suppressed.
pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let phone = parse_suppression(&json_body(req).await?).map_err(field_errors)?;
    let tenant = Tenant::of(app, who)?;
    if let Some(added) = suppressions::add(&tenant, &phone, SOURCE_OPERATOR).await? {
        let after = render(&added);
        audit::log(
            app,
            who,
            &Change::created("suppression.create", ("suppression", &phone), &after),
        )
        .await;
        return Ok(json_response(201, &after));
    }
    let existing = suppressions::get(&tenant, &phone)
        .await?
        .ok_or_else(|| ApiError::internal("a suppression vanished while being added"))?;
    Ok(json_response(200, &render(&existing)))
}

/// Lifts the suppression of the path's phone (`+` written as is or as `%2B`).
pub(super) async fn delete(app: &App, who: &Principal, segment: &str) -> ApiResult {
    let not_found = || ApiError::not_found(format!("no suppression {segment}"));
    let phone = phone_from_path(segment).ok_or_else(not_found)?;
    let tenant = Tenant::of(app, who)?;
    let before = suppressions::get(&tenant, &phone)
        .await?
        .ok_or_else(not_found)?;
    suppressions::remove(&tenant, &phone).await?;
    audited_delete(
        app,
        who,
        "suppression.delete",
        ("suppression", &phone),
        &render(&before),
    )
    .await
}
