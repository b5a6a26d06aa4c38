//! `POST /api/v1/calls/{id}/live-ticket`: single-use tickets for the live-view WebSocket. A
//! browser cannot put an Authorization header on a WebSocket, and an API key in a URL ends up in
//! access logs; so a key that may view the call trades itself for a ticket good for one upgrade
//! of that call within a minute. Only the ticket's SHA-256 is stored, and using it is a single
//! conditional UPDATE in D1 (strongly consistent: two upgrades racing with one ticket cannot
//! both win).

use crate::api::sessions::own_call;
use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{json_response, new_secret, now_ms, rfc3339, ApiError, ApiResult};
use crate::store::db;
use phone_agent_core::auth::{key_hash, Role, LIVE_TICKET_TTL_MS};
use serde::Deserialize;
use serde_json::json;

/// Issues a ticket for the live view of `call_id` to any role that may read the call.
pub async fn issue(app: &App, who: &Principal, call_id: &str) -> ApiResult {
    own_call(app, who, call_id).await?;
    let ticket = new_secret("lvt")?;
    let now = now_ms();
    let expires_at = now + LIVE_TICKET_TTL_MS;
    let role = serde_json::to_value(who.role).map_err(ApiError::internal)?;
    let db = app.db()?;
    db::batch(
        &db,
        vec![
            // Spent and expired tickets are worthless; clearing them here keeps the table small.
            db::stmt(
                &db,
                "DELETE FROM live_tickets WHERE expires_at <= ?",
                &[&now],
            )?,
            db::stmt(
                &db,
                "INSERT INTO live_tickets (ticket_hash, call_id, tenant_id, role, actor, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                &[
                    &key_hash(&ticket),
                    &call_id,
                    &who.tenant_id,
                    &role.as_str().unwrap_or("viewer"),
                    &who.actor,
                    &now,
                    &expires_at,
                ],
            )?,
        ],
    )
    .await?;
    Ok(json_response(
        201,
        &json!({"ticket": ticket, "call_id": call_id, "expires_at": rfc3339(expires_at)}),
    ))
}

/// Spends `ticket` on the live view of `call_id`: the principal who asked for it, or 401 when it
/// is unknown, for another call, used, expired, or its key has been revoked since.
pub async fn consume(app: &App, call_id: &str, ticket: &str) -> Result<Principal, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        tenant_id: String,
        role: Role,
        actor: String,
    }
    let row: Option<Row> = db::first(
        &app.db()?,
        "UPDATE live_tickets SET used_at = ?1
         WHERE ticket_hash = ?2 AND call_id = ?3 AND used_at IS NULL AND expires_at > ?1
           AND (actor = 'admin' OR EXISTS
                (SELECT 1 FROM api_keys WHERE id = live_tickets.actor AND revoked_at IS NULL))
         RETURNING tenant_id, role, actor",
        &[&now_ms(), &key_hash(ticket), &call_id],
    )
    .await?;
    let row = row.ok_or_else(|| {
        ApiError::unauthorized(
            "invalid, used or expired live ticket; get a new one from POST /api/v1/calls/{id}/live-ticket",
        )
    })?;
    Ok(Principal {
        tenant_id: row.tenant_id,
        role: row.role,
        actor: row.actor,
        bootstrap: false,
        request_id: app.request_id.clone(),
    })
}
