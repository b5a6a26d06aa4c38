//! The `calls` table: the typed [`Call`], the one [`insert`], the one status change
//! ([`set_status`]), and what the API, the dispatcher, the gateway and the session read and write.
//! Scheduler and gateway work spans tenants and takes the database (`*_unscoped` reads, and the
//! writes keyed by a call id the system already holds); the API holds a [`Tenant`].

use crate::store::call_events::{self, Event, When};
use crate::store::db::{self, row, Arg};
use crate::store::emails::{self, NewEmail};
use crate::store::error::StoreError;
use crate::store::page::{self, listed, Page, PageOf};
use crate::store::reminders::{self, ReminderSubject};
use crate::store::tenant::Tenant;
use phone_agent_core::analysis::{AnalysisFilter, AnalysisStatus, FilterValue};
use phone_agent_core::auth::new_token;
use phone_agent_core::ids::{AgentId, CallId, TenantId};
use phone_agent_core::reminders::Planned;
use phone_agent_core::scheduling::{CallProvider, CallStatus, Direction};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use worker::d1::{D1Database, D1PreparedStatement};

row! {
    /// A call as stored (all but its stream token, which only the media path reads: see
    /// [`SessionCall`]).
    pub struct Call from "calls" {
        id: CallId,
        tenant_id: TenantId,
        agent_id: Option<AgentId>,
        direction: Direction,
        provider: CallProvider,
        provider_call_id: Option<String>,
        status: CallStatus,
        to_number: String,
        from_number: Option<String>,
        start_at: Option<i64>,
        time_zone: Option<String>,
        contact_name: Option<String>,
        contact_email: Option<String>,
        metadata: String,
        attempt: i64,
        ics_sequence: i64,
        email_status: Option<String>,
        request_hash: Option<String>,
        /// How carriers reach this worker for this call (fixed when it was scheduled).
        base_url: Option<String>,
        dispatched_at: Option<i64>,
        answered_at: Option<i64>,
        ended_at: Option<i64>,
        last_error: Option<String>,
        /// Set while the tenant's hourly outbound cap holds the due call.
        dial_after: Option<i64>,
        created_at: i64,
        updated_at: i64,
        duration_seconds: Option<i64>,
        summary: Option<String>,
        metrics: Option<String>,
        /// The post-call analysis (the core's `AnalysisResult` as JSON; its status is also in
        /// `analysis_status`, which the list filters on).
        analysis: Option<String>,
        /// How the number routed an incoming call (`phone_agent_core::hours::Routing`).
        routing: Option<String>,
        /// Declared contact fields, a JSON object of strings (`template::contact_field_values`).
        contact_fields: Option<String>,
        /// The UID of the iCalendar event the call was imported from.
        ical_uid: Option<String>,
    }
}

listed!(Call, created_at);

/// The tenant's call `id`, if it exists.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Call>, StoreError> {
    tenant
        .first(
            &format!("{} WHERE tenant_id = ?1 AND id = ?2", Call::SELECT),
            &[&id],
        )
        .await
}

/// Whether the tenant has a call `id` (cheaper than [`get`] where only ownership matters).
pub async fn exists(tenant: &Tenant, id: &str) -> Result<bool, StoreError> {
    let found: Option<IgnoredAny> = tenant
        .first(
            "SELECT 1 AS one FROM calls WHERE tenant_id = ?1 AND id = ?2",
            &[&id],
        )
        .await?;
    Ok(found.is_some())
}

/// The tenant's call scheduled with Idempotency-Key `key`.
pub async fn by_idempotency_key(tenant: &Tenant, key: &str) -> Result<Option<Call>, StoreError> {
    tenant
        .first(
            &format!(
                "{} WHERE tenant_id = ?1 AND idempotency_key = ?2",
                Call::SELECT
            ),
            &[&key],
        )
        .await
}

/// The tenant's call imported from the iCalendar event `uid`, if any.
pub async fn by_ical_uid(tenant: &Tenant, uid: &str) -> Result<Option<Call>, StoreError> {
    tenant
        .first(
            &format!("{} WHERE tenant_id = ?1 AND ical_uid = ?2", Call::SELECT),
            &[&uid],
        )
        .await
}

/// What a call list is narrowed to (each `None` is no filter).
pub struct Filter<'a> {
    pub status: Option<CallStatus>,
    /// Starting at or after (ms).
    pub from: Option<i64>,
    /// Starting before (ms).
    pub to: Option<i64>,
    pub agent_id: Option<&'a str>,
    pub direction: Option<Direction>,
    /// `analysis.*` parameters, checked by the core.
    pub analysis: &'a [AnalysisFilter],
}

/// One page of the tenant's calls, newest first.
pub async fn list(
    tenant: &Tenant,
    filter: &Filter<'_>,
    window: &Page,
) -> Result<PageOf<Call>, StoreError> {
    let status = filter.status.map(CallStatus::as_str);
    let mut query = format!(
        "{} WHERE tenant_id = ?1
           AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR start_at >= ?3)
           AND (?4 IS NULL OR start_at < ?4) AND (?5 IS NULL OR agent_id = ?5)
           AND (?6 IS NULL OR direction = ?6)",
        Call::SELECT
    );
    let direction = filter.direction.map(Direction::as_str);
    let mut args: Vec<&dyn Arg> = vec![
        &status,
        &filter.from,
        &filter.to,
        &filter.agent_id,
        &direction,
    ];
    // Each analysis filter binds its JSON path and value; only valid analyses have values.
    let paths: Vec<Option<String>> = filter.analysis.iter().map(|f| f.json_path()).collect();
    let statuses: Vec<&str> = filter
        .analysis
        .iter()
        .map(|f| match f {
            AnalysisFilter::Status(s) => s.as_str(),
            _ => "",
        })
        .collect();
    for ((f, path), status) in filter.analysis.iter().zip(&paths).zip(&statuses) {
        // `?1` is the tenant (bound by `page::list`), the arguments follow it.
        let n = args.len() + 2;
        match (f, path) {
            (AnalysisFilter::Status(_), _) => {
                query.push_str(&format!(" AND analysis_status = ?{n}"));
                args.push(status);
            }
            (AnalysisFilter::Success(b), Some(path)) => {
                query.push_str(&format!(
                    " AND analysis_status = 'ok' AND json_extract(analysis, ?{n}) = ?{}",
                    n + 1
                ));
                args.extend_from_slice(&[path as &dyn Arg, b]);
            }
            (AnalysisFilter::Field { value, .. }, Some(path)) => {
                query.push_str(&format!(
                    " AND analysis_status = 'ok' AND json_extract(analysis, ?{n}) = ?{}",
                    n + 1
                ));
                args.push(path);
                args.push(match value {
                    FilterValue::Text(text) => text,
                    FilterValue::Bool(b) => b,
                });
            }
            _ => {}
        }
    }
    page::list(tenant, &query, &args, window).await
}

/// The call `id` of any tenant (the scheduler, webhooks and the session serve them all).
pub async fn get_unscoped(db: &D1Database, id: &str) -> Result<Option<Call>, StoreError> {
    db::first(db, &format!("{} WHERE id = ?1", Call::SELECT), &[&id]).await
}

/// The call `provider` knows as `provider_call_id`, of any tenant (the ids are unique per
/// provider).
pub async fn by_provider_call_id_unscoped(
    db: &D1Database,
    provider: CallProvider,
    provider_call_id: &str,
) -> Result<Option<Call>, StoreError> {
    db::first(
        db,
        &format!(
            "{} WHERE provider = ?1 AND provider_call_id = ?2 ORDER BY created_at DESC LIMIT 1",
            Call::SELECT
        ),
        &[&provider.as_str(), &provider_call_id],
    )
    .await
}

/// A call about to be stored.
pub struct NewCall<'a> {
    pub id: &'a CallId,
    pub agent_id: Option<&'a AgentId>,
    pub direction: Direction,
    pub provider: CallProvider,
    pub provider_call_id: Option<&'a str>,
    pub status: CallStatus,
    pub to_number: &'a str,
    pub from_number: Option<&'a str>,
    pub start_at: Option<i64>,
    pub time_zone: Option<&'a str>,
    pub contact_name: Option<&'a str>,
    pub contact_email: Option<&'a str>,
    /// Declared contact fields, JSON object text.
    pub contact_fields: Option<&'a str>,
    /// JSON object text.
    pub metadata: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    pub base_url: Option<&'a str>,
    pub now: i64,
}

/// The one insert of a call (first attempt, sequence 0), for the batch that records it. It is
/// skipped when `only_if` (SQL over the call's own placeholders: `?1` tenant, `?2` id, `?6`
/// to, `?15` now, and its `extra` from `?19`) selects nothing, or when the call conflicts with
/// a stored one (its idempotency key or its provider call id).
pub(in crate::store) fn insert(
    tenant: &Tenant,
    call: &NewCall<'_>,
    only_if: &str,
    extra: &[&dyn Arg],
) -> Result<D1PreparedStatement, StoreError> {
    let direction = call.direction.as_str();
    let provider = call.provider.as_str();
    let status = call.status.as_str();
    let mut args: Vec<&dyn Arg> = vec![
        tenant.id(),
        call.id,
        &call.agent_id,
        &direction,
        &provider,
        &call.to_number,
        &call.from_number,
        &call.start_at,
        &call.time_zone,
        &call.contact_name,
        &call.contact_email,
        &call.metadata,
        &call.idempotency_key,
        &call.request_hash,
        &call.now,
        &call.provider_call_id,
        &status,
        &call.base_url,
    ];
    args.extend_from_slice(extra);
    // After the extras, so their placeholders (from `?19`) stay where callers wrote them.
    let contact_fields = format!("?{}", args.len() + 1);
    args.push(&call.contact_fields);
    db::stmt(
        tenant.db(),
        &format!(
            "INSERT INTO calls (tenant_id, id, agent_id, direction, provider, to_number, from_number,
               start_at, time_zone, contact_name, contact_email, metadata, idempotency_key,
               request_hash, created_at, updated_at, provider_call_id, status, base_url, attempt,
               ics_sequence, contact_fields)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16,
               ?17, ?18, 1, 0, {contact_fields}
             WHERE {only_if}
             ON CONFLICT DO NOTHING"
        ),
        &args,
    )
}

/// Schedules a call through the API: the call, its first history entry and the email announcing
/// it (if any) commit together. `false` when a call with the same idempotency key won, or, for
/// a call imported from the iCalendar event `ical_uid`, when the tenant has a call of that UID.
pub async fn schedule(
    tenant: &Tenant,
    call: &NewCall<'_>,
    ical_uid: Option<&str>,
    detail: &Value,
    email: Option<&NewEmail<'_>>,
    reminders: &[Planned],
) -> Result<bool, StoreError> {
    let db = tenant.db();
    let event =
        Event::new(call.id, "status", "api", detail, call.now).moving(None, CallStatus::Scheduled);
    // The call id is fresh: it exists only if this request's insert won.
    let mut more = queue_email(db, email, "SELECT 1 FROM calls WHERE id = ?", &[call.id])?;
    more.extend(reminders::insert(
        tenant,
        ReminderSubject::Call(call.id),
        reminders,
        call.now,
    )?);
    let insert = match &ical_uid {
        None => insert(tenant, call, "1", &[])?,
        Some(uid) => {
            more.push(db::stmt(
                db,
                "UPDATE calls SET ical_uid = ?3 WHERE tenant_id = ?1 AND id = ?2",
                &[tenant.id(), call.id, uid],
            )?);
            insert(
                tenant,
                call,
                "NOT EXISTS (SELECT 1 FROM calls WHERE tenant_id = ?1 AND ical_uid = ?19)",
                &[uid],
            )?
        }
    };
    call_events::commit(db, insert, (&event, When::Changed), more).await
}

/// The statements queuing `email`, if there is one, under `only_if` (see `emails::queue`).
fn queue_email(
    db: &D1Database,
    email: Option<&NewEmail<'_>>,
    only_if: &str,
    args: &[&dyn Arg],
) -> Result<Vec<D1PreparedStatement>, StoreError> {
    match email {
        Some(email) => emails::queue(db, email, only_if, args),
        None => Ok(Vec::new()),
    }
}

/// What became of an incoming call under the tenant's quotas.
pub enum Admission {
    /// Stored as given (or found: a retried webhook).
    Admitted(CallId),
    /// Over a quota: stored as failed with `last_error` `over_quota` and its history entry.
    OverQuota(CallId),
}

/// Stores an incoming call if the tenant is within its quotas (`bounds`: live calls, carrier
/// seconds since `month_start`), counted in the insert itself so two calls arriving together
/// cannot both take the last slot; otherwise records it as refused (`refused`: the history
/// entry's detail). Either way the call keeps how its number routed it (`routing`, and the
/// history entry `detail` telling why). A retried webhook (same carrier call id) gets the first
/// one's outcome, and its first routing stays.
pub async fn admit_incoming(
    tenant: &Tenant,
    call: &NewCall<'_>,
    (routing, detail): (&str, &Value),
    (max_live, max_seconds): (i64, i64),
    month_start: &str,
    refused: &Value,
) -> Result<Admission, StoreError> {
    let earlier = |c: Call| {
        if c.status == CallStatus::Failed && c.last_error.as_deref() == Some(OVER_QUOTA) {
            Admission::OverQuota(c.id)
        } else {
            Admission::Admitted(c.id)
        }
    };
    if let Some(provider_call_id) = call.provider_call_id {
        if let Some(found) =
            by_provider_call_id_unscoped(tenant.db(), call.provider, provider_call_id).await?
        {
            return Ok(earlier(found));
        }
    }
    let guarded = insert(
        tenant,
        call,
        crate::store::usage::ADMIT_GUARD,
        &[&max_live, &max_seconds, &month_start],
    )?;
    let db = tenant.db();
    let source = format!("webhook:{}", call.provider.as_str());
    let route_event = Event::new(call.id, "routing", &source, detail, call.now);
    // `changes()` is the insert's until the update runs: an insert the guard stopped writes
    // neither the routing nor its entry.
    let route = db::stmt(
        db,
        "UPDATE calls SET routing = ?2 WHERE id = ?1 AND changes() > 0",
        &[call.id, &routing],
    )?;
    let admitted = db::batch(
        db,
        vec![
            guarded,
            route,
            call_events::row(db, &route_event, When::Changed)?,
        ],
    )
    .await?;
    if admitted.first() == Some(&1) {
        return Ok(Admission::Admitted(call.id.clone()));
    }
    let failed = NewCall {
        status: CallStatus::Failed,
        ..*call
    };
    let event = Event::new(call.id, "status", "gateway", refused, call.now)
        .moving(None, CallStatus::Failed);
    let writes = vec![
        insert(tenant, &failed, "1", &[])?,
        tenant.stmt(
            "UPDATE calls SET last_error = ?3, ended_at = ?4, routing = ?5
             WHERE tenant_id = ?1 AND id = ?2",
            &[call.id, &OVER_QUOTA, &call.now, &routing],
        )?,
        call_events::row(tenant.db(), &route_event, When::CallExists(call.id))?,
        call_events::row(tenant.db(), &event, When::CallExists(call.id))?,
    ];
    db::batch(tenant.db(), writes).await?;
    match call.provider_call_id {
        Some(provider_call_id) => {
            by_provider_call_id_unscoped(tenant.db(), call.provider, provider_call_id)
                .await?
                .map(earlier)
                .ok_or(StoreError::Missing(
                    "inbound call neither inserted nor found",
                ))
        }
        None => Ok(Admission::OverQuota(call.id.clone())),
    }
}

/// The `last_error` of a call refused by a quota.
const OVER_QUOTA: &str = phone_agent_core::usage::OverQuota::REASON;

/// Moves the tenant's scheduled `call` to `start_at` (and `time_zone`, if given) as ICS
/// `sequence`, with its history entry and email, if `call` is still what the caller read
/// (compare-and-set on status, sequence and attempt: a dispatch, retry or another reschedule
/// that got there first wins). A Bland call loses Bland's id: it is submitted again. Its
/// reminders move with it.
pub async fn reschedule(
    tenant: &Tenant,
    call: &Call,
    start_at: i64,
    time_zone: Option<&str>,
    now: i64,
    detail: &Value,
    email: Option<&NewEmail<'_>>,
) -> Result<bool, StoreError> {
    let db = tenant.db();
    let sequence = call.ics_sequence + 1;
    let change = tenant.stmt(
        "UPDATE calls SET start_at = ?3, time_zone = COALESCE(?4, time_zone), ics_sequence = ?5,
           updated_at = ?6, locked_until = NULL, last_error = NULL,
           provider_call_id = CASE WHEN provider = 'bland' THEN NULL ELSE provider_call_id END
         WHERE tenant_id = ?1 AND id = ?2 AND status = 'scheduled' AND ics_sequence = ?7
           AND attempt = ?8",
        &[
            &call.id,
            &start_at,
            &time_zone,
            &sequence,
            &now,
            &call.ics_sequence,
            &call.attempt,
        ],
    )?;
    let event = Event::new(&call.id, "reschedule", "api", detail, now)
        .moving(Some(CallStatus::Scheduled), CallStatus::Scheduled);
    let mut email = queue_email(
        db,
        email,
        "SELECT 1 FROM calls WHERE id = ? AND ics_sequence = ? AND updated_at = ?",
        &[&call.id, &sequence, &now],
    )?;
    let subject = ReminderSubject::Call(&call.id);
    email.push(reminders::moved(db, subject, start_at, sequence, now)?);
    call_events::commit(db, change, (&event, When::Changed), email).await
}

/// After a cancel: the call's ICS `sequence` moves on, with the cancellation email (if any);
/// its reminders are cancelled.
pub async fn cancelled(
    tenant: &Tenant,
    call_id: &CallId,
    sequence: i64,
    email: Option<&NewEmail<'_>>,
    now: i64,
) -> Result<(), StoreError> {
    let db = tenant.db();
    let mut statements = vec![tenant.stmt(
        "UPDATE calls SET ics_sequence = ?3 WHERE tenant_id = ?1 AND id = ?2",
        &[call_id, &sequence],
    )?];
    statements.extend(queue_email(
        db,
        email,
        "SELECT 1 FROM calls WHERE id = ?",
        &[call_id],
    )?);
    let subject = ReminderSubject::Call(call_id);
    statements.push(reminders::cancelled(db, subject, sequence, now)?);
    db::batch(db, statements).await?;
    Ok(())
}

/// The current status of call `id` (any tenant).
pub async fn status_unscoped(db: &D1Database, id: &str) -> Result<Option<CallStatus>, StoreError> {
    #[derive(Deserialize)]
    struct Current {
        status: CallStatus,
    }
    crate::store::db::from_row!(Current { status });
    let current: Option<Current> =
        db::first(db, "SELECT status FROM calls WHERE id = ?1", &[&id]).await?;
    Ok(current.map(|c| c.status))
}

/// The conditions a status change holds under.
pub struct Guard {
    /// Only for this attempt.
    pub attempt: Option<i64>,
    /// Only if the call is due by then.
    pub due_by: Option<i64>,
}

/// The one status change: `from` → `to` if the call is still `from` (compare-and-set) and the
/// guard holds, stamping the dispatch / answer / end times, with its `status` history entry in
/// the same batch. `false` when another writer got there first or the guard failed.
pub async fn set_status(
    db: &D1Database,
    id: &CallId,
    (from, to): (CallStatus, CallStatus),
    guard: &Guard,
    source: &str,
    detail: &Value,
    now: i64,
) -> Result<bool, StoreError> {
    let change = db::stmt(
        db,
        "UPDATE calls SET status = ?1, updated_at = ?2,
           dispatched_at = CASE WHEN ?1 = 'dispatching' THEN ?2 ELSE dispatched_at END,
           answered_at = CASE WHEN ?1 = 'in_progress' THEN COALESCE(answered_at, ?2) ELSE answered_at END,
           ended_at = CASE WHEN ?1 IN ('completed','no_answer','busy','failed','canceled')
                           THEN COALESCE(ended_at, ?2) ELSE ended_at END
         WHERE id = ?3 AND status = ?4 AND (?5 IS NULL OR attempt = ?5)
           AND (?6 IS NULL OR start_at <= ?6)",
        &[
            &to.as_str(),
            &now,
            id,
            &from.as_str(),
            &guard.attempt,
            &guard.due_by,
        ],
    )?;
    let event = Event::new(id, "status", source, detail, now).moving(Some(from), to);
    call_events::commit(db, change, (&event, When::Changed), Vec::new()).await
}

/// Re-schedules `call`, which ended `outcome`, as attempt `attempt + 1` at `at`, once: only
/// while it is still `outcome` at its attempt; with its `retry` history entry.
pub async fn retry(
    db: &D1Database,
    call: &Call,
    outcome: CallStatus,
    at: i64,
    detail: &Value,
    now: i64,
) -> Result<bool, StoreError> {
    let next = call.attempt + 1;
    let change = db::stmt(
        db,
        "UPDATE calls SET status = 'scheduled', attempt = ?1, start_at = ?2,
           provider_call_id = NULL, dispatched_at = NULL, answered_at = NULL, ended_at = NULL,
           locked_until = NULL, last_error = NULL, updated_at = ?3
         WHERE id = ?4 AND status = ?5 AND attempt = ?6",
        &[&next, &at, &now, &call.id, &outcome.as_str(), &call.attempt],
    )?;
    let event = Event::new(&call.id, "retry", "scheduler", detail, now)
        .moving(Some(outcome), CallStatus::Scheduled);
    call_events::commit(db, change, (&event, When::Changed), Vec::new()).await
}

/// The call's stream token, created on first use (the media route refuses any other).
pub async fn ensure_token(db: &D1Database, call_id: &CallId) -> Result<String, StoreError> {
    #[derive(Deserialize)]
    struct Token {
        stream_token: Option<String>,
    }
    crate::store::db::from_row!(Token { stream_token });
    db::run(
        db,
        "UPDATE calls SET stream_token = ?1 WHERE id = ?2 AND stream_token IS NULL",
        &[&new_token("stk", getrandom::getrandom)?, call_id],
    )
    .await?;
    db::first::<Token>(
        db,
        "SELECT stream_token FROM calls WHERE id = ?1",
        &[call_id],
    )
    .await?
    .and_then(|t| t.stream_token)
    .ok_or(StoreError::Missing("stream token"))
}

/// The call `call_id` among `provider`'s calls (our signed URL named it), of any tenant.
pub async fn of_provider_unscoped(
    db: &D1Database,
    call_id: &str,
    provider: CallProvider,
) -> Result<Option<CallId>, StoreError> {
    #[derive(Deserialize)]
    struct Ref {
        id: CallId,
    }
    crate::store::db::from_row!(Ref { id });
    let found: Option<Ref> = db::first(
        db,
        "SELECT id FROM calls WHERE id = ?1 AND provider = ?2",
        &[&call_id, &provider.as_str()],
    )
    .await?;
    Ok(found.map(|r| r.id))
}

/// Keeps the provider's id for the call, the first time it is told (for `attempt`, if given):
/// never over another id, and never one another call of the provider already has.
pub async fn attach_provider_call_id(
    db: &D1Database,
    id: &CallId,
    provider_call_id: &str,
    attempt: Option<i64>,
) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE calls SET provider_call_id = ?1 WHERE id = ?2 AND provider_call_id IS NULL
           AND (?3 IS NULL OR attempt = ?3)
           AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.provider = calls.provider
                             AND c.provider_call_id = ?1)",
        &[&provider_call_id, id, &attempt],
    )
    .await?;
    Ok(())
}

/// The call as its session starts it: the call's facts, its stream token and its agent.
#[derive(Deserialize)]
pub struct SessionCall {
    pub id: CallId,
    pub tenant_id: TenantId,
    pub direction: Direction,
    pub status: CallStatus,
    pub to_number: String,
    pub from_number: Option<String>,
    pub stream_token: Option<String>,
    pub system_prompt: Option<String>,
    pub first_message: Option<String>,
    pub config: Option<String>,
    /// What the prompt and greeting are filled with (see `template::CallFacts`).
    pub agent_name: Option<String>,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_fields: Option<String>,
    pub start_at: Option<i64>,
    pub time_zone: Option<String>,
    pub created_at: i64,
}
crate::store::db::from_row!(SessionCall {
    id,
    tenant_id,
    direction,
    status,
    to_number,
    from_number,
    stream_token,
    system_prompt,
    first_message,
    config,
    agent_name,
    contact_name,
    contact_email,
    contact_fields,
    start_at,
    time_zone,
    created_at
});

/// Call `id` with its agent, for the media session (one read on the connect path).
pub async fn for_session_unscoped(
    db: &D1Database,
    id: &str,
) -> Result<Option<SessionCall>, StoreError> {
    db::first(
        db,
        "SELECT c.id, c.tenant_id, c.direction, c.status, c.to_number, c.from_number,
                c.stream_token, a.system_prompt, a.first_message, a.config, a.name AS agent_name,
                c.contact_name, c.contact_email, c.contact_fields, c.start_at, c.time_zone,
                c.created_at
         FROM calls c LEFT JOIN agents a ON a.id = c.agent_id WHERE c.id = ?1",
        &[&id],
    )
    .await
}

/// Keeps what the session measured at hang-up (per-turn metrics, and the duration if known).
pub async fn set_metrics(
    db: &D1Database,
    id: &str,
    metrics: &Value,
    duration_seconds: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE calls SET metrics = ?1, duration_seconds = COALESCE(?2, duration_seconds),
           updated_at = ?3 WHERE id = ?4",
        &[&metrics.to_string(), &duration_seconds, &now, &id],
    )
    .await?;
    Ok(())
}

/// Keeps the call's post-call analysis (`result`, the core's `AnalysisResult`) and its status.
pub async fn set_analysis(
    db: &D1Database,
    id: &str,
    status: AnalysisStatus,
    result: &Value,
    now: i64,
) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE calls SET analysis = ?1, analysis_status = ?2, updated_at = ?3 WHERE id = ?4",
        &[&result.to_string(), &status.as_str(), &now, &id],
    )
    .await?;
    Ok(())
}

/// Keeps the call's summary.
pub async fn set_summary(
    db: &D1Database,
    id: &str,
    summary: &str,
    now: i64,
) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE calls SET summary = ?1, updated_at = ?2 WHERE id = ?3",
        &[&summary, &now, &id],
    )
    .await?;
    Ok(())
}
