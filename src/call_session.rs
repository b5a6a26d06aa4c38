//! `CallSession`: one Durable Object per call. It owns the carrier's media WebSocket
//! (hibernation API, so an idle socket costs nothing) and records the stream's life in its
//! SQLite storage as it happens, because an instance reset loses anything held in memory.

use crate::app::App;
use crate::http::{json_response, new_id, now_ms, ApiError, ApiResult};
use crate::media::{session_stub, valid_call_id};
use phone_agent_core::media::twilio::Inbound;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

/// Tables are created in the constructor; `IF NOT EXISTS` makes it idempotent across wakes.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// What each accepted socket remembers across hibernation.
#[derive(Serialize, Deserialize)]
struct SocketTag {
    carrier: String,
    call_id: String,
}

#[durable_object]
pub struct CallSession {
    state: State,
    #[allow(dead_code)] // the live pipeline (STT/LLM/TTS) reads provider config from it
    env: Env,
}

impl DurableObject for CallSession {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            worker::console_error!(
                "{}",
                json!({"msg": "call session schema", "error": e.to_string()})
            );
        }
        CallSession { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.path();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["media", carrier, call_id] => self.accept(carrier, call_id),
            ["state"] => Ok(json_response(200, &self.snapshot()?)),
            _ => Ok(ApiError::not_found("no such session route").to_response(&new_id("req"))),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let carrier = ws
            .deserialize_attachment::<SocketTag>()
            .ok()
            .flatten()
            .map(|tag| tag.carrier)
            .unwrap_or_default();
        match (carrier.as_str(), message) {
            ("twilio", WebSocketIncomingMessage::String(text)) => self.on_twilio_frame(&ws, &text),
            (_, WebSocketIncomingMessage::String(_)) => self.bump("frames_unhandled", 1),
            (_, WebSocketIncomingMessage::Binary(bytes)) => {
                self.bump("binary_frames", 1)?;
                self.bump("binary_bytes", bytes.len() as i64)
            }
        }
    }

    async fn websocket_close(
        &self,
        _ws: WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        self.record(
            "socket_closed",
            json!({"code": code, "reason": reason, "clean": was_clean}),
        )
    }

    async fn websocket_error(&self, _ws: WebSocket, error: worker::Error) -> Result<()> {
        self.record("socket_error", json!({"error": error.to_string()}))
    }

    async fn alarm(&self) -> Result<Response> {
        // No timers are armed by the stream recorder; a stray alarm is harmless.
        Response::ok("no alarm work")
    }
}

impl CallSession {
    fn accept(&self, carrier: &str, call_id: &str) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(SocketTag {
            carrier: carrier.to_owned(),
            call_id: call_id.to_owned(),
        })?;
        self.set_meta("call_id", call_id)?;
        self.set_meta("carrier", carrier)?;
        self.record("socket_opened", json!({"carrier": carrier}))?;
        Response::from_websocket(pair.client)
    }

    /// Records the stream's life; media frames are only counted (50 per second per call).
    fn on_twilio_frame(&self, ws: &WebSocket, text: &str) -> Result<()> {
        let frame = match Inbound::parse(text) {
            Ok(frame) => frame,
            Err(e) => {
                // Counted and skipped: one bad frame must never end a call.
                worker::console_warn!(
                    "{}",
                    json!({"msg": "malformed media frame", "error": e.to_string()})
                );
                return self.bump("malformed_frames", 1);
            }
        };
        match &frame {
            Inbound::Connected { protocol, version } => self.record(
                "connected",
                json!({"protocol": protocol, "version": version}),
            ),
            Inbound::Start { stream_sid, start } => {
                self.set_meta("stream_sid", stream_sid)?;
                if let Some(call_sid) = &start.call_sid {
                    self.set_meta("carrier_call_id", call_sid)?;
                }
                self.record(
                    "start",
                    json!({
                        "stream_sid": stream_sid,
                        "call_sid": start.call_sid,
                        "account_sid": start.account_sid,
                        "tracks": start.tracks,
                        "custom_parameters": start.custom_parameters,
                        "media_format": start.media_format.as_ref().map(|f| json!({
                            "encoding": f.encoding, "sample_rate": f.sample_rate, "channels": f.channels
                        })),
                    }),
                )
            }
            Inbound::Media { .. } => self.bump("media_frames", 1),
            Inbound::Dtmf { dtmf, .. } => self.record("dtmf", json!({"digit": dtmf.digit})),
            Inbound::Mark { mark, .. } => self.record("mark", json!({"name": mark.name})),
            Inbound::Stop { .. } => {
                self.record("stop", json!({}))?;
                ws.close(Some(1000), Some("stream stopped"))
            }
        }
    }

    fn record(&self, event: &str, detail: Value) -> Result<()> {
        self.state.storage().sql().exec(
            "INSERT INTO events (at, event, detail) VALUES (?, ?, ?)",
            vec![
                SqlStorageValue::from(now_ms()),
                event.into(),
                detail.to_string().into(),
            ],
        )?;
        Ok(())
    }

    fn bump(&self, name: &str, by: i64) -> Result<()> {
        self.state.storage().sql().exec(
            "INSERT INTO counters (name, value) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            vec![SqlStorageValue::from(name), SqlStorageValue::from(by)],
        )?;
        Ok(())
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.state.storage().sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![SqlStorageValue::from(key), SqlStorageValue::from(value)],
        )?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Value> {
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
        let counters: Map<String, Value> = sql
            .exec("SELECT name, value FROM counters", None)?
            .to_array::<Counter>()?
            .into_iter()
            .map(|c| (c.name, Value::from(c.value)))
            .collect();
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
            "open_sockets".into(),
            Value::from(self.state.get_websockets().len()),
        );
        Ok(Value::Object(body))
    }
}

/// `GET /api/v1/calls/{id}/session`: what the call's Durable Object has recorded.
pub async fn state(app: &App, call_id: &str) -> ApiResult {
    valid_call_id(call_id)?;
    let mut response = session_stub(app, call_id)?
        .fetch_with_str("https://call-session/state")
        .await?;
    let body: Value = response.json().await?;
    if body.get("call_id").is_none() {
        return Err(ApiError::not_found(format!(
            "no media session recorded for call {call_id}"
        )));
    }
    Ok(json_response(200, &body))
}
