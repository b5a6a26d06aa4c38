//! `CallSession`: one Durable Object per call. It owns the carrier's media WebSocket
//! (hibernation API), the call's [`Conversation`] and the provider connections that serve it
//! (STT socket, LLM and TTS streams, in `speech.rs`), and executes the conversation's actions.
//!
//! Invariants (a Durable Object is single-threaded, but handlers and tasks interleave at every
//! `.await`):
//! - all mutable state is in `Session::live` (a `RefCell`); a borrow is never held across an
//!   `.await`: every borrow lives inside one synchronous block;
//! - the conversation is fed only through [`Session::feed`], which runs the state machine and
//!   then executes its actions in order, synchronously (sending frames, arming work); anything
//!   that waits (fetches, sockets) is spawned as a task that feeds its results back;
//! - what an instance reset must not lose is in the object's SQLite storage as it happens:
//!   call facts and agent setup at accept, the start frame, the conversation after every input,
//!   each finished turn. After a reset the next event rebuilds the session from it and feeds
//!   `Input::Restored` (the carrier socket survives: it is a hibernatable socket);
//! - only the verified carrier socket (the core's `CarrierLink`, stored as blob `link`; each
//!   socket's id is in its attachment) carries the call: a pending socket is judged on its own
//!   frames with its own adapter and never touches the call until its token is proven.

use crate::live::speech;
use crate::pipeline::call_status::{self, Change};
use crate::platform::app::load_config;
use crate::platform::http::{json_response, log_line, new_id, now_ms, ApiError};
use crate::platform::outbound;
use crate::store::db;
use phone_agent_core::auth::LIVE_SUBPROTOCOL;
use phone_agent_core::config::Config;
use phone_agent_core::live::{
    agent_setup, dtmf_samples, metrics_summary, stt_route, transcript, AgentSetup,
};
use phone_agent_core::media::access::{
    lost_stream_status, pending_step, upgrade_trust, CarrierLink, PendingStep, StreamRefusal,
    Trust, STREAM_GRACE_MS,
};
use phone_agent_core::media::carrier::{carrier_for, Carrier, CarrierEvent, Frame, OutFrame};
use phone_agent_core::media::framing::Framer;
use phone_agent_core::media::transcode::Transcoder;
use phone_agent_core::providers::deepgram::ListenParams;
use phone_agent_core::providers::openai::{parse_completion_text, summary_request};
use phone_agent_core::scheduling::CallStatus;
use phone_agent_core::session::{Action, Conversation, HangupReason, Input, Turn};
use phone_agent_core::voice::{
    telnyx_action_path, telnyx_transfer_body, twilio_call_path, twilio_transfer_form,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;
use worker::{
    durable_object, AbortController, DurableObject, Env, Method, Request, Response, Result,
    SqlStorageValue, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

/// Tables are created in the constructor; `IF NOT EXISTS` makes it idempotent across wakes.
/// `meta`/`events`/`counters` are the stream record shown by `GET /api/v1/calls/{id}/session`;
/// `blobs` holds the state an instance reset must not lose; `turns` the finished turns.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS turns (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, turn TEXT NOT NULL);
";

/// Hibernation tag of the carrier's media socket.
const CARRIER_TAG: &str = "carrier";
/// Hibernation tag of live-view sockets (`GET /api/v1/calls/{id}/live`).
const LIVE_TAG: &str = "live";
/// Caller audio kept while the STT socket is (re)connecting: 30 s of μ-law.
const MAX_PENDING_AUDIO: usize = 240_000;
/// Post-call summary request timeout.
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(20);
/// Carrier REST (transfer, hang-up) timeout.
const CARRIER_REST_TIMEOUT: Duration = Duration::from_secs(10);

/// What each accepted socket remembers across hibernation.
#[derive(Serialize, Deserialize)]
struct SocketTag {
    carrier: String,
    call_id: String,
    /// Its id in the call's `CarrierLink` (0: none, never the active socket).
    #[serde(default)]
    id: u64,
}

/// Facts about the call, loaded from D1 when the carrier connects (blob `call`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallInfo {
    pub call_id: String,
    pub tenant_id: String,
    pub carrier: String,
    pub direction: String,
    pub to_number: String,
    pub from_number: Option<String>,
    /// The token the stream must present (`None`: the call has none, so any is refused).
    stream_token: Option<String>,
    /// The carrier's call id (CallSid, call_control_id), from `start`.
    pub carrier_call_id: Option<String>,
    pub started_at_ms: Option<i64>,
    /// How carriers reach this worker (for calls this one schedules, e.g. a call back).
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Why the session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EndReason {
    /// The carrier stopped the stream or closed the socket (the caller hung up).
    CarrierStop,
    /// The agent hung up (tool, idle, max duration).
    Agent(HangupReason),
    /// The agent transferred the call.
    Transfer(String),
    /// The carrier socket went away without `stop` and no verified one came back in time.
    StreamLost,
}

impl EndReason {
    fn as_str(&self) -> &'static str {
        match self {
            EndReason::CarrierStop => "caller_hangup",
            EndReason::Agent(HangupReason::AgentEnded) => "agent_ended",
            EndReason::Agent(HangupReason::Idle) => "idle",
            EndReason::Agent(HangupReason::MaxDuration) => "max_duration",
            EndReason::Transfer(_) => "transferred",
            EndReason::StreamLost => "stream_lost",
        }
    }
}

/// The STT link: the socket when connected, audio waiting while it is not.
#[derive(Default)]
pub struct Stt {
    pub ws: Option<WebSocket>,
    pub params: Option<ListenParams>,
    /// Converts carrier audio Deepgram cannot take as is (big-endian L16).
    pub transcoder: Option<Transcoder>,
    pub pending: VecDeque<u8>,
    pub last_sent_ms: i64,
    /// The session asked the stream to finish: no reconnect.
    pub closing: bool,
    /// A connection task is running (at most one).
    pub running: bool,
}

/// One queued or running TTS segment.
pub struct TtsJob {
    pub id: u64,
    pub turn: u32,
    pub segment: usize,
    pub text: String,
}

/// The TTS queue: segments are synthesized and sent one after another, in `Speak` order.
#[derive(Default)]
pub struct Tts {
    pub queue: VecDeque<TtsJob>,
    pub running: bool,
    /// The job being synthesized and the controller that aborts its request.
    pub current: Option<(u64, u32, AbortController)>,
    pub next_id: u64,
}

/// The in-memory side of a connected call.
pub struct Live {
    pub info: CallInfo,
    pub setup: AgentSetup,
    pub carrier: Box<dyn Carrier>,
    /// The verified socket carrying the call (`link.active()`), if it is connected.
    pub carrier_ws: Option<WebSocket>,
    /// Which socket is verified, and since when the call has none.
    pub link: CarrierLink,
    /// The conversation's next timer (its last `SetAlarm`); shares the alarm with the grace deadline.
    pub timer_ms: Option<u64>,
    pub conversation: Option<Conversation>,
    pub stt: Stt,
    /// The LLM request in flight: (request id, turn, controller).
    pub llm: Option<(u64, u32, AbortController)>,
    pub next_llm_id: u64,
    pub tts: Tts,
    pub ended: bool,
    /// Counters not yet written to storage (media frames arrive 50 times a second).
    pub counters: BTreeMap<&'static str, i64>,
}

/// The object's state, shared with its tasks through an `Rc`.
pub struct Session {
    pub state: State,
    pub env: Env,
    pub config: Option<Config>,
    pub live: RefCell<Option<Live>>,
}

#[durable_object]
pub struct CallSession {
    inner: Rc<Session>,
}

impl DurableObject for CallSession {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            worker::console_error!(
                "{}",
                json!({"msg": "call session schema", "error": e.to_string()})
            );
        }
        let config = load_config(&env).ok();
        CallSession {
            inner: Rc::new(Session {
                state,
                env,
                config,
                live: RefCell::new(None),
            }),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.path();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let result = match segments.as_slice() {
            ["media", carrier, call_id] => self.inner.accept(&req, carrier, call_id).await,
            ["api", "v1", "calls", _, "live"] => self.inner.accept_live_view(&req),
            ["state"] => self
                .inner
                .snapshot()
                .map(|s| json_response(200, &s))
                .map_err(ApiError::from),
            _ => Err(ApiError::not_found("no such session route")),
        };
        Ok(result.unwrap_or_else(|e| e.to_response(&new_id("req"))))
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        if self.inner.state.get_tags(&ws).iter().any(|t| t == LIVE_TAG) {
            // The live view only listens.
            return Ok(());
        }
        self.inner.ensure_live();
        self.inner.on_carrier_frame(&ws, &message);
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        if self.inner.state.get_tags(&ws).iter().any(|t| t == LIVE_TAG) {
            return Ok(());
        }
        self.inner.record(
            "socket_closed",
            json!({"code": code, "reason": reason, "clean": was_clean,
                "socket": socket_id(&ws)}),
        );
        // Completes the closing handshake (the peer waits for our close frame).
        let _ = ws.close(Some(1000), Some("closed"));
        self.inner.ensure_live();
        self.inner.on_carrier_gone(&ws);
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        if !self.inner.state.get_tags(&ws).iter().any(|t| t == LIVE_TAG) {
            self.inner.record(
                "socket_error",
                json!({"error": error.to_string(), "socket": socket_id(&ws)}),
            );
            self.inner.ensure_live();
            self.inner.on_carrier_gone(&ws);
        }
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        self.inner.ensure_live();
        self.inner.on_alarm();
        Response::ok("tick")
    }
}

#[derive(Deserialize)]
struct CallRow {
    id: String,
    tenant_id: String,
    direction: String,
    status: String,
    to_number: String,
    from_number: Option<String>,
    stream_token: Option<String>,
    system_prompt: Option<String>,
    first_message: Option<String>,
    config: Option<String>,
}

impl Session {
    /// Accepts a carrier media socket for a call that exists. The upgrade is refused without
    /// the URL token where the carrier carries one, or with a wrong one; a Twilio socket is
    /// accepted *pending* (its token comes in `start`) and a verified one (URL token) takes the
    /// call over at once, like a carrier reconnect. No new socket ever resets the call.
    async fn accept(
        self: &Rc<Self>,
        req: &Request,
        carrier: &str,
        call_id: &str,
    ) -> std::result::Result<Response, ApiError> {
        let adapter = carrier_for(carrier)
            .ok_or_else(|| ApiError::not_found(format!("unknown carrier {carrier:?}")))?;
        let url = req.url()?;
        let base_url = self
            .config
            .as_ref()
            .and_then(|c| c.public_base_url.clone())
            .unwrap_or_else(|| url.origin().ascii_serialization());
        let url_token = url
            .query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        let db = self.env.d1("DB")?;
        let row: CallRow = db::first(
            &db,
            "SELECT c.id, c.tenant_id, c.direction, c.status, c.to_number, c.from_number,
                    c.stream_token, a.system_prompt, a.first_message, a.config
             FROM calls c LEFT JOIN agents a ON a.id = c.agent_id WHERE c.id = ?",
            &[&call_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call {call_id}")))?;
        self.ensure_live();
        let open_sockets = self.state.get_websockets_with_tag(CARRIER_TAG).len();
        let trust = upgrade_trust(
            carrier,
            url_token.as_deref(),
            row.stream_token.as_deref(),
            open_sockets,
        )
        .map_err(|refusal| {
            log_line(
                json!({"level": "warn", "msg": "stream refused at the upgrade",
                "call_id": call_id, "reason": refusal.code()}),
            );
            ApiError::from(refusal)
        })?;
        let ended = self.with_live(|live| live.ended).unwrap_or(false);
        if ended
            || CallStatus::parse(&row.status)
                .is_some_and(phone_agent_core::scheduling::state::is_terminal)
        {
            return Err(ApiError::new(409, "call_ended", "this call has ended"));
        }
        if self.live.borrow().is_none() {
            self.set_up(row, carrier, call_id, base_url, adapter);
        }
        let Some(id) = self.with_live(|live| live.link.open()) else {
            return Err(ApiError::internal("call session not set up"));
        };
        self.put_link();
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[CARRIER_TAG]);
        pair.server.serialize_attachment(SocketTag {
            carrier: carrier.to_owned(),
            call_id: call_id.to_owned(),
            id,
        })?;
        self.record(
            "socket_opened",
            json!({"carrier": carrier, "socket": id, "verified": trust == Trust::Verified}),
        );
        if trust == Trust::Verified {
            if let Some(fresh) = carrier_for(carrier) {
                self.promote(&pair.server, id, fresh);
            }
        }
        Ok(Response::from_websocket(pair.client)?)
    }

    /// The call's first socket: facts and agent setup from D1, kept for the whole call.
    fn set_up(
        &self,
        row: CallRow,
        carrier: &str,
        call_id: &str,
        base_url: String,
        adapter: Box<dyn Carrier>,
    ) {
        let config: Value = row
            .config
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_else(|| json!({}));
        let setup = agent_setup(
            row.system_prompt.as_deref().unwrap_or_default(),
            row.first_message.as_deref(),
            &config,
        );
        if !setup.warnings.is_empty() {
            log_line(
                json!({"level": "warn", "msg": "agent config", "call_id": call_id,
                "warnings": setup.warnings}),
            );
        }
        let info = CallInfo {
            call_id: row.id,
            tenant_id: row.tenant_id,
            carrier: carrier.to_owned(),
            direction: row.direction,
            to_number: row.to_number,
            from_number: row.from_number,
            stream_token: row.stream_token,
            carrier_call_id: None,
            started_at_ms: None,
            base_url: Some(base_url),
        };
        self.put_blob("call", &info);
        self.put_blob("setup", &setup);
        self.put_blob("phase", &"accepted");
        self.set_meta("call_id", call_id);
        self.set_meta("carrier", carrier);
        *self.live.borrow_mut() = Some(Live::new(
            info,
            setup,
            adapter,
            None,
            CarrierLink::default(),
        ));
    }

    /// `socket` proved the call's token: it carries the call from now on, parsed by `adapter`
    /// (which has seen its `start`); a socket it replaces (carrier reconnect) is closed.
    fn promote(&self, socket: &WebSocket, id: u64, adapter: Box<dyn Carrier>) {
        let replaced = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            let replaced = live.link.verified(id);
            live.carrier = adapter;
            let previous = live.carrier_ws.replace(socket.clone());
            replaced.and(previous)
        };
        self.put_link();
        self.record("stream_verified", json!({"socket": id}));
        if let Some(old) = replaced {
            let _ = old.close(Some(1000), Some("replaced by a verified stream"));
        }
    }

    /// Accepts a live-view socket and greets it with the call's current state; a browser that
    /// offered the live-view subprotocol gets it back (its handshake fails otherwise).
    fn accept_live_view(&self, req: &Request) -> std::result::Result<Response, ApiError> {
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .ok()
            .flatten()
            .is_some_and(|p| p.split(',').any(|p| p.trim() == LIVE_SUBPROTOCOL));
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[LIVE_TAG]);
        let turns: Vec<Turn> = self.turns();
        let phase: String = self.blob("phase").unwrap_or_else(|| "none".to_owned());
        let hello = json!({"type": "hello", "phase": phase, "turns": turns,
            "call_id": self.blob::<CallInfo>("call").map(|c| c.call_id)});
        let _ = pair.server.send_with_str(hello.to_string());
        let mut response = Response::from_websocket(pair.client)?;
        if offered {
            response
                .headers_mut()
                .set("sec-websocket-protocol", LIVE_SUBPROTOCOL)?;
        }
        Ok(response)
    }

    /// Rebuilds the in-memory session after an instance reset (or hibernation) from storage.
    fn ensure_live(self: &Rc<Self>) {
        if self.live.borrow().is_some() {
            return;
        }
        let phase: Option<String> = self.blob("phase");
        let (Some(info), Some(setup)) = (
            self.blob::<CallInfo>("call"),
            self.blob::<AgentSetup>("setup"),
        ) else {
            return;
        };
        let Some(mut adapter) = carrier_for(&info.carrier) else {
            return;
        };
        if let Some(start) = self.blob::<String>("start_frame") {
            // Re-reading `start` restores the adapter's stream id and audio format.
            let _ = adapter.parse(Frame::Text(&start));
        }
        let link: CarrierLink = self.blob("link").unwrap_or_default();
        let carrier_ws = link.active().and_then(|id| self.carrier_socket(id));
        let mut live = Live::new(info, setup, adapter, carrier_ws, link);
        let restored = phase.as_deref() == Some("live");
        if phase.as_deref() == Some("ended") {
            live.ended = true;
        }
        if restored {
            live.conversation = self.blob::<Conversation>("conversation");
            live.stt.params = Some(stt_params(&live));
        }
        *self.live.borrow_mut() = Some(live);
        if restored {
            log_line(json!({"level": "warn", "msg": "call session restored after a reset"}));
            self.record("restored", json!({}));
            speech::start_stt(self);
            self.feed(Input::Restored);
        }
    }

    /// The open carrier socket with link id `id`.
    fn carrier_socket(&self, id: u64) -> Option<WebSocket> {
        self.state
            .get_websockets_with_tag(CARRIER_TAG)
            .into_iter()
            .find(|ws| socket_id(ws) == Some(id))
    }

    /// Routes a carrier frame: the verified socket's frames are the call's; any other socket is
    /// pending and judged on its own.
    fn on_carrier_frame(self: &Rc<Self>, ws: &WebSocket, message: &WebSocketIncomingMessage) {
        let Some(id) = socket_id(ws) else {
            return;
        };
        match self.with_live(|live| live.link.is_active(id)) {
            Some(true) => self.on_call_frame(message),
            Some(false) => self.on_pending_frame(ws, id, message),
            None => {}
        }
    }

    /// A frame of a socket whose token is not proven yet: parsed by an adapter of its own (it
    /// must not change the call's stream id or format), then promoted, refused or left waiting.
    fn on_pending_frame(
        self: &Rc<Self>,
        ws: &WebSocket,
        id: u64,
        message: &WebSocketIncomingMessage,
    ) {
        let Some((carrier, expected)) =
            self.with_live(|live| (live.info.carrier.clone(), live.info.stream_token.clone()))
        else {
            return;
        };
        let Some(mut adapter) = carrier_for(&carrier) else {
            return;
        };
        let events = match adapter.parse(incoming_frame(message)) {
            Ok(events) => events,
            Err(e) => {
                worker::console_warn!(
                    "{}",
                    json!({"msg": "malformed media frame", "error": e.to_string(), "socket": id})
                );
                self.bump("malformed_frames", 1);
                return;
            }
        };
        match pending_step(&events, expected.as_deref()) {
            PendingStep::Wait => {
                if events.iter().any(|e| matches!(e, CarrierEvent::Connected)) {
                    self.record("connected", json!({"socket": id}));
                }
            }
            PendingStep::Leave => {
                self.record("stop", json!({"socket": id, "verified": false}));
                let _ = ws.close(Some(1000), Some("stream stopped"));
            }
            PendingStep::Refuse(refusal) => {
                log_line(json!({"level": "warn", "msg": "unverified stream refused",
                    "reason": refusal.code(), "socket": id}));
                let event = if refusal == StreamRefusal::InvalidToken {
                    "token_refused"
                } else {
                    "stream_refused"
                };
                self.record(event, json!({"socket": id, "reason": refusal.code()}));
                let _ = ws.close(Some(1008), Some(&refusal.to_string()));
            }
            PendingStep::Promote => {
                self.promote(ws, id, adapter);
                let start_text = match message {
                    WebSocketIncomingMessage::String(text) => Some(text.as_str()),
                    WebSocketIncomingMessage::Binary(_) => None,
                };
                for event in events {
                    let text = matches!(event, CarrierEvent::Start { .. })
                        .then_some(start_text)
                        .flatten();
                    self.on_carrier_event(event, text);
                }
            }
        }
    }

    /// A frame of the verified socket.
    fn on_call_frame(self: &Rc<Self>, message: &WebSocketIncomingMessage) {
        let frame = incoming_frame(message);
        let parsed = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            live.carrier.parse(frame)
        };
        match parsed {
            Ok(events) => {
                for event in events {
                    let start_text = match (&event, message) {
                        (CarrierEvent::Start { .. }, WebSocketIncomingMessage::String(t)) => {
                            Some(t.as_str())
                        }
                        _ => None,
                    };
                    self.on_carrier_event(event, start_text);
                }
            }
            Err(e) => {
                // Counted and skipped: one bad frame must never end a call.
                worker::console_warn!(
                    "{}",
                    json!({"msg": "malformed media frame", "error": e.to_string()})
                );
                self.bump("malformed_frames", 1);
            }
        }
    }

    fn on_carrier_event(self: &Rc<Self>, event: CarrierEvent, start_text: Option<&str>) {
        match event {
            CarrierEvent::Connected => self.record("connected", json!({})),
            CarrierEvent::Start {
                stream_id,
                call_id,
                params,
                format,
            } => self.on_start(stream_id, call_id, params, format, start_text),
            CarrierEvent::Audio(bytes) => {
                self.count("media_frames");
                self.forward_audio(bytes);
            }
            CarrierEvent::Dtmf(digit) => {
                self.record("dtmf", json!({"digit": digit}));
                self.feed(Input::Dtmf { digit });
            }
            CarrierEvent::Mark(name) => {
                self.record("mark", json!({"name": name}));
                self.feed(Input::MarkEchoed { name });
            }
            CarrierEvent::Stop => {
                self.record("stop", json!({}));
                self.end_call(EndReason::CarrierStop);
                if let Some(ws) = self.carrier_ws() {
                    let _ = ws.close(Some(1000), Some("stream stopped"));
                }
            }
            CarrierEvent::Error(detail) => self.record("carrier_error", json!({"detail": detail})),
        }
    }

    fn on_start(
        self: &Rc<Self>,
        stream_id: String,
        carrier_call_id: Option<String>,
        params: BTreeMap<String, String>,
        format: phone_agent_core::media::codec::AudioFormat,
        start_text: Option<&str>,
    ) {
        let shown: BTreeMap<&str, &str> = params
            .iter()
            .map(|(k, v)| {
                let v = if k == "token" {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        self.set_meta("stream_sid", &stream_id);
        if let Some(id) = &carrier_call_id {
            self.set_meta("carrier_call_id", id);
        }
        self.record(
            "start",
            json!({"stream_sid": stream_id, "call_sid": carrier_call_id,
                "custom_parameters": shown,
                "media_format": {"encoding": format!("{format:?}"), "sample_rate": format.sample_rate()}}),
        );
        // Only the verified socket gets here: its token was checked on the URL or in this
        // `start` (see `on_pending_frame`).
        let first = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            if live.ended {
                return;
            }
            let first = live.conversation.is_none();
            if first {
                live.info.carrier_call_id = carrier_call_id.clone();
                live.info.started_at_ms = Some(now_ms());
                live.conversation = Some(Conversation::new(live.setup.session.clone()));
                live.stt.params = Some(stt_params(live));
                let (_, transcode) = stt_route(format, &live.setup.stt);
                live.stt.transcoder = transcode.and_then(|to| Transcoder::new(format, to).ok());
                self.put_blob("call", &live.info);
            }
            first
        };
        // The latest verified `start` is what an instance reset re-reads into the adapter.
        if let Some(text) = start_text {
            self.put_blob("start_frame", &text);
        }
        if !first {
            // A reconnect (or a repeated `start`): the conversation goes on as it was.
            return;
        }
        self.put_blob("phase", &"live");
        self.broadcast(json!({"type": "state", "state": "started"}));
        speech::start_stt(self);
        let session = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            session.mark_in_progress(carrier_call_id).await;
        });
        self.feed(Input::StreamStarted);
    }

    /// A carrier socket closed or failed. Losing the verified one without `stop` starts the
    /// grace period (the alarm ends the call if no verified socket is back by then); any other
    /// socket going away changes nothing.
    fn on_carrier_gone(self: &Rc<Self>, ws: &WebSocket) {
        let Some(id) = socket_id(ws) else {
            return;
        };
        let now = u64::try_from(now_ms()).unwrap_or_default();
        let deadline = self
            .with_live(|live| {
                if live.ended {
                    return None;
                }
                let deadline = live.link.closed(id, now);
                if deadline.is_some() {
                    live.carrier_ws = None;
                }
                deadline
            })
            .flatten();
        if deadline.is_none() {
            return;
        }
        self.put_link();
        log_line(
            json!({"level": "warn", "msg": "carrier stream lost without stop",
            "grace_ms": STREAM_GRACE_MS}),
        );
        self.record(
            "stream_lost",
            json!({"socket": id, "grace_ms": STREAM_GRACE_MS}),
        );
        self.rearm();
    }

    /// The alarm: the grace deadline of a lost stream ends the call; otherwise it is the
    /// conversation's timer.
    fn on_alarm(self: &Rc<Self>) {
        let now = u64::try_from(now_ms()).unwrap_or_default();
        let expired = self
            .with_live(|live| {
                // The alarm that fired is spent; a tick makes the conversation ask again.
                live.timer_ms = None;
                !live.ended && live.link.expired(now)
            })
            .unwrap_or(false);
        if expired {
            self.end_call(EndReason::StreamLost);
            return;
        }
        self.feed(Input::Tick);
        self.rearm();
    }

    /// Sets the object's one alarm to the earlier of the conversation's timer and the grace
    /// deadline (a spare alarm only feeds a harmless tick).
    fn rearm(self: &Rc<Self>) {
        let Some(Some(at_ms)) = self.with_live(|live| live.link.alarm_at(live.timer_ms)) else {
            return;
        };
        let session = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // An absolute time: `set_alarm(i64)` would take it as an offset from now.
            let at = i64::try_from(at_ms)
                .ok()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .unwrap_or_default();
            if let Err(e) = session.state.storage().set_alarm(at).await {
                log_line(json!({"level": "error", "msg": "set alarm", "error": e.to_string()}));
            }
        });
    }

    /// Stores the carrier link (it must survive hibernation).
    fn put_link(&self) {
        if let Some(link) = self.with_live(|live| live.link.clone()) {
            self.put_blob("link", &link);
        }
    }

    async fn mark_in_progress(&self, carrier_call_id: Option<String>) {
        let Some(info) = self.info() else { return };
        let result = async {
            let db = self.env.d1("DB")?;
            if let Some(id) = &carrier_call_id {
                db::run(
                    &db,
                    "UPDATE calls SET provider_call_id = ? WHERE id = ? AND provider_call_id IS NULL",
                    &[id, &info.call_id],
                )
                .await?;
            }
            let change = Change {
                to: CallStatus::InProgress,
                source: "session",
                detail: json!({"carrier": info.carrier}),
                attempt: None,
                due_by: None,
                emit: true,
            };
            call_status::apply(&self.env, &db, &info.call_id, &change, now_ms()).await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(e) = result {
            log_line(json!({"level": "error", "msg": "call in progress", "error": e.message}));
        }
    }

    /// Sends caller audio to STT, or keeps it while the STT socket is not connected.
    fn forward_audio(&self, bytes: Vec<u8>) {
        let mut guard = self.live.borrow_mut();
        let Some(live) = guard.as_mut() else {
            return;
        };
        if live.ended {
            return;
        }
        let stt = &mut live.stt;
        let audio = match stt.transcoder.as_mut() {
            Some(t) => {
                let mut out = Vec::with_capacity(bytes.len());
                t.push(&bytes, &mut out);
                out
            }
            None => bytes,
        };
        if audio.is_empty() {
            // Deepgram treats an empty binary frame as a close request.
            return;
        }
        if stt.pending.is_empty() {
            if let Some(ws) = &stt.ws {
                if ws.send_with_bytes(&audio).is_ok() {
                    stt.last_sent_ms = now_ms();
                    return;
                }
            }
        }
        stt.pending.extend(audio);
        let excess = stt.pending.len().saturating_sub(MAX_PENDING_AUDIO);
        stt.pending.drain(..excess);
    }

    /// Feeds one input to the conversation, stores it, and executes the actions in order.
    pub fn feed(self: &Rc<Self>, input: Input) {
        let now = u64::try_from(now_ms()).unwrap_or_default();
        let actions = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            let Some(conversation) = live.conversation.as_mut() else {
                return;
            };
            conversation.handle(now, input)
        };
        // Frames first (a clear must reach the carrier within a frame interval), then the new
        // state is stored; executing actions never feeds the conversation synchronously.
        for action in actions {
            self.execute(action);
        }
        let stored = self.with_live(|live| {
            live.conversation
                .as_ref()
                .and_then(|c| serde_json::to_string(c).ok())
        });
        if let Some(Some(text)) = stored {
            self.put_raw("conversation", &text);
        }
    }

    fn execute(self: &Rc<Self>, action: Action) {
        match action {
            Action::StartLlm {
                turn,
                messages,
                tools,
            } => {
                self.broadcast(json!({"type": "state", "state": "thinking", "turn": turn}));
                speech::start_llm(self, turn, &messages, &tools);
            }
            Action::CancelLlm { turn } => {
                let cancelled = {
                    let mut guard = self.live.borrow_mut();
                    guard.as_mut().and_then(|live| {
                        if live.llm.as_ref().is_some_and(|(_, t, _)| *t == turn) {
                            live.llm.take()
                        } else {
                            None
                        }
                    })
                };
                if let Some((_, _, controller)) = cancelled {
                    controller.abort();
                }
            }
            Action::Speak {
                turn,
                segment,
                text,
            } => speech::queue_tts(self, turn, segment, text),
            Action::CancelTts { turn } => speech::cancel_tts(self, Some(turn)),
            Action::SendMark { name } => {
                let frame = self
                    .with_live(|live| live.carrier.mark_frame(&name))
                    .flatten();
                self.send_carrier(frame);
            }
            Action::SendClear => {
                let frame = self.with_live(|live| live.carrier.clear_frame()).flatten();
                self.send_carrier(frame);
                self.count("clears");
                self.broadcast(json!({"type": "state", "state": "interrupted"}));
            }
            Action::RunTool { turn, call } => speech::run_tool(self, turn, call),
            Action::SendDtmf { digits } => self.send_dtmf(&digits),
            Action::Transfer { to } => self.end_call(EndReason::Transfer(to)),
            Action::Hangup { reason } => self.end_call(EndReason::Agent(reason)),
            Action::SetAlarm { at_ms } => {
                self.with_live(|live| live.timer_ms = Some(at_ms));
                self.rearm();
            }
            Action::PersistTurn(turn) => {
                self.store_turn(&turn);
                // Agent lines went out as each sentence was sent; the turn says what was heard.
                self.broadcast(json!({"type": "turn", "turn": turn}));
                self.broadcast(
                    json!({"type": "metrics", "turn": turn.id, "metrics": turn.metrics}),
                );
                self.broadcast(json!({"type": "state", "state": "listening"}));
            }
            Action::Emit(event) => {
                let mut value = serde_json::to_value(&event).unwrap_or(Value::Null);
                if let Some(obj) = value.as_object_mut() {
                    let kind = obj.remove("type").unwrap_or(Value::Null);
                    obj.insert("event".into(), kind);
                    obj.insert("type".into(), "event".into());
                }
                self.broadcast(value);
            }
        }
    }

    /// In-band DTMF: tones in the carrier's format, framed like speech.
    fn send_dtmf(&self, digits: &str) {
        let frames = self.with_live(|live| {
            let format = live.carrier.format();
            let mut bytes = Vec::new();
            format.encode(&dtmf_samples(digits, format.sample_rate()), &mut bytes);
            let mut framer = Framer::new(live.carrier.frame_bytes(), format.silence_byte());
            let mut frames = framer.push(&bytes);
            frames.extend(framer.flush());
            frames
                .iter()
                .filter_map(|f| live.carrier.audio_frame(f))
                .collect::<Vec<_>>()
        });
        for frame in frames.unwrap_or_default() {
            self.send_carrier(Some(frame));
        }
        self.record("dtmf_sent", json!({"digits": digits}));
    }

    /// Runs `f` on the live session, if there is one (never across an `.await`).
    pub fn with_live<T>(&self, f: impl FnOnce(&mut Live) -> T) -> Option<T> {
        self.live.borrow_mut().as_mut().map(f)
    }

    /// The call facts, if a call is connected.
    pub fn info(&self) -> Option<CallInfo> {
        self.with_live(|live| live.info.clone())
    }

    fn carrier_ws(&self) -> Option<WebSocket> {
        self.with_live(|live| live.carrier_ws.clone()).flatten()
    }

    /// Sends a frame to the carrier; a failed send is counted (the socket's close ends the call).
    pub fn send_carrier(&self, frame: Option<OutFrame>) -> bool {
        let (Some(OutFrame::Text(text)), Some(ws)) = (frame, self.carrier_ws()) else {
            return false;
        };
        let ok = ws.send_with_str(text).is_ok();
        if !ok {
            self.count("carrier_send_failures");
        }
        ok
    }

    /// Sends a JSON message to every live-view socket.
    pub fn broadcast(&self, message: Value) {
        let sockets = self.state.get_websockets_with_tag(LIVE_TAG);
        if sockets.is_empty() {
            return;
        }
        let mut message = message;
        if let Some(obj) = message.as_object_mut() {
            obj.insert("at".into(), now_ms().into());
        }
        let text = message.to_string();
        for ws in sockets {
            let _ = ws.send_with_str(&text);
        }
    }

    /// Ends the session once: stops providers, tells the carrier, and finishes the call record.
    fn end_call(self: &Rc<Self>, reason: EndReason) {
        let was_live = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            if live.ended {
                return;
            }
            live.ended = live.conversation.is_none();
            live.conversation.is_some()
        };
        if was_live && matches!(reason, EndReason::CarrierStop | EndReason::StreamLost) {
            // The caller is gone: the conversation commits what was heard of the last reply.
            self.feed(Input::Hangup);
        }
        let (stt, llm) = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            live.ended = true;
            live.stt.closing = true;
            (live.stt.ws.clone(), live.llm.take())
        };
        if let Some(ws) = stt {
            let _ = ws.send_with_str(phone_agent_core::providers::deepgram::close_stream());
        }
        if let Some((_, _, controller)) = llm {
            controller.abort();
        }
        speech::cancel_tts(self, None);
        self.close_pending_sockets();
        self.flush_counters();
        self.put_blob("phase", &"ended");
        self.record("ended", json!({"reason": reason.as_str()}));
        self.broadcast(json!({"type": "state", "state": "ended", "reason": reason.as_str()}));
        if !was_live {
            return;
        }
        let session = self.clone();
        self.state.wait_until(async move {
            if let Err(e) = session.state.storage().delete_alarm().await {
                log_line(json!({"level": "warn", "msg": "delete alarm", "error": e.to_string()}));
            }
            session.leave_carrier(&reason).await;
            session.finalize(&reason).await;
        });
    }

    /// Closes every carrier socket but the verified one (pending sockets end with the call).
    fn close_pending_sockets(&self) {
        let active = self.with_live(|live| live.link.active()).flatten();
        for ws in self.state.get_websockets_with_tag(CARRIER_TAG) {
            if active.is_none() || socket_id(&ws) != active {
                let _ = ws.close(Some(1000), Some("call ended"));
            }
        }
    }

    /// Tells the carrier the agent is done (transfer or hang-up); a caller hang-up needs nothing.
    async fn leave_carrier(&self, reason: &EndReason) {
        let (Some(info), Some(config)) = (self.info(), self.config.as_ref()) else {
            return;
        };
        let providers = &config.providers;
        let twilio_auth = providers.twilio_account_sid.as_deref().and_then(|sid| {
            config
                .secrets
                .twilio
                .first()
                .map(|token| (sid, basic_auth(sid, token)))
        });
        let result = match (reason, info.carrier.as_str(), &info.carrier_call_id) {
            (EndReason::Transfer(to), "twilio", Some(call_sid)) => match &twilio_auth {
                // New TwiML tears the stream down and dials the human; our socket closes with it.
                Some((sid, auth)) => Some(
                    outbound::send(
                        Method::Post,
                        &format!(
                            "{}{}",
                            providers.twilio_api_url,
                            twilio_call_path(sid, call_sid)
                        ),
                        &[
                            ("Authorization", auth),
                            ("Content-Type", "application/x-www-form-urlencoded"),
                        ],
                        Some(twilio_transfer_form(to).as_bytes()),
                        CARRIER_REST_TIMEOUT,
                    )
                    .await,
                ),
                None => None,
            },
            (EndReason::Transfer(to), "telnyx", Some(id)) => match &providers.telnyx_api_key {
                Some(key) => Some(
                    outbound::send(
                        Method::Post,
                        &format!(
                            "{}{}",
                            providers.telnyx_api_url,
                            telnyx_action_path(id, "transfer")
                        ),
                        &[
                            ("Authorization", &format!("Bearer {key}")),
                            ("Content-Type", "application/json"),
                        ],
                        Some(telnyx_transfer_body(to).to_string().as_bytes()),
                        CARRIER_REST_TIMEOUT,
                    )
                    .await,
                ),
                None => None,
            },
            (EndReason::Agent(_) | EndReason::StreamLost, "telnyx", Some(id)) => {
                match &providers.telnyx_api_key {
                    // Closing a Telnyx stream does not end the call: hang up over REST (also when
                    // the stream was lost, so the caller is not left in silence).
                    Some(key) => Some(
                        outbound::send(
                            Method::Post,
                            &format!(
                                "{}{}",
                                providers.telnyx_api_url,
                                telnyx_action_path(id, "hangup")
                            ),
                            &[
                                ("Authorization", &format!("Bearer {key}")),
                                ("Content-Type", "application/json"),
                            ],
                            Some(b"{}"),
                            CARRIER_REST_TIMEOUT,
                        )
                        .await,
                    ),
                    None => None,
                }
            }
            _ => None,
        };
        match result {
            Some(Ok(reply)) if (200..300).contains(&reply.status) => {}
            Some(Ok(reply)) => log_line(
                json!({"level": "error", "msg": "carrier call control refused",
                "status": reply.status, "reason": reason.as_str()}),
            ),
            Some(Err(e)) => log_line(
                json!({"level": "error", "msg": "carrier call control failed",
                "error": e.to_string(), "reason": reason.as_str()}),
            ),
            None => {}
        }
        if matches!(reason, EndReason::Agent(_) | EndReason::Transfer(_)) {
            // Closing the stream ends Twilio's `<Connect>` (and with no verb after it, the
            // call) and lets Exotel's flow go on to its next applet.
            if let Some(ws) = self.carrier_ws() {
                let _ = ws.close(Some(1000), Some(reason.as_str()));
            }
        }
    }

    /// After the call: transcript and metrics to D1, status completed (a lost stream: completed
    /// if the caller was heard, else failed), the summary from the
    /// LLM, and `call.transcript.ready` / `call.summary.ready` through the forwarding pipeline.
    async fn finalize(&self, reason: &EndReason) {
        let Some(info) = self.info() else { return };
        let turns = self.turns();
        let result = async {
            let db = self.env.d1("DB")?;
            let now = now_ms();
            let t = transcript(&turns);
            db::run(
                &db,
                "INSERT INTO transcripts (call_id, tenant_id, turns, text, created_at)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (call_id) DO UPDATE SET turns = excluded.turns, text = excluded.text",
                &[
                    &info.call_id,
                    &info.tenant_id,
                    &t.turns.to_string(),
                    &t.text,
                    &now,
                ],
            )
            .await?;
            let duration = info
                .started_at_ms
                .map(|started| (now - started).max(0) / 1000);
            db::run(
                &db,
                "UPDATE calls SET metrics = ?, duration_seconds = COALESCE(?, duration_seconds),
                   updated_at = ? WHERE id = ?",
                &[
                    &metrics_summary(&turns).to_string(),
                    &duration,
                    &now,
                    &info.call_id,
                ],
            )
            .await?;
            let to = match reason {
                EndReason::StreamLost => lost_stream_status(&turns),
                _ => CallStatus::Completed,
            };
            let change = Change {
                to,
                source: "session",
                detail: json!({"reason": reason.as_str()}),
                attempt: None,
                due_by: None,
                emit: true,
            };
            call_status::apply(&self.env, &db, &info.call_id, &change, now).await?;
            call_status::emit(
                &self.env,
                &db,
                &info.call_id,
                "call.transcript.ready",
                &format!("{}:transcript.ready", info.call_id),
                json!({"transcript": {"text": t.text, "turns": t.turns}, "reason": reason.as_str()}),
                now,
            )
            .await?;
            let summary = self.summarize(&t.lines).await;
            let (summary_text, summary_error) = match summary {
                Ok(text) => (Some(text), None),
                Err(e) => (None, Some(e)),
            };
            if let Some(text) = &summary_text {
                db::run(
                    &db,
                    "UPDATE calls SET summary = ?, updated_at = ? WHERE id = ?",
                    &[text, &now_ms(), &info.call_id],
                )
                .await?;
            }
            call_status::emit(
                &self.env,
                &db,
                &info.call_id,
                "call.summary.ready",
                &format!("{}:summary.ready", info.call_id),
                json!({"summary": summary_text, "error": summary_error}),
                now_ms(),
            )
            .await?;
            Ok::<_, ApiError>(())
        }
        .await;
        match result {
            Ok(()) => self.record("finalized", json!({})),
            Err(e) => {
                log_line(
                    json!({"level": "error", "msg": "finalize call", "call_id": info.call_id,
                    "error": e.message}),
                );
                self.record("finalize_failed", json!({"error": e.message}));
            }
        }
    }

    async fn summarize(
        &self,
        lines: &[(phone_agent_core::providers::openai::Speaker, String)],
    ) -> std::result::Result<String, String> {
        if lines.is_empty() {
            return Ok("Nothing was said on this call.".to_owned());
        }
        let config = self.config.as_ref().ok_or("configuration is invalid")?;
        let key = config
            .providers
            .openai_api_key
            .as_deref()
            .ok_or("OPENAI_API_KEY is not set")?;
        let model = self
            .with_live(|live| live.setup.llm_model.clone())
            .flatten()
            .unwrap_or_else(|| config.providers.openai_model.clone());
        let body = summary_request(&model, lines).to_string();
        let reply = outbound::send(
            Method::Post,
            &format!("{}/chat/completions", config.providers.openai_base_url),
            &[
                ("Authorization", &format!("Bearer {key}")),
                ("Content-Type", "application/json"),
            ],
            Some(body.as_bytes()),
            SUMMARY_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
        if !(200..300).contains(&reply.status) {
            return Err(format!("summary request failed: HTTP {}", reply.status));
        }
        parse_completion_text(&reply.body).map_err(|e| e.to_string())
    }

    fn store_turn(&self, turn: &Turn) {
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

    fn turns(&self) -> Vec<Turn> {
        #[derive(Deserialize)]
        struct Row {
            turn: String,
        }
        self.state
            .storage()
            .sql()
            .exec("SELECT turn FROM turns ORDER BY id", None)
            .and_then(|c| c.to_array::<Row>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.turn).ok())
            .collect()
    }

    fn put_blob<T: Serialize + ?Sized>(&self, key: &str, value: &T) {
        if let Ok(text) = serde_json::to_string(value) {
            self.put_raw(key, &text);
        }
    }

    /// Stores already-serialized JSON under `key`.
    fn put_raw(&self, key: &str, text: &str) {
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

    fn blob<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
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

    fn flush_counters(&self) {
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

    fn set_meta(&self, key: &str, value: &str) {
        let _ = self.state.storage().sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![SqlStorageValue::from(key), SqlStorageValue::from(value)],
        );
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

impl Live {
    fn new(
        info: CallInfo,
        setup: AgentSetup,
        carrier: Box<dyn Carrier>,
        carrier_ws: Option<WebSocket>,
        link: CarrierLink,
    ) -> Self {
        Live {
            info,
            setup,
            carrier,
            carrier_ws,
            link,
            timer_ms: None,
            conversation: None,
            stt: Stt::default(),
            llm: None,
            next_llm_id: 0,
            tts: Tts::default(),
            ended: false,
            counters: BTreeMap::new(),
        }
    }
}

/// The STT parameters for the call's audio format.
fn stt_params(live: &Live) -> ListenParams {
    stt_route(live.carrier.format(), &live.setup.stt).0
}

/// A carrier socket's id in the call's `CarrierLink` (from its attachment).
fn socket_id(ws: &WebSocket) -> Option<u64> {
    ws.deserialize_attachment::<SocketTag>()
        .ok()
        .flatten()
        .map(|tag| tag.id)
        .filter(|id| *id != 0)
}

fn incoming_frame(message: &WebSocketIncomingMessage) -> Frame<'_> {
    match message {
        WebSocketIncomingMessage::String(text) => Frame::Text(text),
        WebSocketIncomingMessage::Binary(bytes) => Frame::Binary(bytes),
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
