//! The object's SQLite storage: what an instance reset must not lose (blobs, turns) and the
//! stream record shown by `GET /api/v1/calls/{id}/session` (meta, events, counters).

use super::{Session, CARRIER_TAG};
use crate::platform::http::{log_line, now_ms};
use phone_agent_core::session::{Conversation, Message, SessionConfig, Turn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{Result, SqlStorageValue};

/// Tables are created in the constructor; `IF NOT EXISTS` makes it idempotent across wakes.
/// `meta`/`events`/`counters` are the stream record shown by `GET /api/v1/calls/{id}/session`;
/// `blobs` holds the state an instance reset must not lose; `turns` the finished turns;
/// `history` the conversation's committed messages, appended once each.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS turns (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, turn TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, message TEXT NOT NULL);
";

impl Session {
    pub(super) fn store_turn(&self, turn: &Turn) {
        let Ok(text) = serde_json::to_string(turn) else {
            return;
        };
        if let Err(e) = self.state.storage().sql().exec(
            "INSERT INTO turns (at, turn) VALUES (?, ?)",
            vec![SqlStorageValue::from(now_ms()), text.into()],
        ) {
            log_line(json!({"level": "error", "msg": "store turn", "error": e.to_string()}));
        }
    }

    pub(super) fn turns(&self) -> Vec<Turn> {
        self.json_rows("SELECT turn AS json FROM turns ORDER BY id")
    }

    /// The rows of a query selecting one JSON text column as `json`, parsed (a row that does
    /// not parse is skipped).
    fn json_rows<T: serde::de::DeserializeOwned>(&self, sql: &str) -> Vec<T> {
        #[derive(Deserialize)]
        struct Row {
            json: String,
        }
        self.state
            .storage()
            .sql()
            .exec(sql, None)
            .and_then(|c| c.to_array::<Row>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.json).ok())
            .collect()
    }

    /// Appends one committed conversation message (serialized).
    pub(super) fn append_history(&self, message: &str) {
        if let Err(e) = self.state.storage().sql().exec(
            "INSERT INTO history (message) VALUES (?)",
            vec![SqlStorageValue::from(message)],
        ) {
            log_line(json!({"level": "error", "msg": "store history", "error": e.to_string()}));
        }
    }

    /// The conversation as last saved: the call's session config, the appended history and
    /// the state blob. A blob from before the history log (which held the history itself) is
    /// read too, so a call that spans the deploy keeps its history.
    pub(super) fn saved_conversation(
        &self,
        config: SessionConfig,
    ) -> Option<(Conversation, usize)> {
        #[derive(Deserialize)]
        struct Legacy {
            history: Vec<Message>,
        }
        let state: String = self.blob::<Value>("conversation")?.to_string();
        let mut history: Vec<Message> =
            self.json_rows("SELECT message AS json FROM history ORDER BY seq");
        let saved = history.len();
        if history.is_empty() {
            if let Ok(legacy) = serde_json::from_str::<Legacy>(&state) {
                history = legacy.history;
            }
        }
        let conversation = Conversation::restore(config, history, &state).ok()?;
        Some((conversation, saved))
    }

    pub(super) fn put_blob<T: Serialize + ?Sized>(&self, key: &str, value: &T) {
        if let Ok(text) = serde_json::to_string(value) {
            self.put_raw(key, &text);
        }
    }

    /// Stores already-serialized JSON under `key`.
    pub(super) fn put_raw(&self, key: &str, text: &str) {
        if let Err(e) = self.state.storage().sql().exec(
            "INSERT INTO blobs (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![SqlStorageValue::from(key), text.into()],
        ) {
            log_line(
                json!({"level": "error", "msg": "store session state", "key": key,
                "error": e.to_string()}),
            );
        }
    }

    pub(super) fn blob<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        #[derive(Deserialize)]
        struct Row {
            value: String,
        }
        let rows = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT value FROM blobs WHERE key = ?",
                vec![SqlStorageValue::from(key)],
            )
            .and_then(|c| c.to_array::<Row>())
            .ok()?;
        serde_json::from_str(&rows.into_iter().next()?.value).ok()
    }

    /// Drops what only the live call and its end-of-call job needed (the conversation and its
    /// history, the agent setup, the carrier link, the job) once the job is finished; the
    /// stream record (`meta`, `events`, `counters`, `turns`, the phase and the call facts) stays
    /// for `GET /api/v1/calls/{id}/session`.
    pub(super) fn clear_call_data(&self) {
        let sql = self.state.storage().sql();
        let blobs = [
            "conversation",
            "setup",
            "start_frame",
            "link",
            super::finalize::JOB,
        ];
        let statements: [(&str, Option<Vec<SqlStorageValue>>); 2] = [
            ("DELETE FROM history", None),
            (
                "DELETE FROM blobs WHERE key IN (?, ?, ?, ?, ?)",
                Some(blobs.into_iter().map(SqlStorageValue::from).collect()),
            ),
        ];
        for (statement, bindings) in statements {
            if let Err(e) = sql.exec(statement, bindings) {
                log_line(
                    json!({"level": "error", "msg": "clear call data", "error": e.to_string()}),
                );
            }
        }
    }

    /// Appends to the stream record.
    pub fn record(&self, event: &str, detail: Value) {
        if let Err(e) = self.state.storage().sql().exec(
            "INSERT INTO events (at, event, detail) VALUES (?, ?, ?)",
            vec![
                SqlStorageValue::from(now_ms()),
                event.into(),
                detail.to_string().into(),
            ],
        ) {
            log_line(
                json!({"level": "error", "msg": "record session event", "error": e.to_string()}),
            );
        }
    }

    /// Counts in memory; written to storage when the call ends.
    pub fn count(&self, name: &'static str) {
        self.with_live(|live| *live.counters.entry(name).or_default() += 1);
    }

    /// Adds `by` in memory; written to storage when the call ends.
    pub fn count_by(&self, name: &'static str, by: i64) {
        self.with_live(|live| *live.counters.entry(name).or_default() += by);
    }

    /// A counter's value: what storage has plus what is still in memory.
    pub(super) fn counter_value(&self, name: &str) -> i64 {
        #[derive(Deserialize)]
        struct Value {
            value: i64,
        }
        let stored = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT value FROM counters WHERE name = ?",
                vec![SqlStorageValue::from(name)],
            )
            .and_then(|c| c.to_array::<Value>())
            .ok()
            .and_then(|rows| rows.first().map(|r| r.value))
            .unwrap_or(0);
        let pending = self
            .with_live(|live| live.counters.get(name).copied())
            .flatten()
            .unwrap_or(0);
        stored + pending
    }

    pub(super) fn flush_counters(&self) {
        let counters = self
            .with_live(|live| std::mem::take(&mut live.counters))
            .unwrap_or_default();
        for (name, value) in counters {
            self.bump(name, value);
        }
    }

    /// Adds to a stored counter.
    pub fn bump(&self, name: &str, by: i64) {
        let _ = self.state.storage().sql().exec(
            "INSERT INTO counters (name, value) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            vec![SqlStorageValue::from(name), SqlStorageValue::from(by)],
        );
    }

    pub(super) fn set_meta(&self, key: &str, value: &str) {
        let _ = self.state.storage().sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![SqlStorageValue::from(key), SqlStorageValue::from(value)],
        );
    }

    pub(super) fn snapshot(&self) -> Result<Value> {
        #[derive(Deserialize)]
        struct KeyValue {
            key: String,
            value: String,
        }
        #[derive(Deserialize)]
        struct Counter {
            name: String,
            value: i64,
        }
        #[derive(Deserialize)]
        struct Event {
            at: i64,
            event: String,
            detail: String,
        }
        let sql = self.state.storage().sql();
        let mut body = Map::new();
        for row in sql
            .exec("SELECT key, value FROM meta", None)?
            .to_array::<KeyValue>()?
        {
            body.insert(row.key, Value::String(row.value));
        }
        let mut counters: Map<String, Value> = sql
            .exec("SELECT name, value FROM counters", None)?
            .to_array::<Counter>()?
            .into_iter()
            .map(|c| (c.name, Value::from(c.value)))
            .collect();
        // Counters of a call still in progress are only in memory.
        for (name, value) in self
            .with_live(|live| live.counters.clone())
            .unwrap_or_default()
        {
            let stored = counters.get(name).and_then(Value::as_i64).unwrap_or(0);
            counters.insert(name.to_owned(), Value::from(stored + value));
        }
        let events: Vec<Value> = sql
            .exec("SELECT at, event, detail FROM events ORDER BY id", None)?
            .to_array::<Event>()?
            .into_iter()
            .map(|e| {
                let detail = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
                json!({"at": e.at, "event": e.event, "detail": detail})
            })
            .collect();
        body.insert("counters".into(), Value::Object(counters));
        body.insert("events".into(), Value::Array(events));
        body.insert(
            "phase".into(),
            self.blob::<String>("phase")
                .map_or(Value::Null, Value::String),
        );
        body.insert(
            "turns".into(),
            serde_json::to_value(self.turns()).unwrap_or(Value::Null),
        );
        body.insert(
            "open_sockets".into(),
            Value::from(self.state.get_websockets_with_tag(CARRIER_TAG).len()),
        );
        Ok(Value::Object(body))
    }
}
