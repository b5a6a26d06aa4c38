//! Placing a scheduled call with a carrier: what a dial carries (the requests themselves are
//! built in `carrier`), and which attempt of a call a provider callback belongs to.
//!
//! Every callback URL and provider-side state we hand out carries our call id *and* the attempt
//! number, so a late callback of an earlier attempt (say a `no-answer` that arrives after the
//! retry was dialled) is recognised and cannot move the new attempt.

use crate::voice::{stream_url, with_query};
use crate::webhooks::callback::{signed_query, CallbackKey};
use base64::Engine;
use serde_json::{json, Value};

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
    pub(crate) fn callback_query(&self) -> String {
        signed_query(
            self.callback_key,
            self.call_id,
            self.attempt,
            self.callback_expires,
        )
    }

    /// `wss://host/media/{carrier}/{call_id}?token=…`, for carriers that take the stream URL
    /// at dial time (Telnyx); Twilio fetches its markup from `/voice/twilio/incoming` instead.
    pub(crate) fn stream_url(&self, carrier: &str) -> String {
        with_query(
            &stream_url(self.base_url, carrier, self.call_id),
            "token",
            self.stream_token,
        )
    }
}

/// Base64 of `{"call_id": …, "attempt": …}`, Telnyx's opaque per-call state.
pub fn client_state(call_id: &str, attempt: u32) -> String {
    let state = json!({"call_id": call_id, ATTEMPT_KEY: attempt});
    base64::engine::general_purpose::STANDARD.encode(state.to_string())
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
