//! A tenant's slice of D1. Every query run through [`Tenant`] gets the tenant id bound as `?1`,
//! and its SQL must say `tenant_id = ?1`: a handler cannot reach another tenant's rows by
//! forgetting a `WHERE`, because handlers hold a `Tenant`, never the database.

use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::ApiError;
use crate::store::db::{self, Arg, FromRow};
use crate::store::error::StoreError;
use phone_agent_core::ids::TenantId;
use wasm_bindgen::JsCast;
use worker::d1::{D1Database, D1PreparedStatement};

/// The database as one tenant sees it.
pub struct Tenant {
    db: D1Database,
    id: TenantId,
}

impl Tenant {
    /// The caller's tenant.
    pub fn of(app: &App, who: &Principal) -> Result<Self, ApiError> {
        Ok(Self::new(app.db()?, TenantId::from(who.tenant_id.as_str())))
    }

    /// The tenant `id` (system work acting for a tenant it read from a row).
    pub fn new(db: D1Database, id: TenantId) -> Self {
        Self { db, id }
    }

    /// The tenant `id` on a database handle system work already holds (it shares the binding).
    pub fn on(db: &D1Database, id: TenantId) -> Self {
        Self::new(D1Database::unchecked_from_js(db.as_ref().clone()), id)
    }

    /// Whose rows these are.
    pub fn id(&self) -> &TenantId {
        &self.id
    }

    /// The database, for the store's cross-table statements that bind the tenant themselves.
    pub(in crate::store) fn db(&self) -> &D1Database {
        &self.db
    }

    fn scoped<'a>(&'a self, sql: &str, args: &[&'a dyn Arg]) -> Vec<&'a dyn Arg> {
        // A read or change says `tenant_id = ?1`; an insert names the column and binds `?1`.
        debug_assert!(
            sql.contains("tenant_id = ?1") || (sql.contains("INSERT") && sql.contains("?1")),
            "unscoped tenant query: {sql}"
        );
        let mut all: Vec<&dyn Arg> = Vec::with_capacity(args.len() + 1);
        all.push(&self.id);
        all.extend_from_slice(args);
        all
    }

    /// Prepares a tenant statement (for batches).
    pub(in crate::store) fn stmt(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> Result<D1PreparedStatement, StoreError> {
        db::stmt(&self.db, sql, &self.scoped(sql, args))
    }

    /// All rows of a tenant query.
    pub(in crate::store) async fn all<T: FromRow>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> Result<Vec<T>, StoreError> {
        db::all(&self.db, sql, &self.scoped(sql, args)).await
    }

    /// The first row of a tenant query, if any.
    pub(in crate::store) async fn first<T: FromRow>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> Result<Option<T>, StoreError> {
        Ok(self.all(sql, args).await?.into_iter().next())
    }

    /// Runs a tenant write; returns how many rows it changed.
    pub(in crate::store) async fn run(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> Result<usize, StoreError> {
        db::run(&self.db, sql, &self.scoped(sql, args)).await
    }
}
