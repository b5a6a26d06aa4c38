//! The object's SQLite storage: what an instance reset must not lose (blobs, turns) and the
//! stream record shown by `GET /api/v1/calls/{id}/session` (meta, events, counters).
//!
//! Writes made while the call is live (the conversation's state and history log, the finished
//! turns, the event record, the alarm) go through [`Unconfirmed`]: key-value writes the runtime
//! may send past before they commit. Every confirmed write (any SQL `exec`, a plain `put`) holds
//! the object's later network sends — the carrier's media and `clear`, the LLM request, TTS
//! text — until it commits (workerd's output gate), so one per mark or turn put a commit in
//! front of a barge-in's `clear`. Unconfirmed is safe for this state: a write that fails to
//! commit breaks the object and resets it, and the reset path rebuilds the call from what did
//! commit (`ensure_live`, tests/resume.test.mjs); at worst the caller hears a sentence again.
//! What must not be lost stays confirmed: the call facts and setup at accept, the carrier link,
//! and the end-of-call job (finalize.rs), whose confirmed write is what guarantees the call's
//! record reaches D1. The unconfirmed writes of one event are queued and written together
//! once its sends have left ([`Session::write_behind`]).

use super::{Session, CARRIER_TAG};
use crate::platform::http::{log_line, now_ms};
use phone_agent_core::session::{Conversation, Message, SessionConfig, Turn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{Delay, Result, SqlStorageValue};

/// Key-value key of the conversation's state (the key-value twin of blob `conversation`).
const CONVERSATION_KEY: &str = "conversation";
/// Key prefixes of the append-only logs kept in key-value storage; keys sort in write order.
const HISTORY_PREFIX: &str = "history/";
const TURN_PREFIX: &str = "turn/";
const EVENT_PREFIX: &str = "event/";

thread_local! {
    /// Orders the events written within one millisecond (the key's suffix).
    static EVENT_SEQ: Cell<u64> = const { Cell::new(0) };
}

#[wasm_bindgen]
extern "C" {
    /// The object's JavaScript storage (`ctx.storage`): workers-rs passes no `allowUnconfirmed`
    /// (its `SetAlarmOptions` serializes the field in snake case, which the runtime ignores).
    #[wasm_bindgen(extends = js_sys::Object)]
    type JsStorage;
    #[wasm_bindgen(method, catch, js_name = put)]
    fn put_entries(
        this: &JsStorage,
        entries: &js_sys::Object,
        options: &js_sys::Object,
    ) -> std::result::Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_name = setAlarm)]
    fn set_alarm_at(
        this: &JsStorage,
        at_ms: f64,
        options: &js_sys::Object,
    ) -> std::result::Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(method, getter)]
    fn kv(this: &JsStorage) -> SyncKv;

    /// The synchronous key-value API (`ctx.storage.kv`) of a SQLite-backed object: reads see
    /// the writes above at once, so the synchronous restore path can read them.
    type SyncKv;
    #[wasm_bindgen(method, catch)]
    fn get(this: &SyncKv, key: &str) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn list(this: &SyncKv, options: &js_sys::Object) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = delete)]
    fn delete_key(this: &SyncKv, key: &str) -> std::result::Result<JsValue, JsValue>;
}

/// Unconfirmed writes waiting for the end of the current event ([`Session::write_behind`]).
#[derive(Default)]
pub struct WriteBehind {
    entries: Vec<(String, String)>,
    /// The conversation changed: its state and new history entries go with the batch.
    pub(super) save_conversation: bool,
    /// The alarm of a live call, if it moved.
    pub(super) alarm_ms: Option<u64>,
    /// A flush task is queued.
    queued: bool,
}

/// The one adapter for unconfirmed writes (see the module doc for why they are safe here).
pub(super) struct Unconfirmed(JsStorage);

impl Unconfirmed {
    fn options() -> js_sys::Object {
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&options, &"allowUnconfirmed".into(), &JsValue::TRUE);
        options
    }

    /// Writes the entries (JSON text each) in one batch.
    pub(super) fn put(&self, entries: &[(String, String)]) {
        if entries.is_empty() {
            return;
        }
        let object = js_sys::Object::new();
        for (key, value) in entries {
            let _ = js_sys::Reflect::set(&object, &key.into(), &value.into());
        }
        Self::settle(
            "store session state",
            self.0.put_entries(&object, &Self::options()),
        );
    }

    /// Sets the object's alarm to an absolute time.
    pub(super) fn set_alarm(&self, at_ms: u64) {
        Self::settle(
            "set alarm",
            self.0.set_alarm_at(at_ms as f64, &Self::options()),
        );
    }

    /// Logs a failure; the promise is awaited in a task so a rejection is never unhandled.
    fn settle(what: &'static str, promise: std::result::Result<js_sys::Promise, JsValue>) {
        let log = move |e: JsValue| {
            let error = e.as_string().unwrap_or_else(|| format!("{e:?}"));
            log_line(json!({"level": "error", "msg": what, "error": error}));
        };
        match promise {
            Ok(promise) => wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
                    log(e);
                }
            }),
            Err(e) => log(e),
        }
    }

    /// The JSON text stored under `key`.
    fn get(&self, key: &str) -> Option<String> {
        self.0.kv().get(key).ok()?.as_string()
    }

    /// The keys and JSON texts under `prefix`, in key order.
    fn list(&self, prefix: &str) -> Vec<(String, String)> {
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&options, &"prefix".into(), &prefix.into());
        let Ok(iterable) = self.0.kv().list(&options) else {
            return Vec::new();
        };
        let Ok(Some(entries)) = js_sys::try_iter(&iterable) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| {
                let pair: js_sys::Array = entry.ok()?.dyn_into().ok()?;
                Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
            })
            .collect()
    }

    /// Deletes `keys` and every key under `prefixes` (a confirmed write: only once the call
    /// and its job are over).
    fn delete(&self, keys: &[&str], prefixes: &[&str]) {
        let kv = self.0.kv();
        let listed = prefixes.iter().flat_map(|p| self.list(p)).map(|(k, _)| k);
        for key in keys.iter().map(|k| (*k).to_owned()).chain(listed) {
            if let Err(e) = kv.delete_key(&key) {
                log_line(json!({"level": "error", "msg": "clear call data",
                    "error": format!("{e:?}")}));
            }
        }
    }
}

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
    /// The storage API with the options workers-rs does not expose.
    pub(super) fn unconfirmed(&self) -> Unconfirmed {
        let storage = self
            .state
            .as_raw()
            .storage()
            .map(JsCast::unchecked_into)
            .unwrap_or_else(|e| wasm_bindgen::throw_val(e));
        Unconfirmed(storage)
    }

    pub(super) fn store_turn(self: &Rc<Self>, turn: &Turn) {
        let Ok(text) = serde_json::to_string(turn) else {
            return;
        };
        let key = format!("{TURN_PREFIX}{:010}/{:013}", turn.id, now_ms());
        self.write_behind(|w| w.entries.push((key, text)));
    }

    /// Queues unconfirmed writes for the end of the current event: every write an event makes
    /// (the conversation's state and history, a turn, stream events, the alarm) leaves in one
    /// `put` once its synchronous work and sends are done. A put costs more than any other
    /// step of the turn path (bench/README.md, "Turn path profile (session 8)"), and the
    /// runtime writes the event's network sends only after its JavaScript has returned, so a
    /// put made before returning delays the frames and the `clear` sent before it.
    pub(super) fn write_behind(self: &Rc<Self>, f: impl FnOnce(&mut WriteBehind)) {
        let schedule = {
            let mut writes = self.writes.borrow_mut();
            f(&mut writes);
            !std::mem::replace(&mut writes.queued, true)
        };
        if schedule {
            let session = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                // A timer, not a microtask: microtasks still run before the event's sends
                // leave, a timer only after them.
                Delay::from(Duration::ZERO).await;
                session.flush_writes();
            });
        }
    }

    /// Writes what [`Self::write_behind`] queued, now: the conversation's state and new history
    /// entries (if a save is due), the other entries, the alarm. Called by the queued task, and
    /// directly where a confirmed write must come after them (the end of the call).
    pub(super) fn flush_writes(&self) {
        let (save, mut entries, alarm) = {
            let mut writes = self.writes.borrow_mut();
            writes.queued = false;
            (
                std::mem::take(&mut writes.save_conversation),
                std::mem::take(&mut writes.entries),
                writes.alarm_ms.take(),
            )
        };
        if save {
            entries.extend(self.conversation_entries());
        }
        let storage = self.unconfirmed();
        storage.put(&entries);
        if let Some(at_ms) = alarm {
            storage.set_alarm(at_ms);
        }
    }

    /// The finished turns: the table (calls stored before the key-value log), then the log.
    pub(super) fn turns(&self) -> Vec<Turn> {
        let mut turns: Vec<Turn> = self.json_rows("SELECT turn AS json FROM turns ORDER BY id");
        turns.extend(self.kv_log(TURN_PREFIX));
        turns
    }

    /// The parsed values of a key-value log (a value that does not parse is skipped).
    fn kv_log<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Vec<T> {
        // What is queued is part of the log already.
        self.flush_writes();
        self.unconfirmed()
            .list(prefix)
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .collect()
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

    /// The conversation's history entries committed since the last save (one key per entry,
    /// so the log is only appended to) and its state, as entries to store in one batch.
    fn conversation_entries(&self) -> Vec<(String, String)> {
        self.with_live(|live| {
            let conversation = live.conversation.as_ref()?;
            let state = serde_json::to_string(conversation).ok()?;
            let history = conversation.history();
            let first = live.history_saved;
            let mut entries: Vec<(String, String)> = history
                .get(first..)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    let key = format!("{HISTORY_PREFIX}{:010}", first + i);
                    Some((key, serde_json::to_string(m).ok()?))
                })
                .collect();
            live.history_saved = history.len();
            live.unsaved = false;
            entries.push((CONVERSATION_KEY.to_owned(), state));
            Some(entries)
        })
        .flatten()
        .unwrap_or_default()
    }

    /// The conversation as last saved: the call's session config, the appended history and
    /// the state. The SQL forms from before the key-value log are read too (history table, blob
    /// `conversation`, and before that a blob holding the history itself), so a call that
    /// spans the deploy keeps its history.
    pub(super) fn saved_conversation(
        &self,
        config: SessionConfig,
    ) -> Option<(Conversation, usize)> {
        #[derive(Deserialize)]
        struct Legacy {
            history: Vec<Message>,
        }
        let kv = self.unconfirmed();
        let state: String = match kv.get(CONVERSATION_KEY) {
            Some(state) => state,
            None => self.blob::<Value>("conversation")?.to_string(),
        };
        let mut history: Vec<Message> =
            self.json_rows("SELECT message AS json FROM history ORDER BY seq");
        history.extend(self.kv_log::<Message>(HISTORY_PREFIX));
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
        self.unconfirmed()
            .delete(&[CONVERSATION_KEY], &[HISTORY_PREFIX]);
    }

    /// Appends to the stream record (unconfirmed: marks and provider events arrive mid-call).
    pub fn record(self: &Rc<Self>, event: &str, detail: Value) {
        let at = now_ms();
        let seq = EVENT_SEQ.with(|s| {
            s.set(s.get() + 1);
            s.get()
        });
        let entry = json!({"at": at, "event": event, "detail": detail});
        let key = format!("{EVENT_PREFIX}{at:013}/{seq:010}");
        self.write_behind(|w| w.entries.push((key, entry.to_string())));
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
        // Inserted rather than collected: each `collect` into a map compiles a sort.
        let mut counters = Map::new();
        for c in sql
            .exec("SELECT name, value FROM counters", None)?
            .to_array::<Counter>()?
        {
            counters.insert(c.name, Value::from(c.value));
        }
        // Counters of a call still in progress are only in memory.
        for (name, value) in self
            .with_live(|live| live.counters.clone())
            .unwrap_or_default()
        {
            let stored = counters.get(name).and_then(Value::as_i64).unwrap_or(0);
            counters.insert(name.to_owned(), Value::from(stored + value));
        }
        // The table holds the events of calls recorded before the key-value log.
        let mut events: Vec<Value> = sql
            .exec("SELECT at, event, detail FROM events ORDER BY id", None)?
            .to_array::<Event>()?
            .into_iter()
            .map(|e| {
                let detail = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
                json!({"at": e.at, "event": e.event, "detail": detail})
            })
            .collect();
        events.extend(self.kv_log::<Value>(EVENT_PREFIX));
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
