//! The `suppressions` table: the numbers a tenant must not message or call (an opt-out
//! keyword from the number itself, or an operator). SMS sending and campaign dialling both
//! check it.

use crate::platform::http::{now_ms, rfc3339};
use crate::store::db::row;
use crate::store::error::StoreError;
use crate::store::page::{self, listed, Page, PageOf};
use crate::store::tenant::Tenant;

row! {
    /// A suppressed number as listed.
    pub struct Suppression {
        /// The phone, E.164 (the row's identity within the tenant, so also the cursor's id).
        id: String,
        source: String,
        /// RFC 3339, as stored.
        created_at: String,
        /// `created_at` in ms: the list order.
        at_ms: i64,
    }
}

listed!(Suppression, at_ms);

/// The table's rows in the shape the pager reads: `id` is the phone, `at_ms` the creation time
/// in ms (the column itself is RFC 3339 text).
const LISTED: &str = "SELECT id, source, created_at, at_ms FROM (
    SELECT tenant_id, phone AS id, source, created_at,
      CAST(ROUND((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER) AS at_ms
    FROM suppressions) WHERE tenant_id = ?1";

/// Suppresses `phone` for the tenant, from `source`; `None` when it already was (the first
/// entry, and its source, stay).
pub async fn add(
    tenant: &Tenant,
    phone: &str,
    source: &str,
) -> Result<Option<Suppression>, StoreError> {
    let created_at = rfc3339(now_ms());
    let inserted = tenant
        .run(
            "INSERT INTO suppressions (tenant_id, phone, source, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, phone) DO NOTHING",
            &[&phone, &source, &created_at],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    get(tenant, phone).await
}

/// The tenant's suppression of `phone`, if any.
pub async fn get(tenant: &Tenant, phone: &str) -> Result<Option<Suppression>, StoreError> {
    tenant
        .first(&format!("{LISTED} AND id = ?2"), &[&phone])
        .await
}

/// Lifts the tenant's suppression of `phone`; whether there was one.
pub async fn remove(tenant: &Tenant, phone: &str) -> Result<bool, StoreError> {
    let removed = tenant
        .run(
            "DELETE FROM suppressions WHERE tenant_id = ?1 AND phone = ?2",
            &[&phone],
        )
        .await?;
    Ok(removed > 0)
}

/// Whether the tenant must not message or call `phone`.
pub async fn contains(tenant: &Tenant, phone: &str) -> Result<bool, StoreError> {
    #[derive(serde::Deserialize)]
    struct Row {
        #[allow(dead_code)]
        phone: String,
    }
    crate::store::db::from_row!(Row { phone });
    let row: Option<Row> = tenant
        .first(
            "SELECT phone FROM suppressions WHERE tenant_id = ?1 AND phone = ?2",
            &[&phone],
        )
        .await?;
    Ok(row.is_some())
}

/// One page of the tenant's suppressions, newest first.
pub async fn list(tenant: &Tenant, window: &Page) -> Result<PageOf<Suppression>, StoreError> {
    page::list(tenant, LISTED, &[], window).await
}
