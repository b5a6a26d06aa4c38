//! A campaign's side of the pipeline: its `campaign.*` events (published to the outbox like
//! every other event) and what a contact's call outcome makes of the contact (the core's
//! `campaigns::after_call`: done, or pending again for a retry inside the calling window).

use crate::pipeline::forwarding::{self, OwnEvent};
use crate::platform::alarm;
use crate::platform::http::ApiError;
use crate::platform::zones::IntlZones;
use crate::store::agents;
use crate::store::calls::Call;
use crate::store::campaigns::{self, Campaign};
use crate::store::tenant::Tenant;
use chrono::DateTime;
use phone_agent_core::agents::retry_policy;
use phone_agent_core::campaigns::{after_call, parse_window, AfterCall};
use phone_agent_core::scheduling::CallStatus;
use phone_agent_core::zones::Zone;
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

/// The campaign a call was dialled for, if any (its metadata says; set by the campaign tick).
pub fn campaign_of(call: &Call) -> Option<String> {
    serde_json::from_str::<Value>(&call.metadata)
        .ok()?
        .get("campaign_id")?
        .as_str()
        .map(str::to_owned)
}

/// Publishes `event_type` (`campaign.started|paused|resumed|completed|canceled`) about
/// `campaign`, once per `key`, and wakes the scheduler to forward it.
pub async fn emit(
    env: &Env,
    db: &D1Database,
    campaign: &Campaign,
    event_type: &str,
    key: &str,
    extra: Value,
    now: i64,
) -> Result<(), ApiError> {
    let mut data = json!({
        "campaign_id": campaign.id,
        "agent_id": campaign.agent_id,
        "name": campaign.name,
    });
    if let (Some(target), Value::Object(extra)) = (data.as_object_mut(), extra) {
        target.extend(extra);
    }
    forwarding::publish_own(
        env,
        db,
        OwnEvent {
            tenant_id: campaign.tenant_id.as_str(),
            event_type,
            key,
            call_id: None,
            data,
            now,
        },
    )
    .await
}

/// A campaign call reached its final status `outcome`: the contact is done, or pending again
/// at the retry time the agent's policy and the window give; the campaign is looked at again
/// at once (a slot freed, or it may be complete). A repeated outcome changes nothing.
pub async fn call_ended(
    env: &Env,
    db: &D1Database,
    call: &Call,
    outcome: CallStatus,
    now: i64,
) -> Result<(), ApiError> {
    let Some(contact) = campaigns::dialled_unscoped(db, &call.id).await? else {
        return Ok(());
    };
    let policy = match &call.agent_id {
        Some(id) => {
            let tenant = Tenant::on(db, call.tenant_id.clone());
            let agent = agents::get(&tenant, id.as_str()).await?;
            let config: Value = agent
                .and_then(|a| serde_json::from_str(&a.config).ok())
                .unwrap_or(Value::Null);
            retry_policy(&config)
        }
        None => Default::default(),
    };
    let window_json: Value = serde_json::from_str(&contact.window).unwrap_or(Value::Null);
    let mut errors = Vec::new();
    let window = parse_window(&window_json, &IntlZones, "window", &mut errors)
        .ok_or_else(|| ApiError::internal("stored campaign window does not parse"))?;
    let zone = Zone::resolve(&IntlZones, &contact.time_zone)
        .ok_or_else(|| ApiError::internal("stored contact zone does not resolve"))?;
    let now_utc = DateTime::from_timestamp_millis(now).unwrap_or_default();
    let attempt = u32::try_from(contact.attempts).unwrap_or(u32::MAX);
    let (status, retry_at) = match after_call(policy, outcome, attempt, now_utc, &window, &zone) {
        AfterCall::Done(status) => (status.as_str(), None),
        AfterCall::RetryAt(at) => ("pending", Some(at.timestamp_millis())),
    };
    if campaigns::settle(db, &contact, status, retry_at, now).await? {
        alarm::wake_at(env, now).await;
    }
    Ok(())
}
