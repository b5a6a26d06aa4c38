//! The `tenants` table. Tenants are the bootstrap key's business, so these reads cross tenants.

use crate::store::db;
use crate::store::error::StoreError;
use worker::d1::D1Database;

/// Whether tenant `id` exists (the bootstrap key assigning a number to a tenant).
pub async fn exists(db: &D1Database, id: &str) -> Result<bool, StoreError> {
    let found = db::ids(db, "SELECT id FROM tenants WHERE id = ?1", &[&id]).await?;
    Ok(!found.is_empty())
}
