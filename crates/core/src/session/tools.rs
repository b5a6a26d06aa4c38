//! The tools offered to the model, and what each call means for the call.

use super::history::ToolCall;
use super::{Exit, HangupReason};
use serde_json::{json, Value};

/// Ends the call after the agent's last words have played.
pub const END_CALL: &str = "end_call";
/// Transfers the caller to the configured human number.
pub const TRANSFER_CALL: &str = "transfer_call";
/// Schedules a call back; run by the edge (`Action::RunTool`), arguments `start_at`, `note`.
pub const SCHEDULE_CALLBACK: &str = "schedule_callback";
/// Plays DTMF tones (phone menus); argument `digits`.
pub const SEND_DTMF: &str = "send_dtmf";

/// What a tool call asks for.
pub(super) enum ToolUse {
    /// Leave the call once the words said so far have played.
    Exit(Exit),
    /// Play these validated digits.
    Dtmf(String),
    /// The edge runs it and reports a `ToolResult`.
    Edge,
    /// Refused; the reason goes back to the model.
    Rejected(&'static str),
}

/// Decides what `call` means; `transfer_to` is the configured transfer number.
pub(super) fn classify(call: &ToolCall, transfer_to: Option<&str>) -> ToolUse {
    match call.name.as_str() {
        END_CALL => ToolUse::Exit(Exit::Hangup(HangupReason::AgentEnded)),
        // The number comes from configuration only: a caller must not be able to talk the
        // model into dialing an arbitrary (premium) number.
        TRANSFER_CALL => match transfer_to {
            Some(to) => ToolUse::Exit(Exit::Transfer(to.to_owned())),
            None => ToolUse::Rejected("transfer is not available on this call"),
        },
        SEND_DTMF => match dtmf_digits(&call.arguments) {
            Some(digits) => ToolUse::Dtmf(digits),
            None => ToolUse::Rejected("digits must be 1 to 32 of 0-9, *, # and w (pause)"),
        },
        // Offered only when the agent enables it, but always decided by the edge: whether the
        // agent allows it, the number, the time, one per call and the daily cap are checked
        // (race-safe, in D1) and every refusal is recorded on the call, so an attempt to make
        // the agent dial out is visible even when the model calls a tool it was not offered.
        SCHEDULE_CALLBACK => ToolUse::Edge,
        _ => ToolUse::Rejected("unknown tool"),
    }
}

/// The `tools` array of the chat-completions request; `transfer_call` and `schedule_callback`
/// only when the agent has them.
pub(super) fn specs(transfer: bool, callbacks: bool) -> Vec<Value> {
    let mut specs = vec![function(
        END_CALL,
        "End the call. Say goodbye in the same reply, before calling this.",
        json!({"type": "object", "properties": {}}),
    )];
    if callbacks {
        specs.push(function(
            SCHEDULE_CALLBACK,
            "Schedule one call back to the caller at a time they agreed to, between 1 minute and 7 days from now.",
            json!({
                "type": "object",
                "properties": {
                    "start_at": {"type": "string",
                                 "description": "RFC 3339 date-time with offset, e.g. 2025-06-01T15:00:00+02:00"},
                    "note": {"type": "string", "description": "What the call back is about"}
                },
                "required": ["start_at"]
            }),
        ));
    }
    specs.push(function(
        SEND_DTMF,
        "Press keys on the phone keypad, e.g. to navigate a phone menu.",
        json!({
            "type": "object",
            "properties": {"digits": {"type": "string", "pattern": "^[0-9*#wW]{1,32}$",
                                      "description": "Keys to press; w waits half a second"}},
            "required": ["digits"]
        }),
    ));
    if transfer {
        specs.push(function(
            TRANSFER_CALL,
            "Transfer the caller to a human. Tell them first, in the same reply.",
            json!({"type": "object", "properties": {}}),
        ));
    }
    specs
}

fn function(name: &str, description: &str, parameters: Value) -> Value {
    json!({"type": "function",
           "function": {"name": name, "description": description, "parameters": parameters}})
}

/// The `digits` argument, if it is a valid DTMF string.
fn dtmf_digits(arguments: &str) -> Option<String> {
    let args: Value = serde_json::from_str(arguments).ok()?;
    let digits = args.get("digits")?.as_str()?;
    let valid = (1..=32).contains(&digits.len())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'w' | 'W'));
    valid.then(|| digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn dtmf_digits_are_validated() {
        assert!(matches!(
            classify(&call(SEND_DTMF, r#"{"digits":"1w2#"}"#), None),
            ToolUse::Dtmf(d) if d == "1w2#"
        ));
        for bad in [
            r#"{"digits":""}"#,
            r#"{"digits":"12a"}"#,
            "{",
            r#"{"digits":5}"#,
        ] {
            assert!(matches!(
                classify(&call(SEND_DTMF, bad), None),
                ToolUse::Rejected(_)
            ));
        }
    }

    #[test]
    fn transfer_needs_a_configured_number() {
        assert!(matches!(
            classify(&call(TRANSFER_CALL, r#"{"to":"+1900"}"#), Some("+14155550100")),
            ToolUse::Exit(Exit::Transfer(to)) if to == "+14155550100"
        ));
        assert!(matches!(
            classify(&call(TRANSFER_CALL, "{}"), None),
            ToolUse::Rejected(_)
        ));
        assert!(matches!(
            classify(&call("rm_rf", "{}"), None),
            ToolUse::Rejected("unknown tool")
        ));
    }

    #[test]
    fn transfer_is_offered_only_when_possible() {
        let names = |specs: Vec<Value>| -> Vec<String> {
            specs
                .iter()
                .map(|s| s["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names(specs(false, false)), [END_CALL, SEND_DTMF]);
        assert!(names(specs(true, false)).contains(&TRANSFER_CALL.to_owned()));
        assert_eq!(
            names(specs(false, true)),
            [END_CALL, SCHEDULE_CALLBACK, SEND_DTMF]
        );
    }
}
