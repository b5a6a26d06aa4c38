//! Calendar import: each VEVENT of a `text/calendar` body becomes a scheduled call.
//!
//! An event is turned into the JSON body `POST /api/v1/calls` takes (`to`, `agent_id`,
//! `start_at`, `time_zone`, `contact.name`, `metadata`), so the import goes through exactly the
//! validation and the storage of a scheduled call. The number to call is the first `ATTENDEE`
//! with a `tel:` URI (its `CN` becomes the contact name), else `X-PHONE`, else `LOCATION` when it
//! is a phone number. The `UID` is kept on the call: importing it again updates that call.

use super::time::Clock;
use super::{Document, Event, When};
use crate::zones::{Zone, ZoneRules};
use serde_json::{json, Map, Value};
use thiserror::Error;

/// Events one import may carry (each costs a few D1 round trips).
pub const MAX_IMPORT_EVENTS: usize = 100;
/// Largest `text/calendar` body accepted, in bytes.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024;
/// Longest UID kept.
pub const MAX_UID_BYTES: usize = 255;

/// The file as a whole cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    #[error("the file has {0} events; at most {MAX_IMPORT_EVENTS} are imported at once")]
    TooManyEvents(usize),
}

/// Why one event is not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// One event of the file and what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Line of its `BEGIN:VEVENT`.
    pub line: usize,
    pub uid: Option<String>,
    /// The `POST /api/v1/calls` body it stands for, or why it cannot be one.
    pub call: Result<Value, Refusal>,
}

/// The events of `doc` as call bodies for `agent_id`; floating times are read in `floating`
/// when given. Events that are overrides of a recurring one, recurring, cancelled, all-day,
/// without a number or a UID, or repeating a UID of the file are refused one by one.
pub fn plan(
    doc: &Document,
    rules: &dyn ZoneRules,
    agent_id: &str,
    floating: Option<Zone<'_>>,
) -> Result<Vec<Planned>, ImportError> {
    if doc.events.len() > MAX_IMPORT_EVENTS {
        return Err(ImportError::TooManyEvents(doc.events.len()));
    }
    let clock = Clock::new(doc, rules, floating);
    let mut seen = std::collections::HashSet::new();
    Ok(doc
        .events
        .iter()
        .map(|event| {
            let uid = event.uid.clone();
            let call = uid
                .as_deref()
                .ok_or_else(|| refuse("missing_uid", "the event has no UID"))
                .and_then(|uid| {
                    if uid.len() > MAX_UID_BYTES {
                        return Err(refuse(
                            "invalid_uid",
                            format!("a UID is at most {MAX_UID_BYTES} bytes"),
                        ));
                    }
                    if !seen.insert(uid.to_owned()) {
                        return Err(refuse(
                            "duplicate_uid",
                            "an earlier event of the file has this UID",
                        ));
                    }
                    body(event, uid, &clock, agent_id)
                });
            Planned {
                line: event.line,
                uid,
                call,
            }
        })
        .collect())
}

fn body(event: &Event, uid: &str, clock: &Clock<'_>, agent_id: &str) -> Result<Value, Refusal> {
    if event.recurrence_id.is_some() || event.rule.is_some() || !event.rdates.is_empty() {
        return Err(refuse(
            "recurring_event",
            "a recurring event is not one call: export the single occurrence",
        ));
    }
    if event.cancelled {
        return Err(refuse("cancelled_event", "the event is cancelled"));
    }
    if matches!(event.start, When::Date(_)) {
        return Err(refuse(
            "all_day_event",
            "an all-day event has no time to call at",
        ));
    }
    let start = clock.instant(&event.start).map_err(|r| {
        let code = if matches!(event.start, When::Local { tzid: None, .. }) {
            "floating_time"
        } else {
            "unknown_time_zone"
        };
        refuse(code, format!("DTSTART: {r}"))
    })?;
    let zone = match &event.start {
        When::Local {
            tzid: Some(tzid), ..
        } => clock.zone(tzid).ok().and_then(|z| z.iana_name()),
        When::Local { tzid: None, .. } => clock.floating().and_then(|z| z.iana_name()),
        _ => None,
    };
    let (to, name) = phone_of(event).ok_or_else(|| {
        refuse(
            "no_phone",
            "no number to call: an ATTENDEE with a tel: URI, X-PHONE or a phone number in LOCATION",
        )
    })?;
    let mut metadata = Map::new();
    metadata.insert("ical_uid".into(), json!(uid));
    if let Some(summary) = &event.summary {
        metadata.insert("ical_summary".into(), json!(truncate(summary, 200)));
    }
    let mut body = json!({
        "to": to,
        "agent_id": agent_id,
        "start_at": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "metadata": metadata,
    });
    if let Some(zone) = zone {
        body["time_zone"] = json!(zone);
    }
    if let Some(name) = name {
        body["contact"] = json!({ "name": truncate(&name, 200) });
    }
    Ok(body)
}

/// The number to call and the contact's name.
fn phone_of(event: &Event) -> Option<(String, Option<String>)> {
    if let Some(attendee) = event.attendees.iter().find(|a| tel(&a.address).is_some()) {
        return Some((tel(&attendee.address)?, attendee.name.clone()));
    }
    if let Some(phone) = &event.phone {
        return Some((number(phone.strip_prefix("tel:").unwrap_or(phone)), None));
    }
    let location = event.location.as_deref()?;
    let candidate = number(location.strip_prefix("tel:").unwrap_or(location));
    (candidate.starts_with('+') && candidate[1..].bytes().all(|b| b.is_ascii_digit()))
        .then_some((candidate, None))
}

/// The number of a `tel:` URI (RFC 3966; case-insensitive scheme, parameters dropped).
fn tel(address: &str) -> Option<String> {
    let rest = address
        .get(..4)?
        .eq_ignore_ascii_case("tel:")
        .then(|| &address[4..])?;
    Some(number(rest.split(';').next().unwrap_or(rest)))
}

/// A number with its RFC 3966 visual separators (space, `-`, `.`, `(`, `)`) removed.
fn number(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
