//! RRULE (RFC 5545 §3.3.10) expansion on wall-clock times, bounded.
//!
//! Written here rather than taken from a crate: the `rrule` crate (0.14) depends on chrono-tz,
//! whose tables the wasm must not carry (zones come from the runtime, see `zones.rs`). Supported:
//! FREQ DAILY / WEEKLY / MONTHLY / YEARLY, INTERVAL, COUNT, UNTIL, BYDAY (with ordinals in
//! MONTHLY and YEARLY: `2MO`, `-1FR`), BYMONTHDAY (negative from the month's end), BYMONTH,
//! BYSETPOS and WKST. Any other part (BYHOUR, BYWEEKNO, BYYEARDAY, FREQ=HOURLY, …) is refused by
//! [`Rule::parse`], never ignored: a rule read wrongly would hide or invent busy times.
//!
//! Instances are wall-clock times: a 09:00 meeting stays at 09:00 across a DST change, and the
//! caller maps each one to an instant in the event's zone.

use super::When;
use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, TimeDelta, Weekday};

/// Periods (days, weeks, months, years) one expansion may walk: bounds the CPU a rule costs
/// whatever it says (a rule matching nothing, such as Feb 30, would otherwise run forever).
pub const MAX_PERIODS: u32 = 20_000;

/// How often the rule repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A parsed RRULE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub freq: Freq,
    pub interval: u32,
    pub count: Option<u32>,
    /// Inclusive end, as written (its kind matches DTSTART's: UTC for zoned starts).
    pub until: Option<When>,
    /// Weekdays with an optional ordinal (`2MO` → `(Some(2), Mon)`).
    pub by_day: Vec<(Option<i32>, Weekday)>,
    pub by_month_day: Vec<i32>,
    pub by_month: Vec<u32>,
    pub by_set_pos: Vec<i32>,
    pub week_start: Weekday,
}

/// What the visitor of [`Rule::expand`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The expansion walked [`MAX_PERIODS`] periods without reaching its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn numbers(v: &str, range: std::ops::RangeInclusive<i32>, signed: bool) -> Option<Vec<i32>> {
    v.split(',')
        .map(|n| {
            let n: i32 = n.trim().parse().ok()?;
            (range.contains(&n.abs()) && (signed || n > 0)).then_some(n)
        })
        .collect()
}

impl Rule {
    /// Parses an RRULE value for an event starting at `start` (UNTIL is read like DTSTART).
    pub fn parse(value: &str, start: &When) -> Result<Rule, String> {
        let mut freq = None;
        let mut rule = Rule {
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until: None,
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_month: Vec::new(),
            by_set_pos: Vec::new(),
            week_start: Weekday::Mon,
        };
        for part in value.split(';').filter(|p| !p.trim().is_empty()) {
            let (key, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not NAME=value"))?;
            let key = key.trim().to_ascii_uppercase();
            let v = v.trim().to_ascii_uppercase();
            let bad = || format!("{key}={v} is not valid");
            match key.as_str() {
                "FREQ" => {
                    freq = Some(match v.as_str() {
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        "YEARLY" => Freq::Yearly,
                        _ => return Err(format!("FREQ={v} is not supported")),
                    })
                }
                "INTERVAL" => {
                    rule.interval = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(bad)?
                }
                "COUNT" => rule.count = Some(v.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?),
                "UNTIL" => {
                    let tzid = match start {
                        When::Local { tzid, .. } => tzid.as_deref(),
                        _ => None,
                    };
                    rule.until = Some(super::parse_value(&v, false, tzid).map_err(|_| bad())?)
                }
                "BYDAY" => {
                    for day in v.split(',') {
                        let day = day.trim();
                        let (n, name) = day.split_at(day.len().saturating_sub(2));
                        let wd = weekday(name).ok_or_else(bad)?;
                        let ordinal = if n.is_empty() {
                            None
                        } else {
                            let n: i32 = n.parse().map_err(|_| bad())?;
                            if n == 0 || n.abs() > 53 {
                                return Err(bad());
                            }
                            Some(n)
                        };
                        rule.by_day.push((ordinal, wd));
                    }
                }
                "BYMONTHDAY" => rule.by_month_day = numbers(&v, 1..=31, true).ok_or_else(bad)?,
                "BYMONTH" => {
                    rule.by_month = numbers(&v, 1..=12, false)
                        .ok_or_else(bad)?
                        .into_iter()
                        .map(|m| m as u32)
                        .collect()
                }
                "BYSETPOS" => rule.by_set_pos = numbers(&v, 1..=366, true).ok_or_else(bad)?,
                "WKST" => rule.week_start = weekday(&v).ok_or_else(bad)?,
                _ => return Err(format!("{key} is not supported")),
            }
        }
        rule.freq = freq.ok_or("FREQ is required")?;
        if rule.count.is_some() && rule.until.is_some() {
            return Err("COUNT and UNTIL cannot both be given".into());
        }
        let ordinals = rule.by_day.iter().any(|(n, _)| n.is_some());
        if ordinals && !matches!(rule.freq, Freq::Monthly | Freq::Yearly) {
            return Err("BYDAY ordinals (2MO, -1FR) need FREQ=MONTHLY or YEARLY".into());
        }
        if !rule.by_month_day.is_empty() && rule.freq == Freq::Weekly {
            return Err("BYMONTHDAY cannot be used with FREQ=WEEKLY".into());
        }
        Ok(rule)
    }

    /// Visits the instances from `start` on, earliest first: `start` itself (always the first
    /// instance, RFC 5545 §3.8.5.3), then the rule's, each once, until COUNT is reached, `past_until`
    /// says an instance is after UNTIL, `visit` says stop, or the periods pass `window.1` (so
    /// a rule matching nothing costs only the window). Without COUNT the walk begins at the
    /// period of `window.0` (instances before it may be left out); with COUNT every instance
    /// from `start` is counted.
    pub fn expand(
        &self,
        start: NaiveDateTime,
        (skip_to, end): (NaiveDateTime, NaiveDateTime),
        past_until: &dyn Fn(NaiveDateTime) -> bool,
        visit: &mut dyn FnMut(NaiveDateTime) -> Flow,
    ) -> Result<(), TooLong> {
        let mut emitted: u32 = 0;
        if past_until(start) {
            return Ok(());
        }
        emitted += 1;
        if visit(start) == Flow::Stop || self.count == Some(1) {
            return Ok(());
        }
        let time = start.time();
        let day0 = start.date();
        let mut period = if self.count.is_none() && skip_to > start {
            self.periods_before(day0, skip_to.date())
        } else {
            0
        };
        for _ in 0..MAX_PERIODS {
            match self.period_start(day0, period) {
                Some(first) if first <= end.date() => {}
                _ => return Ok(()),
            }
            let Some(dates) = self.dates_in(day0, period) else {
                return Ok(()); // past the calendar's range
            };
            for date in dates {
                let at = date.and_time(time);
                if at <= start {
                    continue;
                }
                if past_until(at) {
                    return Ok(());
                }
                emitted += 1;
                if visit(at) == Flow::Stop || self.count.is_some_and(|c| emitted >= c) {
                    return Ok(());
                }
            }
            period += i64::from(self.interval);
        }
        Err(TooLong)
    }

    /// A period index (a multiple of INTERVAL) whose period starts no later than `target`'s.
    fn periods_before(&self, day0: NaiveDate, target: NaiveDate) -> i64 {
        let interval = i64::from(self.interval);
        let raw = match self.freq {
            Freq::Daily => (target - day0).num_days(),
            Freq::Weekly => (self.week_of(target) - self.week_of(day0)).num_days() / 7,
            Freq::Monthly => {
                (i64::from(target.year()) * 12 + i64::from(target.month0()))
                    - (i64::from(day0.year()) * 12 + i64::from(day0.month0()))
            }
            Freq::Yearly => i64::from(target.year() - day0.year()),
        };
        // One period of slack: BYSETPOS and week boundaries look at whole periods.
        ((raw / interval) - 1).max(0) * interval
    }

    /// The first day of period `index`.
    fn period_start(&self, day0: NaiveDate, index: i64) -> Option<NaiveDate> {
        match self.freq {
            Freq::Daily => day0.checked_add_signed(TimeDelta::try_days(index)?),
            Freq::Weekly => self
                .week_of(day0)
                .checked_add_signed(TimeDelta::try_weeks(index)?),
            Freq::Monthly => month_start(day0, index),
            Freq::Yearly => {
                NaiveDate::from_ymd_opt(day0.year().checked_add(i32::try_from(index).ok()?)?, 1, 1)
            }
        }
    }

    /// The first day of the week (per WKST) holding `day`.
    fn week_of(&self, day: NaiveDate) -> NaiveDate {
        let back =
            (7 + day.weekday().num_days_from_monday() - self.week_start.num_days_from_monday()) % 7;
        day - TimeDelta::days(back.into())
    }

    /// The dates the rule selects in period `index` (0 = the period holding `day0`), sorted;
    /// `None` beyond chrono's range.
    fn dates_in(&self, day0: NaiveDate, index: i64) -> Option<Vec<NaiveDate>> {
        let mut dates: Vec<NaiveDate> = match self.freq {
            Freq::Daily => {
                let day = day0.checked_add_signed(TimeDelta::try_days(index)?)?;
                let keep = self.month_ok(day)
                    && self.month_day_ok(day)
                    && (self.by_day.is_empty()
                        || self.by_day.iter().any(|(_, w)| *w == day.weekday()));
                if keep {
                    vec![day]
                } else {
                    vec![]
                }
            }
            Freq::Weekly => {
                let first = self
                    .week_of(day0)
                    .checked_add_signed(TimeDelta::try_weeks(index)?)?;
                (0..7)
                    .filter_map(|i| first.checked_add_signed(TimeDelta::days(i)))
                    .filter(|d| {
                        if self.by_day.is_empty() {
                            d.weekday() == day0.weekday()
                        } else {
                            self.by_day.iter().any(|(_, w)| *w == d.weekday())
                        }
                    })
                    .filter(|d| self.month_ok(*d))
                    .collect()
            }
            Freq::Monthly => {
                let first = month_start(day0, index)?;
                if !self.month_ok(first) {
                    vec![]
                } else {
                    self.days_of_month(first, day0)
                }
            }
            Freq::Yearly => {
                let year = day0.year().checked_add(i32::try_from(index).ok()?)?;
                let jan = NaiveDate::from_ymd_opt(year, 1, 1)?;
                if !self.by_month.is_empty() {
                    let mut out = Vec::new();
                    for &m in &self.by_month {
                        if let Some(first) = NaiveDate::from_ymd_opt(year, m, 1) {
                            out.extend(self.days_of_month(first, day0));
                        }
                    }
                    out
                } else if !self.by_month_day.is_empty() {
                    (1..=12)
                        .filter_map(|m| NaiveDate::from_ymd_opt(year, m, 1))
                        .flat_map(|first| self.days_of_month(first, day0))
                        .collect()
                } else if !self.by_day.is_empty() {
                    let days = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
                        366
                    } else {
                        365
                    };
                    let all: Vec<NaiveDate> = (0..days).map(|i| jan + TimeDelta::days(i)).collect();
                    select_by_day(&all, &self.by_day)
                } else {
                    NaiveDate::from_ymd_opt(year, day0.month(), day0.day())
                        .into_iter()
                        .collect()
                }
            }
        };
        dates.sort_unstable();
        dates.dedup();
        if !self.by_set_pos.is_empty() {
            let n = dates.len() as i32;
            let mut picked: Vec<NaiveDate> = self
                .by_set_pos
                .iter()
                .filter_map(|&p| {
                    let i = if p > 0 { p - 1 } else { n + p };
                    (0..n).contains(&i).then(|| dates[i as usize])
                })
                .collect();
            picked.sort_unstable();
            picked.dedup();
            dates = picked;
        }
        Some(dates)
    }

    fn month_ok(&self, day: NaiveDate) -> bool {
        self.by_month.is_empty() || self.by_month.contains(&day.month())
    }

    fn month_day_ok(&self, day: NaiveDate) -> bool {
        if self.by_month_day.is_empty() {
            return true;
        }
        let len = month_length(day) as i32;
        let d = day.day() as i32;
        self.by_month_day
            .iter()
            .any(|&n| n == d || (n < 0 && len + 1 + n == d))
    }

    /// The days of the month starting at `first` that BYMONTHDAY and BYDAY (ordinals counted
    /// within the month) select, or DTSTART's day of the month when neither is given.
    fn days_of_month(&self, first: NaiveDate, day0: NaiveDate) -> Vec<NaiveDate> {
        let len = month_length(first);
        let all: Vec<NaiveDate> = (0..len)
            .map(|i| first + TimeDelta::days(i.into()))
            .collect();
        if self.by_month_day.is_empty() && self.by_day.is_empty() {
            return all.into_iter().filter(|d| d.day() == day0.day()).collect();
        }
        let by_month_day: Vec<NaiveDate> = all
            .iter()
            .copied()
            .filter(|d| self.month_day_ok(*d))
            .collect();
        if self.by_day.is_empty() {
            return by_month_day;
        }
        select_by_day(&by_month_day, &self.by_day)
    }
}

/// The days of `days` (one month or one year, in order) matching BYDAY, an ordinal `n` picking
/// the n-th such weekday (from the end when negative) among them.
fn select_by_day(days: &[NaiveDate], by_day: &[(Option<i32>, Weekday)]) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    for &(ordinal, wd) in by_day {
        let matching: Vec<NaiveDate> = days.iter().copied().filter(|d| d.weekday() == wd).collect();
        match ordinal {
            None => out.extend(matching),
            Some(n) => {
                let len = matching.len() as i32;
                let i = if n > 0 { n - 1 } else { len + n };
                if (0..len).contains(&i) {
                    out.push(matching[i as usize]);
                }
            }
        }
    }
    out
}

/// The first day of the month `index` months after `day0`'s.
fn month_start(day0: NaiveDate, index: i64) -> Option<NaiveDate> {
    let first = day0.with_day(1)?;
    first.checked_add_months(Months::new(u32::try_from(index).ok()?))
}

fn month_length(day: NaiveDate) -> u32 {
    let first = day.with_day(1).expect("day 1 exists");
    let next = first
        .checked_add_months(Months::new(1))
        .unwrap_or(first + TimeDelta::days(31));
    (next - first).num_days() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn local(s: &str) -> When {
        When::Local {
            at: dt(s),
            tzid: Some("Europe/Berlin".into()),
        }
    }

    /// Up to `limit` instances of `rule` from `start`, UNTIL compared on the wall clock.
    fn instances(rule: &str, start: &str, limit: usize) -> Vec<String> {
        let start_when = local(start);
        let rule = Rule::parse(rule, &start_when).unwrap();
        let until = rule.until.as_ref().map(When::naive);
        let mut out = Vec::new();
        rule.expand(
            dt(start),
            (dt(start), NaiveDateTime::MAX),
            &|at| until.is_some_and(|u| at > u),
            &mut |at| {
                out.push(at.format("%Y-%m-%d %a %H:%M").to_string());
                if out.len() >= limit {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn daily_weekly_with_interval_count_and_until() {
        assert_eq!(
            instances("FREQ=DAILY;INTERVAL=2;COUNT=3", "2026-03-28 09:00", 10),
            [
                "2026-03-28 Sat 09:00",
                "2026-03-30 Mon 09:00",
                "2026-04-01 Wed 09:00"
            ]
        );
        assert_eq!(
            instances(
                "FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260114T090000",
                "2026-01-05 09:00",
                10
            ),
            [
                "2026-01-05 Mon 09:00",
                "2026-01-07 Wed 09:00",
                "2026-01-12 Mon 09:00",
                "2026-01-14 Wed 09:00"
            ]
        );
        // Every other week, Tuesday and Thursday, the week starting on Sunday (RFC 5545's own
        // WKST example differs by week start).
        assert_eq!(
            instances(
                "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO",
                "1997-08-05 09:00",
                10
            ),
            [
                "1997-08-05 Tue 09:00",
                "1997-08-10 Sun 09:00",
                "1997-08-19 Tue 09:00",
                "1997-08-24 Sun 09:00"
            ]
        );
        assert_eq!(
            instances(
                "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
                "1997-08-05 09:00",
                10
            ),
            [
                "1997-08-05 Tue 09:00",
                "1997-08-17 Sun 09:00",
                "1997-08-19 Tue 09:00",
                "1997-08-31 Sun 09:00"
            ]
        );
    }

    #[test]
    fn monthly_ordinals_month_days_and_set_positions() {
        // The second Monday and the last Friday of each month.
        assert_eq!(
            instances("FREQ=MONTHLY;BYDAY=2MO", "2026-01-12 10:00", 4),
            [
                "2026-01-12 Mon 10:00",
                "2026-02-09 Mon 10:00",
                "2026-03-09 Mon 10:00",
                "2026-04-13 Mon 10:00"
            ]
        );
        assert_eq!(
            instances("FREQ=MONTHLY;BYDAY=-1FR;COUNT=3", "2026-01-30 16:00", 10),
            [
                "2026-01-30 Fri 16:00",
                "2026-02-27 Fri 16:00",
                "2026-03-27 Fri 16:00"
            ]
        );
        // The 31st skips short months; -1 is the last day.
        assert_eq!(
            instances("FREQ=MONTHLY;BYMONTHDAY=31", "2026-01-31 08:00", 3),
            [
                "2026-01-31 Sat 08:00",
                "2026-03-31 Tue 08:00",
                "2026-05-31 Sun 08:00"
            ]
        );
        assert_eq!(
            instances("FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=3", "2026-01-31 08:00", 10),
            [
                "2026-01-31 Sat 08:00",
                "2026-02-28 Sat 08:00",
                "2026-03-31 Tue 08:00"
            ]
        );
        // Outlook's "last weekday of the month".
        assert_eq!(
            instances(
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3",
                "2026-01-30 12:00",
                10
            ),
            [
                "2026-01-30 Fri 12:00",
                "2026-02-27 Fri 12:00",
                "2026-03-31 Tue 12:00"
            ]
        );
        // Friday the 13th (RFC 5545 example).
        assert_eq!(
            instances(
                "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13;COUNT=3",
                "2026-02-13 09:00",
                10
            ),
            [
                "2026-02-13 Fri 09:00",
                "2026-03-13 Fri 09:00",
                "2026-11-13 Fri 09:00"
            ]
        );
    }

    #[test]
    fn yearly_rules_like_vtimezone_ones() {
        // EU summer time starts on the last Sunday of March.
        assert_eq!(
            instances("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "1996-03-31 02:00", 3),
            [
                "1996-03-31 Sun 02:00",
                "1997-03-30 Sun 02:00",
                "1998-03-29 Sun 02:00"
            ]
        );
        // US: second Sunday of March, first Sunday of November.
        assert_eq!(
            instances("FREQ=YEARLY;BYMONTH=11;BYDAY=1SU", "2007-11-04 02:00", 2),
            ["2007-11-04 Sun 02:00", "2008-11-02 Sun 02:00"]
        );
        // A birthday on Feb 29 only in leap years.
        assert_eq!(
            instances("FREQ=YEARLY;COUNT=2", "2024-02-29 00:00", 10),
            ["2024-02-29 Thu 00:00", "2028-02-29 Tue 00:00"]
        );
        // Every Monday of January, once a year, and the 20th Monday of the year.
        assert_eq!(
            instances(
                "FREQ=YEARLY;BYMONTH=1;BYDAY=MO;COUNT=3",
                "2026-01-05 09:00",
                10
            ),
            [
                "2026-01-05 Mon 09:00",
                "2026-01-12 Mon 09:00",
                "2026-01-19 Mon 09:00"
            ]
        );
        assert_eq!(
            instances("FREQ=YEARLY;BYDAY=20MO;COUNT=2", "1997-05-19 09:00", 10),
            ["1997-05-19 Mon 09:00", "1998-05-18 Mon 09:00"]
        );
    }

    #[test]
    fn unsupported_and_invalid_parts_are_refused() {
        let start = local("2026-01-05 09:00");
        for bad in [
            "FREQ=HOURLY",
            "FREQ=DAILY;BYHOUR=9",
            "FREQ=YEARLY;BYWEEKNO=20",
            "FREQ=DAILY;BYDAY=2MO",
            "FREQ=WEEKLY;BYMONTHDAY=3",
            "FREQ=DAILY;COUNT=0",
            "FREQ=DAILY;COUNT=2;UNTIL=20260110T000000Z",
            "INTERVAL=2",
            "FREQ=MONTHLY;BYDAY=0MO",
            "FREQ=MONTHLY;BYMONTHDAY=32",
            "FREQ=DAILY;garbage",
        ] {
            assert!(Rule::parse(bad, &start).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rule_that_matches_nothing_is_bounded() {
        let start = local("2026-01-05 09:00");
        let rule = Rule::parse("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", &start).unwrap();
        let mut seen = 0;
        let result = rule.expand(
            dt("2026-01-05 09:00"),
            (dt("2026-01-05 09:00"), NaiveDateTime::MAX),
            &|_| false,
            &mut |_| {
                seen += 1;
                Flow::Continue
            },
        );
        // The start itself, then nothing; chrono's year range ends the walk first or the bound does.
        assert_eq!(seen, 1);
        assert!(result.is_ok() || result == Err(TooLong));
        let daily = Rule::parse("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", &start).unwrap();
        assert_eq!(
            daily.expand(
                dt("2026-01-05 09:00"),
                (dt("2026-01-05 09:00"), NaiveDateTime::MAX),
                &|_| false,
                &mut |_| Flow::Continue
            ),
            Err(TooLong)
        );
        // Within a window, the same rule costs only the window's periods.
        let mut visits = 0;
        let bounded = daily.expand(
            dt("2026-01-05 09:00"),
            (dt("2026-01-05 09:00"), dt("2026-03-01 00:00")),
            &|_| false,
            &mut |_| {
                visits += 1;
                Flow::Continue
            },
        );
        assert_eq!(bounded, Ok(()));
        assert_eq!(visits, 1);
    }

    #[test]
    fn skipping_ahead_gives_the_same_instances() {
        let start = local("2020-01-06 09:00");
        let rule = Rule::parse("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR", &start).unwrap();
        let collect = |skip: &str| {
            let mut out = Vec::new();
            rule.expand(
                dt("2020-01-06 09:00"),
                (dt(skip), NaiveDateTime::MAX),
                &|_| false,
                &mut |at| {
                    if at >= dt("2026-06-01 00:00") {
                        return Flow::Stop;
                    }
                    if at >= dt("2026-01-01 00:00") {
                        out.push(at);
                    }
                    Flow::Continue
                },
            )
            .unwrap();
            out
        };
        assert_eq!(collect("2025-12-31 00:00"), collect("2020-01-06 09:00"));
        assert!(!collect("2025-12-31 00:00").is_empty());
    }

    /// The weekday a date falls on, counted by hand from a known Monday.
    fn weekday_by_hand(d: NaiveDate) -> u32 {
        let monday = NaiveDate::from_ymd_opt(2000, 1, 3).unwrap();
        (d - monday).num_days().rem_euclid(7) as u32
    }

    proptest! {
        /// DAILY with INTERVAL n and COUNT c: c instances, n days apart, at the start's time.
        #[test]
        fn daily_instances_are_interval_days_apart(n in 1u32..20, c in 1u32..40, offset in 0i64..3000) {
            let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + TimeDelta::days(offset);
            let start = start.and_hms_opt(7, 30, 0).unwrap();
            let rule = Rule::parse(&format!("FREQ=DAILY;INTERVAL={n};COUNT={c}"), &When::Local { at: start, tzid: None }).unwrap();
            let mut out = Vec::new();
            rule.expand(start, (start, NaiveDateTime::MAX), &|_| false, &mut |at| { out.push(at); Flow::Continue }).unwrap();
            prop_assert_eq!(out.len() as u32, c);
            for (i, at) in out.iter().enumerate() {
                prop_assert_eq!(*at, start + TimeDelta::days(i as i64 * i64::from(n)));
            }
        }

        /// MONTHLY;BYDAY=kWD: each instance is that weekday, in the k-th (or last) week of its
        /// month, and consecutive instances are consecutive months.
        #[test]
        fn monthly_ordinal_weekdays(k in prop::sample::select(vec![1i32, 2, 3, 4, -1, -2]), wd in 0usize..7, months in 1u32..30) {
            let names = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
            let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            // DTSTART on the first matching day of January 2026.
            let jan: Vec<NaiveDate> = (0..31).map(|i| first + TimeDelta::days(i)).filter(|d| weekday_by_hand(*d) as usize == wd).collect();
            let start = if k > 0 { jan[(k - 1) as usize] } else { jan[jan.len() - (-k) as usize] };
            let start = start.and_hms_opt(9, 0, 0).unwrap();
            let rule = Rule::parse(&format!("FREQ=MONTHLY;BYDAY={k}{};COUNT={months}", names[wd]), &When::Local { at: start, tzid: None }).unwrap();
            let mut out = Vec::new();
            rule.expand(start, (start, NaiveDateTime::MAX), &|_| false, &mut |at| { out.push(at.date()); Flow::Continue }).unwrap();
            prop_assert_eq!(out.len() as u32, months);
            for (i, d) in out.iter().enumerate() {
                prop_assert_eq!(weekday_by_hand(*d) as usize, wd);
                let month_index = (d.year() - 2026) * 12 + d.month0() as i32;
                prop_assert_eq!(month_index, i as i32);
                let len = month_length(*d);
                if k > 0 {
                    prop_assert_eq!((d.day() - 1) / 7 + 1, k as u32);
                } else {
                    prop_assert_eq!((len - d.day()) / 7 + 1, (-k) as u32);
                }
            }
        }
    }
}
