//! Business hours of a number, and how an incoming call is routed by them: during hours the
//! owner is rung first (when the number asks for it) and the AI takes the call if nobody
//! answers; after hours the AI answers directly, with the number's after-hours agent if it has
//! one.
//!
//! Hours are wall-clock times in the number's IANA zone, so a 09:00 opening stays 09:00 across
//! DST changes. A range whose end is before its start (`22:00`–`02:00`) runs overnight into the
//! next day; `24:00` (or `00:00`) as an end means midnight. A dated exception replaces its whole
//! date (the tail of the night before included): closed all day, or open only in its ranges.

use crate::scheduling::request::FieldError;
use crate::zones::{Zone, ZoneRules};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Most ranges one day (weekly or an exception) may have.
pub const MAX_RANGES_PER_DAY: usize = 8;
/// Most dated exceptions a number may have.
pub const MAX_EXCEPTIONS: usize = 100;
/// The weekly keys, Monday first (chrono's `num_days_from_monday` order).
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_MINUTES: u16 = 24 * 60;

/// Why an incoming call was routed as it was; stored on the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Within the number's hours.
    Open,
    /// Outside the weekly hours.
    ClosedWeekly,
    /// A dated exception (a holiday) closes the number now.
    ClosedException,
    /// The number has no hours: always routed as during hours.
    NoHours,
}

impl Routing {
    /// Every reason, for documentation and tests.
    pub const ALL: [Routing; 4] = [
        Routing::Open,
        Routing::ClosedWeekly,
        Routing::ClosedException,
        Routing::NoHours,
    ];

    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Open => "open",
            Routing::ClosedWeekly => "closed_weekly",
            Routing::ClosedException => "closed_exception",
            Routing::NoHours => "no_hours",
        }
    }

    /// The reason named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether the call is routed as during hours.
    pub fn is_open(self) -> bool {
        matches!(self, Routing::Open | Routing::NoHours)
    }

    /// The call's `routing` in the API: the decision and its reason.
    pub fn to_json(self) -> Value {
        json!({
            "decision": if self.is_open() { "open" } else { "closed" },
            "reason": self.as_str(),
        })
    }
}

/// Minutes after local midnight: `[start, end)`, overnight when `end < start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Range {
    start: u16,
    end: u16,
}

impl Range {
    /// The part of the range on its own day.
    fn same_day(self) -> (u16, u16) {
        if self.end < self.start {
            (self.start, DAY_MINUTES)
        } else {
            (self.start, self.end)
        }
    }

    /// The part that runs past midnight into the next day, if any.
    fn tail(self) -> Option<(u16, u16)> {
        (self.end < self.start).then_some((0, self.end))
    }

    fn to_json(self) -> Value {
        json!([clock(self.start), clock(self.end)])
    }
}

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn covers((start, end): (u16, u16), minute: u16) -> bool {
    start <= minute && minute < end
}

/// A number's validated hours.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours<'r> {
    zone: Zone<'r>,
    /// Monday first; an empty day is closed.
    weekly: [Vec<Range>; 7],
    /// Dated exceptions; an empty list is a closed day.
    exceptions: BTreeMap<NaiveDate, Vec<Range>>,
}

impl<'r> Hours<'r> {
    /// The ranges of `date` and whether they come from an exception.
    fn ranges_on(&self, date: NaiveDate) -> (&[Range], bool) {
        match self.exceptions.get(&date) {
            Some(ranges) => (ranges, true),
            None => (
                &self.weekly[date.weekday().num_days_from_monday() as usize],
                false,
            ),
        }
    }

    /// The same one range on the given days every week, in `zone` (a campaign's calling
    /// window, `from`/`to` in minutes after midnight as [`parse_clock`] reads them).
    pub fn weekly(zone: Zone<'r>, days: [bool; 7], from: u16, to: u16) -> Self {
        let range = Range {
            start: from,
            end: if to == 0 { DAY_MINUTES } else { to },
        };
        let weekly = days.map(|open| if open { vec![range] } else { Vec::new() });
        Hours {
            zone,
            weekly,
            exceptions: BTreeMap::new(),
        }
    }

    /// Whether the number is open at `at`, and why.
    pub fn routing_at(&self, at: DateTime<Utc>) -> Routing {
        self.routing_in(&self.zone, at)
    }

    /// The same weekly hours read on the clocks of `zone` instead of their own (a campaign's
    /// window is evaluated in each contact's zone).
    pub fn routing_in(&self, zone: &Zone<'_>, at: DateTime<Utc>) -> Routing {
        let local = zone.at(at);
        let date = local.date_naive();
        // Seconds do not matter: ranges are whole minutes.
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let (today, exceptional) = self.ranges_on(date);
        if today.iter().any(|r| covers(r.same_day(), minute)) {
            return Routing::Open;
        }
        if !exceptional {
            if let Some(yesterday) = date.checked_sub_days(Days::new(1)) {
                let (ranges, _) = self.ranges_on(yesterday);
                if ranges
                    .iter()
                    .filter_map(|r| r.tail())
                    .any(|t| covers(t, minute))
                {
                    return Routing::Open;
                }
            }
        }
        if exceptional {
            Routing::ClosedException
        } else {
            Routing::ClosedWeekly
        }
    }

    /// The first instant at or after `at` when the hours are open on the clocks of `zone`
    /// (`at` itself when open), looking up to eight days ahead; `None` when never open then.
    pub fn next_open_in(&self, zone: &Zone<'_>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.routing_in(zone, at).is_open() {
            return Some(at);
        }
        let today = zone.at(at).date_naive();
        (0..=8u64)
            .filter_map(|d| today.checked_add_days(Days::new(d)))
            .flat_map(|date| {
                let (ranges, _) = self.ranges_on(date);
                ranges
                    .iter()
                    .filter_map(move |r| {
                        let time = NaiveTime::from_hms_opt(
                            u32::from(r.start / 60),
                            u32::from(r.start % 60),
                            0,
                        )?;
                        let local = date.and_time(time);
                        // In a gap the start's wall time does not exist: the same time an
                        // hour later does (gaps are an hour but for Lord Howe's half hour), so
                        // the window opens late rather than early.
                        (0..=1i64).find_map(|h| {
                            let probe = local.checked_add_signed(TimeDelta::hours(h))?;
                            zone.from_local(probe).earliest()
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|t| *t > at)
            .find(|t| self.routing_in(zone, *t).is_open())
    }

    /// The hours as stored and shown: every day named, times as `HH:MM`, exceptions by date.
    pub fn to_json(&self) -> Value {
        // Inserted rather than collected: each `collect` into a map compiles a sort.
        let mut weekly = Map::new();
        for (day, ranges) in DAYS.iter().zip(&self.weekly) {
            let ranges = ranges.iter().map(|r| r.to_json()).collect();
            weekly.insert((*day).to_owned(), Value::Array(ranges));
        }
        let exceptions: Vec<Value> = self
            .exceptions
            .iter()
            .map(|(date, ranges)| {
                let date = date.format("%Y-%m-%d").to_string();
                if ranges.is_empty() {
                    json!({"date": date, "closed": true})
                } else {
                    let open: Vec<Value> = ranges.iter().map(|r| r.to_json()).collect();
                    json!({"date": date, "open": open})
                }
            })
            .collect();
        json!({
            "time_zone": self.zone.name(),
            "weekly": weekly,
            "exceptions": exceptions,
        })
    }
}

/// How a number routes the call: the decision at `at` (no hours: always open).
pub fn routing(hours: Option<&Hours<'_>>, at: DateTime<Utc>) -> Routing {
    hours.map_or(Routing::NoHours, |h| h.routing_at(at))
}

/// Who takes an incoming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The agent the AI answers with.
    pub agent_id: &'a str,
    /// The owner's phone to ring first, if it is rung.
    pub ring_owner: Option<&'a str>,
}

/// Routes an incoming call: during hours the number's agent, after the owner (`owner`: the
/// owner's phone when the number rings it first and the carrier can); after hours the
/// after-hours agent (else the number's agent), answering directly.
pub fn plan<'a>(
    routing: Routing,
    agent_id: &'a str,
    after_hours_agent_id: Option<&'a str>,
    owner: Option<&'a str>,
) -> Plan<'a> {
    if routing.is_open() {
        Plan {
            agent_id,
            ring_owner: owner,
        }
    } else {
        Plan {
            agent_id: after_hours_agent_id.unwrap_or(agent_id),
            ring_owner: None,
        }
    }
}

/// Validates a number's `hours` (reported under `field`), with `zones` giving the zone rules;
/// every problem goes to `errors`.
pub fn parse_hours<'r>(
    value: &Value,
    zones: &'r dyn ZoneRules,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Hours<'r>> {
    let before = errors.len();
    let Some(obj) = value.as_object() else {
        errors.push(error(
            field,
            "invalid_type",
            format!("{field} must be an object"),
        ));
        return None;
    };
    for key in obj.keys() {
        if !["time_zone", "weekly", "exceptions"].contains(&key.as_str()) {
            errors.push(error(
                &format!("{field}.{key}"),
                "unknown_field",
                format!("{field} has time_zone, weekly and exceptions only"),
            ));
        }
    }
    let zone_field = format!("{field}.time_zone");
    let zone = match obj.get("time_zone") {
        Some(Value::String(name)) => {
            let zone = Zone::resolve(zones, name);
            if zone.is_none() {
                errors.push(error(
                    &zone_field,
                    "invalid_time_zone",
                    "time_zone must be an IANA time zone such as America/New_York",
                ));
            }
            zone
        }
        None | Some(Value::Null) => {
            errors.push(error(&zone_field, "required", "time_zone is required"));
            None
        }
        Some(_) => {
            errors.push(error(
                &zone_field,
                "invalid_type",
                "time_zone must be a string",
            ));
            None
        }
    };
    let mut weekly: [Vec<Range>; 7] = Default::default();
    let weekly_field = format!("{field}.weekly");
    match obj.get("weekly") {
        None | Some(Value::Null) => {
            errors.push(error(&weekly_field, "required", "weekly is required"));
        }
        Some(Value::Object(days)) => {
            for (key, ranges) in days {
                let day_field = format!("{weekly_field}.{key}");
                match DAYS.iter().position(|d| d == key) {
                    Some(i) => weekly[i] = parse_ranges(ranges, &day_field, errors),
                    None => errors.push(error(
                        &day_field,
                        "unknown_field",
                        "weekly days are mon, tue, wed, thu, fri, sat and sun",
                    )),
                }
            }
            // An overnight range must not run into the next day's first range.
            for (i, ranges) in weekly.iter().enumerate() {
                let next = &weekly[(i + 1) % 7];
                let mut tails = ranges.iter().filter_map(|r| r.tail());
                if tails.any(|t| next.iter().any(|r| overlap(t, r.same_day()))) {
                    errors.push(error(
                        &format!("{weekly_field}.{}", DAYS[i]),
                        "overlapping_ranges",
                        format!(
                            "an overnight range on {} runs into a range on {}",
                            DAYS[i],
                            DAYS[(i + 1) % 7]
                        ),
                    ));
                }
            }
        }
        Some(_) => errors.push(error(
            &weekly_field,
            "invalid_type",
            "weekly must be an object of days such as {\"mon\": [[\"09:00\", \"17:00\"]]}",
        )),
    }
    let exceptions = parse_exceptions(obj.get("exceptions"), field, errors);
    match zone {
        Some(zone) if errors.len() == before => Some(Hours {
            zone,
            weekly,
            exceptions,
        }),
        _ => None,
    }
}

fn parse_exceptions(
    value: Option<&Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<NaiveDate, Vec<Range>> {
    let mut exceptions = BTreeMap::new();
    let list_field = format!("{field}.exceptions");
    let list = match value {
        None | Some(Value::Null) => return exceptions,
        Some(Value::Array(list)) if list.len() > MAX_EXCEPTIONS => {
            errors.push(error(
                &list_field,
                "too_many",
                format!("at most {MAX_EXCEPTIONS} exceptions"),
            ));
            return exceptions;
        }
        Some(Value::Array(list)) => list,
        Some(_) => {
            errors.push(error(
                &list_field,
                "invalid_type",
                "exceptions must be an array",
            ));
            return exceptions;
        }
    };
    for (i, item) in list.iter().enumerate() {
        let item_field = format!("{list_field}[{i}]");
        let Some(obj) = item.as_object() else {
            errors.push(error(
                &item_field,
                "invalid_type",
                "an exception is {\"date\": \"YYYY-MM-DD\", \"closed\": true} or {\"date\", \"open\": [...]}",
            ));
            continue;
        };
        for key in obj.keys() {
            if !["date", "closed", "open"].contains(&key.as_str()) {
                errors.push(error(
                    &format!("{item_field}.{key}"),
                    "unknown_field",
                    "an exception has date, and closed or open",
                ));
            }
        }
        let date_field = format!("{item_field}.date");
        let date = match obj.get("date") {
            Some(Value::String(s)) => {
                let date = (s.len() == 10)
                    .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .flatten();
                if date.is_none() {
                    errors.push(error(
                        &date_field,
                        "invalid_date",
                        "date must be a calendar date such as 2026-12-25",
                    ));
                }
                date
            }
            None | Some(Value::Null) => {
                errors.push(error(&date_field, "required", "date is required"));
                None
            }
            Some(_) => {
                errors.push(error(&date_field, "invalid_type", "date must be a string"));
                None
            }
        };
        let ranges = match (obj.get("closed"), obj.get("open")) {
            (Some(Value::Bool(true)), None) => Some(Vec::new()),
            (None, Some(open)) => {
                let open_field = format!("{item_field}.open");
                let ranges = parse_ranges(open, &open_field, errors);
                if ranges.is_empty() && open.as_array().is_some_and(Vec::is_empty) {
                    errors.push(error(
                        &open_field,
                        "invalid_value",
                        "open needs at least one range; use \"closed\": true for a closed day",
                    ));
                }
                Some(ranges)
            }
            _ => {
                errors.push(error(
                    &item_field,
                    "invalid_value",
                    "an exception has either \"closed\": true or \"open\": [ranges]",
                ));
                None
            }
        };
        if let (Some(date), Some(ranges)) = (date, ranges) {
            if exceptions.insert(date, ranges).is_some() {
                errors.push(error(
                    &date_field,
                    "duplicate_date",
                    format!("{date} has more than one exception"),
                ));
            }
        }
    }
    exceptions
}

/// A day's ranges, sorted; every problem goes to `errors`.
fn parse_ranges(value: &Value, field: &str, errors: &mut Vec<FieldError>) -> Vec<Range> {
    let Some(list) = value.as_array() else {
        errors.push(error(
            field,
            "invalid_type",
            "a day is an array of [\"HH:MM\", \"HH:MM\"] ranges",
        ));
        return Vec::new();
    };
    if list.len() > MAX_RANGES_PER_DAY {
        errors.push(error(
            field,
            "too_many",
            format!("at most {MAX_RANGES_PER_DAY} ranges a day"),
        ));
        return Vec::new();
    }
    let mut ranges = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let pair = item
            .as_array()
            .filter(|pair| pair.len() == 2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str()));
        let (start, end) = match pair {
            Some((Some(start), Some(end))) => (minutes(start, false), minutes(end, true)),
            _ => {
                errors.push(error(
                    &item_field,
                    "invalid_type",
                    "a range is [\"HH:MM\", \"HH:MM\"]",
                ));
                continue;
            }
        };
        let (Some(start), Some(end)) = (start, end) else {
            errors.push(error(
                &item_field,
                "invalid_time",
                "times are HH:MM from 00:00 to 23:59 (24:00 as an end)",
            ));
            continue;
        };
        // Midnight as an end closes the day, it does not run over into the next.
        let end = if end == 0 { DAY_MINUTES } else { end };
        if end == start {
            errors.push(error(
                &item_field,
                "invalid_value",
                "a range must not be empty (use 00:00-24:00 for all day)",
            ));
            continue;
        }
        ranges.push(Range { start, end });
    }
    // Unstable: equal ranges are identical, and it is one sort instance less in the wasm.
    ranges.sort_unstable();
    if ranges
        .windows(2)
        .any(|w| overlap(w[0].same_day(), w[1].same_day()))
    {
        errors.push(error(
            field,
            "overlapping_ranges",
            "the ranges of a day must not overlap",
        ));
    }
    ranges
}

fn overlap(a: (u16, u16), b: (u16, u16)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// `HH:MM` as minutes after midnight; `24:00` only as an end.
/// `HH:MM` as minutes after midnight (`24:00` only as an `end`).
pub fn parse_clock(text: &str, end: bool) -> Option<u16> {
    minutes(text, end)
}

fn minutes(text: &str, end: bool) -> Option<u16> {
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let digits = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u16>().ok())
            .flatten()
    };
    let (hour, minute) = (digits(&text[..2])?, digits(&text[3..])?);
    match (hour, minute) {
        (24, 0) if end => Some(DAY_MINUTES),
        (0..=23, 0..=59) => Some(hour * 60 + minute),
        _ => None,
    }
}

fn error(field: &str, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zones::Tzdb;

    fn hours(value: Value) -> Hours<'static> {
        let mut errors = Vec::new();
        let parsed = parse_hours(&value, &Tzdb, "hours", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        parsed.unwrap()
    }

    fn codes(value: Value) -> Vec<(String, &'static str)> {
        let mut errors = Vec::new();
        assert!(parse_hours(&value, &Tzdb, "hours", &mut errors).is_none());
        errors.into_iter().map(|e| (e.field, e.code)).collect()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn nine_to_five(zone: &str) -> Hours<'static> {
        let day = json!([["09:00", "17:00"]]);
        hours(json!({"time_zone": zone, "weekly": {
            "mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day}}))
    }

    #[test]
    fn new_york_hours_follow_the_wall_clock_across_dst() {
        let h = nine_to_five("America/New_York");
        // Sunday 2026-03-08: clocks go 02:00 EST → 03:00 EDT. Before, 09:00 is 14:00 UTC.
        assert_eq!(
            h.routing_at(utc("2026-03-07T13:59:00Z")),
            Routing::ClosedWeekly
        );
        assert_eq!(h.routing_at(utc("2026-03-07T14:00:00Z")), Routing::Open);
        // After, 09:00 is 13:00 UTC and 17:00 is 21:00 UTC.
        assert_eq!(
            h.routing_at(utc("2026-03-08T12:59:00Z")),
            Routing::ClosedWeekly
        );
        assert_eq!(h.routing_at(utc("2026-03-08T13:00:00Z")), Routing::Open);
        assert_eq!(h.routing_at(utc("2026-03-08T20:59:59Z")), Routing::Open);
        assert_eq!(
            h.routing_at(utc("2026-03-08T21:00:00Z")),
            Routing::ClosedWeekly
        );
        // Sunday 2026-11-01: back to EST; 17:00 is 22:00 UTC again.
        assert_eq!(h.routing_at(utc("2026-11-01T21:30:00Z")), Routing::Open);
        assert_eq!(
            h.routing_at(utc("2026-11-01T22:00:00Z")),
            Routing::ClosedWeekly
        );
    }

    #[test]
    fn london_hours_follow_the_wall_clock_across_dst() {
        let h = nine_to_five("Europe/London");
        // 2026-03-29 01:00 GMT → 02:00 BST: 09:00 is 08:00 UTC from then on.
        assert_eq!(
            h.routing_at(utc("2026-03-28T08:30:00Z")),
            Routing::ClosedWeekly
        );
        assert_eq!(h.routing_at(utc("2026-03-29T08:30:00Z")), Routing::Open);
        // 2026-10-25 back to GMT: 09:00 is 09:00 UTC.
        assert_eq!(h.routing_at(utc("2026-10-24T08:30:00Z")), Routing::Open);
        assert_eq!(
            h.routing_at(utc("2026-10-25T08:30:00Z")),
            Routing::ClosedWeekly
        );
        // A range inside the skipped hour (01:00-02:00 does not exist that Sunday) never opens
        // on that day, and the repeated 01:00-02:00 of October is open both times round.
        let night = hours(json!({"time_zone": "Europe/London",
            "weekly": {"sun": [["01:00", "02:00"]]}}));
        assert_eq!(
            night.routing_at(utc("2026-03-29T00:59:00Z")),
            Routing::ClosedWeekly
        );
        assert_eq!(
            night.routing_at(utc("2026-03-29T01:00:00Z")),
            Routing::ClosedWeekly
        );
        assert_eq!(night.routing_at(utc("2026-10-25T00:30:00Z")), Routing::Open);
        assert_eq!(night.routing_at(utc("2026-10-25T01:30:00Z")), Routing::Open);
        assert_eq!(
            night.routing_at(utc("2026-10-25T02:00:00Z")),
            Routing::ClosedWeekly
        );
    }

    #[test]
    fn overnight_ranges_run_into_the_next_day() {
        // Friday 22:00 to Saturday 02:00 (2026-12-04 is a Friday), in UTC for plain arithmetic.
        let h = hours(json!({"time_zone": "UTC", "weekly": {"fri": [["22:00", "02:00"]]}}));
        assert_eq!(
            h.routing_at(utc("2026-12-04T21:59:00Z")),
            Routing::ClosedWeekly
        );
        assert_eq!(h.routing_at(utc("2026-12-04T22:00:00Z")), Routing::Open);
        assert_eq!(h.routing_at(utc("2026-12-05T01:59:00Z")), Routing::Open);
        assert_eq!(
            h.routing_at(utc("2026-12-05T02:00:00Z")),
            Routing::ClosedWeekly
        );
        // Thursday night is not Friday night.
        assert_eq!(
            h.routing_at(utc("2026-12-04T01:00:00Z")),
            Routing::ClosedWeekly
        );
        // Midnight as an end is the end of the day, not an overnight range.
        let late = hours(json!({"time_zone": "UTC", "weekly": {"fri": [["18:00", "00:00"]]}}));
        assert_eq!(late.routing_at(utc("2026-12-04T23:59:00Z")), Routing::Open);
        assert_eq!(
            late.routing_at(utc("2026-12-05T00:00:00Z")),
            Routing::ClosedWeekly
        );
        assert_eq!(late.to_json()["weekly"]["fri"], json!([["18:00", "24:00"]]));
        // Sunday night runs into Monday (the week wraps).
        let sunday = hours(json!({"time_zone": "UTC", "weekly": {"sun": [["23:00", "01:00"]]}}));
        assert_eq!(
            sunday.routing_at(utc("2026-12-07T00:30:00Z")),
            Routing::Open
        );
    }

    #[test]
    fn exceptions_replace_their_date() {
        let h = hours(json!({"time_zone": "America/New_York",
            "weekly": {"thu": [["18:00", "02:00"]], "fri": [["09:00", "17:00"]]},
            "exceptions": [{"date": "2026-12-25", "closed": true},
                           {"date": "2026-12-26", "open": [["10:00", "14:00"]]}]}));
        // Friday 2026-12-25 10:00 EST: a weekly working hour, closed by the holiday.
        assert_eq!(
            h.routing_at(utc("2026-12-25T15:00:00Z")),
            Routing::ClosedException
        );
        // The holiday also closes the tail of Thursday night (00:30 EST on the 25th).
        assert_eq!(
            h.routing_at(utc("2026-12-25T05:30:00Z")),
            Routing::ClosedException
        );
        // Thursday evening itself is not the holiday.
        assert_eq!(h.routing_at(utc("2026-12-24T23:30:00Z")), Routing::Open);
        // Saturday the 26th opens 10:00-14:00 EST only.
        assert_eq!(h.routing_at(utc("2026-12-26T15:30:00Z")), Routing::Open);
        assert_eq!(
            h.routing_at(utc("2026-12-26T19:00:00Z")),
            Routing::ClosedException
        );
        // A Friday with no exception follows the weekly hours.
        assert_eq!(h.routing_at(utc("2027-01-01T15:00:00Z")), Routing::Open);
        assert_eq!(
            h.routing_at(utc("2027-01-01T23:00:00Z")),
            Routing::ClosedWeekly
        );
    }

    #[test]
    fn the_plan_rings_the_owner_only_during_hours() {
        let open = plan(
            Routing::Open,
            "agt_day",
            Some("agt_night"),
            Some("+15550001"),
        );
        assert_eq!(
            open,
            Plan {
                agent_id: "agt_day",
                ring_owner: Some("+15550001")
            }
        );
        assert_eq!(
            plan(Routing::NoHours, "agt_day", None, None).ring_owner,
            None
        );
        for closed in [Routing::ClosedWeekly, Routing::ClosedException] {
            assert_eq!(
                plan(closed, "agt_day", Some("agt_night"), Some("+15550001")),
                Plan {
                    agent_id: "agt_night",
                    ring_owner: None
                }
            );
            assert_eq!(plan(closed, "agt_day", None, None).agent_id, "agt_day");
        }
        assert_eq!(routing(None, Utc::now()), Routing::NoHours);
        for r in Routing::ALL {
            assert_eq!(Routing::parse(r.as_str()), Some(r));
        }
        assert_eq!(
            Routing::ClosedWeekly.to_json(),
            json!({"decision": "closed", "reason": "closed_weekly"})
        );
    }

    #[test]
    fn stored_hours_read_back_the_same() {
        let h = hours(json!({"time_zone": "Europe/London",
            "weekly": {"tue": [["13:00", "17:00"], ["08:00", "12:00"]]},
            "exceptions": [{"date": "2026-12-26", "open": [["10:00", "14:00"]]},
                           {"date": "2026-12-25", "closed": true}]}));
        let stored = h.to_json();
        assert_eq!(
            stored["weekly"]["tue"],
            json!([["08:00", "12:00"], ["13:00", "17:00"]])
        );
        assert_eq!(stored["weekly"]["mon"], json!([]));
        assert_eq!(
            stored["exceptions"][0],
            json!({"date": "2026-12-25", "closed": true})
        );
        assert_eq!(hours(stored.clone()), h);
    }

    #[test]
    fn bad_hours_are_listed_by_field() {
        assert_eq!(
            codes(json!({"time_zone": "Mars/Olympus", "weekly": {}})),
            [("hours.time_zone".to_owned(), "invalid_time_zone")]
        );
        assert_eq!(
            codes(json!({"weekly": {"funday": [], "mon": "9-5"}, "tz": "UTC"})),
            [
                ("hours.tz".to_owned(), "unknown_field"),
                ("hours.time_zone".to_owned(), "required"),
                ("hours.weekly.funday".to_owned(), "unknown_field"),
                ("hours.weekly.mon".to_owned(), "invalid_type"),
            ]
        );
        assert_eq!(
            codes(json!({"time_zone": "UTC", "weekly": {"mon": [
                ["09:00", "25:00"], ["9:00", "10:00"], ["10:00", "10:00"], ["10:00"],
                ["24:00", "10:00"]]}})),
            [
                ("hours.weekly.mon[0]".to_owned(), "invalid_time"),
                ("hours.weekly.mon[1]".to_owned(), "invalid_time"),
                ("hours.weekly.mon[2]".to_owned(), "invalid_value"),
                ("hours.weekly.mon[3]".to_owned(), "invalid_type"),
                ("hours.weekly.mon[4]".to_owned(), "invalid_time"),
            ]
        );
        assert_eq!(
            codes(
                json!({"time_zone": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}})
            ),
            [("hours.weekly.mon".to_owned(), "overlapping_ranges")]
        );
        assert_eq!(
            codes(json!({"time_zone": "UTC", "weekly": {
                "sun": [["22:00", "03:00"]], "mon": [["02:00", "05:00"]]}})),
            [("hours.weekly.sun".to_owned(), "overlapping_ranges")]
        );
        let many: Vec<Value> = (0..9)
            .map(|h| json!([clock(h * 60), clock(h * 60 + 30)]))
            .collect();
        assert_eq!(
            codes(json!({"time_zone": "UTC", "weekly": {"mon": many}})),
            [("hours.weekly.mon".to_owned(), "too_many")]
        );
        let holidays: Vec<Value> = (1..=101)
            .map(|d| json!({"date": format!("2027-{:02}-{:02}", d / 28 + 1, d % 28 + 1), "closed": true}))
            .collect();
        assert_eq!(
            codes(json!({"time_zone": "UTC", "weekly": {}, "exceptions": holidays})),
            [("hours.exceptions".to_owned(), "too_many")]
        );
        assert_eq!(
            codes(json!({"time_zone": "UTC", "weekly": {}, "exceptions": [
                {"date": "2026-02-30", "closed": true},
                {"date": "2026-12-25", "closed": false},
                {"date": "2026-12-25", "closed": true, "open": [["10:00", "12:00"]]},
                {"date": "2026-12-24", "open": []},
                {"date": "2026-12-31", "closed": true},
                {"date": "2026-12-31", "closed": true}]})),
            [
                ("hours.exceptions[0].date".to_owned(), "invalid_date"),
                ("hours.exceptions[1]".to_owned(), "invalid_value"),
                ("hours.exceptions[2]".to_owned(), "invalid_value"),
                ("hours.exceptions[3].open".to_owned(), "invalid_value"),
                ("hours.exceptions[5].date".to_owned(), "duplicate_date"),
            ]
        );
        assert_eq!(codes(json!("9-5")), [("hours".to_owned(), "invalid_type")]);
    }
}
