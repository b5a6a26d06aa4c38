//! Validation of `POST /api/v1/calls` and `PATCH /api/v1/calls/{id}` bodies.
//!
//! Every field problem is collected, so one 422 lists them all. Unknown fields are ignored
//! (clients may send more than we read) and a JSON `null` counts as an absent field.

use crate::zones::{Zone, ZoneRules};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// Largest accepted `metadata`, serialized; it is stored in D1 and echoed to providers.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Longest accepted `contact.name`, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest accepted `agent_id`, in bytes.
const MAX_AGENT_ID_BYTES: usize = 128;

/// Who places the call: Bland's hosted agent, or our own agent over a Twilio or Telnyx call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DialProvider {
    /// Bland.ai places and runs the call.
    Bland,
    /// The default: our own agent (the request names one) on a Twilio call.
    #[default]
    Twilio,
    /// Our own agent on a Telnyx call.
    Telnyx,
}

impl DialProvider {
    /// Every provider, as accepted in `provider`.
    pub const ALL: [DialProvider; 3] = [
        DialProvider::Bland,
        DialProvider::Twilio,
        DialProvider::Telnyx,
    ];

    /// The wire / stored name (`bland`, `twilio`, `telnyx`).
    pub fn as_str(self) -> &'static str {
        match self {
            DialProvider::Bland => "bland",
            DialProvider::Twilio => "twilio",
            DialProvider::Telnyx => "telnyx",
        }
    }

    /// Parses the wire name (exact, lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A validated request to schedule a call.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRequest {
    /// Callee, E.164.
    pub to: String,
    /// Agent id as given; its existence is checked by the edge.
    pub agent_id: String,
    /// When to dial, strictly after `now`.
    pub start_at: DateTime<Utc>,
    /// IANA zone the user gave (for display and Bland's `start_time`), validated.
    pub time_zone: Option<String>,
    /// Contact name, trimmed; `None` when absent or blank.
    pub contact_name: Option<String>,
    /// Where the confirmation email goes (`contact.email` or its alias `contact_email`).
    pub contact_email: Option<String>,
    /// Defaults to [`DialProvider::Twilio`].
    pub provider: DialProvider,
    /// Caller id, E.164; the edge falls back to the agent's number, then `DEFAULT_FROM_NUMBER`.
    pub from: Option<String>,
    /// Always a JSON object (`{}` when absent), at most [`MAX_METADATA_BYTES`] serialized.
    pub metadata: Value,
}

/// One invalid field, as listed in a 422 body.
///
/// Codes: `invalid_body`, `required`, `invalid_type`, `invalid_value`, `too_long`,
/// `too_large`, `conflict`, `invalid_phone`, `invalid_email`, `invalid_time`, `in_past`,
/// `unknown_time_zone`, `nonexistent_time`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON path of the field (`to`, `contact.email`, …); empty for the body itself.
    pub field: String,
    /// Stable machine-readable reason.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A number refused by the dialling rules, naming the rule (`premium_number`, …).
    pub fn refused(field: &str, refusal: &crate::dialing::DialRefusal) -> Self {
        FieldError::new(field, refusal.code(), format!("{field}: {refusal}"))
    }

    /// A field error from its parts.
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            code,
            message: message.into(),
        }
    }
}

/// Validates a `POST /api/v1/calls` body against the current time `now`, with `zones` giving
/// the rules of its `time_zone`.
pub fn parse_schedule(
    body: &Value,
    now: DateTime<Utc>,
    zones: &dyn ZoneRules,
) -> Result<ScheduleRequest, Vec<FieldError>> {
    let obj = body_object(body)?;
    let mut errors = Vec::new();

    let to = destination(obj, "to", &mut errors);
    if to.is_none() && field(obj, "to").is_none() {
        errors.push(FieldError::new("to", "required", "to is required"));
    }
    let agent_id = agent_id(obj, &mut errors);
    let start = start_time(obj, now, zones, &mut errors);
    let (contact_name, contact_email) = contact(obj, &mut errors);
    let provider = match string(obj, "provider", &mut errors) {
        None => Some(DialProvider::default()),
        Some(name) => DialProvider::parse(name).or_else(|| {
            errors.push(FieldError::new(
                "provider",
                "invalid_value",
                "provider must be one of bland, twilio, telnyx",
            ));
            None
        }),
    };
    let from = phone(obj, "from", &mut errors);
    let metadata = metadata(obj, &mut errors);

    match (to, agent_id, start, provider) {
        (Some(to), Some(agent_id), Some((start_at, time_zone)), Some(provider))
            if errors.is_empty() =>
        {
            Ok(ScheduleRequest {
                to,
                agent_id,
                start_at,
                time_zone,
                contact_name,
                contact_email,
                provider,
                from,
                metadata,
            })
        }
        _ => Err(errors),
    }
}

/// Validates a `PATCH /api/v1/calls/{id}` body: the new start instant and the zone it came with.
pub fn parse_reschedule(
    body: &Value,
    now: DateTime<Utc>,
    zones: &dyn ZoneRules,
) -> Result<(DateTime<Utc>, Option<String>), Vec<FieldError>> {
    let obj = body_object(body)?;
    let mut errors = Vec::new();
    match start_time(obj, now, zones, &mut errors) {
        Some(start) if errors.is_empty() => Ok(start),
        _ => Err(errors),
    }
}

/// True for an E.164 number: `+`, a non-zero digit, then 1 to 14 more digits.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// SHA-256 (hex) of the body's canonical JSON (object keys sorted, no whitespace), so the same
/// `Idempotency-Key` with the same body finds the same call and with another body gives a 409.
///
/// Keys are sorted here rather than relying on `serde_json::Map` order, which becomes insertion
/// order if any crate in the build enables serde_json's `preserve_order`.
pub fn request_fingerprint(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    super::sha256_hex(canonical.as_bytes())
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // Keys are unique, so an unstable sort gives the same order (and less wasm).
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn body_object(body: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    body.as_object().ok_or_else(|| {
        vec![FieldError::new(
            "",
            "invalid_body",
            "the body must be a JSON object",
        )]
    })
}

/// A present, non-null field.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// A string field at `path`; a present non-string is reported.
fn string_at<'a>(
    value: Option<&'a Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match value {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(FieldError::new(
                path,
                "invalid_type",
                format!("{path} must be a string"),
            ));
            None
        }
    }
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    string_at(field(obj, name), name, errors)
}

fn phone(obj: &Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = string(obj, name, errors)?;
    if is_e164(value) {
        Some(value.to_owned())
    } else {
        errors.push(FieldError::new(
            name,
            "invalid_phone",
            format!("{name} must be an E.164 number such as +15551234567"),
        ));
        None
    }
}

/// A number we will dial: E.164 and allowed by the dialling rules (no premium, SIP or
/// withheld numbers); the agent's countries are checked by the edge, which loads the agent.
fn destination(
    obj: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = string(obj, name, errors)?;
    match crate::dialing::DialPolicy::anywhere().check(value) {
        Ok(_) => Some(value.to_owned()),
        Err(refusal) => {
            errors.push(FieldError::refused(name, &refusal));
            None
        }
    }
}

fn agent_id(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<String> {
    match string(obj, "agent_id", errors) {
        None if field(obj, "agent_id").is_some() => None,
        None | Some("") => {
            errors.push(FieldError::new(
                "agent_id",
                "required",
                "agent_id is required",
            ));
            None
        }
        Some(id) if id.len() > MAX_AGENT_ID_BYTES || id.chars().any(char::is_control) => {
            errors.push(FieldError::new(
                "agent_id",
                "invalid_value",
                format!("agent_id must be at most {MAX_AGENT_ID_BYTES} bytes without control characters"),
            ));
            None
        }
        Some(id) => Some(id.to_owned()),
    }
}

/// The start instant (strictly after `now`) and the validated zone, from either `start_at`
/// (RFC 3339 with offset) or `local_time` + `time_zone`.
fn start_time(
    obj: &Map<String, Value>,
    now: DateTime<Utc>,
    zones: &dyn ZoneRules,
    errors: &mut Vec<FieldError>,
) -> Option<(DateTime<Utc>, Option<String>)> {
    let start_at = string(obj, "start_at", errors);
    let local_time = string(obj, "local_time", errors);
    let zone_name = string(obj, "time_zone", errors);
    let zone = zone_name.and_then(|name| {
        let zone = Zone::resolve(zones, name);
        if zone.is_none() {
            errors.push(FieldError::new(
                "time_zone",
                "unknown_time_zone",
                format!("{name:?} is not an IANA time zone name such as Europe/Paris"),
            ));
        }
        zone
    });

    let (field_name, at) = match (start_at, local_time) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "local_time",
                "conflict",
                "give either start_at or local_time with time_zone, not both",
            ));
            return None;
        }
        (None, None) => {
            if field(obj, "start_at").is_none() && field(obj, "local_time").is_none() {
                errors.push(FieldError::new(
                    "start_at",
                    "required",
                    "start_at (RFC 3339 with offset) or local_time with time_zone is required",
                ));
            }
            return None;
        }
        (Some(text), None) => ("start_at", parse_rfc3339(text, errors)?),
        (None, Some(text)) => {
            let naive = parse_local(text, errors);
            if zone_name.is_none() {
                errors.push(FieldError::new(
                    "time_zone",
                    "required",
                    "time_zone is required with local_time",
                ));
            }
            ("local_time", resolve_local(naive?, zone?, errors)?)
        }
    };

    if at <= now {
        errors.push(FieldError::new(
            field_name,
            "in_past",
            format!(
                "{field_name} must be in the future (it is {})",
                at.to_rfc3339()
            ),
        ));
        return None;
    }
    Some((at, zone_name.filter(|_| zone.is_some()).map(str::to_owned)))
}

fn parse_rfc3339(text: &str, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(_) => {
            errors.push(FieldError::new(
                "start_at",
                "invalid_time",
                "start_at must be RFC 3339 with an offset, e.g. 2026-12-01T15:30:00+01:00",
            ));
            None
        }
    }
}

fn parse_local(text: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDateTime> {
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"));
    match parsed {
        Ok(naive) => Some(naive),
        Err(_) => {
            errors.push(FieldError::new(
                "local_time",
                "invalid_time",
                "local_time must look like 2026-12-01T15:30 or 2026-12-01T15:30:00, without an offset",
            ));
            None
        }
    }
}

/// Maps a wall-clock time to an instant. In a DST overlap the earlier instant wins (RFC 5545
/// §3.3.5 reads ambiguous times as their first occurrence); a time in a DST gap never happens
/// on that day's clocks, so it is refused rather than silently shifted.
fn resolve_local(
    naive: NaiveDateTime,
    zone: Zone,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let at = zone.from_local(naive).earliest();
    if at.is_none() {
        errors.push(FieldError::new(
            "local_time",
            "nonexistent_time",
            format!("{naive} does not exist in {zone} (clocks skip it for daylight saving time)"),
        ));
    }
    at
}

/// `contact: {name?, email?}` and the `contact_email` alias; both emails must agree.
fn contact(
    obj: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> (Option<String>, Option<String>) {
    let (name, nested_email) = match field(obj, "contact") {
        None => (None, None),
        Some(Value::Object(contact)) => (
            string_at(field(contact, "name"), "contact.name", errors),
            string_at(field(contact, "email"), "contact.email", errors)
                .map(|email| ("contact.email", email)),
        ),
        Some(_) => {
            errors.push(FieldError::new(
                "contact",
                "invalid_type",
                "contact must be an object {name?, email?}",
            ));
            (None, None)
        }
    };
    let alias_email = string(obj, "contact_email", errors).map(|email| ("contact_email", email));

    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let name = match name {
        Some(n) if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) => {
            errors.push(FieldError::new(
                "contact.name",
                "invalid_value",
                format!("contact.name must be at most {MAX_NAME_CHARS} characters without control characters"),
            ));
            None
        }
        other => other.map(str::to_owned),
    };

    let email = match (nested_email, alias_email) {
        (Some((_, a)), Some((_, b))) if a != b => {
            errors.push(FieldError::new(
                "contact_email",
                "conflict",
                "contact_email and contact.email differ",
            ));
            None
        }
        (Some(given), _) | (None, Some(given)) => Some(given),
        (None, None) => None,
    };
    let email = email.and_then(|(path, email)| {
        if is_email(email) {
            Some(email.to_owned())
        } else {
            errors.push(FieldError::new(
                path,
                "invalid_email",
                format!("{path} must be an address such as jordan@example.com"),
            ));
            None
        }
    });
    (name, email)
}

/// A deliberately plain address check: dot-atom local part, ASCII domain with at least two
/// labels. Quoted local parts and non-ASCII (unencoded IDN) domains are refused.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    s.len() <= 254 && local_ok && domain_ok
}

fn metadata(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Value {
    match field(obj, "metadata") {
        None => Value::Object(Map::new()),
        Some(value @ Value::Object(_)) if value.to_string().len() <= MAX_METADATA_BYTES => {
            value.clone()
        }
        Some(Value::Object(_)) => {
            errors.push(FieldError::new(
                "metadata",
                "too_large",
                format!("metadata must serialize to at most {MAX_METADATA_BYTES} bytes"),
            ));
            Value::Null
        }
        Some(_) => {
            errors.push(FieldError::new(
                "metadata",
                "invalid_type",
                "metadata must be a JSON object",
            ));
            Value::Null
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zones::Tzdb;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn codes(result: Result<ScheduleRequest, Vec<FieldError>>) -> Vec<(String, &'static str)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    fn pair(field: &str, code: &'static str) -> (String, &'static str) {
        (field.to_owned(), code)
    }

    #[test]
    fn minimal_request_gets_defaults() {
        let body = json!({"to": "+15551234567", "agent_id": "ag_1", "start_at": "2026-12-01T15:30:00+01:00"});
        let req = parse_schedule(&body, now(), &Tzdb).unwrap();
        assert_eq!(req.to, "+15551234567");
        assert_eq!(
            req.start_at,
            "2026-12-01T14:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(req.provider, DialProvider::Twilio);
        assert_eq!(req.metadata, json!({}));
        assert_eq!(req.time_zone, None);
        assert_eq!(req.contact_email, None);
    }

    #[test]
    fn full_request_is_read() {
        let body = json!({
            "to": "+442071838750", "agent_id": "ag_1",
            "local_time": "2026-12-01T15:30", "time_zone": "Europe/Paris",
            "contact": {"name": "  Lee, Jordan ", "email": "jordan@example.com"},
            "provider": "bland", "from": "+15017122661", "metadata": {"crm": 42},
            "extra": "ignored"
        });
        let req = parse_schedule(&body, now(), &Tzdb).unwrap();
        assert_eq!(
            req.start_at,
            "2026-12-01T14:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(req.time_zone.as_deref(), Some("Europe/Paris"));
        assert_eq!(req.contact_name.as_deref(), Some("Lee, Jordan"));
        assert_eq!(req.contact_email.as_deref(), Some("jordan@example.com"));
        assert_eq!(req.provider, DialProvider::Bland);
        assert_eq!(req.from.as_deref(), Some("+15017122661"));
        assert_eq!(req.metadata, json!({"crm": 42}));
    }

    #[test]
    fn contact_email_alias_is_accepted_and_must_agree() {
        let base = json!({"to": "+15551234567", "agent_id": "a", "start_at": "2026-12-01T15:30:00Z",
                          "contact_email": "a@example.com"});
        let req = parse_schedule(&base, now(), &Tzdb).unwrap();
        assert_eq!(req.contact_email.as_deref(), Some("a@example.com"));

        let mut both = base.clone();
        both["contact"] = json!({"email": "b@example.com"});
        assert_eq!(
            codes(parse_schedule(&both, now(), &Tzdb)),
            [pair("contact_email", "conflict")]
        );
        both["contact"] = json!({"email": "a@example.com"});
        assert!(parse_schedule(&both, now(), &Tzdb).is_ok());
    }

    #[test]
    fn all_field_errors_are_reported_at_once() {
        let body = json!({
            "to": "5551234567", "agent_id": 7, "start_at": "2020-01-01T00:00:00Z",
            "contact": {"email": "not-an-email", "name": 3}, "provider": "skype",
            "from": "+0123", "metadata": [1]
        });
        assert_eq!(
            codes(parse_schedule(&body, now(), &Tzdb)),
            [
                pair("to", "invalid_phone"),
                pair("agent_id", "invalid_type"),
                pair("start_at", "in_past"),
                pair("contact.name", "invalid_type"),
                pair("contact.email", "invalid_email"),
                pair("provider", "invalid_value"),
                pair("from", "invalid_phone"),
                pair("metadata", "invalid_type"),
            ]
        );
    }

    #[test]
    fn destinations_follow_the_dialling_rules() {
        for (to, code) in [
            ("+19005550123", "premium_number"),
            ("+882123456789", "premium_number"),
            ("+449098790123", "premium_number"),
            ("sip:attacker@evil.example", "sip_address"),
            ("anonymous", "withheld_number"),
            ("+1415555012", "invalid_phone"),
        ] {
            let body = json!({"to": to, "agent_id": "a", "start_at": "2031-01-01T00:00:00Z"});
            assert_eq!(
                codes(parse_schedule(&body, now(), &Tzdb)),
                [pair("to", code)],
                "{to}"
            );
        }
        let body =
            json!({"to": "+442071838750", "agent_id": "a", "start_at": "2031-01-01T00:00:00Z"});
        assert_eq!(
            parse_schedule(&body, now(), &Tzdb).unwrap().to,
            "+442071838750"
        );
    }

    #[test]
    fn missing_fields_are_required() {
        assert_eq!(
            codes(parse_schedule(&json!({"agent_id": ""}), now(), &Tzdb)),
            [
                pair("to", "required"),
                pair("agent_id", "required"),
                pair("start_at", "required")
            ]
        );
        assert_eq!(
            codes(parse_schedule(&json!([1]), now(), &Tzdb)),
            [pair("", "invalid_body")]
        );
    }

    #[test]
    fn time_fields_are_checked() {
        let check = |extra: Value| {
            let mut body = json!({"to": "+15551234567", "agent_id": "a"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            codes(parse_schedule(&body, now(), &Tzdb))
        };
        assert_eq!(
            check(json!({"start_at": "2026-12-01T15:30:00"})),
            [pair("start_at", "invalid_time")]
        );
        assert_eq!(
            check(json!({"start_at": "2026-12-01 15:30"})),
            [pair("start_at", "invalid_time")]
        );
        assert_eq!(
            check(json!({"local_time": "2026-12-01T15:30"})),
            [pair("time_zone", "required")]
        );
        assert_eq!(
            check(json!({"local_time": "2026-12-01T15:30", "time_zone": "Mars/Olympus"})),
            [pair("time_zone", "unknown_time_zone")]
        );
        assert_eq!(
            check(json!({"local_time": "2026-12-01T15:30+01:00", "time_zone": "Europe/Paris"})),
            [pair("local_time", "invalid_time")]
        );
        assert_eq!(
            check(json!({"local_time": "2026-12-01T15:30", "start_at": "2026-12-01T15:30:00Z"})),
            [pair("local_time", "conflict")]
        );
        assert_eq!(
            check(json!({"start_at": "2026-06-01T12:00:00Z"})),
            [pair("start_at", "in_past")]
        );
        assert_eq!(
            check(json!({"local_time": "2026-06-01T13:00:00", "time_zone": "Europe/Paris"})),
            [pair("local_time", "in_past")]
        );
    }

    #[test]
    fn dst_gap_is_refused_and_overlap_takes_the_first_occurrence() {
        let gap = json!({"local_time": "2027-03-14T02:30", "time_zone": "America/New_York"});
        let errors = parse_reschedule(&gap, now(), &Tzdb).unwrap_err();
        assert_eq!(errors[0].code, "nonexistent_time");
        assert!(errors[0].message.contains("America/New_York"));

        let overlap = json!({"local_time": "2026-11-01T01:30", "time_zone": "America/New_York"});
        let (at, zone) = parse_reschedule(&overlap, now(), &Tzdb).unwrap();
        // 01:30 EDT (-04:00), not 01:30 EST (-05:00).
        assert_eq!(at, "2026-11-01T05:30:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(zone.as_deref(), Some("America/New_York"));
    }

    #[test]
    fn reschedule_accepts_start_at_with_optional_zone() {
        let body = json!({"start_at": "2026-12-01T15:30:00-05:00", "time_zone": "America/Chicago"});
        let (at, zone) = parse_reschedule(&body, now(), &Tzdb).unwrap();
        assert_eq!(at, "2026-12-01T20:30:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(zone.as_deref(), Some("America/Chicago"));
        assert_eq!(
            parse_reschedule(&json!({}), now(), &Tzdb).unwrap_err()[0].code,
            "required"
        );
        let bad_zone = json!({"start_at": "2026-12-01T15:30:00Z", "time_zone": "Nowhere"});
        assert_eq!(
            parse_reschedule(&bad_zone, now(), &Tzdb).unwrap_err()[0].code,
            "unknown_time_zone"
        );
    }

    #[test]
    fn metadata_size_is_bounded() {
        let big = "x".repeat(MAX_METADATA_BYTES);
        let body = json!({"to": "+15551234567", "agent_id": "a", "start_at": "2026-12-01T15:30:00Z",
                          "metadata": {"blob": big}});
        assert_eq!(
            codes(parse_schedule(&body, now(), &Tzdb)),
            [pair("metadata", "too_large")]
        );
    }

    #[test]
    fn e164_shapes() {
        for good in ["+15551234567", "+442071838750", "+12", "+123456789012345"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "15551234567",
            "+",
            "+1",
            "+0123456",
            "+1234567890123456",
            "+1 555 123",
            "+1555-123",
            "+１２３",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn email_shapes() {
        for good in [
            "jordan@example.com",
            "a.b+tag@mail.example.co.uk",
            "x@xn--bcher-kva.example",
        ] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "a@",
            "@example.com",
            "a@example",
            "a b@example.com",
            "a..b@example.com",
            "a@-x.example",
            "\"q\"@example.com",
            "a@exa mple.com",
            "a@example.com\r\nBcc: x@y.z",
            "jordan@exämple.com",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_ignores_key_order_and_whitespace_only() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "é"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"é","y":[1,2]},"b":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":{"x":"é","y":[2,1]},"b":1}"#).unwrap();
        assert_eq!(request_fingerprint(&a), request_fingerprint(&b));
        assert_ne!(request_fingerprint(&a), request_fingerprint(&c));
        // sha256 of the canonical text `{}`.
        assert_eq!(
            request_fingerprint(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let mut canonical = String::new();
        write_canonical(&a, &mut canonical);
        assert_eq!(canonical, r#"{"a":{"x":"é","y":[1,2]},"b":1}"#);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_strings_never_panic(
            fields in proptest::collection::vec(("\\PC{0,40}", "\\PC{0,40}"), 0..6),
            start in "\\PC{0,30}",
            local in "(20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9](:[0-6][0-9])?|\\PC{0,30})",
            zone in "(Europe/Paris|America/New_York|Australia/Lord_Howe|\\PC{0,20})",
        ) {
            let mut body = json!({"start_at": start, "local_time": local, "time_zone": zone});
            for (key, value) in fields {
                body[key] = Value::String(value);
            }
            let _ = parse_schedule(&body, now(), &Tzdb);
            body.as_object_mut().unwrap().remove("start_at");
            let _ = parse_reschedule(&body, now(), &Tzdb);
        }
    }

    #[test]
    fn provider_names_round_trip() {
        for p in DialProvider::ALL {
            assert_eq!(DialProvider::parse(p.as_str()), Some(p));
        }
        assert_eq!(DialProvider::parse("Bland"), None);
    }
}
