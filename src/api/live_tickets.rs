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
use crate::store::live_tickets::{self, NewTicket};
use crate::store::tenant::Tenant;
use phone_agent_core::auth::{key_hash, LIVE_TICKET_TTL_MS};
use serde_json::json;

/// Issues a ticket for the live view of `call_id` to any role that may read the call.
pub async fn issue(app: &App, who: &Principal, call_id: &str) -> ApiResult {
    own_call(app, who, call_id).await?;
    let ticket = new_secret("lvt")?;
    let now = now_ms();
    let expires_at = now + LIVE_TICKET_TTL_MS;
    let role = serde_json::to_value(who.role).map_err(ApiError::internal)?;
    let role = role.as_str().unwrap_or("viewer");
    let ticket_hash = key_hash(&ticket);
    live_tickets::issue(
        &Tenant::of(app, who)?,
        &NewTicket {
            ticket_hash: &ticket_hash,
            call_id,
            role,
            actor: &who.actor,
            now,
            expires_at,
        },
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
    let row =
        live_tickets::consume_unscoped(&app.db()?, &key_hash(ticket), call_id, now_ms()).await?;
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
