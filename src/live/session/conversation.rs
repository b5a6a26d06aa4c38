//! Feeding the conversation and executing its actions: frames to the carrier, work for the
//! speech tasks, the live view, and the end of the call.

use super::{socket_id, CallInfo, EndReason, Live, Session, CARRIER_TAG, LIVE_TAG};
use crate::live::speech;
use crate::platform::http::{log_line, now_ms};
use phone_agent_core::live::dtmf_samples;
use phone_agent_core::media::carrier::OutFrame;
use phone_agent_core::media::framing::Framer;
use phone_agent_core::session::{Action, Input, SessionEvent, Turn, TurnMetrics};
use phone_agent_core::usage;
use serde::Serialize;
use serde_json::{json, Value};
use std::rc::Rc;
use worker::WebSocket;

/// A message to the live view's sockets, `type` naming it. Typed rather than `json!` so that
/// nothing is built for a call no one watches (transcripts come with every interim) and the
/// shapes share one serializer each.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage<'a> {
    /// A line heard from the caller (interim or final) or spoken by the agent (with its turn).
    Transcript {
        speaker: &'static str,
        text: &'a str,
        #[serde(rename = "final")]
        complete: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        turn: Option<u32>,
    },
    /// The conversation's state (`started`, `thinking`, `interrupted`, `listening`, `ended`).
    State {
        state: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        turn: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// A finished turn as stored.
    Turn { turn: &'a Turn },
    /// A finished turn's latency figures.
    Metrics { turn: u32, metrics: &'a TurnMetrics },
}

impl LiveMessage<'_> {
    /// A state change without a turn or a reason.
    pub fn state(state: &'static str) -> Self {
        LiveMessage::State {
            state,
            turn: None,
            reason: None,
        }
    }
}

impl Session {
    /// Feeds one input to the conversation, executes the actions in order, and stores what
    /// changed (after the event's sends, and not before the reply's first audio).
    pub fn feed(self: &Rc<Self>, input: Input) {
        let now = u64::try_from(now_ms()).unwrap_or_default();
        let frequent = input.is_frequent();
        let (actions, hold) = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return;
            };
            let Some(conversation) = live.conversation.as_mut() else {
                return;
            };
            let actions = conversation.handle(now, input);
            (actions, conversation.awaits_first_audio())
        };
        // Frames first (a clear must reach the carrier within a frame interval), then the new
        // state is stored; executing actions never feeds the conversation synchronously.
        for action in actions {
            self.execute(action);
        }
        // Nothing is written while the caller waits for a reply's first audio (what changed
        // meanwhile is written once it has gone out), and what is written goes in one batch
        // after the event's sends (`write_behind`).
        let due = self
            .with_live(|live| {
                let grew = live
                    .conversation
                    .as_ref()
                    .is_some_and(|c| c.history().len() > live.history_saved);
                let due = live.unsaved || !frequent || grew;
                live.unsaved = hold && due;
                due && !hold
            })
            .unwrap_or(false);
        if due {
            self.write_behind(|w| w.save_conversation = true);
        }
    }

    pub(super) fn execute(self: &Rc<Self>, action: Action) {
        match action {
            Action::StartLlm {
                turn,
                messages,
                tools,
            } => {
                self.broadcast(&LiveMessage::State {
                    state: "thinking",
                    turn: Some(turn),
                    reason: None,
                });
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
            } => {
                let chars = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
                self.count_by(usage::counter::TTS_CHARS, chars);
                speech::queue_tts(self, turn, segment, text);
            }
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
                self.broadcast(&LiveMessage::state("interrupted"));
            }
            Action::RunTool { turn, call } => {
                self.count(usage::counter::TOOL_CALLS);
                speech::run_tool(self, turn, call);
            }
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
                self.broadcast(&LiveMessage::Turn { turn: &turn });
                self.broadcast(&LiveMessage::Metrics {
                    turn: turn.id,
                    metrics: &turn.metrics,
                });
                self.broadcast(&LiveMessage::state("listening"));
            }
            Action::Emit(event) => {
                self.count_preemption(&event);
                let mut value = serde_json::to_value(&event).unwrap_or(Value::Null);
                if let Some(obj) = value.as_object_mut() {
                    let kind = obj.remove("type").unwrap_or(Value::Null);
                    obj.insert("event".into(), kind);
                    obj.insert("type".into(), "event".into());
                }
                self.broadcast(&value);
            }
        }
    }

    /// Preemptive replies used and wasted: call counters, stream events and log lines.
    fn count_preemption(self: &Rc<Self>, event: &SessionEvent) {
        let (turn, outcome, counter) = match event {
            SessionEvent::PreemptUsed { turn } => (turn, "used", "preemptive_used"),
            SessionEvent::PreemptWasted { turn } => (turn, "wasted", "preemptive_wasted"),
            _ => return,
        };
        self.count(counter);
        let call_id = self.with_live(|live| live.info.call_id.clone());
        log_line(
            json!({"level": "info", "msg": "preemptive reply", "outcome": outcome,
            "turn": turn, "call_id": call_id}),
        );
        self.record("preemptive", json!({"turn": turn, "outcome": outcome}));
    }

    /// In-band DTMF: tones in the carrier's format, framed like speech.
    pub(super) fn send_dtmf(self: &Rc<Self>, digits: &str) {
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

    /// [`Self::with_live`], unless the call has ended (what its sockets still say comes too late).
    pub(super) fn with_ongoing<T>(&self, f: impl FnOnce(&mut Live) -> T) -> Option<T> {
        self.live
            .borrow_mut()
            .as_mut()
            .filter(|live| !live.ended)
            .map(f)
    }

    /// The call facts, if a call is connected.
    pub fn info(&self) -> Option<CallInfo> {
        self.with_live(|live| live.info.clone())
    }

    pub(super) fn carrier_ws(&self) -> Option<WebSocket> {
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

    /// Sends a message, stamped with `at` (ms), to every live-view socket; nothing is
    /// serialized when none is connected.
    pub fn broadcast(&self, message: &impl Serialize) {
        let sockets = self.state.get_websockets_with_tag(LIVE_TAG);
        if sockets.is_empty() {
            return;
        }
        let Ok(mut text) = serde_json::to_string(message) else {
            return;
        };
        // Every message is an object: `at` is spliced in before its closing brace.
        if text.pop() == Some('}') {
            if !text.ends_with('{') {
                text.push(',');
            }
            text.push_str(&format!("\"at\":{}}}", now_ms()));
        } else {
            return;
        }
        for ws in sockets {
            let _ = ws.send_with_str(&text);
        }
    }

    /// Ends the session once: stops providers, tells the carrier, and finishes the call record.
    pub(super) fn end_call(self: &Rc<Self>, reason: EndReason) {
        let Some(was_live) = self.with_ongoing(|live| {
            live.ended = live.conversation.is_none();
            live.conversation.is_some()
        }) else {
            return;
        };
        if was_live && matches!(reason, EndReason::CarrierStop | EndReason::StreamLost) {
            // The caller is gone: the conversation commits what was heard of the last reply.
            self.feed(Input::Hangup);
        }
        let Some((stt, llm)) = self.with_live(|live| {
            live.ended = true;
            live.stt.closing = true;
            (live.stt.ws.clone(), live.llm.take())
        }) else {
            return;
        };
        if let Some(ws) = stt {
            let _ = ws.send_with_str(phone_agent_core::providers::deepgram::close_stream());
        }
        if let Some((_, _, controller)) = llm {
            controller.abort();
        }
        speech::cancel_tts(self, None);
        speech::close_tts(self);
        self.close_pending_sockets();
        self.flush_counters();
        self.put_blob("phase", &"ended");
        self.record("ended", json!({"reason": reason.as_str()}));
        self.broadcast(&LiveMessage::State {
            state: "ended",
            turn: None,
            reason: Some(reason.as_str()),
        });
        if !was_live {
            return;
        }
        // What the call's last event changed (its last turn) is stored before the job that
        // reads it.
        self.flush_writes();
        // In the same step as the phase: the call cannot end without its job being stored. Its
        // alarm replaces the conversation's.
        self.open_finalize_job(&reason);
        let session = self.clone();
        self.state.wait_until(async move {
            session.leave_carrier(&reason).await;
            session.finalize().await;
        });
    }

    /// Closes every carrier socket but the verified one (pending sockets end with the call).
    pub(super) fn close_pending_sockets(&self) {
        let active = self.with_live(|live| live.link.active()).flatten();
        for ws in self.state.get_websockets_with_tag(CARRIER_TAG) {
            if active.is_none() || socket_id(&ws) != active {
                let _ = ws.close(Some(1000), Some("call ended"));
            }
        }
    }
}
