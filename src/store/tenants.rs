//! The `tenants` table. Tenants are the bootstrap key's business, so these reads cross tenants.

use crate::platform::auth::Principal;
use crate::store::audit::{self, Change};
use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::keys::{self, NewKey};
use crate::store::page::{self, listed, Page, PageOf};
use phone_agent_core::ids::TenantId;
use worker::d1::D1Database;

/// Whether tenant `id` exists (the bootstrap key assigning a number to a tenant).
pub async fn exists(db: &D1Database, id: &str) -> Result<bool, StoreError> {
    let found = db::ids(db, "SELECT id FROM tenants WHERE id = ?1", &[&id]).await?;
    Ok(!found.is_empty())
}

row! {
    /// A tenant as listed.
    pub struct TenantRow {
        id: TenantId,
        name: String,
        created_at: i64,
    }
}

listed!(TenantRow, created_at);

/// One page of every tenant, newest first.
pub async fn list(db: &D1Database, window: &Page) -> Result<PageOf<TenantRow>, StoreError> {
    page::list_in(
        db,
        &format!("SELECT {} FROM tenants WHERE TRUE", TenantRow::COLUMNS),
        &[],
        window,
    )
    .await
}

/// Creates tenant `id` with its first (admin) key and the audit entry, all or nothing.
pub async fn insert(
    db: &D1Database,
    id: &TenantId,
    name: &str,
    created_at: i64,
    admin_key: &NewKey<'_>,
    who: &Principal,
    change: &Change<'_>,
) -> Result<(), StoreError> {
    let writes = vec![
        db::stmt(
            db,
            "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
            &[id, &name, &created_at],
        )?,
        keys::insert_statement(db, id, admin_key)?,
    ];
    audit::batch_with_entry(db, writes, who, change).await
}

/// Sets tenant `id`'s own recording retention (days; `None`: the deployment's default).
/// Whether the tenant exists.
pub async fn set_recording_retention(
    db: &D1Database,
    id: &str,
    days: Option<f64>,
) -> Result<bool, StoreError> {
    let changed = db::run(
        db,
        "UPDATE tenants SET recording_retention_days = ?2 WHERE id = ?1",
        &[&id, &days],
    )
    .await?;
    Ok(changed > 0)
}

row! {
    /// A tenant's own recording retention.
    pub struct Retention {
        recording_retention_days: Option<f64>,
    }
}

/// Tenant `id`'s own recording retention in days (`None`: the default), if the tenant exists.
pub async fn recording_retention(
    db: &D1Database,
    id: &str,
) -> Result<Option<Option<f64>>, StoreError> {
    let row: Option<Retention> = db::first(
        db,
        &format!("SELECT {} FROM tenants WHERE id = ?1", Retention::COLUMNS),
        &[&id],
    )
    .await?;
    Ok(row.map(|r| r.recording_retention_days))
}
