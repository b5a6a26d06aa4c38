//! The end-of-call job: what a call session still owes D1 and the tenant's endpoints once the
//! call has ended (transcript, final status, summary, analysis, the `call.*.ready` events), as
//! steps that
//! are each retried until done.
//!
//! The session writes the job into its own storage in the step that ends the call, so an
//! instance reset, a D1 outage or an LLM outage loses nothing: each attempt runs the steps that
//! are not done yet (each one idempotent at the edge: upserts, events deduplicated on their key),
//! marks the ones that succeeded, and the next attempt comes from the object's alarm with
//! exponential backoff and jitter ([`crate::delivery::backoff_at`]). A failed summary never
//! holds back the transcript: only a step's own prerequisites ([`Step::needs`]) do.

use crate::analysis::AnalysisResult;
use crate::delivery::backoff_at;
use crate::scheduling::CallStatus;
use serde::{Deserialize, Serialize};

/// Base retry delay unless `FINALIZE_RETRY_BASE_SECONDS` says otherwise.
pub const DEFAULT_RETRY_BASE_SECS: u64 = 5;

/// The longest wait between two attempts, however many failed.
pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;

/// Failed attempts after which the job raises its alert (once) and keeps retrying: with the
/// default base, about five minutes of failures.
pub const ALERT_AFTER_ATTEMPTS: u32 = 6;

/// Failed summary requests after which the call is published without a summary (the LLM is
/// an outside service: its outage must not keep the job open for good); the analysis gets as
/// many.
pub const SUMMARY_ATTEMPTS: u32 = 6;

/// How long one attempt may take before the alarm tries again (it is armed when an attempt
/// starts, so an instance that dies in the middle of one is picked up; longer than the summary
/// and analysis requests' timeouts plus the D1 writes).
pub const ATTEMPT_LEASE_MS: i64 = 60_000;

/// One piece of the job, in the order an attempt runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The transcript (and the per-turn metrics and duration) to D1.
    Transcript,
    /// The call's usage to D1, added to the tenant's day once (see `crate::usage`).
    Usage,
    /// The call's final status (and its `call.<status>` event).
    Status,
    /// `call.transcript.ready`.
    TranscriptReady,
    /// The summary from the LLM (kept in the job once generated: never asked for twice).
    Summary,
    /// The summary to the call's row.
    SummaryStored,
    /// `call.summary.ready`.
    SummaryReady,
    /// The post-call analysis from the LLM, validated (kept in the job once had).
    Analysis,
    /// The analysis to the call's row.
    AnalysisStored,
    /// `call.analysis.ready`.
    AnalysisReady,
}

impl Step {
    /// Every step, each after the ones it needs.
    pub const ALL: [Step; 10] = [
        Step::Transcript,
        Step::Usage,
        Step::Status,
        Step::TranscriptReady,
        Step::Summary,
        Step::SummaryStored,
        Step::SummaryReady,
        Step::Analysis,
        Step::AnalysisStored,
        Step::AnalysisReady,
    ];

    /// The name used in the session record and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Transcript => "transcript",
            Step::Usage => "usage",
            Step::Status => "status",
            Step::TranscriptReady => "transcript_ready",
            Step::Summary => "summary",
            Step::SummaryStored => "summary_stored",
            Step::SummaryReady => "summary_ready",
            Step::Analysis => "analysis",
            Step::AnalysisStored => "analysis_stored",
            Step::AnalysisReady => "analysis_ready",
        }
    }

    /// The steps that must be done first. Events follow the final status (their payload carries
    /// it) and what they announce; the summary needs nothing from D1; the analysis runs once the
    /// transcript it reads is stored.
    pub fn needs(self) -> &'static [Step] {
        match self {
            Step::Transcript | Step::Usage | Step::Status | Step::Summary => &[],
            Step::TranscriptReady => &[Step::Transcript, Step::Status],
            Step::SummaryStored => &[Step::Summary],
            Step::SummaryReady => &[Step::SummaryStored, Step::Status],
            Step::Analysis => &[Step::Transcript],
            Step::AnalysisStored => &[Step::Analysis],
            Step::AnalysisReady => &[Step::AnalysisStored, Step::Status],
        }
    }
}

/// Why the summary could not be had on one attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryFailure {
    /// No LLM to ask (no key, invalid configuration): retrying cannot help.
    #[error("{0}")]
    NotConfigured(String),
    /// The LLM answered with a non-2xx status.
    #[error("summary request failed: HTTP {0}")]
    Status(u16),
    /// No answer: timeout, connection failure.
    #[error("{0}")]
    Transport(String),
    /// A 2xx that was not a completion.
    #[error("{0}")]
    Unreadable(String),
}

impl SummaryFailure {
    /// The failure as the analysis reports it (the transport and configuration texts say what
    /// failed; a status needs the request named).
    pub fn analysis_error(&self) -> String {
        match self {
            SummaryFailure::Status(code) => format!("analysis request failed: HTTP {code}"),
            other => other.to_string(),
        }
    }

    /// Whether asking again may succeed: outages, timeouts, throttling and garbled answers,
    /// not a missing key or a request the LLM refuses as such (4xx).
    pub fn retryable(&self) -> bool {
        match self {
            SummaryFailure::NotConfigured(_) => false,
            SummaryFailure::Status(code) => matches!(code, 408 | 409 | 429) || *code >= 500,
            SummaryFailure::Transport(_) | SummaryFailure::Unreadable(_) => true,
        }
    }
}

/// How the job retries (`base_ms` from `FINALIZE_RETRY_BASE_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub max_ms: u64,
    pub alert_after: u32,
    pub summary_attempts: u32,
}

impl RetryPolicy {
    /// The policy for a base delay of `base_secs` (the other limits are the constants above).
    pub fn with_base_secs(base_secs: u64) -> Self {
        RetryPolicy {
            base_ms: base_secs.saturating_mul(1000),
            max_ms: MAX_RETRY_DELAY_MS,
            alert_after: ALERT_AFTER_ATTEMPTS,
            summary_attempts: SUMMARY_ATTEMPTS,
        }
    }

    /// The wait after failed attempt number `attempt` (1 = first): base × 2^(attempt − 1), at
    /// most `max_ms`.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(63);
        self.base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::with_base_secs(DEFAULT_RETRY_BASE_SECS)
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Every step is done: the job and the call's data may go.
    Finished,
    /// Try again at `at_ms`; `alert` is set once, on the attempt that reaches the alert limit.
    RetryAt { at_ms: i64, alert: bool },
}

/// The job as stored in the session's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Why the call ended (`caller_hangup`, `agent_ended`, …), as its events carry it.
    pub reason: String,
    /// The final status, decided when the call ended.
    pub status: CallStatus,
    pub ended_at_ms: i64,
    /// Steps done, in the order they succeeded.
    pub done: Vec<Step>,
    /// Attempts that left something undone.
    pub failed_attempts: u32,
    /// The summary once generated.
    pub summary: Option<String>,
    /// Why the call is published without a summary, once the job gave up on it.
    pub summary_error: Option<String>,
    pub summary_failures: u32,
    /// The alert was raised (it is raised once per job).
    pub alerted: bool,
    /// The analysis once had (`None` when the agent defines none); a job stored before the
    /// analysis existed reads as none yet.
    #[serde(default)]
    pub analysis: Option<AnalysisResult>,
    #[serde(default)]
    pub analysis_failures: u32,
    /// When the alarm runs the next attempt.
    pub next_at_ms: Option<i64>,
}

impl Job {
    /// The job of a call that ended at `ended_at_ms`, nothing done yet; its first attempt runs at
    /// once, and the alarm takes over if it does not finish within [`ATTEMPT_LEASE_MS`].
    pub fn new(reason: &str, status: CallStatus, ended_at_ms: i64) -> Self {
        Job {
            reason: reason.to_owned(),
            status,
            ended_at_ms,
            done: Vec::new(),
            failed_attempts: 0,
            summary: None,
            summary_error: None,
            summary_failures: 0,
            alerted: false,
            analysis: None,
            analysis_failures: 0,
            next_at_ms: Some(ended_at_ms.saturating_add(ATTEMPT_LEASE_MS)),
        }
    }

    /// Whether `step` is done.
    pub fn is_done(&self, step: Step) -> bool {
        self.done.contains(&step)
    }

    /// Whether `step` should run now: not done, and everything it needs is.
    pub fn ready(&self, step: Step) -> bool {
        !self.is_done(step) && step.needs().iter().all(|s| self.is_done(*s))
    }

    /// Marks `step` done (once).
    pub fn mark_done(&mut self, step: Step) {
        if !self.is_done(step) {
            self.done.push(step);
        }
    }

    /// Whether every step is done.
    pub fn finished(&self) -> bool {
        Step::ALL.iter().all(|s| self.is_done(*s))
    }

    /// The LLM wrote the summary: kept, the step done.
    pub fn summary_written(&mut self, text: String) {
        self.summary = Some(text);
        self.mark_done(Step::Summary);
    }

    /// The summary request failed. A failure that retrying cannot mend, or the last one
    /// allowed, closes the step without a summary (the call is published with the error, as
    /// `call.summary.ready` always said); otherwise the step stays open. Whether it gave up.
    pub fn summary_failed(&mut self, failure: &SummaryFailure, policy: &RetryPolicy) -> bool {
        self.summary_failures = self.summary_failures.saturating_add(1);
        let give_up = !failure.retryable() || self.summary_failures >= policy.summary_attempts;
        if give_up {
            self.summary_error = Some(failure.to_string());
            self.mark_done(Step::Summary);
        }
        give_up
    }

    /// The analysis is had (`None`: the agent defines none): kept, the step done.
    pub fn analysis_done(&mut self, result: Option<AnalysisResult>) {
        self.analysis = result;
        self.mark_done(Step::Analysis);
    }

    /// The analysis request failed: like the summary, given up at once when retrying cannot
    /// help or after the last attempt allowed, then recorded as `failed` with the error (and
    /// announced as such). Whether it gave up.
    pub fn analysis_failed(&mut self, failure: &SummaryFailure, policy: &RetryPolicy) -> bool {
        self.analysis_failures = self.analysis_failures.saturating_add(1);
        let give_up = !failure.retryable() || self.analysis_failures >= policy.summary_attempts;
        if give_up {
            self.analysis_done(Some(AnalysisResult::failed(failure.analysis_error())));
        }
        give_up
    }

    /// Ends an attempt that finished at `now_ms`: done, or the next attempt's time (exponential
    /// backoff from the number of failed attempts, spread by `jitter`, uniform in [0, 1)).
    pub fn after_attempt(&mut self, now_ms: i64, jitter: f64, policy: &RetryPolicy) -> Next {
        if self.finished() {
            self.next_at_ms = None;
            return Next::Finished;
        }
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        let step = i64::try_from(policy.delay_ms(self.failed_attempts)).unwrap_or(i64::MAX);
        let at_ms = backoff_at(now_ms, step, now_ms, jitter);
        let alert = !self.alerted && self.failed_attempts >= policy.alert_after;
        self.alerted |= alert;
        self.next_at_ms = Some(at_ms);
        Next::RetryAt { at_ms, alert }
    }

    /// Starts an attempt at `now_ms`: should the instance die during it, the alarm tries again
    /// after the lease.
    pub fn start_attempt(&mut self, now_ms: i64) {
        self.next_at_ms = Some(now_ms.saturating_add(ATTEMPT_LEASE_MS));
    }
}

/// The session's one alarm: while the call is live, the earliest of its timers (`live`); once
/// it has ended those are moot and only the job's next attempt (`job`) counts.
pub fn session_alarm(ended: bool, live: Option<u64>, job: Option<i64>) -> Option<u64> {
    if ended {
        job.map(|at| u64::try_from(at).unwrap_or_default())
    } else {
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: i64 = 1_700_000_000_000;

    fn policy() -> RetryPolicy {
        RetryPolicy::with_base_secs(1)
    }

    #[test]
    fn a_new_job_runs_the_independent_steps_first_and_the_events_after_what_they_announce() {
        let job = Job::new("caller_hangup", CallStatus::Completed, END);
        let ready: Vec<Step> = Step::ALL.into_iter().filter(|s| job.ready(*s)).collect();
        assert_eq!(
            ready,
            [Step::Transcript, Step::Usage, Step::Status, Step::Summary]
        );
        assert_eq!(job.next_at_ms, Some(END + ATTEMPT_LEASE_MS));
        // Every prerequisite comes earlier in ALL, so one pass in order runs a whole chain.
        for (i, step) in Step::ALL.iter().enumerate() {
            for need in step.needs() {
                assert!(
                    Step::ALL[..i].contains(need),
                    "{step:?} needs {need:?} first"
                );
            }
        }
    }

    #[test]
    fn a_failed_transcript_holds_back_its_event_only() {
        let mut job = Job::new("agent_ended", CallStatus::Completed, END);
        job.mark_done(Step::Status);
        job.mark_done(Step::Usage);
        job.summary_written("Booked a table.".into());
        job.mark_done(Step::SummaryStored);
        assert!(job.ready(Step::SummaryReady));
        assert!(!job.ready(Step::TranscriptReady));
        job.mark_done(Step::SummaryReady);
        assert!(job.ready(Step::Transcript));
        assert!(!job.finished());
        job.mark_done(Step::Transcript);
        job.mark_done(Step::Transcript);
        assert!(job.ready(Step::TranscriptReady));
        job.mark_done(Step::TranscriptReady);
        assert!(!job.finished(), "the analysis is owed");
        job.analysis_done(None);
        job.mark_done(Step::AnalysisStored);
        job.mark_done(Step::AnalysisReady);
        assert!(job.finished());
        assert_eq!(job.done.len(), Step::ALL.len());
    }

    #[test]
    fn a_failed_summary_holds_back_neither_the_transcript_nor_the_status() {
        let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
        assert!(!job.summary_failed(&SummaryFailure::Status(503), &policy()));
        assert!(job.ready(Step::Transcript) && job.ready(Step::Status));
        job.mark_done(Step::Transcript);
        job.mark_done(Step::Status);
        assert!(job.ready(Step::TranscriptReady));
        assert!(job.ready(Step::Summary) && !job.ready(Step::SummaryStored));
    }

    #[test]
    fn the_summary_is_retried_until_the_limit_then_published_with_its_error() {
        let policy = policy();
        let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
        for _ in 1..policy.summary_attempts {
            assert!(!job.summary_failed(&SummaryFailure::Status(500), &policy));
            assert!(!job.is_done(Step::Summary));
        }
        assert!(job.summary_failed(&SummaryFailure::Status(500), &policy));
        assert!(job.is_done(Step::Summary));
        assert_eq!(job.summary, None);
        assert_eq!(
            job.summary_error.as_deref(),
            Some("summary request failed: HTTP 500")
        );
        assert!(job.ready(Step::SummaryStored));
    }

    #[test]
    fn a_summary_that_cannot_come_is_given_up_at_once() {
        for failure in [
            SummaryFailure::NotConfigured("OPENAI_API_KEY is not set".into()),
            SummaryFailure::Status(400),
            SummaryFailure::Status(401),
        ] {
            let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
            assert!(job.summary_failed(&failure, &policy()), "{failure:?}");
            assert_eq!(job.summary_error, Some(failure.to_string()));
        }
        for failure in [
            SummaryFailure::Status(429),
            SummaryFailure::Status(408),
            SummaryFailure::Status(502),
            SummaryFailure::Transport("timed out".into()),
            SummaryFailure::Unreadable("no choices".into()),
        ] {
            assert!(failure.retryable(), "{failure:?}");
        }
    }

    #[test]
    fn the_analysis_waits_for_the_transcript_and_is_retried_like_the_summary() {
        let policy = policy();
        let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
        assert!(!job.ready(Step::Analysis));
        job.mark_done(Step::Transcript);
        assert!(job.ready(Step::Analysis));
        for _ in 1..policy.summary_attempts {
            assert!(!job.analysis_failed(&SummaryFailure::Status(500), &policy));
            assert!(!job.is_done(Step::Analysis));
        }
        assert!(job.analysis_failed(&SummaryFailure::Status(500), &policy));
        let result = job.analysis.clone().expect("recorded as failed");
        assert_eq!(result.status, crate::analysis::AnalysisStatus::Failed);
        assert_eq!(result.errors, ["analysis request failed: HTTP 500"]);
        assert!(job.ready(Step::AnalysisStored) && !job.ready(Step::AnalysisReady));
        job.mark_done(Step::Status);
        job.mark_done(Step::AnalysisStored);
        assert!(job.ready(Step::AnalysisReady));
        // A refusal is final at once, and the summary's count is its own.
        let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
        assert!(job.analysis_failed(&SummaryFailure::Status(400), &policy));
        assert_eq!(job.summary_failures, 0);
        // A job stored before the analysis existed still reads, with the analysis owed.
        let mut old = serde_json::to_value(Job::new("x", CallStatus::Completed, END)).unwrap();
        let map = old.as_object_mut().unwrap();
        map.remove("analysis");
        map.remove("analysis_failures");
        let old: Job = serde_json::from_value(old).unwrap();
        assert_eq!(old.analysis, None);
        assert!(!old.is_done(Step::Analysis));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let policy = policy();
        assert_eq!(policy.delay_ms(1), 1000);
        assert_eq!(policy.delay_ms(2), 2000);
        assert_eq!(policy.delay_ms(5), 16_000);
        assert_eq!(policy.delay_ms(13), MAX_RETRY_DELAY_MS);
        assert_eq!(policy.delay_ms(u32::MAX), MAX_RETRY_DELAY_MS);
        assert_eq!(RetryPolicy::default().delay_ms(1), 5000);
        assert_eq!(
            RetryPolicy::with_base_secs(u64::MAX).delay_ms(3),
            MAX_RETRY_DELAY_MS
        );
    }

    #[test]
    fn each_failed_attempt_schedules_the_next_within_the_jitter_band() {
        let policy = policy();
        let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
        let mut now = END;
        for attempt in 1..=4u32 {
            let next = job.after_attempt(now, 0.5, &policy);
            let step = i64::try_from(policy.delay_ms(attempt)).unwrap();
            assert_eq!(
                next,
                Next::RetryAt {
                    at_ms: now + step,
                    alert: false
                }
            );
            assert_eq!(job.next_at_ms, Some(now + step));
            for jitter in [0.0, 0.999] {
                let mut copy = job.clone();
                copy.failed_attempts -= 1;
                let Next::RetryAt { at_ms, .. } = copy.after_attempt(now, jitter, &policy) else {
                    panic!("expected a retry");
                };
                assert!(at_ms >= now + step * 8 / 10 && at_ms <= now + step * 12 / 10);
            }
            now += step;
        }
        assert_eq!(job.failed_attempts, 4);
    }

    #[test]
    fn the_alert_is_raised_once_at_the_limit_and_the_job_keeps_retrying() {
        let policy = policy();
        let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
        let alerts: Vec<bool> = (0..policy.alert_after + 3)
            .map(|_| match job.after_attempt(END, 0.5, &policy) {
                Next::RetryAt { alert, .. } => alert,
                Next::Finished => panic!("nothing is done"),
            })
            .collect();
        let raised: Vec<usize> = alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| **a)
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(raised, [policy.alert_after as usize]);
        assert!(job.alerted);
    }

    #[test]
    fn a_finished_job_needs_no_alarm_and_counts_no_failure() {
        let mut job = Job::new("caller_hangup", CallStatus::Failed, END);
        for step in Step::ALL {
            job.mark_done(step);
        }
        assert_eq!(job.after_attempt(END, 0.5, &policy()), Next::Finished);
        assert_eq!(job.next_at_ms, None);
        assert_eq!(job.failed_attempts, 0);
    }

    #[test]
    fn an_attempt_in_progress_holds_the_lease() {
        let mut job = Job::new("caller_hangup", CallStatus::Completed, END);
        job.start_attempt(END + 5_000);
        assert_eq!(job.next_at_ms, Some(END + 5_000 + ATTEMPT_LEASE_MS));
    }

    #[test]
    fn the_job_survives_storage() {
        let mut job = Job::new("stream_lost", CallStatus::Failed, END);
        job.mark_done(Step::Transcript);
        job.summary_written("Nothing was said on this call.".into());
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains("\"done\":[\"transcript\",\"summary\"]"));
        assert!(text.contains("\"status\":\"failed\""));
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    }

    #[test]
    fn the_alarm_follows_the_call_then_the_job() {
        assert_eq!(session_alarm(false, Some(10), Some(5)), Some(10));
        assert_eq!(session_alarm(false, None, Some(5)), None);
        assert_eq!(session_alarm(true, Some(10), Some(5)), Some(5));
        assert_eq!(session_alarm(true, Some(10), None), None);
    }
}
