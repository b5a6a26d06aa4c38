//! Campaigns: bulk outbound calls to a contact list, paced and held to a calling window in
//! each contact's own time zone.
//!
//! Here: reading the contact list (CSV per RFC 4180, or JSON) into valid contacts and per-row
//! errors that never block the valid rows, duplicates dialled once, the settings (window,
//! pacing) and the decisions of a scheduling tick (which zones are inside the window, how many
//! dials pacing allows, what a call's outcome makes of its contact). The window is the
//! business-hours evaluator of [`crate::hours`] read on each contact's clocks.

use crate::dialing::DialPolicy;
use crate::hours::{parse_clock, Hours, DAYS};
use crate::scheduling::request::{is_e164, is_email, DialProvider, FieldError};
use crate::scheduling::state::{retry_after_outcome, RetryPolicy};
use crate::scheduling::CallStatus;
use crate::zones::{Zone, ZoneRules};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use thiserror::Error;

/// Most contacts one campaign may hold.
pub const MAX_CONTACTS: usize = 100_000;
/// Largest `POST /api/v1/campaigns` body (a 100,000-row list with a few columns fits).
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;
/// Most columns of a CSV list (or keys of a JSON contact).
pub const MAX_COLUMNS: usize = 50;
/// Longest value of one field, in characters.
pub const MAX_FIELD_CHARS: usize = 1000;
/// Highest `pacing.calls_per_minute`.
pub const MAX_CALLS_PER_MINUTE: u32 = 1000;
/// Highest `pacing.max_concurrent`.
pub const MAX_CONCURRENT: u32 = 500;
/// Most contacts one scheduling tick claims across all campaigns: each dial costs a handful of
/// subrequests, and a Worker invocation has 1000 (the dispatcher dials 50 calls a run).
pub const TICK_CLAIMS: u32 = 50;
/// Longest campaign name.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a whole contact list is refused (a single bad row is a [`RowError`] instead).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    /// More than [`MAX_CONTACTS`] rows.
    #[error("the contact list has more than {MAX_CONTACTS} rows")]
    TooManyRows,
    /// The CSV's header has no `phone` column.
    #[error("the header row has no phone column")]
    NoPhoneColumn,
    /// A header names a column twice, or names none.
    #[error("header column {0:?} is empty or repeated")]
    BadHeader(String),
    /// More than [`MAX_COLUMNS`] columns.
    #[error("more than {MAX_COLUMNS} columns")]
    TooManyColumns,
    /// A quoted field never ends.
    #[error("line {0}: a quoted field is not closed")]
    UnterminatedQuote(u32),
    /// No rows at all.
    #[error("the contact list is empty")]
    Empty,
}

impl ImportError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::TooManyRows => "too_many_rows",
            ImportError::NoPhoneColumn => "no_phone_column",
            ImportError::BadHeader(_) => "bad_header",
            ImportError::TooManyColumns => "too_many_columns",
            ImportError::UnterminatedQuote(_) => "unterminated_quote",
            ImportError::Empty => "empty",
        }
    }

    /// Whether the list is refused for its size (413) rather than its shape (422).
    pub fn is_too_large(&self) -> bool {
        matches!(self, ImportError::TooManyRows)
    }
}

/// A valid contact, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Where it came from: the CSV line its record starts on (the header is line 1), or the
    /// 1-based position in the JSON array.
    pub line: u32,
    /// E.164, as the dialling rules accept it.
    pub phone: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// IANA zone the window is evaluated in.
    pub time_zone: &'static str,
    /// Every other column, by its header name.
    pub vars: Map<String, Value>,
}

/// A row that cannot be dialled, and why; the other rows go ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub line: u32,
    /// `missing_phone`, `invalid_phone` (or the dialling rule's code), `invalid_time_zone`,
    /// `missing_time_zone`, `invalid_email`, `field_too_long`, `duplicate`, `invalid_type`.
    pub code: &'static str,
    pub reason: String,
    /// The row's phone as given, if any.
    pub phone: Option<String>,
}

/// A contact list read: what will be dialled and what will not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Import {
    pub contacts: Vec<Contact>,
    /// Invalid rows and duplicates (code `duplicate`, naming the first line), in line order.
    pub errors: Vec<RowError>,
}

/// What a row is checked against.
pub struct RowRules<'a> {
    pub zones: &'a dyn ZoneRules,
    /// The zone of contacts without their own (the window's `time_zone`).
    pub default_zone: Option<&'static str>,
    /// The agent's dialling rules (its allowed countries).
    pub policy: &'a DialPolicy,
    /// Contact fields the agent's prompt or greeting uses without a default
    /// (`template::missing_contact_fields`): a row without one is refused, not heard with a gap.
    pub required_fields: &'a [String],
}

/// Reads a CSV contact list: RFC 4180 (quoted fields with commas, quotes and line breaks, CRLF
/// or LF, a leading BOM), the header naming the columns (`phone` required; `name`, `email`,
/// `time_zone` optional; others become variables).
pub fn parse_csv(text: &str, rules: &RowRules<'_>) -> Result<Import, ImportError> {
    let mut records = csv_records(text)?.into_iter();
    let (_, header) = records.next().ok_or(ImportError::Empty)?;
    if header.len() > MAX_COLUMNS {
        return Err(ImportError::TooManyColumns);
    }
    let header: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() || header[..i].contains(name) {
            return Err(ImportError::BadHeader(name.clone()));
        }
    }
    if !header.iter().any(|h| h == "phone") {
        return Err(ImportError::NoPhoneColumn);
    }
    let mut reader = Reader::new(rules);
    for (line, fields) in records {
        let row = header
            .iter()
            .zip(fields.into_iter().chain(std::iter::repeat(String::new())))
            .map(|(k, v)| (k.as_str(), Value::String(v)));
        reader.add(line, row);
    }
    reader.finish()
}

/// Reads a JSON contact list: an array of objects with `phone` and optional `name`, `email`,
/// `time_zone`; other keys (and the keys of an optional `vars` object) become variables.
pub fn parse_json(list: &[Value], rules: &RowRules<'_>) -> Result<Import, ImportError> {
    if list.len() > MAX_CONTACTS {
        return Err(ImportError::TooManyRows);
    }
    if list.is_empty() {
        return Err(ImportError::Empty);
    }
    let mut reader = Reader::new(rules);
    for (i, item) in list.iter().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let Some(obj) = item.as_object() else {
            reader.errors.push(RowError {
                line,
                code: "invalid_type",
                reason: "a contact is an object {phone, name?, email?, time_zone?}".into(),
                phone: None,
            });
            continue;
        };
        let vars = obj.get("vars").and_then(Value::as_object);
        let fields = obj
            .iter()
            .filter(|(k, _)| k.as_str() != "vars")
            .chain(vars.into_iter().flatten())
            .map(|(k, v)| (k.as_str(), v.clone()));
        reader.add(line, fields);
    }
    reader.finish()
}

/// Checks rows one by one, remembering each phone's first line and each zone's resolution.
struct Reader<'a, 'r> {
    rules: &'a RowRules<'r>,
    zones: HashMap<String, Option<&'static str>>,
    seen: HashMap<String, u32>,
    contacts: Vec<Contact>,
    errors: Vec<RowError>,
}

impl<'a, 'r> Reader<'a, 'r> {
    fn new(rules: &'a RowRules<'r>) -> Self {
        Reader {
            rules,
            zones: HashMap::new(),
            seen: HashMap::new(),
            contacts: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn add<'k>(&mut self, line: u32, fields: impl Iterator<Item = (&'k str, Value)>) {
        match self.check(line, fields) {
            Ok(contact) => match self.seen.get(&contact.phone) {
                Some(first) => self.errors.push(RowError {
                    line,
                    code: "duplicate",
                    reason: format!("same phone as line {first}: dialled once"),
                    phone: Some(contact.phone),
                }),
                None => {
                    self.seen.insert(contact.phone.clone(), line);
                    self.contacts.push(contact);
                }
            },
            Err(e) => self.errors.push(e),
        }
    }

    fn check<'k>(
        &mut self,
        line: u32,
        fields: impl Iterator<Item = (&'k str, Value)>,
    ) -> Result<Contact, RowError> {
        let (mut phone, mut name, mut email, mut zone) = (None, None, None, None);
        let mut vars = Map::new();
        let mut problem: Option<(&'static str, String)> = None;
        let mut count = 0;
        for (key, value) in fields {
            count += 1;
            let text = match &value {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Null => None,
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => {
                    problem.get_or_insert((
                        "invalid_type",
                        format!("{key} must be a string, number or boolean"),
                    ));
                    None
                }
            }
            .filter(|s| !s.is_empty());
            if text
                .as_ref()
                .is_some_and(|t| t.chars().count() > MAX_FIELD_CHARS)
            {
                problem.get_or_insert((
                    "field_too_long",
                    format!("{key} is longer than {MAX_FIELD_CHARS} characters"),
                ));
                continue;
            }
            match key {
                "phone" => phone = text,
                "name" => name = text,
                "email" => email = text,
                "time_zone" => zone = text,
                _ => {
                    if let Some(text) = text {
                        vars.insert(key.to_owned(), Value::String(text));
                    }
                }
            }
        }
        let fail = |code: &'static str, reason: String, phone: &Option<String>| RowError {
            line,
            code,
            reason,
            phone: phone.clone(),
        };
        if count > MAX_COLUMNS {
            return Err(fail(
                "too_many_columns",
                format!("more than {MAX_COLUMNS} fields"),
                &phone,
            ));
        }
        if let Some((code, reason)) = problem {
            return Err(fail(code, reason, &phone));
        }
        let Some(number) = phone.clone() else {
            return Err(fail("missing_phone", "phone is empty".into(), &phone));
        };
        if let Err(refusal) = self.rules.policy.check(&number) {
            let code = match refusal.code() {
                "invalid_number" => "invalid_phone",
                code => code,
            };
            return Err(fail(code, format!("phone {number:?}: {refusal}"), &phone));
        }
        let time_zone = match zone {
            Some(name) => self.zone(&name).ok_or_else(|| {
                fail(
                    "invalid_time_zone",
                    format!("time_zone {name:?} is not an IANA zone such as America/New_York"),
                    &phone,
                )
            })?,
            None => self.rules.default_zone.ok_or_else(|| {
                fail(
                    "missing_time_zone",
                    "no time_zone, and the window has no default time_zone".into(),
                    &phone,
                )
            })?,
        };
        if let Some(address) = &email {
            if !is_email(address) {
                return Err(fail(
                    "invalid_email",
                    format!("email {address:?} is not an address"),
                    &phone,
                ));
            }
        }
        let missing: Vec<&str> = self
            .rules
            .required_fields
            .iter()
            .map(String::as_str)
            .filter(|f| match *f {
                "name" => name.is_none(),
                "email" => email.is_none(),
                "phone" => false,
                other => !vars.contains_key(other),
            })
            .collect();
        if !missing.is_empty() {
            return Err(fail(
                "missing_variable",
                format!(
                    "the agent's prompt or first message uses {} without a default",
                    missing
                        .iter()
                        .map(|f| format!("{{{{contact.{f}}}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &phone,
            ));
        }
        Ok(Contact {
            line,
            phone: number,
            name,
            email,
            time_zone,
            vars,
        })
    }

    /// Each distinct zone name is resolved once (the edge asks the runtime's `Intl`).
    fn zone(&mut self, name: &str) -> Option<&'static str> {
        if let Some(found) = self.zones.get(name) {
            return *found;
        }
        let found = Zone::resolve(self.rules.zones, name).map(|z| z.name());
        self.zones.insert(name.to_owned(), found);
        found
    }

    fn finish(mut self) -> Result<Import, ImportError> {
        self.errors.sort_by_key(|e| e.line);
        Ok(Import {
            contacts: self.contacts,
            errors: self.errors,
        })
    }
}

/// The records of a CSV text with the line each starts on; blank lines are skipped.
fn csv_records(text: &str) -> Result<Vec<(u32, Vec<String>)>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let (mut line, mut start) = (1u32, 1u32);
    let (mut quoted, mut at_start) = (false, true);
    let mut chars = text.chars().peekable();
    let mut end_record = |row: &mut Vec<String>, field: &mut String, start: u32| {
        row.push(std::mem::take(field));
        let record = std::mem::take(row);
        if !(record.len() == 1 && record[0].is_empty()) {
            records.push((start, record));
        }
        // The header plus the rows: one record past the limit is enough to refuse.
        records.len() <= MAX_CONTACTS + 1
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                if !end_record(&mut row, &mut field, start) {
                    return Err(ImportError::TooManyRows);
                }
                line += 1;
                start = line;
                at_start = true;
            }
            _ => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err(ImportError::UnterminatedQuote(start));
    }
    if (!field.is_empty() || !row.is_empty()) && !end_record(&mut row, &mut field, start) {
        return Err(ImportError::TooManyRows);
    }
    Ok(records)
}

/// When contacts may be called: the same hours on the chosen weekdays, on each contact's
/// clocks.
#[derive(Debug, Clone)]
pub struct Window<'r> {
    hours: Hours<'r>,
    days: [bool; 7],
    from: u16,
    to: u16,
    /// The zone of contacts without their own.
    pub time_zone: Option<Zone<'r>>,
}

impl<'r> Window<'r> {
    /// Whether `zone`'s clocks read inside the window at `at`.
    pub fn is_open(&self, zone: &Zone<'_>, at: DateTime<Utc>) -> bool {
        self.hours.routing_in(zone, at).is_open()
    }

    /// The first instant at or after `at` inside the window on `zone`'s clocks.
    pub fn next_open(&self, zone: &Zone<'_>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.hours.next_open_in(zone, at)
    }

    /// The window as stored and shown.
    pub fn to_json(&self) -> Value {
        let days: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter(|(_, open)| *open)
            .map(|(d, _)| *d)
            .collect();
        let clock = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        json!({"days": days, "from": clock(self.from), "to": clock(self.to),
               "time_zone": self.time_zone.map(|z| z.name())})
    }
}

/// Reads a window `{days: ["mon", …], from: "HH:MM", to: "HH:MM", time_zone?}` (reported
/// under `field`); `to` before `from` runs overnight, `24:00` is midnight.
pub fn parse_window<'r>(
    value: &Value,
    zones: &'r dyn ZoneRules,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Window<'r>> {
    let before = errors.len();
    let Some(obj) = value.as_object() else {
        errors.push(FieldError::new(
            field,
            "invalid_type",
            "window must be an object {days, from, to, time_zone?}",
        ));
        return None;
    };
    for key in obj.keys() {
        if !["days", "from", "to", "time_zone"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                &format!("{field}.{key}"),
                "unknown_field",
                "window has days, from, to and time_zone only",
            ));
        }
    }
    let mut days = [false; 7];
    match obj.get("days") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for day in list {
                match day.as_str().and_then(|d| DAYS.iter().position(|x| *x == d)) {
                    Some(i) => days[i] = true,
                    None => errors.push(FieldError::new(
                        &format!("{field}.days"),
                        "invalid_value",
                        "days are mon, tue, wed, thu, fri, sat and sun",
                    )),
                }
            }
        }
        _ => errors.push(FieldError::new(
            &format!("{field}.days"),
            "required",
            "days is a non-empty array such as [\"mon\", \"tue\"]",
        )),
    }
    let mut clock = |key: &str, end: bool| {
        let found = obj
            .get(key)
            .and_then(Value::as_str)
            .and_then(|t| parse_clock(t, end));
        if found.is_none() {
            errors.push(FieldError::new(
                &format!("{field}.{key}"),
                "invalid_time",
                format!("{key} is HH:MM from 00:00 to 23:59 (24:00 as to)"),
            ));
        }
        found
    };
    let from = clock("from", false);
    let to = clock("to", true);
    if let (Some(f), Some(t)) = (from, to) {
        if f == t {
            errors.push(FieldError::new(
                &format!("{field}.to"),
                "invalid_value",
                "to must differ from from",
            ));
        }
    }
    let time_zone = match obj.get("time_zone") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            let zone = Zone::resolve(zones, name);
            if zone.is_none() {
                errors.push(FieldError::new(
                    &format!("{field}.time_zone"),
                    "invalid_time_zone",
                    "time_zone must be an IANA time zone such as America/New_York",
                ));
            }
            zone
        }
        Some(_) => {
            errors.push(FieldError::new(
                &format!("{field}.time_zone"),
                "invalid_type",
                "time_zone must be a string",
            ));
            None
        }
    };
    let utc = Zone::resolve(zones, "UTC")?;
    match (from, to) {
        (Some(from), Some(to)) if errors.len() == before => Some(Window {
            hours: Hours::weekly(utc, days, from, to),
            days,
            from,
            to,
            time_zone,
        }),
        _ => None,
    }
}

/// Where a campaign's contacts come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ContactList<'b> {
    /// `contacts`: an array of contact objects.
    Json(&'b [Value]),
    /// `csv`: the text of a CSV file (the dashboard uploads the file's text).
    Csv(&'b str),
}

impl ContactList<'_> {
    /// Reads the list against `rules`.
    pub fn read(&self, rules: &RowRules<'_>) -> Result<Import, ImportError> {
        match self {
            ContactList::Json(list) => parse_json(list, rules),
            ContactList::Csv(text) => parse_csv(text, rules),
        }
    }
}

/// A valid `POST /api/v1/campaigns` body (the contacts not yet read: that needs the agent).
#[derive(Debug, Clone)]
pub struct CampaignRequest<'r, 'b> {
    pub agent_id: String,
    pub name: String,
    pub window: Window<'r>,
    pub pacing: Pacing,
    /// Twilio or Telnyx (campaigns dial now, so not Bland, which keeps its own timer).
    pub provider: DialProvider,
    /// Caller id; else the agent's number or `DEFAULT_FROM_NUMBER`.
    pub from: Option<String>,
    pub contacts: ContactList<'b>,
}

/// Validates a `POST /api/v1/campaigns` body: `{agent_id, name, window, pacing, provider?,
/// from?}` and exactly one of `contacts` (JSON array) or `csv` (CSV text).
pub fn parse_campaign<'r, 'b>(
    body: &'b Value,
    zones: &'r dyn ZoneRules,
) -> Result<CampaignRequest<'r, 'b>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new(
            "",
            "invalid_type",
            "the body must be a JSON object",
        )]);
    };
    const FIELDS: [&str; 8] = [
        "agent_id", "name", "window", "pacing", "provider", "from", "contacts", "csv",
    ];
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key,
                "unknown_field",
                format!("a campaign has {}", FIELDS.join(", ")),
            ));
        }
    }
    let mut text = |key: &str, max: usize| match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
            Some(s.trim().to_owned())
        }
        _ => {
            errors.push(FieldError::new(
                key,
                "required",
                format!("{key} is a non-empty string of at most {max} characters"),
            ));
            None
        }
    };
    let agent_id = text("agent_id", 100);
    let name = text("name", MAX_NAME_CHARS);
    let window = match obj.get("window") {
        Some(w) => parse_window(w, zones, "window", &mut errors),
        None => {
            errors.push(FieldError::new("window", "required", "window is required"));
            None
        }
    };
    let pacing = match obj.get("pacing") {
        Some(p) => parse_pacing(p, "pacing", &mut errors),
        None => {
            errors.push(FieldError::new("pacing", "required", "pacing is required"));
            None
        }
    };
    let provider = match obj.get("provider") {
        None | Some(Value::Null) => Some(DialProvider::default()),
        Some(Value::String(p)) if p == "twilio" => Some(DialProvider::Twilio),
        Some(Value::String(p)) if p == "telnyx" => Some(DialProvider::Telnyx),
        Some(_) => {
            errors.push(FieldError::new(
                "provider",
                "invalid_value",
                "provider must be twilio or telnyx",
            ));
            None
        }
    };
    let from = match obj.get("from") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if is_e164(f) => Some(f.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                "from",
                "invalid_phone",
                "from must be an E.164 number such as +15551234567",
            ));
            None
        }
    };
    let contacts = match (obj.get("contacts"), obj.get("csv")) {
        (Some(Value::Array(list)), None) => Some(ContactList::Json(list)),
        (None, Some(Value::String(text))) => Some(ContactList::Csv(text)),
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "csv",
                "conflict",
                "give contacts or csv, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError::new(
                "contacts",
                "required",
                "give contacts (a JSON array) or csv (CSV text)",
            ));
            None
        }
        (Some(_), None) => {
            errors.push(FieldError::new(
                "contacts",
                "invalid_type",
                "contacts must be an array",
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(FieldError::new(
                "csv",
                "invalid_type",
                "csv must be a string",
            ));
            None
        }
    };
    match (agent_id, name, window, pacing, provider, contacts) {
        (
            Some(agent_id),
            Some(name),
            Some(window),
            Some(pacing),
            Some(provider),
            Some(contacts),
        ) if errors.is_empty() => Ok(CampaignRequest {
            agent_id,
            name,
            window,
            pacing,
            provider,
            from,
            contacts,
        }),
        _ => Err(errors),
    }
}

/// How fast a campaign dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Dials started in any 60 s.
    pub calls_per_minute: u32,
    /// Calls of the campaign in flight at once.
    pub max_concurrent: u32,
}

impl Pacing {
    /// How many contacts a tick may claim now, given the dials of the last 60 s, the calls in
    /// flight and the tick's own room left.
    pub fn allowance(&self, dialled_last_minute: u32, in_flight: u32, room: u32) -> u32 {
        self.calls_per_minute
            .saturating_sub(dialled_last_minute)
            .min(self.max_concurrent.saturating_sub(in_flight))
            .min(room)
    }

    /// The pacing as stored and shown.
    pub fn to_json(&self) -> Value {
        json!({"calls_per_minute": self.calls_per_minute, "max_concurrent": self.max_concurrent})
    }
}

/// Reads `pacing: {calls_per_minute, max_concurrent}` (reported under `field`).
pub fn parse_pacing(value: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<Pacing> {
    let Some(obj) = value.as_object() else {
        errors.push(FieldError::new(
            field,
            "invalid_type",
            "pacing must be an object {calls_per_minute, max_concurrent}",
        ));
        return None;
    };
    for key in obj.keys() {
        if !["calls_per_minute", "max_concurrent"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                &format!("{field}.{key}"),
                "unknown_field",
                "pacing has calls_per_minute and max_concurrent only",
            ));
        }
    }
    let mut number = |key: &str, max: u32| {
        let found = obj
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=max).contains(n));
        if found.is_none() {
            errors.push(FieldError::new(
                &format!("{field}.{key}"),
                "invalid_value",
                format!("{key} is a whole number from 1 to {max}"),
            ));
        }
        found
    };
    let calls_per_minute = number("calls_per_minute", MAX_CALLS_PER_MINUTE);
    let max_concurrent = number("max_concurrent", MAX_CONCURRENT);
    Some(Pacing {
        calls_per_minute: calls_per_minute?,
        max_concurrent: max_concurrent?,
    })
}

/// The zones among `zones` (names as stored) whose clocks read inside `window` at `now`, and
/// the earliest time a closed one opens (when the tick should look again).
pub fn open_zones<'n>(
    window: &Window<'_>,
    rules: &dyn ZoneRules,
    zones: &[&'n str],
    now: DateTime<Utc>,
) -> (Vec<&'n str>, Option<DateTime<Utc>>) {
    let mut open = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    for name in zones {
        let Some(zone) = Zone::resolve(rules, name) else {
            continue;
        };
        if window.is_open(&zone, now) {
            open.push(*name);
        } else if let Some(at) = window.next_open(&zone, now) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    (open, next)
}

/// Where a contact stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStatus {
    /// Waiting for its (next) dial.
    Pending,
    /// Claimed: its call is scheduled, dialling, ringing or live.
    InProgress,
    Completed,
    /// Not answered (or busy) after every attempt the retry policy allows.
    NoAnswer,
    Failed,
    /// On the tenant's suppression list: never dialled.
    OptedOut,
    /// The campaign was canceled before it was dialled (or its call was canceled).
    Canceled,
}

impl ContactStatus {
    /// Every status, in the order progress counts are shown.
    pub const ALL: [ContactStatus; 7] = [
        ContactStatus::Pending,
        ContactStatus::InProgress,
        ContactStatus::Completed,
        ContactStatus::NoAnswer,
        ContactStatus::Failed,
        ContactStatus::OptedOut,
        ContactStatus::Canceled,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Pending => "pending",
            ContactStatus::InProgress => "in_progress",
            ContactStatus::Completed => "completed",
            ContactStatus::NoAnswer => "no_answer",
            ContactStatus::Failed => "failed",
            ContactStatus::OptedOut => "opted_out",
            ContactStatus::Canceled => "canceled",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Active,
    Paused,
    Completed,
    Canceled,
}

impl CampaignStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Canceled => "canceled",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            CampaignStatus::Active,
            CampaignStatus::Paused,
            CampaignStatus::Completed,
            CampaignStatus::Canceled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// An operator's request to change a campaign's course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
}

impl Control {
    /// The status it moves to, from `from`; `None` when it cannot (a finished campaign, or
    /// resuming one that is not paused). Repeating a change is not an error: the same status.
    pub fn apply(self, from: CampaignStatus) -> Option<CampaignStatus> {
        use CampaignStatus::*;
        match (self, from) {
            (_, Completed) => None,
            (Control::Cancel, _) => Some(Canceled),
            (_, Canceled) => None,
            (Control::Pause, Active | Paused) => Some(Paused),
            (Control::Resume, Active | Paused) => Some(Active),
        }
    }

    /// The event announcing it.
    pub fn event_type(self) -> &'static str {
        match self {
            Control::Pause => "campaign.paused",
            Control::Resume => "campaign.resumed",
            Control::Cancel => "campaign.canceled",
        }
    }
}

/// What a contact's call outcome makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCall {
    /// Final.
    Done(ContactStatus),
    /// Dial again (the agent's retry policy) at this time, the window's next opening.
    RetryAt(DateTime<Utc>),
}

/// The contact whose attempt number `attempt` ended `outcome` at `now`: retried per the
/// agent's `policy` (no answer, busy) at the first time inside `window` on `zone`'s clocks
/// after the policy's delay, else final.
pub fn after_call(
    policy: RetryPolicy,
    outcome: CallStatus,
    attempt: u32,
    now: DateTime<Utc>,
    window: &Window<'_>,
    zone: &Zone<'_>,
) -> AfterCall {
    let final_status = match outcome {
        CallStatus::Completed => ContactStatus::Completed,
        CallStatus::NoAnswer | CallStatus::Busy => ContactStatus::NoAnswer,
        CallStatus::Canceled => ContactStatus::Canceled,
        _ => ContactStatus::Failed,
    };
    match retry_after_outcome(policy, outcome, attempt, now) {
        Some(at) => match window.next_open(zone, at) {
            Some(open) => AfterCall::RetryAt(open),
            None => AfterCall::Done(final_status),
        },
        None => AfterCall::Done(final_status),
    }
}

/// One row of a campaign's results export.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportLine {
    pub line: i64,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub call_id: Option<String>,
    /// The call's final status.
    pub outcome: Option<String>,
    pub duration_seconds: Option<i64>,
    /// Why the row was not dialled.
    pub error: Option<String>,
    /// The call's analysis as stored (`{status, values, success, …}`).
    pub analysis: Option<Value>,
}

/// The results export: a header, then one line per row; every analysis field any call has
/// is a column `analysis.<field>` (empty where a call has none), after `analysis_success`.
pub fn export_csv(rows: &[ExportLine]) -> String {
    let mut fields: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.analysis.as_ref()?.get("values")?.as_object())
        .flat_map(|values| values.keys().map(String::as_str))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let mut header: Vec<String> = [
        "line",
        "phone",
        "name",
        "email",
        "status",
        "attempts",
        "outcome",
        "duration_seconds",
        "error",
        "call_id",
        "analysis_success",
    ]
    .iter()
    .map(|h| (*h).to_owned())
    .collect();
    header.extend(fields.iter().map(|f| format!("analysis.{f}")));
    let mut out = csv_line(&header);
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    for r in rows {
        let analysis = r.analysis.as_ref();
        let mut cells = vec![
            r.line.to_string(),
            r.phone.clone().unwrap_or_default(),
            r.name.clone().unwrap_or_default(),
            r.email.clone().unwrap_or_default(),
            r.status.clone(),
            r.attempts.to_string(),
            r.outcome.clone().unwrap_or_default(),
            r.duration_seconds
                .map(|d| d.to_string())
                .unwrap_or_default(),
            r.error.clone().unwrap_or_default(),
            r.call_id.clone().unwrap_or_default(),
            text(analysis.and_then(|a| a.get("success"))),
        ];
        let values = analysis.and_then(|a| a.get("values"));
        cells.extend(fields.iter().map(|f| text(values.and_then(|v| v.get(*f)))));
        out.push_str(&csv_line(&cells));
    }
    out
}

/// One CSV line (CRLF-terminated) of `fields`, quoted where RFC 4180 needs it; a cell a
/// spreadsheet would run as a formula (`=`, `@`, `+`, `-`, tab, CR first, unless it is a
/// number such as `+15551234567`) is prefixed with `'`.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let cells: Vec<String> = fields
        .iter()
        .map(|f| {
            let f = f.as_ref();
            let numeric = f.len() > 1
                && f[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
                && f.starts_with(['+', '-']);
            let f = if f.starts_with(['=', '@', '+', '-', '\t', '\r']) && !numeric {
                format!("'{f}")
            } else {
                f.to_owned()
            };
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f
            }
        })
        .collect();
    let mut line = cells.join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zones::Tzdb;
    use chrono::TimeZone;

    fn rules<'a>(policy: &'a DialPolicy) -> RowRules<'a> {
        RowRules {
            zones: &Tzdb,
            default_zone: Some("America/New_York"),
            policy,
            required_fields: &[],
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn csv_quotes_commas_newlines_crlf_and_bom() {
        let policy = DialPolicy::anywhere();
        let text = "\u{feff}phone,name,time_zone,plan\r\n\
                    +14155550100,\"Lee, Jordan\",America/Los_Angeles,gold\r\n\
                    +442079460000,\"Says \"\"hi\"\"\non two lines\",Europe/London,\r\n\
                    \r\n\
                    +14155550101,Ana,,\"a,b\"\r\n";
        let import = parse_csv(text, &rules(&policy)).unwrap();
        assert_eq!(import.errors, vec![]);
        let c = &import.contacts;
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].line, 2);
        assert_eq!(c[0].name.as_deref(), Some("Lee, Jordan"));
        assert_eq!(c[0].time_zone, "America/Los_Angeles");
        assert_eq!(
            c[0].vars,
            json!({"plan": "gold"}).as_object().unwrap().clone()
        );
        assert_eq!(c[1].line, 3);
        assert_eq!(c[1].name.as_deref(), Some("Says \"hi\"\non two lines"));
        assert!(c[1].vars.is_empty());
        // The quoted line break counts: the next record starts on line 5, a blank line skipped.
        assert_eq!(c[2].line, 6);
        assert_eq!(c[2].time_zone, "America/New_York");
        assert_eq!(c[2].vars["plan"], "a,b");
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_never_block_the_others() {
        let policy = DialPolicy::only(vec!["US".into()]);
        let text = "phone,email,time_zone\n\
                    +14155550100,a@example.com,\n\
                    555-0100,,\n\
                    +14155550102,not-mail,\n\
                    +14155550103,,Mars/Base\n\
                    ,,\n\
                    +442079460000,,\n\
                    +14155550100,,\n\
                    +19005550100,,\n";
        let import = parse_csv(text, &rules(&policy)).unwrap();
        assert_eq!(import.contacts.len(), 1);
        let got: Vec<(u32, &str)> = import.errors.iter().map(|e| (e.line, e.code)).collect();
        assert_eq!(
            got,
            vec![
                (3, "invalid_phone"),
                (4, "invalid_email"),
                (5, "invalid_time_zone"),
                (6, "missing_phone"),
                (7, "country_not_allowed"),
                (8, "duplicate"),
                (9, "premium_number"),
            ]
        );
        assert!(import.errors[5].reason.contains("line 2"));
        assert_eq!(import.errors[0].phone.as_deref(), Some("555-0100"));
    }

    #[test]
    fn rows_without_a_variable_the_agent_needs_are_refused() {
        let policy = DialPolicy::anywhere();
        let required = vec!["name".to_owned(), "plan".to_owned()];
        let rules = RowRules {
            required_fields: &required,
            ..rules(&policy)
        };
        let text = "phone,name,plan\n+14155550100,Ana,gold\n+14155550101,,gold\n+14155550102,Bo,\n";
        let import = parse_csv(text, &rules).unwrap();
        assert_eq!(import.contacts.len(), 1);
        let got: Vec<(u32, &str)> = import.errors.iter().map(|e| (e.line, e.code)).collect();
        assert_eq!(got, vec![(3, "missing_variable"), (4, "missing_variable")]);
        assert!(import.errors[0].reason.contains("{{contact.name}}"));
        assert!(import.errors[1].reason.contains("{{contact.plan}}"));
    }

    #[test]
    fn a_zone_is_needed_from_the_row_or_the_window() {
        let policy = DialPolicy::anywhere();
        let no_default = RowRules {
            default_zone: None,
            ..rules(&policy)
        };
        let import = parse_csv("phone\n+14155550100\n", &no_default).unwrap();
        assert_eq!(import.errors[0].code, "missing_time_zone");
    }

    #[test]
    fn whole_list_refusals() {
        let policy = DialPolicy::anywhere();
        let r = rules(&policy);
        assert_eq!(parse_csv("", &r), Err(ImportError::Empty));
        assert_eq!(parse_csv("name\nx\n", &r), Err(ImportError::NoPhoneColumn));
        assert_eq!(
            parse_csv("phone,phone\n", &r),
            Err(ImportError::BadHeader("phone".into()))
        );
        assert_eq!(
            parse_csv("phone,name\n+14155550100,\"open\n", &r),
            Err(ImportError::UnterminatedQuote(2))
        );
        let mut big = String::from("phone\n");
        for i in 0..=MAX_CONTACTS {
            big.push_str(&format!("+1415{i:07}\n"));
        }
        assert_eq!(parse_csv(&big, &r), Err(ImportError::TooManyRows));
        assert!(ImportError::TooManyRows.is_too_large());
        let list = vec![json!({"phone": "+14155550100"}); MAX_CONTACTS + 1];
        assert_eq!(parse_json(&list, &r), Err(ImportError::TooManyRows));
    }

    #[test]
    fn the_maximum_list_parses() {
        let policy = DialPolicy::anywhere();
        let mut text = String::from("phone,name,time_zone,plan\n");
        for i in 0..MAX_CONTACTS {
            text.push_str(&format!("+1415{i:07},Name {i},America/Chicago,p{i}\n"));
        }
        let import = parse_csv(&text, &rules(&policy)).unwrap();
        assert_eq!(import.contacts.len(), MAX_CONTACTS);
        assert!(import.errors.is_empty());
    }

    #[test]
    fn json_contacts_with_vars() {
        let policy = DialPolicy::anywhere();
        let list = vec![
            json!({"phone": "+14155550100", "name": "Ana", "vars": {"order": 42}, "plan": "x"}),
            json!("+14155550101"),
            json!({"phone": "+14155550100"}),
            json!({"phone": "+14155550102", "note": {"nested": true}}),
        ];
        let import = parse_json(&list, &rules(&policy)).unwrap();
        assert_eq!(import.contacts.len(), 1);
        assert_eq!(import.contacts[0].vars["order"], "42");
        assert_eq!(import.contacts[0].vars["plan"], "x");
        let got: Vec<(u32, &str)> = import.errors.iter().map(|e| (e.line, e.code)).collect();
        assert_eq!(
            got,
            vec![(2, "invalid_type"), (3, "duplicate"), (4, "invalid_type")]
        );
    }

    fn window(days: &[&str], from: &str, to: &str) -> Window<'static> {
        let mut errors = Vec::new();
        let w = parse_window(
            &json!({"days": days, "from": from, "to": to}),
            &Tzdb,
            "window",
            &mut errors,
        );
        assert_eq!(errors, vec![]);
        w.unwrap()
    }

    #[test]
    fn the_window_is_read_on_each_contacts_clocks() {
        let w = window(&["mon", "tue", "wed", "thu", "fri"], "09:00", "20:00");
        let ny = Zone::resolve(&Tzdb, "America/New_York").unwrap();
        let tokyo = Zone::resolve(&Tzdb, "Asia/Tokyo").unwrap();
        // Tuesday 2026-03-03 15:00 UTC: 10:00 in New York, 00:00 Wednesday in Tokyo.
        let at = utc(2026, 3, 3, 15, 0);
        assert!(w.is_open(&ny, at));
        assert!(!w.is_open(&tokyo, at));
        assert_eq!(w.next_open(&ny, at), Some(at));
        assert_eq!(w.next_open(&tokyo, at), Some(utc(2026, 3, 4, 0, 0)));
        // Friday 20:00 in New York: closed until Monday 09:00.
        let friday_close = utc(2026, 3, 7, 1, 0);
        assert!(!w.is_open(&ny, friday_close));
        assert_eq!(w.next_open(&ny, friday_close), Some(utc(2026, 3, 9, 13, 0)));
        let (open, next) = open_zones(
            &w,
            &Tzdb,
            &["America/New_York", "Asia/Tokyo", "Nowhere/Else"],
            at,
        );
        assert_eq!(open, vec!["America/New_York"]);
        assert_eq!(next, Some(utc(2026, 3, 4, 0, 0)));
    }

    #[test]
    fn the_window_follows_dst() {
        let w = window(&["sun", "mon"], "09:00", "17:00");
        let ny = Zone::resolve(&Tzdb, "America/New_York").unwrap();
        // 2026-03-08 is the spring-forward Sunday: 09:00 EDT is 13:00 UTC, not 14:00.
        assert!(w.is_open(&ny, utc(2026, 3, 8, 13, 0)));
        assert!(!w.is_open(&ny, utc(2026, 3, 8, 12, 59)));
        assert_eq!(
            w.next_open(&ny, utc(2026, 3, 8, 6, 0)),
            Some(utc(2026, 3, 8, 13, 0))
        );
        // A window opening inside the gap (02:30 does not exist that day) opens late, not early.
        let gap = window(&["sun"], "02:30", "05:00");
        let opens = gap.next_open(&ny, utc(2026, 3, 8, 5, 0)).unwrap();
        assert_eq!(opens, utc(2026, 3, 8, 7, 30));
        assert!(gap.is_open(&ny, opens));
    }

    #[test]
    fn window_errors_and_overnight() {
        let mut errors = Vec::new();
        let w = parse_window(
            &json!({"days": ["mon", "xyz"], "from": "9am", "to": "25:00", "extra": 1,
                    "time_zone": "Mars/Base"}),
            &Tzdb,
            "window",
            &mut errors,
        );
        assert!(w.is_none());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "window.extra",
                "window.days",
                "window.from",
                "window.to",
                "window.time_zone"
            ]
        );
        let night = window(&["fri"], "22:00", "02:00");
        let utc_zone = Zone::resolve(&Tzdb, "UTC").unwrap();
        assert!(night.is_open(&utc_zone, utc(2026, 3, 7, 1, 0)));
        assert!(!night.is_open(&utc_zone, utc(2026, 3, 7, 3, 0)));
        assert_eq!(
            night.to_json(),
            json!({"days": ["fri"], "from": "22:00", "to": "02:00", "time_zone": null})
        );
    }

    #[test]
    fn pacing_allows_the_tightest_limit() {
        let p = Pacing {
            calls_per_minute: 10,
            max_concurrent: 4,
        };
        assert_eq!(p.allowance(0, 0, 50), 4);
        assert_eq!(p.allowance(8, 0, 50), 2);
        assert_eq!(p.allowance(0, 3, 50), 1);
        assert_eq!(p.allowance(12, 0, 50), 0);
        assert_eq!(p.allowance(0, 0, 1), 1);
        let mut errors = Vec::new();
        assert_eq!(
            parse_pacing(
                &json!({"calls_per_minute": 0, "max_concurrent": 501}),
                "pacing",
                &mut errors
            ),
            None
        );
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn outcomes_retry_inside_the_window_per_policy() {
        let w = window(&["mon", "tue", "wed", "thu", "fri"], "09:00", "20:00");
        let ny = Zone::resolve(&Tzdb, "America/New_York").unwrap();
        let policy = RetryPolicy {
            max_retries: 1,
            spacing_secs: 600,
        };
        let now = utc(2026, 3, 3, 15, 0);
        assert_eq!(
            after_call(policy, CallStatus::NoAnswer, 1, now, &w, &ny),
            AfterCall::RetryAt(utc(2026, 3, 3, 15, 10))
        );
        // 19:55 local: the retry lands after closing, so it waits for the next morning.
        let late = utc(2026, 3, 3, 0, 55);
        assert_eq!(
            after_call(policy, CallStatus::Busy, 1, late, &w, &ny),
            AfterCall::RetryAt(utc(2026, 3, 3, 14, 0))
        );
        assert_eq!(
            after_call(policy, CallStatus::NoAnswer, 2, now, &w, &ny),
            AfterCall::Done(ContactStatus::NoAnswer)
        );
        assert_eq!(
            after_call(policy, CallStatus::Completed, 1, now, &w, &ny),
            AfterCall::Done(ContactStatus::Completed)
        );
        assert_eq!(
            after_call(policy, CallStatus::Failed, 1, now, &w, &ny),
            AfterCall::Done(ContactStatus::Failed)
        );
    }

    #[test]
    fn campaign_bodies() {
        let body = json!({"agent_id": "ag_1", "name": "Spring", "provider": "telnyx",
            "window": {"days": ["mon"], "from": "09:00", "to": "17:00"},
            "pacing": {"calls_per_minute": 5, "max_concurrent": 2}, "csv": "phone\n"});
        let req = parse_campaign(&body, &Tzdb).unwrap();
        assert_eq!(req.provider, DialProvider::Telnyx);
        assert_eq!(req.contacts, ContactList::Csv("phone\n"));
        let bad = json!({"name": "", "provider": "bland", "from": "123", "extra": 1,
            "contacts": [], "csv": "", "window": {}, "pacing": {}});
        let errors = parse_campaign(&bad, &Tzdb).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "extra",
            "agent_id",
            "name",
            "window.days",
            "pacing.calls_per_minute",
            "provider",
            "from",
            "csv",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
    }

    #[test]
    fn export_has_a_column_per_analysis_field() {
        let rows = vec![
            ExportLine {
                line: 2,
                phone: Some("+14155550100".into()),
                status: "completed".into(),
                attempts: 1,
                outcome: Some("completed".into()),
                duration_seconds: Some(42),
                analysis: Some(json!({"status": "ok", "success": true,
                                      "values": {"interested": true, "budget": "1,000"}})),
                ..Default::default()
            },
            ExportLine {
                line: 3,
                phone: Some("555".into()),
                status: "invalid".into(),
                error: Some("phone \"555\": not E.164".into()),
                ..Default::default()
            },
        ];
        let csv = export_csv(&rows);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "line,phone,name,email,status,attempts,outcome,duration_seconds,\
            error,call_id,analysis_success,analysis.budget,analysis.interested"
        );
        assert_eq!(
            lines[1],
            "2,+14155550100,,,completed,1,completed,42,,,true,\"1,000\",true"
        );
        assert_eq!(
            lines[2],
            "3,555,,,invalid,0,,,\"phone \"\"555\"\": not E.164\",,,,"
        );
    }

    #[test]
    fn controls() {
        use CampaignStatus::*;
        assert_eq!(Control::Pause.apply(Active), Some(Paused));
        assert_eq!(Control::Resume.apply(Paused), Some(Active));
        assert_eq!(Control::Cancel.apply(Paused), Some(Canceled));
        assert_eq!(Control::Resume.apply(Canceled), None);
        assert_eq!(Control::Cancel.apply(Completed), None);
        assert_eq!(Control::Cancel.apply(Canceled), Some(Canceled));
    }

    #[test]
    fn csv_export_escapes_and_defuses_formulas() {
        assert_eq!(
            csv_line(&[
                "+14155550100",
                "Lee, J",
                "say \"hi\"",
                "=SUM(A1)",
                "-12",
                "@x"
            ]),
            "+14155550100,\"Lee, J\",\"say \"\"hi\"\"\",'=SUM(A1),-12,'@x\r\n"
        );
    }
}
