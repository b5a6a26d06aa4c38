//! The agent's side of a turn (its LLM rounds, spoken segments and their playout marks) and the
//! record persisted when the turn ends.

use super::history::{Message, ToolCall};
use super::text::SentenceSplitter;
use super::{Action, Exit};
use serde::{Deserialize, Serialize};

/// A finished turn: what the caller said and what of the agent's answer they heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Turn number; also the `turn` of the actions and inputs that belonged to it.
    pub id: u32,
    /// The caller's words that started it; `None` for greetings, reminders, resumes, goodbyes.
    pub user_text: Option<String>,
    /// What the caller heard of the agent's answer (whole sentences whose marks echoed).
    pub agent_text: String,
    /// What the agent said that the caller never heard: sentences a barge-in (or a hang-up, a
    /// time limit, a TTS failure) cut before their marks echoed. The live view and the stored
    /// transcript mark it as cut; it never reaches the LLM history or the transcript text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unheard_text: String,
    /// Tools the model called (and that were run) during the turn.
    pub tool_calls: Vec<ToolCall>,
    /// The tools the edge ran (`RunTool`) during the turn: result and latency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_runs: Vec<ToolRecord>,
    /// Cut short by a barge-in, the caller hanging up or a time limit.
    pub interrupted: bool,
    /// End of the caller's speech (the end-of-turn signal), or when the agent began on its own.
    pub started_at_ms: u64,
    /// When the turn ended.
    pub ended_at_ms: u64,
    /// Latencies.
    pub metrics: TurnMetrics,
}

/// A tool the edge ran, for the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// The model's call id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them (at most 1000 characters).
    pub arguments: String,
    /// What the model read back (at most 1000 characters); `None` if no result came.
    pub result: Option<String>,
    /// When the run was asked for.
    pub started_at_ms: u64,
    /// Run asked for → result; `None` if no result came (timeout, barge-in, restart).
    pub latency_ms: Option<u64>,
}

/// Latencies of one turn in milliseconds; `None` when the step did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnMetrics {
    /// Turn start → first audio frame sent to the carrier.
    pub first_audio_ms: Option<u64>,
    /// Turn start → the mark after the first spoken segment echoed (it finished playing).
    pub first_mark_ms: Option<u64>,
    /// First LLM request → first token.
    pub llm_first_token_ms: Option<u64>,
    /// `Speak` → first audio of that segment, for the turn's first audio.
    pub tts_first_byte_ms: Option<u64>,
    /// The reply was requested on a draft of the caller's turn, before it ended.
    #[serde(default)]
    pub preemptive: bool,
    /// Early replies dropped unheard during the caller's turn (they went on, or said else).
    #[serde(default)]
    pub preempts_wasted: u32,
}

/// The mark sent after a segment's audio: `t{turn}-s{segment}`.
pub(super) fn mark_name(turn: u32, segment: usize) -> String {
    format!("t{turn}-s{segment}")
}

/// Tool message content for a call whose result never came (barge-in, restart, timeout).
const NO_RESULT: &str =
    r#"{"error":"no result: the call was interrupted before the tool answered"}"#;

/// The agent's reply in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Reply {
    pub(super) id: u32,
    pub(super) user_text: Option<String>,
    pub(super) started_ms: u64,
    /// Reminders do not restart the idle clock, so the idle hang-up still comes.
    pub(super) is_reminder: bool,
    pub(super) llm_in_flight: bool,
    pub(super) llm_requests: u32,
    /// When waiting for the LLM's next token or a tool result gives up.
    pub(super) deadline_ms: u64,
    /// Streamed LLM text not yet ending in a full sentence.
    pub(super) pending_text: SentenceSplitter,
    pub(super) segments: Vec<Segment>,
    /// Tool calls per LLM round; the last round is the current one, never absent.
    pub(super) rounds: Vec<Vec<ToolRun>>,
    pub(super) exit: Option<PendingExit>,
    pub(super) timing: Timing,
    /// The filler line still to say if the round's tools are not done by its time.
    #[serde(default)]
    pub(super) filler: Option<Filler>,
}

/// One sentence of the reply, one TTS request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Segment {
    pub(super) text: String,
    /// The LLM round that produced it.
    pub(super) round: usize,
    pub(super) requested_ms: u64,
    pub(super) state: SegmentState,
}

/// Where a segment's audio is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum SegmentState {
    /// TTS requested; `audio_sent` once some of its audio went to the carrier.
    Synthesizing { audio_sent: bool },
    /// All audio sent, mark sent, echo awaited.
    Playing,
    /// Its mark echoed before any clear: the caller heard it all.
    Heard,
    /// Never (fully) played: cleared, cancelled, failed or silent.
    Lost,
}

/// A tool call and its result once known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ToolRun {
    pub(super) call: ToolCall,
    pub(super) result: Option<String>,
    /// When the edge was asked to run it (`RunTool`); `None` for tools decided in the core.
    #[serde(default)]
    pub(super) started_ms: Option<u64>,
    /// Its result came this long after `started_ms`.
    #[serde(default)]
    pub(super) latency_ms: Option<u64>,
}

/// The line said while an edge tool runs long, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Filler {
    pub(super) at_ms: u64,
    pub(super) text: String,
}

/// How the call ends once the reply has played, and when to stop waiting for that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PendingExit {
    pub(super) exit: Exit,
    pub(super) deadline_ms: u64,
}

/// Absolute times of the steps the metrics measure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Timing {
    pub(super) llm_started_ms: Option<u64>,
    pub(super) first_token_ms: Option<u64>,
    pub(super) first_audio_ms: Option<u64>,
    pub(super) first_mark_ms: Option<u64>,
    pub(super) tts_first_byte_ms: Option<u64>,
    pub(super) preemptive: bool,
    pub(super) preempts_wasted: u32,
}

impl Reply {
    /// An empty reply with one (empty) round.
    pub(super) fn new(id: u32, now_ms: u64, user_text: Option<String>, is_reminder: bool) -> Self {
        Reply {
            id,
            user_text,
            started_ms: now_ms,
            is_reminder,
            llm_in_flight: false,
            llm_requests: 0,
            deadline_ms: now_ms,
            pending_text: SentenceSplitter::default(),
            segments: Vec::new(),
            rounds: vec![Vec::new()],
            exit: None,
            timing: Timing::default(),
            filler: None,
        }
    }

    /// Index of the current LLM round.
    pub(super) fn round(&self) -> usize {
        self.rounds.len().saturating_sub(1)
    }

    /// Adds a segment to the current round and returns the TTS request for it.
    pub(super) fn speak(&mut self, text: String, now_ms: u64) -> Action {
        let segment = self.segments.len();
        self.segments.push(Segment {
            text: text.clone(),
            round: self.round(),
            requested_ms: now_ms,
            state: SegmentState::Synthesizing { audio_sent: false },
        });
        Action::Speak {
            turn: self.id,
            segment,
            text,
        }
    }

    /// Whether a tool of the current round still owes its result.
    pub(super) fn tools_pending(&self) -> bool {
        self.rounds
            .last()
            .is_some_and(|tools| tools.iter().any(|t| t.result.is_none()))
    }

    /// Whether the reply waits on the LLM or on a tool it needs before going on.
    pub(super) fn waiting(&self) -> bool {
        self.llm_in_flight || (self.exit.is_none() && self.tools_pending())
    }

    /// Whether every segment has played or is lost.
    pub(super) fn settled(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s.state, SegmentState::Heard | SegmentState::Lost))
    }

    /// Whether some TTS request is still running.
    pub(super) fn synthesizing(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s.state, SegmentState::Synthesizing { .. }))
    }

    /// Stops listening to the LLM: its unspoken text and unrun tool calls are dropped.
    /// Returns whether a request was in flight.
    pub(super) fn abandon_llm(&mut self) -> bool {
        if !self.llm_in_flight {
            return false;
        }
        self.llm_in_flight = false;
        self.pending_text.clear();
        if let Some(tools) = self.rounds.last_mut() {
            tools.clear();
        }
        true
    }

    /// Marks every segment not yet heard as lost.
    pub(super) fn lose_unheard(&mut self) {
        for segment in &mut self.segments {
            if segment.state != SegmentState::Heard {
                segment.state = SegmentState::Lost;
            }
        }
    }

    /// Marks every segment still in synthesis as lost.
    pub(super) fn lose_synthesizing(&mut self) {
        for segment in &mut self.segments {
            if matches!(segment.state, SegmentState::Synthesizing { .. }) {
                segment.state = SegmentState::Lost;
            }
        }
    }

    /// Gives every pending tool call of the current round this result.
    pub(super) fn settle_tools(&mut self, result: &str) {
        if let Some(tools) = self.rounds.last_mut() {
            for tool in tools.iter_mut().filter(|t| t.result.is_none()) {
                tool.result = Some(result.to_owned());
            }
        }
    }

    /// The reply as history messages: per round, an assistant message (its text, its tool
    /// calls) followed by one tool message per call. With `heard_only`, text the caller did
    /// not hear is left out; tool calls stay, they happened.
    pub(super) fn render(&self, heard_only: bool) -> Vec<Message> {
        let mut messages = Vec::new();
        for (round, tools) in self.rounds.iter().enumerate() {
            let text =
                self.text(|s| s.round == round && (!heard_only || s.state == SegmentState::Heard));
            if text.is_empty() && tools.is_empty() {
                continue;
            }
            messages.push(Message::Assistant {
                content: (!text.is_empty()).then_some(text),
                tool_calls: tools.iter().map(|t| t.call.clone()).collect(),
            });
            messages.extend(tools.iter().map(|t| Message::Tool {
                tool_call_id: t.call.id.clone(),
                content: t.result.clone().unwrap_or_else(|| NO_RESULT.to_owned()),
            }));
        }
        messages
    }

    fn text(&self, include: impl Fn(&Segment) -> bool) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .filter(|s| include(s))
            .map(|s| s.text.as_str())
            .collect();
        parts.join(" ")
    }

    /// The record of the finished reply.
    pub(super) fn into_turn(self, now_ms: u64, interrupted: bool) -> Turn {
        let since_start = |t: Option<u64>| t.map(|t| t.saturating_sub(self.started_ms));
        let timing = self.timing;
        Turn {
            id: self.id,
            agent_text: self.text(|s| s.state == SegmentState::Heard),
            unheard_text: self.text(|s| s.state == SegmentState::Lost),
            tool_calls: self
                .rounds
                .iter()
                .flatten()
                .map(|t| t.call.clone())
                .collect(),
            tool_runs: self
                .rounds
                .iter()
                .flatten()
                .filter_map(|t| {
                    let started_at_ms = t.started_ms?;
                    let cap = |s: &str| s.chars().take(1000).collect::<String>();
                    Some(ToolRecord {
                        id: t.call.id.clone(),
                        name: t.call.name.clone(),
                        arguments: cap(&t.call.arguments),
                        result: t.latency_ms.and(t.result.as_deref()).map(cap),
                        started_at_ms,
                        latency_ms: t.latency_ms,
                    })
                })
                .collect(),
            interrupted,
            started_at_ms: self.started_ms,
            ended_at_ms: now_ms,
            metrics: TurnMetrics {
                first_audio_ms: since_start(timing.first_audio_ms),
                first_mark_ms: since_start(timing.first_mark_ms),
                llm_first_token_ms: timing
                    .first_token_ms
                    .zip(timing.llm_started_ms)
                    .map(|(token, start)| token.saturating_sub(start)),
                tts_first_byte_ms: timing.tts_first_byte_ms,
                preemptive: timing.preemptive,
                preempts_wasted: timing.preempts_wasted,
            },
            user_text: self.user_text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_with(states: &[(u32, SegmentState)]) -> Reply {
        let mut reply = Reply::new(3, 100, Some("hi".into()), false);
        for (i, (round, state)) in states.iter().enumerate() {
            while reply.rounds.len() <= *round as usize {
                reply.rounds.push(Vec::new());
            }
            reply.speak(format!("S{i}."), 100);
            if let Some(segment) = reply.segments.last_mut() {
                segment.state = *state;
            }
        }
        reply
    }

    #[test]
    fn render_keeps_only_heard_text_but_all_tool_calls() {
        let mut reply = reply_with(&[
            (0, SegmentState::Heard),
            (0, SegmentState::Lost),
            (1, SegmentState::Playing),
        ]);
        reply.rounds[0].push(ToolRun {
            call: ToolCall {
                id: "c1".into(),
                name: "schedule_callback".into(),
                arguments: "{}".into(),
            },
            result: None,
            started_ms: None,
            latency_ms: None,
        });
        let heard = reply.render(true);
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert!(matches!(&heard[0],
            Message::Assistant { content: Some(c), tool_calls } if c == "S0." && tool_calls.len() == 1));
        assert!(matches!(&heard[1],
            Message::Tool { tool_call_id, content } if tool_call_id == "c1" && content == NO_RESULT));
        let all = reply.render(false);
        assert!(matches!(&all[0], Message::Assistant { content: Some(c), .. } if c == "S0. S1."));
        assert!(matches!(&all[2], Message::Assistant { content: Some(c), .. } if c == "S2."));
    }

    #[test]
    fn turn_record_measures_from_turn_start() {
        let mut reply = reply_with(&[(0, SegmentState::Heard), (0, SegmentState::Lost)]);
        reply.timing = Timing {
            llm_started_ms: Some(100),
            first_token_ms: Some(350),
            first_audio_ms: Some(600),
            first_mark_ms: Some(1_900),
            tts_first_byte_ms: Some(180),
            ..Timing::default()
        };
        let turn = reply.into_turn(2_000, true);
        assert_eq!(turn.agent_text, "S0.");
        assert_eq!(turn.unheard_text, "S1.");
        assert_eq!(turn.user_text.as_deref(), Some("hi"));
        assert_eq!(
            turn.metrics,
            TurnMetrics {
                first_audio_ms: Some(500),
                first_mark_ms: Some(1_800),
                llm_first_token_ms: Some(250),
                tts_first_byte_ms: Some(180),
                ..TurnMetrics::default()
            }
        );
        assert_eq!((turn.started_at_ms, turn.ended_at_ms), (100, 2_000));
    }

    #[test]
    fn unheard_text_is_sent_only_when_something_was_cut_and_old_records_still_read() {
        let whole = reply_with(&[(0, SegmentState::Heard)]).into_turn(2_000, false);
        let json = serde_json::to_value(&whole).unwrap();
        assert!(json.get("unheard_text").is_none(), "{json}");
        // A turn stored before the field existed.
        let back: Turn = serde_json::from_value(json).unwrap();
        assert_eq!(back, whole);
        let cut = reply_with(&[
            (0, SegmentState::Heard),
            (0, SegmentState::Lost),
            (0, SegmentState::Lost),
        ])
        .into_turn(2_000, true);
        assert_eq!(
            serde_json::to_value(&cut).unwrap()["unheard_text"],
            "S1. S2."
        );
    }
}
