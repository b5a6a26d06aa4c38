//! The `webhook_events` table: every accepted event, raw and canonical — the head of the event
//! outbox. An event and its deliveries are written in one transaction, so an acknowledged event
//! is never lost and never forwarded twice to the same endpoint.

use crate::store::db;
use crate::store::deliveries;
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{CallId, DeliveryId, EventId};
use serde::Deserialize;
use serde_json::Value;
use worker::d1::{D1Database, D1PreparedStatement};

/// An event to store and forward.
pub struct NewEvent<'a> {
    pub tenant_id: &'a str,
    pub provider: &'a str,
    /// Dedupe key, unique per provider.
    pub provider_event_id: &'a str,
    pub event_type: &'a str,
    pub call_id: Option<&'a str>,
    pub received_at: i64,
    pub content_type: Option<&'a str>,
    pub raw_body: &'a str,
    /// The canonical envelope body, exactly as endpoints will receive it.
    pub payload: &'a Value,
}

/// Whether `publish` stored a new event or found the same one already stored.
pub enum Published {
    /// Stored, with this many deliveries created for matching endpoints.
    New(String, usize),
    Duplicate(String),
}

/// Stores the event (as `event_id`) and one pending delivery per matching endpoint in one
/// transaction; a duplicate (same provider and provider event id) creates nothing. Events come
/// from providers before any tenant is known, so this names the tenant itself. One round trip
/// of two statements whether the event is new or not: the insert returns the id stored under
/// the event's dedupe key (ours when it is new, the first copy's otherwise), so concurrent
/// copies of one event all answer with the one stored id.
pub async fn publish(
    db: &D1Database,
    event: &NewEvent<'_>,
    event_id: &EventId,
) -> Result<Published, StoreError> {
    let insert = insert(db, event, event_id, Conflict::ReturnStoredId)?;
    // The fan-out selects the event by `event_id`, so it creates nothing for a duplicate.
    let fan_out = deliveries::fan_out(db, event_id.as_str(), event.received_at, None, false)?;
    let outcomes = db::batch_returning(db, vec![insert, fan_out]).await?;
    let stored = outcomes
        .first()
        .and_then(|o| o.id.clone())
        .ok_or(StoreError::Missing("event neither inserted nor found"))?;
    if stored == event_id.as_str() {
        let deliveries = outcomes.get(1).map_or(0, |o| o.changes);
        return Ok(Published::New(stored, deliveries));
    }
    Ok(Published::Duplicate(stored))
}

/// Stores a test event of the tenant's and its one delivery, to `endpoint_id` whatever types
/// that endpoint subscribes to, in one transaction; returns the delivery's id (none when the
/// endpoint is no longer enabled). The sender then treats it like any other delivery.
pub async fn publish_test(
    tenant: &Tenant,
    event: &NewEvent<'_>,
    event_id: &EventId,
    endpoint_id: &str,
) -> Result<Option<DeliveryId>, StoreError> {
    debug_assert_eq!(event.tenant_id, tenant.id().as_str());
    let db = tenant.db();
    let insert = insert(db, event, event_id, Conflict::Ignore)?;
    let fan_out = deliveries::fan_out(
        db,
        event_id.as_str(),
        event.received_at,
        Some(endpoint_id),
        true,
    )?;
    db::batch(db, vec![insert, fan_out]).await?;
    let delivery = deliveries::of_event(tenant, event_id.as_str()).await?;
    Ok(delivery.into_iter().next().map(|d| d.id))
}

/// What the insert of an event already stored does.
enum Conflict {
    /// Nothing.
    Ignore,
    /// Returns the stored row's `id`: the conflict "updates" a column to its own value, since
    /// `RETURNING` yields only rows the statement inserted or updated. That rewrites the
    /// duplicate's row unchanged (no indexed or key column is set), which spares every new event a
    /// second statement reading its id back.
    ReturnStoredId,
}

/// The statement that stores `event` as `event_id` unless the provider sent it before.
fn insert(
    db: &D1Database,
    event: &NewEvent<'_>,
    event_id: &EventId,
    conflict: Conflict,
) -> Result<D1PreparedStatement, StoreError> {
    macro_rules! insert_or {
        ($on_conflict:literal) => {
            concat!(
                "INSERT INTO webhook_events (id, tenant_id, provider, provider_event_id, type,
                   call_id, received_at, content_type, raw_body, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (provider, provider_event_id) ",
                $on_conflict
            )
        };
    }
    let sql = match conflict {
        Conflict::Ignore => insert_or!("DO NOTHING"),
        Conflict::ReturnStoredId => {
            insert_or!("DO UPDATE SET content_type = content_type RETURNING id")
        }
    };
    let payload = event.payload.to_string();
    db::stmt(
        db,
        sql,
        &[
            &event_id,
            &event.tenant_id,
            &event.provider,
            &event.provider_event_id,
            &event.event_type,
            &event.call_id,
            &event.received_at,
            &event.content_type,
            &event.raw_body,
            &payload,
        ],
    )
}

/// A stored event, as the API shows it.
#[derive(Deserialize)]
pub struct Event {
    pub id: EventId,
    pub provider: String,
    pub provider_event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub call_id: Option<CallId>,
    pub received_at: i64,
    /// The canonical envelope body (JSON text).
    pub payload: String,
}
crate::store::db::from_row!(Event {
    id,
    provider,
    provider_event_id,
    event_type = "type",
    call_id,
    received_at,
    payload
});

const SELECT: &str = "SELECT id, provider, provider_event_id, type, call_id, received_at, payload
     FROM webhook_events WHERE tenant_id = ?1";

listed!(Event, received_at, SELECT, ["type", "provider", "call_id"]);

/// The tenant's event `id`, if it exists.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Event>, StoreError> {
    tenant.first(&format!("{SELECT} AND id = ?2"), &[&id]).await
}
