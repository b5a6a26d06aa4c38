//! Bland.ai outbound calls: the `POST /v1/calls` body and its response.
//!
//! The edge dispatches Bland calls like the others (at `start_at`, from the cron / alarm) and
//! still passes `start_time`: Bland holds a call sent a little early until that exact instant,
//! and dials at once when it is already past.

use crate::zones::Zone;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use thiserror::Error;

/// Key under which our call id travels in Bland's `metadata` (echoed in its webhooks).
pub const METADATA_CALL_ID: &str = "call_id";

/// What the Bland agent follows: a prompt, or a conversational pathway (never both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script<'a> {
    /// `task`: the agent's instructions.
    Task(&'a str),
    /// `pathway_id`: a pathway built in Bland.
    Pathway(&'a str),
}

/// Everything one `POST /v1/calls` carries.
#[derive(Debug, Clone, PartialEq)]
pub struct SendCall<'a> {
    /// Our call id, put in `metadata` under [`METADATA_CALL_ID`].
    pub call_id: &'a str,
    /// Callee, E.164.
    pub phone_number: &'a str,
    /// Prompt or pathway.
    pub script: Script<'a>,
    /// What the agent says first.
    pub first_sentence: Option<&'a str>,
    /// Bland voice name or id.
    pub voice: Option<&'a str>,
    /// Caller id, E.164.
    pub from: Option<&'a str>,
    /// When to dial.
    pub start_at: DateTime<Utc>,
    /// Zone used to write `start_time`, its name sent as `timezone`.
    pub time_zone: Option<Zone<'a>>,
    /// Our post-call webhook URL (`…/webhooks/bland`).
    pub webhook: Option<&'a str>,
    /// The user's metadata object; our call id is added to a copy.
    pub metadata: &'a Value,
    /// Variables the prompt can reference.
    pub request_data: Option<&'a Value>,
    /// Hang-up limit in minutes (Bland's unit).
    pub max_duration_minutes: Option<u32>,
}

/// Formats an instant as Bland's `start_time`, `YYYY-MM-DD HH:MM:SS ±HH:MM`, in `time_zone`
/// when there is one and in UTC (`+00:00`) otherwise: the instant is the same.
pub fn start_time(at: DateTime<Utc>, time_zone: Option<Zone>) -> String {
    const FORMAT: &str = "%Y-%m-%d %H:%M:%S %:z";
    match time_zone {
        Some(zone) => zone.at(at).format(FORMAT).to_string(),
        None => at.format(FORMAT).to_string(),
    }
}

/// Builds the JSON body of `POST {BLAND_API_URL}/v1/calls`.
pub fn send_call_body(call: &SendCall) -> Value {
    let mut metadata = call.metadata.as_object().cloned().unwrap_or_default();
    // Ours wins over a user key of the same name: the webhook mapping depends on it.
    metadata.insert(METADATA_CALL_ID.to_owned(), Value::from(call.call_id));

    let mut body = Map::new();
    body.insert("phone_number".into(), call.phone_number.into());
    match call.script {
        Script::Task(task) => body.insert("task".into(), task.into()),
        Script::Pathway(id) => body.insert("pathway_id".into(), id.into()),
    };
    let optional = [
        ("first_sentence", call.first_sentence),
        ("voice", call.voice),
        ("from", call.from),
        ("timezone", call.time_zone.map(|zone| zone.name())),
        ("webhook", call.webhook),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body.insert(key.into(), value.into());
        }
    }
    body.insert(
        "start_time".into(),
        start_time(call.start_at, call.time_zone).into(),
    );
    body.insert("metadata".into(), Value::Object(metadata));
    if let Some(data) = call.request_data {
        body.insert("request_data".into(), data.clone());
    }
    if let Some(minutes) = call.max_duration_minutes {
        body.insert("max_duration".into(), minutes.into());
    }
    Value::Object(body)
}

/// Bland accepted the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Bland's call id (for `/v1/calls/{id}` and `/v1/calls/{id}/stop`).
    pub call_id: String,
    /// Bland's message, e.g. "Call successfully queued.".
    pub message: Option<String>,
}

/// Why Bland did not queue the call (all downstream: Bland is the provider).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlandError {
    /// Bland refused the request (`status: "error"` or a 4xx); sending it again will not help.
    #[error("Bland rejected the call (HTTP {status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Bland's `message`.
        message: String,
        /// Bland's per-field `errors`, as text.
        errors: Vec<String>,
    },
    /// HTTP 429.
    #[error("Bland rate limit reached")]
    RateLimited,
    /// HTTP 5xx.
    #[error("Bland is unavailable (HTTP {0})")]
    Unavailable(u16),
    /// A success status without a usable body: the call may or may not exist.
    #[error("Bland answered HTTP {status} without a call id: {reason}")]
    Malformed {
        /// HTTP status.
        status: u16,
        /// What was wrong with the body.
        reason: String,
    },
}

impl BlandError {
    /// True when a later dispatch attempt may succeed. A 5xx can hide a call Bland did create
    /// (it takes no idempotency key), so a retry risks a second call; the edge weighs that.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BlandError::RateLimited | BlandError::Unavailable(_))
    }
}

/// Reads Bland's answer to `POST /v1/calls` from its HTTP status and raw body.
pub fn parse_send_response(status: u16, body: &[u8]) -> Result<Queued, BlandError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = field("message");
    let said_error = field("status").as_deref() == Some("error");

    if status == 429 {
        return Err(BlandError::RateLimited);
    }
    if status >= 500 {
        return Err(BlandError::Unavailable(status));
    }
    if said_error || !(200..300).contains(&status) {
        let errors = json
            .as_ref()
            .and_then(|j| j.get("errors"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        return Err(BlandError::Rejected {
            status,
            message: message.unwrap_or_else(|| "no message".to_owned()),
            errors,
        });
    }
    match (json.is_some(), field("call_id").filter(|id| !id.is_empty())) {
        (_, Some(call_id)) => Ok(Queued { call_id, message }),
        (true, None) => Err(BlandError::Malformed {
            status,
            reason: "no call_id".to_owned(),
        }),
        (false, None) => Err(BlandError::Malformed {
            status,
            reason: "body is not JSON".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zones::Tzdb;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> Option<Zone<'static>> {
        Zone::resolve(&Tzdb, name)
    }

    #[test]
    fn start_time_matches_the_documented_format() {
        // Bland's documented example (docs/protocols.md §9.3): "2025-04-01 15:00:00 -05:00" with America/Chicago (CDT).
        assert_eq!(
            start_time(at("2025-04-01T20:00:00Z"), zone("America/Chicago")),
            "2025-04-01 15:00:00 -05:00"
        );
        assert_eq!(
            start_time(at("2025-01-15T20:00:00Z"), zone("America/Chicago")),
            "2025-01-15 14:00:00 -06:00"
        );
        assert_eq!(
            start_time(at("2025-04-01T20:00:00Z"), zone("Asia/Kolkata")),
            "2025-04-02 01:30:00 +05:30"
        );
        assert_eq!(
            start_time(at("2025-04-01T20:00:00Z"), None),
            "2025-04-01 20:00:00 +00:00"
        );
        assert_eq!(
            start_time(at("2025-04-01T20:00:00Z"), zone("Not/AZone")),
            "2025-04-01 20:00:00 +00:00"
        );
    }

    fn call<'a>(metadata: &'a Value) -> SendCall<'a> {
        SendCall {
            call_id: "call_123",
            phone_number: "+15551234567",
            script: Script::Task("Confirm the appointment."),
            first_sentence: Some("Hi, this is Ava."),
            voice: Some("maya"),
            from: Some("+15017122661"),
            start_at: at("2025-04-01T20:00:00Z"),
            time_zone: zone("America/Chicago"),
            webhook: Some("https://worker.example.com/webhooks/bland"),
            metadata,
            request_data: None,
            max_duration_minutes: Some(5),
        }
    }

    #[test]
    fn send_call_body_has_documented_fields() {
        let metadata = json!({"crm": 7, "call_id": "spoofed"});
        let body = send_call_body(&call(&metadata));
        assert_eq!(
            body,
            json!({
                "phone_number": "+15551234567",
                "task": "Confirm the appointment.",
                "first_sentence": "Hi, this is Ava.",
                "voice": "maya",
                "from": "+15017122661",
                "timezone": "America/Chicago",
                "webhook": "https://worker.example.com/webhooks/bland",
                "start_time": "2025-04-01 15:00:00 -05:00",
                "metadata": {"crm": 7, "call_id": "call_123"},
                "max_duration": 5
            })
        );
    }

    #[test]
    fn pathway_replaces_task_and_optionals_are_omitted() {
        let metadata = Value::Null;
        let data = json!({"contact_name": "Jordan", "scheduled_for": "Tue 1 Apr, 3:00 PM"});
        let body = send_call_body(&SendCall {
            script: Script::Pathway("pw_1"),
            first_sentence: None,
            voice: None,
            from: None,
            time_zone: None,
            webhook: None,
            request_data: Some(&data),
            max_duration_minutes: None,
            ..call(&metadata)
        });
        assert_eq!(
            body,
            json!({
                "phone_number": "+15551234567",
                "pathway_id": "pw_1",
                "start_time": "2025-04-01 20:00:00 +00:00",
                "metadata": {"call_id": "call_123"},
                "request_data": {"contact_name": "Jordan", "scheduled_for": "Tue 1 Apr, 3:00 PM"}
            })
        );
    }

    #[test]
    fn success_response_gives_the_call_id() {
        let body = br#"{ "status": "success", "message": "Call successfully queued.", "call_id": "9d404c1b-6a23-4426-953a-a52c392ff8f1", "batch_id": null }"#;
        assert_eq!(
            parse_send_response(200, body),
            Ok(Queued {
                call_id: "9d404c1b-6a23-4426-953a-a52c392ff8f1".into(),
                message: Some("Call successfully queued.".into()),
            })
        );
    }

    #[test]
    fn error_responses_are_classified() {
        let rejected = parse_send_response(
            400,
            br#"{"status":"error","message":"Invalid parameters","errors":["phone_number is invalid",{"field":"voice"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            rejected,
            BlandError::Rejected {
                status: 400,
                message: "Invalid parameters".into(),
                errors: vec![
                    "phone_number is invalid".into(),
                    r#"{"field":"voice"}"#.into()
                ],
            }
        );
        assert!(!rejected.is_retryable());

        let in_200 = parse_send_response(200, br#"{"status":"error","message":"No balance"}"#);
        assert!(matches!(
            in_200,
            Err(BlandError::Rejected { status: 200, .. })
        ));

        assert_eq!(
            parse_send_response(429, b"slow down"),
            Err(BlandError::RateLimited)
        );
        assert!(BlandError::RateLimited.is_retryable());
        assert_eq!(
            parse_send_response(503, b""),
            Err(BlandError::Unavailable(503))
        );
        assert!(BlandError::Unavailable(503).is_retryable());
        assert!(matches!(
            parse_send_response(401, b"<html>"),
            Err(BlandError::Rejected { status: 401, .. })
        ));
        assert!(matches!(
            parse_send_response(200, br#"{"status":"success"}"#),
            Err(BlandError::Malformed { .. })
        ));
        assert!(matches!(
            parse_send_response(200, b"ok"),
            Err(BlandError::Malformed { .. })
        ));
    }
}
