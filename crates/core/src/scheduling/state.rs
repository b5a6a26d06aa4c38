//! The call state machine: which status updates apply, which are stale, which are nonsense.
//!
//! Statuses are ranked in life order (all terminal outcomes share the top rank), and a call only
//! ever moves up: repeated or out-of-order provider callbacks are ignored, never applied
//! backwards. A retry after no-answer / busy is not a transition: it is a new attempt of the same
//! call that the edge starts by writing `scheduled` with the time [`retry_after_outcome`] gives
//! and a bumped attempt number. Callbacks are judged within one attempt, so the edge drops those
//! whose provider call id belongs to an earlier attempt before calling [`transition`].

use super::CallStatus;
use chrono::{DateTime, TimeDelta, Utc};
use thiserror::Error;

/// What to do with a requested status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move the call to the new status.
    Apply,
    /// Keep the current status: a duplicate, or an update older than what we already know.
    Ignore,
    /// A forward move that cannot happen (a bug or a misread provider payload): log it, keep the
    /// current status, and still acknowledge the webhook.
    Reject(InvalidTransition),
}

/// A status change the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a call cannot go from {} to {}", from.as_str(), to.as_str())]
pub struct InvalidTransition {
    /// The call's current status.
    pub from: CallStatus,
    /// The requested status.
    pub to: CallStatus,
}

/// Judges moving a call from `from` to `to`.
///
/// `scheduled → dispatching` applies once (a second dispatcher sees `Ignore`; the edge still
/// claims the row with a conditional UPDATE so two cron runs cannot both dial). After dispatch any
/// forward move applies, because carriers skip callbacks (Twilio's default subscription only sends
/// `completed`) and a callback may beat our own `queued` write; an answered call can only end
/// `completed` or `failed`.
pub fn transition(from: CallStatus, to: CallStatus) -> Transition {
    if rank(to) <= rank(from) {
        return Transition::Ignore;
    }
    let allowed = match from {
        CallStatus::Scheduled => matches!(to, CallStatus::Dispatching | CallStatus::Canceled),
        CallStatus::InProgress => matches!(to, CallStatus::Completed | CallStatus::Failed),
        _ => true,
    };
    if allowed {
        Transition::Apply
    } else {
        Transition::Reject(InvalidTransition { from, to })
    }
}

/// True once the call has an outcome; nothing moves it afterwards (retries are new attempts).
pub fn is_terminal(status: CallStatus) -> bool {
    rank(status) == TERMINAL_RANK
}

/// True while the call may be rescheduled or canceled by the user: only before dispatch.
pub fn can_modify(status: CallStatus) -> bool {
    status == CallStatus::Scheduled
}

const TERMINAL_RANK: u8 = 5;

fn rank(status: CallStatus) -> u8 {
    match status {
        CallStatus::Scheduled => 0,
        CallStatus::Dispatching => 1,
        CallStatus::Queued => 2,
        CallStatus::Ringing => 3,
        CallStatus::InProgress => 4,
        CallStatus::Completed
        | CallStatus::NoAnswer
        | CallStatus::Busy
        | CallStatus::Failed
        | CallStatus::Canceled => TERMINAL_RANK,
    }
}

/// How unanswered and busy calls are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first one.
    pub max_retries: u32,
    /// Seconds between an attempt's outcome and the next dial.
    pub spacing_secs: u32,
}

impl Default for RetryPolicy {
    /// Two retries, ten minutes apart.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            spacing_secs: 600,
        }
    }
}

/// When to dial again after attempt number `attempt` (1 for the first dial) ended in `outcome`
/// at `now`; `None` when the outcome is final (answered, failed, canceled) or retries are spent.
pub fn retry_after_outcome(
    policy: RetryPolicy,
    outcome: CallStatus,
    attempt: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let retryable = matches!(outcome, CallStatus::NoAnswer | CallStatus::Busy);
    if !retryable || attempt > policy.max_retries {
        return None;
    }
    now.checked_add_signed(TimeDelta::seconds(i64::from(policy.spacing_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use CallStatus::*;

    /// The full table, row = from, column = to, in `CallStatus::ALL` order.
    /// `A` apply, `.` ignore, `x` reject.
    const TABLE: [&str; 10] = [
        // to: S D Q R P C N B F X
        ".AxxxxxxxA", // scheduled
        "..AAAAAAAA", // dispatching
        "...AAAAAAA", // queued
        "....AAAAAA", // ringing
        ".....AxxAx", // in_progress
        "..........", // completed
        "..........", // no_answer
        "..........", // busy
        "..........", // failed
        "..........", // canceled
    ];

    #[test]
    fn exhaustive_transition_table() {
        for (row, from) in TABLE.iter().zip(CallStatus::ALL) {
            for (cell, to) in row.chars().zip(CallStatus::ALL) {
                let expected = match cell {
                    'A' => Transition::Apply,
                    '.' => Transition::Ignore,
                    _ => Transition::Reject(InvalidTransition { from, to }),
                };
                assert_eq!(transition(from, to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn terminal_and_modifiable_sets() {
        let terminal: Vec<_> = CallStatus::ALL
            .into_iter()
            .filter(|s| is_terminal(*s))
            .collect();
        assert_eq!(terminal, [Completed, NoAnswer, Busy, Failed, Canceled]);
        let modifiable: Vec<_> = CallStatus::ALL
            .into_iter()
            .filter(|s| can_modify(*s))
            .collect();
        assert_eq!(modifiable, [Scheduled]);
    }

    #[test]
    fn rejection_names_both_statuses() {
        let Transition::Reject(err) = transition(Scheduled, Completed) else {
            panic!("expected a rejection");
        };
        assert_eq!(
            err.to_string(),
            "a call cannot go from scheduled to completed"
        );
    }

    #[test]
    fn retries_follow_the_policy() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
        let later: DateTime<Utc> = "2026-06-01T12:10:00Z".parse().unwrap();
        let policy = RetryPolicy::default();
        assert_eq!(retry_after_outcome(policy, NoAnswer, 1, now), Some(later));
        assert_eq!(retry_after_outcome(policy, Busy, 2, now), Some(later));
        assert_eq!(retry_after_outcome(policy, Busy, 3, now), None);
        for final_outcome in [Completed, Failed, Canceled, InProgress] {
            assert_eq!(retry_after_outcome(policy, final_outcome, 1, now), None);
        }
        let none = RetryPolicy {
            max_retries: 0,
            spacing_secs: 60,
        };
        assert_eq!(retry_after_outcome(none, NoAnswer, 1, now), None);
    }

    proptest! {
        #[test]
        fn callbacks_never_move_a_call_backwards(
            updates in proptest::collection::vec(0..CallStatus::ALL.len(), 0..40)
        ) {
            let mut status = Scheduled;
            for index in updates {
                let to = CallStatus::ALL[index];
                let before = status;
                if transition(status, to) == Transition::Apply {
                    status = to;
                }
                prop_assert!(rank(status) >= rank(before));
                prop_assert!(!is_terminal(before) || status == before);
            }
        }
    }
}
