//! `/api/v1/campaigns`: create a campaign from a contact list (JSON `contacts` or CSV text in
//! `csv`, up to 100,000 rows), read it with its progress, pause / resume / cancel it, list its
//! rows (per-row errors included) and export its results as CSV. Dialling is the scheduler's
//! (`scheduling/campaigns.rs`).

use crate::api::agents::field_errors;
use crate::api::numbers::{caller_id, no_caller_id};
use crate::api::request::{
    audited_update, field_error, found, invalid_fields, json_body_limited, list_response, page,
    query,
};
use crate::pipeline::call_status::{self, Change};
use crate::pipeline::campaigns::emit;
use crate::platform::alarm;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_id, now_ms, rfc3339, ApiError, ApiResult};
use crate::platform::zones::IntlZones;
use crate::store::agents;
use crate::store::audit;
use crate::store::campaigns::{self, Campaign, ContactRow, Count, NewCampaign};
use crate::store::tenant::Tenant;
use phone_agent_core::agents::allowed_countries;
use phone_agent_core::campaigns::{
    export_csv, parse_campaign, ContactStatus, Control, ExportLine, RowError, RowRules,
    MAX_IMPORT_BYTES,
};
use phone_agent_core::dialing::DialPolicy;
use phone_agent_core::features::check_schedule;
use phone_agent_core::ids::CampaignId;
use phone_agent_core::scheduling::{CallProvider, CallStatus};
use phone_agent_core::template;
use serde_json::{json, Map, Value};
use worker::{Request, Response};

/// Row errors returned in the create answer (all of them are in the contacts list).
const ERRORS_SHOWN: usize = 100;
/// Rows read per query while exporting.
const EXPORT_PAGE: i64 = 2000;

fn progress(counts: &[Count], id: &CampaignId) -> Value {
    // Inserted rather than collected: each `collect` into a map compiles a sort.
    let mut progress = Map::new();
    for status in ContactStatus::ALL {
        progress.insert(status.as_str().to_owned(), json!(0));
    }
    progress.insert("invalid".into(), json!(0));
    for c in counts.iter().filter(|c| &c.campaign_id == id) {
        progress.insert(c.status.clone(), json!(c.n));
    }
    Value::Object(progress)
}

fn render(c: &Campaign, counts: &[Count]) -> Value {
    json!({
        "id": c.id,
        "agent_id": c.agent_id,
        "name": c.name,
        "status": c.status,
        "window": serde_json::from_str::<Value>(&c.window).unwrap_or(Value::Null),
        "pacing": {"calls_per_minute": c.calls_per_minute, "max_concurrent": c.max_concurrent},
        "provider": c.provider,
        "from": c.from_number,
        "total_rows": c.total_rows,
        "invalid_rows": c.invalid_rows,
        "progress": progress(counts, &c.id),
        "next_tick_at": (c.status == "active").then(|| rfc3339(c.next_tick_at)),
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "ended_at": c.ended_at.map(rfc3339),
    })
}

fn render_error(e: &RowError) -> Value {
    json!({"line": e.line, "code": e.code, "message": e.reason, "phone": e.phone})
}

fn render_contact(r: &ContactRow) -> Value {
    json!({
        "line": r.line,
        "phone": r.phone.as_ref().or(r.given_phone.as_ref()),
        "name": r.name,
        "email": r.email,
        "time_zone": r.time_zone,
        "vars": serde_json::from_str::<Value>(&r.vars).unwrap_or_else(|_| json!({})),
        "status": r.status,
        "error": r.error_code.as_ref().map(|code| json!({"code": code, "message": r.error})),
        "attempts": r.attempts,
        "next_attempt_at": (r.status == "pending" && r.next_attempt_at > 0)
            .then(|| rfc3339(r.next_attempt_at)),
        "call_id": r.call_id,
        "last_dial_at": r.last_dial_at.map(rfc3339),
        "updated_at": rfc3339(r.updated_at),
    })
}

async fn find(tenant: &Tenant, id: &str) -> Result<Campaign, ApiError> {
    found(campaigns::get(tenant, id).await?, "campaign", id)
}

async fn rendered(tenant: &Tenant, campaign: &Campaign) -> Result<Value, ApiError> {
    let counts = campaigns::counts(tenant, &[&campaign.id]).await?;
    Ok(render(campaign, &counts))
}

pub(super) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let config = app.config()?;
    let origin = req.url()?.origin().ascii_serialization();
    let body = json_body_limited(req, MAX_IMPORT_BYTES).await?;
    let request = parse_campaign(&body, &IntlZones).map_err(field_errors)?;
    let tenant = Tenant::of(app, who)?;
    let Some(agent) = agents::get(&tenant, &request.agent_id).await? else {
        return Err(invalid_fields(json!([field_error(
            "agent_id",
            "unknown_agent",
            format!("no agent {}", request.agent_id)
        )])));
    };
    let agent_config: Value = serde_json::from_str(&agent.config).unwrap_or(Value::Null);
    let policy =
        allowed_countries(&agent_config).map_or_else(DialPolicy::anywhere, DialPolicy::only);
    let from = caller_id(
        &tenant,
        &agent.id,
        request.from.as_ref(),
        config.default_from_number.as_ref(),
    )
    .await?;
    let Some(from) = from else {
        return Err(no_caller_id());
    };
    check_schedule(
        config,
        request.provider,
        body.get("provider").is_some_and(|p| !p.is_null()),
        false,
    )?;
    // What the prompt and greeting need (no `| default`): every name is a candidate, the rows
    // then say which they lack.
    let required = template::missing_contact_fields(
        &[
            &agent.system_prompt,
            agent.first_message.as_deref().unwrap_or_default(),
        ],
        |_| false,
    );
    let rules = RowRules {
        zones: &IntlZones,
        default_zone: request.window.time_zone.map(|z| z.name()),
        policy: &policy,
        required_fields: &required,
    };
    let import = request.contacts.read(&rules).map_err(|e| {
        let status = if e.is_too_large() { 413 } else { 422 };
        ApiError::new(status, e.code(), e.to_string())
    })?;
    if import.contacts.is_empty() {
        let errors: Vec<Value> = import
            .errors
            .iter()
            .take(ERRORS_SHOWN)
            .map(render_error)
            .collect();
        return Err(ApiError::new(
            422,
            "no_valid_contacts",
            "no row of the contact list can be dialled",
        )
        .with_details(json!(errors)));
    }
    let base_url = config.public_base_url.clone().unwrap_or(origin);
    let id: CampaignId = new_id()?;
    let now = now_ms();
    let window = request.window.to_json();
    let campaign = NewCampaign {
        id: &id,
        agent_id: &agent.id,
        name: &request.name,
        window: &window,
        calls_per_minute: request.pacing.calls_per_minute,
        max_concurrent: request.pacing.max_concurrent,
        provider: CallProvider::from(request.provider),
        from_number: Some(&from),
        base_url: &base_url,
        now,
    };
    let statements =
        campaigns::insert(&tenant, &campaign, &import.contacts, &import.errors).await?;
    app.log_field("import_statements", statements);
    let stored = find(&tenant, id.as_str()).await?;
    let db = app.db()?;
    let key = format!("{id}:started");
    emit(
        &app.env,
        &db,
        &stored,
        "campaign.started",
        &key,
        json!({"status": "active", "contacts": import.contacts.len()}),
        now,
    )
    .await?;
    alarm::wake_at(&app.env, now).await;
    let mut after = rendered(&tenant, &stored).await?;
    audit::log(
        app,
        who,
        &audit::Change::created("campaign.create", ("campaign", id.as_str()), &after),
    )
    .await;
    after["import"] = json!({
        "contacts": import.contacts.len(),
        "invalid": import.errors.len(),
        "errors": import.errors.iter().take(ERRORS_SHOWN).map(render_error).collect::<Vec<_>>(),
        "errors_truncated": import.errors.len() > ERRORS_SHOWN,
    });
    Ok(json_response(201, &after))
}

pub(super) async fn list(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let window = page(&query(req)?)?;
    let tenant = Tenant::of(app, who)?;
    let rows = campaigns::list(&tenant, &window).await?;
    let ids: Vec<&CampaignId> = rows.rows.iter().map(|c| &c.id).collect();
    let counts = campaigns::counts(&tenant, &ids).await?;
    list_response(rows, |c| render(c, &counts))
}

pub(super) async fn get(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let campaign = find(&tenant, id).await?;
    Ok(json_response(200, &rendered(&tenant, &campaign).await?))
}

/// Pause, resume or cancel: a repeated request answers the campaign as it is; a finished
/// campaign (or resuming a canceled one) is a 409. A cancel also cancels the campaign's calls
/// not yet dialled.
pub(super) async fn control(app: &App, who: &Principal, id: &str, control: Control) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let campaign = find(&tenant, id).await?;
    let before = rendered(&tenant, &campaign).await?;
    let from = phone_agent_core::campaigns::CampaignStatus::parse(&campaign.status)
        .ok_or_else(|| ApiError::internal("stored campaign status unknown"))?;
    let Some(to) = control.apply(from) else {
        return Err(ApiError::new(
            409,
            "not_modifiable",
            format!("campaign {id} is {}", campaign.status),
        ));
    };
    if to == from {
        return Ok(json_response(200, &before));
    }
    let now = now_ms();
    if !campaigns::set_status(&tenant, &campaign.id, (from.as_str(), to.as_str()), now).await? {
        let current = find(&tenant, id).await?;
        return Err(ApiError::new(
            409,
            "not_modifiable",
            format!("campaign {id} is {} (changed meanwhile)", current.status),
        ));
    }
    let db = app.db()?;
    if control == Control::Cancel {
        for call_id in campaigns::scheduled_calls(&tenant, &campaign.id).await? {
            let change = Change {
                to: CallStatus::Canceled,
                source: "api",
                detail: json!({"reason": "campaign canceled", "campaign_id": campaign.id}),
                attempt: None,
                due_by: None,
                emit: true,
            };
            call_status::apply(&app.env, &db, &call_id, &change, now).await?;
        }
    }
    let key = format!("{}:{}:{now}", campaign.id, to.as_str());
    emit(
        &app.env,
        &db,
        &campaign,
        control.event_type(),
        &key,
        json!({"status": to.as_str()}),
        now,
    )
    .await?;
    if control == Control::Resume {
        alarm::wake_at(&app.env, now).await;
    }
    let after = rendered(&tenant, &find(&tenant, id).await?).await?;
    let action = match control {
        Control::Pause => "campaign.pause",
        Control::Resume => "campaign.resume",
        Control::Cancel => "campaign.cancel",
    };
    audited_update(app, who, action, ("campaign", id), &before, after).await
}

/// The campaign's rows by line (last line first), `status` narrowing them (`invalid`: the rows
/// that could not be read, each with its error).
pub(super) async fn contacts(req: &Request, app: &App, who: &Principal, id: &str) -> ApiResult {
    let q = query(req)?;
    let window = page(&q)?;
    let status = q
        .get("status")
        .filter(|s| !s.is_empty())
        .map(String::as_str);
    if let Some(s) = status {
        if ContactStatus::parse(s).is_none() && s != "invalid" {
            return Err(invalid_fields(json!([field_error(
                "status",
                "invalid_value",
                "status is pending, in_progress, completed, no_answer, failed, opted_out, canceled or invalid"
            )])));
        }
    }
    let tenant = Tenant::of(app, who)?;
    let campaign = find(&tenant, id).await?;
    let rows = campaigns::contacts(&tenant, &campaign.id, status, &window).await?;
    list_response(rows, render_contact)
}

/// `text/csv`: every row with its status, and what its call came to (outcome, duration,
/// analysis fields).
pub(super) async fn export(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let campaign = find(&tenant, id).await?;
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let rows = campaigns::export_rows(&tenant, &campaign.id, after, EXPORT_PAGE).await?;
        let done = (rows.len() as i64) < EXPORT_PAGE;
        if let Some(last) = rows.last() {
            after = last.line;
        }
        lines.extend(rows.into_iter().map(|r| ExportLine {
            line: r.line,
            phone: r.phone,
            name: r.name,
            email: r.email,
            status: r.status,
            attempts: r.attempts,
            call_id: r.call_id,
            outcome: r.outcome,
            duration_seconds: r.duration_seconds,
            error: r.error,
            analysis: r.analysis.and_then(|a| serde_json::from_str(&a).ok()),
        }));
        if done {
            break;
        }
    }
    let mut response = Response::builder()
        .with_status(200)
        .fixed(export_csv(&lines).into_bytes());
    let headers = response.headers_mut();
    let _ = headers.set("content-type", "text/csv; charset=utf-8");
    let _ = headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{}.csv\"", campaign.id),
    );
    Ok(response)
}
