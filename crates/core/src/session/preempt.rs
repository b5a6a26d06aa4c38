//! Preemptive generation: the reply requested on a draft of the caller's turn (Flux
//! `EagerEndOfTurn`, or a Nova interim seen twice unchanged and then silence), held unheard until
//! the turn is final. The same words (case, punctuation and spacing aside) commit it; anything
//! else drops it.

use super::history::ToolCall;
use super::text;
use serde::{Deserialize, Serialize};

/// LLM output of a held reply, replayed in order when it is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Held {
    Text(String),
    Tool(ToolCall),
    Done,
}

/// The reply requested early, on `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Preempt {
    /// The turn id of its `StartLlm`; the reply keeps it when committed.
    pub(super) turn: u32,
    /// The draft transcript it answers.
    pub(super) text: String,
    pub(super) started_ms: u64,
    pub(super) first_token_ms: Option<u64>,
    /// Whether its request is still streaming (a finished one needs no `CancelLlm`).
    pub(super) in_flight: bool,
    pub(super) held: Vec<Held>,
}

impl Preempt {
    /// Whether the caller's final words are the ones this reply answers.
    pub(super) fn answers(&self, final_text: &str) -> bool {
        same_words(&self.text, final_text)
    }
}

/// Nova: the caller's turn so far as of the latest interim, and whether an interim repeated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StableInterim {
    pub(super) text: String,
    pub(super) seen_ms: u64,
    pub(super) repeated: bool,
}

/// Whether two transcripts say the same words, ignoring case, punctuation and whitespace.
pub(super) fn same_words(a: &str, b: &str) -> bool {
    text::words(a) == text::words(b)
}

/// `head` and `tail` joined by one space (either may be empty).
pub(super) fn join(head: &str, tail: &str) -> String {
    match (head.trim(), tail.trim()) {
        ("", t) => t.to_owned(),
        (h, "") => h.to_owned(),
        (h, t) => format!("{h} {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_compare_without_case_punctuation_or_spacing() {
        assert!(same_words(
            "Book a table for two.",
            "book a  table, for two"
        ));
        assert!(!same_words("Book a table", "Book a table for two"));
        assert!(!same_words("", "hi"));
        assert_eq!(join("I want", " a table "), "I want a table");
        assert_eq!(join("", "hi"), "hi");
        assert_eq!(join("hi", ""), "hi");
    }
}
