//! Busy times of a calendar feed within a window: what an agent calendar's `feed_url` blocks.
//!
//! Every event is busy unless `STATUS:CANCELLED` or transparent. Recurring events are expanded
//! (RRULE, RDATE) minus EXDATEs, an instance with a RECURRENCE-ID override is replaced by the
//! override, and only instances overlapping the window are kept. Whatever cannot be read for
//! sure (an unknown zone, an unsupported rule, more instances than [`MAX_BUSY`]) is an error,
//! never skipped: booking must not go ahead over a busy time it could not see.

use super::recur::Flow;
use super::time::{instant_in, Clock, Tz};
use super::{Document, Event, ReadError, When};
use crate::zones::{Zone, ZoneRules};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use std::collections::{HashMap, HashSet};

/// Busy intervals a feed may have within the window; past it the feed is refused.
pub const MAX_BUSY: usize = 5_000;
/// Largest feed read, in bytes; a longer one is refused (its end could hold busy times).
pub const MAX_FEED_BYTES: usize = 2 * 1024 * 1024;
/// How long a fetch of the feed may take, in seconds.
pub const FEED_TIMEOUT_SECONDS: u64 = 5;
/// How long a fetched feed is reused, in seconds: a busy time added to the calendar blocks
/// booking within this long.
pub const FEED_CACHE_SECONDS: u64 = 300;

/// The KV key a feed's text is cached under: a hash, so the secret address is not a key.
pub fn cache_key(url: &str) -> String {
    format!(
        "ical-feed:{}",
        crate::scheduling::sha256_hex(url.as_bytes())
    )
}

/// The text of a feed fetch's answer, or why it cannot be used. `body` holds at most
/// [`MAX_FEED_BYTES`] + 1 bytes: one more means the feed is too large.
pub fn feed_text(status: u16, body: Vec<u8>) -> Result<String, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the feed answered HTTP {status}"));
    }
    if body.len() > MAX_FEED_BYTES {
        return Err(format!(
            "the feed is larger than {} MiB",
            MAX_FEED_BYTES / (1024 * 1024)
        ));
    }
    String::from_utf8(body).map_err(|_| "the feed is not UTF-8 text".into())
}

/// Sorted, merged busy intervals in milliseconds since the epoch, `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Busy {
    intervals: Vec<(i64, i64)>,
}

impl Busy {
    /// From any intervals (sorted and merged here).
    pub fn from_intervals(mut intervals: Vec<(i64, i64)>) -> Self {
        intervals.retain(|(s, e)| s < e);
        intervals.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(intervals.len());
        for (s, e) in intervals {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        Busy { intervals: merged }
    }

    /// Whether `[start, end)` meets a busy interval.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        let i = self.intervals.partition_point(|(_, e)| *e <= start);
        self.intervals.get(i).is_some_and(|(s, _)| *s < end)
    }

    /// The intervals, sorted and merged.
    pub fn intervals(&self) -> &[(i64, i64)] {
        &self.intervals
    }
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The busy intervals of `doc` meeting `[from, to)` (milliseconds), floating times and all-day
/// events read in `floating` (the agent calendar's zone).
pub fn busy_times(
    doc: &Document,
    rules: &dyn ZoneRules,
    floating: Zone<'_>,
    (from, to): (i64, i64),
) -> Result<Busy, ReadError> {
    let clock = Clock::new(doc, rules, Some(floating));
    let mut intervals = Vec::new();
    let mut push = |line: usize, s: i64, e: i64| -> Result<(), ReadError> {
        if s < to && e > from {
            if intervals.len() == MAX_BUSY {
                return Err(ReadError::new(
                    line,
                    format!("more than {MAX_BUSY} busy times in the booking window"),
                ));
            }
            intervals.push((s, e));
        }
        Ok(())
    };
    // Overrides of single instances, by UID and the instant they replace.
    let mut overridden: HashMap<&str, HashSet<i64>> = HashMap::new();
    for event in &doc.events {
        if let (Some(uid), Some(rid)) = (&event.uid, &event.recurrence_id) {
            let at = clock
                .instant(rid)
                .map_err(|r| ReadError::new(event.line, format!("RECURRENCE-ID: {r}")))?;
            overridden.entry(uid.as_str()).or_default().insert(ms(at));
        }
    }
    for event in &doc.events {
        let fail = |r: String| ReadError::new(event.line, r);
        let busy = !event.cancelled && !event.transparent;
        let tz = clock.zone_of(&event.start).map_err(fail)?;
        let length = Length::of(event, &clock, tz.as_ref()).map_err(fail)?;
        let is_override = event.recurrence_id.is_some();
        if !is_override && event.rule.is_none() && event.rdates.is_empty() {
            if busy {
                let (s, e) = length
                    .span(tz.as_ref(), event.start.naive())
                    .map_err(fail)?;
                push(event.line, s, e)?;
            }
            continue;
        }
        if is_override {
            if busy {
                let (s, e) = length
                    .span(tz.as_ref(), event.start.naive())
                    .map_err(fail)?;
                push(event.line, s, e)?;
            }
            continue;
        }
        // A recurring master: its instances, less EXDATEs and overridden ones.
        let mut skipped: HashSet<i64> = HashSet::new();
        for ex in &event.exdates {
            skipped.insert(ms(clock
                .instant(ex)
                .map_err(|r| fail(format!("EXDATE: {r}")))?));
        }
        if let Some(uid) = &event.uid {
            skipped.extend(overridden.get(uid.as_str()).into_iter().flatten().copied());
        }
        if !busy {
            continue;
        }
        let mut instance = |local: NaiveDateTime| -> Result<(), ReadError> {
            let (s, e) = length.span(tz.as_ref(), local).map_err(fail)?;
            if !skipped.contains(&s) {
                push(event.line, s, e)?;
            }
            Ok(())
        };
        for rdate in &event.rdates {
            let local = match (rdate, &tz) {
                // An RDATE in another form than DTSTART: its instant on the event's clock.
                (When::Utc(at), Some(tz)) => tz.iana_or_defined_local(at.and_utc()),
                _ => rdate.naive(),
            };
            instance(local)?;
        }
        let Some(rule) = &event.rule else { continue };
        let start = event.start.naive();
        // Instances starting before this could still reach into the window; none after `to`.
        let window_start = DateTime::from_timestamp_millis(from)
            .map(|t| t.naive_utc())
            .unwrap_or(start)
            - length.at_most()
            - TimeDelta::days(2);
        let window_end = DateTime::from_timestamp_millis(to)
            .map(|t| t.naive_utc())
            .unwrap_or(start)
            + TimeDelta::days(2);
        let until = rule.until.clone();
        let past_until = |local: NaiveDateTime| match &until {
            None => false,
            Some(When::Utc(u)) => {
                instant_in(tz.as_ref(), local).is_none_or(|at| at.naive_utc() > *u)
            }
            Some(When::Date(d)) => local.date() > *d,
            Some(u) => local > u.naive(),
        };
        let mut failed = None;
        let walked = rule.expand(
            start,
            (window_start, window_end),
            &past_until,
            &mut |local| {
                if local > window_end {
                    return Flow::Stop;
                }
                match instance(local) {
                    Ok(()) => Flow::Continue,
                    Err(e) => {
                        failed = Some(e);
                        Flow::Stop
                    }
                }
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        walked.map_err(|_| fail("RRULE: the rule repeats too sparsely to expand".into()))?;
    }
    Ok(Busy::from_intervals(intervals))
}

impl Tz<'_> {
    /// `at` on this zone's wall clock.
    fn iana_or_defined_local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.naive_utc() + TimeDelta::seconds(self.offset_at(at).local_minus_utc().into())
    }
}

/// How long each instance of an event lasts.
enum Length {
    /// Whole days on the wall clock (all-day events: midnight to midnight).
    Days(i64),
    /// An exact duration.
    Exact(TimeDelta),
}

impl Length {
    fn of(event: &Event, clock: &Clock<'_>, tz: Option<&Tz<'_>>) -> Result<Length, String> {
        if let When::Date(start) = event.start {
            return Ok(match (&event.end, event.duration) {
                (Some(When::Date(end)), _) => Length::Days((*end - start).num_days().max(0)),
                (Some(_), _) => return Err("DTEND must be a date when DTSTART is".into()),
                (None, Some(d)) if d.num_seconds() % 86_400 == 0 => Length::Days(d.num_days()),
                (None, Some(d)) => Length::Exact(d),
                (None, None) => Length::Days(1),
            });
        }
        Ok(match (&event.end, event.duration) {
            (Some(end), _) => {
                let start = instant_in(tz, event.start.naive()).ok_or("DTSTART out of range")?;
                let end = clock.instant(end).map_err(|r| format!("DTEND: {r}"))?;
                Length::Exact((end - start).max(TimeDelta::zero()))
            }
            (None, Some(d)) => Length::Exact(d.max(TimeDelta::zero())),
            (None, None) => Length::Exact(TimeDelta::zero()),
        })
    }

    /// The longest an instance can be, for the window's lead.
    fn at_most(&self) -> TimeDelta {
        match self {
            Length::Days(d) => TimeDelta::days(*d + 1),
            Length::Exact(d) => *d,
        }
    }

    /// The instance starting at wall-clock `local`, in milliseconds.
    fn span(&self, tz: Option<&Tz<'_>>, local: NaiveDateTime) -> Result<(i64, i64), String> {
        let start = instant_in(tz, local).ok_or("time out of range")?;
        let end = match self {
            Length::Days(d) => {
                instant_in(tz, local + TimeDelta::days(*d)).ok_or("time out of range")?
            }
            Length::Exact(d) => start + *d,
        };
        Ok((ms(start), ms(end)))
    }
}
