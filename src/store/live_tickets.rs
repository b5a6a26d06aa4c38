//! The `live_tickets` table: single-use tickets for the live-view WebSocket, stored as hashes.

use crate::store::db;
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use phone_agent_core::auth::Role;
use serde::Deserialize;
use worker::d1::D1Database;

/// A ticket about to be stored.
pub struct NewTicket<'a> {
    pub ticket_hash: &'a str,
    pub call_id: &'a str,
    pub role: &'a str,
    /// The key (or `admin`) that asked for it.
    pub actor: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// Stores a ticket of the tenant, clearing expired ones in the same batch (they are worthless,
/// and this keeps the table small).
pub async fn issue(tenant: &Tenant, ticket: &NewTicket<'_>) -> Result<(), StoreError> {
    db::batch(
        tenant.db(),
        vec![
            db::stmt(
                tenant.db(),
                "DELETE FROM live_tickets WHERE expires_at <= ?1",
                &[&ticket.now],
            )?,
            db::stmt(
                tenant.db(),
                "INSERT INTO live_tickets (tenant_id, ticket_hash, call_id, role, actor, created_at,
                   expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &[
                    tenant.id(),
                    &ticket.ticket_hash,
                    &ticket.call_id,
                    &ticket.role,
                    &ticket.actor,
                    &ticket.now,
                    &ticket.expires_at,
                ],
            )?,
        ],
    )
    .await?;
    Ok(())
}

/// Who a spent ticket was issued to.
#[derive(Deserialize)]
pub struct Holder {
    pub tenant_id: String,
    pub role: Role,
    pub actor: String,
}
crate::store::db::from_row!(Holder {
    tenant_id,
    role,
    actor
});

/// Spends the ticket hashed `ticket_hash` on call `call_id` (before any principal is known, so
/// across tenants): its holder, or `None` when it is unknown, for another call, used, expired,
/// or its key has been revoked since. One conditional UPDATE: two upgrades racing with one
/// ticket cannot both win.
pub async fn consume_unscoped(
    db: &D1Database,
    ticket_hash: &str,
    call_id: &str,
    now: i64,
) -> Result<Option<Holder>, StoreError> {
    db::first(
        db,
        "UPDATE live_tickets SET used_at = ?1
         WHERE ticket_hash = ?2 AND call_id = ?3 AND used_at IS NULL AND expires_at > ?1
           AND (actor = 'admin' OR EXISTS
                (SELECT 1 FROM api_keys WHERE id = live_tickets.actor AND revoked_at IS NULL))
         RETURNING tenant_id, role, actor",
        &[&now, &ticket_hash, &call_id],
    )
    .await
}
