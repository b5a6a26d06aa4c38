//! Scheduling, rescheduling and cancelling a call: each change is one D1 batch (see `calls.rs`).

use super::row::{agent_name, email_facts, find, render};
use crate::api::agents::field_errors;
use crate::api::numbers::{caller_id, no_caller_id};
use crate::api::request::{audited_update, field_error, invalid_fields, json_body};
use crate::pipeline::call_status::{self, Applied, Change};
use crate::platform::alarm;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{
    json_response, log_line, new_id, now_ms, rfc3339, ApiError, ApiResult,
};
use crate::platform::zones::{self, IntlZones};
use crate::scheduling::bland;
use crate::scheduling::emails::{self, EmailFacts};
use crate::scheduling::outbox::Outbox;
use crate::scheduling::reminders as reminders_sweep;
use crate::store::agents;
use crate::store::audit;
use crate::store::call_events::{self, Event};
use crate::store::calls::{self, Call, NewCall};
use crate::store::messages::{self, Outgoing};
use crate::store::suppressions;
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::agents::{allowed_countries, sms_confirmations};
use phone_agent_core::carrier::Carrier;
use phone_agent_core::dialing::DialPolicy;
use phone_agent_core::features::check_schedule;
use phone_agent_core::ids::{CallId, MessageId};
use phone_agent_core::reminders::{self, Reachable};
use phone_agent_core::scheduling::email::EmailKind;
use phone_agent_core::scheduling::request::{
    parse_reschedule, parse_schedule, request_fingerprint, DialProvider, FieldError,
};
use phone_agent_core::scheduling::{CallProvider, CallStatus, Direction};
use phone_agent_core::sms::{carrier_for, confirmation_text};
use phone_agent_core::template;
use serde_json::{json, Value};
use worker::Request;

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The same `Idempotency-Key` with the same body is the same call; with another body, a 409.
fn replay_or_conflict(existing: &Call, fingerprint: &str) -> ApiResult {
    if existing.request_hash.as_deref() == Some(fingerprint) {
        let mut response = json_response(201, &render(existing));
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
    // A calendar file schedules one call per event (see `import.rs`).
    if super::import::is_calendar(req)? {
        return super::import::import(req, app, who).await;
    }
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
    let tenant = Tenant::of(app, who)?;
    if let Some(key) = &idempotency_key {
        if let Some(existing) = calls::by_idempotency_key(&tenant, key).await? {
            return replay_or_conflict(&existing, &fingerprint);
        }
    }
    let key = idempotency_key
        .as_deref()
        .map(|key| (key, fingerprint.as_str()));
    match schedule_one(app, who, &tenant, &body, &origin, key, None).await? {
        Some(row) => Ok(json_response(201, &render(&row))),
        None => {
            // A concurrent request with the same key won the insert.
            let existing = calls::by_idempotency_key(&tenant, key.map_or("", |k| k.0))
                .await?
                .ok_or_else(|| ApiError::internal("call neither inserted nor found"))?;
            replay_or_conflict(&existing, &fingerprint)
        }
    }
}

/// Schedules the call a `POST /api/v1/calls` body describes (validated here), with its history,
/// invite, `call.scheduled` event and audit entry: the one way a call is scheduled through the
/// API, for a JSON body and for each event of a calendar import (`ical_uid`). `None` when
/// another call holds the idempotency key (`(key, fingerprint)`) or the UID.
pub(in crate::api) async fn schedule_one(
    app: &App,
    who: &Principal,
    tenant: &Tenant,
    body: &Value,
    origin: &str,
    idempotency: Option<(&str, &str)>,
    ical_uid: Option<&str>,
) -> Result<Option<Call>, ApiError> {
    let config = app.config()?;
    let now = now_ms();
    let now_utc = DateTime::from_timestamp_millis(now).unwrap_or_default();
    let parsed = parse_schedule(body, now_utc, &IntlZones);
    let fields = template::contact_field_values(body.get("contact"));
    let (request, contact_fields) = match (parsed, fields) {
        (Ok(request), Ok(fields)) => (request, fields),
        (parsed, fields) => {
            let mut errors = parsed.err().unwrap_or_default();
            errors.extend(fields.err().unwrap_or_default());
            return Err(field_errors(errors));
        }
    };
    let Some(agent) = agents::get(tenant, &request.agent_id).await? else {
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
    // A variable the prompt or greeting needs (no `| default`) must have a value now: refused
    // here rather than heard as a gap.
    let missing = template::missing_contact_fields(
        &[
            &agent.system_prompt,
            agent.first_message.as_deref().unwrap_or_default(),
        ],
        |field| match field {
            "name" => request.contact_name.is_some(),
            "email" => request.contact_email.is_some(),
            "phone" => true,
            other => contact_fields.contains_key(other),
        },
    );
    if !missing.is_empty() {
        return Err(field_errors(
            missing
                .iter()
                .map(|f| {
                    FieldError::new(
                        &format!("contact.{f}"),
                        "missing_variable",
                        format!(
                            "the agent's prompt or first message uses {{{{contact.{f}}}}} without a \
                             default: give contact.{f} or write {{{{contact.{f} | default}}}}"
                        ),
                    )
                })
                .collect(),
        ));
    }
    let from = caller_id(
        tenant,
        &agent.id,
        request.from.as_ref(),
        config.default_from_number.as_ref(),
    )
    .await?;
    if from.is_none() && request.provider != DialProvider::Bland {
        return Err(no_caller_id());
    }
    // Refused now rather than accepted and failed at dial (or e-mail) time; after the request's
    // own field errors, which the client can fix whatever the server lacks.
    check_schedule(
        config,
        request.provider,
        body.get("provider").is_some_and(|p| !p.is_null()),
        request.contact_email.is_some(),
    )?;
    // Fixed now: the alarm that dials later has no request to take an origin from.
    let base_url = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| origin.to_owned());

    let id: CallId = new_id()?;
    let start_at = request.start_at.timestamp_millis();
    let provider = CallProvider::from(request.provider);
    let metadata = request.metadata.to_string();
    let contact_fields = (!contact_fields.is_empty())
        .then(|| serde_json::to_string(&contact_fields).unwrap_or_default());
    let call = NewCall {
        id: &id,
        agent_id: Some(&agent.id),
        direction: Direction::Outbound,
        provider,
        provider_call_id: None,
        status: CallStatus::Scheduled,
        to_number: &request.to,
        from_number: from.as_deref(),
        start_at: Some(start_at),
        time_zone: request.time_zone.as_deref(),
        contact_name: request.contact_name.as_deref(),
        contact_email: request.contact_email.as_deref(),
        contact_fields: contact_fields.as_deref(),
        metadata: &metadata,
        idempotency_key: idempotency.map(|(key, _)| key),
        request_hash: idempotency.map(|(_, fingerprint)| fingerprint),
        base_url: Some(&base_url),
        now,
    };
    let email = match &request.contact_email {
        Some(to_email) => {
            let facts = EmailFacts {
                tenant_id: &who.tenant_id,
                call_id: id.as_str(),
                to_email,
                to_name: request.contact_name.as_deref(),
                agent_name: &agent.name,
                phone_number: &request.to,
                start_at,
                time_zone: request.time_zone.as_deref(),
            };
            Some(emails::compose(
                config,
                &facts,
                EmailKind::Scheduled,
                0,
                now,
            )?)
        }
        None => None,
    };
    let reachable = Reachable {
        email: request.contact_email.is_some(),
        text: from.is_some(),
    };
    let reminders = reminders::plan(&agent_config, start_at, now, reachable);
    let detail = json!({"start_at": rfc3339(start_at), "provider": provider, "attempt": 1});
    if !calls::schedule(tenant, &call, ical_uid, &detail, email.as_ref(), &reminders).await? {
        return Ok(None);
    }

    let db = app.db()?;
    call_status::emit(
        &app.env,
        &db,
        id.as_str(),
        "call.scheduled",
        &format!("{id}:scheduled:1"),
        json!({}),
        now,
    )
    .await?;
    if sms_confirmations(&agent_config) {
        if let Some(from) = &from {
            let text = confirmation_text(
                &agent.name,
                request.start_at,
                zones::zone(request.time_zone.as_deref()).as_ref(),
            );
            let sms = Confirmation {
                provider,
                from,
                to: &request.to,
                text: &text,
                call_id: id.as_str(),
                base_url: &base_url,
            };
            confirm_by_sms(app, tenant, &sms).await?;
        }
    }
    after_change(
        app,
        id.as_str(),
        start_at,
        request.provider == DialProvider::Bland,
    );
    let row = find(tenant, id.as_str()).await?;
    audit::log(
        app,
        who,
        &audit::Change::created("call.schedule", ("call", id.as_str()), &render(&row)),
    )
    .await;
    Ok(Some(row))
}

/// The text confirming a scheduled call.
struct Confirmation<'a> {
    provider: CallProvider,
    from: &'a str,
    to: &'a str,
    text: &'a str,
    call_id: &'a str,
    base_url: &'a str,
}

/// Queues the text confirming a call (the agent's `sms.confirmations`) in the message outbox,
/// through the call's carrier when it texts, else the configured one; nothing when the number
/// opted out or no carrier is configured (the call itself is booked either way).
async fn confirm_by_sms(
    app: &App,
    tenant: &Tenant,
    sms: &Confirmation<'_>,
) -> Result<(), ApiError> {
    if suppressions::contains(tenant, sms.to).await? {
        return Ok(());
    }
    let config = app.config()?;
    let wanted = Carrier::parse(sms.provider.as_str()).filter(|c| c.texts());
    let Ok(carrier) = carrier_for(wanted, config).or_else(|_| carrier_for(None, config)) else {
        log_line(
            json!({"level": "warn", "msg": "sms confirmation not sent", "call_id": sms.call_id,
                        "reason": "no messaging carrier configured"}),
        );
        return Ok(());
    };
    let id = new_id::<MessageId>()?;
    messages::queue(
        tenant,
        &Outgoing {
            id: &id,
            kind: "confirmation",
            provider: carrier.as_str(),
            from: sms.from,
            to: sms.to,
            body: sms.text,
            call_id: Some(sms.call_id),
            base_url: sms.base_url,
            now: now_ms(),
        },
    )
    .await?;
    let env = app.env.clone();
    app.ctx.wait_until(async move {
        crate::scheduling::messages::send_now(&env, id.as_str()).await;
    });
    Ok(())
}

/// After the answer: send the call's pending emails, arm the scheduler for its start (and its
/// earliest reminder), and hand a Bland call to Bland.
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
        // A reminder is due before the call: the scheduler wakes for the earliest one too.
        let reminder = match env.d1("DB") {
            Ok(db) => reminders_sweep::Reminders::next_due(&db).await.ok().flatten(),
            Err(_) => None,
        };
        if let Some(at) = reminder {
            alarm::wake_at(&env, at).await;
        }
    });
}

pub(in crate::api) fn not_modifiable(call: &Call) -> ApiError {
    ApiError::new(
        409,
        "not_modifiable",
        format!(
            "call {} is {}; only scheduled calls (not yet dispatched) can change",
            call.id,
            call.status.as_str()
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
    let tenant = Tenant::of(app, who)?;
    let row = find(&tenant, id).await?;
    let after = move_call(app, &tenant, &row, start.timestamp_millis(), time_zone).await?;
    audited_update(
        app,
        who,
        "call.reschedule",
        ("call", id),
        &render(&row),
        render(&after),
    )
    .await
}

/// Moves the scheduled call `row` to `start_at` (and `time_zone`, when given) with its history,
/// updated invite and `call.rescheduled` event: the one way a call is rescheduled, for `PATCH`
/// and for a calendar import of a known UID. 409 once the call is no longer scheduled.
pub(in crate::api) async fn move_call(
    app: &App,
    tenant: &Tenant,
    row: &Call,
    start_at: i64,
    time_zone: Option<String>,
) -> Result<Call, ApiError> {
    let id = row.id.as_str();
    if row.status != CallStatus::Scheduled {
        return Err(not_modifiable(row));
    }
    let now = now_ms();
    let sequence = row.ics_sequence + 1;
    let detail = json!({"previous_start_at": row.start_at.map(rfc3339), "start_at": rfc3339(start_at),
                        "sequence": sequence, "previous_provider_call_id": row.provider_call_id});
    let name = agent_name(tenant, row).await;
    let updated_tz = time_zone.clone().or_else(|| row.time_zone.clone());
    let email = match email_facts(row, &name) {
        Some(mut facts) => {
            facts.start_at = start_at;
            facts.time_zone = updated_tz.as_deref();
            let sequence_u32 = u32::try_from(sequence).unwrap_or(u32::MAX);
            Some(emails::compose(
                app.config()?,
                &facts,
                EmailKind::Rescheduled,
                sequence_u32,
                now,
            )?)
        }
        None => None,
    };
    let moved = calls::reschedule(
        tenant,
        row,
        start_at,
        time_zone.as_deref(),
        now,
        &detail,
        email.as_ref(),
    )
    .await?;
    if !moved {
        let current = find(tenant, id).await?;
        return Err(not_modifiable(&current));
    }
    let db = app.db()?;
    let bland = row.provider == CallProvider::Bland;
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
    find(tenant, id).await
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
            let call_id = CallId::from(call_id.as_str());
            call_events::record(&db, &Event::note(&call_id, "note", "api", &detail)).await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(e) = recorded {
            log_line(json!({"level": "error", "msg": "bland stop", "call_id": call_id, "error": e.to_string()}));
        }
    });
}

pub(in crate::api) async fn cancel(app: &App, who: &Principal, id: &str) -> ApiResult {
    let tenant = Tenant::of(app, who)?;
    let row = find(&tenant, id).await?;
    if row.status == CallStatus::Canceled {
        return Ok(json_response(200, &render(&row)));
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
    let applied = if row.status == CallStatus::Scheduled {
        call_status::apply(&app.env, &db, id, &change, now).await?
    } else {
        Applied::Unchanged
    };
    if applied != Applied::Moved(CallStatus::Scheduled) {
        let current = find(&tenant, id).await?;
        if current.status == CallStatus::Canceled {
            return Ok(json_response(200, &render(&current)));
        }
        return Err(not_modifiable(&current));
    }
    let sequence = row.ics_sequence + 1;
    let name = agent_name(&tenant, &row).await;
    let email = match email_facts(&row, &name) {
        Some(facts) => Some(emails::compose(
            app.config()?,
            &facts,
            EmailKind::Canceled,
            u32::try_from(sequence).unwrap_or(u32::MAX),
            now,
        )?),
        None => None,
    };
    calls::cancelled(&tenant, &row.id, sequence, email.as_ref(), now).await?;
    if let (true, Some(old)) = (
        row.provider == CallProvider::Bland,
        row.provider_call_id.clone(),
    ) {
        stop_bland_later(app, id, old);
    }
    let env = app.env.clone();
    let call_id = id.to_owned();
    app.ctx
        .wait_until(async move { emails::send_for_call(&env, &call_id).await });
    let after = find(&tenant, id).await?;
    audited_update(
        app,
        who,
        "call.cancel",
        ("call", id),
        &render(&row),
        render(&after),
    )
    .await
}
