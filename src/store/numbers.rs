//! The `phone_numbers` table: which agent answers each of our numbers.

use crate::platform::http::{new_id, now_ms};
use crate::store::db::{self, row};
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::agents::NumberSpec;
use phone_agent_core::ids::{AgentId, NumberId, TenantId};
use serde::{Deserialize, Serialize};
use worker::d1::D1Database;

row! {
    /// A number as stored.
    pub struct Number from "phone_numbers WHERE tenant_id = ?1" {
        id: NumberId,
        /// E.164; unique across tenants.
        number: String,
        agent_id: AgentId,
        owner_phone: Option<String>,
        #[serde(deserialize_with = "db::bool_from_int")]
        ring_owner_first: bool,
        created_at: i64,
        updated_at: i64,
        /// Business hours, JSON as the core stored them.
        hours: Option<String>,
        after_hours_agent_id: Option<AgentId>,
    }
}

listed!(Number, created_at, Number::SELECT, ["agent_id"]);

/// The tenant's number `id`, if it exists.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Number>, StoreError> {
    tenant
        .first(&format!("{} AND id = ?2", Number::SELECT), &[&id])
        .await
}

/// The caller id of an agent's scheduled calls: the tenant's first number it answers.
pub async fn first_of_agent(
    tenant: &Tenant,
    agent_id: &AgentId,
) -> Result<Option<String>, StoreError> {
    #[derive(Deserialize)]
    struct Row {
        number: String,
    }
    crate::store::db::from_row!(Row { number });
    let row: Option<Row> = tenant
        .first(
            "SELECT number FROM phone_numbers WHERE tenant_id = ?1 AND agent_id = ?2
             ORDER BY created_at LIMIT 1",
            &[agent_id],
        )
        .await?;
    Ok(row.map(|r| r.number))
}

/// Whether `number` is one of the tenant's.
pub async fn owns(tenant: &Tenant, number: &str) -> Result<bool, StoreError> {
    Ok(tenant
        .first::<Number>(&format!("{} AND number = ?2", Number::SELECT), &[&number])
        .await?
        .is_some())
}

/// The tenant's first registered number (the sender of a message that names none).
pub async fn oldest(tenant: &Tenant) -> Result<Option<String>, StoreError> {
    #[derive(Deserialize)]
    struct Row {
        number: String,
    }
    crate::store::db::from_row!(Row { number });
    let row: Option<Row> = tenant
        .first(
            "SELECT number FROM phone_numbers WHERE tenant_id = ?1 ORDER BY created_at LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| r.number))
}

/// Registers `spec` for the tenant; `None` when the number is already registered (to any
/// tenant: a number has one owner).
pub async fn insert(tenant: &Tenant, spec: &NumberSpec) -> Result<Option<Number>, StoreError> {
    let id: NumberId = new_id()?;
    let now = now_ms();
    // A number registered already (to any tenant) conflicts, and nothing is returned.
    tenant
        .first(
            &format!(
                "INSERT INTO phone_numbers (tenant_id, id, number, agent_id, owner_phone,
                   ring_owner_first, created_at, updated_at, hours, after_hours_agent_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9) ON CONFLICT (number) DO NOTHING
                 RETURNING {}",
                Number::COLUMNS
            ),
            &[
                &id,
                &spec.number,
                &spec.agent_id,
                &spec.owner_phone,
                &spec.ring_owner_first,
                &now,
                &hours_text(spec),
                &spec.after_hours_agent_id,
            ],
        )
        .await
}

/// The stored text of a number's hours.
fn hours_text(spec: &NumberSpec) -> Option<String> {
    spec.hours.as_ref().map(|h| h.to_string())
}

/// Changes the agent, owner phone, ring-owner-first and hours of number `id` (the number
/// itself is its identity); `None` when the tenant has no such number.
pub async fn update(
    tenant: &Tenant,
    id: &str,
    spec: &NumberSpec,
) -> Result<Option<Number>, StoreError> {
    tenant
        .first(
            &format!(
                "UPDATE phone_numbers SET agent_id = ?3, owner_phone = ?4, ring_owner_first = ?5,
                   updated_at = ?6, hours = ?7, after_hours_agent_id = ?8
                 WHERE tenant_id = ?1 AND id = ?2
                 RETURNING {}",
                Number::COLUMNS
            ),
            &[
                &id,
                &spec.agent_id,
                &spec.owner_phone,
                &spec.ring_owner_first,
                &now_ms(),
                &hours_text(spec),
                &spec.after_hours_agent_id,
            ],
        )
        .await
}

/// Deletes number `id`; returns whether the tenant had it.
pub async fn delete(tenant: &Tenant, id: &str) -> Result<bool, StoreError> {
    let deleted = tenant
        .run(
            "DELETE FROM phone_numbers WHERE tenant_id = ?1 AND id = ?2",
            &[&id],
        )
        .await?;
    Ok(deleted > 0)
}

/// What a number routes to (cached in KV under `number:<E.164>`, so also `Serialize`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumberRoute {
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    pub owner_phone: Option<String>,
    #[serde(deserialize_with = "db::bool_from_int")]
    pub ring_owner_first: bool,
    /// Business hours, JSON as the core stored them (absent in entries cached before hours).
    #[serde(default)]
    pub hours: Option<String>,
    #[serde(default)]
    pub after_hours_agent_id: Option<AgentId>,
}
crate::store::db::from_row!(NumberRoute {
    agent_id,
    tenant_id,
    owner_phone,
    ring_owner_first,
    hours,
    after_hours_agent_id
});

/// The route of the called `number`, in whichever tenant owns it (an incoming call is matched
/// by the number it reached, before any tenant is known).
pub async fn route_any_tenant(
    db: &D1Database,
    number: &str,
) -> Result<Option<NumberRoute>, StoreError> {
    db::first(
        db,
        "SELECT agent_id, tenant_id, owner_phone, ring_owner_first, hours, after_hours_agent_id
         FROM phone_numbers WHERE number = ?1",
        &[&number],
    )
    .await
}
