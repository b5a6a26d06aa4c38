//! The reader against files shaped like Google Calendar's and Outlook's exports.

use super::busy::{busy_times, Busy};
use super::import::{plan, ImportError, MAX_IMPORT_EVENTS};
use super::*;
use crate::zones::{Tzdb, Zone};
use chrono::DateTime;
use serde_json::json;

fn ms(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

fn crlf(lines: &str) -> String {
    lines
        .lines()
        // Nine spaces of indentation in these sources mark a folded continuation line.
        .map(|l| match l.strip_prefix("         ") {
            Some(rest) if !rest.starts_with(' ') => format!(" {rest}"),
            _ => l.trim_start().to_owned(),
        })
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect()
}

fn zone(name: &str) -> Zone<'static> {
    Zone::resolve(&Tzdb, name).unwrap()
}

fn busy(source: &str, floating: &str, from: &str, to: &str) -> Busy {
    let doc = read(source).unwrap_or_else(|e| panic!("{e}"));
    busy_times(&doc, &Tzdb, zone(floating), (ms(from), ms(to))).unwrap_or_else(|e| panic!("{e}"))
}

fn spans(b: &Busy) -> Vec<(String, String)> {
    b.intervals()
        .iter()
        .map(|(s, e)| {
            let f = |t: i64| {
                DateTime::from_timestamp_millis(t)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%MZ")
                    .to_string()
            };
            (f(*s), f(*e))
        })
        .collect()
}

const GOOGLE_VTIMEZONE: &str = "
    BEGIN:VTIMEZONE
    TZID:Europe/Berlin
    X-LIC-LOCATION:Europe/Berlin
    BEGIN:DAYLIGHT
    TZOFFSETFROM:+0100
    TZOFFSETTO:+0200
    TZNAME:CEST
    DTSTART:19700329T020000
    RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
    END:DAYLIGHT
    BEGIN:STANDARD
    TZOFFSETFROM:+0200
    TZOFFSETTO:+0100
    TZNAME:CET
    DTSTART:19701025T030000
    RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
    END:STANDARD
    END:VTIMEZONE";

/// A Google Calendar secret-address export: a weekly Berlin meeting across the March DST change
/// with an EXDATE and a moved instance (RECURRENCE-ID), an all-day event, a free (transparent)
/// event, a cancelled one and a folded description.
fn google_feed() -> String {
    crlf(&format!(
        "BEGIN:VCALENDAR
        PRODID:-//Google Inc//Google Calendar 70.9054//EN
        VERSION:2.0
        CALSCALE:GREGORIAN
        METHOD:PUBLISH
        X-WR-CALNAME:Practice
        X-WR-TIMEZONE:Europe/Berlin
        {GOOGLE_VTIMEZONE}
        BEGIN:VEVENT
        DTSTART;TZID=Europe/Berlin:20260316T100000
        DTEND;TZID=Europe/Berlin:20260316T110000
        RRULE:FREQ=WEEKLY;BYDAY=MO
        EXDATE;TZID=Europe/Berlin:20260406T100000
        DTSTAMP:20260301T090000Z
        UID:5f1d2e3c4b5a@google.com
        CREATED:20260301T085900Z
        DESCRIPTION:Weekly review of the open cases and a description long enough t
         o be folded by Google's writer.
        LAST-MODIFIED:20260301T090000Z
        LOCATION:
        SEQUENCE:0
        STATUS:CONFIRMED
        SUMMARY:Team sync
        TRANSP:OPAQUE
        END:VEVENT
        BEGIN:VEVENT
        DTSTART;TZID=Europe/Berlin:20260413T150000
        DTEND;TZID=Europe/Berlin:20260413T160000
        DTSTAMP:20260301T090000Z
        UID:5f1d2e3c4b5a@google.com
        RECURRENCE-ID;TZID=Europe/Berlin:20260413T100000
        SEQUENCE:1
        STATUS:CONFIRMED
        SUMMARY:Team sync (moved)
        TRANSP:OPAQUE
        END:VEVENT
        BEGIN:VEVENT
        DTSTART;VALUE=DATE:20260401
        DTEND;VALUE=DATE:20260402
        DTSTAMP:20260301T090000Z
        UID:allday@google.com
        SUMMARY:Closed
        TRANSP:OPAQUE
        END:VEVENT
        BEGIN:VEVENT
        DTSTART:20260402T080000Z
        DTEND:20260402T090000Z
        UID:free@google.com
        SUMMARY:Reminder only
        TRANSP:TRANSPARENT
        END:VEVENT
        BEGIN:VEVENT
        DTSTART:20260402T100000Z
        DTEND:20260402T110000Z
        UID:cancelled@google.com
        STATUS:CANCELLED
        SUMMARY:Dropped
        END:VEVENT
        END:VCALENDAR"
    ))
}

#[test]
fn google_feed_busy_times_follow_dst_exdate_and_overrides() {
    let b = busy(
        &google_feed(),
        "Europe/Berlin",
        "2026-03-15T00:00:00Z",
        "2026-04-21T00:00:00Z",
    );
    assert_eq!(
        spans(&b),
        [
            // 10:00 CET before the change on March 29, 10:00 CEST after it.
            ("2026-03-16T09:00Z".into(), "2026-03-16T10:00Z".into()),
            ("2026-03-23T09:00Z".into(), "2026-03-23T10:00Z".into()),
            ("2026-03-30T08:00Z".into(), "2026-03-30T09:00Z".into()),
            // The all-day event: Berlin midnight to midnight.
            ("2026-03-31T22:00Z".into(), "2026-04-01T22:00Z".into()),
            // April 6 is an EXDATE; April 13 moved to 15:00.
            ("2026-04-13T13:00Z".into(), "2026-04-13T14:00Z".into()),
            ("2026-04-20T08:00Z".into(), "2026-04-20T09:00Z".into()),
        ]
    );
    assert!(b.overlaps(ms("2026-03-30T08:30:00Z"), ms("2026-03-30T09:30:00Z")));
    assert!(!b.overlaps(ms("2026-03-30T09:00:00Z"), ms("2026-03-30T09:30:00Z")));
    assert!(!b.overlaps(ms("2026-04-13T08:00:00Z"), ms("2026-04-13T09:00:00Z")));
}

/// Outlook (Exchange) publishes Windows zone names with their own VTIMEZONE, DTSTART in 1601.
fn outlook_feed() -> String {
    crlf(
        "BEGIN:VCALENDAR
        METHOD:PUBLISH
        PRODID:Microsoft Exchange Server 2010
        VERSION:2.0
        X-WR-CALNAME:Calendar
        BEGIN:VTIMEZONE
        TZID:W. Europe Standard Time
        BEGIN:STANDARD
        DTSTART:16010101T030000
        TZOFFSETFROM:+0200
        TZOFFSETTO:+0100
        RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
        END:STANDARD
        BEGIN:DAYLIGHT
        DTSTART:16010101T020000
        TZOFFSETFROM:+0100
        TZOFFSETTO:+0200
        RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
        END:DAYLIGHT
        END:VTIMEZONE
        BEGIN:VTIMEZONE
        TZID:Eastern Standard Time
        BEGIN:STANDARD
        DTSTART:16010101T020000
        TZOFFSETFROM:-0400
        TZOFFSETTO:-0500
        RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11
        END:STANDARD
        BEGIN:DAYLIGHT
        DTSTART:16010101T020000
        TZOFFSETFROM:-0500
        TZOFFSETTO:-0400
        RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3
        END:DAYLIGHT
        END:VTIMEZONE
        BEGIN:VEVENT
        DESCRIPTION:\\n
        RRULE:FREQ=WEEKLY;UNTIL=20260420T080000Z;INTERVAL=1;BYDAY=MO;WKST=SU
        EXDATE;TZID=W. Europe Standard Time:20260406T100000
        UID:040000008200E00074C5B7101A82E00800000000D00254522634DA01000000000000000
         010000000A670AFB915FBCA4086DA8E3B2C6DC017
        SUMMARY:Standup
        DTSTART;TZID=W. Europe Standard Time:20260323T100000
        DTEND;TZID=W. Europe Standard Time:20260323T103000
        CLASS:PUBLIC
        PRIORITY:5
        DTSTAMP:20260301T120000Z
        TRANSP:OPAQUE
        STATUS:CONFIRMED
        SEQUENCE:0
        LOCATION:
        X-MICROSOFT-CDO-APPT-SEQUENCE:0
        X-MICROSOFT-CDO-BUSYSTATUS:BUSY
        END:VEVENT
        BEGIN:VEVENT
        UID:oof-1
        SUMMARY:Focus time
        DTSTART;TZID=Eastern Standard Time:20260310T090000
        DTEND;TZID=Eastern Standard Time:20260310T100000
        X-MICROSOFT-CDO-BUSYSTATUS:FREE
        END:VEVENT
        BEGIN:VEVENT
        UID:ny-1
        SUMMARY:Call New York
        DTSTART;TZID=Eastern Standard Time:20260309T090000
        DTEND;TZID=Eastern Standard Time:20260309T100000
        END:VEVENT
        END:VCALENDAR",
    )
}

#[test]
fn outlook_feed_windows_zones_resolve_through_the_file_s_vtimezone() {
    let b = busy(
        &outlook_feed(),
        "UTC",
        "2026-03-01T00:00:00Z",
        "2026-05-01T00:00:00Z",
    );
    assert_eq!(
        spans(&b),
        [
            // March 8 2026 is the US change: 09:00 EDT is 13:00Z.
            ("2026-03-09T13:00Z".into(), "2026-03-09T14:00Z".into()),
            ("2026-03-23T09:00Z".into(), "2026-03-23T09:30Z".into()),
            ("2026-03-30T08:00Z".into(), "2026-03-30T08:30Z".into()),
            // April 6 excluded; UNTIL 08:00Z on April 20 is inclusive.
            ("2026-04-13T08:00Z".into(), "2026-04-13T08:30Z".into()),
            ("2026-04-20T08:00Z".into(), "2026-04-20T08:30Z".into()),
        ]
    );
}

#[test]
fn a_vtimezone_gives_the_zone_database_s_offsets() {
    let doc = read(&outlook_feed()).unwrap();
    let west = &doc.zones[0];
    for at in [
        "2026-01-15T12:00:00Z",
        "2026-03-29T00:59:59Z",
        "2026-03-29T01:00:00Z",
        "2026-10-25T00:59:59Z",
        "2026-10-25T01:00:00Z",
        "2030-07-01T00:00:00Z",
    ] {
        let at: DateTime<chrono::Utc> = at.parse().unwrap();
        assert_eq!(
            west.offset_at(at),
            zone("Europe/Berlin").offset_at(at),
            "{at}"
        );
    }
}

#[test]
fn floating_utc_and_path_like_tzids() {
    let source = crlf(
        "BEGIN:VCALENDAR
        BEGIN:VEVENT
        UID:a
        DTSTART:20260105T090000
        DURATION:PT45M
        END:VEVENT
        BEGIN:VEVENT
        UID:b
        DTSTART:20260105T120000Z
        DTEND:20260105T123000Z
        END:VEVENT
        BEGIN:VEVENT
        UID:c
        DTSTART;TZID=/freeassociation.sourceforge.net/Tzfile/America/New_York:20260105T090000
        DTEND;TZID=/freeassociation.sourceforge.net/Tzfile/America/New_York:20260105T093000
        END:VEVENT
        END:VCALENDAR",
    );
    let b = busy(
        &source,
        "Asia/Tokyo",
        "2026-01-04T00:00:00Z",
        "2026-01-06T00:00:00Z",
    );
    assert_eq!(
        spans(&b),
        [
            ("2026-01-05T00:00Z".into(), "2026-01-05T00:45Z".into()),
            ("2026-01-05T12:00Z".into(), "2026-01-05T12:30Z".into()),
            ("2026-01-05T14:00Z".into(), "2026-01-05T14:30Z".into()),
        ]
    );
}

#[test]
fn a_time_in_a_dst_gap_uses_the_offset_before_it() {
    let source = crlf(
        "BEGIN:VCALENDAR
        BEGIN:VEVENT
        UID:gap
        DTSTART;TZID=Europe/Berlin:20260329T023000
        DTEND;TZID=Europe/Berlin:20260329T040000
        END:VEVENT
        END:VCALENDAR",
    );
    let b = busy(
        &source,
        "UTC",
        "2026-03-28T00:00:00Z",
        "2026-03-30T00:00:00Z",
    );
    assert_eq!(
        spans(&b),
        [("2026-03-29T01:30Z".into(), "2026-03-29T02:00Z".into())]
    );
}

#[test]
fn only_the_window_is_expanded_and_the_instances_are_bounded() {
    // A daily event since 2000: only the window's instances, found without walking 26 years.
    let source = crlf(
        "BEGIN:VCALENDAR
        BEGIN:VEVENT
        UID:daily
        DTSTART:20000101T120000Z
        DTEND:20000101T121500Z
        RRULE:FREQ=DAILY
        END:VEVENT
        END:VCALENDAR",
    );
    let b = busy(
        &source,
        "UTC",
        "2026-01-01T00:00:00Z",
        "2026-01-04T00:00:00Z",
    );
    assert_eq!(b.intervals().len(), 3);
    // A rule with COUNT is walked from its start; one that yields too much is refused.
    let many = source.replace("FREQ=DAILY", "FREQ=DAILY;COUNT=100000");
    let doc = read(&many).unwrap();
    let window = (ms("2000-01-01T00:00:00Z"), ms("2100-01-01T00:00:00Z"));
    let err = busy_times(&doc, &Tzdb, zone("UTC"), window).unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.reason.contains("busy times"), "{err}");
}

#[test]
fn what_cannot_be_read_for_sure_is_an_error_naming_the_event() {
    for (source, reason) in [
        (
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART;TZID=Romance Standard Time:20260105T090000\nEND:VEVENT\nEND:VCALENDAR\n",
            "unknown time zone",
        ),
        (
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20260105T090000Z\nRRULE:FREQ=HOURLY\nEND:VEVENT\nEND:VCALENDAR\n",
            "FREQ=HOURLY",
        ),
    ] {
        let err = match read(source) {
            Err(e) => e,
            Ok(doc) => busy_times(&doc, &Tzdb, zone("UTC"), (0, i64::MAX / 2)).unwrap_err(),
        };
        assert!(err.reason.contains(reason), "{err}");
        assert!(err.line >= 2 && err.line <= 5, "{err}");
    }
}

#[test]
fn malformed_files_name_the_source_line() {
    for (source, line, reason) in [
        ("", 1, "no BEGIN:VCALENDAR"),
        ("hello world\n", 1, "':' expected"),
        ("BEGIN:VEVENT\nEND:VEVENT\n", 1, "expected BEGIN:VCALENDAR"),
        (
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART;TZID=Europe/Berlin 20260101T090000\nEND:VEVENT\nEND:VCALENDAR\n",
            4,
            "':' expected",
        ),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:a long\r\n  folded line\r\nthis is garbage\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            5,
            "':' expected",
        ),
        ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nEND:VTODO\nEND:VCALENDAR\n", 4, "does not close"),
        ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\n", 3, "ends inside BEGIN:VEVENT"),
        (
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:2026-01-05T09:00\nEND:VEVENT\nEND:VCALENDAR\n",
            4,
            "DTSTART",
        ),
        (
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20260105T090000Z\nRRULE:FREQ=WEEKLY;BYDAY=XX\nEND:VEVENT\nEND:VCALENDAR\n",
            5,
            "BYDAY=XX",
        ),
        ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nEND:VEVENT\nEND:VCALENDAR\n", 2, "without DTSTART"),
        (
            "BEGIN:VCALENDAR\nATTENDEE;CN=\"unclosed:tel:+1\nEND:VCALENDAR\n",
            2,
            "not closed",
        ),
        (" folded first\n", 1, "continuation"),
        ("BEGIN:VCALENDAR\n:no name\nEND:VCALENDAR\n", 2, "not a content line"),
    ] {
        let err = read(source).expect_err(source);
        assert_eq!(err.line, line, "{source:?}: {err}");
        assert!(err.reason.contains(reason), "{source:?}: {err}");
    }
}

#[test]
fn values_are_typed() {
    let source = crlf(
        "BEGIN:VCALENDAR
        BEGIN:VEVENT
        UID:typed
        DTSTART;VALUE=DATE:20260105
        DURATION:P1W2DT3H4M5S
        SUMMARY:Lunch\\, then a walk
        ATTENDEE;CN=\"Lee, Jordan\";ROLE=REQ-PARTICIPANT:tel:+1-415-555-0100
        ATTENDEE;CN=Ada:mailto:ada@example.com
        RDATE;VALUE=DATE:20260110,20260111
        END:VEVENT
        END:VCALENDAR",
    );
    let doc = read(&source).unwrap();
    let e = &doc.events[0];
    assert_eq!(e.line, 2);
    assert_eq!(
        e.start,
        When::Date(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap())
    );
    assert_eq!(
        e.duration,
        Some(TimeDelta::seconds(9 * 86_400 + 3 * 3600 + 4 * 60 + 5))
    );
    assert_eq!(e.summary.as_deref(), Some("Lunch, then a walk"));
    assert_eq!(e.attendees[0].name.as_deref(), Some("Lee, Jordan"));
    assert_eq!(e.attendees[0].address, "tel:+1-415-555-0100");
    assert_eq!(e.rdates.len(), 2);
    for bad in ["P", "PT", "P1H", "PT1D", "1D", "P1DT", "PXD"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
    assert_eq!(parse_duration("-PT15M"), Some(TimeDelta::minutes(-15)));
}

#[test]
fn text_values_are_unescaped_once() {
    for (written, read) in [
        ("plain", "plain"),
        ("a\\, b\\; c\\: d", "a, b; c: d"),
        ("line\\nnext\\Nlast", "line\nnext\nlast"),
        // An escaped backslash before an `n` is a backslash and an `n`, not a newline.
        ("C:\\\\new", "C:\\new"),
        ("unknown \\x kept", "unknown \\x kept"),
        ("trailing \\", "trailing \\"),
        ("ünïcödé\\, ok", "ünïcödé, ok"),
    ] {
        assert_eq!(unescape_text(written), read, "{written:?}");
    }
}

#[test]
fn folding_parameters_and_nesting_follow_rfc_5545() {
    // Folds with a space and with a tab, inside a name, inside a quoted parameter and inside the
    // value; LF-only line ends; lower-case names; a parameter value with `;`, `:` and `,` inside
    // quotes and a list of quoted values; a VALARM whose SUMMARY must not become the event's.
    let source = "begin:vcalendar\n\
        BEGIN:VEVENT\r\n\
        UID:fold\r\n\
        DTST\r\n ART;TZID=Europe/Berlin:20260105T090000\r\n\
        SUM\r\n\tMARY:Quarterly \r\n review\\, part 2\r\n\
        ATTENDEE;CN=\"Doe; Jane: \r\n MD\";DELEGATED-FROM=\"mailto:a@example.com\",\"mailto:b@example.com\":\r\n\tmailto:c@example.com\r\n\
        location:Room 1\n\
        BEGIN:VALARM\r\n\
        ACTION:DISPLAY\r\n\
        SUMMARY:not the event\r\n\
        TRIGGER:-PT15M\r\n\
        END:VALARM\r\n\
        END:VEVENT\r\n\
        end:vcalendar\r\n";
    let doc = read(source).unwrap_or_else(|e| panic!("{e}"));
    let e = &doc.events[0];
    assert_eq!(e.line, 2);
    assert_eq!(
        e.start,
        When::Local {
            at: NaiveDate::from_ymd_opt(2026, 1, 5)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap(),
            tzid: Some("Europe/Berlin".into()),
        }
    );
    assert_eq!(e.summary.as_deref(), Some("Quarterly review, part 2"));
    assert_eq!(e.location.as_deref(), Some("Room 1"));
    assert_eq!(e.attendees.len(), 1);
    assert_eq!(e.attendees[0].name.as_deref(), Some("Doe; Jane: MD"));
    assert_eq!(e.attendees[0].address, "mailto:c@example.com");
}

#[test]
fn every_calendar_of_a_file_is_read_and_errors_after_folds_name_the_written_line() {
    let two = crlf(
        "BEGIN:VCALENDAR
        BEGIN:VEVENT
        UID:one
        DTSTART:20260105T090000Z
        END:VEVENT
        END:VCALENDAR
        BEGIN:VCALENDAR
        BEGIN:VEVENT
        UID:two
        DTSTART:20260106T090000Z
        END:VEVENT
        END:VCALENDAR",
    );
    let doc = read(&two).unwrap();
    let uids: Vec<_> = doc.events.iter().map(|e| e.uid.as_deref()).collect();
    assert_eq!(uids, [Some("one"), Some("two")]);
    assert_eq!(doc.events[1].line, 8);

    let folded = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDESCRIPTION:a\r\n b\r\n c\r\nDTSTART:\r\n 2026-01-05\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let err = read(folded).unwrap_err();
    assert_eq!(
        (err.line, err.reason.contains("DTSTART")),
        (6, true),
        "{err}"
    );
    let open = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDESCRIPTION:a\r\n b\r\n\r\n";
    let err = read(open).unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    assert!(err.reason.contains("ends inside BEGIN:VEVENT"), "{err}");
    let nested = "BEGIN:VCALENDAR\nBEGIN:A\nBEGIN:B\nBEGIN:C\nBEGIN:D\n";
    assert_eq!(read(nested).unwrap_err().line, 5);
    let after = "BEGIN:VCALENDAR\nEND:VCALENDAR\nX-STRAY:1\n";
    let err = read(after).unwrap_err();
    assert_eq!(err.line, 3);
    assert!(err.reason.contains("outside BEGIN:VCALENDAR"), "{err}");
}

fn import_file() -> String {
    crlf(&format!(
        "BEGIN:VCALENDAR
        PRODID:-//Google Inc//Google Calendar 70.9054//EN
        VERSION:2.0
        {GOOGLE_VTIMEZONE}
        BEGIN:VEVENT
        UID:berlin-1
        DTSTART;TZID=Europe/Berlin:20990302T100000
        DTEND;TZID=Europe/Berlin:20990302T103000
        SUMMARY:Call Ada
        ATTENDEE;CN=Ada Lovelace:tel:+49-30-1234567
        END:VEVENT
        BEGIN:VEVENT
        UID:utc-1
        DTSTART:20990302T150000Z
        SUMMARY:Call Grace
        X-PHONE:+1 (415) 555-0100
        END:VEVENT
        BEGIN:VEVENT
        UID:floating-1
        DTSTART:20990302T090000
        LOCATION:tel:+81-3-1234-5678
        END:VEVENT
        BEGIN:VEVENT
        UID:nophone
        DTSTART:20990302T090000Z
        LOCATION:Room 4
        END:VEVENT
        BEGIN:VEVENT
        UID:allday
        DTSTART;VALUE=DATE:20990302
        X-PHONE:+14155550100
        END:VEVENT
        BEGIN:VEVENT
        UID:weekly
        DTSTART:20990302T090000Z
        RRULE:FREQ=WEEKLY
        X-PHONE:+14155550100
        END:VEVENT
        BEGIN:VEVENT
        UID:berlin-1
        DTSTART:20990303T090000Z
        X-PHONE:+14155550100
        END:VEVENT
        BEGIN:VEVENT
        DTSTART:20990303T090000Z
        X-PHONE:+14155550100
        END:VEVENT
        END:VCALENDAR"
    ))
}

#[test]
fn import_turns_events_into_call_bodies_and_refuses_the_rest_one_by_one() {
    let doc = read(&import_file()).unwrap();
    let planned = plan(&doc, &Tzdb, "ag_1", Some(zone("Asia/Tokyo"))).unwrap();
    let bodies: Vec<_> = planned.iter().map(|p| p.call.clone()).collect();
    assert_eq!(
        bodies[0],
        Ok(
            json!({"to": "+49301234567", "agent_id": "ag_1", "start_at": "2099-03-02T09:00:00Z",
                  "time_zone": "Europe/Berlin", "contact": {"name": "Ada Lovelace"},
                  "metadata": {"ical_uid": "berlin-1", "ical_summary": "Call Ada"}})
        )
    );
    assert_eq!(
        bodies[1],
        Ok(
            json!({"to": "+14155550100", "agent_id": "ag_1", "start_at": "2099-03-02T15:00:00Z",
                  "metadata": {"ical_uid": "utc-1", "ical_summary": "Call Grace"}})
        )
    );
    assert_eq!(
        bodies[2],
        Ok(
            json!({"to": "+81312345678", "agent_id": "ag_1", "start_at": "2099-03-02T00:00:00Z",
                  "time_zone": "Asia/Tokyo", "metadata": {"ical_uid": "floating-1"}})
        )
    );
    let codes: Vec<_> = bodies[3..]
        .iter()
        .map(|b| b.as_ref().unwrap_err().code)
        .collect();
    assert_eq!(
        codes,
        [
            "no_phone",
            "all_day_event",
            "recurring_event",
            "duplicate_uid",
            "missing_uid"
        ]
    );
    assert_eq!(planned[3].line, 40);
    // Without a zone for floating times, that event alone is refused.
    let planned = plan(&doc, &Tzdb, "ag_1", None).unwrap();
    assert_eq!(planned[2].call.as_ref().unwrap_err().code, "floating_time");
    assert!(planned[0].call.is_ok());
}

#[test]
fn import_is_bounded() {
    let mut source = String::from("BEGIN:VCALENDAR\r\n");
    for i in 0..=MAX_IMPORT_EVENTS {
        source.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{i}\r\nDTSTART:20990101T000000Z\r\nEND:VEVENT\r\n"
        ));
    }
    source.push_str("END:VCALENDAR\r\n");
    let doc = read(&source).unwrap();
    assert_eq!(
        plan(&doc, &Tzdb, "ag", None),
        Err(ImportError::TooManyEvents(MAX_IMPORT_EVENTS + 1))
    );
}

#[test]
fn feed_answers_are_checked() {
    use super::busy::{cache_key, feed_text, MAX_FEED_BYTES};
    assert_eq!(
        feed_text(200, b"BEGIN:VCALENDAR".to_vec()).unwrap(),
        "BEGIN:VCALENDAR"
    );
    assert!(feed_text(500, Vec::new()).unwrap_err().contains("HTTP 500"));
    assert!(feed_text(302, Vec::new()).unwrap_err().contains("HTTP 302"));
    assert!(feed_text(200, vec![b'x'; MAX_FEED_BYTES + 1])
        .unwrap_err()
        .contains("larger"));
    assert!(feed_text(200, vec![0xff, 0xfe])
        .unwrap_err()
        .contains("UTF-8"));
    let key = cache_key("https://calendar.google.com/calendar/ical/secret/basic.ics");
    assert!(key.starts_with("ical-feed:") && !key.contains("secret"));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Lines an attacker's feed might be made of: valid, truncated and hostile pieces.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("BEGIN:VCALENDAR".to_owned()),
            Just("END:VCALENDAR".to_owned()),
            Just("BEGIN:VEVENT".to_owned()),
            Just("END:VEVENT".to_owned()),
            Just("BEGIN:VTIMEZONE".to_owned()),
            Just("END:VTIMEZONE".to_owned()),
            Just("BEGIN:STANDARD".to_owned()),
            Just("END:STANDARD".to_owned()),
            Just("TZID:Custom".to_owned()),
            Just("TZOFFSETFROM:+0100".to_owned()),
            Just("TZOFFSETTO:-2359".to_owned()),
            Just("UID:a".to_owned()),
            Just("RECURRENCE-ID:20260105T090000Z".to_owned()),
            Just(" folded".to_owned()),
            "(DTSTART|DTEND|EXDATE|RDATE)(;TZID=(Custom|Europe/Berlin|Nowhere))?(;VALUE=DATE)?:[0-9TZ,]{0,20}",
            "RRULE:FREQ=(DAILY|WEEKLY|MONTHLY|YEARLY)(;INTERVAL=[0-9]{1,4})?(;COUNT=[0-9]{1,6})?(;BYDAY=(-?[0-9]{0,2}(MO|FR),?){1,3})?(;BYMONTHDAY=-?[0-9]{1,2})?(;BYMONTH=[0-9]{1,2})?(;BYSETPOS=-?[0-9]{1,3})?",
            "DURATION:[-+]?P[0-9WDTHMS]{0,8}",
            "[A-Z;=:\"\\-, ]{0,30}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn reading_and_expanding_any_file_never_panics(lines in prop::collection::vec(line(), 0..30)) {
            let source = lines.join("\r\n");
            if let Ok(doc) = read(&source) {
                let window = (ms("2026-01-01T00:00:00Z"), ms("2027-01-01T00:00:00Z"));
                let _ = busy_times(&doc, &Tzdb, zone("Europe/Berlin"), window);
                let _ = plan(&doc, &Tzdb, "ag", Some(zone("UTC")));
            }
        }

        #[test]
        fn reading_any_text_never_panics(text in "\\PC{0,300}") {
            let _ = read(&text);
        }
    }
}
