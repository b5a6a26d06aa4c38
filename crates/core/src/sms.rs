//! Text messages: the opt-out keywords and their carrier-standard replies, the suppression
//! list's input, and outbound message requests.

use crate::carrier::Carrier;
use crate::config::Config;
use crate::scheduling::request::{is_e164, FieldError};
use crate::voice::xml_escape;
use crate::webhooks::canonical::{CanonicalEvent, MapError};
use crate::zones::Zone;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

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
    /// The carrier to send through; `None`: [`carrier_for`] picks the configured one.
    pub provider: Option<Carrier>,
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
    let provider = match present(obj, "provider") {
        None => None,
        Some(Value::String(s)) if Carrier::parse(s).is_some_and(Carrier::texts) => {
            Carrier::parse(s)
        }
        Some(_) => {
            errors.push(FieldError::new(
                "provider",
                "invalid_value",
                "provider must be twilio or telnyx",
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
            provider,
        }),
        _ => Err(errors),
    }
}

/// The carrier a message goes through: the one asked for, else Twilio when its account is
/// configured, else Telnyx when its key is. `Err` names the setting the choice lacks.
pub fn carrier_for(requested: Option<Carrier>, config: &Config) -> Result<Carrier, &'static str> {
    let twilio = config.providers.twilio_account_sid.is_some() && !config.secrets.twilio.is_empty();
    let telnyx = config.providers.telnyx_api_key.is_some();
    match requested {
        Some(Carrier::Twilio) if !twilio => Err("TWILIO_ACCOUNT_SID"),
        Some(Carrier::Telnyx) if !telnyx => Err("TELNYX_API_KEY"),
        Some(carrier) => Ok(carrier),
        None if twilio => Ok(Carrier::Twilio),
        None if telnyx => Ok(Carrier::Telnyx),
        None => Err("TWILIO_ACCOUNT_SID"),
    }
}

/// The text confirming a scheduled call, sent when the agent's `sms.confirmations` is on:
/// the start in the call's zone (`zone`, else UTC).
pub fn confirmation_text(agent_name: &str, start: DateTime<Utc>, zone: Option<&Zone>) -> String {
    let (local, zone_name) = match zone {
        Some(zone) => (zone.at(start), zone.name()),
        None => (start.fixed_offset(), "UTC"),
    };
    format!(
        "Your call with {agent_name} is scheduled for {} ({zone_name}). Reply STOP to opt out.",
        local.format("%a %b %-d at %H:%M")
    )
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

/// The canonical events of text messages (also in `webhooks::canonical::EVENT_TYPES`).
pub const SMS_EVENT_TYPES: [&str; 4] = ["sms.received", "sms.sent", "sms.delivered", "sms.failed"];

/// What one verified messaging webhook reports: an inbound message or an outbound one's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsWebhook {
    /// `sms.received|sent|delivered|failed`, or `<carrier>.message.<status>` when unmapped.
    pub event_type: String,
    /// The replay key: Twilio `MessageSid:<status>` (a message reports each status once),
    /// Telnyx the event's `data.id`.
    pub provider_event_id: String,
    /// The carrier's message id (`MessageSid`, Telnyx `payload.id`).
    pub provider_message_id: String,
    pub from: String,
    pub to: String,
    /// The text of an inbound message.
    pub text: Option<String>,
    /// The carrier's status word (`received`, `sent`, `delivered`, `undelivered`, …).
    pub status: String,
    /// The carrier's error code, for a failed message.
    pub error_code: Option<String>,
    /// When it happened, as the carrier says (Telnyx `occurred_at`).
    pub occurred_at: Option<String>,
}

impl SmsWebhook {
    /// Whether this is a message someone sent to one of our numbers.
    pub fn inbound(&self) -> bool {
        self.event_type == "sms.received"
    }

    /// Our number: the one texted (inbound), or the sender of our outbound message.
    pub fn our_number(&self) -> &str {
        if self.inbound() {
            &self.to
        } else {
            &self.from
        }
    }

    /// The canonical event, for the outbox; `message_id` is ours when the message is known.
    pub fn canonical(&self, message_id: Option<&str>) -> CanonicalEvent {
        CanonicalEvent {
            event_type: self.event_type.clone(),
            occurred_at: self.occurred_at.clone(),
            provider_event_id: self.provider_event_id.clone(),
            provider_call_id: None,
            our_call_id: None,
            call_status: None,
            data: json!({
                "message_id": message_id,
                "provider_message_id": self.provider_message_id,
                "from": self.from,
                "to": self.to,
                "text": self.text,
                "status": self.status,
                "error_code": self.error_code,
            }),
        }
    }
}

/// Reads a verified messaging webhook of `carrier`: Twilio's form (an incoming message, or a
/// `StatusCallback` with `MessageStatus`), Telnyx's JSON (`message.received`, `message.sent`,
/// `message.finalized`).
pub fn read_webhook(carrier: Carrier, body: &[u8]) -> Result<SmsWebhook, MapError> {
    match carrier {
        Carrier::Telnyx => read_telnyx(body),
        _ => read_twilio(body),
    }
}

fn read_twilio(body: &[u8]) -> Result<SmsWebhook, MapError> {
    let text = std::str::from_utf8(body).map_err(|_| MapError::NotForm)?;
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(text.as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    let sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .ok_or(MapError::MissingField("MessageSid"))?;
    let status = get("MessageStatus")
        .or_else(|| get("SmsStatus"))
        .unwrap_or_else(|| "received".to_owned())
        .to_ascii_lowercase();
    let event_type = match status.as_str() {
        "received" => "sms.received".to_owned(),
        "sent" => "sms.sent".to_owned(),
        "delivered" => "sms.delivered".to_owned(),
        "failed" | "undelivered" => "sms.failed".to_owned(),
        other => format!("twilio.message.{other}"),
    };
    let inbound = status == "received";
    Ok(SmsWebhook {
        provider_event_id: format!("{sid}:{status}"),
        provider_message_id: sid,
        from: get("From").ok_or(MapError::MissingField("From"))?,
        to: get("To").ok_or(MapError::MissingField("To"))?,
        text: inbound.then(|| params.get("Body").cloned().unwrap_or_default()),
        error_code: get("ErrorCode").filter(|c| c != "0"),
        occurred_at: None,
        event_type,
        status,
    })
}

fn read_telnyx(body: &[u8]) -> Result<SmsWebhook, MapError> {
    let json: Value = serde_json::from_slice(body).map_err(|_| MapError::NotJson)?;
    let data = json.get("data").ok_or(MapError::MissingField("data"))?;
    let str_at = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let id = str_at(data, "/id").ok_or(MapError::MissingField("data.id"))?;
    let kind = str_at(data, "/event_type").ok_or(MapError::MissingField("data.event_type"))?;
    let payload = data
        .get("payload")
        .ok_or(MapError::MissingField("data.payload"))?;
    let recipient_status = str_at(payload, "/to/0/status").unwrap_or_default();
    let (event_type, status) = match kind.as_str() {
        "message.received" => ("sms.received".to_owned(), "received".to_owned()),
        "message.sent" => ("sms.sent".to_owned(), "sent".to_owned()),
        "message.finalized" => match recipient_status.as_str() {
            "delivered" => ("sms.delivered".to_owned(), recipient_status),
            "sending_failed" | "delivery_failed" => ("sms.failed".to_owned(), recipient_status),
            _ => (format!("telnyx.{kind}"), recipient_status),
        },
        _ => (format!("telnyx.{kind}"), recipient_status),
    };
    Ok(SmsWebhook {
        provider_event_id: id,
        provider_message_id: str_at(payload, "/id")
            .ok_or(MapError::MissingField("data.payload.id"))?,
        from: str_at(payload, "/from/phone_number")
            .ok_or(MapError::MissingField("data.payload.from.phone_number"))?,
        to: str_at(payload, "/to/0/phone_number")
            .ok_or(MapError::MissingField("data.payload.to"))?,
        text: (event_type == "sms.received").then(|| str_at(payload, "/text").unwrap_or_default()),
        error_code: str_at(payload, "/errors/0/code"),
        occurred_at: str_at(data, "/occurred_at"),
        event_type,
        status,
    })
}

/// Twilio's answer to a messaging webhook: TwiML, with the keyword's reply as a `<Message>`
/// when there is one (Twilio sends it back to the texter).
pub fn twiml_reply(reply: Option<&str>) -> String {
    match reply {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            xml_escape(text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_owned(),
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
            codes(json!({"to": "+14155550100", "body": "x", "provider": "exotel"})),
            vec![("provider".into(), "invalid_value")]
        );
        assert_eq!(
            codes(json!({})),
            vec![("to".into(), "required"), ("body".into(), "required")]
        );
    }

    const TWILIO_INBOUND: &str = "ToCountry=US&SmsMessageSid=SM1&NumMedia=0&SmsSid=SM1&SmsStatus=received&Body=Stop+&To=%2B15550001111&NumSegments=1&MessageSid=SM1&AccountSid=AC1&From=%2B15558675310&ApiVersion=2010-04-01";

    #[test]
    fn twilio_messages_and_statuses_are_read() {
        let m = read_webhook(Carrier::Twilio, TWILIO_INBOUND.as_bytes()).unwrap();
        assert_eq!(m.event_type, "sms.received");
        assert_eq!(m.provider_event_id, "SM1:received");
        assert_eq!(m.text.as_deref(), Some("Stop "));
        assert_eq!(m.our_number(), "+15550001111");
        assert_eq!(
            Keyword::of(m.text.as_deref().unwrap()),
            Some(Keyword::OptOut)
        );
        for (status, kind) in [
            ("sent", "sms.sent"),
            ("delivered", "sms.delivered"),
            ("undelivered", "sms.failed"),
            ("failed", "sms.failed"),
            ("queued", "twilio.message.queued"),
        ] {
            let body = format!("MessageSid=SM2&MessageStatus={status}&SmsStatus={status}&From=%2B15550001111&To=%2B15558675310&ErrorCode=30003");
            let e = read_webhook(Carrier::Twilio, body.as_bytes()).unwrap();
            assert_eq!(e.event_type, kind);
            assert_eq!(e.provider_event_id, format!("SM2:{status}"));
            assert_eq!(e.our_number(), "+15550001111");
            assert_eq!(e.text, None);
        }
        assert_eq!(
            read_webhook(Carrier::Twilio, b"From=%2B1&To=%2B2"),
            Err(MapError::MissingField("MessageSid"))
        );
    }

    #[test]
    fn telnyx_messaging_events_are_read() {
        let received = json!({"data": {"event_type": "message.received", "id": "evt-1",
            "occurred_at": "2026-01-01T00:00:00.000+00:00", "record_type": "event",
            "payload": {"id": "msg-1", "direction": "inbound", "text": "HELP",
                "from": {"phone_number": "+15558675310"},
                "to": [{"phone_number": "+15550001111", "status": "webhook_delivered"}]}},
            "meta": {"attempt": 1}});
        let m = read_webhook(Carrier::Telnyx, received.to_string().as_bytes()).unwrap();
        assert_eq!(
            (m.event_type.as_str(), m.provider_event_id.as_str()),
            ("sms.received", "evt-1")
        );
        assert_eq!(m.text.as_deref(), Some("HELP"));
        assert_eq!(m.our_number(), "+15550001111");
        let finalized = |status: &str| {
            json!({"data": {"event_type": "message.finalized", "id": "evt-2",
                "payload": {"id": "msg-2", "direction": "outbound",
                    "from": {"phone_number": "+15550001111"},
                    "to": [{"phone_number": "+15558675310", "status": status}]}}})
            .to_string()
        };
        let kind = |body: String| {
            read_webhook(Carrier::Telnyx, body.as_bytes())
                .unwrap()
                .event_type
        };
        assert_eq!(kind(finalized("delivered")), "sms.delivered");
        assert_eq!(kind(finalized("delivery_failed")), "sms.failed");
        assert_eq!(
            kind(finalized("delivery_unconfirmed")),
            "telnyx.message.finalized"
        );
        assert!(read_webhook(Carrier::Telnyx, b"nope").is_err());
    }

    #[test]
    fn the_configured_carrier_sends() {
        let mut config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(carrier_for(None, &config), Err("TWILIO_ACCOUNT_SID"));
        config.providers.telnyx_api_key = Some("k".into());
        assert_eq!(carrier_for(None, &config), Ok(Carrier::Telnyx));
        assert_eq!(
            carrier_for(Some(Carrier::Twilio), &config),
            Err("TWILIO_ACCOUNT_SID")
        );
        config.providers.twilio_account_sid = Some("AC1".into());
        config.secrets.twilio = vec!["t".into()];
        assert_eq!(carrier_for(None, &config), Ok(Carrier::Twilio));
        assert_eq!(
            carrier_for(Some(Carrier::Telnyx), &config),
            Ok(Carrier::Telnyx)
        );
    }

    #[test]
    fn confirmations_say_when_in_the_call_zone() {
        let start = DateTime::parse_from_rfc3339("2026-03-02T14:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            confirmation_text("Acme", start, None),
            "Your call with Acme is scheduled for Mon Mar 2 at 14:30 (UTC). Reply STOP to opt out."
        );
    }

    #[test]
    fn sms_events_are_in_the_catalogue() {
        for kind in SMS_EVENT_TYPES {
            assert!(
                crate::webhooks::canonical::EVENT_TYPES.contains(&kind),
                "{kind}"
            );
        }
    }

    #[test]
    fn twiml_replies_are_escaped() {
        assert!(twiml_reply(Some("a<b & c")).contains("<Message>a&lt;b &amp; c</Message>"));
        assert!(twiml_reply(None).ends_with("<Response></Response>"));
    }
}
