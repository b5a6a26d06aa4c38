//! Calendar invites from arbitrary names and texts: always CRLF, folded at 75 octets.
#![no_main]
#[path = "split.rs"]
mod split;

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use phone_agent_core::scheduling::ics::{build_invite, Invite, InviteMethod};

fuzz_target!(|data: &[u8]| {
    let f = split::fields(data, 6);
    let texts: Vec<String> = f.iter().map(|b| split::text(b)).collect();
    let invite = Invite {
        uid: &texts[0],
        sequence: texts[1].len() as u32,
        method: if texts[1].len() % 2 == 0 { InviteMethod::Request } else { InviteMethod::Cancel },
        start: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        duration_minutes: 30,
        summary: &texts[2],
        description: &texts[3],
        organizer_email: "agent@example.com",
        organizer_name: Some(&texts[4]),
        attendee_email: "contact@example.com",
        attendee_name: Some(&texts[5]),
        dtstamp: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
    };
    let ics = build_invite(&invite);
    assert!(ics.ends_with("\r\n"));
    for line in ics.split("\r\n") {
        assert!(line.len() <= 75, "unfolded line of {} octets", line.len());
        assert!(!line.contains('\r') && !line.contains('\n'));
    }
});
