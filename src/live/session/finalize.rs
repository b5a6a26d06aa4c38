//! End-of-call work: the transcript, the summary, and the call's final status in D1.

use super::{EndReason, Session};
use crate::pipeline::call_status::{self, Change};
use crate::platform::http::{log_line, now_ms, ApiError};
use crate::platform::outbound;
use crate::store::calls;
use crate::store::tenant::Tenant;
use crate::store::transcripts;
use phone_agent_core::ids::TenantId;
use phone_agent_core::limits::REPLY_BODY_LIMIT;
use phone_agent_core::live::{metrics_summary, transcript};
use phone_agent_core::media::access::lost_stream_status;
use phone_agent_core::providers::openai::{parse_completion_text, summary_request};
use phone_agent_core::scheduling::CallStatus;
use serde_json::json;
use std::time::Duration;
use worker::Method;

/// Post-call summary request timeout.
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(20);

impl Session {
    /// After the call: transcript and metrics to D1, status completed (a lost stream: completed
    /// if the caller was heard, else failed), the summary from the
    /// LLM, and `call.transcript.ready` / `call.summary.ready` through the forwarding pipeline.
    pub(super) async fn finalize(&self, reason: &EndReason) {
        let Some(info) = self.info() else { return };
        let turns = self.turns();
        let result = async {
            let db = self.env.d1("DB")?;
            let now = now_ms();
            let t = transcript(&turns);
            let tenant = Tenant::on(&db, TenantId::from(info.tenant_id.as_str()));
            transcripts::save(&tenant, &info.call_id, &t.turns, &t.text, now).await?;
            let duration = info
                .started_at_ms
                .map(|started| (now - started).max(0) / 1000);
            calls::set_metrics(&db, &info.call_id, &metrics_summary(&turns), duration, now).await?;
            let to = match reason {
                EndReason::StreamLost => lost_stream_status(&turns),
                _ => CallStatus::Completed,
            };
            let change = Change {
                to,
                source: "session",
                detail: json!({"reason": reason.as_str()}),
                attempt: None,
                due_by: None,
                emit: true,
            };
            call_status::apply(&self.env, &db, &info.call_id, &change, now).await?;
            call_status::emit(
                &self.env,
                &db,
                &info.call_id,
                "call.transcript.ready",
                &format!("{}:transcript.ready", info.call_id),
                json!({"transcript": {"text": t.text, "turns": t.turns}, "reason": reason.as_str()}),
                now,
            )
            .await?;
            let summary = self.summarize(&t.lines).await;
            let (summary_text, summary_error) = match summary {
                Ok(text) => (Some(text), None),
                Err(e) => (None, Some(e)),
            };
            if let Some(text) = &summary_text {
                calls::set_summary(&db, &info.call_id, text, now_ms()).await?;
            }
            call_status::emit(
                &self.env,
                &db,
                &info.call_id,
                "call.summary.ready",
                &format!("{}:summary.ready", info.call_id),
                json!({"summary": summary_text, "error": summary_error}),
                now_ms(),
            )
            .await?;
            Ok::<_, ApiError>(())
        }
        .await;
        match result {
            Ok(()) => self.record("finalized", json!({})),
            Err(e) => {
                log_line(
                    json!({"level": "error", "msg": "finalize call", "call_id": info.call_id,
                    "error": e.message}),
                );
                self.record("finalize_failed", json!({"error": e.message}));
            }
        }
    }

    pub(super) async fn summarize(
        &self,
        lines: &[(phone_agent_core::providers::openai::Speaker, String)],
    ) -> std::result::Result<String, String> {
        if lines.is_empty() {
            return Ok("Nothing was said on this call.".to_owned());
        }
        let config = self.config.as_ref().ok_or("configuration is invalid")?;
        let key = config
            .providers
            .openai_api_key
            .as_deref()
            .ok_or("OPENAI_API_KEY is not set")?;
        let model = self
            .with_live(|live| live.setup.llm_model.clone())
            .flatten()
            .unwrap_or_else(|| config.providers.openai_model.clone());
        let body = summary_request(&model, lines).to_string();
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
        .map_err(|e| e.to_string())?;
        if !(200..300).contains(&reply.status) {
            return Err(format!("summary request failed: HTTP {}", reply.status));
        }
        parse_completion_text(&reply.body).map_err(|e| e.to_string())
    }
}
