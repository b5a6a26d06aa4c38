//! Confirmation, update, cancellation and reminder emails for a call or an appointment, as
//! Resend `POST /emails` bodies, all written by one composer (`invitation_email`).
//!
//! Each carries the `.ics` as an attachment with `method=` in its `content_type` (Outlook needs
//! it; Resend cannot put a `text/calendar` part inside `multipart/alternative`), plus an
//! "Add to Google Calendar" link as the fallback for clients that show a plain attachment.

use super::ics::{build_invite, utc, Invite, InviteMethod};
use crate::zones::Zone;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::borrow::Cow;
use thiserror::Error;

/// Which change the email announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailKind {
    /// The call was just scheduled.
    Scheduled,
    /// The call moved to a new time.
    Rescheduled,
    /// The call was canceled.
    Canceled,
    /// A reminder before the call (an agent's `reminders`), sent by the reminder sweep.
    Reminder,
}

impl EmailKind {
    /// `scheduled`, `rescheduled` or `canceled`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::Scheduled => "scheduled",
            EmailKind::Rescheduled => "rescheduled",
            EmailKind::Canceled => "canceled",
            EmailKind::Reminder => "reminder",
        }
    }

    /// The iTIP method of the attached invitation.
    pub fn method(self) -> InviteMethod {
        match self {
            EmailKind::Canceled => InviteMethod::Cancel,
            EmailKind::Scheduled | EmailKind::Rescheduled | EmailKind::Reminder => {
                InviteMethod::Request
            }
        }
    }
}

/// What an invitation email is about, with what only it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    /// A scheduled call to `phone_number` (the number that will be called).
    Call { phone_number: &'a str },
    /// An appointment booked on an agent's calendar, with what it is about as the caller said
    /// it.
    Appointment { note: Option<&'a str> },
}

impl Topic<'_> {
    /// `call` or `appointment`: the category tag's prefix and the id tag's name (`<what>_id`).
    fn what(self) -> &'static str {
        match self {
            Topic::Call { .. } => "call",
            Topic::Appointment { .. } => "appointment",
        }
    }
}

/// What the contact is told about one change of a call or of an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationEmail<'a> {
    /// Which change this is.
    pub kind: EmailKind,
    /// Our call or appointment id; the invitation's UID is `<id>@phone-agent`.
    pub id: &'a str,
    /// Whether it is about a call or an appointment.
    pub topic: Topic<'a>,
    /// Invitation sequence: 0 when scheduled (booked), +1 on every reschedule and on cancel.
    pub sequence: u32,
    /// `EMAIL_FROM`, `Name <address>` or `address`; also the invitation's organizer.
    pub from: &'a str,
    /// The contact's address.
    pub to_email: &'a str,
    /// The contact's name.
    pub to_name: Option<&'a str>,
    /// Agent display name (for an appointment, the calendar's owner as the caller knows it).
    pub agent_name: &'a str,
    /// When the call or appointment starts.
    pub start: DateTime<Utc>,
    /// Zone the times are shown in; UTC when absent.
    pub time_zone: Option<Zone<'a>>,
    /// Length of the calendar slot.
    pub duration_minutes: u32,
    /// When this change happened (the call's or appointment's `updated_at`). Resending with the
    /// same value keeps the body identical, which Resend requires for a reused
    /// `Idempotency-Key`.
    pub dtstamp: DateTime<Utc>,
}

/// Why no email can be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EmailError {
    /// `EMAIL_FROM` is neither `address` nor `Name <address>`.
    #[error("EMAIL_FROM has no usable address: {0:?}")]
    InvalidFrom(String),
}

/// Escapes a value we did not write ourselves for the body it goes into (HTML or text).
type Escape<'e> = &'e dyn Fn(&str) -> String;

/// Builds the JSON body of `POST {RESEND_API_URL}/emails` for one change of a call or an
/// appointment: greeting, the sentence announcing the change, what it is about, the calendar
/// line and the reference, as text and HTML (with an "Add to Google Calendar" link unless
/// canceled), plus the invitation attached.
pub fn invitation_email(email: &InvitationEmail) -> Result<Value, EmailError> {
    let (organizer_name, organizer_email) =
        parse_mailbox(email.from).ok_or_else(|| EmailError::InvalidFrom(email.from.to_owned()))?;
    let kind = email.kind;
    let when = display_time(email.start, email.time_zone);
    let (summary, description, about) = match email.topic {
        Topic::Call { phone_number } => (
            format!("Phone call with {}", email.agent_name),
            format!(
                "{} will call you at {phone_number}.\nReference: {}",
                email.agent_name, email.id
            ),
            None,
        ),
        Topic::Appointment { note } => (
            format!("Appointment with {}", email.agent_name),
            match note {
                Some(note) => format!("{note}\nReference: {}", email.id),
                None => format!("Reference: {}", email.id),
            },
            note,
        ),
    };
    let uid = format!("{}@phone-agent", email.id);
    let invite = Invite {
        uid: &uid,
        sequence: email.sequence,
        method: kind.method(),
        start: email.start,
        duration_minutes: email.duration_minutes,
        summary: &summary,
        description: &description,
        organizer_email,
        organizer_name,
        attendee_email: email.to_email,
        attendee_name: email.to_name,
        dtstamp: email.dtstamp,
    };
    let ics = build_invite(&invite);
    let paragraphs = |esc: Escape| -> Vec<String> {
        let greeting = match email.to_name {
            Some(name) => format!("Hello {},", esc(name)),
            None => "Hello,".to_owned(),
        };
        let calendar = match kind {
            EmailKind::Scheduled => "The attached invitation adds it to your calendar.",
            EmailKind::Rescheduled => "The attached invitation updates your calendar.",
            EmailKind::Canceled => "The attached cancellation removes it from your calendar.",
            EmailKind::Reminder => "The attached invitation is the one you already have.",
        };
        let mut out = vec![greeting, news(email, &when, esc)];
        if let Some(about) = about {
            out.push(format!("About: {}", esc(about)));
        }
        out.push(calendar.to_owned());
        out.push(format!("Reference: {}", esc(email.id)));
        out
    };
    let text = paragraphs(&|t| t.to_owned()).join("\n\n");
    let mut html: String = paragraphs(&|t| html_escape(t).into_owned())
        .iter()
        .map(|p| format!("<p>{p}</p>\n"))
        .collect();
    if kind != EmailKind::Canceled {
        let link = google_calendar_link(&invite);
        html.push_str(&format!(
            "<p><a href=\"{}\">Add to Google Calendar</a></p>\n",
            html_escape(&link)
        ));
    }
    let what = email.topic.what();
    let tags = tags(what, kind, &format!("{what}_id"), email.id);
    Ok(resend_body(
        email.from,
        email.to_email,
        &subject_line(email.topic, kind, &when),
        (&text, &html),
        (&ics, kind.method()),
        tags,
    ))
}

/// The subject line announcing `kind` of `topic` at `when`.
fn subject_line(topic: Topic, kind: EmailKind, when: &str) -> String {
    match (topic, kind) {
        (Topic::Call { .. }, EmailKind::Scheduled) => format!("Call scheduled: {when}"),
        (Topic::Call { .. }, EmailKind::Rescheduled) => format!("Call rescheduled: {when}"),
        (Topic::Call { .. }, EmailKind::Canceled) => format!("Call canceled: {when}"),
        (Topic::Call { .. }, EmailKind::Reminder) => format!("Reminder: call on {when}"),
        (Topic::Appointment { .. }, EmailKind::Scheduled) => {
            format!("Appointment booked: {when}")
        }
        (Topic::Appointment { .. }, EmailKind::Rescheduled) => {
            format!("Appointment moved: {when}")
        }
        (Topic::Appointment { .. }, EmailKind::Canceled) => {
            format!("Appointment canceled: {when}")
        }
        (Topic::Appointment { .. }, EmailKind::Reminder) => {
            format!("Reminder: appointment on {when}")
        }
    }
}

/// The sentence announcing `email`'s change at `when`; `esc` is applied to every value we did
/// not write ourselves.
fn news(email: &InvitationEmail, when: &str, esc: Escape) -> String {
    let (agent, when) = (esc(email.agent_name), esc(when));
    match email.topic {
        Topic::Call { phone_number } => {
            let phone = esc(phone_number);
            match email.kind {
                EmailKind::Scheduled => format!("{agent} will call you at {phone} on {when}."),
                EmailKind::Rescheduled => format!("{agent}'s call to {phone} has moved to {when}."),
                EmailKind::Canceled => format!("{agent}'s call to {phone} on {when} is canceled."),
                EmailKind::Reminder => {
                    format!("A reminder: {agent} will call you at {phone} on {when}.")
                }
            }
        }
        Topic::Appointment { .. } => match email.kind {
            EmailKind::Scheduled => format!("Your appointment with {agent} is booked for {when}."),
            EmailKind::Rescheduled => format!("Your appointment with {agent} has moved to {when}."),
            EmailKind::Canceled => format!("Your appointment with {agent} on {when} is canceled."),
            EmailKind::Reminder => {
                format!("A reminder: your appointment with {agent} is on {when}.")
            }
        },
    }
}

/// The Resend body: the texts plus the invitation as an `invite.ics` attachment whose
/// `content_type` names the iTIP method.
fn resend_body(
    from: &str,
    to_email: &str,
    subject: &str,
    (text, html): (&str, &str),
    (ics, method): (&str, InviteMethod),
    tags: Vec<Value>,
) -> Value {
    json!({
        "from": from,
        "to": [to_email],
        "subject": subject,
        "html": html,
        "text": text,
        "attachments": [{
            "filename": "invite.ics",
            "content": base64::engine::general_purpose::STANDARD.encode(ics.as_bytes()),
            "content_type": format!("text/calendar; method={}; charset=UTF-8", method.as_str()),
        }],
        "tags": tags,
    })
}

/// Resend tags: `category` `<what>_<kind>`, and the id under `id_name` when it is a valid
/// tag value.
fn tags(what: &str, kind: EmailKind, id_name: &str, id: &str) -> Vec<Value> {
    let mut tags = vec![json!({"name": "category", "value": format!("{what}_{}", kind.as_str())})];
    if is_tag_value(id) {
        tags.push(json!({"name": id_name, "value": id}));
    }
    tags
}

/// The `Idempotency-Key` header for this email: one per call, change and sequence, at most 256
/// characters (an over-long call id is replaced by its SHA-256).
pub fn idempotency_key(call_id: &str, sequence: u32, kind: EmailKind) -> String {
    bounded_key("call", call_id, sequence, kind)
}

/// The `Idempotency-Key` of an appointment's email: one per appointment, change and sequence.
pub fn appointment_idempotency_key(appointment_id: &str, sequence: u32, kind: EmailKind) -> String {
    bounded_key("appointment", appointment_id, sequence, kind)
}

fn bounded_key(what: &str, id: &str, sequence: u32, kind: EmailKind) -> String {
    let key = format!("{what}-{id}-{}-{sequence}", kind.as_str());
    if key.len() <= 256 {
        key
    } else {
        format!(
            "{what}-{}-{}-{sequence}",
            super::sha256_hex(id.as_bytes()),
            kind.as_str()
        )
    }
}

/// `Tue 1 Apr 2025, 15:00 (America/Chicago)`; UTC when there is no zone.
fn display_time(at: DateTime<Utc>, time_zone: Option<Zone>) -> String {
    const FORMAT: &str = "%a %-d %b %Y, %H:%M";
    match time_zone {
        Some(zone) => format!("{} ({zone})", zone.at(at).format(FORMAT)),
        None => format!("{} (UTC)", at.format(FORMAT)),
    }
}

fn google_calendar_link(invite: &Invite) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("action", "TEMPLATE")
        .append_pair("text", invite.summary)
        .append_pair(
            "dates",
            &format!("{}/{}", utc(invite.start), utc(invite.end())),
        )
        .append_pair("details", invite.description)
        .finish();
    format!("https://calendar.google.com/calendar/render?{query}")
}

/// Splits `Name <address>` (name optionally quoted) or a bare `address`.
fn parse_mailbox(from: &str) -> Option<(Option<&str>, &str)> {
    let from = from.trim();
    let (name, address) = match from.strip_suffix('>').and_then(|f| f.rsplit_once('<')) {
        Some((name, address)) => {
            let name = name.trim().trim_matches('"').trim();
            ((!name.is_empty()).then_some(name), address.trim())
        }
        None => (None, from),
    };
    let plausible = address.contains('@')
        && !address.starts_with('@')
        && !address.ends_with('@')
        && !address.contains(|c: char| c.is_whitespace() || c.is_control() || "<>\",;".contains(c));
    plausible.then_some((name, address))
}

/// Resend tag values: ASCII letters, digits, `_` and `-`, at most 256 characters.
fn is_tag_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn html_escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zones::Tzdb;
    use icalendar::parser::{read_calendar, unfold};

    fn email(kind: EmailKind) -> InvitationEmail<'static> {
        InvitationEmail {
            kind,
            id: "call_123",
            topic: Topic::Call {
                phone_number: "+15551234567",
            },
            sequence: 0,
            from: "Acme Dental <bookings@acme.example>",
            to_email: "jordan@example.com",
            to_name: Some("Jordan Lee"),
            agent_name: "Ava",
            start: "2025-04-01T20:00:00Z".parse().unwrap(),
            time_zone: Zone::resolve(&Tzdb, "America/Chicago"),
            duration_minutes: 15,
            dtstamp: "2025-04-01T14:00:00Z".parse().unwrap(),
        }
    }

    fn attachment_text(body: &Value) -> String {
        let content = body["attachments"][0]["content"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn scheduled_email_structure() {
        let body = invitation_email(&email(EmailKind::Scheduled)).unwrap();
        assert_eq!(body["from"], "Acme Dental <bookings@acme.example>");
        assert_eq!(body["to"], json!(["jordan@example.com"]));
        assert_eq!(
            body["subject"],
            "Call scheduled: Tue 1 Apr 2025, 15:00 (America/Chicago)"
        );
        assert_eq!(
            body["text"],
            "Hello Jordan Lee,\n\nAva will call you at +15551234567 on Tue 1 Apr 2025, 15:00 (America/Chicago).\n\n\
             The attached invitation adds it to your calendar.\n\nReference: call_123"
        );
        let html = body["html"].as_str().unwrap();
        assert!(html.starts_with("<p>Hello Jordan Lee,</p>\n"));
        assert!(html.contains(
            "<a href=\"https://calendar.google.com/calendar/render?action=TEMPLATE&amp;text=Phone+call+with+Ava\
             &amp;dates=20250401T200000Z%2F20250401T201500Z&amp;details="
        ));
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["filename"], "invite.ics");
        assert_eq!(
            attachment["content_type"],
            "text/calendar; method=REQUEST; charset=UTF-8"
        );
        assert_eq!(
            body["tags"],
            json!([{"name": "category", "value": "call_scheduled"}, {"name": "call_id", "value": "call_123"}])
        );

        let ics = attachment_text(&body);
        let unfolded = unfold(&ics);
        let calendar = read_calendar(&unfolded).unwrap();
        let event = &calendar.components[0];
        let prop = |name: &str| event.find_prop(name).unwrap().val.as_str().to_owned();
        assert_eq!(prop("UID"), "call_123@phone-agent");
        assert_eq!(prop("ORGANIZER"), "mailto:bookings@acme.example");
        assert_eq!(prop("ATTENDEE"), "mailto:jordan@example.com");
        assert_eq!(prop("DTEND"), "20250401T201500Z");
        assert_eq!(
            prop("DESCRIPTION"),
            "Ava will call you at +15551234567.\nReference: call_123"
        );
    }

    #[test]
    fn cancel_email_uses_method_cancel() {
        let body = invitation_email(&InvitationEmail {
            sequence: 2,
            ..email(EmailKind::Canceled)
        })
        .unwrap();
        assert_eq!(
            body["subject"],
            "Call canceled: Tue 1 Apr 2025, 15:00 (America/Chicago)"
        );
        assert_eq!(
            body["attachments"][0]["content_type"],
            "text/calendar; method=CANCEL; charset=UTF-8"
        );
        assert!(!body["html"]
            .as_str()
            .unwrap()
            .contains("calendar.google.com"));
        let ics = attachment_text(&body);
        assert!(ics.contains("\r\nMETHOD:CANCEL\r\n"));
        assert!(ics.contains("\r\nSTATUS:CANCELLED\r\n"));
        assert!(ics.contains("\r\nSEQUENCE:2\r\n"));
    }

    #[test]
    fn rescheduled_email_uses_request_and_the_new_wording() {
        let body = invitation_email(&InvitationEmail {
            sequence: 1,
            time_zone: None,
            ..email(EmailKind::Rescheduled)
        })
        .unwrap();
        assert_eq!(
            body["subject"],
            "Call rescheduled: Tue 1 Apr 2025, 20:00 (UTC)"
        );
        assert!(body["text"]
            .as_str()
            .unwrap()
            .contains("Ava's call to +15551234567 has moved to"));
        assert!(attachment_text(&body).contains("\r\nSEQUENCE:1\r\n"));
    }

    #[test]
    fn user_values_are_html_escaped() {
        let body = invitation_email(&InvitationEmail {
            to_name: Some("<script>alert('x')</script> & \"co\""),
            agent_name: "Bob <b>",
            id: "id\"><img src=x>",
            ..email(EmailKind::Scheduled)
        })
        .unwrap();
        let html = body["html"].as_str().unwrap();
        assert!(html.contains(
            "Hello &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;,"
        ));
        assert!(html.contains("Bob &lt;b&gt; will call you"));
        assert!(html.contains("Reference: id&quot;&gt;&lt;img src=x&gt;"));
        assert!(!html.contains("<script") && !html.contains("<b>") && !html.contains("<img"));
        // Plain text stays verbatim, and the odd call id gets no tag.
        assert!(body["text"].as_str().unwrap().starts_with("Hello <script>"));
        assert_eq!(body["tags"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn from_forms() {
        assert_eq!(parse_mailbox("a@b.example"), Some((None, "a@b.example")));
        assert_eq!(
            parse_mailbox(" \"Acme, Inc.\" <a@b.example> "),
            Some((Some("Acme, Inc."), "a@b.example"))
        );
        assert_eq!(parse_mailbox("<a@b.example>"), Some((None, "a@b.example")));
        for bad in [
            "",
            "Acme",
            "Acme <>",
            "Acme <a b@c>",
            "a@b.example, c@d.example",
        ] {
            assert_eq!(parse_mailbox(bad), None, "{bad:?}");
        }
        let err = invitation_email(&InvitationEmail {
            from: "Acme",
            ..email(EmailKind::Scheduled)
        });
        assert_eq!(err, Err(EmailError::InvalidFrom("Acme".into())));
    }

    #[test]
    fn idempotency_keys_are_distinct_and_bounded() {
        assert_eq!(
            idempotency_key("call_123", 0, EmailKind::Scheduled),
            "call-call_123-scheduled-0"
        );
        assert_ne!(
            idempotency_key("call_123", 1, EmailKind::Rescheduled),
            idempotency_key("call_123", 2, EmailKind::Rescheduled)
        );
        let long = "x".repeat(300);
        let key = idempotency_key(&long, 3, EmailKind::Canceled);
        assert!(key.len() <= 256);
        assert!(key.starts_with("call-") && key.ends_with("-canceled-3"));
        assert_ne!(
            key,
            idempotency_key(&"y".repeat(300), 3, EmailKind::Canceled)
        );
    }

    #[test]
    fn same_input_gives_the_same_body() {
        let a = invitation_email(&email(EmailKind::Scheduled)).unwrap();
        let b = invitation_email(&email(EmailKind::Scheduled)).unwrap();
        assert_eq!(a.to_string(), b.to_string());
    }

    fn appointment(kind: EmailKind, sequence: u32) -> InvitationEmail<'static> {
        InvitationEmail {
            kind,
            id: "appt_9",
            topic: Topic::Appointment {
                note: Some("Cleaning <b>& check</b>"),
            },
            sequence,
            from: "Acme Dental <bookings@acme.example>",
            to_email: "jordan@example.com",
            to_name: Some("Jordan Lee"),
            agent_name: "Acme Dental",
            start: "2025-04-01T07:00:00Z".parse().unwrap(),
            duration_minutes: 30,
            time_zone: Zone::resolve(&Tzdb, "Europe/Berlin"),
            dtstamp: "2025-03-30T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn appointment_emails_share_one_uid_and_bump_the_sequence() {
        let kinds = [
            (
                EmailKind::Scheduled,
                0,
                "REQUEST",
                "CONFIRMED",
                "Appointment booked",
            ),
            (
                EmailKind::Rescheduled,
                1,
                "REQUEST",
                "CONFIRMED",
                "Appointment moved",
            ),
            (
                EmailKind::Canceled,
                2,
                "CANCEL",
                "CANCELLED",
                "Appointment canceled",
            ),
        ];
        for (kind, sequence, method, status, subject) in kinds {
            let body = invitation_email(&appointment(kind, sequence)).unwrap();
            assert_eq!(
                body["subject"],
                format!("{subject}: Tue 1 Apr 2025, 09:00 (Europe/Berlin)")
            );
            assert_eq!(
                body["attachments"][0]["content_type"],
                format!("text/calendar; method={method}; charset=UTF-8")
            );
            assert_eq!(
                body["tags"],
                json!([{"name": "category", "value": format!("appointment_{}", kind.as_str())},
                       {"name": "appointment_id", "value": "appt_9"}])
            );
            let ics = attachment_text(&body);
            let unfolded = unfold(&ics);
            let calendar = read_calendar(&unfolded).unwrap();
            let method_prop = calendar
                .properties
                .iter()
                .find(|p| p.name.as_str() == "METHOD");
            assert_eq!(method_prop.unwrap().val.as_str(), method);
            let event = &calendar.components[0];
            let prop = |name: &str| event.find_prop(name).unwrap().val.as_str().to_owned();
            assert_eq!(prop("UID"), "appt_9@phone-agent");
            assert_eq!(prop("SEQUENCE"), sequence.to_string());
            assert_eq!(prop("STATUS"), status);
            assert_eq!(prop("DTSTART"), "20250401T070000Z");
            assert_eq!(prop("DTEND"), "20250401T073000Z");
            assert_eq!(prop("SUMMARY"), "Appointment with Acme Dental");
            assert_eq!(prop("ORGANIZER"), "mailto:bookings@acme.example");
            assert_eq!(prop("ATTENDEE"), "mailto:jordan@example.com");
            assert_eq!(
                prop("DESCRIPTION"),
                "Cleaning <b>& check</b>\nReference: appt_9"
            );
            // The caller's words reach the HTML escaped.
            let html = body["html"].as_str().unwrap();
            assert!(html.contains("About: Cleaning &lt;b&gt;&amp; check&lt;/b&gt;"));
            assert_eq!(
                html.contains("calendar.google.com"),
                kind != EmailKind::Canceled
            );
        }
        assert_eq!(
            appointment_idempotency_key("appt_9", 1, EmailKind::Rescheduled),
            "appointment-appt_9-rescheduled-1"
        );
        let bad_from = invitation_email(&InvitationEmail {
            from: "Acme",
            ..appointment(EmailKind::Scheduled, 0)
        });
        assert_eq!(bad_from, Err(EmailError::InvalidFrom("Acme".into())));
    }

    #[test]
    fn an_appointment_reminder_reads_in_full() {
        let body = invitation_email(&appointment(EmailKind::Reminder, 1)).unwrap();
        assert_eq!(
            body["text"],
            "Hello Jordan Lee,\n\n\
             A reminder: your appointment with Acme Dental is on Tue 1 Apr 2025, 09:00 (Europe/Berlin).\n\n\
             About: Cleaning <b>& check</b>\n\n\
             The attached invitation is the one you already have.\n\n\
             Reference: appt_9"
        );
        assert_eq!(
            body["html"],
            "<p>Hello Jordan Lee,</p>\n\
             <p>A reminder: your appointment with Acme Dental is on Tue 1 Apr 2025, 09:00 (Europe/Berlin).</p>\n\
             <p>About: Cleaning &lt;b&gt;&amp; check&lt;/b&gt;</p>\n\
             <p>The attached invitation is the one you already have.</p>\n\
             <p>Reference: appt_9</p>\n\
             <p><a href=\"https://calendar.google.com/calendar/render?action=TEMPLATE\
             &amp;text=Appointment+with+Acme+Dental&amp;dates=20250401T070000Z%2F20250401T073000Z\
             &amp;details=Cleaning+%3Cb%3E%26+check%3C%2Fb%3E%0AReference%3A+appt_9\">Add to Google Calendar</a></p>\n"
        );
    }

    /// Name and SHA-256 of each body `bodies_are_pinned_byte_for_byte` builds.
    const PINNED_BODIES: &str = "\
call scheduled plain b20b7464434ecd2800739121ddae3af454bef4344e9aff474eca26ed4c0b585f\n\
call scheduled bare 122bfbb383da8d077258dd0ba3b2cd4b8e43ed920bf6c70278459d7e4c00bffb\n\
call scheduled odd 7404a1f0cec221df917b54c60a6db0a10b9dfb288a8e26d25d58fa0741db37bd\n\
appointment scheduled plain b7ff1f8aa4dd7b2dd279d90941d2f9645bc8349c0ae2f09d75af395b267c9cac\n\
appointment scheduled bare e737e415d98a363222146d1d881f8a32ccab8884323bd1dfc21ded61f5ada3b7\n\
appointment scheduled odd 35bf1f9902d553e1f59c94c54a2c2e95959deb393e7735f6ffd9b014f937731b\n\
call rescheduled plain a3e63c5f09747d0821afa987386b00f83346ecd6739afdc36662ad24d14d261a\n\
call rescheduled bare 63ea494326c7c56e1faf2c1390e6b57dd25907249c8bf297795988ff0d09fa1d\n\
call rescheduled odd 9b5325d08e4667be7c53116f4c1cd90b85b4342fa11bbe77d80f806273ac8af7\n\
appointment rescheduled plain babb2ef7a107c7f49cf82a4104af0103006b86d03fe72bd5fd570f2b4ed31c67\n\
appointment rescheduled bare c2fd2908ea28f8fcb8c00c49b97b2d5927a394ceb1b972e8a5339472686ca9b3\n\
appointment rescheduled odd 33f195c3ca03d1b638b843784baa513d97b9b9dead95a6ed8e6e12d9c1efb50e\n\
call canceled plain c510b603527ac4f848aa9c7b1a4ee750311de4172632230fc82dd4b27868fe2f\n\
call canceled bare 532ee86fd5dd3ec036656278713b729f50a9c6032920f8d293679e02039ce0f4\n\
call canceled odd 6c0b95c59f6c31a2948c44631072ef9cb516d358fb562a0debcabdd010fbf7c7\n\
appointment canceled plain a82bc1fa9c7bcadd2b01114f0c7e7f0d8382f21d0c4b9e8dacff52a641726856\n\
appointment canceled bare 51fc7accdc442205c817c65ddb67dbd129fc94a9fcdee51403ab1cddd854b7de\n\
appointment canceled odd 46f8b867f68d69bacd8ea1baea4b31401216ee143e6d5a19c29fe3e01a48fc99\n\
call reminder plain bb1bdefb0ee888e8e1611feedca522f3ef8c8c1b89ef4b66fc78736a8d09c652\n\
call reminder bare f8176ebb6e62eda15496be8476cb131e2b89f54b7e1e7f055c5d1b2d5cef3255\n\
call reminder odd 337abf83dbe086802318bf5de41fa457d8dfbd2725ba21b19260384b5a89a844\n\
appointment reminder plain 6931b220bc437cfd66553710d711b5b282ea08967f600bc7a4b09f69123b1c0e\n\
appointment reminder bare 5d82afa67f7f40996430aa2ec23f4bdb82610bfc0fd17504d3f9a993f1160568\n\
appointment reminder odd 571c4db3b0613cc1285d26defb1dbbddd92dfc6ec1dafb7579a1e2f9ed6d0ed3\n";

    /// Every kind of both emails, with and without the optional values, and with values that
    /// need escaping: the digest of each whole body as it was before the two shared one
    /// composer, so any byte that changes shows here.
    #[test]
    fn bodies_are_pinned_byte_for_byte() {
        let kinds = [
            EmailKind::Scheduled,
            EmailKind::Rescheduled,
            EmailKind::Canceled,
            EmailKind::Reminder,
        ];
        let mut bodies = Vec::new();
        for kind in kinds {
            let plain = email(kind);
            let bare = InvitationEmail {
                sequence: 3,
                to_name: None,
                time_zone: None,
                ..email(kind)
            };
            let odd = InvitationEmail {
                to_name: Some("<J> & 'L'"),
                agent_name: "Bob \"B\" <b>",
                topic: Topic::Call {
                    phone_number: "+1 <555>",
                },
                id: "id\"><img>",
                ..email(kind)
            };
            for (variant, e) in [("plain", plain), ("bare", bare), ("odd", odd)] {
                let body = invitation_email(&e).unwrap().to_string();
                bodies.push((format!("call {} {variant}", kind.as_str()), body));
            }
            let plain = appointment(kind, 1);
            let bare = InvitationEmail {
                to_name: None,
                time_zone: None,
                topic: Topic::Appointment { note: None },
                ..appointment(kind, 4)
            };
            let odd = InvitationEmail {
                to_name: Some("<J> & 'L'"),
                agent_name: "Bob \"B\" <b>",
                id: "id\"><img>",
                ..appointment(kind, 2)
            };
            for (variant, e) in [("plain", plain), ("bare", bare), ("odd", odd)] {
                let body = invitation_email(&e).unwrap().to_string();
                bodies.push((format!("appointment {} {variant}", kind.as_str()), body));
            }
        }
        let digests: String = bodies
            .iter()
            .map(|(name, body)| {
                let digest = crate::scheduling::sha256_hex(body.as_bytes());
                format!("{name} {digest}\n")
            })
            .collect();
        assert_eq!(digests, PINNED_BODIES);
    }
}
