//! The `transcripts` table: one stored transcript per call, written at hang-up.

use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::tenant::Tenant;
use serde_json::Value;

row! {
    /// A call's transcript as stored (`turns` is the JSON array of turns).
    pub struct Transcript {
        turns: String,
        text: String,
        created_at: i64,
    }
}

/// The transcript of the tenant's call `call_id`, if one was stored.
pub async fn get(tenant: &Tenant, call_id: &str) -> Result<Option<Transcript>, StoreError> {
    tenant
        .first(
            &format!(
                "SELECT {} FROM transcripts WHERE tenant_id = ?1 AND call_id = ?2",
                Transcript::COLUMNS
            ),
            &[&call_id],
        )
        .await
}

/// Stores the transcript of the tenant's call `call_id` (a second hang-up replaces it).
pub async fn save(
    tenant: &Tenant,
    call_id: &str,
    turns: &Value,
    text: &str,
    now: i64,
) -> Result<(), StoreError> {
    // An insert has no `tenant_id = ?1` to scope by: the tenant is bound as its first value.
    db::run(
        tenant.db(),
        "INSERT INTO transcripts (tenant_id, call_id, turns, text, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (call_id) DO UPDATE SET turns = excluded.turns, text = excluded.text",
        &[tenant.id(), &call_id, &turns.to_string(), &text, &now],
    )
    .await?;
    Ok(())
}
