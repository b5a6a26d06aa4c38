//! The `agents` table.

use crate::platform::http::{new_id, now_ms};
use crate::store::db::row;
use crate::store::error::StoreError;
use crate::store::page::listed;
use crate::store::tenant::Tenant;
use phone_agent_core::agents::{open_call_statuses, AgentInUse, AgentSpec};
use phone_agent_core::ids::AgentId;
use serde::Deserialize;

row! {
    /// An agent as stored (`config` holds the validated voice, LLM, retry, session … settings).
    pub struct Agent from "agents WHERE tenant_id = ?1 AND deleted_at IS NULL" {
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

/// Stores a new agent with its HTTP tools' signing secret and returns it as stored.
pub async fn insert(
    tenant: &Tenant,
    spec: &AgentSpec,
    tools_secret: &str,
) -> Result<Agent, StoreError> {
    let id: AgentId = new_id()?;
    write(
        tenant,
        "INSERT INTO agents (tenant_id, id, name, system_prompt, first_message, config,
           created_at, updated_at, tools_secret) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        id.as_str(),
        spec,
        Some(tools_secret),
    )
    .await?
    .ok_or(StoreError::Missing("agent after insert"))
}

/// The signing secret of the tenant's agent `id`: `None` when there is no such agent, an inner
/// `None` when it has none yet (made before secrets; a rotation gives it one).
pub async fn tools_secret(tenant: &Tenant, id: &str) -> Result<Option<Option<String>>, StoreError> {
    #[derive(Deserialize)]
    struct Row {
        tools_secret: Option<String>,
    }
    crate::store::db::from_row!(Row { tools_secret });
    let row: Option<Row> = tenant
        .first(
            "SELECT tools_secret FROM agents WHERE tenant_id = ?1 AND id = ?2 AND deleted_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| r.tools_secret))
}

/// Replaces the signing secret of agent `id`; false when the tenant has no such agent.
pub async fn rotate_tools_secret(
    tenant: &Tenant,
    id: &str,
    secret: &str,
) -> Result<bool, StoreError> {
    let changed = tenant
        .run(
            "UPDATE agents SET tools_secret = ?3, updated_at = ?4
             WHERE tenant_id = ?1 AND id = ?2 AND deleted_at IS NULL",
            &[&id, &secret, &now_ms()],
        )
        .await?;
    Ok(changed > 0)
}

/// The agent of the tenant's call `call_id` and its tools' signing secret, read when a tool
/// runs (a rotation takes effect at once; a deleted agent's tools stop).
#[derive(Deserialize)]
pub struct ToolsAgent {
    pub agent_id: Option<AgentId>,
    pub tools_secret: Option<String>,
}
crate::store::db::from_row!(ToolsAgent {
    agent_id,
    tools_secret
});

/// [`ToolsAgent`] of the tenant's call `call_id`.
pub async fn tools_agent_of(
    tenant: &Tenant,
    call_id: &str,
) -> Result<Option<ToolsAgent>, StoreError> {
    tenant
        .first(
            "SELECT c.agent_id, a.tools_secret FROM calls c
             LEFT JOIN agents a ON a.id = c.agent_id AND a.deleted_at IS NULL
             WHERE c.tenant_id = ?1 AND c.id = ?2",
            &[&call_id],
        )
        .await
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
           updated_at = ?7 WHERE tenant_id = ?1 AND id = ?2 AND deleted_at IS NULL",
        id,
        spec,
        None,
    )
    .await
}

/// Runs `sql`, which writes agent `id` (`?2`) as `spec` (`?3`–`?6`) at now (`?7`) (and, on
/// insert, its tools secret `?8`), and returns the row as written.
async fn write(
    tenant: &Tenant,
    sql: &str,
    id: &str,
    spec: &AgentSpec,
    tools_secret: Option<&str>,
) -> Result<Option<Agent>, StoreError> {
    let sql = format!("{sql} RETURNING {}", Agent::COLUMNS);
    let config = spec.config.to_string();
    let now = now_ms();
    let mut args: Vec<&dyn crate::store::db::Arg> = vec![
        &id,
        &spec.name,
        &spec.system_prompt,
        &spec.first_message,
        &config,
        &now,
    ];
    if let Some(secret) = &tools_secret {
        args.push(secret);
    }
    tenant.first(&sql, &args).await
}

/// `calls.status IN (…)` for the calls that still need their agent (the core's list; static
/// words, so they are written into the statement).
fn open_calls_clause() -> String {
    let statuses: Vec<String> = open_call_statuses()
        .into_iter()
        .map(|s| format!("'{s}'"))
        .collect();
    format!("status IN ({})", statuses.join(", "))
}

/// Deletes agent `id` (soft: finished calls keep their `agent_id`) unless something still uses
/// it, checked in the deleting statement itself so a number attached meanwhile cannot slip
/// between the check and the delete. `Ok(None)`: the tenant has no such agent.
pub async fn delete(
    tenant: &Tenant,
    id: &str,
) -> Result<Option<Result<(), AgentInUse>>, StoreError> {
    let open = open_calls_clause();
    // A second try only when what blocked the first went away before it was read back.
    for _ in 0..2 {
        let deleted = tenant
            .run(
                &format!(
                    "UPDATE agents SET deleted_at = ?3, updated_at = ?3
                     WHERE tenant_id = ?1 AND id = ?2 AND deleted_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM phone_numbers
                                       WHERE agent_id = ?2 OR after_hours_agent_id = ?2)
                       AND NOT EXISTS (SELECT 1 FROM calls WHERE agent_id = ?2 AND {open})"
                ),
                &[&id, &now_ms()],
            )
            .await?;
        if deleted > 0 {
            return Ok(Some(Ok(())));
        }
        if get(tenant, id).await?.is_none() {
            return Ok(None);
        }
        let in_use = usage(tenant, id, &open).await?;
        if in_use.is_err() {
            return Ok(Some(in_use));
        }
    }
    Err(StoreError::Missing(
        "an agent whose uses kept changing while it was deleted",
    ))
}

/// What uses agent `id` now, as the core judges it.
async fn usage(
    tenant: &Tenant,
    id: &str,
    open: &str,
) -> Result<Result<(), AgentInUse>, StoreError> {
    #[derive(Deserialize)]
    struct NumberRow {
        number: String,
    }
    crate::store::db::from_row!(NumberRow { number });
    #[derive(Deserialize)]
    struct CountRow {
        n: u64,
    }
    crate::store::db::from_row!(CountRow { n });
    let numbers: Vec<NumberRow> = tenant
        .all(
            "SELECT number FROM phone_numbers
             WHERE tenant_id = ?1 AND (agent_id = ?2 OR after_hours_agent_id = ?2)
             ORDER BY number LIMIT 20",
            &[&id],
        )
        .await?;
    let calls: Option<CountRow> = tenant
        .first(
            &format!(
                "SELECT COUNT(*) AS n FROM calls WHERE tenant_id = ?1 AND agent_id = ?2 AND {open}"
            ),
            &[&id],
        )
        .await?;
    let numbers = numbers.into_iter().map(|r| r.number).collect();
    Ok(phone_agent_core::agents::deletable(
        numbers,
        calls.map_or(0, |c| c.n),
    ))
}
