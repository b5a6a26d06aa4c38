//! The `deliveries` and `delivery_attempts` tables: the event outbox's work items. A delivery
//! is leased (`locked_until`) before each attempt, so overlapping senders (first attempt,
//! scheduler alarm, cron) never send the same attempt twice; every attempt is logged in the same
//! transaction that moves the delivery on.

use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::{DeliveryId, EndpointId, EventId};
use serde::Deserialize;
use worker::d1::{D1Database, D1PreparedStatement};

/// Creates one pending delivery per enabled endpoint whose filter matches the event's type
/// (`*`, an exact type, or a `prefix.*` wildcard; `?4` = 1 skips the filter: a test event goes
/// to the endpoint it was sent to whatever it subscribes to); existing deliveries are left alone.
const FAN_OUT: &str = "
INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
SELECT 'dlv_' || lower(hex(randomblob(13))), e.tenant_id, e.id, p.id, 'pending', ?2, ?2, ?2
FROM webhook_events e JOIN endpoints p ON p.tenant_id = e.tenant_id
WHERE e.id = ?1 AND p.status = 'enabled' AND p.deleted_at IS NULL
  AND (?3 IS NULL OR p.id = ?3)
  AND (?4 = 1 OR p.event_types IS NULL OR EXISTS (
        SELECT 1 FROM json_each(p.event_types) t
        WHERE t.value = e.type OR t.value = '*'
           OR (substr(t.value, -2) = '.*'
               AND substr(e.type, 1, length(t.value) - 1) = substr(t.value, 1, length(t.value) - 1))))
ON CONFLICT (event_id, endpoint_id) DO NOTHING";

/// The fan-out of event `event_id` (to one endpoint, or every matching one; `any_type` ignores
/// the endpoints' filters) due at `now`, for the batch that stores or replays the event; the
/// tenant is the event's own.
pub(in crate::store) fn fan_out(
    db: &D1Database,
    event_id: &str,
    now: i64,
    endpoint_id: Option<&str>,
    any_type: bool,
) -> Result<D1PreparedStatement, StoreError> {
    db::stmt(db, FAN_OUT, &[&event_id, &now, &endpoint_id, &any_type])
}

row! {
    /// A delivery as the API shows it.
    pub struct Delivery from "deliveries WHERE tenant_id = ?1" {
        id: DeliveryId,
        event_id: EventId,
        endpoint_id: EndpointId,
        /// `pending`, `succeeded`, `failed`, `dead` or `canceled`.
        status: String,
        attempts: i64,
        next_attempt_at: Option<i64>,
        last_status_code: Option<i64>,
        last_response: Option<String>,
        last_error: Option<String>,
        created_at: i64,
        updated_at: i64,
    }
}

listed!(
    Delivery,
    created_at,
    Delivery::SELECT,
    ["status", "endpoint_id", "event_id"]
);

/// The tenant's delivery `id`, if it exists.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Delivery>, StoreError> {
    tenant
        .first(&format!("{} AND id = ?2", Delivery::SELECT), &[&id])
        .await
}

row! {
    /// One logged attempt of a delivery.
    pub struct Attempt {
        attempt: i64,
        at: i64,
        status_code: Option<i64>,
        latency_ms: Option<i64>,
        response_excerpt: Option<String>,
        error: Option<String>,
    }
}

/// Every attempt of the tenant's delivery `id`, first first.
pub async fn attempts(tenant: &Tenant, id: &str) -> Result<Vec<Attempt>, StoreError> {
    tenant
        .all(
            &format!(
                "SELECT {} FROM delivery_attempts
                 WHERE delivery_id = ?2
                   AND delivery_id IN (SELECT id FROM deliveries WHERE tenant_id = ?1)
                 ORDER BY attempt",
                Attempt::COLUMNS
            ),
            &[&id],
        )
        .await
}

row! {
    /// A delivery as listed with its event.
    pub struct EventDelivery {
        id: DeliveryId,
        endpoint_id: EndpointId,
        status: String,
        attempts: i64,
        last_status_code: Option<i64>,
    }
}

/// The deliveries of the tenant's event `event_id`, oldest first.
pub async fn of_event(tenant: &Tenant, event_id: &str) -> Result<Vec<EventDelivery>, StoreError> {
    tenant
        .all(
            &format!(
                "SELECT {} FROM deliveries WHERE tenant_id = ?1 AND event_id = ?2
                 ORDER BY created_at, id",
                EventDelivery::COLUMNS
            ),
            &[&event_id],
        )
        .await
}

/// Puts an event's deliveries (optionally one endpoint's) back to pending as a new retry
/// series and creates deliveries for endpoints that match now, in one transaction; returns how
/// many are pending.
pub async fn replay(
    tenant: &Tenant,
    event_id: &str,
    endpoint_id: Option<&str>,
    now: i64,
) -> Result<usize, StoreError> {
    let reset = tenant.stmt(
        "UPDATE deliveries SET status = 'pending', series_attempts = 0, next_attempt_at = ?2,
           locked_until = NULL, updated_at = ?2
         WHERE tenant_id = ?1 AND event_id = ?3 AND (?4 IS NULL OR endpoint_id = ?4)
           AND status != 'pending'
           AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted_at IS NULL)",
        &[&now, &event_id, &endpoint_id],
    )?;
    let fan_out = fan_out(tenant.db(), event_id, now, endpoint_id, false)?;
    let changes = db::batch(tenant.db(), vec![reset, fan_out]).await?;
    Ok(changes.iter().sum())
}

/// Which dead deliveries a redrive takes (each `None` matches all; `[since, until)` bounds
/// their creation).
pub struct Redrive<'a> {
    pub endpoint_id: Option<&'a str>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Puts the tenant's dead deliveries back to pending as a new retry series; returns how many.
pub async fn redrive(tenant: &Tenant, which: &Redrive<'_>, now: i64) -> Result<usize, StoreError> {
    tenant
        .run(
            "UPDATE deliveries SET status = 'pending', series_attempts = 0, next_attempt_at = ?2,
               locked_until = NULL, updated_at = ?2
             WHERE tenant_id = ?1 AND status = 'dead' AND (?3 IS NULL OR endpoint_id = ?3)
               AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5)
               AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted_at IS NULL)",
            &[&now, &which.endpoint_id, &which.since, &which.until],
        )
        .await
}

// The sender's side: system work over every tenant's deliveries.

/// The pending deliveries of event `event_id` (its first attempts, right after the ack).
pub async fn pending_of_event(db: &D1Database, event_id: &str) -> Result<Vec<String>, StoreError> {
    db::ids(
        db,
        "SELECT id FROM deliveries WHERE event_id = ?1 AND status = 'pending'",
        &[&event_id],
    )
    .await
}

/// Up to `limit` deliveries of any tenant due at `now` and not leased, to enabled endpoints,
/// most overdue first.
pub async fn due_any_tenant(
    db: &D1Database,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    db::ids(
        db,
        "SELECT d.id FROM deliveries d JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
           AND (d.locked_until IS NULL OR d.locked_until < ?1)
           AND p.status = 'enabled' AND p.deleted_at IS NULL
         ORDER BY d.next_attempt_at LIMIT ?2",
        &[&now, &limit],
    )
    .await
}

/// When the next pending delivery of any tenant to an enabled endpoint is due, if any.
pub async fn next_due_any_tenant(db: &D1Database) -> Result<Option<i64>, StoreError> {
    db::earliest(
        db,
        "SELECT min(d.next_attempt_at) AS at FROM deliveries d JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.status = 'pending' AND p.status = 'enabled' AND p.deleted_at IS NULL",
        &[],
    )
    .await
}

/// A leased delivery with what its attempt needs: the event's payload and the endpoint.
#[derive(Deserialize)]
pub struct Leased {
    pub attempts: i64,
    pub series_attempts: i64,
    pub event_id: EventId,
    pub payload: String,
    pub endpoint_id: EndpointId,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub endpoint_status: String,
    pub deleted_at: Option<i64>,
}
crate::store::db::from_row!(Leased {
    attempts,
    series_attempts,
    event_id,
    payload,
    endpoint_id,
    url,
    secret,
    previous_secret,
    previous_secret_expires_at,
    endpoint_status,
    deleted_at
});

/// Leases delivery `id` until `until` if it is still pending, due at `now` and not leased by
/// another sender, then loads it; `None` when someone else has it or it is no longer due.
pub async fn lease(
    db: &D1Database,
    id: &str,
    now: i64,
    until: i64,
) -> Result<Option<Leased>, StoreError> {
    let leased = db::run(
        db,
        "UPDATE deliveries SET locked_until = ?1 WHERE id = ?2 AND status = 'pending'
           AND next_attempt_at <= ?3 AND (locked_until IS NULL OR locked_until < ?3)",
        &[&until, &id, &now],
    )
    .await?;
    if leased == 0 {
        return Ok(None);
    }
    db::first(
        db,
        "SELECT d.attempts, d.series_attempts, e.id AS event_id, e.payload, p.id AS endpoint_id,
           p.url, p.secret, p.previous_secret, p.previous_secret_expires_at,
           p.status AS endpoint_status, p.deleted_at
         FROM deliveries d JOIN webhook_events e ON e.id = d.event_id
           JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.id = ?1",
        &[&id],
    )
    .await
}

/// Gives the lease on delivery `id` back without an attempt (its endpoint is paused: the
/// backlog waits).
pub async fn release(db: &D1Database, id: &str) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE deliveries SET locked_until = NULL WHERE id = ?1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// One finished attempt and where it leaves the delivery.
pub struct AttemptRecord<'a> {
    pub delivery_id: &'a str,
    /// The attempt's number over the delivery's life, and within the current retry series.
    pub attempt: i64,
    pub series_attempt: i64,
    pub started: i64,
    pub finished: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: Option<&'a str>,
    pub error: Option<&'a str>,
    /// `pending` (a retry at `next_attempt_at`), `succeeded`, `dead` or `failed`.
    pub status: &'a str,
    pub next_attempt_at: Option<i64>,
    /// Disables the endpoint with this reason (it answered 410 Gone).
    pub disable_endpoint: Option<(&'a EndpointId, &'a str)>,
}

/// Logs the attempt, moves the delivery on and releases its lease (and disables the endpoint
/// when asked), in one transaction.
pub async fn record(db: &D1Database, a: &AttemptRecord<'_>) -> Result<(), StoreError> {
    let mut statements = vec![
        db::stmt(
            db,
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms,
               response_excerpt, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                &a.delivery_id,
                &a.attempt,
                &a.started,
                &a.status_code,
                &a.latency_ms,
                &a.response_excerpt,
                &a.error,
            ],
        )?,
        db::stmt(
            db,
            "UPDATE deliveries SET status = ?1, attempts = ?2, series_attempts = ?3,
               first_attempt_at = COALESCE(first_attempt_at, ?4), next_attempt_at = ?5,
               locked_until = NULL, last_status_code = ?6, last_response = ?7, last_error = ?8,
               updated_at = ?9
             WHERE id = ?10",
            &[
                &a.status,
                &a.attempt,
                &a.series_attempt,
                &a.started,
                &a.next_attempt_at,
                &a.status_code,
                &a.response_excerpt,
                &a.error,
                &a.finished,
                &a.delivery_id,
            ],
        )?,
    ];
    if let Some((endpoint_id, reason)) = a.disable_endpoint {
        statements.push(db::stmt(
            db,
            "UPDATE endpoints SET status = 'disabled', disabled_reason = ?1, updated_at = ?2
             WHERE id = ?3",
            &[&reason, &a.finished, endpoint_id],
        )?);
    }
    db::batch(db, statements).await?;
    Ok(())
}
