//! `CallSession`: one Durable Object per call. It owns the carrier's media WebSocket
//! (hibernation API), the call's [`Conversation`] and the provider connections that serve it
//! (STT socket, LLM and TTS streams, in `speech/`), and executes the conversation's actions.
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
//!   each finished turn (the writes made while the call is live are unconfirmed so no send
//!   waits for their commit, and queued to one write after each event's sends; storage.rs says
//!   why that is safe). After a reset the next event
//!   rebuilds the session from it and feeds
//!   `Input::Restored` (the carrier socket, a hibernatable one, survives an eviction; see
//!   docs/architecture.md, "Instance resets");
//! - only the verified carrier socket (the core's `CarrierLink`, stored as blob `link`; each
//!   socket's id is in its attachment) carries the call: a pending socket is judged on its own
//!   frames with its own adapter and never touches the call until its token is proven.

mod carrier;
mod control;
mod conversation;
mod finalize;
mod storage;

pub use conversation::LiveMessage;

use crate::live::speech;
use crate::platform::app::load_config;
use crate::platform::http::{json_response, known_carrier, log_line, trace_id, ApiError};
use crate::platform::zones;
use crate::store::calls::{self, SessionCall};
use phone_agent_core::auth::LIVE_SUBPROTOCOL;
// The carrier by name; `Carrier` here is the media-stream adapter it hands out.
use phone_agent_core::carrier::Carrier as CarrierKind;
use phone_agent_core::config::Config;
use phone_agent_core::live::{agent_setup, stt_route, AgentSetup, AudioBatch, STT_BATCH_MS};
use phone_agent_core::media::access::{upgrade_trust, CarrierLink, Trust};
use phone_agent_core::media::carrier::{Carrier, Frame};
use phone_agent_core::media::codec::AudioFormat;
use phone_agent_core::media::transcode::Transcoder;
use phone_agent_core::providers::deepgram::ListenParams;
use phone_agent_core::scheduling::Direction;
use phone_agent_core::session::{Conversation, HangupReason, Input, Turn};
use phone_agent_core::template::{self, CallFacts};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use worker::worker_sys::web_sys;
use worker::{
    durable_object, AbortController, DurableObject, Env, Request, Response, Result, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

/// Hibernation tag of the carrier's media socket.
const CARRIER_TAG: &str = "carrier";
/// Hibernation tag of live-view sockets (`GET /api/v1/calls/{id}/live`).
const LIVE_TAG: &str = "live";

/// What each accepted socket remembers across hibernation.
#[derive(Serialize, Deserialize)]
struct SocketTag {
    carrier: CarrierKind,
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
    pub carrier: CarrierKind,
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
    /// Caller audio collected into fewer, larger messages (`core::live::STT_BATCH_MS`).
    pub batch: AudioBatch,
    pub pending: VecDeque<u8>,
    pub last_sent_ms: i64,
    /// When the carrier last sent caller audio (or the stream opened, if later).
    pub last_audio_ms: i64,
    /// The session asked the stream to finish: no reconnect.
    pub closing: bool,
    /// Closed for lack of caller audio (`SttUpkeep::Close`): the next audio reopens it.
    pub parked: bool,
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
    /// The call's TTS socket (segments go there first; this queue is the HTTP path).
    pub link: speech::TtsLink,
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
    /// How many history entries are in the `history` table.
    pub history_saved: usize,
    /// The conversation changed since it was last stored (held while a reply awaits its first
    /// audio; see `Session::feed`).
    pub unsaved: bool,
    pub stt: Stt,
    /// The LLM request in flight: (request id, turn, controller).
    pub llm: Option<(u64, u32, AbortController)>,
    pub next_llm_id: u64,
    pub tts: Tts,
    pub ended: bool,
    /// Counters not yet written to storage (media frames arrive 50 times a second).
    pub counters: BTreeMap<&'static str, i64>,
    /// The end-of-call job's next attempt and whether one is running.
    pub finalize: finalize::FinalizeRun,
    /// The time the object's alarm is set to (`None`: none, or it fired).
    pub armed_ms: Option<u64>,
}

/// The object's state, shared with its tasks through an `Rc`.
pub struct Session {
    pub state: State,
    pub env: Env,
    pub config: Option<Config>,
    pub live: RefCell<Option<Live>>,
    /// Unconfirmed writes queued for the end of the current event.
    writes: RefCell<storage::WriteBehind>,
}

/// The macro exports `fetch` and `alarm`; the socket handlers are exported below, synchronous.
#[durable_object(alarm)]
pub struct CallSession {
    inner: Rc<Session>,
}

/// The hibernation API's socket handlers. Synchronous on purpose: the macro's async exports
/// build a Promise, spawn a task and queue a microtask for every carrier frame (50 a second per
/// call), about a fifth of an inbound frame's CPU in the profile (bench/README.md, "Profile"),
/// and these handlers never wait for anything (what they start runs as tasks of its own).
#[wasm_bindgen]
impl CallSession {
    /// A message on a socket of this object.
    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn websocket_message(&self, ws: web_sys::WebSocket, message: JsValue) {
        let ws = WebSocket::from(ws);
        let message = match message.as_string() {
            Some(text) => WebSocketIncomingMessage::String(text),
            None => WebSocketIncomingMessage::Binary(js_sys::Uint8Array::new(&message).to_vec()),
        };
        // The call's carrier socket first: its frames need no tag lookup.
        if self.inner.is_call_socket(&ws) {
            self.inner.on_call_frame(&message);
            return;
        }
        if self.inner.state.get_tags(&ws).iter().any(|t| t == LIVE_TAG) {
            // The live view only listens.
            return;
        }
        self.inner.ensure_live();
        self.inner.on_carrier_frame(&ws, &message);
    }

    /// A socket of this object closed.
    #[wasm_bindgen(js_name = webSocketClose)]
    pub fn websocket_close(
        &self,
        ws: web_sys::WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) {
        let ws = WebSocket::from(ws);
        if self.inner.state.get_tags(&ws).iter().any(|t| t == LIVE_TAG) {
            return;
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
    }

    /// A socket of this object failed.
    #[wasm_bindgen(js_name = webSocketError)]
    pub fn websocket_error(&self, ws: web_sys::WebSocket, error: JsValue) {
        let ws = WebSocket::from(ws);
        if !self.inner.state.get_tags(&ws).iter().any(|t| t == LIVE_TAG) {
            self.inner.record(
                "socket_error",
                json!({"error": worker::Error::from(error).to_string(), "socket": socket_id(&ws)}),
            );
            self.inner.ensure_live();
            self.inner.on_carrier_gone(&ws);
        }
    }
}

impl DurableObject for CallSession {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(storage::SCHEMA, None) {
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
                writes: RefCell::default(),
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
        Ok(result.unwrap_or_else(|e| e.to_response(&trace_id("req"))))
    }

    async fn alarm(&self) -> Result<Response> {
        self.inner.ensure_live();
        if self.inner.with_live(|live| live.ended).unwrap_or(false) {
            // After the call the alarm serves only the end-of-call job.
            self.inner.with_live(|live| live.armed_ms = None);
            self.inner.finalize().await;
        } else {
            self.inner.on_alarm();
        }
        Response::ok("tick")
    }
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
        let carrier = known_carrier(carrier)?;
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
        let row = calls::for_session_unscoped(&db, call_id)
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
        if ended || phone_agent_core::scheduling::state::is_terminal(row.status) {
            return Err(ApiError::new(409, "call_ended", "this call has ended"));
        }
        if self.live.borrow().is_none() {
            self.set_up(row, carrier, call_id, base_url);
        }
        let Some(id) = self.with_live(|live| live.link.open()) else {
            return Err(ApiError::internal("call session not set up"));
        };
        self.put_link();
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[CARRIER_TAG]);
        pair.server.serialize_attachment(SocketTag {
            carrier,
            call_id: call_id.to_owned(),
            id,
        })?;
        self.record(
            "socket_opened",
            json!({"carrier": carrier, "socket": id, "verified": trust == Trust::Verified}),
        );
        if trust == Trust::Verified {
            self.promote(&pair.server, id, carrier.media_adapter());
            // The URL token proved the stream: the TTS socket opens before `start` even arrives.
            speech::prewarm_tts(self);
        }
        Ok(Response::from_websocket(pair.client)?)
    }

    /// The call's first socket: facts and agent setup from D1, kept for the whole call.
    fn set_up(&self, row: SessionCall, carrier: CarrierKind, call_id: &str, base_url: String) {
        let config: Value = row
            .config
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_else(|| json!({}));
        // The prompt and greeting are filled with this call's variables once, here (one pass:
        // a value is never read as a variable again).
        let fields = template::stored_fields(row.contact_fields.as_deref());
        let outbound = row.direction == Direction::Outbound;
        let values = CallFacts {
            contact_name: row.contact_name.as_deref(),
            contact_email: row.contact_email.as_deref(),
            contact_phone: if outbound {
                Some(&row.to_number)
            } else {
                row.from_number.as_deref()
            },
            contact_fields: &fields,
            to: &row.to_number,
            from: row.from_number.as_deref(),
            direction: row.direction.as_str(),
            start_at: chrono::DateTime::from_timestamp_millis(
                row.start_at.filter(|_| outbound).unwrap_or(row.created_at),
            ),
            zone: zones::zone(row.time_zone.as_deref()),
            agent_name: row.agent_name.as_deref(),
        }
        .values();
        let prompt = template::render(row.system_prompt.as_deref().unwrap_or_default(), &values);
        let greeting = row
            .first_message
            .as_deref()
            .map(|m| template::render(m, &values));
        let setup = agent_setup(&prompt, greeting.as_deref(), &config);
        if !setup.warnings.is_empty() {
            log_line(
                json!({"level": "warn", "msg": "agent config", "call_id": call_id,
                "warnings": setup.warnings}),
            );
        }
        let info = CallInfo {
            call_id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            carrier,
            direction: row.direction.as_str().to_owned(),
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
        self.set_meta("carrier", carrier.as_str());
        *self.live.borrow_mut() = Some(Live::new(
            info,
            setup,
            carrier.media_adapter(),
            None,
            CarrierLink::default(),
        ));
    }

    /// `socket` proved the call's token: it carries the call from now on, parsed by `adapter`
    /// (which has seen its `start`); a socket it replaces (carrier reconnect) is closed.
    fn promote(self: &Rc<Self>, socket: &WebSocket, id: u64, adapter: Box<dyn Carrier>) {
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
        let mut adapter = info.carrier.media_adapter();
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
            if let Some((conversation, saved)) = self.saved_conversation(live.setup.session.clone())
            {
                live.conversation = Some(conversation);
                live.history_saved = saved;
            }
            let format = live.carrier.format();
            route_stt(&mut live, format);
        }
        *self.live.borrow_mut() = Some(live);
        if restored {
            log_line(json!({"level": "warn", "msg": "call session restored after a reset"}));
            self.record("restored", json!({}));
            speech::start_stt(self);
            speech::prewarm_tts(self);
            self.feed(Input::Restored);
        }
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
            history_saved: 0,
            unsaved: false,
            stt: Stt::default(),
            llm: None,
            next_llm_id: 0,
            tts: Tts::default(),
            ended: false,
            counters: BTreeMap::new(),
            finalize: finalize::FinalizeRun::default(),
            armed_ms: None,
        }
    }
}

/// Routes the call's audio in `format` to STT: the listen parameters and, where Deepgram cannot
/// take the carrier's bytes as they are, the transcoder.
fn route_stt(live: &mut Live, format: AudioFormat) {
    let (params, transcode) = stt_route(format, &live.setup.stt);
    live.stt.params = Some(params);
    live.stt.transcoder = transcode.and_then(|to| Transcoder::new(format, to).ok());
    live.stt.batch = AudioBatch::new(transcode.unwrap_or(format), STT_BATCH_MS);
}

/// A carrier socket's id in the call's `CarrierLink` (from its attachment).
fn socket_id(ws: &WebSocket) -> Option<u64> {
    ws.deserialize_attachment::<SocketTag>()
        .ok()
        .flatten()
        .map(|tag| tag.id)
        .filter(|id| *id != 0)
}
