//! The campaign tick, run by the `Scheduler` (alarm, and the every-minute cron as the safety
//! net) before the dispatcher: for each active campaign due for a look, contacts on the
//! tenant's suppression list become `opted_out`; then, within pacing (calls per minute, calls
//! in flight) and the tick's bound ([`TICK_CLAIMS`] across campaigns), the due contacts whose
//! zone is inside the window are claimed, each with its call written in the same batch
//! (`store::campaigns::claim`), and the dispatcher that runs next dials them like any
//! scheduled call. A claim is a compare-and-set, so overlapping ticks or a restart between
//! claim and dial never dial a contact twice: the call exists exactly once per attempt, and the
//! dispatcher's own claim dials it once.

use crate::pipeline::campaigns::emit;
use crate::platform::http::{log_line, new_id, now_ms, rfc3339, ApiError};
use crate::platform::zones::IntlZones;
use crate::store::calls::NewCall;
use crate::store::campaigns::{self, Campaign, Due};
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::auth::new_token;
use phone_agent_core::campaigns::{open_zones, parse_window, Pacing, TICK_CLAIMS};
use phone_agent_core::ids::CallId;
use phone_agent_core::scheduling::{CallStatus, Direction};
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

/// Campaigns looked at per tick.
const CAMPAIGNS_PER_TICK: i64 = 10;
/// The longest a running campaign goes without a look (the cron's period).
const IDLE_LOOK_MS: i64 = 60_000;

/// Runs every due campaign tick; returns how many contacts were claimed for dialling.
pub async fn run_due(env: &Env) -> Result<usize, ApiError> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let due = campaigns::due_unscoped(&db, now, CAMPAIGNS_PER_TICK).await?;
    let mut room = TICK_CLAIMS;
    let mut claimed = 0;
    for campaign in due {
        match tick(env, &db, &campaign, &mut room, now).await {
            Ok(n) => claimed += n,
            Err(e) => log_line(
                json!({"level": "error", "msg": "campaign tick", "campaign_id": campaign.id,
                       "error": e.message}),
            ),
        }
    }
    Ok(claimed)
}

/// When the next campaign tick is due, if any.
pub async fn next_due(db: &D1Database) -> Result<Option<i64>, ApiError> {
    Ok(campaigns::next_due_unscoped(db).await?)
}

/// One campaign's tick; how many contacts it claimed.
async fn tick(
    env: &Env,
    db: &D1Database,
    campaign: &Campaign,
    room: &mut u32,
    now: i64,
) -> Result<usize, ApiError> {
    let opted_out = campaigns::opt_out_suppressed(db, campaign, now).await?;
    let window_json: Value = serde_json::from_str(&campaign.window).unwrap_or(Value::Null);
    let mut errors = Vec::new();
    let window = parse_window(&window_json, &IntlZones, "window", &mut errors)
        .ok_or_else(|| ApiError::internal("stored campaign window does not parse"))?;
    let pacing = Pacing {
        calls_per_minute: u32::try_from(campaign.calls_per_minute).unwrap_or(1),
        max_concurrent: u32::try_from(campaign.max_concurrent).unwrap_or(1),
    };
    let pace = campaigns::pace(db, &campaign.id, now).await?;
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let allowance = pacing.allowance(count(pace.recent), count(pace.in_flight), *room);
    let zones = campaigns::due_zones(db, &campaign.id, now).await?;
    let zone_names: Vec<&str> = zones.iter().map(String::as_str).collect();
    let now_utc = DateTime::from_timestamp_millis(now).unwrap_or_default();
    let (open, next_open) = open_zones(&window, &IntlZones, &zone_names, now_utc);
    let mut claimed = 0;
    if allowance > 0 && !open.is_empty() {
        let due =
            campaigns::due_contacts(db, &campaign.id, &open, now, i64::from(allowance)).await?;
        let tenant = Tenant::on(db, campaign.tenant_id.clone());
        for contact in &due {
            if claim(&tenant, campaign, contact, now).await? {
                claimed += 1;
                *room = room.saturating_sub(1);
            }
        }
    }
    // Look again when something can change: a pacing slot frees, a closed zone opens, a retry
    // comes due; an outcome or a control brings it forward, and a minute is the longest wait.
    let mut next = now + IDLE_LOOK_MS;
    if !open.is_empty() {
        if let Some(oldest) = pace.oldest_recent {
            if u32::try_from(pace.recent + claimed as i64).unwrap_or(u32::MAX)
                >= pacing.calls_per_minute
            {
                next = next.min(oldest + 60_000);
            }
        }
    }
    for at in [next_open.map(|t| t.timestamp_millis()), pace.next_retry] {
        next = next.min(at.unwrap_or(i64::MAX));
    }
    // The tick's bound, not pacing, stopped it: more are due at once.
    if allowance > 0 && claimed == allowance as usize {
        next = now;
    }
    campaigns::set_next_tick(db, &campaign.id, next.max(now + 1000)).await?;
    if campaigns::complete_if_done(db, &campaign.id, now).await? {
        let key = format!("{}:completed", campaign.id);
        emit(
            env,
            db,
            campaign,
            "campaign.completed",
            &key,
            json!({"status": "completed"}),
            now,
        )
        .await?;
    }
    if claimed > 0 || opted_out > 0 {
        log_line(
            json!({"level": "info", "msg": "campaign tick", "campaign_id": campaign.id,
                        "claimed": claimed, "opted_out": opted_out, "allowance": allowance,
                        "open_zones": open.len(), "next_tick_at": rfc3339(next)}),
        );
    }
    Ok(claimed)
}

/// Claims one contact and writes its call (first attempt) or re-schedules it (a retry).
async fn claim(
    tenant: &Tenant,
    campaign: &Campaign,
    contact: &Due,
    now: i64,
) -> Result<bool, ApiError> {
    let call_id: CallId = match &contact.call_id {
        Some(id) => id.clone(),
        None => new_id()?,
    };
    let token = new_token("clm", getrandom::getrandom)?;
    let metadata = json!({"campaign_id": campaign.id, "contact_line": contact.line}).to_string();
    let call = NewCall {
        id: &call_id,
        agent_id: Some(&campaign.agent_id),
        direction: Direction::Outbound,
        provider: campaign.provider,
        provider_call_id: None,
        status: CallStatus::Scheduled,
        to_number: &contact.phone,
        from_number: campaign.from_number.as_deref(),
        start_at: Some(now),
        time_zone: Some(&contact.time_zone),
        contact_name: contact.name.as_deref(),
        contact_email: contact.email.as_deref(),
        metadata: &metadata,
        // The row's other columns: the `{{contact.*}}` variables the session fills in.
        contact_fields: Some(&contact.vars),
        idempotency_key: None,
        request_hash: None,
        base_url: Some(&campaign.base_url),
        now,
    };
    let detail = json!({"campaign_id": campaign.id, "contact_line": contact.line,
                        "attempt": contact.attempts + 1, "start_at": rfc3339(now)});
    Ok(campaigns::claim(tenant, contact, &token, &call, &detail).await?)
}
