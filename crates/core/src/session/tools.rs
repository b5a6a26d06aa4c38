//! The tools offered to the model, their arguments typed, and what each call means for the call.

use super::history::ToolCall;
use super::{Exit, HangupReason};
use crate::appointments::{MAX_EMAIL_CHARS, MAX_NAME_CHARS, MAX_NOTE_CHARS};
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

/// Ends the call after the agent's last words have played.
pub const END_CALL: &str = "end_call";
/// Transfers the caller to the configured human number.
pub const TRANSFER_CALL: &str = "transfer_call";
/// Schedules a call back; run by the edge (`Action::RunTool`), arguments `start_at`, `note`.
pub const SCHEDULE_CALLBACK: &str = "schedule_callback";
/// Plays DTMF tones (phone menus); argument `digits`.
pub const SEND_DTMF: &str = "send_dtmf";
/// Lists free appointment slots; run by the edge, optional arguments `from`, `to`.
pub const FIND_SLOTS: &str = "find_slots";
/// Books one appointment for the caller; run by the edge, arguments `start_at`, `name`, `note`,
/// `email` (where the invitation goes).
pub const BOOK_APPOINTMENT: &str = "book_appointment";
/// Moves the caller's appointment to another slot; run by the edge, arguments `start_at`,
/// `appointment_id` (optional: the caller's own).
pub const RESCHEDULE_APPOINTMENT: &str = "reschedule_appointment";
/// Cancels the caller's appointment; run by the edge, argument `appointment_id` (optional).
pub const CANCEL_APPOINTMENT: &str = "cancel_appointment";
/// The tools an agent with a calendar is offered, all run by the edge.
pub const BOOKING_TOOLS: [&str; 4] = [
    FIND_SLOTS,
    BOOK_APPOINTMENT,
    RESCHEDULE_APPOINTMENT,
    CANCEL_APPOINTMENT,
];

/// A tool call with its arguments checked: what the model asked for, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// Hang up once the last words have played (arguments ignored).
    EndCall,
    /// Transfer to the configured number; the model names no number (arguments ignored).
    TransferCall,
    /// Schedule one call back to the caller.
    ScheduleCallback {
        start_at: chrono::DateTime<chrono::FixedOffset>,
        note: Option<String>,
    },
    /// Play keypad tones (`w` is a half-second pause), 1 to 32 of them.
    SendDtmf { digits: String },
    /// List free slots starting in `from … to` (each bound optional).
    FindSlots {
        from: Option<chrono::DateTime<chrono::FixedOffset>>,
        to: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// Book the slot starting at `start_at` for the caller.
    BookAppointment {
        start_at: chrono::DateTime<chrono::FixedOffset>,
        name: Option<String>,
        note: Option<String>,
        email: Option<String>,
    },
    /// Move the caller's appointment (`appointment_id`, else their own) to `start_at`.
    RescheduleAppointment {
        start_at: chrono::DateTime<chrono::FixedOffset>,
        appointment_id: Option<String>,
    },
    /// Cancel the caller's appointment (`appointment_id`, else their own).
    CancelAppointment { appointment_id: Option<String> },
}

/// Why a tool call's arguments cannot be used; the text goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ToolError {
    /// The model named a tool that does not exist.
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    /// The arguments are not JSON or miss a required field.
    #[error("arguments are not a JSON object: {0}")]
    BadArguments(String),
    /// `start_at` is not an RFC 3339 date-time.
    #[error("{0:?} is not an RFC 3339 date-time with offset")]
    BadTime(String),
    /// `digits` is not 1 to 32 keypad keys.
    #[error("{DTMF_RULE}")]
    BadDigits,
    /// A text argument is longer than its limit (characters).
    #[error("{0} is longer than {1} characters")]
    TooLong(&'static str, usize),
    /// `email` is not an address an invitation can go to.
    #[error("{0:?} is not an email address; ask the caller to spell it")]
    BadEmail(String),
}

const DTMF_RULE: &str = "digits must be 1 to 32 of 0-9, *, # and w (pause)";

#[derive(Deserialize)]
struct CallbackArgs {
    start_at: String,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
struct SlotsArgs {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

#[derive(Deserialize)]
struct BookingArgs {
    start_at: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

fn time(text: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, ToolError> {
    chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|_| ToolError::BadTime(text.into()))
}

/// `text` trimmed, blank as `None`, refused past `max` characters.
fn bounded(
    text: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, ToolError> {
    let text = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    match text {
        Some(t) if t.chars().count() > max => Err(ToolError::TooLong(field, max)),
        other => Ok(other),
    }
}

/// An optional address, trimmed; one an invitation cannot go to is refused.
fn email(text: Option<String>) -> Result<Option<String>, ToolError> {
    match bounded(text, "email", MAX_EMAIL_CHARS)? {
        Some(e) if !crate::scheduling::request::is_email(&e) => Err(ToolError::BadEmail(e)),
        other => Ok(other),
    }
}

#[derive(Deserialize)]
struct ChangeArgs {
    #[serde(default)]
    start_at: Option<String>,
    #[serde(default)]
    appointment_id: Option<String>,
}

/// Longest `appointment_id` taken from the model (ours are far shorter).
const MAX_ID_CHARS: usize = 64;

#[derive(Deserialize)]
struct DtmfArgs {
    digits: String,
}

impl ToolCall {
    /// The call with its arguments parsed and checked against the tool's rules.
    pub fn tool(&self) -> Result<Tool, ToolError> {
        fn args<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ToolError> {
            serde_json::from_str(json).map_err(|e| ToolError::BadArguments(e.to_string()))
        }
        match self.name.as_str() {
            END_CALL => Ok(Tool::EndCall),
            TRANSFER_CALL => Ok(Tool::TransferCall),
            SCHEDULE_CALLBACK => {
                let a: CallbackArgs = args(&self.arguments)?;
                let start_at = chrono::DateTime::parse_from_rfc3339(a.start_at.trim())
                    .map_err(|_| ToolError::BadTime(a.start_at.clone()))?;
                Ok(Tool::ScheduleCallback {
                    start_at,
                    note: a.note,
                })
            }
            SEND_DTMF => {
                let a: DtmfArgs = args(&self.arguments).map_err(|_| ToolError::BadDigits)?;
                let valid = (1..=32).contains(&a.digits.len())
                    && a.digits
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'w' | 'W'));
                if !valid {
                    return Err(ToolError::BadDigits);
                }
                Ok(Tool::SendDtmf { digits: a.digits })
            }
            FIND_SLOTS => {
                // An empty argument string is a call without arguments.
                let a: SlotsArgs = args(if self.arguments.trim().is_empty() {
                    "{}"
                } else {
                    &self.arguments
                })?;
                Ok(Tool::FindSlots {
                    from: a.from.as_deref().map(time).transpose()?,
                    to: a.to.as_deref().map(time).transpose()?,
                })
            }
            BOOK_APPOINTMENT => {
                let a: BookingArgs = args(&self.arguments)?;
                Ok(Tool::BookAppointment {
                    start_at: time(&a.start_at)?,
                    name: bounded(a.name, "name", MAX_NAME_CHARS)?,
                    note: bounded(a.note, "note", MAX_NOTE_CHARS)?,
                    email: email(a.email)?,
                })
            }
            RESCHEDULE_APPOINTMENT => {
                let a: ChangeArgs = args(&self.arguments)?;
                let start_at = a
                    .start_at
                    .ok_or_else(|| ToolError::BadArguments("start_at is required".into()))?;
                Ok(Tool::RescheduleAppointment {
                    start_at: time(&start_at)?,
                    appointment_id: bounded(a.appointment_id, "appointment_id", MAX_ID_CHARS)?,
                })
            }
            CANCEL_APPOINTMENT => {
                // An empty argument string is a call without arguments.
                let a: ChangeArgs = args(if self.arguments.trim().is_empty() {
                    "{}"
                } else {
                    &self.arguments
                })?;
                Ok(Tool::CancelAppointment {
                    appointment_id: bounded(a.appointment_id, "appointment_id", MAX_ID_CHARS)?,
                })
            }
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }
}

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
    match call.tool() {
        Ok(Tool::EndCall) => ToolUse::Exit(Exit::Hangup(HangupReason::AgentEnded)),
        // The number comes from configuration only: a caller must not be able to talk the
        // model into dialing an arbitrary (premium) number.
        Ok(Tool::TransferCall) => match transfer_to {
            Some(to) => ToolUse::Exit(Exit::Transfer(to.to_owned())),
            None => ToolUse::Rejected("transfer is not available on this call"),
        },
        Ok(Tool::SendDtmf { digits }) => ToolUse::Dtmf(digits),
        // Offered only when the agent enables it, but always decided by the edge: whether the
        // agent allows it, the number, the time, one per call and the daily cap are checked
        // (race-safe, in D1) and every refusal is recorded on the call, so an attempt to make
        // the agent dial out is visible even when the model calls a tool it was not offered.
        // Bad arguments are answered there too, with the reason.
        Ok(Tool::ScheduleCallback { .. }) => ToolUse::Edge,
        Err(_) if call.name == SCHEDULE_CALLBACK => ToolUse::Edge,
        // Same for the booking tools: the edge reads the agent's calendar at run time (an agent
        // without one refuses there) and answers bad arguments with the reason.
        Ok(
            Tool::FindSlots { .. }
            | Tool::BookAppointment { .. }
            | Tool::RescheduleAppointment { .. }
            | Tool::CancelAppointment { .. },
        ) => ToolUse::Edge,
        Err(_) if BOOKING_TOOLS.contains(&call.name.as_str()) => ToolUse::Edge,
        Err(ToolError::UnknownTool(_)) => ToolUse::Rejected("unknown tool"),
        Err(_) => ToolUse::Rejected(DTMF_RULE),
    }
}

/// The `tools` array of the chat-completions request; `transfer_call`, `schedule_callback` and
/// the booking tools only when the agent has them.
pub(super) fn specs(transfer: bool, callbacks: bool, appointments: bool) -> Vec<Value> {
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
    if appointments {
        specs.push(function(
            FIND_SLOTS,
            "List free appointment slots (a few, earliest first). Offer the caller some of them.",
            json!({
                "type": "object",
                "properties": {
                    "from": {"type": "string", "description": "Earliest start, RFC 3339 with offset; default now"},
                    "to": {"type": "string", "description": "Latest start, RFC 3339 with offset; default the end of the booking horizon"}
                }
            }),
        ));
        specs.push(function(
            BOOK_APPOINTMENT,
            "Book one of the free slots find_slots gave, once the caller has chosen it.",
            json!({
                "type": "object",
                "properties": {
                    "start_at": {"type": "string", "description": "The slot's start exactly as find_slots gave it"},
                    "name": {"type": "string", "description": "The caller's name"},
                    "note": {"type": "string", "description": "What the appointment is about"},
                    "email": {"type": "string", "description": "The caller's email address for the calendar invitation, if they gave one; spell it back to them first"}
                },
                "required": ["start_at"]
            }),
        ));
        specs.push(function(
            RESCHEDULE_APPOINTMENT,
            "Move the caller's appointment to another free slot find_slots gave, once they have chosen it.",
            json!({
                "type": "object",
                "properties": {
                    "start_at": {"type": "string", "description": "The new slot's start exactly as find_slots gave it"},
                    "appointment_id": {"type": "string", "description": "Only if the caller has several appointments: which one"}
                },
                "required": ["start_at"]
            }),
        ));
        specs.push(function(
            CANCEL_APPOINTMENT,
            "Cancel the caller's appointment, once they have confirmed they want it canceled.",
            json!({
                "type": "object",
                "properties": {
                    "appointment_id": {"type": "string", "description": "Only if the caller has several appointments: which one"}
                }
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
    fn arguments_are_typed() {
        assert_eq!(call(END_CALL, "not json").tool(), Ok(Tool::EndCall));
        assert_eq!(
            call(TRANSFER_CALL, r#"{"to":"+1900"}"#).tool(),
            Ok(Tool::TransferCall),
            "the model cannot name the transfer number"
        );
        match call(
            SCHEDULE_CALLBACK,
            r#"{"start_at":"2025-03-01T15:00:00+01:00","note":"quote"}"#,
        )
        .tool()
        .unwrap()
        {
            Tool::ScheduleCallback { start_at, note } => {
                assert_eq!(start_at.to_rfc3339(), "2025-03-01T15:00:00+01:00");
                assert_eq!(note.as_deref(), Some("quote"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            call(SCHEDULE_CALLBACK, r#"{"start_at":"tomorrow 3pm"}"#).tool(),
            Err(ToolError::BadTime(t)) if t == "tomorrow 3pm"
        ));
        assert!(matches!(
            call(SCHEDULE_CALLBACK, "").tool(),
            Err(ToolError::BadArguments(_))
        ));
        assert_eq!(
            call(SEND_DTMF, r#"{"digits":"12w#*"}"#).tool(),
            Ok(Tool::SendDtmf {
                digits: "12w#*".into()
            })
        );
        assert_eq!(
            call(SEND_DTMF, &format!(r#"{{"digits":"{}"}}"#, "1".repeat(33))).tool(),
            Err(ToolError::BadDigits)
        );
        assert_eq!(
            call("rm_rf", "{}").tool(),
            Err(ToolError::UnknownTool("rm_rf".into()))
        );
    }

    #[test]
    fn callback_calls_go_to_the_edge_even_with_bad_arguments() {
        for args in [r#"{"start_at":"2025-03-01T15:00:00Z"}"#, "{", "{}"] {
            assert!(matches!(
                classify(&call(SCHEDULE_CALLBACK, args), None),
                ToolUse::Edge
            ));
        }
    }

    #[test]
    fn booking_arguments_are_typed_and_bounded() {
        assert_eq!(
            call(FIND_SLOTS, "").tool(),
            Ok(Tool::FindSlots {
                from: None,
                to: None
            })
        );
        assert!(matches!(
            call(FIND_SLOTS, r#"{"from":"next week"}"#).tool(),
            Err(ToolError::BadTime(_))
        ));
        match call(
            BOOK_APPOINTMENT,
            r#"{"start_at":"2026-01-05T10:00:00+01:00","name":"  Ada ","note":"","email":" ada@example.com "}"#,
        )
        .tool()
        .unwrap()
        {
            Tool::BookAppointment {
                start_at,
                name,
                note,
                email,
            } => {
                assert_eq!(start_at.timestamp(), 1_767_603_600);
                assert_eq!(name.as_deref(), Some("Ada"));
                assert_eq!(note, None);
                assert_eq!(email.as_deref(), Some("ada@example.com"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let long = format!(
            r#"{{"start_at":"2026-01-05T10:00:00Z","note":"{}"}}"#,
            "x".repeat(MAX_NOTE_CHARS + 1)
        );
        assert_eq!(
            call(BOOK_APPOINTMENT, &long).tool(),
            Err(ToolError::TooLong("note", MAX_NOTE_CHARS))
        );
        // An address an invitation cannot go to (or a header smuggled in one) is refused.
        for bad in [
            "ada at example",
            "a@b.example\r\nBcc: x@evil.example",
            "<a@b.example>",
        ] {
            let args = json!({"start_at": "2026-01-05T10:00:00Z", "email": bad}).to_string();
            assert_eq!(
                call(BOOK_APPOINTMENT, &args).tool(),
                Err(ToolError::BadEmail(bad.trim().to_owned()))
            );
        }
        assert_eq!(
            call(CANCEL_APPOINTMENT, "").tool(),
            Ok(Tool::CancelAppointment {
                appointment_id: None
            })
        );
        assert_eq!(
            call(CANCEL_APPOINTMENT, r#"{"appointment_id":" ap_1 "}"#).tool(),
            Ok(Tool::CancelAppointment {
                appointment_id: Some("ap_1".into())
            })
        );
        assert!(matches!(
            call(RESCHEDULE_APPOINTMENT, "{}").tool(),
            Err(ToolError::BadArguments(_))
        ));
        match call(
            RESCHEDULE_APPOINTMENT,
            r#"{"start_at":"2026-01-05T10:00:00+01:00"}"#,
        )
        .tool()
        {
            Ok(Tool::RescheduleAppointment {
                start_at,
                appointment_id: None,
            }) => assert_eq!(start_at.timestamp(), 1_767_603_600),
            other => panic!("unexpected {other:?}"),
        }
        let long_id = json!({"appointment_id": "a".repeat(65)}).to_string();
        assert_eq!(
            call(CANCEL_APPOINTMENT, &long_id).tool(),
            Err(ToolError::TooLong("appointment_id", 64))
        );
        for name in BOOKING_TOOLS {
            assert!(matches!(classify(&call(name, "{"), None), ToolUse::Edge));
        }
        for args in ["{", "{}", &long] {
            assert!(matches!(
                classify(&call(BOOK_APPOINTMENT, args), None),
                ToolUse::Edge
            ));
        }
        assert_eq!(
            names(specs(false, false, true)),
            [
                END_CALL,
                FIND_SLOTS,
                BOOK_APPOINTMENT,
                RESCHEDULE_APPOINTMENT,
                CANCEL_APPOINTMENT,
                SEND_DTMF
            ]
        );
    }

    fn names(specs: Vec<Value>) -> Vec<String> {
        specs
            .iter()
            .map(|s| s["function"]["name"].as_str().unwrap().to_owned())
            .collect()
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
        assert_eq!(names(specs(false, false, false)), [END_CALL, SEND_DTMF]);
        assert!(names(specs(true, false, false)).contains(&TRANSFER_CALL.to_owned()));
        assert_eq!(
            names(specs(false, true, false)),
            [END_CALL, SCHEDULE_CALLBACK, SEND_DTMF]
        );
    }
}
