//! The streaming chat request of a turn (OpenAI-compatible SSE) and the tools it calls: deltas
//! are fed back as `Llm*` inputs, tool results as `ToolResult`.

use super::{holds, post_stream, read_while};
use crate::live::session::Session;
use crate::platform::http::log_line;
use phone_agent_core::live::{chat_body, llm_input};
use phone_agent_core::providers::openai::{ChatDelta, ChatStream};
use phone_agent_core::providers::sse::SseParser;
use phone_agent_core::session::{Input, Message, ToolCall, BOOKING_TOOLS};
use phone_agent_core::usage::counter;
use serde_json::{json, Value};
use std::rc::Rc;
use worker::AbortController;

/// Starts the streaming chat request of `turn`; its deltas are fed back as `Llm*` inputs.
pub fn start_llm(session: &Rc<Session>, turn: u32, messages: &[Message], tools: &[Value]) {
    let Some(config) = session.config.as_ref() else {
        session.feed(Input::LlmFailed { turn });
        return;
    };
    let model = session
        .with_live(|live| live.setup.llm_model.clone())
        .flatten()
        .unwrap_or_else(|| config.providers.openai_model.clone());
    let body = chat_body(&model, messages, tools);
    let controller = AbortController::default();
    let signal = controller.signal();
    let id = session.with_live(|live| {
        live.next_llm_id += 1;
        let id = live.next_llm_id;
        if let Some((_, _, old)) = live.llm.replace((id, turn, controller)) {
            old.abort();
        }
        id
    });
    let Some(id) = id else { return };
    let url = format!("{}/chat/completions", config.providers.openai_base_url);
    let key = config.providers.openai_api_key.clone();
    let session = session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let outcome = match key {
            Some(key) => stream_chat(&session, id, turn, &url, &key, &body, &signal).await,
            None => Err("OPENAI_API_KEY is not set".to_owned()),
        };
        let still_ours = session
            .with_live(|live| {
                let ours = holds(&live.llm, id);
                if ours {
                    live.llm = None;
                }
                ours
            })
            .unwrap_or(false);
        if let (Err(e), true) = (outcome, still_ours) {
            log_line(
                json!({"level": "warn", "msg": "llm request failed", "turn": turn, "error": e}),
            );
            session.feed(Input::LlmFailed { turn });
        }
    });
}

fn llm_current(session: &Session, id: u64) -> bool {
    session
        .with_live(|live| holds(&live.llm, id))
        .unwrap_or(false)
}

async fn stream_chat(
    session: &Rc<Session>,
    id: u64,
    turn: u32,
    url: &str,
    key: &str,
    body: &str,
    signal: &worker::AbortSignal,
) -> Result<(), String> {
    let auth = format!("Bearer {key}");
    let reply = post_stream(
        url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Accept", "text/event-stream"),
        ],
        body.as_bytes(),
        signal,
    )
    .await?;
    let mut sse = SseParser::new();
    let mut chat = ChatStream::new();
    let mut deliver = |data: &str| -> Result<(), String> {
        for delta in chat.push_data(data).map_err(|e| e.to_string())? {
            count_usage(session, &delta);
            if !llm_current(session, id) {
                return Ok(());
            }
            if let Some(input) = llm_input(turn, delta) {
                session.feed(input);
            }
        }
        Ok(())
    };
    let complete = read_while(
        reply,
        || llm_current(session, id),
        |chunk| {
            for event in sse.push(chunk) {
                deliver(&event.data)?;
            }
            Ok(())
        },
    )
    .await?;
    if !complete {
        return Ok(());
    }
    if let Some(event) = sse.finish() {
        deliver(&event.data)?;
    }
    if !llm_current(session, id) {
        return Ok(());
    }
    for delta in chat.finish().map_err(|e| e.to_string())? {
        count_usage(session, &delta);
        if let Some(input) = llm_input(turn, delta) {
            session.feed(input);
        }
    }
    Ok(())
}

/// Runs a tool the edge implements (an agent's HTTP tool, or `schedule_callback`) and feeds
/// its result.
pub fn run_tool(session: &Rc<Session>, turn: u32, call: ToolCall) {
    let session = session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let http_tool = session
            .with_live(|live| {
                let tools = &live.setup.session.http_tools;
                tools.iter().find(|t| t.name == call.name).cloned()
            })
            .flatten();
        let content = match http_tool {
            Some(tool) => crate::live::http_tools::run(&session, &tool, &call).await,
            None => match call.name.as_str() {
                name if BOOKING_TOOLS.contains(&name) => {
                    crate::live::appointments::run(&session, &call).await
                }
                _ => crate::live::callbacks::run(&session, &call).await,
            },
        };
        session.record("tool", json!({"name": call.name, "result": content}));
        session.feed(Input::ToolResult {
            turn,
            id: call.id,
            content,
        });
    });
}

/// Adds the stream's token counts (its final `usage` chunk) to the call's usage, whether or not
/// the reply is still wanted: the tokens were billed either way.
fn count_usage(session: &Rc<Session>, delta: &ChatDelta) {
    if let ChatDelta::Usage(usage) = delta {
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        session.count_by(counter::LLM_PROMPT_TOKENS, tokens(usage.prompt_tokens));
        session.count_by(
            counter::LLM_COMPLETION_TOKENS,
            tokens(usage.completion_tokens),
        );
    }
}
