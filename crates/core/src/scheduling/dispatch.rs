//! Placing a scheduled call with a carrier: the Twilio and Telnyx "create call" requests, their
//! responses, and which attempt of a call a provider callback belongs to.
//!
//! Every callback URL and provider-side state we hand out carries our call id *and* the attempt
//! number, so a late callback of an earlier attempt (say a `no-answer` that arrives after the
//! retry was dialled) is recognised and cannot move the new attempt.

use crate::voice::{stream_url, with_query};
use crate::webhooks::callback::{signed_query, CallbackKey};
use base64::Engine;
use serde_json::{json, Value};
use thiserror::Error;

/// Twilio status callback events we subscribe to (docs/protocols.md §9.1).
pub const TWILIO_STATUS_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// Query parameter / metadata key carrying the attempt number next to `call_id`.
pub const ATTEMPT_KEY: &str = "attempt";

/// Everything a carrier needs to dial one attempt of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial<'a> {
    /// Our call id.
    pub call_id: &'a str,
    /// Attempt number, 1 for the first dial.
    pub attempt: u32,
    /// Callee, E.164.
    pub to: &'a str,
    /// Caller id, E.164.
    pub from: &'a str,
    /// How carriers reach this worker, without a trailing slash (`https://host`).
    pub base_url: &'a str,
    /// The call's media-stream token: a stream URL handed to the carrier must carry it, or the
    /// media route refuses the stream.
    pub stream_token: &'a str,
    /// Signs the `call_id` of every callback URL (an unsigned one names no call).
    pub callback_key: &'a CallbackKey,
    /// Until when (Unix seconds) the callback URLs of this attempt are believed.
    pub callback_expires: i64,
}

impl Dial<'_> {
    /// `call_id=…&attempt=…&exp=…&sig=…`, the signed query every callback URL of this attempt
    /// carries.
    fn callback_query(&self) -> String {
        signed_query(
            self.callback_key,
            self.call_id,
            self.attempt,
            self.callback_expires,
        )
    }

    /// `wss://host/media/{carrier}/{call_id}?token=…`, for carriers that take the stream URL
    /// at dial time (Telnyx); Twilio fetches its markup from `/voice/twilio/incoming` instead.
    fn stream_url(&self, carrier: &str) -> String {
        with_query(
            &stream_url(self.base_url, carrier, self.call_id),
            "token",
            self.stream_token,
        )
    }
}

/// Path of Twilio's create-call resource for an account (`/2010-04-01/Accounts/{sid}/Calls.json`).
pub fn twilio_calls_path(account_sid: &str) -> String {
    let sid: String = url::form_urlencoded::byte_serialize(account_sid.as_bytes()).collect();
    format!("/2010-04-01/Accounts/{sid}/Calls.json")
}

/// Form body of Twilio's create call: the voice URL returns the stream markup, status callbacks
/// for every progress event (the parameter repeated, as Twilio requires), all carrying our id.
pub fn twilio_create_form(dial: &Dial) -> String {
    let query = dial.callback_query();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", dial.to)
        .append_pair("From", dial.from)
        .append_pair(
            "Url",
            &format!("{}/voice/twilio/incoming?{query}", dial.base_url),
        )
        .append_pair("Method", "POST")
        .append_pair(
            "StatusCallback",
            &format!("{}/voice/twilio/status?{query}", dial.base_url),
        )
        .append_pair("StatusCallbackMethod", "POST");
    for event in TWILIO_STATUS_EVENTS {
        form.append_pair("StatusCallbackEvent", event);
    }
    form.finish()
}

/// JSON body of Telnyx's `POST /v2/calls`: `client_state` carries our id and attempt, the
/// media stream is started with the dial (docs/protocols.md §9.2), webhooks come to `/webhooks/telnyx`.
pub fn telnyx_create_body(dial: &Dial, connection_id: Option<&str>) -> Value {
    let mut body = json!({
        "to": dial.to,
        "from": dial.from,
        "webhook_url": format!("{}/webhooks/telnyx", dial.base_url),
        "webhook_url_method": "POST",
        "client_state": client_state(dial.call_id, dial.attempt),
        "stream_url": dial.stream_url("telnyx"),
        "stream_track": "inbound_track",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
    });
    if let Some(id) = connection_id {
        body["connection_id"] = Value::from(id);
    }
    body
}

/// Base64 of `{"call_id": …, "attempt": …}`, Telnyx's opaque per-call state.
pub fn client_state(call_id: &str, attempt: u32) -> String {
    let state = json!({"call_id": call_id, ATTEMPT_KEY: attempt});
    base64::engine::general_purpose::STANDARD.encode(state.to_string())
}

/// Why a carrier did not create the call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialError {
    /// The carrier refused the request (4xx): retrying the same request will not help.
    #[error("{carrier} refused the call (HTTP {status}): {message}")]
    Refused {
        carrier: &'static str,
        status: u16,
        message: String,
    },
    /// The carrier failed or throttled (429, 5xx).
    #[error("{carrier} is unavailable (HTTP {status})")]
    Unavailable { carrier: &'static str, status: u16 },
    /// A 2xx without the call id we need.
    #[error("{carrier} answered HTTP {status} without a call id")]
    Malformed { carrier: &'static str, status: u16 },
}

/// Reads Twilio's create-call answer: the new call's `sid` on 2xx.
pub fn parse_twilio_create(status: u16, body: &[u8]) -> Result<String, DialError> {
    parse_create("twilio", status, body, "/sid", "/message")
}

/// Reads Telnyx's `POST /v2/calls` answer: `data.call_control_id` on 2xx.
pub fn parse_telnyx_create(status: u16, body: &[u8]) -> Result<String, DialError> {
    parse_create(
        "telnyx",
        status,
        body,
        "/data/call_control_id",
        "/errors/0/detail",
    )
}

fn parse_create(
    carrier: &'static str,
    status: u16,
    body: &[u8],
    id_pointer: &str,
    message_pointer: &str,
) -> Result<String, DialError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let at = |pointer: &str| {
        json.as_ref()
            .and_then(|j| j.pointer(pointer))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match status {
        200..=299 => at(id_pointer)
            .filter(|id| !id.is_empty())
            .ok_or(DialError::Malformed { carrier, status }),
        429 | 500..=599 => Err(DialError::Unavailable { carrier, status }),
        _ => Err(DialError::Refused {
            carrier,
            status,
            message: at(message_pointer).unwrap_or_else(|| "no message".to_owned()),
        }),
    }
}

/// The attempt a provider callback belongs to, when the callback tells: the `attempt` query
/// parameter (Twilio, TeXML), Bland's `metadata.attempt`, or Telnyx's `client_state`.
/// `None` for callbacks that carry none (then they are judged without an attempt check).
pub fn callback_attempt(query: &str, body: &[u8]) -> Option<u32> {
    let from_query = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == ATTEMPT_KEY)
        .and_then(|(_, v)| v.parse::<u32>().ok());
    if from_query.is_some() {
        return from_query;
    }
    let json: Value = serde_json::from_slice(body).ok()?;
    let number = |v: Option<&Value>| {
        v.and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        })
        .and_then(|n| u32::try_from(n).ok())
    };
    if let Some(attempt) = number(json.pointer("/metadata/attempt")) {
        return Some(attempt);
    }
    let state = json.pointer("/data/payload/client_state")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(state)
        .ok()?;
    let state: Value = serde_json::from_slice(&decoded).ok()?;
    number(state.get(ATTEMPT_KEY))
}

#[cfg(test)]
mod tests {
    use super::*;

    static KEY: std::sync::LazyLock<CallbackKey> =
        std::sync::LazyLock::new(|| CallbackKey::from_config(Some("server-key"), None).unwrap());

    fn dial() -> Dial<'static> {
        Dial {
            call_id: "call_1",
            attempt: 2,
            to: "+15558675310",
            from: "+15017122661",
            base_url: "https://worker.example.com",
            stream_token: "stk_1",
            callback_key: &KEY,
            callback_expires: 1_700_000_000,
        }
    }

    #[test]
    fn twilio_form_has_urls_and_repeated_events() {
        let form = twilio_create_form(&dial());
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("To"), ["+15558675310"]);
        assert_eq!(get("From"), ["+15017122661"]);
        let query = signed_query(&KEY, "call_1", 2, 1_700_000_000);
        assert!(query.starts_with("call_id=call_1&attempt=2&exp=1700000000&sig="));
        assert_eq!(
            get("Url"),
            [format!(
                "https://worker.example.com/voice/twilio/incoming?{query}"
            )]
        );
        assert_eq!(
            get("StatusCallback"),
            [format!(
                "https://worker.example.com/voice/twilio/status?{query}"
            )]
        );
        // What the carrier posts back names the call only with this MAC.
        let back = crate::webhooks::callback::verify_query(Some(&KEY), &query, 0).unwrap();
        assert_eq!((back.call_id.as_str(), back.attempt), ("call_1", 2));
        assert_eq!(get("StatusCallbackMethod"), ["POST"]);
        assert_eq!(get("StatusCallbackEvent"), TWILIO_STATUS_EVENTS);
        assert!(form.contains("To=%2B15558675310"));
    }

    #[test]
    fn telnyx_body_carries_state_stream_and_connection() {
        let body = telnyx_create_body(&dial(), Some("conn_1"));
        assert_eq!(body["connection_id"], "conn_1");
        assert_eq!(
            body["webhook_url"],
            "https://worker.example.com/webhooks/telnyx"
        );
        assert_eq!(
            body["stream_url"],
            "wss://worker.example.com/media/telnyx/call_1?token=stk_1"
        );
        let state = body["client_state"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(state)
            .unwrap();
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(v, json!({"call_id": "call_1", "attempt": 2}));
        assert!(telnyx_create_body(&dial(), None)
            .get("connection_id")
            .is_none());
        let plain = Dial {
            base_url: "http://127.0.0.1:8787",
            ..dial()
        };
        assert_eq!(
            telnyx_create_body(&plain, None)["stream_url"],
            "ws://127.0.0.1:8787/media/telnyx/call_1?token=stk_1"
        );
    }

    #[test]
    fn create_responses_are_read() {
        assert_eq!(
            parse_twilio_create(201, br#"{"sid":"CA1","status":"queued"}"#),
            Ok("CA1".to_owned())
        );
        assert_eq!(
            parse_twilio_create(400, br#"{"code":21201,"message":"No 'To' number"}"#),
            Err(DialError::Refused {
                carrier: "twilio",
                status: 400,
                message: "No 'To' number".into()
            })
        );
        assert_eq!(
            parse_twilio_create(503, b"oops"),
            Err(DialError::Unavailable {
                carrier: "twilio",
                status: 503
            })
        );
        assert_eq!(
            parse_twilio_create(201, b"{}"),
            Err(DialError::Malformed {
                carrier: "twilio",
                status: 201
            })
        );
        assert_eq!(
            parse_telnyx_create(200, br#"{"data":{"call_control_id":"v3:abc"}}"#),
            Ok("v3:abc".to_owned())
        );
        assert!(matches!(
            parse_telnyx_create(422, br#"{"errors":[{"detail":"bad from"}]}"#),
            Err(DialError::Refused { message, .. }) if message == "bad from"
        ));
    }

    #[test]
    fn callback_attempt_from_query_metadata_or_client_state() {
        assert_eq!(callback_attempt("call_id=c&attempt=3", b""), Some(3));
        assert_eq!(callback_attempt("call_id=c", b"CallSid=CA1"), None);
        assert_eq!(
            callback_attempt("", br#"{"metadata":{"call_id":"c","attempt":2}}"#),
            Some(2)
        );
        assert_eq!(
            callback_attempt("", br#"{"metadata":{"attempt":"4"}}"#),
            Some(4)
        );
        let state = client_state("c", 5);
        let body = json!({"data": {"payload": {"client_state": state}}}).to_string();
        assert_eq!(callback_attempt("", body.as_bytes()), Some(5));
        assert_eq!(
            callback_attempt("", br#"{"data":{"payload":{"client_state":"!!"}}}"#),
            None
        );
        assert_eq!(callback_attempt("attempt=x", b"not json"), None);
    }
}
