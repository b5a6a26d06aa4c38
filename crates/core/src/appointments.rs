//! Appointment booking: an agent's `calendar` (weekly hours in an IANA zone, slot length,
//! buffer, horizon), the slot grid it defines, the free slots in a range and the checks a
//! booking must pass.
//!
//! Every bookable slot sits on the agent's grid: each weekly window is cut into slots of
//! `slot_minutes` starting at the window's start, `buffer_minutes` apart, on the zone's wall
//! clock. A booking must start exactly on a grid slot, so two appointments of one agent either
//! share a start (which storage refuses: one live appointment per agent and start) or do not
//! overlap at all. That is what makes double booking impossible with a plain unique index.

use crate::ical::busy::Busy;
use crate::scheduling::request::FieldError;
use crate::targets::check_target;
use crate::zones::{Zone, IANA_NAMES};
use chrono::{DateTime, Datelike, LocalResult, NaiveTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};
use thiserror::Error;

/// One minute, in milliseconds.
const MINUTE_MS: i64 = 60_000;
/// One day, in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
/// Weekday keys of `calendar.weekly`, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// Windows one weekday may have.
const MAX_WINDOWS_PER_DAY: usize = 6;
/// Bounds of `slot_minutes`.
const SLOT_MINUTES: (u64, u64) = (5, 480);
/// Upper bound of `buffer_minutes`.
const MAX_BUFFER_MINUTES: u64 = 240;
/// Upper bound of `horizon_days` (and its default).
const MAX_HORIZON_DAYS: u64 = 365;
const DEFAULT_HORIZON_DAYS: u64 = 30;
const DEFAULT_SLOT_MINUTES: u64 = 30;
/// Most slots `find_slots` returns at once: the model reads a few options to the caller, and a
/// long list only costs tokens and latency.
pub const MAX_SLOTS_LISTED: usize = 12;
/// Longest `calendar.feed_url`, in bytes.
const MAX_FEED_URL_BYTES: usize = 2048;
/// Longest `name` / `note` a booking keeps, in characters.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_NOTE_CHARS: usize = 1000;
/// Moves one appointment may have: each sends the caller an email, so a model (or a client)
/// moving an appointment back and forth cannot flood their inbox. Canceling stays possible.
pub const MAX_CHANGES: i64 = 20;
/// Longest `email` a booking keeps (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// An agent's validated calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// IANA zone the weekly hours are in.
    pub time_zone: String,
    /// Per weekday (Monday first), the open windows as minutes since local midnight.
    pub weekly: [Vec<(u32, u32)>; 7],
    pub slot_minutes: u32,
    pub buffer_minutes: u32,
    pub horizon_days: u32,
    /// Read-only iCalendar feed whose busy times block slots (see `ical::busy`).
    pub feed_url: Option<String>,
}

/// A slot: start and end in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start: i64,
    pub end: i64,
}

/// Why a booking is refused; the text goes back to the model (or the API client).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BookingError {
    /// The agent has no calendar.
    #[error("this agent does not book appointments")]
    NoCalendar,
    /// `start_at` is not an RFC 3339 date-time with offset.
    #[error("{0:?} is not an RFC 3339 date-time with offset")]
    BadTime(String),
    /// The start is in the past.
    #[error("that time has passed")]
    Past,
    /// The start is beyond the booking horizon.
    #[error("appointments can be booked at most {0} days ahead")]
    BeyondHorizon(u32),
    /// The start is not one of the agent's slots (outside hours or off the grid).
    #[error("that time is not a bookable slot; use find_slots for the free times")]
    NotASlot,
    /// Someone else holds the slot.
    #[error("that slot has just been taken; offer another one")]
    SlotTaken,
    /// The call already booked its appointment.
    #[error("this call has already booked an appointment")]
    AlreadyBooked,
    /// A text argument is too long.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// The agent's calendar feed has a busy time over the slot.
    #[error("that time is busy in the agent's calendar; use find_slots for the free times")]
    Busy,
    /// The agent's calendar feed could not be read, so no slot can be known to be free.
    #[error("the agent's calendar cannot be read right now ({0}); no appointment can be booked")]
    FeedUnavailable(String),
    /// The appointment is canceled already.
    #[error("that appointment is canceled already")]
    AlreadyCanceled,
    /// The appointment changed between reading and writing it (another change won).
    #[error("that appointment changed meanwhile; read it again")]
    Changed,
    /// No appointment the caller may change: none booked by this call or for their number.
    #[error("there is no appointment of this caller to change")]
    NoAppointment,
    /// The appointment was moved [`MAX_CHANGES`] times already.
    #[error("that appointment cannot be moved again; cancel it and book a new one")]
    TooManyChanges,
    /// The caller has several appointments and the model named none.
    #[error("the caller has {0} appointments; ask which one and pass its appointment_id")]
    WhichAppointment(usize),
}

impl BookingError {
    /// Stable machine-readable code (tool results, API errors).
    pub fn code(&self) -> &'static str {
        match self {
            BookingError::NoCalendar => "no_calendar",
            BookingError::BadTime(_) => "invalid_time",
            BookingError::Past => "slot_in_past",
            BookingError::BeyondHorizon(_) => "beyond_horizon",
            BookingError::NotASlot => "not_a_slot",
            BookingError::SlotTaken => "slot_taken",
            BookingError::AlreadyBooked => "already_booked",
            BookingError::TooLong(_) => "too_long",
            BookingError::Busy => "calendar_busy",
            BookingError::FeedUnavailable(_) => "calendar_unavailable",
            BookingError::AlreadyCanceled => "already_canceled",
            BookingError::Changed => "appointment_changed",
            BookingError::NoAppointment => "no_appointment",
            BookingError::WhichAppointment(_) => "which_appointment",
            BookingError::TooManyChanges => "too_many_changes",
        }
    }
}

/// Validates `calendar` of an agent body: the normalized object to store, or `None` with the
/// problems pushed to `errors` (fields named `calendar.…`).
pub fn parse_calendar(value: &Value, errors: &mut Vec<FieldError>) -> Option<Value> {
    let before = errors.len();
    let mut push = |field: &str, code: &'static str, message: String| {
        errors.push(FieldError {
            field: format!("calendar{}{field}", if field.is_empty() { "" } else { "." }),
            code,
            message,
        })
    };
    let Some(obj) = value.as_object() else {
        push("", "invalid_type", "calendar must be an object".into());
        return None;
    };
    for key in obj.keys() {
        if ![
            "time_zone",
            "weekly",
            "slot_minutes",
            "buffer_minutes",
            "horizon_days",
            "feed_url",
        ]
        .contains(&key.as_str())
        {
            push(
                key,
                "unknown_field",
                format!("unknown calendar field {key:?}"),
            );
        }
    }
    let zone = obj.get("time_zone").and_then(Value::as_str);
    match zone {
        Some(name) if IANA_NAMES.binary_search(&name).is_ok() => {}
        Some(name) => push(
            "time_zone",
            "invalid_value",
            format!("{name:?} is not an IANA time zone"),
        ),
        None => push(
            "time_zone",
            "required",
            "time_zone (IANA, e.g. Europe/Berlin) is required".into(),
        ),
    }
    let mut number = |key: &str, (min, max): (u64, u64), default: u64| -> u64 {
        match obj.get(key) {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_u64().filter(|n| (min..=max).contains(n)) {
                Some(n) => n,
                None => {
                    push(
                        key,
                        "out_of_range",
                        format!("{key} must be an integer from {min} to {max}"),
                    );
                    default
                }
            },
        }
    };
    let slot = number("slot_minutes", SLOT_MINUTES, DEFAULT_SLOT_MINUTES);
    let buffer = number("buffer_minutes", (0, MAX_BUFFER_MINUTES), 0);
    let horizon = number("horizon_days", (1, MAX_HORIZON_DAYS), DEFAULT_HORIZON_DAYS);
    let mut weekly = Map::new();
    match obj.get("weekly") {
        Some(Value::Object(days)) => {
            for (day, windows) in days {
                if !WEEKDAYS.contains(&day.as_str()) {
                    push(
                        &format!("weekly.{day}"),
                        "unknown_field",
                        "weekdays are mon, tue, wed, thu, fri, sat, sun".into(),
                    );
                    continue;
                }
                match parse_windows(windows) {
                    Ok(parsed) => {
                        let list: Vec<Value> = parsed
                            .iter()
                            .map(|(a, b)| json!([hhmm(*a), hhmm(*b)]))
                            .collect();
                        weekly.insert(day.clone(), Value::from(list));
                    }
                    Err(message) => push(&format!("weekly.{day}"), "invalid_value", message),
                }
            }
        }
        _ => push(
            "weekly",
            "required",
            "weekly must map weekdays to [[\"HH:MM\", \"HH:MM\"], …]".into(),
        ),
    }
    let feed_url = match obj.get("feed_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if url.len() <= MAX_FEED_URL_BYTES => {
            // Only the form here; the address rules depend on ALLOW_PRIVATE_TARGETS, checked by
            // `check_feed_url` where the setting is known (and again before each fetch).
            match check_target(url.trim(), true) {
                Ok(_) => Some(url.trim().to_owned()),
                Err(e) => {
                    push("feed_url", "invalid_url", format!("feed_url: {e}"));
                    None
                }
            }
        }
        Some(_) => {
            push(
                "feed_url",
                "invalid_url",
                format!("feed_url must be an http(s) URL of at most {MAX_FEED_URL_BYTES} bytes"),
            );
            None
        }
    };
    (errors.len() == before).then(|| {
        let mut stored = json!({"time_zone": zone, "weekly": weekly, "slot_minutes": slot,
               "buffer_minutes": buffer, "horizon_days": horizon});
        if let Some(url) = feed_url {
            stored["feed_url"] = json!(url);
        }
        stored
    })
}

/// Checks the `calendar.feed_url` of a validated agent config against the forward-target
/// rules (SSRF): with `allow_private` false only https to public hosts.
pub fn check_feed_url(config: &Value, allow_private: bool) -> Result<(), FieldError> {
    let Some(url) = config.pointer("/calendar/feed_url").and_then(Value::as_str) else {
        return Ok(());
    };
    check_target(url, allow_private)
        .map(|_| ())
        .map_err(|e| FieldError {
            field: "calendar.feed_url".into(),
            code: "target_not_allowed",
            message: format!("feed_url: {e}"),
        })
}

/// What readers other than admins see of a feed address: its origin (scheme, host, port), no
/// user info, path or query. A private calendar's address is a credential (Google's "secret
/// address in iCal format", Outlook's published ICS link).
pub fn feed_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{}://{host}", scheme.to_ascii_lowercase())
}

/// The windows of one weekday, sorted, each `start < end`, none overlapping.
fn parse_windows(value: &Value) -> Result<Vec<(u32, u32)>, String> {
    const RULE: &str = "a weekday is a list of [\"HH:MM\", \"HH:MM\"] windows, start before end, \
                        not overlapping, at most 6";
    let list = value.as_array().ok_or(RULE)?;
    if list.len() > MAX_WINDOWS_PER_DAY {
        return Err(RULE.into());
    }
    let mut windows = Vec::with_capacity(list.len());
    for window in list {
        let pair = window.as_array().filter(|p| p.len() == 2).ok_or(RULE)?;
        let minutes = |v: &Value, end: bool| -> Option<u32> {
            let s = v.as_str()?;
            if end && s == "24:00" {
                return Some(24 * 60);
            }
            let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
            (s.len() == 5).then(|| t.hour_minute())
        };
        let (Some(a), Some(b)) = (minutes(&pair[0], false), minutes(&pair[1], true)) else {
            return Err(RULE.into());
        };
        if a >= b {
            return Err(RULE.into());
        }
        windows.push((a, b));
    }
    windows.sort_unstable();
    if windows.windows(2).any(|w| w[0].1 > w[1].0) {
        return Err(RULE.into());
    }
    Ok(windows)
}

trait HourMinute {
    fn hour_minute(&self) -> u32;
}

impl HourMinute for NaiveTime {
    fn hour_minute(&self) -> u32 {
        use chrono::Timelike;
        self.hour() * 60 + self.minute()
    }
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The calendar in an agent's stored config (as [`parse_calendar`] stored it), if it has one.
pub fn calendar_of(config: &Value) -> Option<Calendar> {
    let cal = config.get("calendar")?;
    let mut weekly: [Vec<(u32, u32)>; 7] = Default::default();
    for (i, day) in WEEKDAYS.iter().enumerate() {
        if let Some(windows) = cal.pointer(&format!("/weekly/{day}")) {
            weekly[i] = parse_windows(windows).ok()?;
        }
    }
    let number = |key: &str| {
        cal.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    Some(Calendar {
        time_zone: cal.get("time_zone")?.as_str()?.to_owned(),
        weekly,
        slot_minutes: number("slot_minutes")?.max(1),
        buffer_minutes: number("buffer_minutes").unwrap_or(0),
        horizon_days: number("horizon_days").unwrap_or(DEFAULT_HORIZON_DAYS as u32),
        feed_url: cal
            .get("feed_url")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

impl Calendar {
    /// Every grid slot starting in `[from, to)` (milliseconds), earliest first. Wall-clock
    /// times a DST change skips give no slot; a repeated hour gives its first occurrence.
    pub fn grid(&self, zone: &Zone<'_>, from: i64, to: i64) -> Vec<Slot> {
        let mut slots = Vec::new();
        let (Some(first), Some(last)) = (
            DateTime::<Utc>::from_timestamp_millis(from),
            DateTime::<Utc>::from_timestamp_millis(to),
        ) else {
            return slots;
        };
        // Local dates a day either side: a window's local date may differ from its UTC date.
        let mut day = zone.at(first).date_naive() - TimeDelta::days(1);
        let end_day = zone.at(last).date_naive() + TimeDelta::days(1);
        let step = self.slot_minutes + self.buffer_minutes;
        while day <= end_day {
            let index = day.weekday().num_days_from_monday() as usize;
            for &(open, close) in &self.weekly[index] {
                let mut at = open;
                while at + self.slot_minutes <= close {
                    let local = day.and_hms_opt(0, 0, 0).expect("midnight exists")
                        + TimeDelta::minutes(at.into());
                    let start = match zone.from_local(local) {
                        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
                        LocalResult::None => None,
                    };
                    if let Some(start) = start.map(|t| t.timestamp_millis()) {
                        if (from..to).contains(&start) {
                            slots.push(Slot {
                                start,
                                end: start + i64::from(self.slot_minutes) * MINUTE_MS,
                            });
                        }
                    }
                    at += step;
                }
            }
            day = day.succ_opt().unwrap_or(day + TimeDelta::days(1));
        }
        // A slot is its start (its end follows), so unstable order is the same order.
        slots.sort_unstable_by_key(|s| s.start);
        slots.dedup();
        slots
    }

    /// The last instant (exclusive) a booking may start at, seen at `now`.
    pub fn horizon_end(&self, now: i64) -> i64 {
        now + i64::from(self.horizon_days) * DAY_MS
    }

    /// The window a calendar feed's busy times are needed for, seen at `now`.
    pub fn feed_window(&self, now: i64) -> (i64, i64) {
        (
            now,
            self.horizon_end(now) + i64::from(self.slot_minutes) * MINUTE_MS,
        )
    }

    /// Up to `limit` free slots starting in `[from, to)`, clamped to now … the horizon, leaving
    /// out the starts in `booked` (our appointments, on the grid) and every slot overlapping one
    /// of the `busy` intervals `[start, end)` (times blocked elsewhere, e.g. an external calendar).
    pub fn free_slots(
        &self,
        zone: &Zone<'_>,
        (from, to): (i64, i64),
        now: i64,
        (booked, busy): (&[i64], &[(i64, i64)]),
        limit: usize,
    ) -> Vec<Slot> {
        let from = from.max(now + 1);
        let to = to.min(self.horizon_end(now));
        if from >= to {
            return Vec::new();
        }
        self.grid(zone, from, to)
            .into_iter()
            .filter(|s| !booked.contains(&s.start))
            .filter(|s| !busy.iter().any(|&(a, b)| a < s.end && s.start < b))
            .take(limit)
            .collect()
    }

    /// The slot starting at `start`, if a booking may take it at `now`.
    pub fn bookable(&self, zone: &Zone<'_>, start: i64, now: i64) -> Result<Slot, BookingError> {
        if start <= now {
            return Err(BookingError::Past);
        }
        if start >= self.horizon_end(now) {
            return Err(BookingError::BeyondHorizon(self.horizon_days));
        }
        self.grid(zone, start, start + 1)
            .into_iter()
            .find(|s| s.start == start)
            .ok_or(BookingError::NotASlot)
    }
}

/// `slot`, unless the calendar feed is busy over it.
pub fn clear_of(slot: Slot, busy: &Busy) -> Result<Slot, BookingError> {
    if busy.overlaps(slot.start, slot.end) {
        Err(BookingError::Busy)
    } else {
        Ok(slot)
    }
}

/// A validated `POST /api/v1/appointments` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    pub agent_id: String,
    /// Milliseconds since the epoch.
    pub start_at: i64,
    pub name: Option<String>,
    pub note: Option<String>,
    /// E.164, when the client names who the appointment is for.
    pub caller_number: Option<String>,
    /// Where the invitations go, if anywhere.
    pub email: Option<String>,
}

/// Validates `POST /api/v1/appointments`; every problem is listed. Whether the time is a free
/// slot is [`Calendar::bookable`]'s and storage's to say.
pub fn parse_booking(body: &Value) -> Result<BookingRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut push = |field: &str, code: &'static str, message: &str| {
        errors.push(FieldError {
            field: field.to_owned(),
            code,
            message: message.to_owned(),
        })
    };
    let Some(obj) = body.as_object() else {
        push("", "invalid_body", "the body must be a JSON object");
        return Err(errors);
    };
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::trim);
    let agent_id = text("agent_id").filter(|s| !s.is_empty());
    if agent_id.is_none() {
        push("agent_id", "required", "agent_id is required");
    }
    let start_at = text("start_at").and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    if start_at.is_none() {
        push(
            "start_at",
            "invalid_time",
            "start_at must be an RFC 3339 date-time with offset",
        );
    }
    let mut optional = |key: &str, max: usize| -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().chars().count() <= max => {
                Some(s.trim().to_owned()).filter(|s| !s.is_empty())
            }
            Some(_) => {
                push(
                    key,
                    "invalid_value",
                    &format!("{key}: a string of at most {max} characters"),
                );
                None
            }
        }
    };
    let name = optional("name", MAX_NAME_CHARS);
    let note = optional("note", MAX_NOTE_CHARS);
    let caller_number = optional("caller_number", 32);
    let email = optional("email", MAX_EMAIL_CHARS);
    if caller_number
        .as_deref()
        .is_some_and(|n| !crate::scheduling::request::is_e164(n))
    {
        push(
            "caller_number",
            "invalid_phone",
            "caller_number must be E.164",
        );
    }
    if email
        .as_deref()
        .is_some_and(|e| !crate::scheduling::request::is_email(e))
    {
        push("email", "invalid_email", "email must be an email address");
    }
    match (agent_id, start_at) {
        (Some(agent_id), Some(start_at)) if errors.is_empty() => Ok(BookingRequest {
            agent_id: agent_id.to_owned(),
            start_at: start_at.timestamp_millis(),
            name,
            note,
            caller_number,
            email,
        }),
        _ => Err(errors),
    }
}

/// What the tools know of a live appointment when a caller asks to change one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    pub id: &'a str,
    /// The call that booked it.
    pub call_id: Option<&'a str>,
    /// Who it is for.
    pub caller_number: Option<&'a str>,
}

/// Which of `held` (the agent's live appointments) a call may change: `requested` if the model
/// named one, else the one this call booked, else the caller's only one. A call owns the
/// appointment it booked and those booked for the number calling, and nothing else: the model
/// may be talked into naming any id, so an id outside what the caller owns is refused as if it
/// did not exist. A withheld or otherwise non-E.164 caller owns only its own call's booking (a
/// shared placeholder such as `anonymous` must not unlock other callers' appointments).
pub fn caller_appointment(
    held: &[Held<'_>],
    requested: Option<&str>,
    call_id: &str,
    caller: Option<&str>,
) -> Result<usize, BookingError> {
    let caller = caller.filter(|n| crate::scheduling::request::is_e164(n));
    let owns = |h: &Held<'_>| {
        h.call_id == Some(call_id) || (caller.is_some() && h.caller_number == caller)
    };
    let owned: Vec<usize> = (0..held.len()).filter(|&i| owns(&held[i])).collect();
    if let Some(id) = requested {
        return owned
            .into_iter()
            .find(|&i| held[i].id == id)
            .ok_or(BookingError::NoAppointment);
    }
    if let Some(&mine) = owned.iter().find(|&&i| held[i].call_id == Some(call_id)) {
        return Ok(mine);
    }
    match owned.as_slice() {
        [] => Err(BookingError::NoAppointment),
        [only] => Ok(*only),
        several => Err(BookingError::WhichAppointment(several.len())),
    }
}

/// Whether an appointment at `sequence` (its changes so far) may be moved once more.
pub fn may_change(sequence: i64) -> Result<(), BookingError> {
    if sequence < MAX_CHANGES {
        Ok(())
    } else {
        Err(BookingError::TooManyChanges)
    }
}

/// Validates `POST /api/v1/appointments/{id}/reschedule {start_at}`: the new start, in
/// milliseconds since the epoch.
pub fn parse_reschedule(body: &Value) -> Result<i64, Vec<FieldError>> {
    body.get("start_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| {
            vec![FieldError {
                field: "start_at".into(),
                code: "invalid_time",
                message: "start_at must be an RFC 3339 date-time with offset".into(),
            }]
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zones::Tzdb;

    #[test]
    fn a_feed_address_shows_only_its_origin() {
        for (url, origin) in [
            (
                "https://calendar.google.com/calendar/ical/me%40x.com/private-0123abcd/basic.ics",
                "https://calendar.google.com",
            ),
            (
                "HTTPS://user:pa55@cal.example:8443/feed.ics?token=s3cret#x",
                "https://cal.example:8443",
            ),
            ("http://127.0.0.1:9000?k=v", "http://127.0.0.1:9000"),
            ("https://cal.example", "https://cal.example"),
        ] {
            assert_eq!(feed_origin(url), origin, "{url}");
        }
    }

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn calendar(body: Value) -> Calendar {
        let mut errors = Vec::new();
        let stored = parse_calendar(&body, &mut errors).unwrap_or_else(|| panic!("{errors:?}"));
        calendar_of(&json!({ "calendar": stored })).unwrap()
    }

    fn berlin() -> Zone<'static> {
        Zone::resolve(&Tzdb, "Europe/Berlin").unwrap()
    }

    fn starts(slots: &[Slot], zone: &Zone<'_>) -> Vec<String> {
        slots
            .iter()
            .map(|s| {
                zone.at(DateTime::from_timestamp_millis(s.start).unwrap())
                    .to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn validation_lists_every_problem() {
        let mut errors = Vec::new();
        let out = parse_calendar(
            &json!({"time_zone": "Mars/Base", "weekly": {"mon": [["10:00", "09:00"]], "xyz": []},
                    "slot_minutes": 1, "horizon_days": 1000, "color": "red"}),
            &mut errors,
        );
        assert!(out.is_none());
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "calendar.time_zone",
            "calendar.weekly.mon",
            "calendar.weekly.xyz",
            "calendar.slot_minutes",
            "calendar.horizon_days",
            "calendar.color",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        let mut errors = Vec::new();
        for bad in [
            json!([["09:00", "12:00"], ["11:00", "13:00"]]),
            json!([["9:00", "12:00"]]),
            json!("09-17"),
            json!(vec![json!(["00:00", "00:10"]); 7]),
        ] {
            assert!(parse_calendar(
                &json!({"time_zone": "UTC", "weekly": {"tue": bad}}),
                &mut errors
            )
            .is_none());
        }
        assert!(parse_calendar(&json!("yes"), &mut errors).is_none());
    }

    #[test]
    fn defaults_are_stored() {
        let mut errors = Vec::new();
        let stored = parse_calendar(
            &json!({"time_zone": "UTC", "weekly": {"mon": [["13:00", "17:00"], ["09:00", "12:00"]]}}),
            &mut errors,
        )
        .unwrap();
        assert_eq!(
            stored,
            json!({"time_zone": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
                   "slot_minutes": 30, "buffer_minutes": 0, "horizon_days": 30})
        );
    }

    #[test]
    fn grid_follows_hours_slot_length_and_buffer() {
        let cal = calendar(json!({"time_zone": "Europe/Berlin",
            "weekly": {"mon": [["09:00", "11:00"]]}, "slot_minutes": 30, "buffer_minutes": 15}));
        let z = berlin();
        // Monday 2026-01-05: 09:00, 09:45, 10:30 (11:15 would end past 11:00).
        let slots = cal.grid(&z, ms("2026-01-05T00:00:00Z"), ms("2026-01-06T00:00:00Z"));
        assert_eq!(
            starts(&slots, &z),
            [
                "2026-01-05T09:00:00+01:00",
                "2026-01-05T09:45:00+01:00",
                "2026-01-05T10:30:00+01:00"
            ]
        );
        assert_eq!(slots[0].end - slots[0].start, 30 * MINUTE_MS);
        assert!(cal
            .grid(&z, ms("2026-01-06T00:00:00Z"), ms("2026-01-12T00:00:00Z"))
            .is_empty());
    }

    #[test]
    fn wall_clock_hours_hold_across_dst() {
        let cal = calendar(json!({"time_zone": "Europe/Berlin",
            "weekly": {"sun": [["09:00", "10:00"]], "mon": [["09:00", "10:00"]]}, "slot_minutes": 60}));
        let z = berlin();
        // Clocks go forward on Sunday 2026-03-29: 09:00 is 08:00Z before, 07:00Z after.
        let slots = cal.grid(&z, ms("2026-03-22T00:00:00Z"), ms("2026-03-31T00:00:00Z"));
        let utc: Vec<i64> = slots.iter().map(|s| s.start).collect();
        assert_eq!(
            utc,
            [
                ms("2026-03-22T08:00:00Z"),
                ms("2026-03-23T08:00:00Z"),
                ms("2026-03-29T07:00:00Z"),
                ms("2026-03-30T07:00:00Z")
            ]
        );
        // A window inside the skipped hour gives no slot; a repeated hour gives one.
        let gap = calendar(json!({"time_zone": "Europe/Berlin",
            "weekly": {"sun": [["02:00", "03:00"]]}, "slot_minutes": 30}));
        let day = (
            ms("2026-03-29T00:00:00+01:00"),
            ms("2026-03-30T00:00:00+02:00"),
        );
        assert!(gap.grid(&z, day.0, day.1).is_empty());
        let fall = (
            ms("2026-10-25T00:00:00+02:00"),
            ms("2026-10-26T00:00:00+01:00"),
        );
        assert_eq!(
            starts(&gap.grid(&z, fall.0, fall.1), &z),
            ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00"]
        );
    }

    #[test]
    fn free_slots_leave_out_booked_past_and_beyond_horizon() {
        let cal = calendar(json!({"time_zone": "UTC", "weekly": Value::Object(
            WEEKDAYS.iter().map(|d| (d.to_string(), json!([["09:00", "10:00"]]))).collect()),
            "slot_minutes": 30, "horizon_days": 2}));
        let z = Zone::resolve(&Tzdb, "UTC").unwrap();
        let now = ms("2026-01-05T09:10:00Z");
        let booked = [ms("2026-01-06T09:00:00Z")];
        let free = cal.free_slots(&z, (0, i64::MAX), now, (&booked, &[]), 10);
        assert_eq!(
            starts(&free, &z),
            [
                "2026-01-05T09:30:00+00:00",
                "2026-01-06T09:30:00+00:00",
                "2026-01-07T09:00:00+00:00"
            ]
        );
        assert_eq!(
            cal.free_slots(&z, (0, i64::MAX), now, (&[], &[]), 2).len(),
            2
        );
        // A busy interval blocks every slot it overlaps, touching ends excepted.
        let busy = [(ms("2026-01-05T09:45:00Z"), ms("2026-01-06T09:30:00Z"))];
        let free = cal.free_slots(&z, (0, i64::MAX), now, (&booked, &busy), 10);
        assert_eq!(
            starts(&free, &z),
            ["2026-01-06T09:30:00+00:00", "2026-01-07T09:00:00+00:00"]
        );
        let busy = Busy::from_intervals(vec![(
            ms("2026-01-06T09:15:00Z"),
            ms("2026-01-06T09:45:00Z"),
        )]);
        let slot = Slot {
            start: ms("2026-01-06T09:30:00Z"),
            end: ms("2026-01-06T10:00:00Z"),
        };
        assert_eq!(clear_of(slot, &busy), Err(BookingError::Busy));
        assert_eq!(clear_of(slot, &Busy::default()), Ok(slot));
    }

    #[test]
    fn a_booking_must_start_on_a_free_grid_slot_in_range() {
        let cal = calendar(json!({"time_zone": "Europe/Berlin",
            "weekly": {"mon": [["09:00", "12:00"]]}, "slot_minutes": 60, "horizon_days": 14}));
        let z = berlin();
        let now = ms("2026-01-01T00:00:00Z");
        let ok = cal
            .bookable(&z, ms("2026-01-05T10:00:00+01:00"), now)
            .unwrap();
        assert_eq!(ok.end - ok.start, 60 * MINUTE_MS);
        for (at, error) in [
            ("2026-01-05T10:30:00+01:00", BookingError::NotASlot),
            ("2026-01-05T12:00:00+01:00", BookingError::NotASlot),
            ("2026-01-05T03:00:00+01:00", BookingError::NotASlot),
            ("2026-01-06T10:00:00+01:00", BookingError::NotASlot),
            ("2025-12-29T10:00:00+01:00", BookingError::Past),
            ("2026-01-19T10:00:00+01:00", BookingError::BeyondHorizon(14)),
        ] {
            assert_eq!(cal.bookable(&z, ms(at), now), Err(error), "{at}");
        }
    }

    #[test]
    fn api_bookings_are_validated() {
        let ok = parse_booking(
            &json!({"agent_id": "ag_1", "start_at": "2026-01-05T10:00:00+01:00",
                                       "name": " Ada ", "caller_number": "+14155550100"}),
        )
        .unwrap();
        assert_eq!(ok.start_at, ms("2026-01-05T09:00:00Z"));
        assert_eq!(ok.name.as_deref(), Some("Ada"));
        assert_eq!(ok.email, None);
        let errors = parse_booking(
            &json!({"start_at": "soon", "note": 5, "caller_number": "12", "email": "ada@"}),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["agent_id", "start_at", "note", "caller_number", "email"]
        );
        assert!(parse_booking(&json!([])).is_err());
    }

    #[test]
    fn feed_urls_are_checked_for_form_then_for_address() {
        let mut errors = Vec::new();
        let base = json!({"time_zone": "UTC", "weekly": {"mon": [["09:00", "10:00"]]}});
        let with = |url: Value| {
            let mut body = base.clone();
            body["feed_url"] = url;
            body
        };
        let stored = parse_calendar(
            &with(json!(
                "https://calendar.google.com/calendar/ical/x%40group/private-abc/basic.ics"
            )),
            &mut errors,
        )
        .unwrap();
        let config = json!({ "calendar": stored });
        assert!(calendar_of(&config).unwrap().feed_url.is_some());
        assert_eq!(check_feed_url(&config, false), Ok(()));
        for bad in [
            json!("ftp://x.example/a.ics"),
            json!("https://u:p@x.example/"),
            json!(5),
        ] {
            let mut errors = Vec::new();
            assert!(
                parse_calendar(&with(bad.clone()), &mut errors).is_none(),
                "{bad}"
            );
            assert_eq!(errors[0].field, "calendar.feed_url");
        }
        for private in [
            "http://127.0.0.1:8080/feed.ics",
            "https://10.0.0.1/a.ics",
            "https://metadata.google.internal/x",
        ] {
            let stored = parse_calendar(&with(json!(private)), &mut errors).unwrap();
            let config = json!({ "calendar": stored });
            assert_eq!(
                check_feed_url(&config, false).unwrap_err().code,
                "target_not_allowed",
                "{private}"
            );
            assert_eq!(check_feed_url(&config, true), Ok(()));
        }
        assert_eq!(check_feed_url(&json!({}), false), Ok(()));
    }

    #[test]
    fn reschedules_name_a_time() {
        assert_eq!(
            parse_reschedule(&json!({"start_at": "2026-01-05T10:00:00+01:00"})),
            Ok(ms("2026-01-05T09:00:00Z"))
        );
        for bad in [
            json!({}),
            json!({"start_at": 5}),
            json!({"start_at": "tomorrow"}),
            json!([]),
        ] {
            let errors = parse_reschedule(&bad).unwrap_err();
            assert_eq!(errors[0].field, "start_at");
        }
    }

    #[test]
    fn a_caller_changes_only_its_own_appointments() {
        let held = [
            Held {
                id: "ap_other",
                call_id: Some("call_x"),
                caller_number: Some("+14155550100"),
            },
            Held {
                id: "ap_mine",
                call_id: Some("call_1"),
                caller_number: Some("+14155550199"),
            },
            Held {
                id: "ap_api",
                call_id: None,
                caller_number: Some("+14155550199"),
            },
            Held {
                id: "ap_anon",
                call_id: Some("call_y"),
                caller_number: Some("anonymous"),
            },
        ];
        let me = Some("+14155550199");
        // Unnamed: the one this call booked first, else the caller's only one.
        assert_eq!(caller_appointment(&held, None, "call_1", me), Ok(1));
        assert_eq!(caller_appointment(&held[2..], None, "call_2", me), Ok(0));
        assert_eq!(
            caller_appointment(&held, None, "call_2", me),
            Err(BookingError::WhichAppointment(2))
        );
        // Named: only among the caller's own.
        assert_eq!(
            caller_appointment(&held, Some("ap_api"), "call_1", me),
            Ok(2)
        );
        for (id, call, caller) in [
            ("ap_other", "call_1", me),
            ("ap_nope", "call_1", me),
            ("ap_anon", "call_9", Some("anonymous")),
            ("ap_api", "call_9", None),
        ] {
            assert_eq!(
                caller_appointment(&held, Some(id), call, caller),
                Err(BookingError::NoAppointment),
                "{id} for {call} {caller:?}"
            );
        }
        // A withheld caller owns only what its own call booked.
        assert_eq!(
            caller_appointment(&held, None, "call_9", Some("anonymous")),
            Err(BookingError::NoAppointment)
        );
        assert_eq!(
            caller_appointment(&held, None, "call_y", Some("anonymous")),
            Ok(3)
        );
    }

    #[test]
    fn changes_are_capped() {
        assert_eq!(may_change(0), Ok(()));
        assert_eq!(may_change(MAX_CHANGES - 1), Ok(()));
        assert_eq!(may_change(MAX_CHANGES), Err(BookingError::TooManyChanges));
    }

    #[test]
    fn no_calendar_means_none() {
        assert_eq!(calendar_of(&json!({})), None);
    }
}
