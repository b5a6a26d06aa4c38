//! Text messages: the opt-out keywords and their carrier-standard replies, the suppression
//! list's input, and outbound message requests.

use crate::scheduling::request::{is_e164, FieldError};
use serde_json::{Map, Value};

/// The longest body a message may have: 10 concatenated segments of 160 GSM-7 characters, the
/// most Twilio accepts (`Body` up to 1600 characters) and what Telnyx splits into parts.
pub const MAX_BODY_CHARS: usize = 1600;

/// What an inbound message that is exactly a keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// `STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`, `QUIT`: no more messages or calls.
    OptOut,
    /// `START`, `YES`, `UNSTOP`: messages and calls allowed again.
    OptIn,
    /// `HELP`, `INFO`: how to opt out.
    Help,
}

impl Keyword {
    /// The keyword a message body is, if it is one: the whole body, ignoring case and the
    /// surrounding whitespace (a sentence that merely contains "stop" is an ordinary message,
    /// as the CTIA guidelines and the carriers' own keyword handling treat it).
    pub fn of(body: &str) -> Option<Keyword> {
        let word = body.trim().to_ascii_uppercase();
        match word.as_str() {
            "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => Some(Keyword::OptOut),
            "START" | "YES" | "UNSTOP" => Some(Keyword::OptIn),
            "HELP" | "INFO" => Some(Keyword::Help),
            _ => None,
        }
    }

    /// The carrier-standard reply (the texts Twilio's default opt-out handling sends).
    pub fn reply(self) -> &'static str {
        match self {
            Keyword::OptOut => {
                "You have successfully been unsubscribed. You will not receive any more \
                 messages from this number. Reply START to resubscribe."
            }
            Keyword::OptIn => {
                "You have successfully been re-subscribed to messages from this number. \
                 Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply."
            }
            Keyword::Help => "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
        }
    }
}

/// The `source` of a suppression added by an operator through the API.
pub const SOURCE_OPERATOR: &str = "operator";
/// The `source` of a suppression added by the recipient's opt-out keyword.
pub const SOURCE_KEYWORD: &str = "keyword";

/// Validates a `POST /api/v1/suppressions` body: `{phone}` in E.164.
pub fn parse_suppression(body: &Value) -> Result<String, Vec<FieldError>> {
    let obj = object(body)?;
    let mut errors = Vec::new();
    match required_phone(obj, "phone", &mut errors) {
        Some(phone) if errors.is_empty() => Ok(phone),
        _ => Err(errors),
    }
}

/// The phone number of a `/suppressions/{phone}` path segment: E.164, its `+` written as is
/// or percent-encoded (`%2B`); `None` for anything else.
pub fn phone_from_path(segment: &str) -> Option<String> {
    let phone = match segment.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("%2B") => format!("+{}", &segment[3..]),
        _ => segment.to_owned(),
    };
    is_e164(&phone).then_some(phone)
}

/// A validated `POST /api/v1/messages` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRequest {
    /// Recipient, E.164.
    pub to: String,
    /// Sender, E.164 (one of the tenant's numbers, checked by the edge); `None`: the default.
    pub from: Option<String>,
    /// The text, 1 to [`MAX_BODY_CHARS`] characters.
    pub body: String,
    /// The call this message belongs to, if any (checked to be the tenant's by the edge).
    pub call_id: Option<String>,
}

/// Validates a `POST /api/v1/messages` body.
pub fn parse_message(body: &Value) -> Result<MessageRequest, Vec<FieldError>> {
    let obj = object(body)?;
    let mut errors = Vec::new();
    let to = required_phone(obj, "to", &mut errors);
    let from = match present(obj, "from") {
        None => None,
        Some(_) => phone(obj, "from", &mut errors),
    };
    let text = match present(obj, "body") {
        None => {
            errors.push(FieldError::new("body", "required", "body is required"));
            None
        }
        Some(Value::String(s)) => message_body(s, &mut errors),
        Some(_) => {
            errors.push(FieldError::new(
                "body",
                "invalid_type",
                "body must be a string",
            ));
            None
        }
    };
    let call_id = match present(obj, "call_id") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                "call_id",
                "invalid_value",
                "call_id must be a call id",
            ));
            None
        }
    };
    match (to, text) {
        (Some(to), Some(body)) if errors.is_empty() => Ok(MessageRequest {
            to,
            from,
            body,
            call_id,
        }),
        _ => Err(errors),
    }
}

/// A message text: not blank, at most [`MAX_BODY_CHARS`] characters.
fn message_body(text: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    if text.trim().is_empty() {
        errors.push(FieldError::new(
            "body",
            "required",
            "body must not be blank",
        ));
        None
    } else if text.chars().count() > MAX_BODY_CHARS {
        errors.push(FieldError::new(
            "body",
            "too_long",
            format!("body is longer than {MAX_BODY_CHARS} characters"),
        ));
        None
    } else {
        Some(text.to_owned())
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    body.as_object().ok_or_else(|| {
        vec![FieldError::new(
            "",
            "invalid_body",
            "the body must be a JSON object",
        )]
    })
}

fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn required_phone(
    obj: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    if present(obj, name).is_none() {
        errors.push(FieldError::new(
            name,
            "required",
            format!("{name} is required"),
        ));
        return None;
    }
    phone(obj, name, errors)
}

fn phone(obj: &Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match present(obj, name) {
        Some(Value::String(s)) if is_e164(s) => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push(FieldError::new(
                name,
                "invalid_phone",
                format!("{name} must be an E.164 number like +14155550100"),
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                name,
                "invalid_type",
                format!("{name} must be a string"),
            ));
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        for word in [
            "STOP",
            "stop",
            " Stop \n",
            "STOPALL",
            "unsubscribe",
            "Cancel",
            "END",
            "quit",
        ] {
            assert_eq!(Keyword::of(word), Some(Keyword::OptOut), "{word:?}");
        }
        for word in ["START", "yes", " unstop "] {
            assert_eq!(Keyword::of(word), Some(Keyword::OptIn), "{word:?}");
        }
        for word in ["HELP", "info\t"] {
            assert_eq!(Keyword::of(word), Some(Keyword::Help), "{word:?}");
        }
        for text in [
            "please stop",
            "STOP!",
            "stop calling me",
            "",
            "  ",
            "S T O P",
            "yes please",
        ] {
            assert_eq!(Keyword::of(text), None, "{text:?}");
        }
    }

    #[test]
    fn each_keyword_has_its_reply() {
        assert!(Keyword::OptOut.reply().contains("unsubscribed"));
        assert!(Keyword::OptOut.reply().contains("START"));
        assert!(Keyword::OptIn.reply().contains("re-subscribed"));
        assert!(Keyword::Help.reply().contains("STOP"));
    }

    #[test]
    fn suppressions_take_an_e164_phone() {
        assert_eq!(
            parse_suppression(&json!({"phone": "+14155550100"})),
            Ok("+14155550100".to_owned())
        );
        for body in [
            json!({}),
            json!({"phone": "4155550100"}),
            json!({"phone": 1}),
            json!([]),
        ] {
            assert!(parse_suppression(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn path_phones_accept_an_encoded_plus() {
        assert_eq!(
            phone_from_path("+14155550100").as_deref(),
            Some("+14155550100")
        );
        assert_eq!(
            phone_from_path("%2B14155550100").as_deref(),
            Some("+14155550100")
        );
        assert_eq!(
            phone_from_path("%2b14155550100").as_deref(),
            Some("+14155550100")
        );
        assert_eq!(phone_from_path("14155550100"), None);
        assert_eq!(phone_from_path("%2"), None);
        assert_eq!(phone_from_path(""), None);
    }

    #[test]
    fn messages_are_validated() {
        let ok = parse_message(&json!({"to": "+14155550100", "body": "hi", "call_id": "call_1"}))
            .unwrap();
        assert_eq!(ok.to, "+14155550100");
        assert_eq!(ok.from, None);
        assert_eq!(ok.call_id.as_deref(), Some("call_1"));
        let codes = |body: Value| -> Vec<(String, &'static str)> {
            parse_message(&body)
                .unwrap_err()
                .into_iter()
                .map(|e| (e.field, e.code))
                .collect()
        };
        assert_eq!(
            codes(json!({"to": "x", "from": "y", "body": " "})),
            vec![
                ("to".into(), "invalid_phone"),
                ("from".into(), "invalid_phone"),
                ("body".into(), "required")
            ]
        );
        assert_eq!(
            codes(json!({"to": "+14155550100", "body": "é".repeat(1601)})),
            vec![("body".into(), "too_long")]
        );
        assert!(parse_message(&json!({"to": "+14155550100", "body": "é".repeat(1600)})).is_ok());
        assert_eq!(
            codes(json!({})),
            vec![("to".into(), "required"), ("body".into(), "required")]
        );
    }
}
