//! Mapping of provider payloads to canonical `{type, timestamp, data}` events.
//!
//! One verified request maps to exactly one event. A type we have no mapping for is kept as
//! `<provider>.<original type>`, never dropped, so users still receive it. The dedupe key per
//! provider is listed in docs/protocols.md §1.9.

use super::Provider;
use crate::scheduling::CallStatus;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The documented catalogue of canonical types (for docs/OpenAPI and tests).
pub const EVENT_TYPES: &[&str] = &[
    "email.sent",
    "email.scheduled",
    "email.delivered",
    "email.delivery_delayed",
    "email.bounced",
    "email.complained",
    "email.opened",
    "email.clicked",
    "email.failed",
    "email.suppressed",
    "email.received",
    "call.queued",
    "call.ringing",
    "call.in_progress",
    "call.completed",
    "call.no_answer",
    "call.busy",
    "call.failed",
    "call.canceled",
    "call.transcript.ready",
    "call.summary.ready",
    "call.analysis.ready",
    "call.recording.ready",
    "sms.received",
    "sms.sent",
    "sms.delivered",
    "sms.failed",
    "appointment.booked",
    "appointment.rescheduled",
    "appointment.canceled",
    "call.recording.transcribed",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "campaign.canceled",
];

/// Header a Vapi HMAC plan should name as its `messageIdHeader`; its value is the dedupe key.
pub const VAPI_MESSAGE_ID_HEADER: &str = "x-message-id";

/// A provider event mapped to our one canonical shape.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalEvent {
    /// A type from [`EVENT_TYPES`], or `<provider>.<original type>` when it has no mapping.
    pub event_type: String,
    /// When the event happened, RFC 3339 in UTC, if the payload says.
    pub occurred_at: Option<String>,
    /// The provider's dedupe key (docs/protocols.md §1.9), unique per `(provider, key)`.
    pub provider_event_id: String,
    /// The provider's own call id (CallSid, call_control_id, Bland/Retell/Vapi call id).
    pub provider_call_id: Option<String>,
    /// Our call id as the signed payload carries it (Bland/Retell/Vapi metadata, Telnyx
    /// `client_state`, Resend tags). An unsigned query `call_id` is never read here: the edge
    /// believes one only with our MAC (`callback::verify_query`).
    pub our_call_id: Option<String>,
    /// The call's new status, for `call.<status>` events.
    pub call_status: Option<CallStatus>,
    /// Mapped fields, always a JSON object (`to`, `from`, `duration_seconds`, `email_id`, …).
    pub data: Value,
}

/// Why a verified request could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MapError {
    /// The provider sends JSON objects and the body is not one.
    #[error("body is not a JSON object")]
    NotJson,
    /// The provider sends form-encoded bodies and this one is not UTF-8.
    #[error("body is not form-encoded UTF-8")]
    NotForm,
    /// A field the event cannot be identified without is absent.
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    /// A header the event cannot be identified without is absent.
    #[error("required header {0} is missing")]
    MissingHeader(&'static str),
}

/// A mapped request: its canonical event and its original body for [`envelope`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub event: CanonicalEvent,
    /// The body as [`original_payload`] reads it; a JSON body is the tree the mapping parsed.
    pub original: Value,
}

/// Maps a verified request body (JSON or form-encoded depending on provider) to a canonical
/// event; `headers` are `(name, value)` pairs, `query` the raw query string without `?`. A JSON
/// body is parsed once, for the mapping and the envelope both.
pub fn map_event(
    provider: Provider,
    headers: &[(String, String)],
    query: &str,
    body: &[u8],
) -> Result<Mapped, MapError> {
    let json = |map: &dyn Fn(&Value) -> Result<CanonicalEvent, MapError>| {
        let root = json_object(body)?;
        Ok::<_, MapError>(Mapped {
            event: map(&root)?,
            original: root,
        })
    };
    let form = |event: CanonicalEvent| Mapped {
        event,
        original: original_payload(body),
    };
    let mut mapped = match provider {
        Provider::Resend => json(&|root| map_resend(headers, root))?,
        Provider::Standard => json(&|root| map_standard(headers, root))?,
        // JSON-bodied callbacks (signed with `bodySHA256`) carry the same parameters.
        Provider::Twilio if looks_like_json(body) => {
            json(&|root| map_twilio(&json_params(root), "twilio"))?
        }
        Provider::Twilio => form(map_twilio(&form_body(body)?, "twilio")?),
        Provider::Telnyx if looks_like_json(body) => json(&map_telnyx)?,
        // TeXML status callbacks are Twilio-shaped forms.
        Provider::Telnyx => form(map_twilio(&form_body(body)?, "telnyx")?),
        Provider::Bland => json(&|root| map_bland(root, body))?,
        Provider::Retell => json(&map_retell)?,
        Provider::Vapi => json(&|root| map_vapi(headers, root))?,
        Provider::Exotel if looks_like_json(body) => {
            json(&|root| map_exotel(query, json_params(root)))?
        }
        Provider::Exotel => form(map_exotel(query, form_body(body)?)?),
    };
    mapped.event.call_status = status_of_type(&mapped.event.event_type);
    Ok(mapped)
}

/// Standard Webhooks body forwarded to endpoints: `{"type","timestamp","data"}` with `data`
/// holding `provider`, `provider_event_id`, `provider_call_id`, `call_id` (ours, resolved by
/// the edge), the mapped fields and `payload` (the original). `timestamp_rfc3339` is used when
/// the event carries no time of its own: pass the time it was received.
pub fn envelope(
    event: &CanonicalEvent,
    provider: Provider,
    call_id: Option<&str>,
    timestamp_rfc3339: &str,
    original: Value,
) -> Value {
    let mut data = event.data.as_object().cloned().unwrap_or_default();
    data.insert("provider".into(), provider.as_str().into());
    data.insert(
        "provider_event_id".into(),
        event.provider_event_id.clone().into(),
    );
    data.insert(
        "provider_call_id".into(),
        event.provider_call_id.clone().into(),
    );
    data.insert("call_id".into(), call_id.into());
    data.insert("payload".into(), original);
    json!({
        "type": event.event_type,
        "timestamp": event.occurred_at.as_deref().unwrap_or(timestamp_rfc3339),
        "data": data,
    })
}

/// The original body as JSON for [`envelope`]: the JSON itself, a form as an object of
/// strings, anything else as a (lossy UTF-8) string.
pub fn original_payload(body: &[u8]) -> Value {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return value;
    }
    match std::str::from_utf8(body) {
        Ok(text) if text.contains('=') => {
            // Inserted rather than collected (each `collect` into a map compiles a sort); a
            // repeated key keeps its last value either way.
            let mut form = serde_json::Map::new();
            for (k, v) in url::form_urlencoded::parse(body).into_owned() {
                form.insert(k, Value::String(v));
            }
            Value::Object(form)
        }
        _ => Value::String(String::from_utf8_lossy(body).into_owned()),
    }
}

fn map_resend(headers: &[(String, String)], root: &Value) -> Result<CanonicalEvent, MapError> {
    let kind = str_at(root, "/type").ok_or(MapError::MissingField("type"))?;
    let id = message_id(headers).ok_or(MapError::MissingHeader("svix-id"))?;
    let mut data = Map::new();
    put_str(&mut data, "email_id", str_at(root, "/data/email_id"));
    put_str(&mut data, "from", str_at(root, "/data/from"));
    put_str(&mut data, "subject", str_at(root, "/data/subject"));
    for key in ["to", "tags", "bounce", "click", "failed", "suppressed"] {
        if let Some(value) = root.get("data").and_then(|d| d.get(key)) {
            if !value.is_null() {
                data.insert(key.into(), value.clone());
            }
        }
    }
    Ok(CanonicalEvent {
        event_type: known_or_prefixed(kind, "resend"),
        occurred_at: str_at(root, "/created_at").and_then(to_rfc3339),
        provider_event_id: id.to_owned(),
        provider_call_id: None,
        // Our confirmation e-mails carry a `call_id` tag, which links their events to the call.
        our_call_id: str_at(root, "/data/tags/call_id").map(str::to_owned),
        call_status: None,
        data: Value::Object(data),
    })
}

fn map_standard(headers: &[(String, String)], root: &Value) -> Result<CanonicalEvent, MapError> {
    let kind = str_at(root, "/type").ok_or(MapError::MissingField("type"))?;
    let id = message_id(headers).ok_or(MapError::MissingHeader("webhook-id"))?;
    let data = match root.get("data") {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => json!({}),
    };
    Ok(CanonicalEvent {
        event_type: kind.to_owned(),
        occurred_at: str_at(root, "/timestamp").and_then(to_rfc3339),
        provider_event_id: id.to_owned(),
        provider_call_id: None,
        our_call_id: None,
        call_status: None,
        data,
    })
}

/// Twilio status, recording and AMD callbacks (and Telnyx TeXML ones, which copy them). The
/// dedupe key is built from signed parameters only: `I-Twilio-Idempotency-Token` is not covered
/// by the signature, so keying on it let a replay with a fresh token count as a new event.
fn map_twilio(pairs: &[(String, String)], slug: &str) -> Result<CanonicalEvent, MapError> {
    let get = |name| param(pairs, name);
    let call_sid = get("CallSid").ok_or(MapError::MissingField("CallSid"))?;
    let mut data = Map::new();
    let (event_type, key) = if let Some(status) = get("CallStatus") {
        let key = match get("SequenceNumber") {
            Some(seq) => format!("{call_sid}:{status}:{seq}"),
            None => format!("{call_sid}:{status}"),
        };
        put_str(&mut data, "provider_status", Some(status));
        (status_type(carrier_status(status), slug, status), key)
    } else if let Some(status) = get("RecordingStatus") {
        let recording = get("RecordingSid").unwrap_or_default();
        let kind = match status {
            "completed" => "call.recording.ready".to_owned(),
            other => format!("{slug}.recording.{other}"),
        };
        (kind, format!("{call_sid}:{recording}:{status}"))
    } else if let Some(answered_by) = get("AnsweredBy") {
        (
            format!("{slug}.amd"),
            format!("{call_sid}:amd:{answered_by}"),
        )
    } else {
        return Err(MapError::MissingField("CallStatus"));
    };
    put_str(&mut data, "to", get("To"));
    put_str(&mut data, "from", get("From"));
    put_str(&mut data, "direction", get("Direction"));
    put_str(&mut data, "answered_by", get("AnsweredBy"));
    put_str(&mut data, "recording_url", get("RecordingUrl"));
    put_number(&mut data, "duration_seconds", get("CallDuration"));
    put_number(
        &mut data,
        "recording_duration_seconds",
        get("RecordingDuration"),
    );
    Ok(CanonicalEvent {
        event_type,
        occurred_at: get("Timestamp").and_then(to_rfc3339),
        provider_event_id: key,
        provider_call_id: Some(call_sid.to_owned()),
        our_call_id: None,
        call_status: None,
        data: Value::Object(data),
    })
}

/// Telnyx Call Control: `{"data": {"event_type", "id", "occurred_at", "payload": {…}}}`.
fn map_telnyx(root: &Value) -> Result<CanonicalEvent, MapError> {
    let id = str_at(root, "/data/id").ok_or(MapError::MissingField("data.id"))?;
    let kind = str_at(root, "/data/event_type").ok_or(MapError::MissingField("data.event_type"))?;
    let p = |field: &str| str_at(root, &format!("/data/payload/{field}"));
    let event_type = match kind {
        "call.initiated" => call_type(CallStatus::Queued),
        "call.answered" => call_type(CallStatus::InProgress),
        "call.hangup" => call_type(telnyx_hangup_status(p("hangup_cause"))),
        // `call.recording.saved` stays Telnyx's own (`telnyx.call.recording.saved`): the one
        // `call.recording.ready` is ours, once the audio is in R2 behind a signed link.
        other => format!("telnyx.{other}"),
    };
    let mut data = Map::new();
    put_str(&mut data, "to", p("to"));
    put_str(&mut data, "from", p("from"));
    put_str(&mut data, "direction", p("direction"));
    put_str(&mut data, "hangup_cause", p("hangup_cause"));
    put_str(&mut data, "hangup_source", p("hangup_source"));
    put_str(
        &mut data,
        "recording_url",
        p("recording_urls/mp3").or_else(|| p("public_recording_urls/mp3")),
    );
    Ok(CanonicalEvent {
        event_type,
        occurred_at: str_at(root, "/data/occurred_at").and_then(to_rfc3339),
        provider_event_id: id.to_owned(),
        provider_call_id: p("call_control_id").map(str::to_owned),
        our_call_id: p("client_state").and_then(call_id_from_client_state),
        call_status: None,
        data: Value::Object(data),
    })
}

/// Telnyx `hangup_cause`: call_rejected, normal_clearing, originator_cancel, timeout,
/// time_limit, user_busy, not_found, no_answer or unspecified.
fn telnyx_hangup_status(cause: Option<&str>) -> CallStatus {
    match cause {
        Some("normal_clearing" | "time_limit") => CallStatus::Completed,
        Some("user_busy" | "call_rejected") => CallStatus::Busy,
        Some("no_answer" | "timeout") => CallStatus::NoAnswer,
        Some("originator_cancel") => CallStatus::Canceled,
        _ => CallStatus::Failed,
    }
}

/// Our dial sets `client_state` to base64 of `{"call_id": "…"}`.
fn call_id_from_client_state(state: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(state)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    str_at(&value, "/call_id").map(str::to_owned)
}

/// Bland's post-call webhook: the call-details object (docs/protocols.md §9.3).
fn map_bland(root: &Value, body: &[u8]) -> Result<CanonicalEvent, MapError> {
    let call_id = str_at(root, "/call_id").or_else(|| str_at(root, "/c_id"));
    let status = str_at(root, "/status").or_else(|| str_at(root, "/queue_status"));
    let completed = root.get("completed").and_then(Value::as_bool) == Some(true);
    let event_type = match status.and_then(carrier_status) {
        Some(s) => call_type(s),
        None if completed => call_type(CallStatus::Completed),
        None => status.map_or_else(|| "bland.event".to_owned(), |s| format!("bland.{s}")),
    };
    let provider_event_id = match (call_id, status) {
        (Some(id), Some(status)) => format!("{id}:{status}"),
        _ => format!("sha256:{}", hex(&Sha256::digest(body))),
    };
    let mut data = Map::new();
    put_str(&mut data, "to", str_at(root, "/to"));
    put_str(&mut data, "from", str_at(root, "/from"));
    put_str(&mut data, "provider_status", status);
    put_str(&mut data, "answered_by", str_at(root, "/answered_by"));
    put_str(&mut data, "ended_by", str_at(root, "/call_ended_by"));
    put_str(&mut data, "error_message", str_at(root, "/error_message"));
    put_str(&mut data, "recording_url", str_at(root, "/recording_url"));
    put_str(&mut data, "summary", str_at(root, "/summary"));
    put_str(
        &mut data,
        "transcript",
        str_at(root, "/concatenated_transcript"),
    );
    let duration = match root.get("corrected_duration") {
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(other) => other.as_f64(),
        None => None,
    }
    .or_else(|| {
        root.get("call_length")
            .and_then(Value::as_f64)
            .map(|m| m * 60.0)
    });
    if let Some(secs) = duration.filter(|s| s.is_finite() && *s >= 0.0) {
        data.insert("duration_seconds".into(), json!(secs.round() as u64));
    }
    let occurred = str_at(root, "/end_at").or_else(|| str_at(root, "/created_at"));
    Ok(CanonicalEvent {
        event_type,
        occurred_at: occurred.and_then(to_rfc3339),
        provider_event_id,
        provider_call_id: call_id.map(str::to_owned),
        our_call_id: str_at(root, "/metadata/call_id").map(str::to_owned),
        call_status: None,
        data: Value::Object(data),
    })
}

/// Retell: `{"event": "call_started" | "call_ended" | "call_analyzed" | …, "call": {…}}`.
fn map_retell(root: &Value) -> Result<CanonicalEvent, MapError> {
    let kind = str_at(root, "/event")
        .or_else(|| str_at(root, "/event_type"))
        .ok_or(MapError::MissingField("event"))?;
    let call_id = str_at(root, "/call/call_id").ok_or(MapError::MissingField("call.call_id"))?;
    let reason = str_at(root, "/call/disconnection_reason");
    let summary = str_at(root, "/call/call_analysis/call_summary");
    let event_type = match kind {
        "call_started" => call_type(CallStatus::InProgress),
        "call_ended" => call_type(retell_end_status(reason)),
        "call_analyzed" => report_type(summary),
        other => format!("retell.{other}"),
    };
    let millis = |field: &str| {
        root.get("call")
            .and_then(|c| c.get(field))
            .and_then(Value::as_i64)
    };
    let occurred_ms = if kind == "call_started" {
        millis("start_timestamp")
    } else {
        millis("end_timestamp")
    };
    let duration_ms = millis("duration_ms").or_else(|| {
        millis("end_timestamp")
            .zip(millis("start_timestamp"))
            .map(|(e, s)| e.saturating_sub(s))
    });
    let mut data = Map::new();
    put_str(&mut data, "to", str_at(root, "/call/to_number"));
    put_str(&mut data, "from", str_at(root, "/call/from_number"));
    put_str(&mut data, "direction", str_at(root, "/call/direction"));
    put_str(
        &mut data,
        "provider_status",
        str_at(root, "/call/call_status"),
    );
    put_str(&mut data, "ended_reason", reason);
    put_str(&mut data, "transcript", str_at(root, "/call/transcript"));
    put_str(
        &mut data,
        "recording_url",
        str_at(root, "/call/recording_url"),
    );
    put_str(&mut data, "summary", summary);
    if let Some(ms) = duration_ms.filter(|ms| *ms >= 0) {
        data.insert("duration_seconds".into(), json!((ms + 500) / 1000));
    }
    Ok(CanonicalEvent {
        event_type,
        occurred_at: occurred_ms.and_then(millis_to_rfc3339),
        provider_event_id: format!("{call_id}:{kind}"),
        provider_call_id: Some(call_id.to_owned()),
        our_call_id: str_at(root, "/call/metadata/call_id").map(str::to_owned),
        call_status: None,
        data: Value::Object(data),
    })
}

/// Retell `disconnection_reason`: dial_busy, dial_no_answer, dial_failed, error_*, … or a
/// normal end (user_hangup, agent_hangup, voicemail_reached, max_duration_reached, …).
fn retell_end_status(reason: Option<&str>) -> CallStatus {
    match reason.unwrap_or_default() {
        "dial_busy" => CallStatus::Busy,
        "dial_no_answer" => CallStatus::NoAnswer,
        r if r == "dial_failed"
            || r == "invalid_destination"
            || r == "concurrency_limit_reached"
            || r == "no_valid_payment"
            || r.starts_with("error")
            || r.starts_with("telephony_provider") =>
        {
            CallStatus::Failed
        }
        _ => CallStatus::Completed,
    }
}

/// Vapi server messages: `{"message": {"type": "status-update" | "end-of-call-report" | …}}`.
fn map_vapi(headers: &[(String, String)], root: &Value) -> Result<CanonicalEvent, MapError> {
    let m = |path: &str| str_at(root, &format!("/message{path}"));
    let kind = m("/type").ok_or(MapError::MissingField("message.type"))?;
    let call_id = m("/call/id");
    let status = m("/status");
    let reason = m("/endedReason").or_else(|| m("/call/endedReason"));
    let summary = m("/analysis/summary").or_else(|| m("/summary"));
    let event_type = match (kind, status) {
        ("status-update", Some("ended")) => call_type(vapi_end_status(reason)),
        ("status-update", Some(s)) => status_type(carrier_status(s), "vapi.status-update", s),
        ("end-of-call-report", _) => report_type(summary),
        (other, _) => format!("vapi.{other}"),
    };
    let provider_event_id = match header(headers, VAPI_MESSAGE_ID_HEADER) {
        Some(id) => id.to_owned(),
        None => {
            let call_id = call_id.ok_or(MapError::MissingField("message.call.id"))?;
            // Every status-update shares its type, so the status keeps them apart.
            match status {
                Some(s) => format!("{call_id}:{kind}:{s}"),
                None => format!("{call_id}:{kind}"),
            }
        }
    };
    let occurred_at = match root.get("message").and_then(|msg| msg.get("timestamp")) {
        Some(Value::Number(n)) => n.as_i64().and_then(millis_to_rfc3339),
        Some(Value::String(s)) => to_rfc3339(s),
        _ => None,
    };
    let mut data = Map::new();
    put_str(
        &mut data,
        "to",
        m("/call/customer/number").or_else(|| m("/customer/number")),
    );
    put_str(&mut data, "from", m("/phoneNumber/number"));
    put_str(&mut data, "provider_status", status);
    put_str(&mut data, "ended_reason", reason);
    put_str(
        &mut data,
        "transcript",
        m("/artifact/transcript").or_else(|| m("/transcript")),
    );
    put_str(&mut data, "summary", summary);
    put_str(
        &mut data,
        "recording_url",
        m("/artifact/recordingUrl").or_else(|| m("/recordingUrl")),
    );
    let seconds = root
        .get("message")
        .and_then(|msg| msg.get("durationSeconds"))
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0);
    if let Some(secs) = seconds {
        data.insert("duration_seconds".into(), json!(secs.round() as u64));
    }
    Ok(CanonicalEvent {
        event_type,
        occurred_at,
        provider_event_id,
        provider_call_id: call_id.map(str::to_owned),
        our_call_id: m("/call/metadata/call_id").map(str::to_owned),
        call_status: None,
        data: Value::Object(data),
    })
}

/// Vapi `endedReason` when a call ends: customer-busy, customer-did-not-answer, many
/// `*-error-*` / `*-failed` reasons, or a normal end.
fn vapi_end_status(reason: Option<&str>) -> CallStatus {
    match reason.unwrap_or_default() {
        "customer-busy" => CallStatus::Busy,
        "customer-did-not-answer" => CallStatus::NoAnswer,
        r if r.contains("error") || r.contains("failed") => CallStatus::Failed,
        _ => CallStatus::Completed,
    }
}

/// Exotel StatusCallback: form, JSON or query parameters `CallSid`, `Status`, … (unsigned).
fn map_exotel(query: &str, mut params: Vec<(String, String)>) -> Result<CanonicalEvent, MapError> {
    // The body wins; query parameters only fill in (GET callbacks carry everything there).
    params.extend(form(query));
    let get = |name| param(&params, name);
    let call_sid = get("CallSid").ok_or(MapError::MissingField("CallSid"))?;
    let status = get("Status").ok_or(MapError::MissingField("Status"))?;
    let mut data = Map::new();
    put_str(&mut data, "to", get("To"));
    put_str(&mut data, "from", get("From"));
    put_str(&mut data, "provider_status", Some(status));
    put_str(&mut data, "recording_url", get("RecordingUrl"));
    put_number(&mut data, "duration_seconds", get("ConversationDuration"));
    Ok(CanonicalEvent {
        event_type: status_type(carrier_status(status), "exotel", status),
        // `DateUpdated` has no zone; the original payload keeps it.
        occurred_at: None,
        provider_event_id: format!("{call_sid}:{status}"),
        provider_call_id: Some(call_sid.to_owned()),
        our_call_id: None,
        call_status: None,
        data: Value::Object(data),
    })
}

/// A flat JSON object's string and number fields as `(name, value)` pairs, like a form's.
fn json_params(root: &Value) -> Vec<(String, String)> {
    let Value::Object(fields) = root else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            _ => None,
        })
        .collect()
}

/// Carrier call statuses (Twilio/TeXML/Exotel/Bland/Vapi spellings) to ours.
fn carrier_status(status: &str) -> Option<CallStatus> {
    match status
        .trim()
        .to_ascii_lowercase()
        .replace(['-', ' '], "_")
        .as_str()
    {
        "initiated" | "queued" => Some(CallStatus::Queued),
        "ringing" => Some(CallStatus::Ringing),
        "in_progress" | "answered" => Some(CallStatus::InProgress),
        "completed" | "complete" => Some(CallStatus::Completed),
        "busy" => Some(CallStatus::Busy),
        "no_answer" => Some(CallStatus::NoAnswer),
        "failed" => Some(CallStatus::Failed),
        "canceled" | "cancelled" => Some(CallStatus::Canceled),
        _ => None,
    }
}

fn call_type(status: CallStatus) -> String {
    format!("call.{}", status.as_str())
}

/// `call.<status>` when known, else `<slug>.<raw status>` so the event is kept.
fn status_type(status: Option<CallStatus>, slug: &str, raw: &str) -> String {
    status.map_or_else(|| format!("{slug}.{raw}"), call_type)
}

/// Post-call reports carry a transcript and, when analysis ran, a summary.
fn report_type(summary: Option<&str>) -> String {
    match summary {
        Some(_) => "call.summary.ready",
        None => "call.transcript.ready",
    }
    .to_owned()
}

fn status_of_type(event_type: &str) -> Option<CallStatus> {
    if !EVENT_TYPES.contains(&event_type) {
        return None;
    }
    event_type.strip_prefix("call.").and_then(CallStatus::parse)
}

fn known_or_prefixed(kind: &str, slug: &str) -> String {
    if EVENT_TYPES.contains(&kind) {
        kind.to_owned()
    } else {
        format!("{slug}.{kind}")
    }
}

fn message_id(headers: &[(String, String)]) -> Option<&str> {
    header(headers, "webhook-id").or_else(|| header(headers, "svix-id"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn looks_like_json(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

fn json_object(body: &[u8]) -> Result<Value, MapError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(MapError::NotJson),
    }
}

fn form_body(body: &[u8]) -> Result<Vec<(String, String)>, MapError> {
    std::str::from_utf8(body)
        .map(form)
        .map_err(|_| MapError::NotForm)
}

fn form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// First non-blank value of a form parameter.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.as_str())
}

/// A non-blank string at a JSON pointer.
fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn put_str(data: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        data.insert(key.into(), v.into());
    }
}

/// Inserts a whole number of seconds given as a decimal string.
fn put_number(data: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(n) = value.and_then(|v| v.parse::<u64>().ok()) {
        data.insert(key.into(), n.into());
    }
}

/// Normalises RFC 3339, RFC 2822 (Twilio) and `YYYY-MM-DD HH:MM:SS[.f]±HH[:MM]` (Resend,
/// Bland) timestamps to RFC 3339 in UTC.
fn to_rfc3339(s: &str) -> Option<String> {
    let parsed = DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_rfc2822(s))
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()?;
    Some(utc_rfc3339(parsed.with_timezone(&Utc)))
}

fn millis_to_rfc3339(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(utc_rfc3339)
}

fn utc_rfc3339(dt: DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn map(
        provider: Provider,
        headers: &[(&str, &str)],
        query: &str,
        body: &str,
    ) -> CanonicalEvent {
        map_event(provider, &h(headers), query, body.as_bytes())
            .unwrap_or_else(|e| panic!("{provider:?}: {e} for {body}"))
            .event
    }

    fn err(provider: Provider, headers: &[(&str, &str)], body: &[u8]) -> MapError {
        map_event(provider, &h(headers), "", body).expect_err("should not map")
    }

    // ---- Resend (docs/protocols.md §1.2) ----

    const RESEND_SENT: &str = r#"{ "type": "email.sent", "created_at": "2025-04-01T14:00:01.123Z",
      "data": { "created_at": "2025-04-01 14:00:00.900+00", "email_id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794",
                "message_id": "<0100018e@email.amazonses.com>", "from": "Acme Dental <bookings@acme.example>",
                "to": ["jordan@example.com"], "subject": "Your appointment on Tue 1 Apr, 3:00 PM",
                "tags": { "category": "booking_confirmation", "call_id": "call_123" } } }"#;

    const RESEND_BOUNCED: &str = r#"{ "type": "email.bounced", "created_at": "2024-11-22T23:41:12.126Z",
      "data": { "created_at": "2024-11-22T23:41:11.894719+00:00", "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
                "message_id": "<x>", "from": "Acme <onboarding@resend.dev>", "to": ["delivered@resend.dev"], "subject": "Sending this example",
                "bounce": { "message": "The recipient's email address is on the suppression list.", "subType": "Suppressed", "type": "Permanent" } } }"#;

    #[test]
    fn resend_email_sent() {
        let e = map(
            Provider::Resend,
            &[("svix-id", "msg_2Lh9")],
            "",
            RESEND_SENT,
        );
        assert_eq!(e.event_type, "email.sent");
        assert_eq!(e.provider_event_id, "msg_2Lh9");
        assert_eq!(e.occurred_at.as_deref(), Some("2025-04-01T14:00:01.123Z"));
        assert_eq!(e.our_call_id.as_deref(), Some("call_123"));
        assert_eq!(e.call_status, None);
        assert_eq!(e.data["email_id"], "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794");
        assert_eq!(e.data["to"], json!(["jordan@example.com"]));
        assert_eq!(e.data["subject"], "Your appointment on Tue 1 Apr, 3:00 PM");
        assert_eq!(e.data["from"], "Acme Dental <bookings@acme.example>");
    }

    #[test]
    fn resend_bounce_and_click_details_are_kept() {
        let e = map(
            Provider::Resend,
            &[("Svix-Id", "msg_b")],
            "",
            RESEND_BOUNCED,
        );
        assert_eq!(e.event_type, "email.bounced");
        assert_eq!(e.data["bounce"]["type"], "Permanent");
        let clicked = r#"{"type":"email.clicked","created_at":"2025-04-01T15:00:00.000Z","data":{"email_id":"e1","to":["a@b.c"],
            "click":{"ipAddress":"203.0.113.9","link":"https://acme.example/manage","timestamp":"2025-04-01T15:00:00.000Z","userAgent":"Mozilla/5.0"}}}"#;
        let e = map(Provider::Resend, &[("svix-id", "msg_c")], "", clicked);
        assert_eq!(e.event_type, "email.clicked");
        assert_eq!(e.data["click"]["link"], "https://acme.example/manage");
    }

    #[test]
    fn resend_every_email_type_maps_to_itself() {
        for kind in EVENT_TYPES.iter().filter(|t| t.starts_with("email.")) {
            let body = format!(
                r#"{{"type":"{kind}","created_at":"2025-04-01T14:00:00Z","data":{{"email_id":"e"}}}}"#
            );
            assert_eq!(
                map(Provider::Resend, &[("svix-id", "m")], "", &body).event_type,
                *kind
            );
        }
    }

    #[test]
    fn resend_unknown_type_is_kept_with_prefix() {
        let body =
            r#"{"type":"contact.created","created_at":"2025-04-01T14:00:00Z","data":{"id":"c1"}}"#;
        let e = map(Provider::Resend, &[("svix-id", "m")], "", body);
        assert_eq!(e.event_type, "resend.contact.created");
    }

    #[test]
    fn resend_needs_id_type_and_json() {
        assert_eq!(
            err(Provider::Resend, &[], RESEND_SENT.as_bytes()),
            MapError::MissingHeader("svix-id")
        );
        assert_eq!(
            err(Provider::Resend, &[("svix-id", "m")], br#"{"data":{}}"#),
            MapError::MissingField("type")
        );
        for bad in [&b"not json"[..], b"[1,2]", b"\"str\"", b"", b"{\"type\":"] {
            assert_eq!(
                err(Provider::Resend, &[("svix-id", "m")], bad),
                MapError::NotJson
            );
        }
    }

    // ---- Standard Webhooks ----

    #[test]
    fn standard_passes_type_through() {
        let body = r#"{"type":"invoice.paid","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"in_1","amount":5}}"#;
        let e = map(Provider::Standard, &[("webhook-id", "msg_1")], "", body);
        assert_eq!(e.event_type, "invoice.paid");
        assert_eq!(e.provider_event_id, "msg_1");
        assert_eq!(
            e.occurred_at.as_deref(),
            Some("2022-11-03T20:26:10.344522Z")
        );
        assert_eq!(e.data, json!({"id": "in_1", "amount": 5}));
        assert_eq!(e.call_status, None);
    }

    #[test]
    fn standard_call_types_carry_a_status() {
        let body = r#"{"type":"call.no_answer","timestamp":"2022-11-03T20:26:10Z","data":{}}"#;
        let e = map(
            Provider::Standard,
            &[("webhook-id", "m")],
            "call_id=c_9",
            body,
        );
        assert_eq!(e.call_status, Some(CallStatus::NoAnswer));
        assert_eq!(
            e.our_call_id, None,
            "an unsigned query call_id names no call"
        );
        assert_eq!(
            err(Provider::Standard, &[], body.as_bytes()),
            MapError::MissingHeader("webhook-id")
        );
    }

    // ---- Twilio (docs/protocols.md §1.3) ----

    const TWILIO_COMPLETED: &str = "AccountSid=ACxxxx&ApiVersion=2010-04-01&CallSid=CAxxxx&CallStatus=completed&CallDuration=42&Duration=1\
&Called=%2B15558675310&Caller=%2B15017122661&Direction=outbound-api&From=%2B15017122661&To=%2B15558675310\
&CallbackSource=call-progress-events&SequenceNumber=3&Timestamp=Tue%2C%2001%20Apr%202025%2018%3A22%3A05%20%2B0000\
&SipResponseCode=200";

    #[test]
    fn twilio_completed_status_callback() {
        let e = map(Provider::Twilio, &[], "call_id=call_42", TWILIO_COMPLETED);
        assert_eq!(e.event_type, "call.completed");
        assert_eq!(e.call_status, Some(CallStatus::Completed));
        assert_eq!(e.provider_event_id, "CAxxxx:completed:3");
        assert_eq!(e.provider_call_id.as_deref(), Some("CAxxxx"));
        // An unsigned query call_id names nothing (the edge checks signed ones).
        assert_eq!(e.our_call_id, None);
        assert_eq!(e.occurred_at.as_deref(), Some("2025-04-01T18:22:05Z"));
        assert_eq!(e.data["to"], "+15558675310");
        assert_eq!(e.data["from"], "+15017122661");
        assert_eq!(e.data["direction"], "outbound-api");
        assert_eq!(e.data["duration_seconds"], 42);
        assert_eq!(e.data["provider_status"], "completed");
    }

    #[test]
    fn twilio_json_status_callback_is_the_same_event_as_the_form() {
        let form = map(Provider::Twilio, &[], "", TWILIO_COMPLETED);
        let fields: Map<String, Value> = url::form_urlencoded::parse(TWILIO_COMPLETED.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        let mut json = Value::Object(fields);
        // Numbers may come as JSON numbers.
        json["CallDuration"] = serde_json::json!(42);
        json["SequenceNumber"] = serde_json::json!(3);
        let e = map(Provider::Twilio, &[], "", &json.to_string());
        assert_eq!(e.event_type, form.event_type);
        assert_eq!(e.call_status, form.call_status);
        assert_eq!(e.provider_event_id, form.provider_event_id);
        assert_eq!(e.provider_call_id, form.provider_call_id);
        assert_eq!(e.occurred_at, form.occurred_at);
        assert_eq!(e.data, form.data);
        let bad = map_event(
            Provider::Twilio,
            &[],
            "",
            b"{\"CallStatus\": \"completed\"}",
        );
        assert_eq!(bad.unwrap_err(), MapError::MissingField("CallSid"));
        let broken = map_event(Provider::Twilio, &[], "", b"{not json");
        assert_eq!(broken.unwrap_err(), MapError::NotJson);
    }

    #[test]
    fn twilio_every_call_status_maps() {
        for (status, kind, expected) in [
            ("initiated", "call.queued", CallStatus::Queued),
            ("queued", "call.queued", CallStatus::Queued),
            ("ringing", "call.ringing", CallStatus::Ringing),
            ("in-progress", "call.in_progress", CallStatus::InProgress),
            ("completed", "call.completed", CallStatus::Completed),
            ("busy", "call.busy", CallStatus::Busy),
            ("no-answer", "call.no_answer", CallStatus::NoAnswer),
            ("failed", "call.failed", CallStatus::Failed),
            ("canceled", "call.canceled", CallStatus::Canceled),
        ] {
            let e = map(
                Provider::Twilio,
                &[],
                "",
                &format!("CallSid=CA1&CallStatus={status}"),
            );
            assert_eq!(e.event_type, kind);
            assert_eq!(e.call_status, Some(expected));
            assert_eq!(e.provider_event_id, format!("CA1:{status}"));
        }
    }

    #[test]
    fn twilio_dedupes_on_signed_content_not_the_idempotency_token() {
        // The token header is unsigned: a replay with a fresh one is the same event.
        for token in ["tok-1", "tok-2"] {
            let e = map(
                Provider::Twilio,
                &[("i-twilio-idempotency-token", token)],
                "",
                "CallSid=CA1&CallStatus=ringing&SequenceNumber=1",
            );
            assert_eq!(e.provider_event_id, "CA1:ringing:1");
        }
    }

    #[test]
    fn twilio_keeps_unknown_statuses() {
        let e = map(
            Provider::Twilio,
            &[],
            "",
            "CallSid=CA1&CallStatus=transferring",
        );
        assert_eq!(e.event_type, "twilio.transferring");
        assert_eq!(e.call_status, None);
    }

    #[test]
    fn twilio_recording_and_amd_callbacks() {
        let body = "AccountSid=AC1&CallSid=CA1&RecordingSid=RE1&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Frec%2FRE1\
&RecordingStatus=completed&RecordingDuration=35&RecordingChannels=1&RecordingSource=StartCallRecordingAPI";
        let e = map(Provider::Twilio, &[], "", body);
        assert_eq!(e.event_type, "call.recording.ready");
        assert_eq!(e.provider_event_id, "CA1:RE1:completed");
        assert_eq!(e.data["recording_url"], "https://api.twilio.com/rec/RE1");
        assert_eq!(e.data["recording_duration_seconds"], 35);
        assert_eq!(e.call_status, None);
        let e = map(
            Provider::Twilio,
            &[],
            "",
            "CallSid=CA1&RecordingSid=RE1&RecordingStatus=failed",
        );
        assert_eq!(e.event_type, "twilio.recording.failed");
        let e = map(
            Provider::Twilio,
            &[],
            "",
            "AccountSid=AC1&CallSid=CA1&AnsweredBy=machine_start&MachineDetectionDuration=2500",
        );
        assert_eq!(e.event_type, "twilio.amd");
        assert_eq!(e.data["answered_by"], "machine_start");
    }

    #[test]
    fn twilio_malformed_bodies_are_errors() {
        assert_eq!(
            err(Provider::Twilio, &[], b"CallStatus=completed"),
            MapError::MissingField("CallSid")
        );
        assert_eq!(
            err(Provider::Twilio, &[], b"CallSid=CA1&Foo=bar"),
            MapError::MissingField("CallStatus")
        );
        assert_eq!(
            err(Provider::Twilio, &[], b"CallSid=\xff\xfe"),
            MapError::NotForm
        );
        assert_eq!(
            err(Provider::Twilio, &[], b""),
            MapError::MissingField("CallSid")
        );
    }

    // ---- Telnyx (the TX vectors' body, docs/protocols.md §1.4) ----

    const TELNYX_INITIATED: &str = r#"{"data":{"event_type":"call.initiated","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2018-02-02T22:25:27.521992Z","payload":{"call_control_id":"v3:abc","from":"+35319605860","to":"+13129457420"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}"#;

    fn telnyx(kind: &str, payload: &str) -> String {
        format!(
            r#"{{"data":{{"event_type":"{kind}","id":"ev-1","occurred_at":"2024-01-01T00:00:00Z","payload":{payload},"record_type":"event"}},"meta":{{"attempt":2}}}}"#
        )
    }

    #[test]
    fn telnyx_initiated() {
        let e = map(Provider::Telnyx, &[], "", TELNYX_INITIATED);
        assert_eq!(e.event_type, "call.queued");
        assert_eq!(e.call_status, Some(CallStatus::Queued));
        assert_eq!(e.provider_event_id, "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0");
        assert_eq!(e.provider_call_id.as_deref(), Some("v3:abc"));
        assert_eq!(
            e.occurred_at.as_deref(),
            Some("2018-02-02T22:25:27.521992Z")
        );
        assert_eq!(e.data["from"], "+35319605860");
        assert_eq!(e.data["to"], "+13129457420");
    }

    #[test]
    fn telnyx_answered_and_hangup_causes() {
        let e = map(
            Provider::Telnyx,
            &[],
            "",
            &telnyx("call.answered", r#"{"call_control_id":"v3:x"}"#),
        );
        assert_eq!(e.event_type, "call.in_progress");
        for (cause, kind) in [
            ("normal_clearing", "call.completed"),
            ("time_limit", "call.completed"),
            ("user_busy", "call.busy"),
            ("call_rejected", "call.busy"),
            ("no_answer", "call.no_answer"),
            ("timeout", "call.no_answer"),
            ("originator_cancel", "call.canceled"),
            ("not_found", "call.failed"),
            ("unspecified", "call.failed"),
        ] {
            let body = telnyx(
                "call.hangup",
                &format!(
                    r#"{{"call_control_id":"v3:x","hangup_cause":"{cause}","hangup_source":"callee"}}"#
                ),
            );
            let e = map(Provider::Telnyx, &[], "", &body);
            assert_eq!(e.event_type, kind, "{cause}");
            assert_eq!(e.data["hangup_cause"], cause);
            // `meta.attempt` is not part of the key.
            assert_eq!(e.provider_event_id, "ev-1");
        }
    }

    #[test]
    fn telnyx_recording_client_state_and_unknown_types() {
        let state = base64::engine::general_purpose::STANDARD.encode(r#"{"call_id":"call_7"}"#);
        let body = telnyx(
            "call.recording.saved",
            &format!(
                r#"{{"call_control_id":"v3:x","client_state":"{state}","recording_urls":{{"mp3":"https://rec/x.mp3"}}}}"#
            ),
        );
        let e = map(Provider::Telnyx, &[], "", &body);
        assert_eq!(e.event_type, "telnyx.call.recording.saved");
        assert_eq!(e.our_call_id.as_deref(), Some("call_7"));
        assert_eq!(e.data["recording_url"], "https://rec/x.mp3");
        let e = map(
            Provider::Telnyx,
            &[],
            "",
            &telnyx(
                "call.machine.detection.ended",
                r#"{"client_state":"!!notbase64"}"#,
            ),
        );
        assert_eq!(e.event_type, "telnyx.call.machine.detection.ended");
        assert_eq!(e.our_call_id, None);
        assert_eq!(e.call_status, None);
    }

    #[test]
    fn telnyx_texml_callbacks_are_forms() {
        let body = "AccountSid=cb6c&CallDuration=2&CallSid=v2%3A7V3r&CallStatus=completed&CallbackSource=call-progress-events\
&From=%2B18445931290&HangupSource=callee&SequenceNumber=0&To=%2B13122010055";
        let e = map(Provider::Telnyx, &[], "", body);
        assert_eq!(e.event_type, "call.completed");
        assert_eq!(e.provider_event_id, "v2:7V3r:completed:0");
        let e = map(
            Provider::Telnyx,
            &[],
            "",
            "CallSid=v2%3A1&CallStatus=mystery",
        );
        assert_eq!(e.event_type, "telnyx.mystery");
    }

    #[test]
    fn telnyx_malformed_bodies_are_errors() {
        assert_eq!(
            err(
                Provider::Telnyx,
                &[],
                br#"{"data":{"event_type":"call.hangup"}}"#
            ),
            MapError::MissingField("data.id")
        );
        assert_eq!(
            err(Provider::Telnyx, &[], br#"{"data":{"id":"x"}}"#),
            MapError::MissingField("data.event_type")
        );
        assert_eq!(err(Provider::Telnyx, &[], b"{not json"), MapError::NotJson);
    }

    // ---- Bland (docs/protocols.md §9.3) ----

    const BLAND_COMPLETED: &str = r#"{
  "call_id": "d9cce3f3-23cf-4fa7-b62c-8be8119b8715", "c_id": "d9cce3f3-23cf-4fa7-b62c-8be8119b8715",
  "status": "completed", "completed": true, "queue_status": "completed", "call_length": 0.75, "corrected_duration": "45",
  "to": "+12223334444", "from": "+17163511654", "inbound": false, "batch_id": null,
  "created_at": "2024-04-27T23:51:18.025251+00:00", "started_at": "2024-04-27T23:51:25+00:00", "end_at": "2024-04-27T23:52:10.000Z",
  "max_duration": 30, "error_message": null, "answered_by": "human", "record": true, "recording_url": "https://rec/recording.mp3",
  "metadata": { "booking_id": "bk_123", "call_id": "call_55" },
  "summary": "The caller confirmed the Tuesday 3pm appointment.", "price": 0.068, "call_ended_by": "ASSISTANT",
  "concatenated_transcript": "user: Hello? \n assistant: Hi there!",
  "transcripts": [ { "id": 123456, "created_at": "2024-04-27T23:51:32.287493+00:00", "text": "Hello?", "user": "user", "c_id": "d9cc" } ]
}"#;

    #[test]
    fn bland_completed_call() {
        let e = map(Provider::Bland, &[], "", BLAND_COMPLETED);
        assert_eq!(e.event_type, "call.completed");
        assert_eq!(e.call_status, Some(CallStatus::Completed));
        assert_eq!(
            e.provider_event_id,
            "d9cce3f3-23cf-4fa7-b62c-8be8119b8715:completed"
        );
        assert_eq!(
            e.provider_call_id.as_deref(),
            Some("d9cce3f3-23cf-4fa7-b62c-8be8119b8715")
        );
        assert_eq!(e.our_call_id.as_deref(), Some("call_55"));
        assert_eq!(e.occurred_at.as_deref(), Some("2024-04-27T23:52:10Z"));
        assert_eq!(e.data["duration_seconds"], 45);
        assert_eq!(
            e.data["summary"],
            "The caller confirmed the Tuesday 3pm appointment."
        );
        assert_eq!(e.data["transcript"], "user: Hello? \n assistant: Hi there!");
        assert_eq!(e.data["recording_url"], "https://rec/recording.mp3");
        assert_eq!(e.data["answered_by"], "human");
        assert!(e.data.get("error_message").is_none());
    }

    #[test]
    fn bland_statuses_and_fallbacks() {
        let e = map(
            Provider::Bland,
            &[],
            "",
            r#"{"call_id":"b1","status":"no-answer","call_length":0.5}"#,
        );
        assert_eq!(e.event_type, "call.no_answer");
        assert_eq!(e.data["duration_seconds"], 30);
        let e = map(
            Provider::Bland,
            &[],
            "",
            r#"{"call_id":"b1","status":"complete"}"#,
        );
        assert_eq!(e.event_type, "call.completed");
        let e = map(
            Provider::Bland,
            &[],
            "",
            r#"{"call_id":"b1","status":"voicemail"}"#,
        );
        assert_eq!(e.event_type, "bland.voicemail");
        let e = map(
            Provider::Bland,
            &[],
            "",
            r#"{"call_id":"b1","completed":true}"#,
        );
        assert_eq!(e.event_type, "call.completed");
        // No status: the key falls back to the body hash.
        let body = r#"{"call_id":"b1","completed":true}"#;
        let digest = hex(&Sha256::digest(body.as_bytes()));
        assert_eq!(e.provider_event_id, format!("sha256:{digest}"));
        let e = map(Provider::Bland, &[], "", r#"{"message":"hello"}"#);
        assert_eq!(e.event_type, "bland.event");
        assert_eq!(err(Provider::Bland, &[], b"call_id=1"), MapError::NotJson);
    }

    // ---- Retell (vector R15's body, docs/protocols.md §1.5) ----

    #[test]
    fn retell_analyzed_without_summary_is_a_transcript() {
        let body = r#"{"event":"call_analyzed","call":{"call_id":"Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6","call_status":"ended"}}"#;
        let e = map(Provider::Retell, &[], "", body);
        assert_eq!(e.event_type, "call.transcript.ready");
        assert_eq!(
            e.provider_event_id,
            "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6:call_analyzed"
        );
        assert_eq!(
            e.provider_call_id.as_deref(),
            Some("Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6")
        );
        assert_eq!(e.call_status, None);
    }

    #[test]
    fn retell_lifecycle() {
        let started = r#"{"event":"call_started","call":{"call_id":"r1","call_status":"ongoing","start_timestamp":1714608475945,
            "from_number":"+12137771234","to_number":"+12137771235","direction":"outbound","metadata":{"call_id":"call_3"}}}"#;
        let e = map(Provider::Retell, &[], "", started);
        assert_eq!(e.event_type, "call.in_progress");
        assert_eq!(e.occurred_at.as_deref(), Some("2024-05-02T00:07:55.945Z"));
        assert_eq!(e.our_call_id.as_deref(), Some("call_3"));
        assert_eq!(e.data["to"], "+12137771235");

        let ended = r#"{"event":"call_ended","call":{"call_id":"r1","call_status":"ended","start_timestamp":1714608475945,
            "end_timestamp":1714608491736,"disconnection_reason":"user_hangup","transcript":"Agent: hi\nUser: bye\n",
            "recording_url":"https://retellai.s3/r1.wav"}}"#;
        let e = map(Provider::Retell, &[], "", ended);
        assert_eq!(e.event_type, "call.completed");
        assert_eq!(e.provider_event_id, "r1:call_ended");
        assert_eq!(e.data["duration_seconds"], 16);
        assert_eq!(e.data["ended_reason"], "user_hangup");
        assert_eq!(e.data["transcript"], "Agent: hi\nUser: bye\n");

        for (reason, kind) in [
            ("dial_busy", "call.busy"),
            ("dial_no_answer", "call.no_answer"),
            ("dial_failed", "call.failed"),
            ("error_llm_websocket_open", "call.failed"),
            ("voicemail_reached", "call.completed"),
        ] {
            let body = format!(
                r#"{{"event":"call_ended","call":{{"call_id":"r1","disconnection_reason":"{reason}"}}}}"#
            );
            assert_eq!(
                map(Provider::Retell, &[], "", &body).event_type,
                kind,
                "{reason}"
            );
        }

        let analyzed = r#"{"event_type":"call_analyzed","call":{"call_id":"r1","call_analysis":{"call_summary":"Booked.","user_sentiment":"Positive"}}}"#;
        let e = map(Provider::Retell, &[], "", analyzed);
        assert_eq!(e.event_type, "call.summary.ready");
        assert_eq!(e.data["summary"], "Booked.");
    }

    #[test]
    fn retell_unknown_and_malformed() {
        let e = map(
            Provider::Retell,
            &[],
            "",
            r#"{"event":"transcript_updated","call":{"call_id":"r1"}}"#,
        );
        assert_eq!(e.event_type, "retell.transcript_updated");
        assert_eq!(
            err(
                Provider::Retell,
                &[],
                br#"{"event":"call_ended","call":{}}"#
            ),
            MapError::MissingField("call.call_id")
        );
        assert_eq!(
            err(Provider::Retell, &[], br#"{"call":{"call_id":"r1"}}"#),
            MapError::MissingField("event")
        );
    }

    // ---- Vapi (the V vectors' body, docs/protocols.md §1.7) ----

    #[test]
    fn vapi_end_of_call_report() {
        let body = r#"{"message":{"type":"end-of-call-report","endedReason":"customer-ended-call","call":{"id":"3f1c9e2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b"}}}"#;
        let e = map(Provider::Vapi, &[], "", body);
        assert_eq!(e.event_type, "call.transcript.ready");
        assert_eq!(
            e.provider_event_id,
            "3f1c9e2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b:end-of-call-report"
        );
        assert_eq!(
            e.provider_call_id.as_deref(),
            Some("3f1c9e2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b")
        );
        assert_eq!(e.data["ended_reason"], "customer-ended-call");

        let full = r#"{"message":{"type":"end-of-call-report","timestamp":1714608491736,"endedReason":"assistant-ended-call",
            "call":{"id":"v1","metadata":{"call_id":"call_8"},"customer":{"number":"+15550001111"}},"phoneNumber":{"number":"+15550002222"},
            "artifact":{"transcript":"AI: hi\nUser: bye","recordingUrl":"https://vapi/rec.wav"},"analysis":{"summary":"Said bye."},"durationSeconds":12.6}}"#;
        let e = map(
            Provider::Vapi,
            &[(VAPI_MESSAGE_ID_HEADER, "mid-1")],
            "",
            full,
        );
        assert_eq!(e.event_type, "call.summary.ready");
        assert_eq!(e.provider_event_id, "mid-1");
        assert_eq!(e.our_call_id.as_deref(), Some("call_8"));
        assert_eq!(e.occurred_at.as_deref(), Some("2024-05-02T00:08:11.736Z"));
        assert_eq!(e.data["to"], "+15550001111");
        assert_eq!(e.data["from"], "+15550002222");
        assert_eq!(e.data["summary"], "Said bye.");
        assert_eq!(e.data["transcript"], "AI: hi\nUser: bye");
        assert_eq!(e.data["recording_url"], "https://vapi/rec.wav");
        assert_eq!(e.data["duration_seconds"], 13);
    }

    #[test]
    fn vapi_status_updates() {
        for (status, reason, kind) in [
            ("queued", "", "call.queued"),
            ("ringing", "", "call.ringing"),
            ("in-progress", "", "call.in_progress"),
            ("ended", "customer-ended-call", "call.completed"),
            ("ended", "customer-busy", "call.busy"),
            ("ended", "customer-did-not-answer", "call.no_answer"),
            ("ended", "pipeline-error-openai-llm-failed", "call.failed"),
            ("forwarding", "", "vapi.status-update.forwarding"),
        ] {
            let body = format!(
                r#"{{"message":{{"type":"status-update","status":"{status}","endedReason":"{reason}","call":{{"id":"v1"}}}}}}"#
            );
            let e = map(Provider::Vapi, &[], "", &body);
            assert_eq!(e.event_type, kind, "{status} {reason}");
            // Each status of the same call is a distinct event.
            assert_eq!(e.provider_event_id, format!("v1:status-update:{status}"));
        }
    }

    #[test]
    fn vapi_unknown_and_malformed() {
        let e = map(
            Provider::Vapi,
            &[],
            "",
            r#"{"message":{"type":"tool-calls","call":{"id":"v1"}}}"#,
        );
        assert_eq!(e.event_type, "vapi.tool-calls");
        assert_eq!(
            err(Provider::Vapi, &[], br#"{"message":{"call":{"id":"v1"}}}"#),
            MapError::MissingField("message.type")
        );
        assert_eq!(
            err(Provider::Vapi, &[], br#"{"message":{"type":"hang"}}"#),
            MapError::MissingField("message.call.id")
        );
        assert_eq!(err(Provider::Vapi, &[], b"\x00\x01"), MapError::NotJson);
    }

    // ---- Exotel (docs/protocols.md §1.8) ----

    #[test]
    fn exotel_status_callback_as_form_json_or_query() {
        let form = "CallSid=80bfbec2d78bbbf10fb851f4fa165211&DateUpdated=2024-01-15+14%3A30%3A45&Status=completed\
&RecordingUrl=https%3A%2F%2Fs3.example%2Fabc123.mp3&To=09999999999&From=08888888888";
        let e = map(Provider::Exotel, &[], "token=secret&call_id=call_1", form);
        assert_eq!(e.event_type, "call.completed");
        assert_eq!(
            e.provider_event_id,
            "80bfbec2d78bbbf10fb851f4fa165211:completed"
        );
        assert_eq!(
            e.provider_call_id.as_deref(),
            Some("80bfbec2d78bbbf10fb851f4fa165211")
        );
        assert_eq!(
            e.our_call_id, None,
            "an unsigned query call_id names no call"
        );
        assert_eq!(e.data["recording_url"], "https://s3.example/abc123.mp3");
        assert!(e.data.to_string().find("secret").is_none());

        let json = r#"{"CallSid":"80bf","DateUpdated":"2024-01-15 14:30:45","Status":"no-answer","RecordingUrl":null}"#;
        let e = map(Provider::Exotel, &[], "token=t", json);
        assert_eq!(e.event_type, "call.no_answer");
        assert_eq!(e.call_status, Some(CallStatus::NoAnswer));

        let e = map(Provider::Exotel, &[], "token=t&CallSid=q1&Status=busy", "");
        assert_eq!(e.event_type, "call.busy");
        assert_eq!(e.provider_event_id, "q1:busy");
    }

    #[test]
    fn exotel_unknown_and_malformed() {
        let e = map(Provider::Exotel, &[], "", "CallSid=x&Status=in-progress");
        assert_eq!(e.event_type, "call.in_progress");
        let e = map(Provider::Exotel, &[], "", "CallSid=x&Status=held");
        assert_eq!(e.event_type, "exotel.held");
        assert_eq!(
            err(Provider::Exotel, &[], b"CallSid=x"),
            MapError::MissingField("Status")
        );
        assert_eq!(
            err(Provider::Exotel, &[], b"Status=busy"),
            MapError::MissingField("CallSid")
        );
        assert_eq!(
            err(Provider::Exotel, &[], b"{\"CallSid\":"),
            MapError::NotJson
        );
        assert_eq!(err(Provider::Exotel, &[], b"\xc3\x28"), MapError::NotForm);
    }

    // ---- catalogue, envelope, payload ----

    #[test]
    fn catalogue_is_unique_and_covers_every_call_status_event() {
        let mut seen = std::collections::HashSet::new();
        assert!(EVENT_TYPES.iter().all(|t| seen.insert(*t)));
        for status in CallStatus::ALL {
            let kind = call_type(status);
            let carrier = !matches!(status, CallStatus::Scheduled | CallStatus::Dispatching);
            assert_eq!(EVENT_TYPES.contains(&kind.as_str()), carrier, "{kind}");
        }
    }

    #[test]
    fn envelope_has_the_standard_shape() {
        let e = map(Provider::Twilio, &[], "", TWILIO_COMPLETED);
        let original = original_payload(TWILIO_COMPLETED.as_bytes());
        let env = envelope(
            &e,
            Provider::Twilio,
            Some("call_1"),
            "2030-01-01T00:00:00Z",
            original,
        );
        assert_eq!(env["type"], "call.completed");
        assert_eq!(env["timestamp"], "2025-04-01T18:22:05Z");
        assert_eq!(env["data"]["provider"], "twilio");
        assert_eq!(env["data"]["provider_event_id"], "CAxxxx:completed:3");
        assert_eq!(env["data"]["provider_call_id"], "CAxxxx");
        assert_eq!(env["data"]["call_id"], "call_1");
        assert_eq!(env["data"]["to"], "+15558675310");
        assert_eq!(env["data"]["payload"]["CallStatus"], "completed");
        assert_eq!(env.as_object().unwrap().len(), 3);
    }

    #[test]
    fn envelope_falls_back_to_the_given_time_and_protects_reserved_keys() {
        let body = r#"{"type":"thing.happened","data":{"provider":"spoofed","call_id":"spoofed","payload":1,"x":2}}"#;
        let e = map(Provider::Standard, &[("webhook-id", "m1")], "", body);
        let env = envelope(
            &e,
            Provider::Standard,
            None,
            "2030-01-01T00:00:00Z",
            json!({"raw": true}),
        );
        assert_eq!(env["timestamp"], "2030-01-01T00:00:00Z");
        assert_eq!(env["data"]["provider"], "standard");
        assert_eq!(env["data"]["call_id"], Value::Null);
        assert_eq!(env["data"]["payload"], json!({"raw": true}));
        assert_eq!(env["data"]["x"], 2);
    }

    #[test]
    fn original_payload_keeps_json_forms_and_text() {
        assert_eq!(original_payload(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(
            original_payload(b"A=1&B=%2B2"),
            json!({"A": "1", "B": "+2"})
        );
        assert_eq!(original_payload(b"plain"), json!("plain"));
        assert_eq!(original_payload(b"\xff"), json!("\u{fffd}"));
    }

    #[test]
    fn timestamps_normalise_to_utc() {
        assert_eq!(
            to_rfc3339("2024-04-27T23:51:18.025251+02:00").as_deref(),
            Some("2024-04-27T21:51:18.025251Z")
        );
        assert_eq!(
            to_rfc3339("Tue, 01 Apr 2025 18:22:05 +0000").as_deref(),
            Some("2025-04-01T18:22:05Z")
        );
        assert_eq!(
            to_rfc3339("2025-04-01 14:00:00.900+00").as_deref(),
            Some("2025-04-01T14:00:00.900Z")
        );
        assert_eq!(to_rfc3339("2024-01-15 14:30:45"), None);
        assert_eq!(to_rfc3339("yesterday"), None);
    }

    // ---- robustness ----

    const KEYS: &[&str] = &[
        "type",
        "data",
        "event",
        "event_type",
        "call",
        "call_id",
        "c_id",
        "status",
        "queue_status",
        "message",
        "id",
        "payload",
        "hangup_cause",
        "client_state",
        "timestamp",
        "created_at",
        "end_at",
        "metadata",
        "completed",
        "corrected_duration",
        "call_length",
        "start_timestamp",
        "end_timestamp",
        "duration_ms",
        "durationSeconds",
        "CallSid",
        "Status",
        "tags",
        "email_id",
        "call_analysis",
        "call_summary",
        "analysis",
        "summary",
        "to",
    ];

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(vec![
                "ended",
                "completed",
                "call_ended",
                "status-update",
                "end-of-call-report",
                "call.hangup",
                "x"
            ])
            .prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    fn check_no_panic(body: &[u8], query: &str) {
        let headers = h(&[("webhook-id", "m"), ("svix-id", "m")]);
        for provider in Provider::ALL {
            if let Ok(Mapped { event: e, original }) = map_event(provider, &headers, query, body) {
                // The tree the mapping parsed is the original the envelope would read alone.
                assert_eq!(original, original_payload(body));
                assert!(!e.event_type.is_empty());
                assert!(e.data.is_object());
                assert!(!e.provider_event_id.is_empty());
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256), query in ".{0,40}") {
            check_no_panic(&body, &query);
        }

        #[test]
        fn arbitrary_json_never_panics(value in arb_json()) {
            check_no_panic(&serde_json::to_vec(&value).unwrap(), "");
        }

        #[test]
        fn arbitrary_forms_never_panic(
            pairs in prop::collection::vec((prop::sample::select(vec!["CallSid", "CallStatus", "Status", "SequenceNumber",
                "Timestamp", "RecordingStatus", "AnsweredBy", "CallDuration", "call_id"]), ".{0,12}"), 0..6)
        ) {
            let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            check_no_panic(body.as_bytes(), &body);
        }
    }
}
