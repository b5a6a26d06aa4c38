//! Reminders before a scheduled call or a booked appointment: an agent's
//! `reminders: {before_minutes, channels}`, and which reminder rows a call or an appointment
//! gets when it is scheduled (booked) or moved.
//!
//! A call gets one reminder per (channel, offset) the agent asks for and the call can be reached
//! on (an e-mail reminder needs the contact's address, an SMS one a caller id). A reminder whose time has already passed
//! when the call is scheduled (or moved) is kept as `skipped` and never sent. The sweep hands a due
//! reminder to the outbox of its channel only while its call is still scheduled for the start
//! the reminder was planned for, so a cancelled, dispatched or retried call gets none.

use crate::scheduling::request::FieldError;
use serde_json::{json, Map, Value};

/// Most offsets an agent may list.
pub const MAX_OFFSETS: usize = 5;
/// Longest offset: 30 days.
pub const MAX_BEFORE_MINUTES: u64 = 30 * 24 * 60;

/// How a reminder reaches the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// Through the e-mail outbox (Resend), to the call's contact e-mail.
    Email,
    /// Through the text-message outbox, to the number called, from its caller id (a number
    /// that opted out gets nothing: the outbox checks the suppression list when it sends).
    Sms,
}

impl Channel {
    /// Every channel a reminder row may name.
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    /// `email` or `sms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// The channel named `name` exactly.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// The channels this build can send reminders on.
pub const SENDABLE: [Channel; 2] = [Channel::Email, Channel::Sms];

/// What a reminder is about: a scheduled call or a booked appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A scheduled outbound call.
    Call,
    /// A booked appointment.
    Appointment,
}

impl Subject {
    /// `call` or `appointment`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Call => "call",
            Subject::Appointment => "appointment",
        }
    }
}

/// An agent's reminder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Minutes before the start, largest first, each once.
    pub before_minutes: Vec<u32>,
    /// Channels, each once.
    pub channels: Vec<Channel>,
}

/// Validates an agent's `reminders` object; the stored form on success.
pub fn parse_settings(obj: &Map<String, Value>) -> Result<Value, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut before: Vec<u32> = Vec::new();
    match obj.get("before_minutes") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_OFFSETS => {
            for item in list {
                match item
                    .as_u64()
                    .filter(|n| (1..=MAX_BEFORE_MINUTES).contains(n))
                    .and_then(|n| u32::try_from(n).ok())
                {
                    Some(n) if !before.contains(&n) => before.push(n),
                    Some(n) => errors.push(FieldError::new(
                        "reminders.before_minutes",
                        "invalid_value",
                        format!("reminders.before_minutes lists {n} twice"),
                    )),
                    None => errors.push(FieldError::new(
                        "reminders.before_minutes",
                        "invalid_value",
                        format!(
                            "reminders.before_minutes: {item} is not a whole number of minutes from 1 to {MAX_BEFORE_MINUTES}"
                        ),
                    )),
                }
            }
        }
        _ => errors.push(FieldError::new(
            "reminders.before_minutes",
            "invalid_value",
            format!(
                "reminders.before_minutes is a list of 1 to {MAX_OFFSETS} whole numbers of minutes"
            ),
        )),
    }
    let mut channels: Vec<Channel> = Vec::new();
    match obj.get("channels") {
        None | Some(Value::Null) => channels.push(Channel::Email),
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= Channel::ALL.len() => {
            for item in list {
                match item
                    .as_str()
                    .and_then(Channel::parse)
                    .filter(|c| SENDABLE.contains(c))
                {
                    Some(c) if !channels.contains(&c) => channels.push(c),
                    Some(c) => errors.push(FieldError::new(
                        "reminders.channels",
                        "invalid_value",
                        format!("reminders.channels lists {} twice", c.as_str()),
                    )),
                    None => errors.push(FieldError::new(
                        "reminders.channels",
                        "invalid_value",
                        format!(
                            "reminders.channels: {item} is not a channel this server sends ({})",
                            sendable_names()
                        ),
                    )),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            "reminders.channels",
            "invalid_value",
            format!(
                "reminders.channels is a non-empty list of channels ({})",
                sendable_names()
            ),
        )),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    before.sort_unstable_by(|a, b| b.cmp(a));
    let channels: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    Ok(json!({"before_minutes": before, "channels": channels}))
}

fn sendable_names() -> String {
    SENDABLE
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reminder settings in an agent's stored config; `None` when it sends none.
pub fn settings(config: &Value) -> Option<Settings> {
    let before_minutes: Vec<u32> = config
        .pointer("/reminders/before_minutes")?
        .as_array()?
        .iter()
        .filter_map(Value::as_u64)
        .filter_map(|n| u32::try_from(n).ok())
        .collect();
    let channels: Vec<Channel> = config
        .pointer("/reminders/channels")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .filter_map(Channel::parse)
        .collect();
    (!before_minutes.is_empty() && !channels.is_empty()).then_some(Settings {
        before_minutes,
        channels,
    })
}

/// One reminder a call or an appointment gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub channel: Channel,
    pub before_minutes: u32,
    /// The start it reminds of (ms).
    pub start_at: i64,
    /// When it is sent (ms).
    pub due_at: i64,
    /// Its time had passed when it was planned: kept, never sent.
    pub skipped: bool,
}

/// When the reminder `before_minutes` ahead of `start_at` (ms) is due.
pub fn due_at(start_at: i64, before_minutes: u32) -> i64 {
    start_at - i64::from(before_minutes) * 60_000
}

/// The channels a call's contact (or an appointment's caller) can be reminded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reachable {
    /// There is an e-mail address.
    pub email: bool,
    /// There is a number to text (and, for a call, a caller id to text it from).
    pub text: bool,
}

impl Reachable {
    fn by(self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email,
            Channel::Sms => self.text,
        }
    }
}

/// The reminders the agent's stored config `agent_config` gives a call or an appointment
/// starting at `start_at`, planned at `now` (both ms): one per offset and per channel it is
/// `reachable` on; none when the agent sends none.
pub fn plan(agent_config: &Value, start_at: i64, now: i64, reachable: Reachable) -> Vec<Planned> {
    let Some(settings) = settings(agent_config) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &channel in settings.channels.iter().filter(|c| reachable.by(**c)) {
        for &before_minutes in &settings.before_minutes {
            let due_at = due_at(start_at, before_minutes);
            out.push(Planned {
                channel,
                before_minutes,
                start_at,
                due_at,
                skipped: due_at <= now,
            });
        }
    }
    out
}

/// The outbox key of the reminder `before_minutes` ahead of the start `start_at` of `call_id`
/// (a call's or an appointment's id) on `channel`: sent once per subject, offset and start (a
/// moved call or appointment is reminded again for its new time), at most 256 characters.
pub fn idempotency_key(
    call_id: &str,
    channel: Channel,
    before_minutes: u32,
    start_at: i64,
) -> String {
    let key = format!(
        "reminder-{}-{before_minutes}-{start_at}-{call_id}",
        channel.as_str()
    );
    key.chars().take(256).collect()
}

/// The text of an SMS reminder of a call (or appointment) with `agent_name` at `start`, on
/// `zone`'s clocks (UTC without one), with the opt-out line carriers expect.
pub fn reminder_text(
    subject: Subject,
    agent_name: &str,
    start: chrono::DateTime<chrono::Utc>,
    zone: Option<&crate::zones::Zone>,
) -> String {
    let (local, zone_name) = match zone {
        Some(zone) => (zone.at(start), zone.name()),
        None => (start.fixed_offset(), "UTC"),
    };
    format!(
        "Reminder: your {} with {agent_name} is at {} ({zone_name}). Reply STOP to opt out.",
        subject.as_str(),
        local.format("%a %b %-d, %H:%M")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Value, Vec<FieldError>> {
        parse_settings(v.as_object().unwrap())
    }

    #[test]
    fn settings_are_normalised_and_read_back() {
        let stored = parse(json!({"before_minutes": [60, 1440]})).unwrap();
        assert_eq!(
            stored,
            json!({"before_minutes": [1440, 60], "channels": ["email"]})
        );
        let read = settings(&json!({ "reminders": stored })).unwrap();
        assert_eq!(read.before_minutes, vec![1440, 60]);
        assert_eq!(read.channels, vec![Channel::Email]);
        assert_eq!(settings(&json!({})), None);
    }

    #[test]
    fn bad_settings_name_the_field() {
        for body in [
            json!({}),
            json!({"before_minutes": []}),
            json!({"before_minutes": [0]}),
            json!({"before_minutes": [43201]}),
            json!({"before_minutes": [5, 5]}),
            json!({"before_minutes": [1, 2, 3, 4, 5, 6]}),
            json!({"before_minutes": ["60"]}),
        ] {
            let errors = parse(body.clone()).unwrap_err();
            assert_eq!(errors[0].field, "reminders.before_minutes", "{body}");
        }
        for channels in [
            json!([]),
            json!(["fax"]),
            json!(["email", "email"]),
            json!("email"),
        ] {
            let errors = parse(json!({"before_minutes": [5], "channels": channels})).unwrap_err();
            assert_eq!(errors[0].field, "reminders.channels", "{channels}");
        }
    }

    #[test]
    fn both_channels_are_accepted_once_each() {
        let parsed = parse(json!({"before_minutes": [5], "channels": ["sms", "email"]})).unwrap();
        assert_eq!(parsed["channels"], json!(["sms", "email"]));
        let read = settings(&json!({ "reminders": parsed })).unwrap();
        assert_eq!(read.channels, vec![Channel::Sms, Channel::Email]);
    }

    #[test]
    fn the_text_names_the_agent_and_the_local_time() {
        let rules = crate::zones::Tzdb;
        let zone = crate::zones::Zone::resolve(&rules, "Europe/Paris").unwrap();
        let at = "2026-12-07T13:30:00Z".parse().unwrap();
        assert_eq!(
            reminder_text(Subject::Call, "Ava", at, Some(&zone)),
            "Reminder: your call with Ava is at Mon Dec 7, 14:30 (Europe/Paris). Reply STOP to opt out."
        );
        assert_eq!(
            reminder_text(Subject::Call, "Ava", at, None),
            "Reminder: your call with Ava is at Mon Dec 7, 13:30 (UTC). Reply STOP to opt out."
        );
        assert_eq!(
            reminder_text(Subject::Appointment, "Ava", at, Some(&zone)),
            "Reminder: your appointment with Ava is at Mon Dec 7, 14:30 (Europe/Paris). Reply STOP to opt out."
        );
    }

    #[test]
    fn a_plan_skips_what_has_passed_and_what_cannot_reach() {
        let config =
            json!({"reminders": {"before_minutes": [1440, 60], "channels": ["email", "sms"]}});
        let start = 10 * 3_600_000;
        let now = start - 2 * 3_600_000;
        let email_only = Reachable {
            email: true,
            text: false,
        };
        let planned = plan(&config, start, now, email_only);
        assert_eq!(
            planned,
            vec![
                Planned {
                    channel: Channel::Email,
                    before_minutes: 1440,
                    start_at: start,
                    due_at: start - 86_400_000,
                    skipped: true
                },
                Planned {
                    channel: Channel::Email,
                    before_minutes: 60,
                    start_at: start,
                    due_at: start - 3_600_000,
                    skipped: false
                },
            ]
        );
        let text_only = Reachable {
            email: false,
            text: true,
        };
        assert!(plan(&config, start, now, text_only)
            .iter()
            .all(|p| p.channel == Channel::Sms));
        // A reminder due exactly now has passed: it would race the scheduling itself.
        let both = Reachable {
            email: true,
            text: true,
        };
        let at_the_hour = plan(&config, start, start - 3_600_000, both);
        assert_eq!(at_the_hour.len(), 4);
        assert!(at_the_hour
            .iter()
            .filter(|p| p.before_minutes == 60)
            .all(|p| p.skipped));
        // An agent without reminders plans none.
        assert_eq!(plan(&json!({}), start, now, both), vec![]);
    }

    #[test]
    fn keys_differ_per_offset_channel_and_start() {
        let a = idempotency_key("call_1", Channel::Email, 60, 1000);
        assert_ne!(a, idempotency_key("call_1", Channel::Email, 30, 1000));
        assert_ne!(a, idempotency_key("call_1", Channel::Sms, 60, 1000));
        assert_ne!(a, idempotency_key("call_1", Channel::Email, 60, 2000));
        assert_eq!(
            idempotency_key(&"x".repeat(400), Channel::Email, 1, 1).len(),
            256
        );
    }
}
