//! The carrier's media socket: pending sockets proving their token, the verified socket's
//! frames and events, the call's timer, and caller audio on its way to STT.

use super::{route_stt, socket_id, EndReason, LiveMessage, Session, CARRIER_TAG};
use crate::live::speech;
use crate::pipeline::call_status::{self, Change};
use crate::platform::http::{log_line, now_ms, ApiError};
use crate::store::call_queue::{self, StreamWatch};
use crate::store::calls;
use phone_agent_core::finalize::session_alarm;
use phone_agent_core::ids::CallId;
use phone_agent_core::media::access::{pending_step, PendingStep, StreamRefusal, STREAM_GRACE_MS};
use phone_agent_core::media::carrier::{CarrierEvent, Frame};
use phone_agent_core::scheduling::CallStatus;
use phone_agent_core::session::{Conversation, Input};
use serde_json::json;
use std::collections::BTreeMap;
use std::rc::Rc;
use worker::{WebSocket, WebSocketIncomingMessage};

/// Caller audio kept while the STT socket is (re)connecting: 30 s of μ-law.
const MAX_PENDING_AUDIO: usize = 240_000;

impl Session {
    /// The open carrier socket with link id `id`.
    pub(super) fn carrier_socket(&self, id: u64) -> Option<WebSocket> {
        self.state
            .get_websockets_with_tag(CARRIER_TAG)
            .into_iter()
            .find(|ws| socket_id(ws) == Some(id))
    }

    /// Whether `ws` is the call's verified carrier socket. The hot path: recognised by object
    /// identity, without its tags or its attachment (JS → Wasm copies) 50 times a second.
    pub(super) fn is_call_socket(&self, ws: &WebSocket) -> bool {
        self.with_live(|live| live.carrier_ws.as_ref().is_some_and(|v| same_socket(v, ws)))
            .unwrap_or(false)
    }

    /// Routes a carrier frame: the verified socket's frames are the call's; any other socket is
    /// pending and judged on its own.
    pub(super) fn on_carrier_frame(
        self: &Rc<Self>,
        ws: &WebSocket,
        message: &WebSocketIncomingMessage,
    ) {
        if self.is_call_socket(ws) {
            self.on_call_frame(message);
            return;
        }
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
    pub(super) fn on_pending_frame(
        self: &Rc<Self>,
        ws: &WebSocket,
        id: u64,
        message: &WebSocketIncomingMessage,
    ) {
        let Some((carrier, expected)) =
            self.with_live(|live| (live.info.carrier, live.info.stream_token.clone()))
        else {
            return;
        };
        let mut adapter = carrier.media_adapter();
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

    /// A frame of the verified socket. Caller audio (50 frames a second) takes the adapter's
    /// scanner straight to STT; any other frame the full parse and its events.
    pub(super) fn on_call_frame(self: &Rc<Self>, message: &WebSocketIncomingMessage) {
        let frame = incoming_frame(message);
        let parsed = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            match live.carrier.read_media(frame) {
                Some(Ok(audio)) => {
                    drop(guard);
                    if let Some(bytes) = audio {
                        self.on_audio(bytes);
                    }
                    return;
                }
                Some(Err(e)) => Err(e),
                None => live.carrier.parse_full(frame),
            }
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

    pub(super) fn on_carrier_event(self: &Rc<Self>, event: CarrierEvent, start_text: Option<&str>) {
        match event {
            CarrierEvent::Connected => self.record("connected", json!({})),
            CarrierEvent::Start {
                stream_id,
                call_id,
                params,
                format,
            } => self.on_start(stream_id, call_id, params, format, start_text),
            CarrierEvent::Audio(bytes) => self.on_audio(bytes),
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

    /// Caller audio from the carrier.
    fn on_audio(self: &Rc<Self>, bytes: Vec<u8>) {
        self.count("media_frames");
        if self.forward_audio(bytes) {
            speech::start_stt(self);
            speech::prewarm_tts(self);
        }
    }

    pub(super) fn on_start(
        self: &Rc<Self>,
        stream_id: String,
        carrier_call_id: Option<String>,
        params: BTreeMap<String, String>,
        format: phone_agent_core::media::codec::AudioFormat,
        start_text: Option<&str>,
    ) {
        // Edited in place rather than collected: each `collect` into a map compiles a sort.
        let mut shown = params.clone();
        if let Some(token) = shown.get_mut("token") {
            *token = "[redacted]".into();
        }
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
        let Some(first) = self.with_ongoing(|live| {
            let first = live.conversation.is_none();
            if first {
                live.info.carrier_call_id = carrier_call_id.clone();
                live.info.started_at_ms = Some(now_ms());
                live.conversation = Some(Conversation::new(live.setup.session.clone()));
                route_stt(live, format);
                self.put_blob("call", &live.info);
            }
            first
        }) else {
            return;
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
        self.broadcast(&LiveMessage::state("started"));
        // Both provider sockets open side by side, before the greeting needs them.
        speech::start_stt(self);
        speech::prewarm_tts(self);
        let session = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            session.mark_in_progress(carrier_call_id.clone()).await;
            session.start_recording(carrier_call_id.as_deref()).await;
        });
        self.feed(Input::StreamStarted);
    }

    /// A carrier socket closed or failed. Losing the verified one without `stop` starts the
    /// grace period (the alarm ends the call if no verified socket is back by then); any other
    /// socket going away changes nothing.
    pub(super) fn on_carrier_gone(self: &Rc<Self>, ws: &WebSocket) {
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
    pub(super) fn on_alarm(self: &Rc<Self>) {
        let now = u64::try_from(now_ms()).unwrap_or_default();
        let expired = self
            .with_live(|live| {
                // The alarm that fired is spent; a tick makes the conversation ask again.
                live.timer_ms = None;
                live.armed_ms = None;
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
    /// deadline (a spare alarm only feeds a harmless tick), or once the call has ended to the
    /// end-of-call job's next attempt; only when that time changed.
    pub(super) fn rearm(self: &Rc<Self>) {
        let due = self.with_live(|live| {
            let live_deadline = live.link.alarm_at(live.timer_ms);
            let at = session_alarm(live.ended, live_deadline, live.finalize.next_at_ms)?;
            (live.armed_ms != Some(at)).then(|| {
                live.armed_ms = Some(at);
                (at, live.ended)
            })
        });
        let Some(Some((at_ms, ended))) = due else {
            return;
        };
        if !ended {
            // Unconfirmed like the other mid-call writes (storage.rs): an alarm lost with a
            // failed commit is lost with the reset it causes, and the restored session re-arms.
            self.write_behind(|w| w.alarm_ms = Some(at_ms));
            return;
        }
        // The end-of-call job's retry must not be lost: confirmed, like the job itself.
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
    pub(super) fn put_link(&self) {
        if let Some(link) = self.with_live(|live| live.link.clone()) {
            self.put_blob("link", &link);
        }
    }

    pub(super) async fn mark_in_progress(&self, carrier_call_id: Option<String>) {
        let Some(info) = self.info() else { return };
        let result = async {
            let db = self.env.d1("DB")?;
            let call_id = CallId::from(info.call_id.as_str());
            // Before the status change, so an in-progress here arms no stream deadline.
            call_queue::watch_stream(&db, &call_id, StreamWatch::Connected { at: now_ms() })
                .await?;
            if let Some(id) = &carrier_call_id {
                calls::attach_provider_call_id(&db, &call_id, id, None).await?;
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

    /// Sends caller audio to STT, or keeps it while the STT socket is not connected. Whether
    /// the STT stream was parked for lack of audio (the caller reopens it).
    pub(super) fn forward_audio(&self, bytes: Vec<u8>) -> bool {
        let mut guard = self.live.borrow_mut();
        let Some(live) = guard.as_mut() else {
            return false;
        };
        if live.ended {
            return false;
        }
        let now = now_ms();
        live.stt.last_audio_ms = now;
        let reopen = std::mem::take(&mut live.stt.parked);
        let audio = match live.stt.transcoder.as_mut() {
            Some(t) => {
                let mut out = Vec::with_capacity(bytes.len());
                t.push(&bytes, &mut out);
                out
            }
            None => bytes,
        };
        if audio.is_empty() {
            // Deepgram treats an empty binary frame as a close request.
            return reopen;
        }
        // Each carrier frame is 20 ms of caller audio on its way to STT (usage).
        *live
            .counters
            .entry(phone_agent_core::usage::counter::STT_FRAMES)
            .or_default() += 1;
        let stt = &mut live.stt;
        let Some(audio) = stt.batch.push(&audio) else {
            return reopen;
        };
        if stt.pending.is_empty() {
            if let Some(ws) = &stt.ws {
                if ws.send_with_bytes(&audio).is_ok() {
                    stt.last_sent_ms = now;
                    return reopen;
                }
            }
        }
        stt.pending.extend(audio);
        let excess = stt.pending.len().saturating_sub(MAX_PENDING_AUDIO);
        stt.pending.drain(..excess);
        reopen
    }
}

fn incoming_frame(message: &WebSocketIncomingMessage) -> Frame<'_> {
    match message {
        WebSocketIncomingMessage::String(text) => Frame::Text(text),
        WebSocketIncomingMessage::Binary(bytes) => Frame::Binary(bytes),
    }
}

/// Whether two handles are the same socket (the runtime hands the object the handler saw to
/// every event of that connection).
fn same_socket(a: &WebSocket, b: &WebSocket) -> bool {
    let a: &worker::web_sys::WebSocket = a.as_ref();
    let b: &worker::web_sys::WebSocket = b.as_ref();
    js_sys::Object::is(a.as_ref(), b.as_ref())
}
