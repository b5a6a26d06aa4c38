//! Reading iCalendar (RFC 5545) files into typed events: the one reader behind an agent
//! calendar's busy-time feed ([`busy`]) and the calendar import of scheduled calls ([`import`]).
//!
//! The content lines are read here (RFC 5545 §3.1: unfolding, `name *(";" param) ":" value`,
//! quoted parameter values, BEGIN/END nesting) into a small component tree; every problem names
//! the exact line of the source as the client wrote it (folded lines count as written). Written
//! by hand rather than with the `icalendar` crate: its parser (nom) cost 34 KB of the wasm (13 KB
//! gzip), did not say where a malformed file went wrong, and unescaped `\\n` twice.
//!
//! Times stay as written ([`When`]) until [`time::Clock`] resolves them: a TZID through the
//! core's zones (the runtime's `Intl` at the edge) or, for a name no zone database knows (Outlook
//! writes Windows names), through the file's own VTIMEZONE; UTC `Z` times as they are; floating
//! times and all-day dates in a zone the caller chooses.

pub mod busy;
pub mod import;
pub mod recur;
pub mod time;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use recur::Rule;
use thiserror::Error;

/// Components may nest this deep (VCALENDAR › VEVENT › VALARM, VTIMEZONE › STANDARD).
const MAX_DEPTH: usize = 4;

/// Why a file cannot be read, naming its line (1-based, as in the source).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct ReadError {
    /// Line of the source (folded continuation lines counted).
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

impl ReadError {
    fn new(line: usize, reason: impl Into<String>) -> Self {
        ReadError {
            line,
            reason: reason.into(),
        }
    }
}

/// A date or date-time value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// `VALUE=DATE`: a whole day, wherever the reader is.
    Date(NaiveDate),
    /// A `Z` time: an instant.
    Utc(NaiveDateTime),
    /// A local time in `tzid`, or floating (the reader's local time) without one.
    Local {
        at: NaiveDateTime,
        tzid: Option<String>,
    },
}

impl When {
    /// The wall-clock date-time (midnight for a date).
    pub fn naive(&self) -> NaiveDateTime {
        match self {
            When::Date(d) => d.and_hms_opt(0, 0, 0).expect("midnight exists"),
            When::Utc(at) | When::Local { at, .. } => *at,
        }
    }

    /// The same kind of value at another wall-clock time (recurrence instances).
    pub fn with_naive(&self, at: NaiveDateTime) -> When {
        match self {
            When::Date(_) => When::Date(at.date()),
            When::Utc(_) => When::Utc(at),
            When::Local { tzid, .. } => When::Local {
                at,
                tzid: tzid.clone(),
            },
        }
    }
}

/// An `ATTENDEE`: its address (`tel:…`, `mailto:…`) and `CN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    pub address: String,
    pub name: Option<String>,
}

/// One VEVENT, with the properties the product reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Line of its `BEGIN:VEVENT`.
    pub line: usize,
    pub uid: Option<String>,
    pub start: When,
    pub end: Option<When>,
    pub duration: Option<TimeDelta>,
    /// Set on an override of one instance of a recurring event.
    pub recurrence_id: Option<When>,
    pub rule: Option<Rule>,
    pub rdates: Vec<When>,
    pub exdates: Vec<When>,
    /// `STATUS:CANCELLED`.
    pub cancelled: bool,
    /// `TRANSP:TRANSPARENT` (or Outlook's `X-MICROSOFT-CDO-BUSYSTATUS:FREE`): shown, not busy.
    pub transparent: bool,
    pub summary: Option<String>,
    pub location: Option<String>,
    pub attendees: Vec<Attendee>,
    /// `X-PHONE`, the property an exporter may put the number to call in.
    pub phone: Option<String>,
}

/// One STANDARD or DAYLIGHT part of a VTIMEZONE.
#[derive(Debug, Clone, PartialEq)]
pub struct Observance {
    /// Local onset (`DTSTART`, in the offset before it).
    pub start: NaiveDateTime,
    /// Offset in seconds east of UTC before and from the onset.
    pub offset_from: i32,
    pub offset_to: i32,
    pub rule: Option<Rule>,
    pub rdates: Vec<NaiveDateTime>,
}

/// A VTIMEZONE: the offsets a TZID stands for, as the file defines them.
#[derive(Debug, Clone, PartialEq)]
pub struct VTimezone {
    pub tzid: String,
    pub observances: Vec<Observance>,
}

/// A read file: its events and time-zone definitions, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    pub events: Vec<Event>,
    pub zones: Vec<VTimezone>,
}

/// One content line: `name *(";" param) ":" value`, with its source line.
#[derive(Debug)]
struct Property {
    name: String,
    /// (name, value as written: quotes and commas kept).
    params: Vec<(String, String)>,
    value: String,
    line: usize,
}

/// A BEGIN … END block with its properties and sub-components.
#[derive(Debug, Default)]
struct Component {
    /// Upper case.
    name: String,
    line: usize,
    properties: Vec<Property>,
    components: Vec<Component>,
}

/// Reads an iCalendar file: every content line checked, the component tree built, VEVENTs and
/// VTIMEZONEs typed. The first problem is returned with its line.
pub fn read(source: &str) -> Result<Document, ReadError> {
    let calendars = parse_components(source)?;
    let mut doc = Document::default();
    for calendar in &calendars {
        for component in &calendar.components {
            match component.name.as_str() {
                "VEVENT" => doc.events.push(event(component)?),
                "VTIMEZONE" => doc.zones.push(vtimezone(component)?),
                _ => {}
            }
        }
    }
    Ok(doc)
}

/// Unfolds continuation lines (RFC 5545 §3.1), checks each content line and the nesting, and
/// returns the top-level components (the VCALENDARs).
fn parse_components(source: &str) -> Result<Vec<Component>, ReadError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut logical: Vec<(usize, String)> = Vec::new();
    for (i, raw) in source.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match raw.as_bytes().first() {
            Some(b' ' | b'\t') => match logical.last_mut() {
                Some((_, line)) => line.push_str(&raw[1..]),
                None => return Err(ReadError::new(i + 1, "a continuation line starts the file")),
            },
            _ => logical.push((i + 1, raw.to_owned())),
        }
    }
    let mut stack: Vec<Component> = Vec::new();
    let mut calendars: Vec<Component> = Vec::new();
    for (line, content) in logical {
        if content.trim().is_empty() {
            continue;
        }
        let prop = parse_line(&content, line).map_err(|r| ReadError::new(line, r))?;
        match prop.name.to_ascii_uppercase().as_str() {
            "BEGIN" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if stack.is_empty() && name != "VCALENDAR" {
                    return Err(ReadError::new(
                        line,
                        format!("expected BEGIN:VCALENDAR, found BEGIN:{name}"),
                    ));
                }
                if stack.len() == MAX_DEPTH {
                    return Err(ReadError::new(line, "components nested too deeply"));
                }
                stack.push(Component {
                    name,
                    line,
                    ..Component::default()
                });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let Some(open) = stack.pop() else {
                    return Err(ReadError::new(line, format!("END:{name} without BEGIN")));
                };
                if open.name != name {
                    return Err(ReadError::new(
                        line,
                        format!("END:{name} does not close BEGIN:{}", open.name),
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.components.push(open),
                    None => calendars.push(open),
                }
            }
            _ => match stack.last_mut() {
                Some(component) => component.properties.push(prop),
                None => {
                    return Err(ReadError::new(
                        line,
                        format!("{} outside BEGIN:VCALENDAR … END:VCALENDAR", prop.name),
                    ))
                }
            },
        }
    }
    if let Some(open) = stack.last() {
        let last = last_content_line(source).unwrap_or(1);
        return Err(ReadError::new(
            last,
            format!("the file ends inside BEGIN:{}", open.name),
        ));
    }
    if calendars.is_empty() {
        return Err(ReadError::new(
            1,
            "not an iCalendar file (no BEGIN:VCALENDAR)",
        ));
    }
    Ok(calendars)
}

/// The source line the last non-blank content line starts on (folded lines count as written).
fn last_content_line(source: &str) -> Option<usize> {
    source
        .split('\n')
        .enumerate()
        .filter(|(_, raw)| !matches!(raw.as_bytes().first(), Some(b' ' | b'\t')))
        .filter(|(_, raw)| !raw.trim().is_empty())
        .last()
        .map(|(i, _)| i + 1)
}

/// Reads `name *(";" param) ":" value` (RFC 5545 §3.1).
fn parse_line(line: &str, number: usize) -> Result<Property, String> {
    let bytes = line.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let name_end = bytes
        .iter()
        .position(|b| !is_name(*b))
        .unwrap_or(bytes.len());
    if name_end == 0 {
        return Err(format!(
            "{:?} is not a content line (NAME:value)",
            excerpt(line)
        ));
    }
    let name = &line[..name_end];
    let mut params = Vec::new();
    let mut i = name_end;
    while i < bytes.len() && bytes[i] == b';' {
        i += 1;
        let key_start = i;
        while i < bytes.len() && is_name(bytes[i]) {
            i += 1;
        }
        if i == key_start || bytes.get(i) != Some(&b'=') {
            return Err(format!("{name}: a parameter must be NAME=value"));
        }
        let key = &line[key_start..i];
        i += 1;
        let value_start = i;
        loop {
            if bytes.get(i) == Some(&b'"') {
                let close = line[i + 1..]
                    .find('"')
                    .ok_or_else(|| format!("{name}: a quoted parameter value is not closed"))?;
                i += close + 2;
            } else {
                while i < bytes.len() && !matches!(bytes[i], b';' | b':' | b',' | b'"') {
                    if bytes[i] < 0x20 && bytes[i] != b'\t' {
                        return Err(format!("{name}: control character in a parameter"));
                    }
                    i += 1;
                }
            }
            if bytes.get(i) == Some(&b',') {
                i += 1;
            } else {
                break;
            }
        }
        params.push((key.to_owned(), line[value_start..i].to_owned()));
    }
    if bytes.get(i) != Some(&b':') {
        return Err(format!("{name}: ':' expected before the value"));
    }
    let value = &line[i + 1..];
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!("{name}: control character in the value"));
    }
    Ok(Property {
        name: name.to_owned(),
        params,
        value: value.to_owned(),
        line: number,
    })
}

/// A TEXT value unescaped (RFC 5545 §3.3.11): `\\`, `\;`, `\,`, `\N`/`\n`, and `\:`, which
/// Outlook writes; in one pass, so `\\n` stays a backslash and an `n`. Any other backslash is
/// kept as written.
fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(e @ ('\\' | ';' | ',' | ':')) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn excerpt(line: &str) -> String {
    line.chars().take(40).collect()
}

fn param<'a>(prop: &'a Property, key: &str) -> Option<&'a str> {
    prop.params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim_matches('"'))
}

fn props<'c>(component: &'c Component, name: &'c str) -> impl Iterator<Item = &'c Property> + 'c {
    component
        .properties
        .iter()
        .filter(move |p| p.name.eq_ignore_ascii_case(name))
}

/// The first `name` property as text (unescaped, trimmed), if it is not empty.
fn text_of(component: &Component, name: &str) -> Option<String> {
    props(component, name)
        .next()
        .map(|p| unescape_text(p.value.trim()))
        .filter(|s| !s.is_empty())
}

fn event(component: &Component) -> Result<Event, ReadError> {
    let line = component.line;
    let when_of = |name: &str| -> Result<Option<When>, ReadError> {
        match props(component, name).next() {
            None => Ok(None),
            Some(p) => parse_when(p)
                .map(Some)
                .map_err(|r| ReadError::new(p.line, format!("{name}: {r}"))),
        }
    };
    let start =
        when_of("DTSTART")?.ok_or_else(|| ReadError::new(line, "VEVENT without DTSTART"))?;
    let end = when_of("DTEND")?;
    let duration = match props(component, "DURATION").next() {
        None => None,
        Some(p) => Some(
            parse_duration(&p.value)
                .ok_or_else(|| ReadError::new(p.line, "DURATION: not an RFC 5545 duration"))?,
        ),
    };
    let rule = match props(component, "RRULE").next() {
        None => None,
        Some(p) => Some(
            Rule::parse(&p.value, &start)
                .map_err(|r| ReadError::new(p.line, format!("RRULE: {r}")))?,
        ),
    };
    let list = |name: &str| -> Result<Vec<When>, ReadError> {
        let mut out = Vec::new();
        for p in props(component, name) {
            out.extend(
                parse_when_list(p).map_err(|r| ReadError::new(p.line, format!("{name}: {r}")))?,
            );
        }
        Ok(out)
    };
    let status = text_of(component, "STATUS").map(|s| s.to_ascii_uppercase());
    let transparent = text_of(component, "TRANSP")
        .is_some_and(|s| s.eq_ignore_ascii_case("TRANSPARENT"))
        || text_of(component, "X-MICROSOFT-CDO-BUSYSTATUS")
            .is_some_and(|s| s.eq_ignore_ascii_case("FREE"));
    Ok(Event {
        line,
        uid: text_of(component, "UID"),
        start,
        end,
        duration,
        recurrence_id: when_of("RECURRENCE-ID")?,
        rule,
        rdates: list("RDATE")?,
        exdates: list("EXDATE")?,
        cancelled: status.as_deref() == Some("CANCELLED"),
        transparent,
        summary: text_of(component, "SUMMARY"),
        location: text_of(component, "LOCATION"),
        attendees: props(component, "ATTENDEE")
            .map(|p| Attendee {
                address: p.value.trim().to_owned(),
                name: param(p, "CN").map(str::to_owned),
            })
            .collect(),
        phone: text_of(component, "X-PHONE"),
    })
}

fn vtimezone(component: &Component) -> Result<VTimezone, ReadError> {
    let line = component.line;
    let tzid =
        text_of(component, "TZID").ok_or_else(|| ReadError::new(line, "VTIMEZONE without TZID"))?;
    let mut observances = Vec::new();
    for part in &component.components {
        if !matches!(part.name.as_str(), "STANDARD" | "DAYLIGHT") {
            continue;
        }
        let part_line = part.line;
        let offset = |name: &str| -> Result<i32, ReadError> {
            let p = props(part, name)
                .next()
                .ok_or_else(|| ReadError::new(part_line, format!("{name} missing")))?;
            parse_offset(&p.value)
                .ok_or_else(|| ReadError::new(p.line, format!("{name}: not a UTC offset")))
        };
        let start_prop = props(part, "DTSTART")
            .next()
            .ok_or_else(|| ReadError::new(part_line, "DTSTART missing"))?;
        let start = parse_when(start_prop)
            .map_err(|r| ReadError::new(start_prop.line, format!("DTSTART: {r}")))?;
        let rule = match props(part, "RRULE").next() {
            None => None,
            Some(p) => Some(
                Rule::parse(&p.value, &start)
                    .map_err(|r| ReadError::new(p.line, format!("RRULE: {r}")))?,
            ),
        };
        let mut rdates = Vec::new();
        for p in props(part, "RDATE") {
            let list =
                parse_when_list(p).map_err(|r| ReadError::new(p.line, format!("RDATE: {r}")))?;
            rdates.extend(list.iter().map(When::naive));
        }
        observances.push(Observance {
            start: start.naive(),
            offset_from: offset("TZOFFSETFROM")?,
            offset_to: offset("TZOFFSETTO")?,
            rule,
            rdates,
        });
    }
    if observances.is_empty() {
        return Err(ReadError::new(
            line,
            "VTIMEZONE without STANDARD or DAYLIGHT",
        ));
    }
    Ok(VTimezone { tzid, observances })
}

/// A DATE or DATE-TIME property value with its `VALUE` and `TZID`.
fn parse_when(prop: &Property) -> Result<When, String> {
    let mut list = parse_when_list(prop)?;
    if list.len() != 1 {
        return Err("one date or date-time expected".into());
    }
    Ok(list.remove(0))
}

fn parse_when_list(prop: &Property) -> Result<Vec<When>, String> {
    let date_only = param(prop, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    if param(prop, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("PERIOD")) {
        return Err("PERIOD values are not supported".into());
    }
    let tzid = param(prop, "TZID").map(str::to_owned);
    prop.value
        .split(',')
        .map(|v| parse_value(v.trim(), date_only, tzid.as_deref()))
        .collect()
}

/// `YYYYMMDD`, `YYYYMMDDTHHMMSS` or `YYYYMMDDTHHMMSSZ`.
pub(crate) fn parse_value(v: &str, date_only: bool, tzid: Option<&str>) -> Result<When, String> {
    let bad = || {
        format!(
            "{:?} is not a date (YYYYMMDD) or date-time (YYYYMMDDTHHMMSS[Z])",
            excerpt(v)
        )
    };
    if v.len() == 8 {
        return NaiveDate::parse_from_str(v, "%Y%m%d")
            .map(When::Date)
            .map_err(|_| bad());
    }
    if date_only {
        return Err(bad());
    }
    let (local, utc) = match v.strip_suffix(['Z', 'z']) {
        Some(local) => (local, true),
        None => (v, false),
    };
    if local.len() != 15 {
        return Err(bad());
    }
    let at = NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S").map_err(|_| bad())?;
    Ok(if utc {
        When::Utc(at)
    } else {
        When::Local {
            at,
            tzid: tzid.map(str::to_owned),
        }
    })
}

/// An RFC 5545 §3.3.6 duration: `[+-]P[nW]` or `[+-]P[nD][T[nH][nM][nS]]`.
pub(crate) fn parse_duration(v: &str) -> Option<TimeDelta> {
    let v = v.trim();
    let (negative, rest) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let mut seconds: i64 = 0;
    let mut number = String::new();
    let mut in_time = false;
    let mut any = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            '0'..='9' => number.push(c),
            'T' if !in_time && number.is_empty() => in_time = true,
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                let scale = match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                seconds = seconds.checked_add(n.checked_mul(scale)?)?;
                any = true;
            }
        }
    }
    let dangling_t = in_time
        && !rest
            .to_ascii_uppercase()
            .rsplit('T')
            .next()
            .is_some_and(|t| t.contains(['H', 'M', 'S']));
    if !number.is_empty() || !any || dangling_t {
        return None;
    }
    TimeDelta::try_seconds(if negative { -seconds } else { seconds })
}

/// `+HHMM[SS]` / `-HHMM[SS]` in seconds east of UTC.
fn parse_offset(v: &str) -> Option<i32> {
    let v = v.trim();
    let sign = match v.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = &v[1..];
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i32>().ok());
    let seconds = n(0..2)? * 3600 + n(2..4)? * 60 + n(4..6).unwrap_or(0);
    (seconds < 24 * 3600).then_some(sign * seconds)
}

#[cfg(test)]
mod tests;
