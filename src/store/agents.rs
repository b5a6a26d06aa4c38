//! The `agents` table.

use crate::platform::http::{new_id, now_ms};
use crate::store::db::row;
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::agents::AgentSpec;
use phone_agent_core::ids::AgentId;

row! {
    /// An agent as stored (`config` holds the validated voice, LLM, retry, session … settings).
    pub struct Agent from "agents WHERE tenant_id = ?1" {
        id: AgentId,
        name: String,
        system_prompt: String,
        first_message: Option<String>,
        config: String,
        created_at: i64,
        updated_at: i64,
    }
}

listed!(Agent, created_at, Agent::SELECT, []);

/// The tenant's agent `id`, if it exists.
pub async fn get(tenant: &Tenant, id: &str) -> Result<Option<Agent>, StoreError> {
    tenant
        .first(&format!("{} AND id = ?2", Agent::SELECT), &[&id])
        .await
}

/// Stores a new agent and returns it as stored.
pub async fn insert(tenant: &Tenant, spec: &AgentSpec) -> Result<Agent, StoreError> {
    let id: AgentId = new_id()?;
    write(
        tenant,
        "INSERT INTO agents (tenant_id, id, name, system_prompt, first_message, config,
           created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        id.as_str(),
        spec,
    )
    .await?
    .ok_or(StoreError::Missing("agent after insert"))
}

/// Replaces agent `id` with `spec`; `None` when the tenant has no such agent.
pub async fn update(
    tenant: &Tenant,
    id: &str,
    spec: &AgentSpec,
) -> Result<Option<Agent>, StoreError> {
    write(
        tenant,
        "UPDATE agents SET name = ?3, system_prompt = ?4, first_message = ?5, config = ?6,
           updated_at = ?7 WHERE tenant_id = ?1 AND id = ?2",
        id,
        spec,
    )
    .await
}

/// Runs `sql`, which writes agent `id` (`?2`) as `spec` (`?3`–`?6`) at now (`?7`), and returns
/// the row as written.
async fn write(
    tenant: &Tenant,
    sql: &str,
    id: &str,
    spec: &AgentSpec,
) -> Result<Option<Agent>, StoreError> {
    tenant
        .first(
            &format!("{sql} RETURNING {}", Agent::COLUMNS),
            &[
                &id,
                &spec.name,
                &spec.system_prompt,
                &spec.first_message,
                &spec.config.to_string(),
                &now_ms(),
            ],
        )
        .await
}
