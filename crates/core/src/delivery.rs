//! Delivery policy: retry schedule, jitter, response classification, `Retry-After`.
//!
//! Follows the Standard Webhooks spec and Svix's worker (docs/protocols.md §3): 2xx delivers, 410
//! disables the endpoint, everything else (3xx included: redirects are never followed) is a
//! failure retried on the schedule with ±20 % jitter; 429/502/504 and timeouts slow down, and
//! `Retry-After` may postpone a retry up to twice its scheduled wait.

use chrono::DateTime;
use serde_json::{json, Value};
use thiserror::Error;

/// Per-attempt request timeout for forwarded deliveries (Svix hosted uses 15 s).
pub const REQUEST_TIMEOUT_MS: u64 = 15_000;

/// Svix's `OVERLOAD_PENALTY_SECS`: the least wait after a throttle signal.
const THROTTLE_FLOOR_MS: i64 = 60_000;

/// Svix's `JITTER_DELTA`: a retry lands within ±20 % of its step.
const JITTER_DELTA: f64 = 0.2;

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered with `code`; `retry_after` is its `Retry-After` header, if any.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// No complete response within [`REQUEST_TIMEOUT_MS`].
    Timeout,
    /// DNS, TLS or connection failure before any response.
    NetworkError,
}

impl Outcome {
    /// The HTTP status the attempt got, if a response came back.
    pub fn status_code(&self) -> Option<i64> {
        match self {
            Outcome::Status { code, .. } => Some(i64::from(*code)),
            Outcome::Timeout | Outcome::NetworkError => None,
        }
    }
}

/// What to do with a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The endpoint accepted it; stop.
    Delivered,
    /// Try again at this Unix time (ms); never earlier than the `now_ms` given.
    Retry { at_unix_ms: i64 },
    /// The schedule is exhausted; move the message to the dead-letter state.
    Dead,
    /// The endpoint answered 410 Gone: disable it and stop sending.
    DisableEndpoint,
}

/// Decides what happens after attempt number `attempt` (1 = first) that ended with `outcome`.
///
/// `schedule_secs[k-1]` is the delay before the k-th retry, in seconds counted from the attempt
/// that just ended at `attempted_at_ms` (Svix's semantics: the default schedule spans ~27.6 h,
/// and a repeated step such as `36000,36000` means two separate waits); `jitter` is uniform in [0, 1) and spreads that time over
/// ±20 % of the step. Throttle signals (429, 502, 504, timeout) wait at least 60 s from now, but
/// never more than the longest step of the schedule, so second-scale test schedules stay fast.
pub fn decide(
    schedule_secs: &[u64],
    attempt: u32,
    attempted_at_ms: i64,
    now_ms: i64,
    outcome: &Outcome,
    jitter: f64,
) -> Decision {
    let (throttled, retry_after_ms) = match outcome {
        Outcome::Status {
            code: 200..=299, ..
        } => return Decision::Delivered,
        Outcome::Status { code: 410, .. } => return Decision::DisableEndpoint,
        Outcome::Status { code, retry_after } => (
            matches!(code, 429 | 502 | 504),
            retry_after
                .as_deref()
                .and_then(|value| parse_retry_after(value, now_ms)),
        ),
        Outcome::Timeout => (true, None),
        Outcome::NetworkError => (false, None),
    };
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    let Some(&step_secs) = schedule_secs.get(index) else {
        return Decision::Dead;
    };

    let mut at = backoff_at(attempted_at_ms, secs_to_ms(step_secs), now_ms, jitter);

    if throttled {
        let longest_step = schedule_secs.iter().copied().max().unwrap_or(0);
        let floor = THROTTLE_FLOOR_MS.min(secs_to_ms(longest_step));
        at = at.max(now_ms.saturating_add(floor));
    }
    if let Some(delay) = retry_after_ms {
        let wait = at.saturating_sub(now_ms);
        at = now_ms.saturating_add(delay.clamp(wait, wait.saturating_mul(2)));
    }
    Decision::Retry { at_unix_ms: at }
}

/// The time of a retry `step_ms` after the attempt that ended at `attempted_at_ms`, spread over
/// ±20 % of the step by `jitter` (uniform in [0, 1)) so retries of many failures do not land
/// together, and never before `now_ms`. Every retry schedule in the worker goes through here.
pub fn backoff_at(attempted_at_ms: i64, step_ms: i64, now_ms: i64, jitter: f64) -> i64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 - JITTER_DELTA + 2.0 * JITTER_DELTA * jitter;
    // `as` saturates for floats, so a huge step cannot wrap around.
    let offset_ms = (step_ms as f64 * factor).round() as i64;
    attempted_at_ms.saturating_add(offset_ms).max(now_ms)
}

/// [`decide`] for attempt number `attempt` that ended at `now_ms`. An attempt that could not be
/// made (`None`: a refused target, an unusable secret, a missing key) will not succeed by
/// retrying until someone acts, so it is dead at once.
pub fn decide_attempt(
    schedule_secs: &[u64],
    attempt: i64,
    now_ms: i64,
    outcome: Option<&Outcome>,
    jitter: f64,
) -> Decision {
    match outcome {
        None => Decision::Dead,
        Some(outcome) => decide(
            schedule_secs,
            u32::try_from(attempt).unwrap_or(u32::MAX),
            now_ms,
            now_ms,
            outcome,
            jitter,
        ),
    }
}

/// Parses a `Retry-After` value into a delay in ms from `now_ms`: seconds (fractions rounded
/// up, as Svix does) or an HTTP-date (IMF-fixdate / RFC 2822); a past date gives 0.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = value.parse().ok()?;
        return secs.is_finite().then(|| (secs.ceil() * 1000.0) as i64);
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(date.timestamp_millis().saturating_sub(now_ms).max(0))
}

/// The start of a response body for the attempt log: lossy UTF-8, at most `max` bytes, cut at
/// a character boundary.
pub fn response_excerpt(body: &[u8], max: usize) -> String {
    // A character is at most 4 bytes, so this prefix decodes every character that can fit.
    let prefix = body.get(..max.saturating_add(4)).unwrap_or(body);
    let text = String::from_utf8_lossy(prefix);
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// The type of the synthetic event `POST /api/v1/endpoints/{id}/test` sends (not a provider
/// event, so not in the canonical catalogue).
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// Why an endpoint cannot be sent a test event now.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TestRefusal {
    /// The sender keeps a paused endpoint's backlog unsent, so a test would only wait.
    #[error("the endpoint is paused: resume it to send a test event")]
    Paused,
    /// Disabled by a `410 Gone` (or any status but enabled and paused): nothing is sent to it.
    #[error("the endpoint is disabled ({0}): enable it to send a test event")]
    Disabled(String),
}

/// Whether an endpoint with `status` (and `disabled_reason`) can be sent a test event: only an
/// enabled endpoint is delivered to, and a test that could never be sent must say so at once.
pub fn test_allowed(status: &str, disabled_reason: Option<&str>) -> Result<(), TestRefusal> {
    match status {
        "enabled" => Ok(()),
        "paused" => Err(TestRefusal::Paused),
        other => Err(TestRefusal::Disabled(
            disabled_reason.unwrap_or(other).to_owned(),
        )),
    }
}

/// The canonical body of a test event for endpoint `endpoint_id`: the usual `{type, timestamp,
/// data}` envelope with the `data` keys every event has (`provider`, `provider_event_id`,
/// `provider_call_id`, `call_id`), and `test: true` so a receiver can tell it from a real one.
pub fn test_event(
    provider: &str,
    provider_event_id: &str,
    endpoint_id: &str,
    timestamp_rfc3339: &str,
) -> Value {
    json!({
        "type": TEST_EVENT_TYPE,
        "timestamp": timestamp_rfc3339,
        "data": {
            "test": true,
            "message": "A test event sent from the phone-agent API to check this endpoint.",
            "endpoint_id": endpoint_id,
            "provider": provider,
            "provider_event_id": provider_event_id,
            "provider_call_id": null,
            "call_id": null,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEFAULT: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];
    const FIRST: i64 = 1_700_000_000_000;

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    fn retry_after(code: u16, value: &str) -> Outcome {
        Outcome::Status {
            code,
            retry_after: Some(value.to_owned()),
        }
    }

    fn at(decision: Decision) -> i64 {
        match decision {
            Decision::Retry { at_unix_ms } => at_unix_ms,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn an_attempt_not_made_is_dead_and_a_made_one_follows_the_schedule() {
        assert_eq!(
            decide_attempt(&DEFAULT, 1, FIRST, None, 0.5),
            Decision::Dead
        );
        assert_eq!(
            decide_attempt(&DEFAULT, 1, FIRST, Some(&status(204)), 0.5),
            Decision::Delivered
        );
        assert_eq!(
            decide_attempt(&DEFAULT, 1, FIRST, Some(&status(500)), 0.5),
            decide(&DEFAULT, 1, FIRST, FIRST, &status(500), 0.5)
        );
        assert_eq!(
            decide_attempt(&DEFAULT, 8, FIRST, Some(&status(500)), 0.5),
            Decision::Dead
        );
        assert_eq!(
            decide_attempt(&DEFAULT, -1, FIRST, Some(&status(500)), 0.5),
            Decision::Dead
        );
    }

    #[test]
    fn only_a_response_has_a_status_code() {
        assert_eq!(status(503).status_code(), Some(503));
        assert_eq!(Outcome::Timeout.status_code(), None);
        assert_eq!(Outcome::NetworkError.status_code(), None);
    }

    #[test]
    fn success_codes_deliver() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(
                decide(&DEFAULT, 1, FIRST, FIRST, &status(code), 0.5),
                Decision::Delivered
            );
        }
        // Delivered even when the schedule is exhausted.
        assert_eq!(
            decide(&DEFAULT, 99, FIRST, FIRST, &status(200), 0.5),
            Decision::Delivered
        );
    }

    #[test]
    fn gone_disables_the_endpoint() {
        assert_eq!(
            decide(&DEFAULT, 1, FIRST, FIRST, &status(410), 0.5),
            Decision::DisableEndpoint
        );
        assert_eq!(
            decide(&DEFAULT, 8, FIRST, FIRST, &status(410), 0.5),
            Decision::DisableEndpoint
        );
    }

    #[test]
    fn redirects_and_other_codes_are_failures() {
        for code in [100, 199, 300, 301, 302, 307, 308, 400, 404, 500, 503] {
            assert_eq!(
                at(decide(&DEFAULT, 1, FIRST, FIRST + 100, &status(code), 0.5)),
                FIRST + 5_000,
                "code {code}"
            );
        }
        assert_eq!(
            at(decide(
                &DEFAULT,
                1,
                FIRST,
                FIRST,
                &Outcome::NetworkError,
                0.5
            )),
            FIRST + 5_000
        );
    }

    #[test]
    fn kth_retry_is_due_its_step_after_the_attempt_that_failed() {
        for (k, step) in DEFAULT.iter().enumerate() {
            let attempt = u32::try_from(k + 1).unwrap();
            let now = FIRST + 1_000;
            let expected = FIRST + i64::try_from(*step).unwrap() * 1000;
            assert_eq!(
                at(decide(&DEFAULT, attempt, FIRST, now, &status(500), 0.5)),
                expected.max(now)
            );
        }
    }

    #[test]
    fn jitter_spreads_twenty_percent_each_way() {
        let now = FIRST + 1_000;
        assert_eq!(
            at(decide(&DEFAULT, 2, FIRST, now, &status(500), 0.0)),
            FIRST + 240_000
        );
        assert_eq!(
            at(decide(&DEFAULT, 2, FIRST, now, &status(500), 1.0)),
            FIRST + 360_000
        );
        // Out-of-range or non-finite jitter cannot push the retry outside the band.
        assert_eq!(
            at(decide(&DEFAULT, 2, FIRST, now, &status(500), 7.0)),
            FIRST + 360_000
        );
        assert_eq!(
            at(decide(&DEFAULT, 2, FIRST, now, &status(500), f64::NAN)),
            FIRST + 300_000
        );
    }

    #[test]
    fn after_the_last_step_the_message_is_dead() {
        assert_eq!(
            decide(&DEFAULT, 8, FIRST, FIRST, &status(500), 0.5),
            Decision::Dead
        );
        assert_eq!(
            decide(&DEFAULT, 8, FIRST, FIRST, &Outcome::Timeout, 0.5),
            Decision::Dead
        );
        assert!(matches!(
            decide(&DEFAULT, 7, FIRST, FIRST, &status(500), 0.5),
            Decision::Retry { .. }
        ));
        assert_eq!(
            decide(&[], 1, FIRST, FIRST, &status(500), 0.5),
            Decision::Dead
        );
    }

    #[test]
    fn attempt_zero_counts_as_the_first() {
        assert_eq!(
            decide(&DEFAULT, 0, FIRST, FIRST, &status(500), 0.5),
            decide(&DEFAULT, 1, FIRST, FIRST, &status(500), 0.5)
        );
    }

    #[test]
    fn an_overdue_retry_is_due_now_not_in_the_past() {
        let now = FIRST + 10_000_000;
        assert_eq!(at(decide(&DEFAULT, 2, FIRST, now, &status(500), 0.0)), now);
    }

    #[test]
    fn throttle_signals_wait_at_least_a_minute() {
        let now = FIRST + 200;
        for outcome in [status(429), status(502), status(504), Outcome::Timeout] {
            assert_eq!(
                at(decide(&DEFAULT, 1, FIRST, now, &outcome, 0.5)),
                now + 60_000,
                "{outcome:?}"
            );
        }
        // 503 is not a throttle signal.
        assert_eq!(
            at(decide(&DEFAULT, 1, FIRST, now, &status(503), 0.5)),
            FIRST + 5_000
        );
        // A step already longer than a minute is kept.
        assert_eq!(
            at(decide(&DEFAULT, 2, FIRST, now, &status(429), 0.5)),
            FIRST + 300_000
        );
    }

    #[test]
    fn throttle_floor_is_capped_by_a_short_test_schedule() {
        let schedule = [1, 2, 3];
        let now = FIRST + 100;
        assert_eq!(
            at(decide(&schedule, 1, FIRST, now, &status(429), 0.5)),
            now + 3_000
        );
        assert_eq!(
            at(decide(
                &schedule,
                3,
                FIRST,
                FIRST + 2_500,
                &Outcome::Timeout,
                0.5
            )),
            FIRST + 5_500
        );
    }

    #[test]
    fn retry_after_is_clamped_between_one_and_two_scheduled_waits() {
        let now = FIRST + 5_000;
        // Scheduled wait: 295 s.
        assert_eq!(
            at(decide(
                &DEFAULT,
                2,
                FIRST,
                now,
                &retry_after(503, "10"),
                0.5
            )),
            FIRST + 300_000
        );
        assert_eq!(
            at(decide(
                &DEFAULT,
                2,
                FIRST,
                now,
                &retry_after(503, "400"),
                0.5
            )),
            now + 400_000
        );
        assert_eq!(
            at(decide(
                &DEFAULT,
                2,
                FIRST,
                now,
                &retry_after(503, "100000"),
                0.5
            )),
            now + 590_000
        );
        // Garbage is ignored.
        assert_eq!(
            at(decide(
                &DEFAULT,
                2,
                FIRST,
                now,
                &retry_after(503, "soon"),
                0.5
            )),
            FIRST + 300_000
        );
    }

    #[test]
    fn retry_after_combines_with_the_throttle_floor() {
        let now = FIRST + 100;
        // 429 on the first attempt: wait 60 s, Retry-After may stretch it to 120 s.
        assert_eq!(
            at(decide(
                &DEFAULT,
                1,
                FIRST,
                now,
                &retry_after(429, "90"),
                0.5
            )),
            now + 90_000
        );
        assert_eq!(
            at(decide(
                &DEFAULT,
                1,
                FIRST,
                now,
                &retry_after(429, "3600"),
                0.5
            )),
            now + 120_000
        );
        let date = "Tue, 14 Nov 2023 22:14:50 GMT"; // FIRST is 22:13:20 UTC
        assert_eq!(
            at(decide(
                &DEFAULT,
                1,
                FIRST,
                FIRST,
                &retry_after(429, date),
                0.5
            )),
            FIRST + 90_000
        );
    }

    #[test]
    fn parses_retry_after_seconds() {
        assert_eq!(parse_retry_after("0", FIRST), Some(0));
        assert_eq!(parse_retry_after("5", FIRST), Some(5_000));
        assert_eq!(parse_retry_after(" 7 ", FIRST), Some(7_000));
        assert_eq!(parse_retry_after("1.2", FIRST), Some(2_000));
        assert_eq!(
            parse_retry_after("99999999999999999999999", FIRST),
            Some(i64::MAX)
        );
        for bad in ["", "-1", "1.2.3", ".", "1e3", "abc", "5s"] {
            assert_eq!(parse_retry_after(bad, FIRST), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_retry_after_http_dates() {
        // IMF-fixdate example from RFC 9110.
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(60_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 09:28:00 +0200", now),
            Some(60_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("21 Oct 2015", now), None);
    }

    #[test]
    fn excerpt_cuts_at_a_character_boundary() {
        assert_eq!(response_excerpt(b"hello world", 5), "hello");
        assert_eq!(response_excerpt(b"short", 100), "short");
        assert_eq!(response_excerpt(b"abc", 0), "");
        // "é" is two bytes; cutting inside it drops the whole character.
        assert_eq!(response_excerpt("aé".as_bytes(), 2), "a");
        assert_eq!(response_excerpt("aé".as_bytes(), 3), "aé");
        assert_eq!(response_excerpt("€€".as_bytes(), 5), "€");
        // Invalid UTF-8 becomes U+FFFD.
        assert_eq!(response_excerpt(b"a\xffb", 10), "a\u{fffd}b");
    }

    proptest! {
        #[test]
        fn plain_failures_stay_in_the_jitter_band_and_never_before_now(
            steps in proptest::collection::vec(0u64..200_000, 1..10),
            pick in any::<proptest::sample::Index>(),
            first in 0i64..4_000_000_000_000,
            elapsed in 0i64..300_000_000,
            jitter in 0.0f64..1.0,
        ) {
            let mut schedule = steps;
            schedule.sort_unstable();
            let k = pick.index(schedule.len());
            let attempt = u32::try_from(k + 1).unwrap();
            let now = first + elapsed;
            let step_ms = i64::try_from(schedule[k]).unwrap() * 1000;
            let got = at(decide(&schedule, attempt, first, now, &Outcome::NetworkError, jitter));
            prop_assert!(got >= now);
            let low = first + step_ms * 8 / 10;
            let high = first + step_ms * 12 / 10;
            prop_assert!(got == now || (low <= got && got <= high), "{got} not in [{low}, {high}]");
        }

        #[test]
        fn never_panics_and_never_schedules_into_the_past(
            schedule in proptest::collection::vec(any::<u64>(), 0..10),
            attempt in any::<u32>(),
            first in any::<i64>(),
            now in any::<i64>(),
            code in any::<u16>(),
            header in proptest::option::of(".{0,40}"),
            jitter in any::<f64>(),
        ) {
            let outcome = Outcome::Status { code, retry_after: header };
            if let Decision::Retry { at_unix_ms } = decide(&schedule, attempt, first, now, &outcome, jitter) {
                prop_assert!(at_unix_ms >= now);
            }
        }

        #[test]
        fn excerpt_is_bounded(body in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..80) {
            prop_assert!(response_excerpt(&body, max).len() <= max);
        }
    }

    #[test]
    fn only_enabled_endpoints_take_a_test_event() {
        assert_eq!(test_allowed("enabled", None), Ok(()));
        assert_eq!(test_allowed("paused", None), Err(TestRefusal::Paused));
        assert_eq!(
            test_allowed("disabled", Some("endpoint answered 410 Gone")),
            Err(TestRefusal::Disabled("endpoint answered 410 Gone".into()))
        );
        assert_eq!(
            test_allowed("disabled", None),
            Err(TestRefusal::Disabled("disabled".into()))
        );
    }

    #[test]
    fn a_test_event_is_a_marked_canonical_envelope() {
        let e = test_event("phone-agent", "test:evt_1", "ep_1", "2030-01-01T00:00:00Z");
        assert_eq!(e["type"], TEST_EVENT_TYPE);
        assert_eq!(e["timestamp"], "2030-01-01T00:00:00Z");
        assert_eq!(e["data"]["test"], true);
        assert_eq!(e["data"]["endpoint_id"], "ep_1");
        assert_eq!(e["data"]["provider"], "phone-agent");
        assert_eq!(e["data"]["provider_event_id"], "test:evt_1");
        assert!(e["data"]["call_id"].is_null());
        assert_eq!(e.as_object().map(|o| o.len()), Some(3));
    }
}
