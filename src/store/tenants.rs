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
