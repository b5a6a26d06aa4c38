//! `GET /api/v1/usage`: the tenant's usage (and cost, when unit prices are configured) per day
//! or month over a validated range, with the totals and the tenant's quotas.

use super::agents::field_errors;
use super::request::query;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, now_ms, ApiResult};
use crate::store::tenant::Tenant;
use crate::store::usage;
use phone_agent_core::usage::{bucket, day_of, month_start, CallUsage, Quotas, UsageQuery};
use serde_json::{json, Value};
use worker::Request;

pub(super) async fn get(req: &Request, app: &App, who: &Principal) -> ApiResult {
    let q = query(req)?;
    let now = now_ms();
    let range = UsageQuery::parse(
        q.get("from").map(String::as_str),
        q.get("to").map(String::as_str),
        q.get("granularity").map(String::as_str),
        &day_of(now),
    )
    .map_err(field_errors)?;
    let config = app.config()?;
    let tenant = Tenant::of(app, who)?;
    let days = usage::days(&tenant, &range.from, &range.to).await?;
    // Buckets in order: days arrive sorted, so a month's days are adjacent.
    let mut buckets: Vec<(String, i64, i64, CallUsage)> = Vec::new();
    for day in days {
        let key = bucket(&day.day, range.granularity);
        if buckets.last().map(|b| &b.0) != Some(&key) {
            buckets.push((key, 0, 0, CallUsage::default()));
        }
        if let Some(last) = buckets.last_mut() {
            last.1 += day.calls;
            last.2 += day.carrier_minutes;
            add(&mut last.3, &day.usage);
        }
    }
    let mut total = (0, 0, CallUsage::default());
    let render = |(period, calls, minutes, used): &(String, i64, i64, CallUsage)| {
        let mut v = used.to_json();
        // Minutes as billed: each call's started minutes, summed.
        v["carrier_minutes"] = Value::from(*minutes);
        v["calls"] = Value::from(*calls);
        v["period"] = Value::from(period.as_str());
        v["cost"] = config
            .prices
            .cost(used)
            .map_or(Value::Null, |c| c.to_json());
        v
    };
    let data: Vec<Value> = buckets
        .iter()
        .inspect(|b| {
            total.0 += b.1;
            total.1 += b.2;
            add(&mut total.2, &b.3);
        })
        .map(render)
        .collect();
    let mut total = render(&("total".to_owned(), total.0, total.1, total.2));
    if let Some(map) = total.as_object_mut() {
        map.remove("period");
    }
    let standing = usage::standing(&tenant, &month_start(now)).await?;
    let quotas = Quotas::effective(
        (standing.max_concurrent_calls, standing.monthly_minutes),
        &config.quotas,
    );
    Ok(json_response(
        200,
        &json!({
            "from": range.from, "to": range.to,
            "granularity": match range.granularity {
                phone_agent_core::usage::Granularity::Day => "day",
                phone_agent_core::usage::Granularity::Month => "month",
            },
            "currency": config.prices.any().then(|| config.prices.currency.clone()),
            "data": data,
            "total": total,
            "quotas": {
                "max_concurrent_calls": quotas.max_concurrent_calls,
                "monthly_minutes": quotas.monthly_minutes,
                "live_calls": standing.live_calls,
                "month_minutes_used": standing.month_minutes,
            },
        }),
    ))
}

fn add(sum: &mut CallUsage, more: &CallUsage) {
    sum.carrier_seconds += more.carrier_seconds;
    sum.stt_ms += more.stt_ms;
    sum.llm_prompt_tokens += more.llm_prompt_tokens;
    sum.llm_completion_tokens += more.llm_completion_tokens;
    sum.tts_chars += more.tts_chars;
    sum.tool_calls += more.tool_calls;
}
