//! `call_usage`, `usage_daily` and the tenants' quota columns: a call's usage written once with
//! its day's total, the usage API's range, and the quota guards (counted in the statement that
//! admits the call, so two calls arriving together cannot both take the last slot).

use crate::store::db;
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use phone_agent_core::usage::CallUsage;
use serde::Deserialize;

/// Stores `call_id`'s usage and adds it to the tenant's `day`, in one batch (a transaction):
/// the call's row is inserted once, and the day grows only by a row not counted yet, so a
/// retried step (or an instance reset between the write and the job's bookkeeping) adds
/// nothing the second time.
pub async fn record(
    tenant: &Tenant,
    call_id: &str,
    day: &str,
    usage: &CallUsage,
    now: i64,
) -> Result<(), StoreError> {
    let minutes = usage.carrier_minutes();
    let writes = vec![
        tenant.stmt(
            "INSERT INTO call_usage (tenant_id, call_id, day, carrier_seconds, stt_ms,
               llm_prompt_tokens, llm_completion_tokens, tts_chars, tool_calls, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (call_id) DO NOTHING",
            &[
                &call_id,
                &day,
                &usage.carrier_seconds,
                &usage.stt_ms,
                &usage.llm_prompt_tokens,
                &usage.llm_completion_tokens,
                &usage.tts_chars,
                &usage.tool_calls,
                &now,
            ],
        )?,
        tenant.stmt(
            "INSERT INTO usage_daily (tenant_id, day, calls, carrier_seconds, carrier_minutes,
               stt_ms, llm_prompt_tokens, llm_completion_tokens, tts_chars, tool_calls)
             SELECT ?1, day, 1, carrier_seconds, ?3, stt_ms, llm_prompt_tokens,
               llm_completion_tokens, tts_chars, tool_calls
             FROM call_usage WHERE tenant_id = ?1 AND call_id = ?2 AND counted = 0
             ON CONFLICT (tenant_id, day) DO UPDATE SET
               calls = calls + excluded.calls,
               carrier_seconds = carrier_seconds + excluded.carrier_seconds,
               carrier_minutes = carrier_minutes + excluded.carrier_minutes,
               stt_ms = stt_ms + excluded.stt_ms,
               llm_prompt_tokens = llm_prompt_tokens + excluded.llm_prompt_tokens,
               llm_completion_tokens = llm_completion_tokens + excluded.llm_completion_tokens,
               tts_chars = tts_chars + excluded.tts_chars,
               tool_calls = tool_calls + excluded.tool_calls",
            &[&call_id, &minutes],
        )?,
        tenant.stmt(
            "UPDATE call_usage SET counted = 1 WHERE tenant_id = ?1 AND call_id = ?2",
            &[&call_id],
        )?,
    ];
    db::batch(tenant.db(), writes).await?;
    Ok(())
}

const USAGE_COLUMNS: &str =
    "carrier_seconds, stt_ms, llm_prompt_tokens, llm_completion_tokens, tts_chars, tool_calls";

crate::store::db::from_row!(CallUsage {
    carrier_seconds,
    stt_ms,
    llm_prompt_tokens,
    llm_completion_tokens,
    tts_chars,
    tool_calls
});

/// The tenant's call `call_id`'s usage, once its end-of-call job wrote it.
pub async fn of_call(tenant: &Tenant, call_id: &str) -> Result<Option<CallUsage>, StoreError> {
    // `CallUsage` is the row: its fields are the table's column names.
    tenant
        .first(
            &format!(
                "SELECT {USAGE_COLUMNS} FROM call_usage WHERE tenant_id = ?1 AND call_id = ?2"
            ),
            &[&call_id],
        )
        .await
}

/// One day of a tenant's usage.
pub struct Day {
    pub day: String,
    pub calls: i64,
    /// Started minutes, summed per call (what carriers bill).
    pub carrier_minutes: i64,
    pub usage: CallUsage,
}

#[derive(Deserialize)]
struct DayRow {
    day: String,
    calls: i64,
    carrier_minutes: i64,
    carrier_seconds: i64,
    stt_ms: i64,
    llm_prompt_tokens: i64,
    llm_completion_tokens: i64,
    tts_chars: i64,
    tool_calls: i64,
}
crate::store::db::from_row!(DayRow {
    day,
    calls,
    carrier_minutes,
    carrier_seconds,
    stt_ms,
    llm_prompt_tokens,
    llm_completion_tokens,
    tts_chars,
    tool_calls
});

/// The tenant's days `from..=to` (`YYYY-MM-DD`) that had usage, oldest first.
pub async fn days(tenant: &Tenant, from: &str, to: &str) -> Result<Vec<Day>, StoreError> {
    let rows: Vec<DayRow> = tenant
        .all(
            &format!(
                "SELECT day, calls, carrier_minutes, {USAGE_COLUMNS} FROM usage_daily
                 WHERE tenant_id = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day"
            ),
            &[&from, &to],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Day {
            day: r.day,
            calls: r.calls,
            carrier_minutes: r.carrier_minutes,
            usage: CallUsage {
                carrier_seconds: r.carrier_seconds,
                stt_ms: r.stt_ms,
                llm_prompt_tokens: r.llm_prompt_tokens,
                llm_completion_tokens: r.llm_completion_tokens,
                tts_chars: r.tts_chars,
                tool_calls: r.tool_calls,
            },
        })
        .collect())
}

/// A tenant's own quota settings and its standing against them.
#[derive(Deserialize)]
pub struct Standing {
    pub max_concurrent_calls: Option<i64>,
    pub monthly_minutes: Option<i64>,
    /// Calls holding a slot now.
    pub live_calls: i64,
    /// Minutes used since `month_start` (each call's started minutes).
    pub month_minutes: i64,
}
crate::store::db::from_row!(Standing {
    max_concurrent_calls,
    monthly_minutes,
    live_calls,
    month_minutes
});

/// The tenant's quota settings, live calls and the minutes used since
/// `month_start` (`YYYY-MM-01`).
pub async fn standing(tenant: &Tenant, month_start: &str) -> Result<Standing, StoreError> {
    let found: Option<Standing> = tenant
        .first(
            "SELECT t.max_concurrent_calls, t.monthly_minutes,
               (SELECT count(*) FROM calls WHERE tenant_id = ?1
                  AND status IN ('dispatching', 'queued', 'ringing', 'in_progress')) AS live_calls,
               (SELECT COALESCE(sum(carrier_minutes), 0) FROM usage_daily
                  WHERE tenant_id = ?1 AND day >= ?2) AS month_minutes
             FROM tenants t WHERE t.id = ?1",
            &[&month_start],
        )
        .await?;
    found.ok_or(StoreError::Missing("tenant"))
}

/// The guard (SQL over `calls::insert`'s placeholders, its extras from `?19`) that admits a
/// new call only while the tenant has fewer than `?19` live calls and used fewer than `?20`
/// minutes since day `?21`: counted in the insert itself, so it is race-free.
pub const ADMIT_GUARD: &str = "(SELECT count(*) FROM calls WHERE tenant_id = ?1
      AND status IN ('dispatching', 'queued', 'ringing', 'in_progress')) < ?19
  AND (SELECT COALESCE(sum(carrier_minutes), 0) FROM usage_daily
      WHERE tenant_id = ?1 AND day >= ?21) < ?20";

/// Sets the tenant's own quotas (`None`: leave as is; `Some(None)`: back to the default).
pub async fn set_quotas(
    db: &worker::d1::D1Database,
    tenant_id: &str,
    (concurrent, minutes): (Option<Option<i64>>, Option<Option<i64>>),
) -> Result<bool, StoreError> {
    let changed = db::run(
        db,
        "UPDATE tenants SET
           max_concurrent_calls = CASE WHEN ?2 THEN ?3 ELSE max_concurrent_calls END,
           monthly_minutes = CASE WHEN ?4 THEN ?5 ELSE monthly_minutes END
         WHERE id = ?1",
        &[
            &tenant_id,
            &i64::from(concurrent.is_some()),
            &concurrent.flatten(),
            &i64::from(minutes.is_some()),
            &minutes.flatten(),
        ],
    )
    .await?;
    Ok(changed > 0)
}
