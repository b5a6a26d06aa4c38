//! The `campaigns` and `campaign_contacts` tables: the import (the whole list in a few
//! statements: rows travel as one JSON parameter per chunk, expanded by `json_each`), the API's
//! reads and controls, and the scheduler's tick (claim a contact and create or re-schedule its
//! call in one batch) and the outcome of a contact's call.

use crate::store::call_events::{self, Event, When};
use crate::store::calls::{self, NewCall};
use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::page::{self, listed, Listed, Page, PageOf};
use crate::store::tenant::Tenant;
use phone_agent_core::campaigns::{Contact, RowError};
use phone_agent_core::ids::{AgentId, CallId, CampaignId, TenantId};
use phone_agent_core::pagination::Cursor;
use phone_agent_core::scheduling::{CallProvider, CallStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;

/// Largest JSON parameter of one import statement: D1 takes strings up to 2 MB and statements
/// up to 100 KB, so the rows go as a parameter, a quarter of the string limit each.
pub const IMPORT_CHUNK_BYTES: usize = 500_000;
/// Import statements per D1 batch: a batch of several megabytes never answered in local D1.
const IMPORT_STATEMENTS_PER_BATCH: usize = 4;

row! {
    /// A campaign as stored.
    pub struct Campaign from "campaigns" {
        id: CampaignId,
        tenant_id: TenantId,
        agent_id: AgentId,
        name: String,
        status: String,
        window: String,
        calls_per_minute: i64,
        max_concurrent: i64,
        provider: CallProvider,
        from_number: Option<String>,
        base_url: String,
        total_rows: i64,
        invalid_rows: i64,
        next_tick_at: i64,
        created_at: i64,
        updated_at: i64,
        ended_at: Option<i64>,
    }
}

listed!(Campaign, created_at);

row! {
    /// One row of a campaign's list: a contact, or a row that could not be dialled.
    pub struct ContactRow from "campaign_contacts" {
        id: i64,
        line: i64,
        phone: Option<String>,
        given_phone: Option<String>,
        name: Option<String>,
        email: Option<String>,
        time_zone: Option<String>,
        vars: String,
        status: String,
        error_code: Option<String>,
        error: Option<String>,
        attempts: i64,
        next_attempt_at: i64,
        call_id: Option<CallId>,
        last_dial_at: Option<i64>,
        updated_at: i64,
    }
}

impl Listed for ContactRow {
    const ORDER: &'static str = "line";
    const INTEGER_ID: bool = true;
    fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.line,
            id: self.id.to_string(),
        }
    }
}

/// A campaign about to be stored.
pub struct NewCampaign<'a> {
    pub id: &'a CampaignId,
    pub agent_id: &'a AgentId,
    pub name: &'a str,
    pub window: &'a Value,
    pub calls_per_minute: u32,
    pub max_concurrent: u32,
    pub provider: CallProvider,
    pub from_number: Option<&'a str>,
    pub base_url: &'a str,
    pub now: i64,
}

/// The JSON array form of one row, as the import statement reads it.
fn contact_json(c: &Contact) -> Value {
    json!([
        c.line,
        c.phone,
        c.name,
        c.email,
        c.time_zone,
        Value::Object(c.vars.clone()),
        "pending",
        null,
        null,
        null
    ])
}

fn error_json(e: &RowError) -> Value {
    json!([
        e.line,
        null,
        null,
        null,
        null,
        {},
        "invalid",
        e.code,
        e.reason,
        e.phone
    ])
}

/// Stores every row of the list (contacts pending, errors `invalid`), then the campaign: the
/// rows go in chunks of at most [`IMPORT_CHUNK_BYTES`] of JSON, one statement each, a few
/// statements a batch, and the campaign row comes last, so a campaign exists only with all its
/// rows (rows left by an import that failed midway belong to no campaign and are never dialled).
/// Returns how many statements it took.
pub async fn insert(
    tenant: &Tenant,
    campaign: &NewCampaign<'_>,
    contacts: &[Contact],
    errors: &[RowError],
) -> Result<usize, StoreError> {
    let total = i64::try_from(contacts.len() + errors.len()).unwrap_or(i64::MAX);
    let invalid = i64::try_from(errors.len()).unwrap_or(i64::MAX);
    let window = campaign.window.to_string();
    let provider = campaign.provider.as_str();
    let campaign_row = tenant.stmt(
        "INSERT INTO campaigns (tenant_id, id, agent_id, name, status, window, calls_per_minute,
           max_concurrent, provider, from_number, base_url, total_rows, invalid_rows,
           next_tick_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?13)",
        &[
            campaign.id,
            campaign.agent_id,
            &campaign.name,
            &window,
            &campaign.calls_per_minute,
            &campaign.max_concurrent,
            &provider,
            &campaign.from_number,
            &campaign.base_url,
            &total,
            &invalid,
            &campaign.now,
        ],
    )?;
    let mut statements = Vec::new();
    let rows = contacts
        .iter()
        .map(contact_json)
        .chain(errors.iter().map(error_json));
    let mut chunk = String::from("[");
    let mut flush = |chunk: &mut String| -> Result<(), StoreError> {
        if chunk.len() <= 1 {
            return Ok(());
        }
        chunk.push(']');
        let json = std::mem::replace(chunk, String::from("["));
        statements.push(tenant.stmt(
            "INSERT INTO campaign_contacts (tenant_id, campaign_id, line, phone, name, email,
               time_zone, vars, status, error_code, error, given_phone, updated_at)
             SELECT ?1, ?2, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
               value -> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, ?4
             FROM json_each(?3)",
            &[campaign.id, &json, &campaign.now],
        )?);
        Ok(())
    };
    for row in rows {
        let text = row.to_string();
        if chunk.len() + text.len() + 2 > IMPORT_CHUNK_BYTES {
            flush(&mut chunk)?;
        }
        if chunk.len() > 1 {
            chunk.push(',');
        }
        chunk.push_str(&text);
    }
    flush(&mut chunk)?;
    statements.push(campaign_row);
    let n = statements.len();
    let mut statements = statements.into_iter().peekable();
    while statements.peek().is_some() {
        let batch: Vec<_> = statements
            .by_ref()
            .take(IMPORT_STATEMENTS_PER_BATCH)
            .collect();
        db::batch(tenant.db(), batch).await?;
    }
    Ok(n)
}

/// The tenant's campaign `id`.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Campaign>, StoreError> {
    tenant
        .first(
            &format!("{} WHERE tenant_id = ?1 AND id = ?2", Campaign::SELECT),
            &[&id],
        )
        .await
}

/// One page of the tenant's campaigns, newest first.
pub async fn list(tenant: &Tenant, window: &Page) -> Result<PageOf<Campaign>, StoreError> {
    let query = format!("{} WHERE tenant_id = ?1", Campaign::SELECT);
    page::list(tenant, &query, &[], window).await
}

/// How many rows of a campaign are in one status.
#[derive(Deserialize)]
pub struct Count {
    pub campaign_id: CampaignId,
    pub status: String,
    pub n: i64,
}
crate::store::db::from_row!(Count {
    campaign_id,
    status,
    n
});

/// The rows per status of each of the tenant's campaigns `ids`.
pub async fn counts(tenant: &Tenant, ids: &[&CampaignId]) -> Result<Vec<Count>, StoreError> {
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    tenant
        .all(
            "SELECT campaign_id, status, count(*) AS n FROM campaign_contacts
             WHERE tenant_id = ?1 AND campaign_id IN (SELECT value FROM json_each(?2))
             GROUP BY campaign_id, status",
            &[&ids],
        )
        .await
}

/// Moves the tenant's campaign from `from` to `to` (compare-and-set); a cancel also cancels
/// every contact not yet dialled. `false` when another request changed it first.
pub async fn set_status(
    tenant: &Tenant,
    id: &CampaignId,
    (from, to): (&str, &str),
    now: i64,
) -> Result<bool, StoreError> {
    let mut statements = vec![tenant.stmt(
        "UPDATE campaigns SET status = ?4, updated_at = ?5, next_tick_at = ?5,
           ended_at = CASE WHEN ?4 = 'canceled' THEN ?5 ELSE ended_at END
         WHERE tenant_id = ?1 AND id = ?2 AND status = ?3",
        &[id, &from, &to, &now],
    )?];
    if to == "canceled" {
        statements.push(tenant.stmt(
            "UPDATE campaign_contacts SET status = 'canceled', updated_at = ?3
             WHERE tenant_id = ?1 AND campaign_id = ?2 AND status = 'pending'
               AND EXISTS (SELECT 1 FROM campaigns WHERE id = ?2 AND status = 'canceled')",
            &[id, &now],
        )?);
    }
    let changed = db::batch(tenant.db(), statements).await?;
    Ok(changed.first().copied().unwrap_or(0) > 0)
}

/// The calls of the tenant's campaign still waiting to be dialled (a cancel cancels them).
pub async fn scheduled_calls(tenant: &Tenant, id: &CampaignId) -> Result<Vec<String>, StoreError> {
    let rows: Vec<IdRow> = tenant
        .all(
            "SELECT c.id FROM campaign_contacts cc JOIN calls c ON c.id = cc.call_id
             WHERE cc.tenant_id = ?1 AND cc.campaign_id = ?2 AND cc.status = 'in_progress'
               AND c.status = 'scheduled'",
            &[id],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[derive(Deserialize)]
struct IdRow {
    id: String,
}
crate::store::db::from_row!(IdRow { id });

/// One page of the rows of the tenant's campaign `id` (`status` narrows it), by line.
pub async fn contacts(
    tenant: &Tenant,
    id: &CampaignId,
    status: Option<&str>,
    window: &Page,
) -> Result<PageOf<ContactRow>, StoreError> {
    let query = format!(
        "{} WHERE tenant_id = ?1 AND campaign_id = ?2 AND (?3 IS NULL OR status = ?3)",
        ContactRow::SELECT
    );
    page::list(tenant, &query, &[id, &status], window).await
}

row! {
    /// A row of the results export: the contact and what its call came to.
    pub struct ExportRow {
        line: i64,
        phone: Option<String>,
        name: Option<String>,
        email: Option<String>,
        status: String,
        error: Option<String>,
        attempts: i64,
        call_id: Option<String>,
        outcome: Option<String>,
        duration_seconds: Option<i64>,
        analysis: Option<String>,
    }
}

/// Up to `limit` export rows of the tenant's campaign `id` after line `after`, by line.
pub async fn export_rows(
    tenant: &Tenant,
    id: &CampaignId,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>, StoreError> {
    tenant
        .all(
            "SELECT cc.line, COALESCE(cc.phone, cc.given_phone) AS phone, cc.name, cc.email,
               cc.status, cc.error, cc.attempts, cc.call_id, c.status AS outcome,
               c.duration_seconds, c.analysis
             FROM campaign_contacts cc LEFT JOIN calls c ON c.id = cc.call_id
             WHERE cc.tenant_id = ?1 AND cc.campaign_id = ?2 AND cc.line > ?3
             ORDER BY cc.line LIMIT ?4",
            &[id, &after, &limit],
        )
        .await
}

/// Active campaigns whose tick is due at `now`, across tenants (the scheduler serves them all).
pub async fn due_unscoped(
    db: &D1Database,
    now: i64,
    limit: i64,
) -> Result<Vec<Campaign>, StoreError> {
    db::all(
        db,
        &format!(
            "{} WHERE status = 'active' AND next_tick_at <= ?1 ORDER BY next_tick_at LIMIT ?2",
            Campaign::SELECT
        ),
        &[&now, &limit],
    )
    .await
}

/// When the next campaign tick is due, if any campaign is active.
pub async fn next_due_unscoped(db: &D1Database) -> Result<Option<i64>, StoreError> {
    db::earliest(
        db,
        "SELECT min(next_tick_at) AS at FROM campaigns WHERE status = 'active'",
        &[],
    )
    .await
}

/// Contacts of the campaign on its tenant's suppression list become `opted_out` before they
/// are dialled; how many.
pub async fn opt_out_suppressed(
    db: &D1Database,
    campaign: &Campaign,
    now: i64,
) -> Result<usize, StoreError> {
    db::run(
        db,
        "UPDATE campaign_contacts SET status = 'opted_out', updated_at = ?3
         WHERE campaign_id = ?1 AND status = 'pending'
           AND EXISTS (SELECT 1 FROM suppressions s
                       WHERE s.tenant_id = ?2 AND s.phone = campaign_contacts.phone)",
        &[&campaign.id, &campaign.tenant_id, &now],
    )
    .await
}

/// What pacing counts: the campaign's calls in flight and its dials in the last minute.
#[derive(Deserialize)]
pub struct Pace {
    pub in_flight: i64,
    pub recent: i64,
    /// The oldest dial of the last minute: a slot frees 60 s after it.
    pub oldest_recent: Option<i64>,
    /// The earliest retry not yet due.
    pub next_retry: Option<i64>,
}
crate::store::db::from_row!(Pace {
    in_flight,
    recent,
    oldest_recent,
    next_retry
});

/// The campaign's [`Pace`] at `now`.
pub async fn pace(db: &D1Database, campaign: &CampaignId, now: i64) -> Result<Pace, StoreError> {
    let since = now - 60_000;
    db::first(
        db,
        "SELECT
           (SELECT count(*) FROM campaign_contacts WHERE campaign_id = ?1
              AND status = 'in_progress') AS in_flight,
           (SELECT count(*) FROM campaign_contacts WHERE campaign_id = ?1
              AND last_dial_at > ?2) AS recent,
           (SELECT min(last_dial_at) FROM campaign_contacts WHERE campaign_id = ?1
              AND last_dial_at > ?2) AS oldest_recent,
           (SELECT min(next_attempt_at) FROM campaign_contacts WHERE campaign_id = ?1
              AND status = 'pending' AND next_attempt_at > ?3) AS next_retry",
        &[campaign, &since, &now],
    )
    .await?
    .ok_or(StoreError::Missing("campaign pace"))
}

/// The zones of the campaign's contacts due at `now`.
pub async fn due_zones(
    db: &D1Database,
    campaign: &CampaignId,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    #[derive(Deserialize)]
    struct ZoneRow {
        time_zone: String,
    }
    crate::store::db::from_row!(ZoneRow { time_zone });
    let rows: Vec<ZoneRow> = db::all(
        db,
        "SELECT DISTINCT time_zone FROM campaign_contacts
         WHERE campaign_id = ?1 AND status = 'pending' AND next_attempt_at <= ?2",
        &[campaign, &now],
    )
    .await?;
    Ok(rows.into_iter().map(|r| r.time_zone).collect())
}

row! {
    /// A contact the tick may claim.
    pub struct Due {
        id: i64,
        line: i64,
        phone: String,
        name: Option<String>,
        email: Option<String>,
        time_zone: String,
        vars: String,
        attempts: i64,
        call_id: Option<CallId>,
    }
}

/// Up to `limit` of the campaign's contacts due at `now` whose zone is in `zones`, in line
/// order (retries first when due).
pub async fn due_contacts(
    db: &D1Database,
    campaign: &CampaignId,
    zones: &[&str],
    now: i64,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    let zones = serde_json::to_string(zones).unwrap_or_else(|_| "[]".into());
    db::all(
        db,
        &format!(
            "SELECT {} FROM campaign_contacts
             WHERE campaign_id = ?1 AND status = 'pending' AND next_attempt_at <= ?2
               AND time_zone IN (SELECT value FROM json_each(?3))
             ORDER BY next_attempt_at, line LIMIT ?4",
            Due::COLUMNS
        ),
        &[campaign, &now, &zones, &limit],
    )
    .await
}

/// Claims `contact` for its next attempt and, in the same batch and only under this claim,
/// writes its call: `call` inserted for a first attempt, else the contact's ended call
/// re-scheduled as the next attempt at `now`. Two ticks (or a restart mid-tick) cannot both
/// claim the same attempt, and a call exists exactly when its claim does. `false` when another
/// tick got there first.
pub async fn claim(
    tenant: &Tenant,
    contact: &Due,
    claim: &str,
    call: &NewCall<'_>,
    detail: &Value,
) -> Result<bool, StoreError> {
    let db = tenant.db();
    let now = call.now;
    let mut statements = vec![db::stmt(
        db,
        "UPDATE campaign_contacts SET status = 'in_progress', claim = ?1,
           attempts = attempts + 1, call_id = ?2, last_dial_at = ?3, updated_at = ?3
         WHERE id = ?4 AND status = 'pending' AND attempts = ?5",
        &[&claim, call.id, &now, &contact.id, &contact.attempts],
    )?];
    let claimed = "EXISTS (SELECT 1 FROM campaign_contacts WHERE id = ?19 AND claim = ?20)";
    if contact.call_id.is_none() {
        statements.push(calls::insert(
            tenant,
            call,
            claimed,
            &[&contact.id, &claim],
        )?);
        let event = Event::new(call.id, "status", "scheduler", detail, now)
            .moving(None, CallStatus::Scheduled);
        statements.push(call_events::row(db, &event, When::Changed)?);
    } else {
        statements.push(db::stmt(
            db,
            "UPDATE calls SET status = 'scheduled', attempt = attempt + 1, start_at = ?1,
               provider_call_id = NULL, dispatched_at = NULL, answered_at = NULL, ended_at = NULL,
               locked_until = NULL, last_error = NULL, dial_after = NULL, updated_at = ?1
             WHERE id = ?2 AND status IN ('no_answer', 'busy')
               AND EXISTS (SELECT 1 FROM campaign_contacts WHERE id = ?3 AND claim = ?4)",
            &[&now, call.id, &contact.id, &claim],
        )?);
        let event = Event::new(call.id, "retry", "scheduler", detail, now)
            .moving(None, CallStatus::Scheduled);
        statements.push(call_events::row(db, &event, When::Changed)?);
    }
    let changed = db::batch(db, statements).await?;
    Ok(changed.first().copied().unwrap_or(0) > 0 && changed.get(1).copied().unwrap_or(0) > 0)
}

/// Sets when the scheduler next looks at the campaign.
pub async fn set_next_tick(db: &D1Database, id: &CampaignId, at: i64) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE campaigns SET next_tick_at = ?2 WHERE id = ?1",
        &[id, &at],
    )
    .await?;
    Ok(())
}

/// Marks the active campaign `completed` once no contact is pending or in flight; whether it
/// just completed (once).
pub async fn complete_if_done(
    db: &D1Database,
    id: &CampaignId,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = db::run(
        db,
        "UPDATE campaigns SET status = 'completed', ended_at = ?2, updated_at = ?2
         WHERE id = ?1 AND status = 'active'
           AND NOT EXISTS (SELECT 1 FROM campaign_contacts WHERE campaign_id = ?1
                             AND status IN ('pending', 'in_progress'))",
        &[id, &now],
    )
    .await?;
    Ok(changed > 0)
}

/// The in-flight contact whose call is `call_id`, with its campaign (a call's outcome
/// updates it).
#[derive(Deserialize)]
pub struct Dialled {
    pub id: i64,
    pub attempts: i64,
    pub time_zone: String,
    pub campaign_id: CampaignId,
    pub window: String,
}
crate::store::db::from_row!(Dialled {
    id,
    attempts,
    time_zone,
    campaign_id,
    window
});

/// The contact in flight on call `call_id`, if the call is a campaign's.
pub async fn dialled_unscoped(
    db: &D1Database,
    call_id: &CallId,
) -> Result<Option<Dialled>, StoreError> {
    db::first(
        db,
        "SELECT cc.id, cc.attempts, cc.time_zone, cc.campaign_id, c.window
         FROM campaign_contacts cc JOIN campaigns c ON c.id = cc.campaign_id
         WHERE cc.call_id = ?1 AND cc.status = 'in_progress'",
        &[call_id],
    )
    .await
}

/// The outcome of the contact's attempt `attempts`: `status` (`pending` with `retry_at` for a
/// retry), once; the campaign is looked at again at once.
pub async fn settle(
    db: &D1Database,
    contact: &Dialled,
    status: &str,
    retry_at: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = db::batch(
        db,
        vec![
            db::stmt(
                db,
                "UPDATE campaign_contacts SET status = ?1, next_attempt_at = COALESCE(?2, 0),
                   claim = NULL, updated_at = ?3
                 WHERE id = ?4 AND status = 'in_progress' AND attempts = ?5",
                &[&status, &retry_at, &now, &contact.id, &contact.attempts],
            )?,
            db::stmt(
                db,
                "UPDATE campaigns SET next_tick_at = min(next_tick_at, ?2)
                 WHERE id = ?1 AND changes() > 0",
                &[&contact.campaign_id, &now],
            )?,
        ],
    )
    .await?;
    Ok(changed.first().copied().unwrap_or(0) > 0)
}
