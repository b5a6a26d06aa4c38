//! Live call conversation state machine: turns, barge-in, marks.
//!
//! [`Conversation`] is sans-I/O. The call's Durable Object feeds it every event of the call as
//! an [`Input`] with the current time and executes the returned [`Action`]s **in order**. It
//! never reads a clock, and its whole state is serde-serializable: the Durable Object stores it
//! after its inputs (batched while a reply awaits its first audio, see
//! [`Conversation::awaits_first_audio`]) and, after an instance reset, loads it and feeds
//! [`Input::Restored`].
//!
//! Speech goes out one segment (sentence) at a time. The LLM's text deltas are split into
//! sentences; each becomes one `Speak` (one TTS request). A reply's first segment may be its
//! first clause or word group instead (`SentenceSplitter::push_opening`): the caller waits for
//! it, so its synthesis starts before the first sentence is complete. The edge sends the segments' audio in
//! `Speak` order, reports it with `TtsAudio`, then `TtsDone`, and sends the `SendMark` returned
//! before any audio of a later segment. A segment counts as heard only when its mark echoes
//! before any `clear` (a `clear` echoes every pending mark, and those echoes are ignored), so
//! after a barge-in the history keeps exactly the sentences the caller heard in full: the
//! truncation is sentence-grained.
//!
//! Turn-taking: the caller's final STT segments accumulate into an utterance, and the configured
//! end-of-speech signals (`speech_final`, `UtteranceEnd`) end the turn. While the agent is
//! replying (LLM running or audio not yet heard), a transcript with enough non-backchannel words
//! interrupts it. An interruption on interim words that never become final words is a false
//! interruption: after `false_interruption_ms` (or at an end-of-speech signal with nothing said)
//! the agent carries on with a fresh LLM request over the history, which holds what was heard.
//! Words said over the agent that did not interrupt it (backchannels) are dropped.
//!
//! Tools: `end_call`, `transfer_call` and `send_dtmf` are decided here (the exits wait until the
//! last words have played); `schedule_callback` becomes `RunTool`, answered by `ToolResult` (or
//! it times out). Timers (LLM/tool timeout, false interruption, idle reminder and hang-up, max
//! duration) share one alarm: `SetAlarm` replaces it and its firing is fed back as `Tick`.
//!
//! Preemptive generation (`SessionConfig::preemptive`): on a draft of the caller's turn (Flux
//! `SttEagerEnd`, or a Nova interim seen twice unchanged followed by `preemptive_stable_ms` of
//! silence) the LLM request starts at once, but its output is held: no `Speak` until the turn
//! ends. The same final words commit it (its held output is replayed, so the first audio leaves
//! as soon as the turn ends); `SttTurnResumed`, new words or a different final text cancel it
//! (`CancelLlm`), and the final turn is answered with a fresh request. Only committed turns
//! enter the history; `PreemptUsed` / `PreemptWasted` events and the turn metrics count them.

mod config;
mod history;
mod preempt;
mod text;
mod tools;
mod turns;

pub use config::{EndOfTurn, SessionConfig};
pub use history::{Message, ToolCall};
pub use tools::{
    Tool, ToolError, BOOKING_TOOLS, BOOK_APPOINTMENT, CANCEL_APPOINTMENT, END_CALL, FIND_SLOTS,
    RESCHEDULE_APPOINTMENT, SCHEDULE_CALLBACK, SEND_DTMF, TRANSFER_CALL,
};
pub use turns::{ToolRecord, Turn, TurnMetrics};

use preempt::{Held, Preempt, StableInterim};
use serde::{Deserialize, Serialize};
use turns::{mark_name, Filler, PendingExit, Reply, SegmentState, ToolRun};

/// Something that happened on the call, fed to [`Conversation::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The carrier's media stream started (Twilio `start`): the greeting is spoken.
    StreamStarted,
    /// A non-final STT result (Deepgram `is_final: false`); may interrupt the agent.
    SttInterim { text: String },
    /// A final STT segment (`is_final: true`) with Deepgram's `speech_final`.
    SttFinal { text: String, speech_final: bool },
    /// Deepgram `UtteranceEnd`.
    UtteranceEnd,
    /// Flux `EagerEndOfTurn`: the caller may be done; `text` is their whole turn so far.
    SttEagerEnd { text: String },
    /// Flux `TurnResumed`: the caller went on after `SttEagerEnd`.
    SttTurnResumed,
    /// Flux `EndOfTurn`: the caller's turn is over; `text` is all of it.
    SttEndOfTurn { text: String },
    /// A text delta of the LLM response requested by `StartLlm { turn }`.
    LlmText { turn: u32, text: String },
    /// A complete tool call of that response (fragments already joined by `index`).
    LlmToolCall { turn: u32, call: ToolCall },
    /// The response ended normally, after its last `LlmText` / `LlmToolCall`.
    LlmDone { turn: u32 },
    /// The request failed (HTTP error, broken stream).
    LlmFailed { turn: u32 },
    /// The result of a `RunTool`, as the text the model should read (JSON recommended).
    ToolResult {
        turn: u32,
        id: String,
        content: String,
    },
    /// `bytes` of the segment's audio were sent to the carrier.
    TtsAudio {
        turn: u32,
        segment: usize,
        bytes: usize,
    },
    /// All of the segment's audio has been sent.
    TtsDone { turn: u32, segment: usize },
    /// Synthesis of the segment failed.
    TtsFailed { turn: u32, segment: usize },
    /// The carrier echoed a mark (played, or cleared).
    MarkEchoed { name: String },
    /// The caller pressed a key (`0`-`9`, `*`, `#`, `A`-`D`).
    Dtmf { digit: String },
    /// The alarm set by `SetAlarm` fired.
    Tick,
    /// The caller hung up or the media stream stopped.
    Hangup,
    /// The state was just loaded after an instance reset: LLM, TTS and tool work in flight is
    /// gone.
    Restored,
}

impl Input {
    /// Inputs that arrive many times a second (interim words, LLM tokens, audio progress) and
    /// leave nothing a restart could use: the reply they build is lost with the instance and
    /// replaced on [`Input::Restored`]. The state is not saved after them.
    pub fn is_frequent(&self) -> bool {
        matches!(
            self,
            Input::SttInterim { .. } | Input::LlmText { .. } | Input::TtsAudio { .. }
        )
    }
}

/// What the edge must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stream a chat completion; report it with `Llm*` inputs tagged `turn`.
    StartLlm {
        turn: u32,
        messages: Vec<Message>,
        tools: Vec<serde_json::Value>,
    },
    /// Abort the LLM request of `turn`.
    CancelLlm { turn: u32 },
    /// Synthesize `text`; its audio goes out after every earlier segment's audio.
    Speak {
        turn: u32,
        segment: usize,
        text: String,
    },
    /// Abort all synthesis of `turn` and drop its unsent audio.
    CancelTts { turn: u32 },
    /// Send a carrier mark with this name, after the audio sent so far.
    SendMark { name: String },
    /// Send a carrier `clear`: drop the audio queued for playback.
    SendClear,
    /// Run a tool the edge implements (`schedule_callback`, the agent's HTTP tools, whose
    /// arguments were checked against their schema), then feed `ToolResult`.
    RunTool { turn: u32, call: ToolCall },
    /// Play DTMF tones on the call (carrier REST).
    SendDtmf { digits: String },
    /// Transfer the call to this number (carrier REST); the session is over.
    Transfer { to: String },
    /// Hang up the call; the session is over.
    Hangup { reason: HangupReason },
    /// Have `Tick` fed at this time (replaces the previous alarm; may be in the past).
    SetAlarm { at_ms: u64 },
    /// Store this finished turn.
    PersistTurn(Turn),
    /// Tell the live view.
    Emit(SessionEvent),
}

/// Why the agent hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupReason {
    /// The model called `end_call`.
    AgentEnded,
    /// The caller stayed silent for `idle_hangup_ms`.
    Idle,
    /// The call reached `max_duration_ms`.
    MaxDuration,
}

/// A live-view event that no `PersistTurn` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    /// The caller finished a turn; the agent answers in `turn`.
    UserTurn { turn: u32, text: String },
    /// An interruption turned out to be false; the agent carries on in `turn`.
    Resumed { turn: u32 },
    /// Something upstream failed during `turn`; the call goes on.
    UpstreamFailed { turn: u32, failure: Failure },
    /// A reply was requested early (`turn`) on this draft of the caller's turn; it is held.
    PreemptStarted { turn: u32, text: String },
    /// The caller's turn ended with the draft's words: the early reply is spoken.
    PreemptUsed { turn: u32 },
    /// The caller went on or said something else: the early reply was dropped unheard.
    PreemptWasted { turn: u32 },
}

/// Which upstream failed, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The LLM request failed (`LlmFailed`).
    LlmError,
    /// The LLM went silent for `response_timeout_ms`.
    LlmTimeout,
    /// The model kept calling tools past `max_tool_rounds`.
    ToolLoop,
    /// A tool result did not come within `response_timeout_ms`.
    ToolTimeout,
    /// Synthesis of a segment failed.
    Tts,
    /// Work in flight was lost in an instance reset.
    Restart,
}

/// How the agent leaves the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Exit {
    Hangup(HangupReason),
    Transfer(String),
}

impl Exit {
    fn into_action(self) -> Action {
        match self {
            Exit::Hangup(reason) => Action::Hangup { reason },
            Exit::Transfer(to) => Action::Transfer { to },
        }
    }
}

/// Deadlines the conversation can be waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Response,
    ExitGrace,
    FalseInterruption,
    Preempt,
    Filler,
    IdleReminder,
    IdleHangup,
    MaxDuration,
}

/// How soon a filler held back by words still playing is looked at again.
const FILLER_RECHECK_MS: u64 = 200;
/// Tool message content for a tool that gave no result in time.
const TOOL_TIMED_OUT: &str = r#"{"error":"the tool did not answer in time"}"#;
/// Tool message content for a tool whose run was lost in an instance reset.
const TOOL_LOST: &str = r#"{"error":"the tool run was lost; its outcome is unknown"}"#;

/// One call's conversation.
///
/// It is saved as an append-only log, so saving costs the same on turn 200 as on turn 1: the
/// config once (the edge keeps it with the call's setup), each history entry once (history is
/// only ever appended to), and its serialized form, which is the rest of the state only — small
/// and bounded by one reply. [`Conversation::restore`] puts the three back together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(skip)]
    config: SessionConfig,
    /// Committed messages: the system prompt, what the caller said, what they heard, tools.
    #[serde(skip)]
    history: Vec<Message>,
    next_turn: u32,
    /// The agent's reply in progress; at most one, so at most one LLM request is in flight.
    reply: Option<Reply>,
    /// Final STT text of the caller's current turn.
    utterance: String,
    started_ms: Option<u64>,
    /// Since when neither side has spoken; the idle timers count from here.
    silence_since_ms: u64,
    reminded: bool,
    max_duration_reached: bool,
    /// Time of the latest interim words of an interruption no final word has confirmed yet.
    unconfirmed_interruption_ms: Option<u64>,
    /// The alarm last requested, so it is requested again only when it changes.
    alarm_ms: Option<u64>,
    ended: bool,
    /// The reply requested on a draft of the caller's turn, held until the turn ends.
    #[serde(default)]
    preempt: Option<Preempt>,
    /// Nova: the draft the latest interims agree on (a preemption candidate).
    #[serde(default)]
    stable_interim: Option<StableInterim>,
    /// Early replies dropped since the last user turn; counted in that turn's metrics.
    #[serde(default)]
    preempts_wasted: u32,
}

impl Conversation {
    /// A conversation that has not started yet.
    pub fn new(config: SessionConfig) -> Self {
        let history = if config.system_prompt.trim().is_empty() {
            Vec::new()
        } else {
            vec![Message::System {
                content: config.system_prompt.clone(),
            }]
        };
        Conversation {
            config,
            history,
            next_turn: 0,
            reply: None,
            utterance: String::new(),
            started_ms: None,
            silence_since_ms: 0,
            reminded: false,
            max_duration_reached: false,
            unconfirmed_interruption_ms: None,
            alarm_ms: None,
            ended: false,
            preempt: None,
            stable_interim: None,
            preempts_wasted: 0,
        }
    }

    /// Feeds one input observed at `now_ms` (ms since the epoch); returns what to do, in order.
    /// Inputs that do not fit the current state (stale turns, unknown marks) are ignored.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let now = now_ms;
        match input {
            Input::StreamStarted => self.on_start(now, &mut out),
            Input::SttInterim { text } => {
                self.on_words(now, &text, false, &mut out);
                self.on_draft(now, &text, &mut out);
            }
            Input::SttFinal { text, speech_final } => {
                self.stable_interim = None;
                self.on_words(now, &text, true, &mut out);
                if speech_final && self.config.end_of_turn.speech_final {
                    self.end_user_turn(now, &mut out);
                }
            }
            Input::UtteranceEnd => {
                if self.config.end_of_turn.utterance_end {
                    self.end_user_turn(now, &mut out);
                }
            }
            Input::SttEagerEnd { text } => {
                self.silence_since_ms = now;
                let draft = preempt::join(&self.utterance, &text);
                self.start_preempt(now, draft, &mut out);
            }
            Input::SttTurnResumed => {
                self.silence_since_ms = now;
                self.drop_preempt(&mut out);
            }
            Input::SttEndOfTurn { text } => {
                self.on_words(now, &text, true, &mut out);
                self.end_user_turn(now, &mut out);
            }
            Input::LlmText { turn, text } if self.is_preempt(turn) => {
                self.hold(Held::Text(text), now);
            }
            Input::LlmToolCall { turn, call } if self.is_preempt(turn) => {
                self.hold(Held::Tool(call), now);
            }
            Input::LlmDone { turn } if self.is_preempt(turn) => self.hold(Held::Done, now),
            Input::LlmFailed { turn } if self.is_preempt(turn) => {
                // The turn's end asks again; the draft's request is spent.
                if let Some(p) = self.preempt.as_mut() {
                    p.in_flight = false;
                }
                self.drop_preempt(&mut out);
            }
            Input::LlmText { turn, text } => self.on_llm_text(now, turn, &text, &mut out),
            Input::LlmToolCall { turn, call } => self.on_llm_tool_call(now, turn, call),
            Input::LlmDone { turn } => self.on_llm_done(now, turn, &mut out),
            Input::LlmFailed { turn } => {
                if self.llm_reply(turn).is_some() {
                    self.fallback(now, Failure::LlmError, &mut out);
                }
            }
            Input::ToolResult { turn, id, content } => self.on_tool_result(now, turn, &id, content),
            Input::TtsAudio {
                turn,
                segment,
                bytes,
            } => self.on_tts_audio(now, turn, segment, bytes),
            Input::TtsDone { turn, segment } => self.on_tts_done(turn, segment, &mut out),
            Input::TtsFailed { turn, segment } => self.on_tts_failed(turn, segment, &mut out),
            Input::MarkEchoed { name } => self.on_mark(now, &name),
            Input::Dtmf { digit } => self.on_dtmf(now, &digit, &mut out),
            Input::Tick => self.on_tick(now, &mut out),
            Input::Hangup => {
                self.drop_preempt(&mut out);
                // The caller is gone: no goodbye, no transfer, nothing to clear.
                if let Some(reply) = self.reply.as_mut() {
                    reply.exit = None;
                }
                self.cut(now, false, &mut out);
                self.ended = true;
            }
            Input::Restored => self.on_restored(now, &mut out),
        }
        self.advance(now, &mut out);
        self.rearm(&mut out);
        out
    }

    /// Rebuilds a saved conversation from its config, every history entry saved so far (in
    /// order), and its last serialized state.
    pub fn restore(
        config: SessionConfig,
        history: Vec<Message>,
        state: &str,
    ) -> Result<Self, serde_json::Error> {
        let mut conversation: Conversation = serde_json::from_str(state)?;
        conversation.config = config;
        conversation.history = history;
        Ok(conversation)
    }

    /// The committed history (for the post-call summary and transcript).
    pub fn history(&self) -> &[Message] {
        &self.history
    }

    /// Whether a reply is under way and none of its audio has gone out yet: the caller is
    /// waiting for it, so the edge holds back storage writes (the object's network sends wait
    /// for their commit) until it has, and persists what changed meanwhile in one batch.
    pub fn awaits_first_audio(&self) -> bool {
        self.reply
            .as_ref()
            .is_some_and(|r| r.timing.first_audio_ms.is_none())
    }

    /// Whether the session is over (hung up, transferred); further inputs do nothing.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn on_start(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.started_ms.is_some() {
            return;
        }
        self.started_ms = Some(now);
        self.silence_since_ms = now;
        // A caller who spoke before the stream's `start` already has an answer coming.
        if self.reply.is_none() {
            let greeting = self.config.first_message.clone().unwrap_or_default();
            self.say(now, &greeting, None, false, out);
        }
    }

    /// A transcript arrived: it may be caller activity, confirm or make an interruption.
    fn on_words(&mut self, now: u64, text: &str, is_final: bool, out: &mut Vec<Action>) {
        let words = text::words(text);
        if words.is_empty() {
            return;
        }
        self.silence_since_ms = now;
        self.reminded = false;
        if is_final {
            self.unconfirmed_interruption_ms = None;
            if !self.utterance.is_empty() {
                self.utterance.push(' ');
            }
            self.utterance.push_str(text.trim());
        } else if self.unconfirmed_interruption_ms.is_some() {
            self.unconfirmed_interruption_ms = Some(now);
        }
        let content_words = words
            .iter()
            .filter(|w| !self.config.is_backchannel(w))
            .count();
        if content_words >= self.config.min_interrupt_words.max(1) {
            self.barge_in(now, !is_final, out);
        }
    }

    fn end_user_turn(&mut self, now: u64, out: &mut Vec<Action>) {
        let text = std::mem::take(&mut self.utterance);
        let text = text.trim();
        if text.is_empty() {
            if self.unconfirmed_interruption_ms.is_some() {
                self.resume(now, out);
            }
            return;
        }
        self.stable_interim = None;
        // Words said over the agent that did not interrupt it were backchannels.
        if self.reply.is_none() {
            match self.preempt.take() {
                Some(p) if p.answers(text) => self.commit_preempt(now, p, text.to_owned(), out),
                other => {
                    self.preempt = other;
                    self.start_user_turn(now, text.to_owned(), out);
                }
            }
        }
    }

    /// Whether `turn` is the held early reply's request.
    fn is_preempt(&self, turn: u32) -> bool {
        self.preempt.as_ref().is_some_and(|p| p.turn == turn)
    }

    /// Keeps the early reply's LLM output for when (if) its turn is committed.
    fn hold(&mut self, held: Held, now: u64) {
        let Some(p) = self.preempt.as_mut().filter(|p| p.in_flight) else {
            return;
        };
        match &held {
            Held::Text(text) if !text.is_empty() => {
                p.first_token_ms.get_or_insert(now);
            }
            Held::Tool(_) => {
                p.first_token_ms.get_or_insert(now);
            }
            Held::Done => p.in_flight = false,
            Held::Text(_) => {}
        }
        p.held.push(held);
    }

    /// Requests the reply to `draft` now and holds it; a draft with other words replaces it.
    fn start_preempt(&mut self, now: u64, draft: String, out: &mut Vec<Action>) {
        if !self.config.preemptive || self.reply.is_some() || text::words(&draft).is_empty() {
            return;
        }
        if self.preempt.as_ref().is_some_and(|p| p.answers(&draft)) {
            return;
        }
        self.drop_preempt(out);
        let turn = self.take_turn_id();
        let mut messages = self.history.clone();
        messages.push(Message::User {
            content: draft.clone(),
        });
        out.push(Action::StartLlm {
            turn,
            messages,
            tools: tools::specs(
                self.config.transfer_target().is_some(),
                self.config.schedule_callback,
                self.config.appointments,
            ),
        });
        out.push(Action::Emit(SessionEvent::PreemptStarted {
            turn,
            text: draft.clone(),
        }));
        self.preempt = Some(Preempt {
            turn,
            text: draft,
            started_ms: now,
            first_token_ms: None,
            in_flight: true,
            held: Vec::new(),
        });
    }

    /// Cancels the early reply, if any: nothing of it was or will be heard.
    fn drop_preempt(&mut self, out: &mut Vec<Action>) {
        let Some(p) = self.preempt.take() else {
            return;
        };
        if p.in_flight {
            out.push(Action::CancelLlm { turn: p.turn });
        }
        self.preempts_wasted = self.preempts_wasted.saturating_add(1);
        out.push(Action::Emit(SessionEvent::PreemptWasted { turn: p.turn }));
    }

    /// The turn ended with the draft's words: the early reply becomes the reply, and what it
    /// generated meanwhile is spoken now.
    fn commit_preempt(&mut self, now: u64, p: Preempt, text: String, out: &mut Vec<Action>) {
        let turn = p.turn;
        self.history.push(Message::User {
            content: text.clone(),
        });
        out.push(Action::Emit(SessionEvent::UserTurn {
            turn,
            text: text.clone(),
        }));
        out.push(Action::Emit(SessionEvent::PreemptUsed { turn }));
        let mut reply = Reply::new(turn, now, Some(text), false);
        reply.llm_requests = 1;
        reply.llm_in_flight = true;
        reply.deadline_ms = now.saturating_add(self.config.response_timeout_ms);
        reply.timing.llm_started_ms = Some(p.started_ms);
        reply.timing.first_token_ms = p.first_token_ms;
        reply.timing.preemptive = true;
        reply.timing.preempts_wasted = std::mem::take(&mut self.preempts_wasted);
        self.unconfirmed_interruption_ms = None;
        self.reply = Some(reply);
        for held in p.held {
            match held {
                Held::Text(text) => self.on_llm_text(now, turn, &text, out),
                Held::Tool(call) => self.on_llm_tool_call(now, turn, call),
                Held::Done => self.on_llm_done(now, turn, out),
            }
        }
    }

    /// Nova: an interim that repeats the caller's turn so far is a preemption candidate; other
    /// words void the candidate and any early reply on older words.
    fn on_draft(&mut self, now: u64, interim: &str, out: &mut Vec<Action>) {
        if text::words(interim).is_empty() {
            return;
        }
        let draft = preempt::join(&self.utterance, interim);
        if self.preempt.as_ref().is_some_and(|p| !p.answers(&draft)) {
            self.drop_preempt(out);
        }
        if self.config.preemptive_stable_ms.is_none() {
            return;
        }
        match self.stable_interim.as_mut() {
            Some(s) if preempt::same_words(&s.text, &draft) => {
                s.repeated = true;
                s.seen_ms = now;
                s.text = draft;
            }
            _ => {
                self.stable_interim = Some(StableInterim {
                    text: draft,
                    seen_ms: now,
                    repeated: false,
                })
            }
        }
    }

    fn on_dtmf(&mut self, now: u64, digit: &str, out: &mut Vec<Action>) {
        let valid = digit.len() == 1
            && digit
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'));
        if !valid {
            return;
        }
        self.silence_since_ms = now;
        self.reminded = false;
        self.unconfirmed_interruption_ms = None;
        self.barge_in(now, false, out);
        // A reply left standing is a farewell: the agent is leaving, keys change nothing.
        if self.reply.is_none() {
            self.start_user_turn(now, format!("[keypad: {digit}]"), out);
        }
    }

    fn start_user_turn(&mut self, now: u64, text: String, out: &mut Vec<Action>) {
        self.drop_preempt(out);
        self.history.push(Message::User {
            content: text.clone(),
        });
        out.push(Action::Emit(SessionEvent::UserTurn {
            turn: self.next_turn,
            text: text.clone(),
        }));
        self.start_llm_reply(now, Some(text), out);
        if let Some(reply) = self.reply.as_mut() {
            reply.timing.preempts_wasted = std::mem::take(&mut self.preempts_wasted);
        }
    }

    /// Starts a reply generated by the LLM; returns its turn id.
    fn start_llm_reply(
        &mut self,
        now: u64,
        user_text: Option<String>,
        out: &mut Vec<Action>,
    ) -> u32 {
        self.drop_preempt(out);
        let turn = self.take_turn_id();
        self.unconfirmed_interruption_ms = None;
        self.reply = Some(Reply::new(turn, now, user_text, false));
        self.request_llm(now, out);
        turn
    }

    /// Speaks a fixed text as its own reply; with an exit, leaves once it has played.
    fn say(
        &mut self,
        now: u64,
        text: &str,
        exit: Option<Exit>,
        is_reminder: bool,
        out: &mut Vec<Action>,
    ) {
        self.drop_preempt(out);
        let sentences = text::sentences(text);
        if sentences.is_empty() {
            if let Some(exit) = exit {
                self.ended = true;
                out.push(exit.into_action());
            }
            return;
        }
        let mut reply = Reply::new(self.take_turn_id(), now, None, is_reminder);
        reply.exit = exit.map(|exit| PendingExit {
            exit,
            deadline_ms: now.saturating_add(self.config.exit_grace_ms),
        });
        for sentence in sentences {
            out.push(reply.speak(sentence, now));
        }
        self.unconfirmed_interruption_ms = None;
        self.reply = Some(reply);
    }

    /// Says goodbye (if configured) and hangs up once it has played.
    fn leave(&mut self, now: u64, reason: HangupReason, out: &mut Vec<Action>) {
        let goodbye = self.config.goodbye_message.clone().unwrap_or_default();
        self.say(now, &goodbye, Some(Exit::Hangup(reason)), false, out);
    }

    fn take_turn_id(&mut self) -> u32 {
        let id = self.next_turn;
        self.next_turn = self.next_turn.wrapping_add(1);
        id
    }

    /// Asks the LLM for the next round of the current reply, over the history so far.
    fn request_llm(&mut self, now: u64, out: &mut Vec<Action>) {
        let mut tools = tools::specs(
            self.config.transfer_target().is_some(),
            self.config.schedule_callback,
            self.config.appointments,
        );
        tools.extend(self.config.http_tools.iter().map(|t| t.spec()));
        let max_requests = self.config.max_tool_rounds.saturating_add(1);
        let timeout = self.config.response_timeout_ms;
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if reply.llm_requests >= max_requests {
            self.fallback(now, Failure::ToolLoop, out);
            return;
        }
        reply.llm_requests += 1;
        reply.llm_in_flight = true;
        reply.deadline_ms = now.saturating_add(timeout);
        reply.timing.llm_started_ms.get_or_insert(now);
        let mut messages = self.history.clone();
        messages.extend(reply.render(false));
        out.push(Action::StartLlm {
            turn: reply.id,
            messages,
            tools,
        });
    }

    /// The current reply if it is waiting on the LLM request of `turn`.
    fn llm_reply(&mut self, turn: u32) -> Option<&mut Reply> {
        self.reply
            .as_mut()
            .filter(|r| r.id == turn && r.llm_in_flight)
    }

    fn on_llm_text(&mut self, now: u64, turn: u32, text: &str, out: &mut Vec<Action>) {
        let timeout = self.config.response_timeout_ms;
        let Some(reply) = self.llm_reply(turn) else {
            return;
        };
        if !text.is_empty() {
            reply.timing.first_token_ms.get_or_insert(now);
        }
        reply.deadline_ms = now.saturating_add(timeout);
        // Until the reply has said anything its first clause goes out alone (the caller is
        // waiting for it); after that, whole sentences, one ahead of the audio.
        let pieces = if reply.segments.is_empty() {
            reply.pending_text.push_opening(text)
        } else {
            reply.pending_text.push(text)
        };
        for piece in pieces {
            out.push(reply.speak(piece, now));
        }
    }

    fn on_llm_tool_call(&mut self, now: u64, turn: u32, call: ToolCall) {
        let timeout = self.config.response_timeout_ms;
        let Some(reply) = self.llm_reply(turn) else {
            return;
        };
        reply.timing.first_token_ms.get_or_insert(now);
        reply.deadline_ms = now.saturating_add(timeout);
        if let Some(tools) = reply.rounds.last_mut() {
            tools.push(ToolRun {
                call,
                result: None,
                started_ms: None,
                latency_ms: None,
            });
        }
    }

    /// The round is complete: speak its last words and run its tools.
    fn on_llm_done(&mut self, now: u64, turn: u32, out: &mut Vec<Action>) {
        let timeout = self.config.response_timeout_ms;
        let goodbye = self.config.goodbye_message.clone().unwrap_or_default();
        let grace = self.config.exit_grace_ms;
        let transfer_to = self.config.transfer_target().map(str::to_owned);
        let config = &self.config;
        let Some(reply) = self
            .reply
            .as_mut()
            .filter(|r| r.id == turn && r.llm_in_flight)
        else {
            return;
        };
        reply.llm_in_flight = false;
        if let Some(sentence) = reply.pending_text.flush() {
            out.push(reply.speak(sentence, now));
        }
        let round = reply.round();
        let mut exit = None;
        if let Some(tools) = reply.rounds.last_mut() {
            for tool in tools.iter_mut() {
                if let Some(http) = config.http_tool(&tool.call.name) {
                    // Checked here so a server never sees arguments its schema rules out.
                    match crate::http_tools::check_arguments(&http.parameters, &tool.call.arguments)
                    {
                        Err(e) => {
                            tool.result =
                                Some(serde_json::json!({ "error": e.to_string() }).to_string());
                            // In the transcript too: an attempt the schema stopped is worth seeing.
                            tool.started_ms = Some(now);
                            tool.latency_ms = Some(0);
                        }
                        Ok(_) => {
                            out.push(Action::RunTool {
                                turn,
                                call: tool.call.clone(),
                            });
                            tool.started_ms = Some(now);
                            // The edge gives up at the tool's own timeout; this only backs it up.
                            let wait = timeout.max(http.timeout_ms.saturating_add(2_000));
                            reply.deadline_ms = reply.deadline_ms.max(now.saturating_add(wait));
                            reply.filler.get_or_insert_with(|| Filler {
                                at_ms: now.saturating_add(crate::http_tools::FILLER_AFTER_MS),
                                text: http.filler_line().to_owned(),
                            });
                        }
                    }
                    continue;
                }
                tool.result = match tools::classify(&tool.call, transfer_to.as_deref()) {
                    tools::ToolUse::Exit(chosen) => {
                        exit.get_or_insert(chosen);
                        Some(r#"{"ok":true}"#.to_owned())
                    }
                    tools::ToolUse::Dtmf(digits) => {
                        out.push(Action::SendDtmf { digits });
                        Some(r#"{"sent":true}"#.to_owned())
                    }
                    tools::ToolUse::Edge => {
                        out.push(Action::RunTool {
                            turn,
                            call: tool.call.clone(),
                        });
                        tool.started_ms = Some(now);
                        reply.deadline_ms = reply.deadline_ms.max(now.saturating_add(timeout));
                        None
                    }
                    tools::ToolUse::Rejected(reason) => {
                        Some(serde_json::json!({ "error": reason }).to_string())
                    }
                };
            }
        }
        if let Some(exit) = exit {
            let said_nothing = !reply.segments.iter().any(|s| s.round == round);
            if said_nothing && matches!(exit, Exit::Hangup(_)) {
                for sentence in text::sentences(&goodbye) {
                    out.push(reply.speak(sentence, now));
                }
            }
            reply.exit = Some(PendingExit {
                exit,
                deadline_ms: now.saturating_add(grace),
            });
        }
    }

    fn on_tool_result(&mut self, now: u64, turn: u32, id: &str, content: String) {
        let Some(reply) = self.reply.as_mut().filter(|r| r.id == turn) else {
            return;
        };
        let pending = reply.rounds.last_mut().and_then(|tools| {
            tools
                .iter_mut()
                .find(|t| t.call.id == id && t.result.is_none())
        });
        if let Some(tool) = pending {
            tool.result = Some(content);
            tool.latency_ms = tool.started_ms.map(|at| now.saturating_sub(at));
        }
        if !reply.tools_pending() {
            reply.filler = None;
        }
    }

    /// The LLM failed: drop what it had not finished and say the fallback line instead.
    fn fallback(&mut self, now: u64, failure: Failure, out: &mut Vec<Action>) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        reply.abandon_llm();
        out.push(Action::Emit(SessionEvent::UpstreamFailed {
            turn: reply.id,
            failure,
        }));
        for sentence in text::sentences(&self.config.fallback_message) {
            out.push(reply.speak(sentence, now));
        }
    }

    fn on_tts_audio(&mut self, now: u64, turn: u32, segment: usize, bytes: usize) {
        let Some(reply) = self.reply.as_mut().filter(|r| r.id == turn) else {
            return;
        };
        let Some(segment) = reply.segments.get_mut(segment) else {
            return;
        };
        if bytes == 0 {
            return;
        }
        let SegmentState::Synthesizing { audio_sent } = &mut segment.state else {
            return;
        };
        *audio_sent = true;
        if reply.timing.first_audio_ms.is_none() {
            reply.timing.first_audio_ms = Some(now);
            reply.timing.tts_first_byte_ms = Some(now.saturating_sub(segment.requested_ms));
        }
    }

    fn on_tts_done(&mut self, turn: u32, segment: usize, out: &mut Vec<Action>) {
        let Some(reply) = self.reply.as_mut().filter(|r| r.id == turn) else {
            return;
        };
        let Some(state) = reply.segments.get_mut(segment).map(|s| &mut s.state) else {
            return;
        };
        match *state {
            SegmentState::Synthesizing { audio_sent: true } => {
                *state = SegmentState::Playing;
                out.push(Action::SendMark {
                    name: mark_name(turn, segment),
                });
            }
            // Nothing was sent, so nothing will play.
            SegmentState::Synthesizing { audio_sent: false } => *state = SegmentState::Lost,
            _ => {}
        }
    }

    fn on_tts_failed(&mut self, turn: u32, segment: usize, out: &mut Vec<Action>) {
        let Some(reply) = self.reply.as_mut().filter(|r| r.id == turn) else {
            return;
        };
        let Some(state) = reply.segments.get_mut(segment).map(|s| &mut s.state) else {
            return;
        };
        if matches!(state, SegmentState::Synthesizing { .. }) {
            *state = SegmentState::Lost;
            out.push(Action::Emit(SessionEvent::UpstreamFailed {
                turn,
                failure: Failure::Tts,
            }));
        }
    }

    fn on_mark(&mut self, now: u64, name: &str) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        let turn = reply.id;
        // Marks of cleared or finished segments are no longer `Playing`: their echoes (and
        // unknown names) are ignored, so an echo caused by `clear` never counts as heard.
        let echoed = reply
            .segments
            .iter_mut()
            .enumerate()
            .find(|(i, s)| s.state == SegmentState::Playing && mark_name(turn, *i) == name);
        if let Some((_, segment)) = echoed {
            segment.state = SegmentState::Heard;
            reply.timing.first_mark_ms.get_or_insert(now);
        }
    }

    /// The caller spoke over the agent: stop it, unless it is already leaving.
    fn barge_in(&mut self, now: u64, on_interim: bool, out: &mut Vec<Action>) {
        if self.reply.as_ref().is_none_or(|r| r.exit.is_some()) {
            return;
        }
        self.cut(now, true, out);
        if on_interim && self.config.false_interruption_ms.is_some() {
            self.unconfirmed_interruption_ms = Some(now);
        }
    }

    /// Stops the current reply now and keeps what was heard.
    fn cut(&mut self, now: u64, clear: bool, out: &mut Vec<Action>) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        let turn = reply.id;
        // `clear` is harmless when nothing is queued; sent whenever audio went out.
        if clear && reply.timing.first_audio_ms.is_some() {
            out.push(Action::SendClear);
        }
        if reply.abandon_llm() {
            out.push(Action::CancelLlm { turn });
        }
        if reply.synthesizing() {
            out.push(Action::CancelTts { turn });
        }
        reply.lose_unheard();
        self.finish(now, true, out);
    }

    /// Commits the reply: the heard text goes to the history, the turn is persisted, and a
    /// pending exit happens.
    fn finish(&mut self, now: u64, interrupted: bool, out: &mut Vec<Action>) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        self.history.extend(reply.render(true));
        if !reply.is_reminder {
            self.silence_since_ms = now;
        }
        let exit = reply.exit.as_ref().map(|pending| pending.exit.clone());
        out.push(Action::PersistTurn(reply.into_turn(now, interrupted)));
        if let Some(exit) = exit {
            self.ended = true;
            out.push(exit.into_action());
        }
    }

    /// The interruption was false: the agent carries on from what the caller heard.
    fn resume(&mut self, now: u64, out: &mut Vec<Action>) {
        self.unconfirmed_interruption_ms = None;
        if self.reply.is_some() {
            return;
        }
        let turn = self.start_llm_reply(now, None, out);
        out.push(Action::Emit(SessionEvent::Resumed { turn }));
    }

    /// Moves the reply on once nothing blocks it: the next LLM round after tool results, or
    /// the end of the reply once everything has played.
    fn advance(&mut self, now: u64, out: &mut Vec<Action>) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if reply.llm_in_flight {
            return;
        }
        let round_had_tools = reply.rounds.last().is_some_and(|tools| !tools.is_empty());
        if reply.exit.is_none() && round_had_tools && !reply.tools_pending() {
            reply.rounds.push(Vec::new());
            self.request_llm(now, out);
        } else if reply.settled() && !reply.waiting() {
            self.finish(now, false, out);
        }
    }

    fn on_restored(&mut self, now: u64, out: &mut Vec<Action>) {
        // The alarm may or may not have survived; ask for it again.
        self.alarm_ms = None;
        // The early reply's request went with the instance; the turn's end asks again.
        if let Some(p) = self.preempt.as_mut() {
            p.in_flight = false;
        }
        self.drop_preempt(out);
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        reply.lose_synthesizing();
        if reply.llm_in_flight {
            self.fallback(now, Failure::Restart, out);
        } else if reply.waiting() {
            reply.settle_tools(TOOL_LOST);
            out.push(Action::Emit(SessionEvent::UpstreamFailed {
                turn: reply.id,
                failure: Failure::Restart,
            }));
        }
    }

    fn on_tick(&mut self, now: u64, out: &mut Vec<Action>) {
        // The alarm that fed this tick is spent.
        self.alarm_ms = None;
        // Each timer disarms itself when it fires, so this ends; the bound is a safeguard.
        for _ in 0..8 {
            match self.next_timer() {
                Some((at, timer)) if at <= now => self.fire(now, timer, out),
                _ => break,
            }
        }
    }

    fn fire(&mut self, now: u64, timer: Timer, out: &mut Vec<Action>) {
        match timer {
            Timer::Response => {
                let Some(reply) = self.reply.as_mut() else {
                    return;
                };
                if reply.llm_in_flight {
                    out.push(Action::CancelLlm { turn: reply.id });
                    self.fallback(now, Failure::LlmTimeout, out);
                } else {
                    reply.settle_tools(TOOL_TIMED_OUT);
                    out.push(Action::Emit(SessionEvent::UpstreamFailed {
                        turn: reply.id,
                        failure: Failure::ToolTimeout,
                    }));
                }
            }
            // The farewell did not finish playing in time (lost marks): leave anyway.
            Timer::ExitGrace => self.cut(now, false, out),
            Timer::FalseInterruption => self.resume(now, out),
            Timer::Preempt => {
                if let Some(s) = self.stable_interim.take() {
                    self.start_preempt(now, s.text, out);
                }
            }
            Timer::Filler => {
                let Some(reply) = self.reply.as_mut() else {
                    return;
                };
                // Words still playing are not silence: the filler waits until they are done.
                if !reply.settled() {
                    if let Some(filler) = reply.filler.as_mut() {
                        filler.at_ms = now.saturating_add(FILLER_RECHECK_MS);
                    }
                    return;
                }
                if let Some(filler) = reply.filler.take() {
                    for sentence in text::sentences(&filler.text) {
                        out.push(reply.speak(sentence, now));
                    }
                }
            }
            Timer::IdleReminder => {
                self.reminded = true;
                let reminder = self.config.idle_reminder_message.clone();
                self.say(now, &reminder, None, true, out);
            }
            Timer::IdleHangup => self.leave(now, HangupReason::Idle, out),
            Timer::MaxDuration => {
                self.max_duration_reached = true;
                if self.reply.as_ref().is_some_and(|r| r.exit.is_some()) {
                    return;
                }
                self.cut(now, true, out);
                self.leave(now, HangupReason::MaxDuration, out);
            }
        }
    }

    /// The earliest deadline armed in the current state. Every timer here is disarmed by its
    /// own firing, which keeps `on_tick` from looping.
    fn next_timer(&self) -> Option<(u64, Timer)> {
        if self.ended {
            return None;
        }
        let config = &self.config;
        let mut timers = Vec::new();
        if let Some(reply) = &self.reply {
            if reply.waiting() {
                timers.push((reply.deadline_ms, Timer::Response));
            }
            if let Some(exit) = &reply.exit {
                timers.push((exit.deadline_ms, Timer::ExitGrace));
            }
            if let (Some(filler), false, true) =
                (&reply.filler, reply.llm_in_flight, reply.tools_pending())
            {
                timers.push((filler.at_ms, Timer::Filler));
            }
        }
        if let (Some(at), Some(wait)) = (
            self.unconfirmed_interruption_ms,
            config.false_interruption_ms,
        ) {
            timers.push((at.saturating_add(wait), Timer::FalseInterruption));
        }
        if let (Some(s), Some(wait), true, None, None) = (
            &self.stable_interim,
            config.preemptive_stable_ms,
            config.preemptive,
            &self.reply,
            &self.preempt,
        ) {
            if s.repeated {
                timers.push((s.seen_ms.saturating_add(wait), Timer::Preempt));
            }
        }
        let idle = self.started_ms.is_some()
            && self.reply.is_none()
            && self.preempt.is_none()
            && self.utterance.is_empty()
            && self.unconfirmed_interruption_ms.is_none();
        if idle {
            let silence = self.silence_since_ms;
            if let (false, Some(wait)) = (self.reminded, config.idle_reminder_ms) {
                timers.push((silence.saturating_add(wait), Timer::IdleReminder));
            }
            if let Some(wait) = config.idle_hangup_ms {
                timers.push((silence.saturating_add(wait), Timer::IdleHangup));
            }
        }
        if let (Some(start), Some(limit), false) = (
            self.started_ms,
            config.max_duration_ms,
            self.max_duration_reached,
        ) {
            timers.push((start.saturating_add(limit), Timer::MaxDuration));
        }
        timers.into_iter().min_by_key(|(at, _)| *at)
    }

    /// Requests the alarm only when the earliest deadline comes before the one already armed
    /// (or none is): a deadline that moves later (the response deadline, pushed back by every
    /// LLM token) leaves the armed alarm alone, which then fires early, finds nothing due and
    /// re-arms (`on_tick`). Setting an alarm is a storage write, and the object's network sends
    /// wait for its commit: one per token sat between the tokens and the first audio.
    fn rearm(&mut self, out: &mut Vec<Action>) {
        let Some(next) = self.next_timer().map(|(at, _)| at) else {
            return;
        };
        if self.alarm_ms.is_none_or(|armed| next < armed) {
            out.push(Action::SetAlarm { at_ms: next });
            self.alarm_ms = Some(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    const T0: u64 = 1_700_000_000_000;

    fn config() -> SessionConfig {
        SessionConfig {
            system_prompt: "You are the receptionist.".into(),
            first_message: None,
            schedule_callback: true,
            ..SessionConfig::default()
        }
    }

    /// A call driven by hand: a clock and the conversation.
    struct Call {
        conv: Conversation,
        now: u64,
    }

    impl Call {
        /// A call whose stream has started (greeting spoken if configured).
        fn started(config: SessionConfig) -> (Self, Vec<Action>) {
            let mut call = Call {
                conv: Conversation::new(config),
                now: T0,
            };
            let out = call.at(0, Input::StreamStarted);
            (call, out)
        }

        fn at(&mut self, dt: u64, input: Input) -> Vec<Action> {
            self.now += dt;
            self.conv.handle(self.now, input)
        }

        fn user_says(&mut self, text: &str) -> Vec<Action> {
            self.at(
                100,
                Input::SttFinal {
                    text: text.into(),
                    speech_final: true,
                },
            )
        }

        fn llm(&mut self, turn: u32, text: &str) -> Vec<Action> {
            self.at(
                50,
                Input::LlmText {
                    turn,
                    text: text.into(),
                },
            )
        }

        /// Sends the audio of every `Speak` in `actions` and returns what that produced.
        fn send_audio(&mut self, actions: &[Action]) -> Vec<Action> {
            let mut out = Vec::new();
            for (turn, segment, _) in speaks(actions) {
                out.extend(self.at(
                    10,
                    Input::TtsAudio {
                        turn,
                        segment,
                        bytes: 1_600,
                    },
                ));
                out.extend(self.at(10, Input::TtsDone { turn, segment }));
            }
            out
        }

        /// Echoes every `SendMark` in `actions`.
        fn echo(&mut self, actions: &[Action]) -> Vec<Action> {
            let mut out = Vec::new();
            for name in marks(actions) {
                out.extend(self.at(200, Input::MarkEchoed { name }));
            }
            out
        }

        /// Sends and plays every `Speak` in `actions` to the end.
        fn play(&mut self, actions: &[Action]) -> Vec<Action> {
            let sent = self.send_audio(actions);
            let mut out = self.echo(&sent);
            out.splice(0..0, sent);
            out
        }
    }

    fn speaks(actions: &[Action]) -> Vec<(u32, usize, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Speak {
                    turn,
                    segment,
                    text,
                } => Some((*turn, *segment, text.clone())),
                _ => None,
            })
            .collect()
    }

    fn spoken(actions: &[Action]) -> Vec<String> {
        speaks(actions).into_iter().map(|(_, _, t)| t).collect()
    }

    fn marks(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SendMark { name } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn llm_start(actions: &[Action]) -> Option<(u32, &[Message])> {
        actions.iter().find_map(|a| match a {
            Action::StartLlm { turn, messages, .. } => Some((*turn, messages.as_slice())),
            _ => None,
        })
    }

    fn persisted(actions: &[Action]) -> Option<&Turn> {
        actions.iter().find_map(|a| match a {
            Action::PersistTurn(turn) => Some(turn),
            _ => None,
        })
    }

    fn alarm(actions: &[Action]) -> Option<u64> {
        actions.iter().find_map(|a| match a {
            Action::SetAlarm { at_ms } => Some(*at_ms),
            _ => None,
        })
    }

    /// Actions other than alarms.
    fn effects(actions: &[Action]) -> Vec<&Action> {
        actions
            .iter()
            .filter(|a| !matches!(a, Action::SetAlarm { .. }))
            .collect()
    }

    fn user(text: &str) -> Message {
        Message::User {
            content: text.into(),
        }
    }

    fn assistant(text: &str) -> Message {
        Message::Assistant {
            content: Some(text.into()),
            tool_calls: vec![],
        }
    }

    fn tool_call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// A call where the agent is saying "We open at nine. We close at five." in turn 0:
    /// the first sentence has been heard, the second is playing, the LLM is still streaming.
    fn agent_mid_answer() -> Call {
        let (mut call, _) = Call::started(config());
        call.user_says("What are your hours?");
        let out = call.llm(0, "We open at nine. We close at five. ");
        let sent = call.send_audio(&out);
        assert_eq!(marks(&sent), ["t0-s0", "t0-s1"]);
        call.at(
            200,
            Input::MarkEchoed {
                name: "t0-s0".into(),
            },
        );
        call
    }

    #[test]
    fn greeting_is_spoken_per_sentence_and_kept_once_heard() {
        let (mut call, out) = Call::started(SessionConfig {
            first_message: Some("Hi, this is Acme. How can I help?".into()),
            ..config()
        });
        assert_eq!(
            speaks(&out),
            [
                (0, 0, "Hi, this is Acme.".to_owned()),
                (0, 1, "How can I help?".to_owned())
            ]
        );
        assert_eq!(alarm(&out), Some(T0 + 30 * 60 * 1000), "max duration armed");
        let played = call.play(&out);
        assert_eq!(marks(&played), ["t0-s0", "t0-s1"]);
        let turn = persisted(&played).expect("turn persisted after playout");
        assert_eq!(turn.agent_text, "Hi, this is Acme. How can I help?");
        assert!(!turn.interrupted && turn.user_text.is_none());
        assert_eq!(
            call.conv.history(),
            [
                Message::System {
                    content: "You are the receptionist.".into()
                },
                assistant("Hi, this is Acme. How can I help?")
            ]
        );
        assert!(effects(&call.at(10, Input::StreamStarted)).is_empty());
    }

    #[test]
    fn speech_final_ends_the_turn_with_the_accumulated_finals() {
        let (mut call, _) = Call::started(config());
        let out = call.at(
            100,
            Input::SttFinal {
                text: "I'd like".into(),
                speech_final: false,
            },
        );
        assert!(llm_start(&out).is_none());
        let out = call.user_says("a table for two.");
        assert_eq!(
            out[0],
            Action::Emit(SessionEvent::UserTurn {
                turn: 0,
                text: "I'd like a table for two.".into()
            })
        );
        let (turn, messages) = llm_start(&out).unwrap();
        assert_eq!(turn, 0);
        assert_eq!(messages.last(), Some(&user("I'd like a table for two.")));
        assert_eq!(messages.len(), 2);
    }

    #[test]
    fn the_end_of_turn_signals_are_configurable() {
        let (mut call, _) = Call::started(SessionConfig {
            end_of_turn: EndOfTurn {
                speech_final: false,
                utterance_end: true,
            },
            ..config()
        });
        assert!(llm_start(&call.user_says("hello")).is_none());
        let out = call.at(900, Input::UtteranceEnd);
        assert_eq!(llm_start(&out).unwrap().1.last(), Some(&user("hello")));

        let (mut call, _) = Call::started(SessionConfig {
            end_of_turn: EndOfTurn {
                speech_final: true,
                utterance_end: false,
            },
            ..config()
        });
        call.at(
            100,
            Input::SttFinal {
                text: "hello".into(),
                speech_final: false,
            },
        );
        assert!(effects(&call.at(900, Input::UtteranceEnd)).is_empty());
        assert!(llm_start(&call.user_says("there")).is_some());
    }

    #[test]
    fn empty_utterances_start_no_turn() {
        let (mut call, _) = Call::started(config());
        for text in ["", "   ", "...", "-"] {
            assert!(effects(&call.user_says(text)).is_empty(), "{text:?}");
            assert!(effects(&call.at(10, Input::SttInterim { text: text.into() })).is_empty());
        }
        assert!(effects(&call.at(900, Input::UtteranceEnd)).is_empty());
        // speech_final then UtteranceEnd for the same words: one turn only.
        assert!(llm_start(&call.user_says("hi")).is_some());
        assert!(effects(&call.at(900, Input::UtteranceEnd)).is_empty());
    }

    #[test]
    fn a_reply_awaits_its_first_audio_until_some_is_sent() {
        let (mut call, out) = Call::started(SessionConfig {
            first_message: Some("Hello.".into()),
            ..config()
        });
        assert!(call.conv.awaits_first_audio(), "the greeting is due");
        call.play(&out);
        assert!(!call.conv.awaits_first_audio());
        call.user_says("Hi.");
        assert!(
            call.conv.awaits_first_audio(),
            "the caller's turn is answered"
        );
        let out = call.llm(1, "Hello there. ");
        assert!(call.conv.awaits_first_audio(), "text alone is not audio");
        call.at(
            10,
            Input::TtsAudio {
                turn: 1,
                segment: 0,
                bytes: 160,
            },
        );
        assert!(!call.conv.awaits_first_audio());
        call.at(5, Input::LlmDone { turn: 1 });
        let sent = call.send_audio(&out);
        call.echo(&sent);
        assert!(!call.conv.awaits_first_audio(), "no reply");
    }

    #[test]
    fn llm_text_is_spoken_sentence_by_sentence() {
        let (mut call, _) = Call::started(config());
        call.user_says("Hours?");
        assert_eq!(spoken(&call.llm(0, "We open")), Vec::<String>::new());
        assert_eq!(
            spoken(&call.llm(0, " at 9.30 today. We")),
            ["We open at 9.30 today."]
        );
        assert!(spoken(&call.llm(0, " close at five.")).is_empty());
        let out = call.at(10, Input::LlmDone { turn: 0 });
        assert_eq!(speaks(&out), [(0, 1, "We close at five.".to_owned())]);
        let played = call.play(&out);
        assert!(persisted(&played).is_none(), "segment 0 has not played yet");
    }

    #[test]
    fn barge_in_clears_cancels_and_keeps_only_the_heard_text() {
        let mut call = agent_mid_answer();
        // A third sentence is still being synthesized.
        assert_eq!(spoken(&call.llm(0, "Sundays vary. ")), ["Sundays vary."]);
        let out = call.at(
            100,
            Input::SttInterim {
                text: "wait, stop".into(),
            },
        );
        let turn = persisted(&out).unwrap().clone();
        assert_eq!(
            effects(&out),
            [
                &Action::SendClear,
                &Action::CancelLlm { turn: 0 },
                &Action::CancelTts { turn: 0 },
                &Action::PersistTurn(turn.clone()),
            ]
        );
        assert_eq!(turn.agent_text, "We open at nine.");
        assert!(turn.interrupted);
        // The clear echoes the pending mark: not heard.
        assert!(effects(&call.at(
            5,
            Input::MarkEchoed {
                name: "t0-s1".into()
            }
        ))
        .is_empty());
        // Late output of the cancelled turn is ignored.
        assert!(effects(&call.llm(0, "More text. ")).is_empty());
        assert!(effects(&call.at(5, Input::LlmDone { turn: 0 })).is_empty());
        assert_eq!(
            call.conv.history()[1..],
            [user("What are your hours?"), assistant("We open at nine.")]
        );
        // The interrupting words make the next turn.
        let out = call.user_says("Wait, are you open on Monday?");
        let (turn, messages) = llm_start(&out).unwrap();
        assert_eq!(turn, 1);
        assert_eq!(
            messages.last(),
            Some(&user("Wait, are you open on Monday?"))
        );
    }

    #[test]
    fn nothing_heard_means_no_assistant_message() {
        let (mut call, _) = Call::started(config());
        call.user_says("Book a table");
        call.llm(0, "Sure. ");
        // The caller keeps talking before any audio went out: no clear is needed.
        let out = call.at(
            50,
            Input::SttInterim {
                text: "for two".into(),
            },
        );
        assert_eq!(
            effects(&out)[..2],
            [
                &Action::CancelLlm { turn: 0 },
                &Action::CancelTts { turn: 0 }
            ]
        );
        assert!(!out.contains(&Action::SendClear));
        let out = call.user_says("for two");
        let messages = llm_start(&out).unwrap().1;
        assert_eq!(messages[1..], [user("Book a table"), user("for two")]);
    }

    #[test]
    fn backchannels_and_noise_do_not_interrupt() {
        let mut call = agent_mid_answer();
        for text in ["uh-huh", "Mm-hmm.", "", "  ", "...", "Yeah, okay."] {
            let out = call.at(50, Input::SttInterim { text: text.into() });
            assert!(effects(&out).is_empty(), "{text:?}: {out:?}");
        }
        // A backchannel that reaches end of turn while the agent talks is dropped.
        let out = call.user_says("yeah");
        assert!(effects(&out).is_empty(), "{out:?}");
        // The agent finishes undisturbed and everything counts as heard.
        let out = call.at(10, Input::LlmDone { turn: 0 });
        assert!(effects(&out).is_empty());
        let out = call.at(
            200,
            Input::MarkEchoed {
                name: "t0-s1".into(),
            },
        );
        let turn = persisted(&out).unwrap();
        assert_eq!(turn.agent_text, "We open at nine. We close at five.");
        assert!(!turn.interrupted);
        assert_eq!(
            call.conv.history().last(),
            Some(&assistant("We open at nine. We close at five."))
        );
    }

    #[test]
    fn the_interruption_threshold_is_configurable() {
        let (mut call, _) = Call::started(SessionConfig {
            min_interrupt_words: 2,
            ..config()
        });
        call.user_says("Hours?");
        let out = call.llm(0, "We open at nine. ");
        call.send_audio(&out);
        let stop = |text: &str| Input::SttInterim { text: text.into() };
        assert!(effects(&call.at(10, stop("stop"))).is_empty());
        assert!(effects(&call.at(10, stop("uh stop"))).is_empty());
        assert!(call
            .at(10, stop("stop please"))
            .contains(&Action::SendClear));
    }

    #[test]
    fn a_false_interruption_resumes_from_what_was_heard() {
        let mut call = agent_mid_answer();
        let out = call.at(
            100,
            Input::SttInterim {
                text: "hold on".into(),
            },
        );
        assert!(out.contains(&Action::SendClear));
        let barge_at = call.now;
        assert_eq!(alarm(&out), Some(barge_at + 2_000));
        // More interim words push the deadline; no final word ever comes.
        let out = call.at(
            500,
            Input::SttInterim {
                text: "hold on I".into(),
            },
        );
        // A later deadline leaves the armed alarm alone (no storage write per interim)...
        assert_eq!(alarm(&out), None);
        // ...which fires early, finds nothing due and re-arms at the deadline.
        let out = call.at(1_500, Input::Tick);
        assert!(effects(&out).is_empty());
        assert_eq!(alarm(&out), Some(barge_at + 2_500));
        assert!(effects(&call.at(400, Input::Tick)).is_empty());
        let out = call.at(100, Input::Tick);
        let (turn, messages) = llm_start(&out).unwrap();
        assert_eq!(turn, 1);
        assert_eq!(messages.last(), Some(&assistant("We open at nine.")));
        assert!(out.contains(&Action::Emit(SessionEvent::Resumed { turn: 1 })));
    }

    #[test]
    fn end_of_speech_with_no_words_resumes_at_once() {
        let mut call = agent_mid_answer();
        call.at(
            100,
            Input::SttInterim {
                text: "hold on".into(),
            },
        );
        let out = call.user_says("");
        assert_eq!(llm_start(&out).map(|(turn, _)| turn), Some(1));
    }

    #[test]
    fn a_confirmed_interruption_does_not_resume() {
        let mut call = agent_mid_answer();
        call.at(
            100,
            Input::SttInterim {
                text: "hold on".into(),
            },
        );
        let out = call.at(
            300,
            Input::SttFinal {
                text: "hold on".into(),
                speech_final: false,
            },
        );
        assert!(effects(&out).is_empty());
        assert!(llm_start(&call.at(5_000, Input::Tick)).is_none());
        let out = call.user_says("what about Sunday?");
        assert_eq!(
            llm_start(&out).unwrap().1.last(),
            Some(&user("hold on what about Sunday?"))
        );
    }

    #[test]
    fn tool_calls_and_results_go_to_history_in_openai_shape() {
        let (mut call, _) = Call::started(config());
        call.user_says("Call me back tomorrow at three.");
        let out = call.llm(0, "Sure, one moment. ");
        let played = call.play(&out);
        assert!(persisted(&played).is_none());
        let schedule = tool_call(
            "call_1",
            SCHEDULE_CALLBACK,
            r#"{"start_at":"2025-06-02T15:00:00+02:00"}"#,
        );
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: schedule.clone(),
            },
        );
        let out = call.at(10, Input::LlmDone { turn: 0 });
        assert_eq!(
            effects(&out),
            [&Action::RunTool {
                turn: 0,
                call: schedule.clone()
            }]
        );
        let out = call.at(
            300,
            Input::ToolResult {
                turn: 0,
                id: "call_1".into(),
                content: r#"{"scheduled":true}"#.into(),
            },
        );
        let (turn, messages) = llm_start(&out).unwrap();
        assert_eq!(turn, 0);
        let tool_turn = [
            Message::Assistant {
                content: Some("Sure, one moment.".into()),
                tool_calls: vec![schedule.clone()],
            },
            Message::Tool {
                tool_call_id: "call_1".into(),
                content: r#"{"scheduled":true}"#.into(),
            },
        ];
        assert_eq!(messages[2..], tool_turn);
        call.llm(0, "You're all set.");
        let out = call.at(10, Input::LlmDone { turn: 0 });
        assert_eq!(speaks(&out), [(0, 1, "You're all set.".to_owned())]);
        let played = call.play(&out);
        let turn = persisted(&played).unwrap();
        assert_eq!(turn.agent_text, "Sure, one moment. You're all set.");
        assert_eq!(turn.tool_calls, [schedule]);
        let history = call.conv.history();
        assert_eq!(history[2..4], tool_turn);
        assert_eq!(history[4..], [assistant("You're all set.")]);
    }

    #[test]
    fn end_call_hangs_up_after_the_goodbye_has_played() {
        let (mut call, _) = Call::started(config());
        call.user_says("That's all, thanks.");
        let out = call.llm(0, "Goodbye!");
        assert!(speaks(&out).is_empty());
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", END_CALL, "{}"),
            },
        );
        let out = call.at(10, Input::LlmDone { turn: 0 });
        assert_eq!(spoken(&out), ["Goodbye!"]);
        let sent = call.send_audio(&out);
        // The agent is leaving: the caller cannot interrupt the farewell.
        let out = call.at(
            10,
            Input::SttInterim {
                text: "wait one thing".into(),
            },
        );
        assert!(effects(&out).is_empty());
        let out = call.echo(&sent);
        assert!(matches!(
            effects(&out)[..],
            [
                Action::PersistTurn(_),
                Action::Hangup {
                    reason: HangupReason::AgentEnded
                }
            ]
        ));
        assert!(call.conv.is_ended());
        assert!(call.at(10, Input::Tick).is_empty());
        assert!(call.user_says("hello?").is_empty());
    }

    #[test]
    fn end_call_without_words_says_the_configured_goodbye() {
        for goodbye in [Some("Bye now."), None] {
            let (mut call, _) = Call::started(SessionConfig {
                goodbye_message: goodbye.map(str::to_owned),
                ..config()
            });
            call.user_says("Bye.");
            call.at(
                10,
                Input::LlmToolCall {
                    turn: 0,
                    call: tool_call("c1", END_CALL, "{}"),
                },
            );
            let out = call.at(10, Input::LlmDone { turn: 0 });
            let hangup = Action::Hangup {
                reason: HangupReason::AgentEnded,
            };
            match goodbye {
                Some(text) => {
                    assert_eq!(spoken(&out), [text]);
                    assert!(!out.contains(&hangup));
                    assert!(call.play(&out).contains(&hangup));
                }
                None => assert!(out.contains(&hangup)),
            }
        }
    }

    #[test]
    fn transfer_goes_to_the_configured_number_only() {
        let (mut call, _) = Call::started(SessionConfig {
            transfer_to: Some("+14155550100".into()),
            ..config()
        });
        let out = call.user_says("Can I talk to a person?");
        let Some(Action::StartLlm { tools, .. }) =
            out.iter().find(|a| matches!(a, Action::StartLlm { .. }))
        else {
            panic!("no StartLlm in {out:?}");
        };
        assert!(tools.iter().any(|t| t["function"]["name"] == TRANSFER_CALL));
        let out = call.llm(0, "Connecting you now. ");
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", TRANSFER_CALL, r#"{"to":"+19005550000"}"#),
            },
        );
        assert!(effects(&call.at(10, Input::LlmDone { turn: 0 })).is_empty());
        let played = call.play(&out);
        assert_eq!(
            played.last(),
            Some(&Action::Transfer {
                to: "+14155550100".into()
            })
        );

        // Without a number the model hears why and answers again.
        let (mut call, _) = Call::started(config());
        call.user_says("Can I talk to a person?");
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", TRANSFER_CALL, "{}"),
            },
        );
        let out = call.at(10, Input::LlmDone { turn: 0 });
        let (turn, messages) = llm_start(&out).unwrap();
        assert_eq!(turn, 0);
        assert!(matches!(messages.last(),
            Some(Message::Tool { content, .. }) if content.contains("not available")));
    }

    #[test]
    fn send_dtmf_plays_the_digits_and_asks_the_model_again() {
        let (mut call, _) = Call::started(config());
        call.user_says("For sales press one.");
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", SEND_DTMF, r#"{"digits":"1"}"#),
            },
        );
        let out = call.at(10, Input::LlmDone { turn: 0 });
        assert_eq!(out[0], Action::SendDtmf { digits: "1".into() });
        let messages = llm_start(&out).unwrap().1;
        assert!(matches!(messages.last(),
            Some(Message::Tool { tool_call_id, content }) if tool_call_id == "c1" && content.contains("sent")));
    }

    #[test]
    fn tool_rounds_are_bounded() {
        let (mut call, _) = Call::started(SessionConfig {
            max_tool_rounds: 1,
            ..config()
        });
        call.user_says("Press one forever.");
        let round = |call: &mut Call, id: &str| {
            call.at(
                10,
                Input::LlmToolCall {
                    turn: 0,
                    call: tool_call(id, SEND_DTMF, r#"{"digits":"1"}"#),
                },
            );
            call.at(10, Input::LlmDone { turn: 0 })
        };
        let out = round(&mut call, "c0");
        assert_eq!(
            llm_start(&out).map(|(turn, _)| turn),
            Some(0),
            "one more round"
        );
        let out = round(&mut call, "c1");
        assert!(llm_start(&out).is_none());
        assert!(out.contains(&Action::Emit(SessionEvent::UpstreamFailed {
            turn: 0,
            failure: Failure::ToolLoop
        })));
        assert_eq!(spoken(&out).len(), 2, "the fallback line instead");
        let played = call.play(&out);
        assert_eq!(persisted(&played).unwrap().tool_calls.len(), 2);
        assert!(tool_messages_pair_up(call.conv.history()));
    }

    #[test]
    fn llm_failure_speaks_the_fallback_and_the_call_goes_on() {
        let (mut call, _) = Call::started(config());
        call.user_says("Hello?");
        let out = call.at(400, Input::LlmFailed { turn: 0 });
        assert_eq!(
            out[0],
            Action::Emit(SessionEvent::UpstreamFailed {
                turn: 0,
                failure: Failure::LlmError
            })
        );
        assert_eq!(
            spoken(&out),
            [
                "Sorry, I'm having trouble right now.",
                "Could you say that again?"
            ]
        );
        let played = call.play(&out);
        assert!(persisted(&played).is_some());
        assert_eq!(
            llm_start(&call.user_says("Hello?")).map(|(t, _)| t),
            Some(1)
        );
    }

    #[test]
    fn a_silent_llm_times_out_into_the_fallback() {
        let (mut call, _) = Call::started(config());
        let out = call.user_says("Hello?");
        let asked_at = call.now;
        assert_eq!(alarm(&out), Some(asked_at + 8_000));
        // Tokens keep the request alive, without moving the armed alarm: the alarm fires at
        // the first deadline, finds the request alive and re-arms at the pushed-back one.
        let out = call.llm(0, "Let me");
        assert_eq!(alarm(&out), None);
        let token_at = call.now;
        let out = call.at(asked_at + 8_000 - call.now, Input::Tick);
        assert!(effects(&out).is_empty());
        assert_eq!(alarm(&out), Some(token_at + 8_000));
        let out = call.at(token_at + 8_000 - call.now, Input::Tick);
        assert_eq!(out[0], Action::CancelLlm { turn: 0 });
        assert!(out.contains(&Action::Emit(SessionEvent::UpstreamFailed {
            turn: 0,
            failure: Failure::LlmTimeout
        })));
        assert_eq!(spoken(&out).len(), 2);
        assert!(effects(&call.llm(0, " check. ")).is_empty());
    }

    #[test]
    fn schedule_callback_is_offered_only_when_enabled() {
        let offered = |enabled: bool| {
            let (mut call, _) = Call::started(SessionConfig {
                schedule_callback: enabled,
                ..config()
            });
            let out = call.user_says("Call me back.");
            let tools = out
                .iter()
                .find_map(|a| match a {
                    Action::StartLlm { tools, .. } => Some(tools.clone()),
                    _ => None,
                })
                .unwrap();
            tools
                .iter()
                .any(|t| t["function"]["name"] == SCHEDULE_CALLBACK)
        };
        assert!(offered(true));
        assert!(!offered(false));
    }

    #[test]
    fn a_lost_tool_result_times_out_and_the_model_is_told() {
        let (mut call, _) = Call::started(config());
        call.user_says("Call me tomorrow.");
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", SCHEDULE_CALLBACK, "{}"),
            },
        );
        let asked_at = call.now - 10;
        let out = call.at(10, Input::LlmDone { turn: 0 });
        // The tool's deadline is later than the armed response deadline: armed at the tick.
        assert_eq!(alarm(&out), None);
        let done_at = call.now;
        let out = call.at(asked_at + 8_000 - call.now, Input::Tick);
        assert!(effects(&out).is_empty());
        assert_eq!(alarm(&out), Some(done_at + 8_000));
        let out = call.at(done_at + 8_000 - call.now, Input::Tick);
        let messages = llm_start(&out).unwrap().1;
        assert!(matches!(messages.last(),
            Some(Message::Tool { content, .. }) if content == TOOL_TIMED_OUT));
    }

    fn with_http_tool(filler: Option<&str>) -> SessionConfig {
        SessionConfig {
            http_tools: vec![crate::http_tools::HttpTool {
                name: "lookup_order".into(),
                description: "Finds an order.".into(),
                parameters: serde_json::json!({"type": "object",
                    "properties": {"order": {"type": "string"}}, "required": ["order"]}),
                url: "https://tools.example.com/order".into(),
                timeout_ms: 9_000,
                filler: filler.map(str::to_owned),
            }],
            ..config()
        }
    }

    #[test]
    fn http_tools_are_offered_checked_and_run_by_the_edge() {
        let (mut call, _) = Call::started(with_http_tool(None));
        let out = call.user_says("Where is my order?");
        let Some(Action::StartLlm { tools, .. }) =
            out.iter().find(|a| matches!(a, Action::StartLlm { .. }))
        else {
            panic!("no request: {out:?}");
        };
        assert!(tools
            .iter()
            .any(|t| t["function"]["name"] == "lookup_order"));
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", "lookup_order", r#"{"order":7}"#),
            },
        );
        call.at(
            0,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c2", "lookup_order", r#"{"order":"A7"}"#),
            },
        );
        let out = call.at(10, Input::LlmDone { turn: 0 });
        let runs: Vec<&ToolCall> = out
            .iter()
            .filter_map(|a| match a {
                Action::RunTool { call, .. } => Some(call),
                _ => None,
            })
            .collect();
        assert_eq!(
            runs.len(),
            1,
            "bad arguments never reach the server: {out:?}"
        );
        assert_eq!(runs[0].id, "c2");
        // The tool's own timeout (9 s) + 2 s, past the 8 s response timeout.
        assert_eq!(
            alarm(&out),
            Some(call.now + crate::http_tools::FILLER_AFTER_MS)
        );
        let out = call.at(
            300,
            Input::ToolResult {
                turn: 0,
                id: "c2".into(),
                content: "shipped".into(),
            },
        );
        let messages = llm_start(&out).unwrap().1;
        let results: Vec<&str> = messages
            .iter()
            .filter_map(|m| match m {
                Message::Tool { content, .. } => Some(content.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 2);
        assert!(
            results[0].contains("must be of type string"),
            "{}",
            results[0]
        );
        assert_eq!(results[1], "shipped");
        assert!(spoken(&out).is_empty(), "a quick tool needs no filler");
        let out = call.llm(0, "It has shipped.");
        let done = call.at(1, Input::LlmDone { turn: 0 });
        let out = call.play(&[out, done].concat());
        let turn = persisted(&out).expect("turn persisted");
        assert_eq!(turn.tool_runs.len(), 2, "{:?}", turn.tool_runs);
        assert_eq!(turn.tool_runs[0].id, "c1");
        assert_eq!(
            turn.tool_runs[0].latency_ms,
            Some(0),
            "stopped by the schema at once"
        );
        assert!(turn.tool_runs[0]
            .result
            .as_deref()
            .unwrap()
            .contains("type string"));
        assert_eq!(turn.tool_runs[1].name, "lookup_order");
        assert_eq!(turn.tool_runs[1].latency_ms, Some(300));
        assert_eq!(turn.tool_runs[1].result.as_deref(), Some("shipped"));
    }

    #[test]
    fn a_slow_http_tool_gets_the_filler_line_once() {
        let (mut call, _) = Call::started(with_http_tool(Some("Let me look that up.")));
        call.user_says("Where is my order?");
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", "lookup_order", r#"{"order":"A7"}"#),
            },
        );
        let out = call.at(10, Input::LlmDone { turn: 0 });
        assert_eq!(alarm(&out), Some(call.now + 1_000));
        assert!(spoken(&call.at(999, Input::Tick)).is_empty());
        let out = call.at(1, Input::Tick);
        assert_eq!(spoken(&out), ["Let me look that up."]);
        let out = call.play(&out);
        assert!(spoken(&out).is_empty());
        let out = call.at(
            500,
            Input::ToolResult {
                turn: 0,
                id: "c1".into(),
                content: "{}".into(),
            },
        );
        assert!(llm_start(&out).is_some());
        assert!(spoken(&out).is_empty(), "said once");
    }

    #[test]
    fn the_filler_waits_for_words_still_playing() {
        let (mut call, _) = Call::started(with_http_tool(None));
        call.user_says("Where is my order?");
        let mut said = call.llm(0, "Let me check.");
        call.at(
            0,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", "lookup_order", r#"{"order":"A7"}"#),
            },
        );
        said.extend(call.at(10, Input::LlmDone { turn: 0 }));
        let out = call.at(1_000, Input::Tick);
        assert!(spoken(&out).is_empty(), "still saying its own words");
        let marks = call.send_audio(&said);
        call.echo(&marks);
        let out = call.at(FILLER_RECHECK_MS, Input::Tick);
        assert_eq!(spoken(&out), [crate::http_tools::DEFAULT_FILLER]);
    }

    #[test]
    fn idle_caller_gets_a_reminder_then_a_goodbye() {
        let (mut call, out) = Call::started(SessionConfig {
            goodbye_message: Some("Goodbye.".into()),
            ..config()
        });
        assert_eq!(alarm(&out), Some(T0 + 10_000));
        // Caller words restart the idle clock.
        call.at(4_000, Input::SttInterim { text: "um".into() });
        assert!(effects(&call.at(6_000, Input::Tick)).is_empty());
        let out = call.at(4_000, Input::Tick);
        assert_eq!(spoken(&out), ["Are you still there?"]);
        let played = call.play(&out);
        assert_eq!(
            alarm(&played),
            Some(T0 + 4_000 + 30_000),
            "hang-up counts from the caller's last words"
        );
        let out = call.at(T0 + 34_000 - call.now, Input::Tick);
        assert_eq!(spoken(&out), ["Goodbye."]);
        assert_eq!(
            call.play(&out).last(),
            Some(&Action::Hangup {
                reason: HangupReason::Idle
            })
        );
    }

    #[test]
    fn max_duration_cuts_the_agent_and_hangs_up() {
        let mut call = agent_mid_answer();
        call.conv.config.max_duration_ms = Some(5_000);
        call.conv.config.goodbye_message = Some("We're out of time. Goodbye.".into());
        let out = call.at(T0 + 5_000 - call.now, Input::Tick);
        assert_eq!(out[0], Action::SendClear);
        assert!(persisted(&out).unwrap().interrupted);
        assert_eq!(spoken(&out), ["We're out of time.", "Goodbye."]);
        assert_eq!(
            call.play(&out).last(),
            Some(&Action::Hangup {
                reason: HangupReason::MaxDuration
            })
        );
    }

    #[test]
    fn lost_marks_do_not_keep_a_leaving_agent_on_the_line() {
        let (mut call, _) = Call::started(config());
        call.user_says("bye");
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", END_CALL, "{}"),
            },
        );
        let out = call.at(10, Input::LlmDone { turn: 0 });
        call.send_audio(&out);
        assert!(!call
            .at(14_000, Input::Tick)
            .iter()
            .any(|a| matches!(a, Action::Hangup { .. })));
        let out = call.at(1_000, Input::Tick);
        assert_eq!(
            out.last(),
            Some(&Action::Hangup {
                reason: HangupReason::AgentEnded
            })
        );
    }

    #[test]
    fn caller_hangup_keeps_what_was_heard_and_ends_quietly() {
        let mut call = agent_mid_answer();
        let out = call.at(100, Input::Hangup);
        assert_eq!(effects(&out)[..1], [&Action::CancelLlm { turn: 0 }]);
        assert!(!out.contains(&Action::SendClear));
        assert_eq!(persisted(&out).unwrap().agent_text, "We open at nine.");
        assert!(call.conv.is_ended());
        assert!(call.at(10, Input::Tick).is_empty());
    }

    #[test]
    fn caller_keypresses_are_user_turns() {
        let (mut call, _) = Call::started(config());
        assert!(effects(&call.at(10, Input::Dtmf { digit: "x".into() })).is_empty());
        assert!(effects(&call.at(10, Input::Dtmf { digit: "12".into() })).is_empty());
        let out = call.at(10, Input::Dtmf { digit: "5".into() });
        assert_eq!(
            llm_start(&out).unwrap().1.last(),
            Some(&user("[keypad: 5]"))
        );
        // A key while the agent thinks interrupts it.
        let out = call.at(10, Input::Dtmf { digit: "#".into() });
        assert_eq!(out[0], Action::CancelLlm { turn: 0 });
        let (turn, messages) = llm_start(&out).unwrap();
        assert_eq!(turn, 1);
        assert_eq!(messages[1..], [user("[keypad: 5]"), user("[keypad: #]")]);
    }

    #[test]
    fn metrics_are_recorded_per_turn() {
        let (mut call, _) = Call::started(config());
        call.user_says("Hi");
        let end_of_speech = call.now;
        let out = call.at(
            300,
            Input::LlmText {
                turn: 0,
                text: "Hello there. ".into(),
            },
        );
        call.at(
            150,
            Input::TtsAudio {
                turn: 0,
                segment: 0,
                bytes: 160,
            },
        );
        call.at(50, Input::LlmDone { turn: 0 });
        let sent = call.at(
            50,
            Input::TtsDone {
                turn: 0,
                segment: 0,
            },
        );
        assert_eq!(marks(&sent), ["t0-s0"]);
        let out2 = call.at(
            1_450,
            Input::MarkEchoed {
                name: "t0-s0".into(),
            },
        );
        assert_eq!(speaks(&out).len(), 1);
        let turn = persisted(&out2).unwrap();
        assert_eq!(turn.started_at_ms, end_of_speech);
        assert_eq!(
            turn.metrics,
            TurnMetrics {
                first_audio_ms: Some(450),
                first_mark_ms: Some(2_000),
                llm_first_token_ms: Some(300),
                tts_first_byte_ms: Some(150),
                ..TurnMetrics::default()
            }
        );
    }

    /// Saves and restores a conversation the way the edge does.
    fn round_trip(conv: &Conversation) -> Conversation {
        let state = serde_json::to_string(conv).unwrap();
        Conversation::restore(conv.config.clone(), conv.history().to_vec(), &state).unwrap()
    }

    #[test]
    fn state_survives_serialization_mid_call() {
        let mut call = agent_mid_answer();
        let mut restored = round_trip(&call.conv);
        assert_eq!(restored, call.conv);
        // Config and history are saved apart (once each), never inside the state.
        let state = serde_json::to_string(&call.conv).unwrap();
        assert!(!state.contains("You are the receptionist."), "{state}");
        assert_eq!(
            call.conv.history().len(),
            2,
            "system prompt and the question"
        );
        let inputs = [
            Input::LlmText {
                turn: 0,
                text: "Sundays vary. ".into(),
            },
            Input::MarkEchoed {
                name: "t0-s1".into(),
            },
            Input::SttInterim {
                text: "and holidays".into(),
            },
            Input::Tick,
        ];
        for input in inputs {
            call.now += 700;
            assert_eq!(
                restored.handle(call.now, input.clone()),
                call.conv.handle(call.now, input)
            );
        }
    }

    #[test]
    fn restored_instance_replaces_lost_work() {
        let (mut call, _) = Call::started(config());
        call.user_says("Hours?");
        call.llm(0, "We open at nine. We");
        let out = call.at(10, Input::Restored);
        assert!(out.contains(&Action::Emit(SessionEvent::UpstreamFailed {
            turn: 0,
            failure: Failure::Restart
        })));
        assert_eq!(
            speaks(&out)[0].1,
            1,
            "the fallback follows the lost segment"
        );
        let played = call.play(&out);
        let turn = persisted(&played).unwrap();
        assert_eq!(
            turn.agent_text,
            "Sorry, I'm having trouble right now. Could you say that again?"
        );
        assert!(alarm(&played).is_some());

        // A tool run lost in the reset is reported to the model, which goes on.
        let (mut call, _) = Call::started(config());
        call.user_says("Call me tomorrow.");
        call.at(
            10,
            Input::LlmToolCall {
                turn: 0,
                call: tool_call("c1", SCHEDULE_CALLBACK, "{}"),
            },
        );
        call.at(10, Input::LlmDone { turn: 0 });
        let out = call.at(10, Input::Restored);
        assert!(matches!(llm_start(&out).unwrap().1.last(),
            Some(Message::Tool { content, .. }) if content == TOOL_LOST));
    }

    // ---- preemptive generation ----

    fn preemptive() -> SessionConfig {
        SessionConfig {
            preemptive: true,
            ..config()
        }
    }

    fn events(actions: &[Action]) -> Vec<&SessionEvent> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Emit(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn user_turns(history: &[Message]) -> Vec<&str> {
        history
            .iter()
            .filter_map(|m| match m {
                Message::User { content } => Some(content.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn eager_end_starts_the_reply_and_holds_it_until_the_turn_ends() {
        let (mut call, _) = Call::started(preemptive());
        let out = call.at(
            100,
            Input::SttEagerEnd {
                text: "Book a table for two".into(),
            },
        );
        let (turn, messages) = llm_start(&out).expect("the request starts on the draft");
        assert_eq!(turn, 0);
        assert_eq!(messages.last(), Some(&user("Book a table for two")));
        assert!(events(&out).contains(&&SessionEvent::PreemptStarted {
            turn: 0,
            text: "Book a table for two".into()
        }));
        // Generated before the turn ended: nothing is spoken, nothing enters the history.
        let mut held = call.llm(0, "Sure. For what time");
        held.extend(call.llm(0, "?"));
        held.extend(call.at(10, Input::LlmDone { turn: 0 }));
        assert!(speaks(&held).is_empty(), "{held:?}");
        assert!(user_turns(call.conv.history()).is_empty());

        let out = call.at(
            200,
            Input::SttEndOfTurn {
                text: "book a table, for two.".into(),
            },
        );
        assert!(llm_start(&out).is_none(), "no second request");
        assert!(!out.contains(&Action::CancelLlm { turn: 0 }));
        assert_eq!(spoken(&out), ["Sure.", "For what time?"]);
        assert!(events(&out).contains(&&SessionEvent::PreemptUsed { turn: 0 }));
        assert_eq!(user_turns(call.conv.history()), ["book a table, for two."]);
        let played = call.play(&out);
        let turn = persisted(&played).expect("the turn ends once played");
        assert_eq!(turn.agent_text, "Sure. For what time?");
        assert!(turn.metrics.preemptive);
        assert_eq!(turn.metrics.preempts_wasted, 0);
        assert_eq!(
            turn.metrics.first_audio_ms,
            Some(10),
            "audio as soon as it is sent"
        );
        assert_eq!(turn.metrics.llm_first_token_ms, Some(50));
    }

    #[test]
    fn turn_resumed_cancels_the_early_reply_which_is_never_spoken() {
        let (mut call, _) = Call::started(preemptive());
        call.at(
            100,
            Input::SttEagerEnd {
                text: "Book a table".into(),
            },
        );
        assert!(speaks(&call.llm(0, "Sure. ")).is_empty());
        let out = call.at(50, Input::SttTurnResumed);
        assert_eq!(
            effects(&out),
            [
                &Action::CancelLlm { turn: 0 },
                &Action::Emit(SessionEvent::PreemptWasted { turn: 0 })
            ]
        );
        // Output of the cancelled request that was already on its way is dropped.
        let late = call.llm(0, "What time? ");
        assert!(speaks(&late).is_empty() && llm_start(&late).is_none());
        assert!(call
            .at(10, Input::LlmDone { turn: 0 })
            .iter()
            .all(|a| matches!(a, Action::SetAlarm { .. })));

        let out = call.at(
            300,
            Input::SttEagerEnd {
                text: "Book a table for two at eight".into(),
            },
        );
        assert_eq!(llm_start(&out).map(|(t, _)| t), Some(1));
        call.llm(1, "Done, eight o'clock.");
        call.at(10, Input::LlmDone { turn: 1 });
        let out = call.at(
            100,
            Input::SttEndOfTurn {
                text: "Book a table for two at eight.".into(),
            },
        );
        assert!(speaks(&out).iter().all(|(turn, _, _)| *turn == 1));
        let turn = persisted(&call.play(&out)).cloned().unwrap();
        assert_eq!(turn.agent_text, "Done, eight o'clock.");
        assert_eq!(turn.metrics.preempts_wasted, 1);
        assert!(turn.metrics.preemptive);
        assert_eq!(
            user_turns(call.conv.history()),
            ["Book a table for two at eight."],
            "only the committed turn is in the history"
        );
    }

    #[test]
    fn a_different_final_text_cancels_and_answers_the_final_text() {
        let (mut call, _) = Call::started(preemptive());
        call.at(
            100,
            Input::SttEagerEnd {
                text: "Book a table".into(),
            },
        );
        call.llm(0, "Sure. ");
        let out = call.at(
            100,
            Input::SttEndOfTurn {
                text: "Book a table for two".into(),
            },
        );
        let cancel = out.iter().position(|a| a == &Action::CancelLlm { turn: 0 });
        let start = out
            .iter()
            .position(|a| matches!(a, Action::StartLlm { turn: 1, .. }));
        assert!(cancel.unwrap() < start.unwrap(), "{out:?}");
        assert_eq!(
            llm_start(&out).unwrap().1.last(),
            Some(&user("Book a table for two"))
        );
        assert!(speaks(&out).is_empty());
        call.llm(1, "For two, sure.");
        let out = call.at(10, Input::LlmDone { turn: 1 });
        let turn = persisted(&call.play(&out)).cloned().unwrap();
        assert!(!turn.metrics.preemptive);
        assert_eq!(turn.metrics.preempts_wasted, 1);
        assert_eq!(user_turns(call.conv.history()), ["Book a table for two"]);
    }

    #[test]
    fn nova_stable_interim_and_silence_start_the_early_reply() {
        let config = SessionConfig {
            preemptive_stable_ms: Some(200),
            ..preemptive()
        };
        let (mut call, _) = Call::started(config.clone());
        call.at(
            100,
            Input::SttInterim {
                text: "book a table".into(),
            },
        );
        let out = call.at(
            100,
            Input::SttInterim {
                text: "Book a table.".into(),
            },
        );
        assert_eq!(alarm(&out), Some(call.now + 200), "silence threshold armed");
        assert!(llm_start(&out).is_none());
        let out = call.at(200, Input::Tick);
        assert_eq!(
            llm_start(&out).map(|(t, m)| (t, m.last().cloned())),
            Some((0, Some(user("Book a table."))))
        );
        call.llm(0, "Sure. ");
        let out = call.user_says("Book a table.");
        assert!(events(&out).contains(&&SessionEvent::PreemptUsed { turn: 0 }));
        assert_eq!(spoken(&out), ["Sure."]);

        // New words void it; a different final answers afresh.
        let (mut call, _) = Call::started(config.clone());
        for text in ["book a table", "book a table"] {
            call.at(100, Input::SttInterim { text: text.into() });
        }
        assert!(llm_start(&call.at(200, Input::Tick)).is_some());
        let out = call.at(
            50,
            Input::SttInterim {
                text: "book a table for".into(),
            },
        );
        assert!(out.contains(&Action::CancelLlm { turn: 0 }));
        let out = call.user_says("Book a table for two.");
        assert_eq!(llm_start(&out).map(|(t, _)| t), Some(1));

        let (mut call, _) = Call::started(config);
        for text in ["book a table", "book a table"] {
            call.at(100, Input::SttInterim { text: text.into() });
        }
        call.at(200, Input::Tick);
        let out = call.user_says("Cook a table.");
        assert!(out.contains(&Action::CancelLlm { turn: 0 }));
        assert_eq!(
            llm_start(&out).unwrap().1.last(),
            Some(&user("Cook a table."))
        );

        // Changing interims are no candidate.
        let (mut call, _) = Call::started(SessionConfig {
            preemptive_stable_ms: Some(200),
            ..preemptive()
        });
        call.at(
            100,
            Input::SttInterim {
                text: "book".into(),
            },
        );
        call.at(
            100,
            Input::SttInterim {
                text: "book a".into(),
            },
        );
        assert!(llm_start(&call.at(1_000, Input::Tick)).is_none());
    }

    #[test]
    fn preemption_off_ignores_drafts() {
        let (mut call, _) = Call::started(SessionConfig {
            preemptive_stable_ms: Some(200),
            ..config()
        });
        let out = call.at(
            100,
            Input::SttEagerEnd {
                text: "Book a table".into(),
            },
        );
        assert!(effects(&out).is_empty(), "{out:?}");
        for text in ["book a table", "book a table"] {
            call.at(100, Input::SttInterim { text: text.into() });
        }
        assert!(llm_start(&call.at(1_000, Input::Tick)).is_none());
        let out = call.at(
            100,
            Input::SttEndOfTurn {
                text: "Book a table".into(),
            },
        );
        assert_eq!(llm_start(&out).map(|(t, _)| t), Some(0));
    }

    #[test]
    fn hangup_and_restart_drop_the_early_reply() {
        let (mut call, _) = Call::started(preemptive());
        call.at(100, Input::SttEagerEnd { text: "Hi".into() });
        let out = call.at(10, Input::Hangup);
        assert!(out.contains(&Action::CancelLlm { turn: 0 }));
        assert!(persisted(&out).is_none());

        let (mut call, _) = Call::started(preemptive());
        call.at(100, Input::SttEagerEnd { text: "Hi".into() });
        let mut restored = round_trip(&call.conv);
        let out = restored.handle(call.now + 10, Input::Restored);
        assert!(
            !out.contains(&Action::CancelLlm { turn: 0 }),
            "nothing left to cancel"
        );
        assert!(events(&out).contains(&&SessionEvent::PreemptWasted { turn: 0 }));
        let out = restored.handle(call.now + 20, Input::SttEndOfTurn { text: "Hi".into() });
        assert_eq!(llm_start(&out).map(|(t, _)| t), Some(1));
    }

    // ---- property test: random event orders ----

    #[derive(Debug, Clone)]
    enum Op {
        Start,
        Interim(usize),
        Final(usize, bool),
        UtteranceEnd,
        /// LLM text for the current (or a stale) turn: a unique word, maybe a sentence end.
        LlmText(bool, usize),
        LlmTool(bool, usize),
        LlmDone(bool),
        LlmFailed(bool),
        ToolResult(usize),
        TtsAudio(usize),
        TtsDone(usize),
        TtsFailed(usize),
        /// The edge sends the next requested segment's audio, then reports it done.
        TtsPlay,
        EchoPending(usize),
        EchoAny(u32, usize),
        Dtmf(usize),
        Tick,
        Hangup,
        Restored,
        Wait(u64),
        Eager(usize),
        Resumed,
        EndOfTurn(usize),
    }

    const PHRASES: [&str; 6] = ["", "uh-huh", "stop", "wait a moment", "yeah", "..."];
    const DIGITS: [&str; 3] = ["1", "#", "z"];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Start),
            2 => (0..PHRASES.len()).prop_map(Op::Interim),
            3 => (0..PHRASES.len(), any::<bool>()).prop_map(|(p, sf)| Op::Final(p, sf)),
            1 => Just(Op::UtteranceEnd),
            12 => (prop::bool::weighted(0.9), 0..5usize).prop_map(|(c, p)| Op::LlmText(c, p)),
            2 => (prop::bool::weighted(0.9), 0..5usize).prop_map(|(c, t)| Op::LlmTool(c, t)),
            2 => prop::bool::weighted(0.9).prop_map(Op::LlmDone),
            1 => prop::bool::weighted(0.9).prop_map(Op::LlmFailed),
            2 => (0..4usize).prop_map(Op::ToolResult),
            2 => (0..3usize).prop_map(Op::TtsAudio),
            2 => (0..3usize).prop_map(Op::TtsDone),
            1 => (0..3usize).prop_map(Op::TtsFailed),
            12 => Just(Op::TtsPlay),
            8 => (0..3usize).prop_map(Op::EchoPending),
            1 => (0..5u32, 0..5usize).prop_map(|(t, s)| Op::EchoAny(t, s)),
            1 => (0..DIGITS.len()).prop_map(Op::Dtmf),
            2 => Just(Op::Tick),
            1 => Just(Op::Hangup),
            1 => Just(Op::Restored),
            3 => (0..12_000u64).prop_map(Op::Wait),
            2 => (0..PHRASES.len()).prop_map(Op::Eager),
            1 => Just(Op::Resumed),
            2 => (0..PHRASES.len()).prop_map(Op::EndOfTurn),
        ]
    }

    /// What the edge has been told, used to check the conversation from outside.
    #[derive(Default)]
    struct Edge {
        llm_in_flight: Option<u32>,
        last_llm_turn: u32,
        /// `(turn, segment)` of every `Speak`, oldest first.
        speaks: Vec<(u32, usize)>,
        /// Segments requested and not yet played or cancelled, in order.
        to_play: std::collections::VecDeque<(u32, usize)>,
        tools: Vec<(u32, String)>,
        texts: HashMap<String, String>,
        pending_marks: Vec<String>,
        heard: HashSet<String>,
        marks_sent: HashSet<String>,
        /// Turns whose early reply was dropped: never to be spoken.
        wasted: HashSet<u32>,
    }

    impl Edge {
        fn inputs(&mut self, op: &Op, step: usize) -> Vec<Input> {
            let turn = |current: bool, t: u32| if current { t } else { t.wrapping_add(7) };
            let input = match *op {
                Op::Start => Input::StreamStarted,
                Op::Interim(p) => Input::SttInterim {
                    text: PHRASES[p].into(),
                },
                Op::Final(p, speech_final) => Input::SttFinal {
                    text: PHRASES[p].into(),
                    speech_final,
                },
                Op::UtteranceEnd => Input::UtteranceEnd,
                Op::LlmText(current, p) => Input::LlmText {
                    turn: turn(current, self.last_llm_turn),
                    // Unique words without inner spaces, so history text splits back into them.
                    text: format!("w{step}{}", ["", ".", "!", "? ", ". "][p]),
                },
                Op::LlmTool(current, t) => Input::LlmToolCall {
                    turn: turn(current, self.last_llm_turn),
                    call: tool_call(
                        &format!("c{step}"),
                        [
                            END_CALL,
                            TRANSFER_CALL,
                            SCHEDULE_CALLBACK,
                            SEND_DTMF,
                            "other",
                        ][t],
                        r#"{"digits":"12"}"#,
                    ),
                },
                Op::LlmDone(current) => Input::LlmDone {
                    turn: turn(current, self.last_llm_turn),
                },
                Op::LlmFailed(current) => Input::LlmFailed {
                    turn: turn(current, self.last_llm_turn),
                },
                Op::ToolResult(i) => match self.tools.get(i) {
                    Some((turn, id)) => Input::ToolResult {
                        turn: *turn,
                        id: id.clone(),
                        content: "{}".into(),
                    },
                    None => Input::Tick,
                },
                Op::TtsPlay => match self.to_play.pop_front() {
                    Some((turn, segment)) => {
                        return vec![
                            Input::TtsAudio {
                                turn,
                                segment,
                                bytes: 320,
                            },
                            Input::TtsDone { turn, segment },
                        ]
                    }
                    None => Input::Tick,
                },
                Op::TtsAudio(i) | Op::TtsDone(i) | Op::TtsFailed(i) => {
                    let recent = self.speaks.len().clamp(1, 3);
                    let (turn, segment) = self
                        .speaks
                        .iter()
                        .rev()
                        .nth(i % recent)
                        .copied()
                        .unwrap_or((0, i));
                    let audio = Input::TtsAudio {
                        turn,
                        segment,
                        bytes: 320,
                    };
                    match op {
                        Op::TtsAudio(_) => audio,
                        Op::TtsDone(_) => Input::TtsDone { turn, segment },
                        _ => Input::TtsFailed { turn, segment },
                    }
                }
                Op::EchoPending(i) => match self.pending_marks.get(i) {
                    Some(name) => Input::MarkEchoed { name: name.clone() },
                    None => Input::Tick,
                },
                Op::EchoAny(turn, segment) => Input::MarkEchoed {
                    name: mark_name(turn, segment),
                },
                Op::Dtmf(d) => Input::Dtmf {
                    digit: DIGITS[d].into(),
                },
                Op::Tick | Op::Wait(_) => Input::Tick,
                Op::Hangup => Input::Hangup,
                Op::Restored => Input::Restored,
                Op::Eager(p) => Input::SttEagerEnd {
                    text: PHRASES[p].into(),
                },
                Op::Resumed => Input::SttTurnResumed,
                Op::EndOfTurn(p) => Input::SttEndOfTurn {
                    text: PHRASES[p].into(),
                },
            };
            vec![input]
        }

        fn before(&mut self, input: &Input) {
            match input {
                Input::LlmDone { turn } | Input::LlmFailed { turn }
                    if self.llm_in_flight == Some(*turn) =>
                {
                    self.llm_in_flight = None;
                }
                Input::Restored => self.llm_in_flight = None,
                Input::MarkEchoed { name } => {
                    if let Some(i) = self.pending_marks.iter().position(|m| m == name) {
                        self.pending_marks.remove(i);
                        if let Some(text) = self.texts.get(name) {
                            self.heard.insert(text.clone());
                        }
                    }
                }
                _ => {}
            }
        }

        fn after(&mut self, actions: &[Action]) -> Result<(), TestCaseError> {
            for action in actions {
                match action {
                    Action::StartLlm { turn, .. } => {
                        prop_assert_eq!(self.llm_in_flight, None, "two LLM requests in flight");
                        self.llm_in_flight = Some(*turn);
                        self.last_llm_turn = *turn;
                    }
                    Action::CancelLlm { turn } => {
                        prop_assert_eq!(self.llm_in_flight, Some(*turn));
                        self.llm_in_flight = None;
                    }
                    Action::Emit(SessionEvent::PreemptWasted { turn }) => {
                        self.wasted.insert(*turn);
                    }
                    Action::Speak {
                        turn,
                        segment,
                        text,
                    } => {
                        prop_assert!(
                            !self.wasted.contains(turn),
                            "dropped early reply {} spoken",
                            turn
                        );
                        self.speaks.push((*turn, *segment));
                        self.to_play.push_back((*turn, *segment));
                        self.texts.insert(mark_name(*turn, *segment), text.clone());
                    }
                    Action::SendMark { name } => {
                        prop_assert!(
                            self.marks_sent.insert(name.clone()),
                            "mark {} sent twice",
                            name
                        );
                        self.pending_marks.push(name.clone());
                    }
                    Action::SendClear => self.pending_marks.clear(),
                    Action::CancelTts { turn } => self.to_play.retain(|(t, _)| t != turn),
                    Action::RunTool { turn, call } => self.tools.push((*turn, call.id.clone())),
                    _ => {}
                }
            }
            Ok(())
        }
    }

    /// Every tool call in the history is answered by a tool message, and every tool message
    /// answers an earlier call: the history is a valid chat-completions conversation.
    fn tool_messages_pair_up(history: &[Message]) -> bool {
        let mut open: Vec<&str> = Vec::new();
        for message in history {
            match message {
                Message::Tool { tool_call_id, .. } => {
                    match open.iter().position(|id| id == tool_call_id) {
                        Some(i) => {
                            open.remove(i);
                        }
                        None => return false,
                    }
                }
                _ if !open.is_empty() => return false,
                Message::Assistant { tool_calls, .. } => {
                    open.extend(tool_calls.iter().map(|c| c.id.as_str()));
                }
                _ => {}
            }
        }
        open.is_empty()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn random_event_orders_keep_the_invariants(ops in prop::collection::vec(op(), 1..120)) {
            let mut conv = Conversation::new(SessionConfig {
                first_message: Some("hello.".into()),
                fallback_message: "fallback.".into(),
                idle_reminder_message: "reminder?".into(),
                goodbye_message: Some("bye.".into()),
                transfer_to: Some("+14155550100".into()),
                max_tool_rounds: 2,
                preemptive: true,
                preemptive_stable_ms: Some(300),
                ..config()
            });
            let mut edge = Edge::default();
            let mut now = T0;
            for (step, op) in ops.iter().enumerate() {
                if let Op::Wait(ms) = op {
                    now += ms;
                }
                for input in edge.inputs(op, step) {
                    edge.before(&input);
                    let was_ended = conv.is_ended();
                    let actions = conv.handle(now, input);
                    if was_ended {
                        prop_assert!(actions.is_empty());
                    }
                    edge.after(&actions)?;
                }
                for message in conv.history() {
                    if let Message::Assistant { content: Some(content), .. } = message {
                        for piece in content.split(' ') {
                            prop_assert!(edge.heard.contains(piece), "unheard {:?} in history", piece);
                        }
                    }
                }
                prop_assert!(tool_messages_pair_up(conv.history()), "{:?}", conv.history());
                prop_assert_eq!(&round_trip(&conv), &conv);
            }
        }
    }
}
