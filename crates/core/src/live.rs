//! The pure steps of running a live call around [`crate::session::Conversation`]: what the
//! agent record asks for (voice, LLM, STT, conversation settings), how provider messages become
//! conversation inputs, the chat request body, in-band DTMF tones, and the post-call transcript
//! and metrics.
//!
//! Agent `config` JSON (the `agents.config` column; every part optional):
//!
//! ```json
//! {"voice":   {"provider": "elevenlabs" | "deepgram" | "openai", "voice_id": "…"},
//!  "llm":     {"model": "gpt-4o-mini"},
//!  "stt":     {"model": "nova-3", "language": "en", "endpointing_ms": 300, "utterance_end_ms": 1000,
//!              "preemptive": false, "preemptive_silence_ms": 250,
//!              "eot_threshold": 0.7, "eager_eot_threshold": 0.5, "eot_timeout_ms": 5000},
//!  "session": {"min_interrupt_words": 1, "backchannels": ["uh-huh"], "idle_reminder_ms": 10000,
//!              "idle_hangup_ms": 30000, "max_duration_ms": 1800000, "transfer_to": "+1…",
//!              "end_of_turn": {"speech_final": true, "utterance_end": true}, …}}
//! ```
//!
//! `session` holds any field of [`SessionConfig`]; `system_prompt` and `first_message` come from
//! the agent's columns. A live call never fails on a bad value: it is replaced by its default
//! and reported in [`AgentSetup::warnings`] (the API validates what it stores).

use crate::media::codec::AudioFormat;
use crate::providers::deepgram::{FluxTurns, ListenParams, SttEncoding, SttMessage, TurnEvent};
use crate::providers::openai::{ChatDelta, Speaker};
use crate::providers::tts::TtsProvider;
use crate::session::{Input, Message, SessionConfig, Turn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Deepgram model used when the agent names none.
pub const DEFAULT_STT_MODEL: &str = "nova-3";

/// Flux's `eager_eot_threshold` when preemption is on and the agent sets none (Deepgram's
/// suggested starting point for early replies).
const DEFAULT_EAGER_EOT_MILLI: u32 = 500;

/// Speech-to-text settings of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SttSettings {
    pub model: String,
    pub language: String,
    /// Silence that ends a segment (`speech_final`); `None` turns endpointing off.
    pub endpointing_ms: Option<u32>,
    /// Gap before `UtteranceEnd`; `None` omits it.
    pub utterance_end_ms: Option<u32>,
    /// Preemptive generation (the reply starts on a draft of the caller's turn). Default: on
    /// for Flux, whose `EagerEndOfTurn` is built for it; off for Nova, whose draft is only a
    /// heuristic (a repeated interim), so every miss is a paid, discarded LLM request.
    #[serde(default)]
    pub preemptive: bool,
    /// Nova: silence after a repeated interim before the early request.
    #[serde(default = "default_stable_ms")]
    pub preemptive_silence_ms: u32,
    /// Flux turn detection (used only with a `flux-*` model).
    #[serde(default = "default_flux")]
    pub flux: FluxTurns,
}

fn default_stable_ms() -> u32 {
    250
}

fn default_flux() -> FluxTurns {
    FluxTurns {
        eot_threshold_milli: None,
        eager_eot_threshold_milli: None,
        eot_timeout_ms: None,
    }
}

impl SttSettings {
    /// Whether the model is Deepgram Flux (`/v2/listen`, turn events) rather than Nova.
    pub fn is_flux(&self) -> bool {
        self.model.starts_with("flux")
    }
}

impl Default for SttSettings {
    fn default() -> Self {
        SttSettings {
            model: DEFAULT_STT_MODEL.to_owned(),
            language: "en".to_owned(),
            endpointing_ms: Some(300),
            utterance_end_ms: Some(1000),
            preemptive: false,
            preemptive_silence_ms: default_stable_ms(),
            flux: default_flux(),
        }
    }
}

/// Everything a live call takes from its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSetup {
    pub session: SessionConfig,
    /// TTS provider name (`elevenlabs`, `deepgram`, `openai`).
    pub voice_provider: String,
    pub voice_id: Option<String>,
    /// Chat model; `None` uses `OPENAI_MODEL`.
    pub llm_model: Option<String>,
    pub stt: SttSettings,
    /// Values of the stored config that were unusable and replaced by defaults.
    pub warnings: Vec<String>,
    /// What the end-of-call job asks the LLM to fill in (a setup stored before it existed has
    /// none).
    #[serde(default)]
    pub analysis: Option<crate::analysis::AnalysisSpec>,
    /// The carrier records the call (the agent's `recording.enabled`); its disclosure is
    /// already the start of `session.first_message`.
    #[serde(default)]
    pub record: bool,
}

impl AgentSetup {
    /// The TTS provider (ElevenLabs when the stored name is unknown).
    pub fn tts_provider(&self) -> TtsProvider {
        TtsProvider::from_name(&self.voice_provider).unwrap_or(TtsProvider::ElevenLabs)
    }
}

/// Reads an agent record into the settings of a live call.
pub fn agent_setup(system_prompt: &str, first_message: Option<&str>, config: &Value) -> AgentSetup {
    let mut warnings = Vec::new();
    let mut session = match config.get("session") {
        None | Some(Value::Null) => SessionConfig::default(),
        Some(value) => serde_json::from_value(value.clone()).unwrap_or_else(|e| {
            warnings.push(format!("session settings ignored: {e}"));
            SessionConfig::default()
        }),
    };
    // Only the agent's `callbacks` setting turns the tool on (the API refuses it in `session`).
    session.schedule_callback = crate::agents::callback_settings(config).enabled;
    // Likewise the HTTP tools come from the agent's validated `http_tools` only.
    session.http_tools = crate::http_tools::http_tools(config);
    session.appointments = crate::appointments::calendar_of(config).is_some();
    session.system_prompt = system_prompt.to_owned();
    // A recorded call says so before anything else: the disclosure leads the greeting.
    session.first_message = crate::recording::greeting(first_message, config)
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);

    let voice_provider = match config.pointer("/voice/provider").and_then(Value::as_str) {
        Some(name) if TtsProvider::from_name(name).is_some() => name.to_owned(),
        Some(name) => {
            warnings.push(format!("unknown voice provider {name:?}; using elevenlabs"));
            TtsProvider::ElevenLabs.as_str().to_owned()
        }
        None => TtsProvider::ElevenLabs.as_str().to_owned(),
    };
    let text = |pointer: &str| {
        config
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut stt = SttSettings::default();
    // A name of the wrong type would otherwise be dropped silently and the default used.
    for key in ["model", "language"] {
        match config.pointer(&format!("/stt/{key}")) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => warnings.push(format!("stt.{key} must be a string")),
        }
    }
    if let Some(model) = text("/stt/model") {
        stt.model = model;
    }
    if let Some(language) = text("/stt/language") {
        stt.language = language;
    }
    for (key, slot) in [
        ("endpointing_ms", &mut stt.endpointing_ms),
        ("utterance_end_ms", &mut stt.utterance_end_ms),
    ] {
        match config.pointer(&format!("/stt/{key}")) {
            None => {}
            Some(Value::Null) | Some(Value::Bool(false)) => *slot = None,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(ms) if (10..=10_000).contains(&ms) => *slot = Some(ms),
                _ => warnings.push(format!("stt.{key} must be 10 to 10000 ms")),
            },
        }
    }
    stt.preemptive = match config.pointer("/stt/preemptive") {
        None | Some(Value::Null) => stt.is_flux(),
        Some(Value::Bool(on)) => *on,
        Some(_) => {
            warnings.push("stt.preemptive must be true or false".to_owned());
            stt.is_flux()
        }
    };
    if let Some(v) = config.pointer("/stt/preemptive_silence_ms") {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(ms) if (50..=2_000).contains(&ms) => stt.preemptive_silence_ms = ms,
            _ => warnings.push("stt.preemptive_silence_ms must be 50 to 2000 ms".to_owned()),
        }
    }
    let mut threshold = |key: &str, low: f64, high: f64| -> Option<u32> {
        let v = config.pointer(&format!("/stt/{key}"))?;
        match v.as_f64() {
            Some(t) if (low..=high).contains(&t) => Some((t * 1000.0).round() as u32),
            _ => {
                warnings.push(format!("stt.{key} must be a number from {low} to {high}"));
                None
            }
        }
    };
    let eot = threshold("eot_threshold", 0.5, 0.9);
    let eager = threshold("eager_eot_threshold", 0.3, 0.9);
    if let (Some(eot), Some(eager)) = (eot, eager) {
        if eager > eot {
            warnings.push("stt.eager_eot_threshold must not exceed stt.eot_threshold".to_owned());
        }
    }
    stt.flux = FluxTurns {
        eot_threshold_milli: eot,
        // Eager events serve only preemption; without it they would be noise.
        eager_eot_threshold_milli: stt
            .preemptive
            .then(|| eager.unwrap_or(DEFAULT_EAGER_EOT_MILLI.min(eot.unwrap_or(u32::MAX)))),
        eot_timeout_ms: None,
    };
    if let Some(v) = config.pointer("/stt/eot_timeout_ms") {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(ms) if (500..=10_000).contains(&ms) => stt.flux.eot_timeout_ms = Some(ms),
            _ => warnings.push("stt.eot_timeout_ms must be 500 to 10000 ms".to_owned()),
        }
    }
    session.preemptive = stt.preemptive;
    session.preemptive_stable_ms =
        (stt.preemptive && !stt.is_flux()).then_some(u64::from(stt.preemptive_silence_ms));
    AgentSetup {
        session,
        voice_provider,
        voice_id: text("/voice/voice_id"),
        llm_model: text("/llm/model"),
        stt,
        warnings,
        analysis: crate::analysis::from_config(config),
        record: crate::recording::settings(config).enabled,
    }
}

/// How caller audio in `format` reaches Deepgram: the listen parameters, and the format to
/// transcode to first when Deepgram cannot take the carrier's bytes as they are (big-endian L16).
/// μ-law, A-law and little-endian PCM pass through untouched.
pub fn stt_route(format: AudioFormat, stt: &SttSettings) -> (ListenParams, Option<AudioFormat>) {
    let (encoding, transcode) = match format {
        AudioFormat::Mulaw8k => (SttEncoding::Mulaw, None),
        AudioFormat::Alaw8k => (SttEncoding::Alaw, None),
        AudioFormat::Pcm16Le { .. } => (SttEncoding::Linear16, None),
        AudioFormat::L16Be { rate } => (SttEncoding::Linear16, Some(AudioFormat::Pcm16Le { rate })),
    };
    let mut params = ListenParams::phone(encoding, &stt.model, &stt.language);
    params.sample_rate = format.sample_rate();
    params.endpointing_ms = stt.endpointing_ms;
    params.utterance_end_ms = stt.utterance_end_ms;
    params.flux = stt.is_flux().then_some(stt.flux);
    (params, transcode)
}

/// No audio sent to Deepgram for this long (ms): a KeepAlive goes out (it closes a stream after
/// 10 s without audio or KeepAlive).
pub const STT_KEEP_ALIVE_AFTER_MS: i64 = 3_000;
/// No caller audio from the carrier for this long (ms): the STT stream is closed and reopened by
/// the next audio. A carrier that stops sending media (silence suppression, a stalled stream)
/// leaves nothing to transcribe, and an open outbound socket would pin the call's Durable Object
/// in memory: closed, the object can hibernate (its carrier socket stays connected).
pub const STT_IDLE_CLOSE_MS: i64 = 5_000;

/// What an open STT stream needs now (checked about once a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SttUpkeep {
    /// Nothing: audio is flowing, or a KeepAlive went out recently.
    Nothing,
    /// Send a KeepAlive: a short gap in the audio.
    KeepAlive,
    /// Close the stream (`CloseStream`): the carrier has sent no audio for `STT_IDLE_CLOSE_MS`.
    Close,
}

/// The upkeep of an STT stream at `now_ms`, given when the carrier last sent caller audio (or
/// the stream opened, if later) and when anything (audio, KeepAlive) was last sent to Deepgram.
pub fn stt_upkeep(now_ms: i64, last_audio_ms: i64, last_sent_ms: i64) -> SttUpkeep {
    if now_ms - last_audio_ms >= STT_IDLE_CLOSE_MS {
        SttUpkeep::Close
    } else if now_ms - last_sent_ms >= STT_KEEP_ALIVE_AFTER_MS {
        SttUpkeep::KeepAlive
    } else {
        SttUpkeep::Nothing
    }
}

/// Caller audio per message to Deepgram (ms). Carriers send 20 ms frames, and one WebSocket
/// send per frame was the largest single cost of an inbound frame in workerd (bench/README.md,
/// "Profile"); Deepgram takes 20–250 ms per message. 60 ms (three Twilio frames) sends a third
/// as many messages and holds the newest audio back at most 40 ms (20 ms on average), small
/// beside the silence endpointing waits for (300 ms and more).
pub const STT_BATCH_MS: u32 = 60;

/// Collects caller audio into messages of at least [`STT_BATCH_MS`] for Deepgram.
#[derive(Debug, Clone, Default)]
pub struct AudioBatch {
    /// Bytes per message; 0 sends every push as it comes (no format known yet).
    target: usize,
    held: Vec<u8>,
}

impl AudioBatch {
    /// Messages of `ms` of audio in `format` (the format Deepgram receives).
    pub fn new(format: AudioFormat, ms: u32) -> Self {
        let target = format.bytes_for_ms(ms);
        AudioBatch {
            target,
            held: Vec::with_capacity(target),
        }
    }

    /// Adds audio; the message to send now, once at least a batch is held (all of it, so
    /// frames are never split and nothing waits behind a full batch).
    pub fn push(&mut self, audio: &[u8]) -> Option<Vec<u8>> {
        if self.held.is_empty() && audio.len() >= self.target {
            return Some(audio.to_vec());
        }
        self.held.extend_from_slice(audio);
        (self.held.len() >= self.target)
            .then(|| std::mem::replace(&mut self.held, Vec::with_capacity(self.target)))
    }

    /// Whether held audio should leave without waiting for more: the carrier has sent nothing
    /// for a batch's length (a paused stream must not keep the caller's last words back).
    pub fn flush_due(&self, now_ms: i64, last_audio_ms: i64) -> bool {
        !self.held.is_empty() && now_ms - last_audio_ms >= i64::from(STT_BATCH_MS)
    }

    /// Everything held, emptying the batch.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// The conversation input a Deepgram message stands for, if any.
pub fn stt_input(message: SttMessage) -> Option<Input> {
    match message {
        SttMessage::Transcript {
            transcript,
            is_final: false,
            ..
        } => (!transcript.trim().is_empty()).then_some(Input::SttInterim { text: transcript }),
        SttMessage::Transcript {
            transcript,
            speech_final,
            ..
        } => Some(Input::SttFinal {
            text: transcript,
            speech_final,
        }),
        SttMessage::UtteranceEnd { .. } => Some(Input::UtteranceEnd),
        // Flux transcripts hold the whole turn so far; updates act as interim words.
        SttMessage::TurnInfo {
            event, transcript, ..
        } => match event {
            TurnEvent::StartOfTurn | TurnEvent::Update => {
                (!transcript.trim().is_empty()).then_some(Input::SttInterim { text: transcript })
            }
            TurnEvent::EagerEndOfTurn => Some(Input::SttEagerEnd { text: transcript }),
            TurnEvent::TurnResumed => Some(Input::SttTurnResumed),
            TurnEvent::EndOfTurn => Some(Input::SttEndOfTurn { text: transcript }),
        },
        _ => None,
    }
}

/// The conversation input a streamed chat delta of `turn` stands for, if any.
pub fn llm_input(turn: u32, delta: ChatDelta) -> Option<Input> {
    match delta {
        ChatDelta::Text(text) => Some(Input::LlmText { turn, text }),
        ChatDelta::ToolCall(call) => Some(Input::LlmToolCall { turn, call }),
        ChatDelta::Done { .. } => Some(Input::LlmDone { turn }),
        ChatDelta::Usage(_) => None,
    }
}

/// Body of the streaming chat-completions request for `StartLlm` (history already in the
/// OpenAI message shape), as JSON text. Serialized straight from the history: building a JSON
/// tree of it first cost a copy of every message on every turn, a cost that grows with the call.
pub fn chat_body(model: &str, messages: &[Message], tools: &[Value]) -> String {
    #[derive(Serialize)]
    struct StreamOptions {
        include_usage: bool,
    }
    #[derive(Serialize)]
    struct ChatBody<'a> {
        model: &'a str,
        stream: bool,
        stream_options: StreamOptions,
        messages: &'a [Message],
        #[serde(skip_serializing_if = "<[Value]>::is_empty")]
        tools: &'a [Value],
    }
    let body = ChatBody {
        model,
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
        messages,
        tools,
    };
    // Only strings, numbers and JSON values: serializing cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

/// DTMF row and column frequencies (Hz) of a keypad key.
fn dtmf_pair(key: char) -> Option<(f64, f64)> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (row, col) = match key.to_ascii_uppercase() {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        'D' => (3, 3),
        _ => return None,
    };
    Some((ROWS[row], COLS[col]))
}

/// In-band DTMF for `digits` at `rate` Hz: 100 ms of tone and 60 ms of silence per key, 500 ms
/// of silence for `w`; other characters are skipped. Sent as ordinary call audio, it works the
/// same on every carrier (none of their media protocols has an outbound DTMF message).
pub fn dtmf_samples(digits: &str, rate: u32) -> Vec<i16> {
    let ms = |n: u32| (u64::from(rate) * u64::from(n) / 1000) as usize;
    let mut out = Vec::new();
    for key in digits.chars() {
        if key.eq_ignore_ascii_case(&'w') {
            out.resize(out.len() + ms(500), 0);
            continue;
        }
        let Some((low, high)) = dtmf_pair(key) else {
            continue;
        };
        for i in 0..ms(100) {
            let t = i as f64 / f64::from(rate);
            let v = 0.35 * (2.0 * std::f64::consts::PI * low * t).sin()
                + 0.35 * (2.0 * std::f64::consts::PI * high * t).sin();
            out.push((v * f64::from(i16::MAX)) as i16);
        }
        out.resize(out.len() + ms(60), 0);
    }
    out
}

/// A finished call's transcript: lines for the summary prompt, the stored turn list and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub lines: Vec<(Speaker, String)>,
    /// `[{role: "caller"|"agent", text, at, turn, interrupted?, unheard?, metrics?}]`: `text` is
    /// what the caller heard, `unheard` what the agent said that a barge-in cut; tools the edge
    /// ran add `{role: "tool", name, arguments, result, latency_ms, at, turn}`.
    pub turns: Value,
    /// `Caller: …` / `Agent: …` lines.
    pub text: String,
}

/// Builds the transcript from the persisted turns, in order.
pub fn transcript(turns: &[Turn]) -> Transcript {
    let mut lines = Vec::new();
    let mut entries = Vec::new();
    for turn in turns {
        if let Some(user) = turn.user_text.as_deref().filter(|t| !t.trim().is_empty()) {
            lines.push((Speaker::Caller, user.to_owned()));
            entries.push(
                json!({"role": "caller", "text": user, "at": turn.started_at_ms, "turn": turn.id}),
            );
        }
        if !turn.agent_text.trim().is_empty() {
            lines.push((Speaker::Agent, turn.agent_text.clone()));
            let mut entry = json!({
                "role": "agent", "text": turn.agent_text, "at": turn.started_at_ms, "turn": turn.id,
                "interrupted": turn.interrupted, "metrics": turn.metrics,
            });
            // Kept beside the heard text (never in it) so a reader sees where the caller cut in.
            if !turn.unheard_text.trim().is_empty() {
                entry["unheard"] = Value::from(turn.unheard_text.as_str());
            }
            entries.push(entry);
        }
        // Tools the edge ran, after the words of their turn: what was asked, what came back
        // and how long it took (never in the text lines: the caller did not hear them).
        for run in &turn.tool_runs {
            entries.push(json!({
                "role": "tool", "name": run.name, "arguments": run.arguments,
                "result": run.result, "latency_ms": run.latency_ms,
                "at": run.started_at_ms, "turn": turn.id,
            }));
        }
    }
    let text = lines
        .iter()
        .map(|(speaker, line)| match speaker {
            Speaker::Caller => format!("Caller: {line}"),
            Speaker::Agent => format!("Agent: {line}"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Transcript {
        lines,
        turns: Value::Array(entries),
        text,
    }
}

/// The `q`-quantile (0..=1, nearest rank) of `values`, if any.
pub fn quantile(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// Per-turn latencies and their p50/p95 for the call record (`calls.metrics`).
pub fn metrics_summary(turns: &[Turn]) -> Value {
    let per_turn: Vec<Value> = turns
        .iter()
        .map(|t| json!({"turn": t.id, "user_turn": t.user_text.is_some(), "metrics": t.metrics}))
        .collect();
    let pick = |f: fn(&Turn) -> Option<u64>| -> Vec<u64> {
        turns
            .iter()
            .filter(|t| t.user_text.is_some())
            .filter_map(f)
            .collect()
    };
    let stats = |values: Vec<u64>| json!({"p50": quantile(&values, 0.5), "p95": quantile(&values, 0.95), "n": values.len()});
    json!({
        "turns": per_turn,
        "first_audio_ms": stats(pick(|t| t.metrics.first_audio_ms)),
        "first_mark_ms": stats(pick(|t| t.metrics.first_mark_ms)),
        "llm_first_token_ms": stats(pick(|t| t.metrics.llm_first_token_ms)),
        "tts_first_byte_ms": stats(pick(|t| t.metrics.tts_first_byte_ms)),
        "preemptive": {
            "used": turns.iter().filter(|t| t.metrics.preemptive).count(),
            "wasted": turns.iter().map(|t| u64::from(t.metrics.preempts_wasted)).sum::<u64>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::ToolCall;
    use crate::session::TurnMetrics;

    #[test]
    fn stt_stream_upkeep_keeps_short_gaps_and_closes_long_ones() {
        let t = 1_000_000;
        // Audio flowing: nothing to do.
        assert_eq!(stt_upkeep(t, t - 20, t - 20), SttUpkeep::Nothing);
        // A short gap: KeepAlive, again every STT_KEEP_ALIVE_AFTER_MS.
        assert_eq!(stt_upkeep(t, t - 3_000, t - 3_000), SttUpkeep::KeepAlive);
        assert_eq!(stt_upkeep(t, t - 4_000, t - 1_000), SttUpkeep::Nothing);
        // No carrier audio for STT_IDLE_CLOSE_MS: close, KeepAlive sent or not.
        assert_eq!(stt_upkeep(t, t - 5_000, t - 100), SttUpkeep::Close);
        assert_eq!(stt_upkeep(t, t - 60_000, t - 60_000), SttUpkeep::Close);
        assert_eq!(stt_upkeep(t, t - 4_999, t - 4_999), SttUpkeep::KeepAlive);
    }

    #[test]
    fn caller_audio_leaves_for_stt_in_60_ms_messages() {
        // Twilio: 160-byte (20 ms) μ-law frames; three make a message.
        let mut batch = AudioBatch::new(AudioFormat::Mulaw8k, STT_BATCH_MS);
        let frames: Vec<Vec<u8>> = (0..7u8).map(|i| vec![i; 160]).collect();
        let sent: Vec<Vec<u8>> = frames.iter().filter_map(|f| batch.push(f)).collect();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|m| m.len() == 480));
        assert_eq!(
            sent.concat(),
            frames[..6].concat(),
            "in order, nothing lost"
        );
        // The seventh frame waits for two more, or for the flush of a paused stream.
        let t = 1_000_000;
        assert!(!batch.flush_due(t, t - 59));
        assert!(batch.flush_due(t, t - 60));
        assert_eq!(batch.take(), frames[6]);
        assert!(
            !batch.flush_due(t, t - 1_000),
            "nothing held, nothing to flush"
        );
        assert!(batch.take().is_empty());
    }

    #[test]
    fn odd_frames_and_formats_batch_by_duration() {
        // 16 kHz little-endian PCM: 60 ms is 1920 bytes; a big chunk passes whole.
        let mut batch = AudioBatch::new(AudioFormat::Pcm16Le { rate: 16_000 }, STT_BATCH_MS);
        assert_eq!(batch.push(&[1; 1000]), None);
        assert_eq!(batch.push(&[2; 1000]).map(|m| m.len()), Some(2000));
        assert_eq!(batch.push(&[3; 5000]), Some(vec![3; 5000]));
        // No format yet (the default): every push leaves at once.
        let mut unset = AudioBatch::default();
        assert_eq!(unset.push(&[9; 160]), Some(vec![9; 160]));
        assert!(unset.take().is_empty());
    }

    #[test]
    fn agent_config_is_read_with_defaults() {
        let setup = agent_setup("Be brief.", Some(" Hi! "), &json!({}));
        assert_eq!(setup.session.system_prompt, "Be brief.");
        assert_eq!(setup.session.first_message.as_deref(), Some("Hi!"));
        assert_eq!(setup.tts_provider(), TtsProvider::ElevenLabs);
        assert_eq!(setup.stt, SttSettings::default());
        assert!(setup.warnings.is_empty());

        let setup = agent_setup(
            "P",
            Some("  "),
            &json!({
                "voice": {"provider": "deepgram", "voice_id": "aura-2-zeus-en"},
                "llm": {"model": "gpt-x"},
                "stt": {"model": "nova-2-phonecall", "endpointing_ms": 500, "utterance_end_ms": null},
                "session": {"min_interrupt_words": 2, "idle_hangup_ms": 5000, "system_prompt": "ignored"}
            }),
        );
        assert_eq!(setup.session.first_message, None);
        assert_eq!(setup.session.system_prompt, "P");
        assert_eq!(setup.session.min_interrupt_words, 2);
        assert_eq!(setup.session.idle_hangup_ms, Some(5000));
        assert_eq!(setup.tts_provider(), TtsProvider::DeepgramAura);
        assert_eq!(setup.voice_id.as_deref(), Some("aura-2-zeus-en"));
        assert_eq!(setup.llm_model.as_deref(), Some("gpt-x"));
        assert_eq!(setup.stt.model, "nova-2-phonecall");
        assert_eq!(setup.stt.endpointing_ms, Some(500));
        assert_eq!(setup.stt.utterance_end_ms, None);
    }

    #[test]
    fn bad_agent_config_falls_back_and_warns() {
        let setup = agent_setup(
            "P",
            None,
            &json!({"voice": {"provider": "skype"}, "session": {"min_interrupt_words": "two"},
                    "stt": {"endpointing_ms": 5}}),
        );
        assert_eq!(setup.tts_provider(), TtsProvider::ElevenLabs);
        assert_eq!(setup.session.min_interrupt_words, 1);
        assert_eq!(setup.stt.endpointing_ms, Some(300));
        assert_eq!(setup.warnings.len(), 3, "{:?}", setup.warnings);
        let back: AgentSetup =
            serde_json::from_str(&serde_json::to_string(&setup).unwrap()).unwrap();
        assert_eq!(back, setup);
    }

    #[test]
    fn flux_agents_preempt_by_default_and_nova_agents_opt_in() {
        let flux = agent_setup("P", None, &json!({"stt": {"model": "flux-general-en"}}));
        assert!(flux.warnings.is_empty(), "{:?}", flux.warnings);
        assert!(flux.stt.is_flux() && flux.session.preemptive);
        assert_eq!(
            flux.session.preemptive_stable_ms, None,
            "Flux drafts come from the model"
        );
        let (p, _) = stt_route(AudioFormat::Mulaw8k, &flux.stt);
        assert_eq!(
            crate::providers::deepgram::listen_url("wss://api.deepgram.com", &p),
            "wss://api.deepgram.com/v2/listen?model=flux-general-en&encoding=mulaw\
             &sample_rate=8000&eager_eot_threshold=0.5"
        );

        let tuned = agent_setup(
            "P",
            None,
            &json!({"stt": {"model": "flux-general-en", "eot_threshold": 0.8,
                "eager_eot_threshold": 0.4, "eot_timeout_ms": 3000}}),
        );
        assert!(tuned.warnings.is_empty(), "{:?}", tuned.warnings);
        let (p, _) = stt_route(AudioFormat::Mulaw8k, &tuned.stt);
        assert!(crate::providers::deepgram::listen_url("ws://x", &p)
            .ends_with("eot_threshold=0.8&eager_eot_threshold=0.4&eot_timeout_ms=3000"));

        let off = agent_setup(
            "P",
            None,
            &json!({"stt": {"model": "flux-general-en", "preemptive": false}}),
        );
        assert!(!off.session.preemptive);
        assert_eq!(off.stt.flux.eager_eot_threshold_milli, None);

        let nova = agent_setup("P", None, &json!({}));
        assert!(!nova.session.preemptive && nova.stt.flux.eager_eot_threshold_milli.is_none());
        assert_eq!(stt_route(AudioFormat::Mulaw8k, &nova.stt).0.flux, None);
        let nova = agent_setup(
            "P",
            None,
            &json!({"stt": {"preemptive": true, "preemptive_silence_ms": 300}}),
        );
        assert!(nova.session.preemptive);
        assert_eq!(nova.session.preemptive_stable_ms, Some(300));

        let bad = agent_setup(
            "P",
            None,
            &json!({"stt": {"model": "flux-general-en", "preemptive": "yes",
                "eot_threshold": 0.6, "eager_eot_threshold": 0.7, "eot_timeout_ms": 5,
                "preemptive_silence_ms": 1}}),
        );
        assert_eq!(bad.warnings.len(), 4, "{:?}", bad.warnings);
        let bad = agent_setup("P", None, &json!({"stt": {"eot_threshold": 1.5}}));
        assert_eq!(bad.warnings.len(), 1, "{:?}", bad.warnings);
    }

    #[test]
    fn flux_turn_events_become_inputs() {
        let info = |event, text: &str| SttMessage::TurnInfo {
            event,
            turn_index: 0,
            transcript: text.into(),
            end_of_turn_confidence: 0.5,
            words: vec![],
        };
        assert_eq!(stt_input(info(TurnEvent::StartOfTurn, "")), None);
        assert_eq!(
            stt_input(info(TurnEvent::Update, "hi there")),
            Some(Input::SttInterim {
                text: "hi there".into()
            })
        );
        assert_eq!(
            stt_input(info(TurnEvent::EagerEndOfTurn, "hi there")),
            Some(Input::SttEagerEnd {
                text: "hi there".into()
            })
        );
        assert_eq!(
            stt_input(info(TurnEvent::TurnResumed, "hi there")),
            Some(Input::SttTurnResumed)
        );
        assert_eq!(
            stt_input(info(TurnEvent::EndOfTurn, "hi there")),
            Some(Input::SttEndOfTurn {
                text: "hi there".into()
            })
        );
        assert_eq!(
            stt_input(SttMessage::Connected {
                request_id: "r".into()
            }),
            None
        );
    }

    #[test]
    fn stt_takes_carrier_audio_as_is_except_big_endian() {
        let stt = SttSettings::default();
        let (p, t) = stt_route(AudioFormat::Mulaw8k, &stt);
        assert_eq!(
            (p.encoding, p.sample_rate, t),
            (SttEncoding::Mulaw, 8000, None)
        );
        let (p, t) = stt_route(AudioFormat::Pcm16Le { rate: 16000 }, &stt);
        assert_eq!(
            (p.encoding, p.sample_rate, t),
            (SttEncoding::Linear16, 16000, None)
        );
        let (p, t) = stt_route(AudioFormat::L16Be { rate: 8000 }, &stt);
        assert_eq!(p.encoding, SttEncoding::Linear16);
        assert_eq!(t, Some(AudioFormat::Pcm16Le { rate: 8000 }));
        let (p, _) = stt_route(AudioFormat::Alaw8k, &stt);
        assert_eq!(p.encoding, SttEncoding::Alaw);
        assert_eq!(p.endpointing_ms, Some(300));
    }

    #[test]
    fn stt_messages_become_inputs() {
        let msg = |text: &str, is_final, speech_final| SttMessage::Transcript {
            transcript: text.into(),
            is_final,
            speech_final,
            from_finalize: false,
            confidence: 0.9,
            start: 0.0,
            duration: 1.0,
            words: vec![],
        };
        assert_eq!(stt_input(msg("", false, false)), None);
        assert_eq!(
            stt_input(msg("hel", false, false)),
            Some(Input::SttInterim { text: "hel".into() })
        );
        assert_eq!(
            stt_input(msg("", true, true)),
            Some(Input::SttFinal {
                text: String::new(),
                speech_final: true
            })
        );
        assert_eq!(
            stt_input(SttMessage::UtteranceEnd { last_word_end: 1.0 }),
            Some(Input::UtteranceEnd)
        );
        assert_eq!(
            stt_input(SttMessage::SpeechStarted { timestamp: 1.0 }),
            None
        );
    }

    #[test]
    fn chat_deltas_become_inputs_and_the_body_is_openai_shaped() {
        let call = ToolCall {
            id: "c1".into(),
            name: "end_call".into(),
            arguments: "{}".into(),
        };
        assert_eq!(
            llm_input(3, ChatDelta::ToolCall(call)),
            Some(Input::LlmToolCall {
                turn: 3,
                call: ToolCall {
                    id: "c1".into(),
                    name: "end_call".into(),
                    arguments: "{}".into()
                }
            })
        );
        assert_eq!(
            llm_input(
                3,
                ChatDelta::Done {
                    finish_reason: None
                }
            ),
            Some(Input::LlmDone { turn: 3 })
        );
        let body: Value = serde_json::from_str(&chat_body(
            "m",
            &[Message::User {
                content: "hi".into(),
            }],
            &[json!({"type": "function"})],
        ))
        .unwrap();
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            body["messages"][0],
            json!({"role": "user", "content": "hi"})
        );
        assert_eq!(body["tools"][0]["type"], "function");
        let bare: Value = serde_json::from_str(&chat_body("m", &[], &[])).unwrap();
        assert!(bare.get("tools").is_none());
        assert_eq!(bare["messages"], json!([]));
    }

    #[test]
    fn dtmf_tones_have_the_right_length_and_energy() {
        let samples = dtmf_samples("1w#x", 8000);
        // Two keys (160 ms each) and one pause (500 ms); `x` is skipped.
        assert_eq!(samples.len(), 2 * 1280 + 4000);
        assert!(samples[..800].iter().any(|&s| s.unsigned_abs() > 10_000));
        assert!(samples[800..1280].iter().all(|&s| s == 0));
        assert!(dtmf_samples("", 8000).is_empty());
    }

    fn turn(id: u32, user: Option<&str>, agent: &str, first_audio: Option<u64>) -> Turn {
        Turn {
            id,
            user_text: user.map(str::to_owned),
            agent_text: agent.into(),
            unheard_text: String::new(),
            tool_calls: vec![],
            tool_runs: vec![],
            interrupted: false,
            started_at_ms: 1000 + u64::from(id),
            ended_at_ms: 2000,
            metrics: TurnMetrics {
                first_audio_ms: first_audio,
                ..TurnMetrics::default()
            },
        }
    }

    #[test]
    fn transcript_and_metrics() {
        let mut turns = [
            turn(0, None, "Hello!", Some(5)),
            turn(1, Some("Hours?"), "Nine to five.", Some(40)),
            turn(2, Some("Thanks"), "", Some(60)),
        ];
        turns[1].metrics.preemptive = true;
        turns[1].metrics.preempts_wasted = 2;
        turns[2].metrics.preempts_wasted = 1;
        turns[1].interrupted = true;
        turns[1].unheard_text = "Except Sundays.".into();
        let t = transcript(&turns);
        assert_eq!(
            t.text,
            "Agent: Hello!\nCaller: Hours?\nAgent: Nine to five.\nCaller: Thanks"
        );
        assert_eq!(t.turns[2]["unheard"], "Except Sundays.");
        assert_eq!(t.turns[2]["interrupted"], true);
        assert!(t.turns[0].get("unheard").is_none());
        assert_eq!(t.lines.len(), 4);
        assert_eq!(t.turns[1]["role"], "caller");
        assert_eq!(t.turns[2]["metrics"]["first_audio_ms"], 40);
        let m = metrics_summary(&turns);
        assert_eq!(m["first_audio_ms"]["n"], 2);
        assert_eq!(m["first_audio_ms"]["p50"], 40);
        assert_eq!(m["first_audio_ms"]["p95"], 60);
        assert_eq!(m["preemptive"], json!({"used": 1, "wasted": 3}));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3, 1, 2], 0.99), Some(3));
    }
}
