//! Turning the times of a file into instants: TZID through the core's zones or the file's own
//! VTIMEZONE, `Z` times as written, floating times and dates in a zone the reader chooses.

use super::recur::Flow;
use super::{Document, VTimezone, When};
use crate::zones::{from_local_with, Zone, ZoneRules};
use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeDelta, Utc};

/// A time zone a TZID stands for.
#[derive(Debug, Clone, Copy)]
pub enum Tz<'a> {
    /// An IANA zone (rules from the runtime at the edge).
    Iana(Zone<'a>),
    /// A zone only the file defines (Outlook's `W. Europe Standard Time`, …).
    Defined(&'a VTimezone),
}

impl Tz<'_> {
    /// The offset in force at `at`.
    pub fn offset_at(&self, at: DateTime<Utc>) -> FixedOffset {
        match self {
            Tz::Iana(zone) => zone.offset_at(at),
            Tz::Defined(vtz) => vtz.offset_at(at),
        }
    }

    /// The instant of wall-clock time `local`: the first one in an overlap, and in a DST gap the
    /// time read with the offset before the gap (RFC 5545 §3.3.5).
    pub fn instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match from_local_with(local, &|at| self.offset_at(at)) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at),
            LocalResult::None => {
                let before =
                    self.offset_at(local.checked_sub_signed(TimeDelta::days(1))?.and_utc());
                let shift = TimeDelta::seconds(before.local_minus_utc().into());
                Some(local.checked_sub_signed(shift)?.and_utc())
            }
        }
    }

    /// The IANA name, when it is one.
    pub fn iana_name(&self) -> Option<&'static str> {
        match self {
            Tz::Iana(zone) => Some(zone.name()),
            Tz::Defined(_) => None,
        }
    }
}

impl VTimezone {
    /// The offset the file's observances give at `at`: that of the latest onset before it (the
    /// first observance's `TZOFFSETFROM` before any onset).
    pub fn offset_at(&self, at: DateTime<Utc>) -> FixedOffset {
        let mut best: Option<(DateTime<Utc>, i32)> = None;
        let mut earliest: Option<(DateTime<Utc>, i32)> = None;
        for o in &self.observances {
            let onset = |local: NaiveDateTime| {
                local
                    .checked_sub_signed(TimeDelta::seconds(o.offset_from.into()))
                    .map(|t| t.and_utc())
            };
            let mut consider = |local: NaiveDateTime| {
                let Some(instant) = onset(local) else { return };
                if earliest.is_none_or(|(e, _)| instant < e) {
                    earliest = Some((instant, o.offset_from));
                }
                if instant <= at && best.is_none_or(|(b, _)| instant > b) {
                    best = Some((instant, o.offset_to));
                }
            };
            consider(o.start);
            for &r in &o.rdates {
                consider(r);
            }
            if let Some(rule) = &o.rule {
                // Onsets of the last two years before `at` (a yearly rule's newest one is there).
                let local_at = at.naive_utc();
                let limit = local_at + TimeDelta::days(2);
                let skip_to = local_at
                    .checked_sub_signed(TimeDelta::days(800))
                    .unwrap_or(local_at);
                let until = rule.until.clone();
                let past_until = move |local: NaiveDateTime| match &until {
                    Some(When::Utc(u)) => onset(local).is_some_and(|i| i.naive_utc() > *u),
                    Some(u) => local > u.naive(),
                    None => false,
                };
                let _ = rule.expand(o.start, (skip_to, limit), &past_until, &mut |local| {
                    if local > limit {
                        return Flow::Stop;
                    }
                    consider(local);
                    Flow::Continue
                });
            }
        }
        let seconds = best.or(earliest).map_or(0, |(_, s)| s);
        FixedOffset::east_opt(seconds).unwrap_or(FixedOffset::east_opt(0).expect("zero offset"))
    }
}

/// Resolves the times of one document.
pub struct Clock<'a> {
    rules: &'a dyn ZoneRules,
    zones: &'a [VTimezone],
    /// Where floating times and all-day dates are read; `None`: they cannot be resolved.
    floating: Option<Zone<'a>>,
}

impl<'a> Clock<'a> {
    /// A clock for `doc`, reading floating times in `floating`.
    pub fn new(doc: &'a Document, rules: &'a dyn ZoneRules, floating: Option<Zone<'a>>) -> Self {
        Clock {
            rules,
            zones: &doc.zones,
            floating,
        }
    }

    /// The zone a TZID names: an IANA name (also at the end of a path-like TZID such as
    /// `/freeassociation.sourceforge.net/Europe/Berlin`), else the file's VTIMEZONE of that
    /// TZID. An IANA name wins over the file's definition: the zone database knows every year.
    pub fn zone(&self, tzid: &str) -> Result<Tz<'a>, String> {
        let tzid = tzid.trim();
        let mut candidate = tzid;
        loop {
            if let Some(zone) = Zone::resolve(self.rules, candidate) {
                return Ok(Tz::Iana(zone));
            }
            match candidate.split_once('/') {
                Some((_, rest)) if !rest.is_empty() => candidate = rest,
                _ => break,
            }
        }
        self.zones
            .iter()
            .find(|z| z.tzid == tzid)
            .map(Tz::Defined)
            .ok_or_else(|| {
                format!("unknown time zone {tzid:?} (neither IANA nor a VTIMEZONE of the file)")
            })
    }

    /// The zone floating times are read in.
    pub fn floating(&self) -> Option<Tz<'a>> {
        self.floating.map(Tz::Iana)
    }

    /// The instant of `when` (a date is its midnight in the floating zone).
    pub fn instant(&self, when: &When) -> Result<DateTime<Utc>, String> {
        match when {
            When::Utc(at) => Ok(at.and_utc()),
            When::Local {
                at,
                tzid: Some(tzid),
            } => self
                .zone(tzid)?
                .instant(*at)
                .ok_or_else(|| "time out of range".into()),
            When::Local { at, tzid: None } => self
                .floating()
                .ok_or("a floating time (no TZID, no Z) needs a time zone")?
                .instant(*at)
                .ok_or_else(|| "time out of range".into()),
            When::Date(d) => self
                .floating()
                .ok_or("an all-day date needs a time zone")?
                .instant(d.and_hms_opt(0, 0, 0).expect("midnight exists"))
                .ok_or_else(|| "time out of range".into()),
        }
    }

    /// The zone the wall-clock times of an event starting at `when` are in (`None`: UTC).
    pub fn zone_of(&self, when: &When) -> Result<Option<Tz<'a>>, String> {
        match when {
            When::Utc(_) => Ok(None),
            When::Local {
                tzid: Some(tzid), ..
            } => self.zone(tzid).map(Some),
            When::Local { tzid: None, .. } | When::Date(_) => self
                .floating()
                .map(Some)
                .ok_or_else(|| "a floating time or all-day date needs a time zone".into()),
        }
    }
}

/// The instant of wall-clock `local` in `tz` (`None`: UTC).
pub fn instant_in(tz: Option<&Tz<'_>>, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz {
        None => Some(local.and_utc()),
        Some(tz) => tz.instant(local),
    }
}
