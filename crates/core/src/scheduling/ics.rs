//! RFC 5545 / RFC 5546 (iTIP) invitations for a scheduled call.
//!
//! Written by hand rather than with the `icalendar` crate's builder (0.16.17), whose output is
//! not a correct invite for names and text we accept (docs/ics.md has the failing cases, and
//! `icalendar_builder_still_cannot_write_our_invite` below re-checks them on every upgrade): it
//! leaves a `,` in a parameter value unquoted, passes a DQUOTE or CRLF in a parameter and a bare
//! CR in TEXT through (so a name can start a content line of its own), and keeps parameters in
//! a `HashMap`, so `ATTENDEE;CN=…;ROLE=…` comes out in a different order on each build. The
//! crate's parser checks our output in tests.
//!
//! Only UTC times are written, so no `VTIMEZONE` is needed.

use chrono::{DateTime, TimeDelta, Utc};

/// iTIP method of the calendar object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteMethod {
    /// A new or updated invitation.
    Request,
    /// The event is canceled.
    Cancel,
}

impl InviteMethod {
    /// `REQUEST` or `CANCEL`, as in `METHOD:` and the MIME `method=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteMethod::Request => "REQUEST",
            InviteMethod::Cancel => "CANCEL",
        }
    }
}

/// One invitation (or cancellation) for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite<'a> {
    /// Stable per call, e.g. `<call_id>@phone-agent`.
    pub uid: &'a str,
    /// 0 first, bumped on every reschedule and on cancel.
    pub sequence: u32,
    /// Request or cancel.
    pub method: InviteMethod,
    /// When the call starts.
    pub start: DateTime<Utc>,
    /// Length of the calendar slot.
    pub duration_minutes: u32,
    /// Event title.
    pub summary: &'a str,
    /// Event body (plain text; newlines allowed).
    pub description: &'a str,
    /// Sender address; must differ from the attendee for mail clients to offer RSVP buttons.
    pub organizer_email: &'a str,
    /// Sender display name.
    pub organizer_name: Option<&'a str>,
    /// The contact's address.
    pub attendee_email: &'a str,
    /// The contact's display name.
    pub attendee_name: Option<&'a str>,
    /// When this version of the invitation was created; keep it fixed when resending.
    pub dtstamp: DateTime<Utc>,
}

impl Invite<'_> {
    /// When the calendar slot ends (`start` + `duration_minutes`).
    pub fn end(&self) -> DateTime<Utc> {
        self.start
            .checked_add_signed(TimeDelta::minutes(i64::from(self.duration_minutes)))
            .unwrap_or(self.start)
    }
}

/// Product identifier written in `PRODID`.
const PRODID: &str = "-//phone-agent//Call scheduling//EN";

/// Longest content line, in octets, excluding the CRLF (RFC 5545 §3.1).
const MAX_LINE_OCTETS: usize = 75;

/// Serializes the invitation: CRLF lines folded at 75 octets on character boundaries.
pub fn build_invite(invite: &Invite) -> String {
    let status = match invite.method {
        InviteMethod::Request => "CONFIRMED",
        InviteMethod::Cancel => "CANCELLED",
    };
    let sequence = invite.sequence.to_string();
    let organizer_cn: Vec<(&str, &str)> = invite
        .organizer_name
        .map(|n| ("CN", n))
        .into_iter()
        .collect();
    let mut attendee_params: Vec<(&str, &str)> = invite
        .attendee_name
        .map(|n| ("CN", n))
        .into_iter()
        .collect();
    attendee_params.extend([
        ("ROLE", "REQ-PARTICIPANT"),
        ("PARTSTAT", "NEEDS-ACTION"),
        ("RSVP", "TRUE"),
    ]);

    let mut out = String::new();
    let mut line =
        |name: &str, params: &[(&str, &str)], value: &str| push_line(&mut out, name, params, value);
    line("BEGIN", &[], "VCALENDAR");
    line("PRODID", &[], &escape_text(PRODID));
    line("VERSION", &[], "2.0");
    line("CALSCALE", &[], "GREGORIAN");
    line("METHOD", &[], invite.method.as_str());
    line("BEGIN", &[], "VEVENT");
    line("UID", &[], &escape_text(invite.uid));
    line("DTSTAMP", &[], &utc(invite.dtstamp));
    line("SEQUENCE", &[], &sequence);
    line("DTSTART", &[], &utc(invite.start));
    line("DTEND", &[], &utc(invite.end()));
    line("SUMMARY", &[], &escape_text(invite.summary));
    line("DESCRIPTION", &[], &escape_text(invite.description));
    line("STATUS", &[], status);
    line("TRANSP", &[], "OPAQUE");
    line("ORGANIZER", &organizer_cn, &mailto(invite.organizer_email));
    line("ATTENDEE", &attendee_params, &mailto(invite.attendee_email));
    line("END", &[], "VEVENT");
    line("END", &[], "VCALENDAR");
    out
}

/// The UTC DATE-TIME form, `20250401T200000Z`.
pub(super) fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A CAL-ADDRESS; control characters are dropped so no value can start a new content line.
fn mailto(email: &str) -> String {
    let clean: String = email.chars().filter(|c| !c.is_control()).collect();
    format!("mailto:{clean}")
}

/// TEXT escaping (RFC 5545 §3.3.11). CRLF and bare CR count as newlines; other control
/// characters (forbidden in TEXT, except tab) are dropped.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value (RFC 5545 §3.2): DQUOTE cannot be represented at all, so it becomes `'`;
/// control characters are dropped; values containing `,` `;` or `:` are quoted.
fn param_value(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    if clean.contains([',', ';', ':']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// Writes one content line, folded, with its CRLF.
fn push_line(out: &mut String, name: &str, params: &[(&str, &str)], value: &str) {
    let mut line = String::from(name);
    for (key, param) in params {
        line.push(';');
        line.push_str(key);
        line.push('=');
        line.push_str(&param_value(param));
    }
    line.push(':');
    line.push_str(value);
    push_folded(out, &line);
}

/// Folds at 75 octets (the continuation's leading space counts), never inside a UTF-8 sequence.
fn push_folded(out: &mut String, line: &str) {
    let mut used = 0;
    for c in line.chars() {
        if used + c.len_utf8() > MAX_LINE_OCTETS {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use icalendar::parser::{read_calendar, unfold};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn invite() -> Invite<'static> {
        Invite {
            uid: "call_123@phone-agent",
            sequence: 0,
            method: InviteMethod::Request,
            start: at("2025-04-01T20:00:00Z"),
            duration_minutes: 30,
            summary: "Call with Acme Dental",
            description: "Ava will call +1 501 712 2661.",
            organizer_email: "bookings@acme.example",
            organizer_name: Some("Acme Dental"),
            attendee_email: "jordan@example.com",
            attendee_name: Some("Jordan Lee"),
            dtstamp: at("2025-04-01T14:00:00Z"),
        }
    }

    #[test]
    fn request_golden() {
        let expected = "BEGIN:VCALENDAR\r\n\
            PRODID:-//phone-agent//Call scheduling//EN\r\n\
            VERSION:2.0\r\n\
            CALSCALE:GREGORIAN\r\n\
            METHOD:REQUEST\r\n\
            BEGIN:VEVENT\r\n\
            UID:call_123@phone-agent\r\n\
            DTSTAMP:20250401T140000Z\r\n\
            SEQUENCE:0\r\n\
            DTSTART:20250401T200000Z\r\n\
            DTEND:20250401T203000Z\r\n\
            SUMMARY:Call with Acme Dental\r\n\
            DESCRIPTION:Ava will call +1 501 712 2661.\r\n\
            STATUS:CONFIRMED\r\n\
            TRANSP:OPAQUE\r\n\
            ORGANIZER;CN=Acme Dental:mailto:bookings@acme.example\r\n\
            ATTENDEE;CN=Jordan Lee;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE\r\n \
            :mailto:jordan@example.com\r\n\
            END:VEVENT\r\n\
            END:VCALENDAR\r\n";
        assert_eq!(build_invite(&invite()), expected);
    }

    #[test]
    fn parses_back_with_every_property() {
        let text = build_invite(&Invite {
            description: "Line one, with; specials\\\nLine two",
            attendee_name: Some("Lee, Jordan: \"JJ\""),
            ..invite()
        });
        let unfolded = unfold(&text);
        let calendar = read_calendar(&unfolded).unwrap();
        let cal_prop = |name: &str| {
            calendar
                .properties
                .iter()
                .find(|p| p.name.as_str() == name)
                .map(|p| p.val.as_str().to_owned())
        };
        assert_eq!(cal_prop("METHOD").as_deref(), Some("REQUEST"));
        assert_eq!(cal_prop("VERSION").as_deref(), Some("2.0"));
        assert_eq!(cal_prop("PRODID").as_deref(), Some(PRODID));

        assert_eq!(calendar.components.len(), 1);
        let event = &calendar.components[0];
        assert_eq!(event.name.as_str(), "VEVENT");
        let prop = |name: &str| event.find_prop(name).unwrap().val.as_str().to_owned();
        assert_eq!(prop("UID"), "call_123@phone-agent");
        assert_eq!(prop("DTSTAMP"), "20250401T140000Z");
        assert_eq!(prop("SEQUENCE"), "0");
        assert_eq!(prop("DTSTART"), "20250401T200000Z");
        assert_eq!(prop("DTEND"), "20250401T203000Z");
        assert_eq!(prop("SUMMARY"), "Call with Acme Dental");
        assert_eq!(prop("DESCRIPTION"), "Line one, with; specials\\\nLine two");
        assert_eq!(prop("STATUS"), "CONFIRMED");
        assert_eq!(prop("ORGANIZER"), "mailto:bookings@acme.example");
        assert_eq!(prop("ATTENDEE"), "mailto:jordan@example.com");

        let params = |name: &str| -> Vec<(String, String)> {
            event
                .find_prop(name)
                .unwrap()
                .params
                .iter()
                .map(|p| {
                    let val = p
                        .val
                        .as_ref()
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    (p.key.as_str().to_owned(), val)
                })
                .collect()
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(params("ORGANIZER"), pairs(&[("CN", "Acme Dental")]));
        assert_eq!(
            params("ATTENDEE"),
            pairs(&[
                ("CN", "Lee, Jordan: 'JJ'"),
                ("ROLE", "REQ-PARTICIPANT"),
                ("PARTSTAT", "NEEDS-ACTION"),
                ("RSVP", "TRUE"),
            ])
        );
    }

    #[test]
    fn cancel_sets_method_and_status() {
        let text = build_invite(&Invite {
            method: InviteMethod::Cancel,
            sequence: 2,
            ..invite()
        });
        assert!(text.contains("\r\nMETHOD:CANCEL\r\n"));
        assert!(text.contains("\r\nSTATUS:CANCELLED\r\n"));
        assert!(text.contains("\r\nSEQUENCE:2\r\n"));
        assert!(text.contains("\r\nUID:call_123@phone-agent\r\n"));
    }

    #[test]
    fn escaping_golden() {
        assert_eq!(
            escape_text("a,b;c\\d\ne\r\nf\rg:h\u{7}\ti"),
            "a\\,b\\;c\\\\d\\ne\\nf\\ng:h\ti"
        );
        assert_eq!(param_value("Jordan Lee"), "Jordan Lee");
        assert_eq!(param_value("Lee, Jordan"), "\"Lee, Jordan\"");
        assert_eq!(param_value("Dr. Lee; MD"), "\"Dr. Lee; MD\"");
        assert_eq!(param_value("a:b"), "\"a:b\"");
        assert_eq!(param_value("say \"hi\"\r\n"), "say 'hi'");
    }

    #[test]
    fn names_with_specials_are_quoted_in_the_output() {
        let text = build_invite(&Invite {
            organizer_name: Some("Acme, Inc."),
            attendee_name: None,
            attendee_email: "a@b.example\r\nX-EVIL:1",
            ..invite()
        });
        assert!(text.contains("\r\nORGANIZER;CN=\"Acme, Inc.\":mailto:bookings@acme.example\r\n"));
        assert!(text.contains(
            "\r\nATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:a@b.ex\r\n ample"
        ));
        assert!(!text.contains("\r\nX-EVIL"));
    }

    #[test]
    fn folding_golden_with_multibyte_at_the_fold() {
        // 12 octets of "DESCRIPTION:" + 62 'a' = 74, so the 3-octet '€' cannot fit in line one.
        let description = format!("{}€€", "a".repeat(62));
        let mut out = String::new();
        push_folded(&mut out, &format!("DESCRIPTION:{description}"));
        assert_eq!(out, format!("DESCRIPTION:{}\r\n €€\r\n", "a".repeat(62)));

        // Exactly 75 octets stays on one line; 76 folds with the last octet continued.
        let mut out = String::new();
        push_folded(&mut out, &"b".repeat(75));
        assert_eq!(out, format!("{}\r\n", "b".repeat(75)));
        let mut out = String::new();
        push_folded(&mut out, &"b".repeat(76));
        assert_eq!(out, format!("{}\r\n b\r\n", "b".repeat(75)));
    }

    #[test]
    fn long_utf8_description_folds_by_octets() {
        let description =
            "Rendez-vous téléphonique avec l'équipe 日本語のテキスト 🎉🎉🎉 ".repeat(8);
        let text = build_invite(&Invite {
            description: &description,
            ..invite()
        });
        assert!(text.ends_with("\r\n"));
        for physical in text.split_terminator("\r\n") {
            assert!(
                physical.len() <= MAX_LINE_OCTETS,
                "{} octets: {physical:?}",
                physical.len()
            );
            assert!(!physical.contains(['\r', '\n']));
        }
        let unfolded = unfold(&text);
        let calendar = read_calendar(&unfolded).unwrap();
        let event = &calendar.components[0];
        assert_eq!(
            event.find_prop("DESCRIPTION").unwrap().val.as_str(),
            description
        );
    }

    proptest::proptest! {
        #[test]
        fn folding_keeps_octet_limit_and_unfolds_to_the_input(line in "\\PC{0,300}") {
            let mut out = String::new();
            push_folded(&mut out, &line);
            for physical in out.split_terminator("\r\n") {
                proptest::prop_assert!(physical.len() <= MAX_LINE_OCTETS);
            }
            proptest::prop_assert_eq!(unfold(&out), format!("{line}\r\n"));
        }
    }

    /// The builder's output for our attendee and description (docs/ics.md). Should this fail
    /// after an upgrade, the crate may have been fixed: re-check docs/ics.md and consider it.
    #[test]
    fn icalendar_builder_still_cannot_write_our_invite() {
        use icalendar::{Calendar, Component, Event, Property};
        let written = |cn: &str, description: &str| {
            let mut attendee = Property::new("ATTENDEE", "mailto:jordan@example.com");
            attendee
                .add_parameter("CN", cn)
                .add_parameter("ROLE", "REQ-PARTICIPANT")
                .add_parameter("PARTSTAT", "NEEDS-ACTION")
                .add_parameter("RSVP", "TRUE");
            let event = Event::new()
                .uid("call_123@phone-agent")
                .add_property("DTSTAMP", "20250401T140000Z")
                .description(description)
                .append_property(attendee)
                .done();
            let text = Calendar::new()
                .append_property(("METHOD", "REQUEST"))
                .push(event)
                .done()
                .to_string();
            unfold(&text)
        };
        // RFC 5545 §3.1: a parameter value with `,` must be quoted (ours: CN="Lee, Jordan").
        let text = written("Lee, Jordan", "x");
        assert!(text.contains(";CN=Lee, Jordan;") || text.contains(";CN=Lee, Jordan:"));
        // A DQUOTE and a CRLF in a name go through: the name ends the line and adds its own.
        assert!(written("JJ\"\r\nX-EVIL:1", "x").contains("\r\nX-EVIL:1\""));
        // A bare CR in TEXT goes through, and CRLF leaves its CR in the line.
        let text = written("Jordan", "one\rX-EVIL:2 three\r\nfour");
        assert!(text.contains("one\rX-EVIL:2 three\r\\nfour"));
        // The same invite built twice comes out with its parameters in different orders.
        let builds: std::collections::HashSet<String> =
            (0..16).map(|_| written("Jordan Lee", "x")).collect();
        assert!(builds.len() > 1);
        // What ours writes for the same inputs.
        let ours = build_invite(&Invite {
            attendee_name: Some("Lee, Jordan \"JJ\"\r\nX-EVIL:1"),
            description: "one\rX-EVIL:2 three\r\nfour",
            ..invite()
        });
        assert!(ours.contains("ATTENDEE;CN=\"Lee, Jordan 'JJ'X-EVIL:1\";ROLE="));
        assert!(ours.contains("DESCRIPTION:one\\nX-EVIL:2 three\\nfour\r\n"));
        assert!(!ours.contains("\r\nX-EVIL") && !ours.contains("\rX"));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(build_invite(&invite()), build_invite(&invite()));
    }
}
