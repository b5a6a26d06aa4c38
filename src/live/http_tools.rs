//! The agent's HTTP tools: the model's call becomes a POST to the operator's server, signed
//! with Standard Webhooks like endpoint deliveries (the agent's `tools_secret`), with the
//! tool's timeout and no redirects; the server's answer (or the error) is what the model reads.
//!
//! Decisions are the core's (`phone_agent_core::http_tools`): the arguments are checked against
//! the schema again here, the URL is checked again at call time (a stored URL may predate a
//! rule, and `ALLOW_PRIVATE_TARGETS` may have changed), and the answer is cut at 16 KB.

use crate::live::session::Session;
use crate::platform::http::{log_line, now_ms, secret_bytes};
use crate::platform::outbound::{self, Failure};
use crate::store::agents;
use crate::store::tenant::Tenant;
use phone_agent_core::http_tools::{
    check_arguments, request_body, tool_result, HttpTool, Outcome, MAX_RESPONSE_BYTES,
};
use phone_agent_core::ids::TenantId;
use phone_agent_core::session::ToolCall;
use phone_agent_core::targets::check_tool_target;
use phone_agent_core::webhooks::signatures::sign_standard;
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;
use worker::Method;

/// Runs `tool` for the model's `call`; the returned text is what the model reads.
pub async fn run(session: &Rc<Session>, tool: &HttpTool, call: &ToolCall) -> String {
    let started = now_ms();
    let outcome = call_server(session, tool, call).await;
    let status = match &outcome {
        Outcome::Answered { status, .. } => json!(status),
        Outcome::TimedOut { .. } => json!("timeout"),
        Outcome::Failed(_) => json!("failed"),
        Outcome::Refused(_) => json!("refused"),
        Outcome::BadArguments(_) => json!("bad_arguments"),
    };
    let call_id = session.info().map(|i| i.call_id);
    log_line(
        json!({"level": "info", "msg": "http tool", "tool": tool.name,
        "call_id": call_id, "status": status, "latency_ms": now_ms() - started}),
    );
    tool_result(&outcome)
}

async fn call_server(session: &Rc<Session>, tool: &HttpTool, call: &ToolCall) -> Outcome {
    let arguments = match check_arguments(&tool.parameters, &call.arguments) {
        Ok(arguments) => arguments,
        Err(e) => return Outcome::BadArguments(e),
    };
    let allow_loopback = session
        .config
        .as_ref()
        .is_some_and(|c| c.allow_private_targets);
    if let Err(e) = check_tool_target(&tool.url, allow_loopback) {
        session.record(
            "http_tool_refused",
            json!({"tool": tool.name, "error": e.to_string()}),
        );
        return Outcome::Refused(e);
    }
    let Some(info) = session.info() else {
        return Outcome::Failed("the call is not connected".into());
    };
    let agent = async {
        let db = session.env.d1("DB").map_err(|e| e.to_string())?;
        let tenant = Tenant::new(db, TenantId::from(info.tenant_id.as_str()));
        agents::tools_agent_of(&tenant, &info.call_id)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let agent = match agent {
        Ok(Some(agent)) => agent,
        Ok(None) => return Outcome::Failed("the call has no agent".into()),
        Err(e) => return Outcome::Failed(e),
    };
    let Some(secret) = agent.tools_secret else {
        return Outcome::Failed("the agent has no tools secret yet (rotate it to make one)".into());
    };
    // The caller is whoever is not our number on this call.
    let caller = if info.direction == "inbound" {
        info.from_number.clone()
    } else {
        Some(info.to_number.clone())
    };
    let body = request_body(
        &tool.name,
        &arguments,
        &info.call_id,
        caller.as_deref(),
        agent.agent_id.as_ref().map(|a| a.as_str()),
    );
    let msg_id = match secret_bytes::<12>() {
        Ok(bytes) => format!(
            "tool_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Err(e) => return Outcome::Failed(e.message),
    };
    let timestamp = now_ms().div_euclid(1000);
    let signature = match sign_standard(&[secret.as_str()], &msg_id, timestamp, body.as_bytes()) {
        Ok(signature) => signature,
        Err(e) => return Outcome::Failed(format!("cannot sign: {e}")),
    };
    let timestamp = timestamp.to_string();
    let reply = outbound::send(
        Method::Post,
        &tool.url,
        &[
            ("content-type", "application/json"),
            (
                "user-agent",
                concat!("phone-agent/", env!("CARGO_PKG_VERSION")),
            ),
            ("webhook-id", &msg_id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
        Some(body.as_bytes()),
        Duration::from_millis(tool.timeout_ms),
        // One byte past the cap tells the core the answer was longer.
        MAX_RESPONSE_BYTES + 1,
    )
    .await;
    match reply {
        Ok(reply) => Outcome::Answered {
            status: reply.status,
            body: reply.body,
        },
        Err(Failure::Timeout) => Outcome::TimedOut {
            after_ms: tool.timeout_ms,
        },
        Err(e @ Failure::Network(_)) => Outcome::Failed(e.to_string()),
    }
}
