//! `POST /api/v1/calls` validation on arbitrary JSON.
#![no_main]
use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use phone_agent_core::scheduling::request::{parse_reschedule, parse_schedule, request_fingerprint};
use phone_agent_core::zones::Tzdb;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let _ = parse_schedule(&body, now, &Tzdb);
    let _ = parse_reschedule(&body, now, &Tzdb);
    let _ = request_fingerprint(&body);
});
