//! The `calls` table: what more than one layer writes (the stream token is made by whoever
//! first hands the carrier a media URL: an incoming call, or a dial).

use crate::platform::http::{new_secret, ApiError};
use crate::store::db;
use crate::store::error::StoreError;
use serde::Deserialize;
use worker::d1::D1Database;

/// The call's stream token, created on first use (the media route refuses any other).
pub async fn ensure_token(db: &D1Database, call_id: &str) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct Token {
        stream_token: Option<String>,
    }
    db::run(
        db,
        "UPDATE calls SET stream_token = ? WHERE id = ? AND stream_token IS NULL",
        &[&new_secret("stk")?, &call_id],
    )
    .await?;
    db::first::<Token>(
        db,
        "SELECT stream_token FROM calls WHERE id = ?",
        &[&call_id],
    )
    .await?
    .and_then(|t| t.stream_token)
    .ok_or_else(|| ApiError::internal("stream token not stored"))
}

#[derive(Deserialize)]
/// A scheduled call as the dispatcher reads it.
pub struct CallRow {
    pub id: String,
    pub attempt: i64,
    pub provider: String,
    pub to_number: String,
    pub from_number: Option<String>,
    pub base_url: Option<String>,
    pub start_at: Option<i64>,
    pub time_zone: Option<String>,
    pub metadata: String,
    pub agent_id: Option<String>,
}

/// The call `call_id` for dialling (any tenant: the scheduler serves them all).
pub async fn load(db: &D1Database, call_id: &str) -> Result<Option<CallRow>, StoreError> {
    db::first(
        db,
        "SELECT id, attempt, provider, to_number, from_number, base_url, start_at,
           time_zone, metadata, agent_id FROM calls WHERE id = ?",
        &[&call_id],
    )
    .await
}
