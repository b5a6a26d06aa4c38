//! Scheduling, rescheduling and cancelling a call: each change is one D1 batch (see `calls.rs`).

use super::row::{agent_name, find, Row, COLUMNS};
use crate::api::agents::field_errors;
use crate::api::request::{field_error, invalid_fields, json_body};
use crate::pipeline::call_status::{self, Applied, Change};
use crate::platform::alarm;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{
    json_response, log_line, new_id, now_ms, rfc3339, ApiError, ApiResult,
};
use crate::platform::zones::IntlZones;
use crate::scheduling::bland;
use crate::scheduling::emails::{self, EmailFacts};
use crate::store::agents;
use crate::store::audit;
use crate::store::db;
use crate::store::numbers;
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::agents::allowed_countries;
use phone_agent_core::dialing::DialPolicy;
use phone_agent_core::scheduling::email::EmailKind;
use phone_agent_core::scheduling::request::{
    parse_reschedule, parse_schedule, request_fingerprint, DialProvider, FieldError,
};
use phone_agent_core::scheduling::CallStatus;
use serde_json::{json, Value};
use worker::Request;

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The same `Idempotency-Key` with the same body is the same call; with another body, a 409.
fn replay_or_conflict(existing: &Row, fingerprint: &str) -> ApiResult {
    if existing.request_hash.as_deref() == Some(fingerprint) {
        let mut response = json_response(201, &existing.render());
        let _ = response.headers_mut().set("idempotent-replayed", "true");
        Ok(response)
    } else {
        Err(ApiError::new(
            409,
            "idempotency_conflict",
            "this Idempotency-Key was used with a different request body",
        ))
    }
}

pub(in crate::api) async fn create(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let config = app.config()?;
    let idempotency_key = match req.headers().get("idempotency-key")? {
        None => None,
        Some(k) if !k.trim().is_empty() && k.trim().len() <= MAX_IDEMPOTENCY_KEY => {
            Some(k.trim().to_owned())
        }
        Some(_) => {
            return Err(ApiError::new(
                400,
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
            ))
        }
    };
    let origin = req.url()?.origin().ascii_serialization();
    let body = json_body(req).await?;
    let fingerprint = request_fingerprint(&body);
    let db = app.db()?;
    let by_key = format!("SELECT {COLUMNS} FROM calls WHERE tenant_id = ? AND idempotency_key = ?");
    if let Some(key) = &idempotency_key {
        if let Some(existing) = db::first::<Row>(&db, &by_key, &[&who.tenant_id, key]).await? {
            return replay_or_conflict(&existing, &fingerprint);
        }
    }

    let now = now_ms();
    let now_utc = DateTime::from_timestamp_millis(now).unwrap_or_default();
    let request = parse_schedule(&body, now_utc, &IntlZones).map_err(field_errors)?;
    let Some(agent) = agents::get(&Tenant::of(app, who)?, &request.agent_id).await? else {
        return Err(invalid_fields(json!([field_error(
            "agent_id",
            "unknown_agent",
            format!("no agent {}", request.agent_id)
        )])));
    };
    // The core refused premium, SIP and withheld numbers; the agent may also limit countries.
    let agent_config: Value = serde_json::from_str(&agent.config).unwrap_or(Value::Null);
    if let Some(countries) = allowed_countries(&agent_config) {
        if let Err(refusal) = DialPolicy::only(countries).check(&request.to) {
            return Err(field_errors(vec![FieldError::refused("to", &refusal)]));
        }
    }
    let from = match &request.from {
        Some(from) => Some(from.clone()),
        None => numbers::first_of_agent(&Tenant::of(app, who)?, &agent.id)
            .await?
            .or_else(|| config.default_from_number.clone()),
    };
    if from.is_none() && request.provider != DialProvider::Bland {
        return Err(invalid_fields(json!([field_error(
            "from",
            "required",
            "no caller id: give from, register a number for the agent, or set DEFAULT_FROM_NUMBER"
        )])));
    }
    // Fixed now: the alarm that dials later has no request to take an origin from.
    let base_url = config.public_base_url.clone().unwrap_or(origin);

    let id = new_id("call")?;
    let start_at = request.start_at.timestamp_millis();
    let provider = request.provider.as_str();
    let metadata = request.metadata.to_string();
    let mut statements = vec![
        db::stmt(
            &db,
            "INSERT INTO calls (id, tenant_id, agent_id, direction, provider, status, to_number,
               from_number, start_at, time_zone, contact_name, contact_email, metadata, attempt,
               ics_sequence, idempotency_key, request_hash, base_url, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'outbound', ?4, 'scheduled', ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, 0, ?12,
               ?13, ?14, ?15, ?15)
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
            &[
                &id,
                &who.tenant_id,
                &agent.id,
                &provider,
                &request.to,
                &from,
                &start_at,
                &request.time_zone,
                &request.contact_name,
                &request.contact_email,
                &metadata,
                &idempotency_key,
                &fingerprint,
                &base_url,
                &now,
            ],
        )?,
        db::stmt(
            &db,
            "INSERT INTO call_events (call_id, at, kind, from_status, to_status, source, detail)
             SELECT ?1, ?2, 'status', NULL, 'scheduled', 'api', ?3 WHERE changes() > 0",
            &[
                &id,
                &now,
                &json!({"start_at": rfc3339(start_at), "provider": provider, "attempt": 1})
                    .to_string(),
            ],
        )?,
    ];
    if let Some(to_email) = &request.contact_email {
        let facts = EmailFacts {
            tenant_id: &who.tenant_id,
            call_id: &id,
            to_email,
            to_name: request.contact_name.as_deref(),
            agent_name: &agent.name,
            phone_number: &request.to,
            start_at,
            time_zone: request.time_zone.as_deref(),
        };
        // The call id is fresh: it exists only if this request's insert won.
        statements.extend(emails::enqueue(
            &db,
            config,
            &facts,
            EmailKind::Scheduled,
            0,
            now,
            ("SELECT 1 FROM calls WHERE id = ?", &[&id]),
        )?);
    }
    let changes = db::batch(&db, statements).await?;
    if changes.first().copied().unwrap_or(0) == 0 {
        // A concurrent request with the same key won the insert.
        let key = idempotency_key.unwrap_or_default();
        let existing = db::first::<Row>(&db, &by_key, &[&who.tenant_id, &key])
            .await?
            .ok_or_else(|| ApiError::internal("call neither inserted nor found"))?;
        return replay_or_conflict(&existing, &fingerprint);
    }

    call_status::emit(
        &app.env,
        &db,
        &id,
        "call.scheduled",
        &format!("{id}:scheduled:1"),
        json!({}),
        now,
    )
    .await?;
    after_change(app, &id, start_at, request.provider == DialProvider::Bland);
    let row = find(app, who, &id).await?;
    audit::log(
        app,
        who,
        "call.schedule",
        ("call", &id),
        None,
        Some(&row.render()),
    )
    .await;
    Ok(json_response(201, &row.render()))
}

/// After the answer: send the call's pending emails, arm the scheduler for its start, and hand
/// a Bland call to Bland.
fn after_change(app: &App, call_id: &str, start_at: i64, bland: bool) {
    let env = app.env.clone();
    let call_id = call_id.to_owned();
    app.ctx.wait_until(async move {
        emails::send_for_call(&env, &call_id).await;
        if bland {
            let result = async {
                let db = env.d1("DB")?;
                let config = crate::platform::app::load_config(&env)?;
                bland::submit_bland(&env, &db, &config, &call_id).await
            }
            .await;
            if let Err(e) = result {
                log_line(json!({"level": "error", "msg": "bland submit", "call_id": call_id, "error": e.to_string()}));
            }
        }
        alarm::wake_at(&env, start_at).await;
    });
}

fn not_modifiable(row: &Row) -> ApiError {
    ApiError::new(
        409,
        "not_modifiable",
        format!(
            "call {} is {}; only scheduled calls (not yet dispatched) can change",
            row.id, row.status
        ),
    )
}

pub(in crate::api) async fn reschedule(
    req: &mut Request,
    app: &App,
    who: &Principal,
    id: &str,
) -> ApiResult {
    let body = json_body(req).await?;
    let now = now_ms();
    let now_utc = DateTime::from_timestamp_millis(now).unwrap_or_default();
    let (start, time_zone) = parse_reschedule(&body, now_utc, &IntlZones).map_err(field_errors)?;
    let row = find(app, who, id).await?;
    if row.status != CallStatus::Scheduled.as_str() {
        return Err(not_modifiable(&row));
    }
    let db = app.db()?;
    let start_at = start.timestamp_millis();
    let sequence = row.ics_sequence + 1;
    let mut statements = vec![
        // Compare-and-set on status, sequence and attempt: a dispatch, retry or another
        // reschedule that got there first makes this a 409 instead of a lost update.
        db::stmt(
            &db,
            "UPDATE calls SET start_at = ?1, time_zone = COALESCE(?2, time_zone), ics_sequence = ?3,
               updated_at = ?4, locked_until = NULL, last_error = NULL,
               provider_call_id = CASE WHEN provider = 'bland' THEN NULL ELSE provider_call_id END
             WHERE id = ?5 AND tenant_id = ?6 AND status = 'scheduled' AND ics_sequence = ?7
               AND attempt = ?8",
            &[
                &start_at,
                &time_zone,
                &sequence,
                &now,
                &id,
                &who.tenant_id,
                &row.ics_sequence,
                &row.attempt,
            ],
        )?,
        db::stmt(
            &db,
            "INSERT INTO call_events (call_id, at, kind, from_status, to_status, source, detail)
             SELECT ?1, ?2, 'reschedule', 'scheduled', 'scheduled', 'api', ?3 WHERE changes() > 0",
            &[
                &id,
                &now,
                &json!({"previous_start_at": row.start_at.map(rfc3339), "start_at": rfc3339(start_at),
                        "sequence": sequence, "previous_provider_call_id": row.provider_call_id})
                .to_string(),
            ],
        )?,
    ];
    let name = agent_name(app, who, row.agent_id.as_deref()).await;
    let updated_tz = time_zone.clone().or_else(|| row.time_zone.clone());
    if let Some(mut facts) = row.email_facts(&name) {
        facts.start_at = start_at;
        facts.time_zone = updated_tz.as_deref();
        let sequence_u32 = u32::try_from(sequence).unwrap_or(u32::MAX);
        statements.extend(emails::enqueue(
            &db,
            app.config()?,
            &facts,
            EmailKind::Rescheduled,
            sequence_u32,
            now,
            (
                "SELECT 1 FROM calls WHERE id = ? AND ics_sequence = ? AND updated_at = ?",
                &[&id, &sequence, &now],
            ),
        )?);
    }
    let changes = db::batch(&db, statements).await?;
    if changes.first().copied().unwrap_or(0) == 0 {
        let current = find(app, who, id).await?;
        return Err(not_modifiable(&current));
    }
    let bland = row.provider == DialProvider::Bland.as_str();
    if let (true, Some(old)) = (bland, row.provider_call_id.clone()) {
        stop_bland_later(app, id, old);
    }
    call_status::emit(
        &app.env,
        &db,
        id,
        "call.rescheduled",
        &format!("{id}:rescheduled:{sequence}"),
        json!({"previous_start_at": row.start_at.map(rfc3339), "sequence": sequence}),
        now,
    )
    .await?;
    after_change(app, id, start_at, bland);
    let after = find(app, who, id).await?;
    audit::log(
        app,
        who,
        "call.reschedule",
        ("call", id),
        Some(&row.render()),
        Some(&after.render()),
    )
    .await;
    Ok(json_response(200, &after.render()))
}

/// Stops a call Bland has scheduled, after the answer; a failure is kept in the call's history.
fn stop_bland_later(app: &App, call_id: &str, bland_call_id: String) {
    let env = app.env.clone();
    let call_id = call_id.to_owned();
    app.ctx.wait_until(async move {
        let result = async {
            let config = crate::platform::app::load_config(&env).map_err(|e| e.to_string())?;
            bland::stop_bland(&config, &bland_call_id).await
        }
        .await;
        let detail = json!({"bland_call_id": bland_call_id, "stopped": result.is_ok(),
                            "error": result.as_ref().err()});
        let recorded = async {
            let db = env.d1("DB")?;
            db::run(
                &db,
                "INSERT INTO call_events (call_id, at, kind, source, detail) VALUES (?, ?, 'note', 'api', ?)",
                &[&call_id, &now_ms(), &detail.to_string()],
            )
            .await
        }
        .await;
        if let Err(e) = recorded {
            log_line(json!({"level": "error", "msg": "bland stop", "call_id": call_id, "error": e.to_string()}));
        }
    });
}

pub(in crate::api) async fn cancel(app: &App, who: &Principal, id: &str) -> ApiResult {
    let row = find(app, who, id).await?;
    if row.status == CallStatus::Canceled.as_str() {
        return Ok(json_response(200, &row.render()));
    }
    let db = app.db()?;
    let now = now_ms();
    let change = Change {
        to: CallStatus::Canceled,
        source: "api",
        detail: json!({}),
        attempt: Some(row.attempt),
        due_by: None,
        emit: true,
    };
    // Only `scheduled` may become `canceled` here; the state machine and the compare-and-set
    // decide against a dispatch racing this request.
    let applied = if row.status == CallStatus::Scheduled.as_str() {
        call_status::apply(&app.env, &db, id, &change, now).await?
    } else {
        Applied::Unchanged
    };
    if applied != Applied::Moved(CallStatus::Scheduled) {
        let current = find(app, who, id).await?;
        if current.status == CallStatus::Canceled.as_str() {
            return Ok(json_response(200, &current.render()));
        }
        return Err(not_modifiable(&current));
    }
    let sequence = row.ics_sequence + 1;
    let mut statements = vec![db::stmt(
        &db,
        "UPDATE calls SET ics_sequence = ? WHERE id = ?",
        &[&sequence, &id],
    )?];
    let name = agent_name(app, who, row.agent_id.as_deref()).await;
    if let Some(facts) = row.email_facts(&name) {
        statements.extend(emails::enqueue(
            &db,
            app.config()?,
            &facts,
            EmailKind::Canceled,
            u32::try_from(sequence).unwrap_or(u32::MAX),
            now,
            ("SELECT 1 FROM calls WHERE id = ?", &[&id]),
        )?);
    }
    db::batch(&db, statements).await?;
    if let (true, Some(old)) = (
        row.provider == DialProvider::Bland.as_str(),
        row.provider_call_id.clone(),
    ) {
        stop_bland_later(app, id, old);
    }
    let env = app.env.clone();
    let call_id = id.to_owned();
    app.ctx
        .wait_until(async move { emails::send_for_call(&env, &call_id).await });
    let after = find(app, who, id).await?;
    audit::log(
        app,
        who,
        "call.cancel",
        ("call", id),
        Some(&row.render()),
        Some(&after.render()),
    )
    .await;
    Ok(json_response(200, &after.render()))
}
