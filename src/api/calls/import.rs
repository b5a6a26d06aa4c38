//! Calendar import: `POST /api/v1/calls?agent_id=…` with a `text/calendar` body schedules one
//! call per VEVENT, read by the core's `ical` reader (`ical::import` turns each event into the
//! JSON body a single call takes, so every rule of scheduling applies). The event's UID is kept
//! on the call: importing it again moves that call instead of adding one.

use super::row::render;
use super::schedule::{move_call, schedule_one};
use crate::api::request::{audited_update, field_error, invalid_fields, query};
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, now_ms, read_body, ApiError, ApiResult};
use crate::platform::zones::{self, IntlZones};
use crate::store::agents;
use crate::store::calls::{self, Call};
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::ical::import::{self, Planned, MAX_IMPORT_BYTES};
use phone_agent_core::ical::{self};
use phone_agent_core::scheduling::request::parse_schedule;
use serde_json::{json, Value};
use worker::Request;

/// Whether the body is an iCalendar file (`Content-Type: text/calendar`).
pub(super) fn is_calendar(req: &Request) -> Result<bool, ApiError> {
    let content_type = req.headers().get("content-type")?.unwrap_or_default();
    Ok(content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/calendar")))
}

/// What became of one event.
enum Outcome {
    Created(Call),
    Updated(Call),
    Unchanged(Call),
    Refused {
        code: String,
        message: String,
        field: Option<String>,
    },
}

/// The refusal an API error stands for (a field error names the field).
fn refused(e: ApiError) -> Outcome {
    let first = e
        .details
        .as_ref()
        .and_then(Value::as_array)
        .and_then(|list| list.first());
    match first {
        Some(f) if e.code == "invalid_fields" => Outcome::Refused {
            code: f["code"].as_str().unwrap_or(e.code).to_owned(),
            message: f["message"].as_str().unwrap_or(&e.message).to_owned(),
            field: f["field"].as_str().map(str::to_owned),
        },
        _ => Outcome::Refused {
            code: e.code.to_owned(),
            message: e.message,
            field: None,
        },
    }
}

/// `POST /api/v1/calls` with a `text/calendar` body; `agent_id` (and `time_zone` for floating
/// times) in the query. 200 with the outcome of each event; 413 past [`MAX_IMPORT_BYTES`]; 422
/// `invalid_calendar` naming the line of a malformed file.
pub(super) async fn import(req: &mut Request, app: &App, who: &Principal) -> ApiResult {
    let params = query(req)?;
    let origin = req.url()?.origin().ascii_serialization();
    let bytes = read_body(req, MAX_IMPORT_BYTES).await?;
    let mut errors = Vec::new();
    let agent_id = params
        .get("agent_id")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    if agent_id.is_none() {
        errors.push(field_error(
            "agent_id",
            "required",
            "the agent that makes the imported calls: ?agent_id=…",
        ));
    }
    let floating = match params.get("time_zone") {
        None => None,
        Some(name) => {
            let zone = zones::zone(Some(name));
            if zone.is_none() {
                errors.push(field_error(
                    "time_zone",
                    "unknown_time_zone",
                    format!("{name:?} is not an IANA time zone"),
                ));
            }
            zone
        }
    };
    let Some(agent_id) = agent_id.filter(|_| errors.is_empty()) else {
        return Err(invalid_fields(Value::from(errors)));
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        invalid_calendar(line, "not UTF-8 text")
    })?;
    let doc = ical::read(&text).map_err(|e| invalid_calendar(e.line, &e.reason))?;
    let planned = import::plan(&doc, &IntlZones, agent_id, floating)
        .map_err(|e| ApiError::new(413, "too_many_events", e.to_string()))?;
    let tenant = Tenant::of(app, who)?;
    if agents::get(&tenant, agent_id).await?.is_none() {
        return Err(invalid_fields(json!([field_error(
            "agent_id",
            "unknown_agent",
            format!("no agent {agent_id}")
        )])));
    }
    let mut events = Vec::with_capacity(planned.len());
    let mut counts = [0usize; 4];
    for event in &planned {
        let outcome = one(app, who, &tenant, event, &origin).await;
        let (index, result) = match &outcome {
            Outcome::Created(_) => (0, "created"),
            Outcome::Updated(_) => (1, "updated"),
            Outcome::Unchanged(_) => (2, "unchanged"),
            Outcome::Refused { .. } => (3, "refused"),
        };
        counts[index] += 1;
        let mut entry = json!({"uid": event.uid, "line": event.line, "result": result});
        match outcome {
            Outcome::Created(call) | Outcome::Updated(call) | Outcome::Unchanged(call) => {
                let call = render(&call);
                entry["call_id"] = call["id"].clone();
                entry["start_at"] = call["start_at"].clone();
                entry["status"] = call["status"].clone();
            }
            Outcome::Refused {
                code,
                message,
                field,
            } => entry["error"] = json!({"code": code, "message": message, "field": field}),
        }
        events.push(entry);
    }
    Ok(json_response(
        200,
        &json!({"agent_id": agent_id, "created": counts[0], "updated": counts[1],
                "unchanged": counts[2], "refused": counts[3], "events": events}),
    ))
}

fn invalid_calendar(line: usize, reason: &str) -> ApiError {
    ApiError::new(422, "invalid_calendar", format!("line {line}: {reason}"))
        .with_details(json!({"line": line, "reason": reason}))
}

/// Creates the event's call, or moves the call its UID already has.
async fn one(
    app: &App,
    who: &Principal,
    tenant: &Tenant,
    event: &Planned,
    origin: &str,
) -> Outcome {
    let (body, uid) = match (&event.call, &event.uid) {
        (Ok(body), Some(uid)) => (body, uid.as_str()),
        (Err(refusal), _) => {
            return Outcome::Refused {
                code: refusal.code.to_owned(),
                message: refusal.message.clone(),
                field: None,
            }
        }
        (Ok(_), None) => unreachable!("the core plans no call without a UID"),
    };
    // Twice at most: a concurrent import of the same UID may insert it between our read and
    // our insert, which then becomes an update of that call.
    for _ in 0..2 {
        let existing = match calls::by_ical_uid(tenant, uid).await {
            Ok(existing) => existing,
            Err(e) => return refused(e.into()),
        };
        let result = match existing {
            None => schedule_one(app, who, tenant, body, origin, None, Some(uid))
                .await
                .map(|row| row.map(Outcome::Created)),
            Some(call) => update(app, who, tenant, call, body).await.map(Some),
        };
        match result {
            Ok(Some(outcome)) => return outcome,
            Ok(None) => continue,
            Err(e) => return refused(e),
        }
    }
    refused(ApiError::internal(
        "the call of this UID was neither created nor found",
    ))
}

/// Moves the UID's `call` to the event's time; the number and agent of an imported call are
/// fixed (a changed one is refused, not silently ignored).
async fn update(
    app: &App,
    who: &Principal,
    tenant: &Tenant,
    call: Call,
    body: &Value,
) -> Result<Outcome, ApiError> {
    let now = DateTime::from_timestamp_millis(now_ms()).unwrap_or_default();
    let request = parse_schedule(body, now, &IntlZones);
    let immutable = |field: &str, message: String| {
        invalid_fields(json!([field_error(field, "immutable", message)]))
    };
    // A past time is no change when the call kept it (its dial has happened or is due).
    let start_at = body["start_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis());
    if call.start_at == start_at && body["to"].as_str() == Some(call.to_number.as_str()) {
        return Ok(Outcome::Unchanged(call));
    }
    let request = request.map_err(super::super::agents::field_errors)?;
    if request.to != call.to_number {
        return Err(immutable(
            "to",
            format!(
                "the call of this UID dials {}; cancel it to call another number",
                call.to_number
            ),
        ));
    }
    if call.agent_id.as_ref().map(|a| a.as_str()) != Some(request.agent_id.as_str()) {
        return Err(immutable(
            "agent_id",
            "the call of this UID belongs to another agent".into(),
        ));
    }
    let after = move_call(
        app,
        tenant,
        &call,
        request.start_at.timestamp_millis(),
        request.time_zone.clone(),
    )
    .await?;
    audited_update(
        app,
        who,
        "call.reschedule",
        ("call", call.id.as_str()),
        &render(&call),
        render(&after),
    )
    .await?;
    Ok(Outcome::Updated(after))
}
