//! The `endpoints` table: where canonical events are forwarded. A deleted endpoint stays (its
//! deliveries point at it) but is invisible to the API.

use crate::platform::http::{new_id, now_ms};
use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::ids::EndpointId;
use phone_agent_core::patch::Patch;

row! {
    /// An endpoint as stored.
    pub struct Endpoint from "endpoints WHERE tenant_id = ?1 AND deleted_at IS NULL" {
        id: EndpointId,
        url: String,
        description: Option<String>,
        /// The current signing secret (`whsec_…`).
        secret: String,
        previous_secret_expires_at: Option<i64>,
        /// A JSON array of type filters; `None` is every type.
        event_types: Option<String>,
        /// `enabled`, `paused` or `disabled`.
        status: String,
        disabled_reason: Option<String>,
        created_at: i64,
        updated_at: i64,
    }
}

/// Validated writable fields, in the API's PATCH convention (absent keeps, `null` clears).
#[derive(Default)]
pub struct Fields {
    pub url: Patch<String>,
    /// The JSON array of type filters; `Null` clears the filter (every type).
    pub event_types: Patch<String>,
    pub description: Patch<String>,
    /// `enabled` or `paused`.
    pub status: Patch<String>,
}

listed!(Endpoint, created_at, Endpoint::SELECT, ["status"]);

/// The tenant's endpoint `id`, unless it does not exist or was deleted.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Endpoint>, StoreError> {
    tenant
        .first(&format!("{} AND id = ?2", Endpoint::SELECT), &[&id])
        .await
}

/// Stores a new endpoint signing with `secret` (enabled unless `fields` says paused).
pub async fn insert(tenant: &Tenant, fields: Fields, secret: &str) -> Result<Endpoint, StoreError> {
    let id: EndpointId = new_id()?;
    tenant
        .first(
            &format!(
                "INSERT INTO endpoints (tenant_id, id, url, description, secret, event_types,
                   status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 RETURNING {}",
                Endpoint::COLUMNS
            ),
            &[
                &id,
                &fields.url.into_value().unwrap_or_default(),
                &fields.description.into_value(),
                &secret,
                &fields.event_types.into_value(),
                &fields
                    .status
                    .into_value()
                    .unwrap_or_else(|| "enabled".into()),
                &now_ms(),
            ],
        )
        .await?
        .ok_or(StoreError::Missing("endpoint after insert"))
}

/// Applies `fields` to endpoint `id`. A new status clears the disabled reason (re-enabling
/// clears a 410-disable, and the backlog of pending deliveries resumes).
pub async fn update(
    tenant: &Tenant,
    id: &str,
    fields: &Fields,
    now: i64,
) -> Result<Option<Endpoint>, StoreError> {
    tenant
        .first(
            &format!(
                "UPDATE endpoints SET
                   url = COALESCE(?3, url),
                   event_types = CASE WHEN ?4 THEN ?5 ELSE event_types END,
                   description = CASE WHEN ?6 THEN ?7 ELSE description END,
                   status = COALESCE(?8, status),
                   disabled_reason = CASE WHEN ?8 IS NULL THEN disabled_reason ELSE NULL END,
                   updated_at = ?9
                 WHERE tenant_id = ?1 AND id = ?2 AND deleted_at IS NULL
                 RETURNING {}",
                Endpoint::COLUMNS
            ),
            &[
                &id,
                &fields.url.clone().into_value(),
                &!fields.event_types.is_absent(),
                &fields.event_types.clone().into_value(),
                &!fields.description.is_absent(),
                &fields.description.clone().into_value(),
                &fields.status.clone().into_value(),
                &now,
            ],
        )
        .await
}

/// Deletes endpoint `id` and cancels its pending deliveries, in one transaction.
pub async fn delete(tenant: &Tenant, id: &str) -> Result<(), StoreError> {
    let now = now_ms();
    db::batch(
        tenant.db(),
        vec![
            tenant.stmt(
                "UPDATE endpoints SET deleted_at = ?3, status = 'disabled',
                   disabled_reason = 'deleted', updated_at = ?3
                 WHERE tenant_id = ?1 AND id = ?2",
                &[&id, &now],
            )?,
            tenant.stmt(
                "UPDATE deliveries SET status = 'canceled', next_attempt_at = NULL, updated_at = ?3
                 WHERE tenant_id = ?1 AND endpoint_id = ?2 AND status = 'pending'",
                &[&id, &now],
            )?,
        ],
    )
    .await?;
    Ok(())
}

/// Makes `secret` the signing secret of endpoint `id`; the current one keeps signing until
/// `previous_expires_at`.
pub async fn rotate_secret(
    tenant: &Tenant,
    id: &str,
    secret: &str,
    previous_expires_at: i64,
    now: i64,
) -> Result<Option<Endpoint>, StoreError> {
    tenant
        .first(
            &format!(
                "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?3,
                   secret = ?4, updated_at = ?5
                 WHERE tenant_id = ?1 AND id = ?2 AND deleted_at IS NULL
                 RETURNING {}",
                Endpoint::COLUMNS
            ),
            &[&id, &previous_expires_at, &secret, &now],
        )
        .await
}
