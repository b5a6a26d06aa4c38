//! The call as the API shows it: its row, how it renders, and the tenant-scoped lookups.

use crate::platform::app::App;
use crate::platform::auth::Principal;
use crate::platform::http::{rfc3339, ApiError};
use crate::scheduling::emails::EmailFacts;
use crate::store::agents;
use crate::store::db;
use crate::store::tenant::Tenant;
use serde::Deserialize;
use serde_json::{json, Value};

/// A `calls` row, with the columns in [`COLUMNS`].
#[derive(Deserialize)]
pub(super) struct Row {
    pub(super) id: String,
    pub(super) tenant_id: String,
    pub(super) agent_id: Option<String>,
    pub(super) provider: String,
    pub(super) provider_call_id: Option<String>,
    pub(super) status: String,
    pub(super) to_number: String,
    pub(super) from_number: Option<String>,
    pub(super) start_at: Option<i64>,
    pub(super) time_zone: Option<String>,
    pub(super) contact_name: Option<String>,
    pub(super) contact_email: Option<String>,
    pub(super) metadata: String,
    pub(super) attempt: i64,
    pub(super) ics_sequence: i64,
    pub(super) email_status: Option<String>,
    pub(super) request_hash: Option<String>,
    pub(super) dispatched_at: Option<i64>,
    pub(super) answered_at: Option<i64>,
    pub(super) ended_at: Option<i64>,
    pub(super) last_error: Option<String>,
    pub(super) dial_after: Option<i64>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) duration_seconds: Option<i64>,
    pub(super) summary: Option<String>,
    pub(super) metrics: Option<String>,
}

pub(super) const COLUMNS: &str = "id, tenant_id, agent_id, provider, provider_call_id, status, to_number,
  from_number, start_at, time_zone, contact_name, contact_email, metadata, attempt, ics_sequence,
  email_status, request_hash, dispatched_at, answered_at, ended_at, last_error, dial_after, created_at, updated_at,
  duration_seconds, summary, metrics";

impl Row {
    pub(super) fn render(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "to": self.to_number,
            "from": self.from_number,
            "agent_id": self.agent_id,
            "provider": self.provider,
            "provider_call_id": self.provider_call_id,
            "start_at": self.start_at.map(rfc3339),
            "time_zone": self.time_zone,
            "contact": {"name": self.contact_name, "email": self.contact_email},
            "metadata": serde_json::from_str::<Value>(&self.metadata).unwrap_or_else(|_| json!({})),
            "attempt": self.attempt,
            "sequence": self.ics_sequence,
            "email_status": self.email_status,
            "last_error": self.last_error,
            // Set while the tenant's hourly outbound cap (OUTBOUND_CALLS_PER_HOUR) holds the due call.
            "dial_after": self.dial_after.map(rfc3339),
            "dispatched_at": self.dispatched_at.map(rfc3339),
            "answered_at": self.answered_at.map(rfc3339),
            "ended_at": self.ended_at.map(rfc3339),
            "duration_seconds": self.duration_seconds,
            "summary": self.summary,
            // Per-turn latencies and their p50/p95, written by the call session at hang-up.
            "metrics": self.metrics.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        })
    }

    pub(super) fn email_facts<'a>(&'a self, agent_name: &'a str) -> Option<EmailFacts<'a>> {
        Some(EmailFacts {
            tenant_id: &self.tenant_id,
            call_id: &self.id,
            to_email: self.contact_email.as_deref()?,
            to_name: self.contact_name.as_deref(),
            agent_name,
            phone_number: &self.to_number,
            start_at: self.start_at?,
            time_zone: self.time_zone.as_deref(),
        })
    }
}

pub(super) async fn find(app: &App, who: &Principal, id: &str) -> Result<Row, ApiError> {
    db::first(
        &app.db()?,
        &format!("SELECT {COLUMNS} FROM calls WHERE id = ? AND tenant_id = ?"),
        &[&id, &who.tenant_id],
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no call {id}")))
}

pub(super) async fn agent_name(app: &App, who: &Principal, agent_id: Option<&str>) -> String {
    match agent_id {
        Some(id) => match Tenant::of(app, who) {
            Ok(tenant) => agents::get(&tenant, id).await.ok(),
            Err(_) => None,
        }
        .flatten()
        .map_or_else(|| "Your agent".to_owned(), |a| a.name),
        None => "Your agent".to_owned(),
    }
}
