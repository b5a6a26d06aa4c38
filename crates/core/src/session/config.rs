//! Per-call settings of the conversation: prompts, turn-taking, barge-in and timers.

use serde::{Deserialize, Serialize};

/// Which STT signals end the caller's turn (Deepgram `speech_final` and `UtteranceEnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndOfTurn {
    /// A final result with `speech_final: true` (endpointing silence) ends the turn.
    pub speech_final: bool,
    /// `UtteranceEnd` ends the turn (the backup signal when noise defeats endpointing).
    pub utterance_end: bool,
}

/// Settings of one call's conversation; the edge fills them from the agent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    /// First message of the history; omitted when blank.
    pub system_prompt: String,
    /// Greeting spoken when the stream starts (the agent's `first_message`).
    pub first_message: Option<String>,
    /// Which STT signals end the caller's turn.
    pub end_of_turn: EndOfTurn,
    /// Non-backchannel words a transcript needs to interrupt the agent (at least 1 applies).
    pub min_interrupt_words: usize,
    /// Words that never interrupt (backchannels, fillers), compared case-insensitively.
    pub backchannels: Vec<String>,
    /// After a barge-in on interim words that never become final words, the agent carries on
    /// once this much time has passed since those words; `None` never resumes.
    pub false_interruption_ms: Option<u64>,
    /// Longest wait for the LLM's next token or a tool result before giving up on it.
    pub response_timeout_ms: u64,
    /// Spoken when the LLM fails or times out; the call continues.
    pub fallback_message: String,
    /// Silence (since either side last spoke) before the reminder; `None` disables it.
    pub idle_reminder_ms: Option<u64>,
    /// Spoken when the caller stays silent for `idle_reminder_ms`.
    pub idle_reminder_message: String,
    /// Silence (since either side last spoke, reminder excluded) before hanging up.
    pub idle_hangup_ms: Option<u64>,
    /// Call length from stream start after which the agent says goodbye and hangs up.
    pub max_duration_ms: Option<u64>,
    /// Said before the agent hangs up on its own (idle, max duration, `end_call` without words).
    pub goodbye_message: Option<String>,
    /// Where `transfer_call` sends the caller; the tool is offered only when set.
    pub transfer_to: Option<String>,
    /// Whether `schedule_callback` is offered. Filled from the agent's `callbacks.enabled`
    /// (off by default): a caller must not be able to talk the model into dialling out.
    pub schedule_callback: bool,
    /// Whether `find_slots` and `book_appointment` are offered: the agent has a `calendar`.
    pub appointments: bool,
    /// LLM requests one reply may make after tool results before the fallback line is said.
    pub max_tool_rounds: u32,
    /// Longest wait for the last words before a hang-up or transfer to finish playing.
    pub exit_grace_ms: u64,
    /// Preemptive generation: request the reply on a draft of the caller's turn and hold it
    /// until the turn ends. Filled from the agent's `stt.preemptive`.
    pub preemptive: bool,
    /// Nova: silence after an interim repeated unchanged before the early request; `None`
    /// leaves only Flux's `EagerEndOfTurn` as a draft.
    pub preemptive_stable_ms: Option<u64>,
    /// The agent's tools that call its server (`http_tools`), offered after the built-in ones;
    /// the edge runs them (`RunTool`). Filled from the agent's `http_tools` only.
    pub http_tools: Vec<crate::http_tools::HttpTool>,
}

/// Backchannels and fillers that never interrupt the agent by themselves.
const DEFAULT_BACKCHANNELS: [&str; 15] = [
    "uh-huh", "mm-hmm", "mhm", "mm", "hmm", "uh", "um", "yeah", "yep", "yes", "okay", "ok",
    "right", "sure", "alright",
];

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            system_prompt: String::new(),
            first_message: None,
            end_of_turn: EndOfTurn {
                speech_final: true,
                utterance_end: true,
            },
            min_interrupt_words: 1,
            backchannels: DEFAULT_BACKCHANNELS.map(str::to_owned).to_vec(),
            false_interruption_ms: Some(2_000),
            response_timeout_ms: 8_000,
            fallback_message: "Sorry, I'm having trouble right now. Could you say that again?"
                .to_owned(),
            idle_reminder_ms: Some(10_000),
            idle_reminder_message: "Are you still there?".to_owned(),
            idle_hangup_ms: Some(30_000),
            max_duration_ms: Some(30 * 60 * 1000),
            goodbye_message: Some("Thank you for calling. Goodbye!".to_owned()),
            transfer_to: None,
            schedule_callback: false,
            appointments: false,
            max_tool_rounds: 4,
            exit_grace_ms: 15_000,
            preemptive: false,
            preemptive_stable_ms: None,
            http_tools: Vec::new(),
        }
    }
}

impl SessionConfig {
    /// Whether `word` (already lower-cased, punctuation trimmed) is a backchannel.
    pub(super) fn is_backchannel(&self, word: &str) -> bool {
        self.backchannels.iter().any(|b| b.to_lowercase() == word)
    }

    /// The agent's HTTP tool called `name`, if any.
    pub(super) fn http_tool(&self, name: &str) -> Option<&crate::http_tools::HttpTool> {
        self.http_tools.iter().find(|t| t.name == name)
    }

    /// The transfer number, if a usable one is configured. The API validates it when stored;
    /// this also keeps a number stored before those rules (premium, SIP) from being dialled.
    pub(super) fn transfer_target(&self) -> Option<&str> {
        self.transfer_to
            .as_deref()
            .map(str::trim)
            .filter(|t| crate::dialing::dialable_country(t).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults() {
        let config: SessionConfig =
            serde_json::from_str(r#"{"system_prompt":"Be brief.","min_interrupt_words":2}"#)
                .unwrap();
        assert_eq!(config.system_prompt, "Be brief.");
        assert_eq!(config.min_interrupt_words, 2);
        assert_eq!(config.response_timeout_ms, 8_000);
        assert!(config.end_of_turn.speech_final && config.end_of_turn.utterance_end);
    }

    #[test]
    fn backchannels_compare_case_insensitively() {
        let config = SessionConfig {
            backchannels: vec!["Uh-Huh".into()],
            ..SessionConfig::default()
        };
        assert!(config.is_backchannel("uh-huh"));
        assert!(!config.is_backchannel("stop"));
    }

    #[test]
    fn blank_transfer_number_is_no_transfer() {
        let mut config = SessionConfig::default();
        assert_eq!(config.transfer_target(), None);
        config.transfer_to = Some("  ".into());
        assert_eq!(config.transfer_target(), None);
        config.transfer_to = Some("+14155550100".into());
        assert_eq!(config.transfer_target(), Some("+14155550100"));
        for refused in ["+19005550100", "sip:desk@pbx.example", "anonymous"] {
            config.transfer_to = Some(refused.into());
            assert_eq!(config.transfer_target(), None, "{refused}");
        }
    }
}
