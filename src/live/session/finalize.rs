//! End-of-call work as a durable job (the core's `finalize::Job`): the transcript, the call's
//! usage, the final status, the summary, the analysis and the `call.*.ready` events, each step retried from the object's alarm
//! until it is done, then the call's data leaves the object's storage.

use super::{CallInfo, EndReason, Session};
use crate::pipeline::call_status::{self, Change};
use crate::platform::http::{log_line, now_ms, random_unit, ApiError};
use crate::platform::outbound;
use crate::store::call_events::{self, Event};
use crate::store::calls;
use crate::store::tenant::Tenant;
use crate::store::transcripts;
use crate::store::usage;
use phone_agent_core::analysis::AnalysisResult;
use phone_agent_core::finalize::{Job, Next, RetryPolicy, Step, SummaryFailure};
use phone_agent_core::ids::{CallId, TenantId};
use phone_agent_core::limits::REPLY_BODY_LIMIT;
use phone_agent_core::live::{metrics_summary, transcript, Transcript};
use phone_agent_core::media::access::lost_stream_status;
use phone_agent_core::providers::openai::{
    analysis_request, parse_completion_text, summary_request, Speaker,
};
use phone_agent_core::scheduling::CallStatus;
use phone_agent_core::session::Turn;
use phone_agent_core::usage::{day_of, CallUsage};
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::Duration;
use worker::Method;

/// Post-call summary and analysis request timeout.
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(20);

/// The blob holding the job while it is open.
pub(super) const JOB: &str = "finalize";

/// The job's in-memory side: when the alarm should run the next attempt, and whether one runs.
#[derive(Default)]
pub struct FinalizeRun {
    pub next_at_ms: Option<i64>,
    pub running: bool,
}

impl Session {
    /// Writes the end-of-call job, in the step that ends the call (so the two commit together),
    /// and arms the alarm as the job's safety net. The final status is decided here: a lost
    /// stream is completed if the caller was heard, else failed.
    pub(super) fn open_finalize_job(self: &Rc<Self>, reason: &EndReason) {
        let status = match reason {
            EndReason::StreamLost => lost_stream_status(&self.turns()),
            _ => CallStatus::Completed,
        };
        self.save_job(&Job::new(reason.as_str(), status, now_ms()));
    }

    /// One attempt at the job: every step that is not done and whose prerequisites are, in
    /// order; then either the job is finished (the call's data is cleared) or the failure is
    /// recorded and the alarm set for the next attempt. At most one attempt runs at a time.
    pub(super) async fn finalize(self: &Rc<Self>) {
        let claimed = self.with_live(|live| !std::mem::replace(&mut live.finalize.running, true));
        if claimed != Some(true) {
            // No call here, or an attempt is running (it sets the alarm when it ends).
            return;
        }
        let (Some(mut job), Some(info)) = (self.blob::<Job>(JOB), self.info()) else {
            self.with_live(|live| live.finalize = FinalizeRun::default());
            return;
        };
        let policy = self
            .config
            .as_ref()
            .map(|c| RetryPolicy::with_base_secs(c.finalize_retry_base_secs))
            .unwrap_or_default();
        job.start_attempt(now_ms());
        self.save_job(&job);
        let turns = self.turns();
        let t = transcript(&turns);
        let mut failed = Vec::new();
        for step in Step::ALL {
            if !job.ready(step) {
                continue;
            }
            let result = if step == Step::Summary {
                match self.summarize(&t.lines).await {
                    Ok(text) => {
                        job.summary_written(text);
                        Ok(())
                    }
                    Err(failure) => {
                        let gave_up = job.summary_failed(&failure, &policy);
                        if gave_up {
                            self.record(
                                "summary_failed",
                                json!({"error": failure.to_string(), "attempts": job.summary_failures}),
                            );
                            Ok(())
                        } else {
                            Err(failure.to_string())
                        }
                    }
                }
            } else if step == Step::Analysis {
                match self.analyse(&t.lines).await {
                    Ok(result) => {
                        if let Some(r) = result.as_ref().filter(|r| !r.errors.is_empty()) {
                            self.record("analysis_invalid", json!({"errors": r.errors}));
                        }
                        job.analysis_done(result);
                        Ok(())
                    }
                    Err(failure) => {
                        if job.analysis_failed(&failure, &policy) {
                            self.record(
                                "analysis_failed",
                                json!({"error": failure.analysis_error(),
                                    "attempts": job.analysis_failures}),
                            );
                            Ok(())
                        } else {
                            Err(failure.analysis_error())
                        }
                    }
                }
            } else {
                self.run_step(step, &job, &info, &turns, &t)
                    .await
                    .map(|()| job.mark_done(step))
                    .map_err(|e| e.message)
            };
            match result {
                // Progress is kept at once: a reset before the attempt ends repeats nothing.
                Ok(()) => self.put_blob(JOB, &job),
                Err(error) => failed.push(json!({"step": step.as_str(), "error": error})),
            }
        }
        match job.after_attempt(now_ms(), random_unit(), &policy) {
            Next::Finished => {
                self.record("finalized", json!({"failed_attempts": job.failed_attempts}));
                self.clear_call_data();
                self.with_live(|live| {
                    live.finalize = FinalizeRun::default();
                    live.armed_ms = None;
                });
                if let Err(e) = self.state.storage().delete_alarm().await {
                    log_line(
                        json!({"level": "warn", "msg": "delete alarm", "error": e.to_string()}),
                    );
                }
            }
            Next::RetryAt { at_ms, alert } => {
                let detail = json!({"attempt": job.failed_attempts, "failed": failed,
                    "next_attempt_at": at_ms});
                log_line(
                    json!({"level": "error", "msg": "finalize call", "call_id": info.call_id,
                    "detail": detail}),
                );
                self.record("finalize_failed", detail.clone());
                self.note_on_call(&info, "finalize_failed", &detail).await;
                if alert {
                    // Still retrying, but someone should look: D1 or the LLM has been failing
                    // this call's finalization for a while.
                    let detail = json!({"attempts": job.failed_attempts, "failed": failed,
                        "pending": Step::ALL.iter().filter(|s| !job.is_done(**s))
                            .map(|s| s.as_str()).collect::<Vec<_>>()});
                    log_line(
                        json!({"level": "error", "msg": "finalization stuck", "alert": true,
                        "call_id": info.call_id, "detail": detail}),
                    );
                    self.record("finalize_alert", detail.clone());
                    self.note_on_call(&info, "finalize_alert", &detail).await;
                }
                self.with_live(|live| live.finalize.running = false);
                self.save_job(&job);
            }
        }
    }

    /// Runs one D1 or event step; each is idempotent (upserts, a compare-and-set status change,
    /// events deduplicated on their key), so repeating a step that succeeded changes nothing.
    async fn run_step(
        &self,
        step: Step,
        job: &Job,
        info: &CallInfo,
        turns: &[Turn],
        t: &Transcript,
    ) -> Result<(), ApiError> {
        let db = self.env.d1("DB")?;
        let call_id = info.call_id.as_str();
        let now = now_ms();
        match step {
            Step::Transcript => {
                let tenant = Tenant::on(&db, TenantId::from(info.tenant_id.as_str()));
                transcripts::save(&tenant, call_id, &t.turns, &t.text, job.ended_at_ms).await?;
                let duration = info
                    .started_at_ms
                    .map(|started| (job.ended_at_ms - started).max(0) / 1000);
                calls::set_metrics(&db, call_id, &metrics_summary(turns), duration, now).await?;
            }
            Step::Usage => {
                let tenant = Tenant::on(&db, TenantId::from(info.tenant_id.as_str()));
                let duration = info
                    .started_at_ms
                    .map_or(0, |started| (job.ended_at_ms - started).max(0) / 1000);
                let used = CallUsage::from_counters(duration, |name| self.counter_value(name));
                usage::record(&tenant, call_id, &day_of(job.ended_at_ms), &used, now).await?;
            }
            Step::Status => {
                let change = Change {
                    to: job.status,
                    source: "session",
                    detail: json!({"reason": job.reason}),
                    attempt: None,
                    due_by: None,
                    emit: true,
                };
                call_status::apply(&self.env, &db, call_id, &change, now).await?;
            }
            Step::TranscriptReady => {
                let data = json!({"transcript": {"text": t.text, "turns": t.turns},
                    "reason": job.reason});
                let key = format!("{call_id}:transcript.ready");
                call_status::emit(
                    &self.env,
                    &db,
                    call_id,
                    "call.transcript.ready",
                    &key,
                    data,
                    now,
                )
                .await?;
            }
            Step::SummaryStored => {
                if let Some(text) = &job.summary {
                    calls::set_summary(&db, call_id, text, now).await?;
                }
            }
            Step::SummaryReady => {
                let data = json!({"summary": job.summary, "error": job.summary_error});
                let key = format!("{call_id}:summary.ready");
                call_status::emit(
                    &self.env,
                    &db,
                    call_id,
                    "call.summary.ready",
                    &key,
                    data,
                    now,
                )
                .await?;
            }
            Step::AnalysisStored => {
                if let Some(result) = &job.analysis {
                    let value = serde_json::to_value(result).map_err(ApiError::internal)?;
                    calls::set_analysis(&db, call_id, result.status, &value, now).await?;
                }
            }
            Step::AnalysisReady => {
                if let Some(result) = &job.analysis {
                    let analysis = serde_json::to_value(result).map_err(ApiError::internal)?;
                    let key = format!("{call_id}:analysis.ready");
                    call_status::emit(
                        &self.env,
                        &db,
                        call_id,
                        "call.analysis.ready",
                        &key,
                        json!({ "analysis": analysis }),
                        now,
                    )
                    .await?;
                }
            }
            Step::Summary | Step::Analysis => {}
        }
        Ok(())
    }

    /// Stores the job and sets the alarm to its next attempt.
    fn save_job(self: &Rc<Self>, job: &Job) {
        self.put_blob(JOB, job);
        self.with_live(|live| live.finalize.next_at_ms = job.next_at_ms);
        self.rearm();
    }

    /// Adds an entry to the call's history (`GET /api/v1/calls/{id}`), where an operator looks
    /// first. D1 may be what is failing: the session record already has it, so a failure here
    /// is only logged.
    async fn note_on_call(&self, info: &CallInfo, kind: &str, detail: &Value) {
        let result = async {
            let db = self.env.d1("DB")?;
            let call_id = CallId::from(info.call_id.as_str());
            call_events::record(&db, &Event::note(&call_id, kind, "session", detail)).await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(e) = result {
            log_line(
                json!({"level": "warn", "msg": "call history entry", "kind": kind,
                "call_id": info.call_id, "error": e.message}),
            );
        }
    }

    pub(super) async fn summarize(
        &self,
        lines: &[(Speaker, String)],
    ) -> std::result::Result<String, SummaryFailure> {
        if lines.is_empty() {
            return Ok("Nothing was said on this call.".to_owned());
        }
        self.complete(|model| summary_request(model, lines)).await
    }

    /// The call's analysis, if its agent defines one: the model's answer to the strict schema,
    /// checked against the definition by the core (`ok` or `invalid` with the reasons).
    async fn analyse(
        &self,
        lines: &[(Speaker, String)],
    ) -> std::result::Result<Option<AnalysisResult>, SummaryFailure> {
        let Some(spec) = self.with_live(|live| live.setup.analysis.clone()).flatten() else {
            return Ok(None);
        };
        let text = self
            .complete(|model| analysis_request(model, lines, &spec))
            .await?;
        Ok(Some(spec.validate(&text)))
    }

    /// One non-streaming chat completion (the agent's model, else `OPENAI_MODEL`) of the body
    /// `request` builds: the reply text, or why there is none.
    async fn complete(
        &self,
        request: impl FnOnce(&str) -> Value,
    ) -> std::result::Result<String, SummaryFailure> {
        let not_configured = |what: &str| SummaryFailure::NotConfigured(what.to_owned());
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| not_configured("configuration is invalid"))?;
        let key = config
            .providers
            .openai_api_key
            .as_deref()
            .ok_or_else(|| not_configured("OPENAI_API_KEY is not set"))?;
        let model = self
            .with_live(|live| live.setup.llm_model.clone())
            .flatten()
            .unwrap_or_else(|| config.providers.openai_model.clone());
        let body = request(&model).to_string();
        let reply = outbound::send(
            Method::Post,
            &format!("{}/chat/completions", config.providers.openai_base_url),
            &[
                ("Authorization", &format!("Bearer {key}")),
                ("Content-Type", "application/json"),
            ],
            Some(body.as_bytes()),
            SUMMARY_TIMEOUT,
            REPLY_BODY_LIMIT,
        )
        .await
        .map_err(|e| SummaryFailure::Transport(e.to_string()))?;
        if !(200..300).contains(&reply.status) {
            return Err(SummaryFailure::Status(reply.status));
        }
        parse_completion_text(&reply.body).map_err(|e| SummaryFailure::Unreadable(e.to_string()))
    }
}
