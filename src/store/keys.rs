//! The `api_keys` table. Only a key's SHA-256 is stored, so a leaked table reveals no usable key.

use crate::platform::auth::Principal;
use crate::platform::http::now_ms;
use crate::store::audit::{self, Change};
use crate::store::db::{self, row, Arg};
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::auth::{key_hash, Role};
use phone_agent_core::ids::{KeyId, TenantId};
use worker::d1::{D1Database, D1PreparedStatement};

row! {
    /// A key as listed (never its hash).
    pub struct ApiKey from "api_keys WHERE tenant_id = ?1" {
        id: KeyId,
        name: String,
        role: Role,
        /// The key's first characters, to recognise it in lists.
        prefix: String,
        created_at: i64,
        last_used_at: Option<i64>,
        revoked_at: Option<i64>,
    }
}

/// A key about to be stored.
pub struct NewKey<'a> {
    pub id: &'a KeyId,
    pub name: &'a str,
    pub role: Role,
    /// The secret key itself: only its hash is written.
    pub key: &'a str,
    pub prefix: &'a str,
}

listed!(ApiKey, created_at, ApiKey::SELECT, []);

/// The tenant's key `id` (revoked ones too), if it exists.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<ApiKey>, StoreError> {
    tenant
        .first(&format!("{} AND id = ?2", ApiKey::SELECT), &[&id])
        .await
}

/// The insert of `key` for tenant `tenant_id`, for a batch (a new tenant's first key is
/// created with the tenant).
pub(in crate::store) fn insert_statement(
    db: &D1Database,
    tenant_id: &TenantId,
    key: &NewKey<'_>,
) -> Result<D1PreparedStatement, StoreError> {
    db::stmt(
        db,
        "INSERT INTO api_keys (tenant_id, id, name, role, key_hash, prefix, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &[
            tenant_id,
            key.id,
            &key.name,
            &key.role,
            &key_hash(key.key),
            &key.prefix,
            &now_ms(),
        ],
    )
}

/// Stores `key` for the tenant together with its audit entry (both or neither).
pub async fn insert(
    tenant: &Tenant,
    key: &NewKey<'_>,
    who: &Principal,
    change: &Change<'_>,
) -> Result<(), StoreError> {
    let insert = insert_statement(tenant.db(), tenant.id(), key)?;
    audit::batch_with_entry(tenant.db(), vec![insert], who, change).await
}

/// Revokes key `id` (a second revocation keeps the first time) together with its audit entry.
pub async fn revoke(
    tenant: &Tenant,
    id: &str,
    who: &Principal,
    change: &Change<'_>,
) -> Result<(), StoreError> {
    let revoke = tenant.stmt(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3)
         WHERE tenant_id = ?1 AND id = ?2",
        &[&id, &now_ms()],
    )?;
    audit::batch_with_entry(tenant.db(), vec![revoke], who, change).await
}

row! {
    /// What authenticates a request presenting a key.
    pub struct KeyGrant {
        id: KeyId,
        tenant_id: TenantId,
        role: Role,
        last_used_at: Option<i64>,
    }
}

/// The unrevoked key whose hash is `hash`, in whichever tenant holds it (authentication comes
/// before any tenant is known).
pub async fn by_hash_any_tenant(
    db: &D1Database,
    hash: &str,
) -> Result<Option<KeyGrant>, StoreError> {
    db::first(
        db,
        &format!(
            "SELECT {} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
            KeyGrant::COLUMNS
        ),
        &[&hash],
    )
    .await
}

/// Records that key `id` was used at `now` (the key was just authenticated, so its tenant is
/// implied by the id).
pub async fn touch(db: &D1Database, id: &KeyId, now: i64) -> Result<(), StoreError> {
    db::run(
        db,
        "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2",
        &[&now, id],
    )
    .await?;
    Ok(())
}

impl Arg for Role {
    fn js(&self) -> wasm_bindgen::JsValue {
        let name = serde_json::to_value(self).unwrap_or_default();
        wasm_bindgen::JsValue::from_str(name.as_str().unwrap_or("viewer"))
    }
}
