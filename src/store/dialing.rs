//! Toll-fraud limits on dialling: `callbacks` (one call back per call, a daily cap per number)
//! and `outbound_dials` (the tenant's hourly cap). Each limit is a guarded insert counted in
//! the same statement, so concurrent requests cannot both pass a limit only one fits under.

use crate::store::call_events::{self, Event, When};
use crate::store::calls::{self, NewCall};
use crate::store::db;
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{AgentId, CallId};
use phone_agent_core::scheduling::CallStatus;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

/// The agent of the tenant's call `call_id` and its settings, read when its tool runs.
#[derive(Deserialize)]
pub struct CallAgent {
    pub agent_id: Option<AgentId>,
    pub config: Option<String>,
    /// The contact the call was scheduled for, if any (where a booking's invitation goes
    /// unless the caller gives another address).
    pub contact_email: Option<String>,
    pub contact_name: Option<String>,
}
crate::store::db::from_row!(CallAgent {
    agent_id,
    config,
    contact_email,
    contact_name
});

/// The agent of the tenant's call `call_id` (its settings are `None` once it is deleted).
pub async fn agent_of(tenant: &Tenant, call_id: &str) -> Result<Option<CallAgent>, StoreError> {
    tenant
        .first(
            "SELECT c.agent_id, a.config, c.contact_email, c.contact_name
             FROM calls c LEFT JOIN agents a ON a.id = c.agent_id
             WHERE c.tenant_id = ?1 AND c.id = ?2",
            &[&call_id],
        )
        .await
}

/// What became of a call back.
#[derive(Debug, PartialEq, Eq)]
pub enum Callback {
    Scheduled,
    /// The source call has its call back already.
    AlreadyScheduled,
    /// The number had `max` call backs in the last `since`.
    CapReached,
}

/// Schedules `call` as the call back of `source`, in one batch (a transaction): the call only
/// if `source` has none yet and `call.to_number` had fewer than `max` call backs since `since`;
/// the `callbacks` row and both calls' history entries only if it was.
pub async fn schedule_callback(
    tenant: &Tenant,
    call: &NewCall<'_>,
    source: &CallId,
    (since, max): (i64, u32),
    detail_new: &Value,
    detail_source: &Value,
) -> Result<Callback, StoreError> {
    let db = tenant.db();
    let insert = calls::insert(
        tenant,
        call,
        "NOT EXISTS (SELECT 1 FROM callbacks WHERE source_call_id = ?19)
         AND (SELECT count(*) FROM callbacks
              WHERE tenant_id = ?1 AND to_number = ?6 AND created_at > ?20) < ?21",
        &[source, &since, &max],
    )?;
    let scheduled = Event::new(call.id, "status", "session", detail_new, call.now)
        .moving(None, CallStatus::Scheduled);
    let noted = Event::new(source, "callback", "session", detail_source, call.now);
    // The bookkeeping follows only if the call back was inserted.
    let more = vec![
        db::stmt(
            db,
            "INSERT INTO callbacks (source_call_id, tenant_id, to_number, call_id, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM calls WHERE id = ?4)",
            &[source, tenant.id(), &call.to_number, call.id, &call.now],
        )?,
        call_events::row(db, &noted, When::CallExists(call.id))?,
    ];
    let inserted =
        call_events::commit(db, insert, (&scheduled, When::CallExists(call.id)), more).await?;
    if inserted {
        return Ok(Callback::Scheduled);
    }
    let existing: Option<IgnoredAny> = db::first(
        db,
        "SELECT 1 AS one FROM callbacks WHERE source_call_id = ?1",
        &[source],
    )
    .await?;
    Ok(match existing {
        Some(_) => Callback::AlreadyScheduled,
        None => Callback::CapReached,
    })
}

/// The tenant's outbound dials in the hour's window, after taking a slot.
#[derive(Deserialize)]
pub struct Window {
    /// Dials in the window.
    pub n: i64,
    /// The oldest of them.
    pub oldest: Option<i64>,
    /// Whether this attempt holds a slot (now or from an earlier run).
    pub mine: i64,
}
crate::store::db::from_row!(Window { n, oldest, mine });

/// Takes one of the tenant's `cap` outbound slots since `window_start` for `call_id`'s
/// `attempt`, if one is free (count and insert in one statement; a slot already taken for this
/// attempt counts once), and returns the window as it then is.
pub async fn take_outbound_slot(
    tenant: &Tenant,
    call_id: &CallId,
    attempt: i64,
    (window_start, cap): (i64, u32),
    now: i64,
) -> Result<Option<Window>, StoreError> {
    db::run(
        tenant.db(),
        "INSERT INTO outbound_dials (call_id, attempt, tenant_id, at)
         SELECT ?1, ?2, ?3, ?4
         WHERE (SELECT count(*) FROM outbound_dials WHERE tenant_id = ?3 AND at > ?5) < ?6
         ON CONFLICT (call_id, attempt) DO NOTHING",
        &[call_id, &attempt, tenant.id(), &now, &window_start, &cap],
    )
    .await?;
    tenant
        .first(
            "SELECT count(*) AS n, min(at) AS oldest,
               (SELECT count(*) FROM outbound_dials WHERE call_id = ?2 AND attempt = ?3) AS mine
             FROM outbound_dials WHERE tenant_id = ?1 AND at > ?4",
            &[call_id, &attempt, &window_start],
        )
        .await
}
