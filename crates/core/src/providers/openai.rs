//! OpenAI-compatible Chat Completions: the streaming accumulator and the post-call summary.
//!
//! The live request body is built from the session's history (`live::chat_body`), the tools it
//! offers and what their calls mean are in `session::tools`, and sentences for TTS are cut in
//! `session::text`.

use crate::session::ToolCall;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// Who spoke a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The person on the phone.
    Caller,
    /// The AI agent.
    Agent,
}

/// The body of a non-streaming request for a short post-call summary of `transcript`.
pub fn summary_request(model: &str, transcript: &[(Speaker, String)]) -> Value {
    json!({
        "model": model,
        "stream": false,
        "messages": [
            {"role": "system", "content": "You summarise phone calls between a caller and an AI \
              agent. In 2 to 4 plain sentences, say who called, what they wanted, what was agreed, \
              and any follow-up. Do not invent details."},
            {"role": "user", "content": transcript_text(transcript)},
        ],
    })
}

/// The transcript as the post-call requests show it: one `Caller:` / `Agent:` line per turn.
fn transcript_text(transcript: &[(Speaker, String)]) -> String {
    let lines: Vec<String> = transcript
        .iter()
        .map(|(speaker, text)| match speaker {
            Speaker::Caller => format!("Caller: {text}"),
            Speaker::Agent => format!("Agent: {text}"),
        })
        .collect();
    lines.join("\n")
}

/// The body of a non-streaming request for the post-call analysis of `transcript`: the answer
/// must follow the strict JSON schema built from `spec` (structured outputs).
pub fn analysis_request(
    model: &str,
    transcript: &[(Speaker, String)],
    spec: &crate::analysis::AnalysisSpec,
) -> Value {
    json!({
        "model": model,
        "stream": false,
        "messages": [
            {"role": "system", "content": "You analyse phone calls between a caller and an AI \
              agent. Fill in every field of the response schema from the transcript only, as \
              each field's description asks; use null for an optional field the call does not \
              answer. Do not invent details."},
            {"role": "user", "content": transcript_text(transcript)},
        ],
        "response_format": spec.response_format(),
    })
}

/// Extracts the reply text from a non-streaming completion response body.
pub fn parse_completion_text(body: &[u8]) -> Result<String, LlmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| LlmError::Malformed(e.to_string()))?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(upstream_error(error));
    }
    let text = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if text.is_empty() {
        return Err(LlmError::NoContent);
    }
    Ok(text.to_owned())
}

/// Why an LLM response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LlmError {
    /// A chunk or body is not the JSON shape the API documents.
    #[error("malformed LLM response: {0}")]
    Malformed(String),
    /// The server sent an error object.
    #[error("LLM error{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Upstream {
        message: String,
        code: Option<String>,
    },
    /// The stream ended before the model finished its reply.
    #[error("LLM stream ended before a finish reason")]
    Truncated,
    /// A tool call finished without a function name.
    #[error("LLM tool call {index} has no name")]
    ToolCallWithoutName { index: u32 },
    /// A completion response carries no text.
    #[error("LLM completion has no text")]
    NoContent,
}

fn upstream_error(error: &Value) -> LlmError {
    let message = match error {
        Value::String(s) => s.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| other.to_string(), str::to_owned),
    };
    let code = match error.get("code").or_else(|| error.get("type")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    LlmError::Upstream { message, code }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// A natural end of the reply.
    Stop,
    /// The token limit cut the reply short.
    Length,
    /// The model wants its tool calls run, then to be called again.
    ToolCalls,
    /// The reply was withheld by a content filter.
    ContentFilter,
    /// A reason this client does not know.
    Other(String),
}

impl FinishReason {
    fn parse(reason: &str) -> Self {
        match reason {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_owned()),
        }
    }
}

/// Token counts reported on the final chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// What one streamed chunk contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatDelta {
    /// More reply text.
    Text(String),
    /// A tool call, emitted once its arguments are complete (at the finish reason).
    ToolCall(ToolCall),
    /// Token counts (requested through `stream_options.include_usage`).
    Usage(Usage),
    /// The stream is over; `None` when the server never sent a finish reason before `[DONE]`.
    Done { finish_reason: Option<FinishReason> },
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Accumulates one streamed completion; feed it the `data` of each SSE event in order.
///
/// Only choice 0 is read (requests never ask for `n > 1`).
#[derive(Debug, Clone, Default)]
pub struct ChatStream {
    calls: BTreeMap<u32, PartialCall>,
    finish_reason: Option<FinishReason>,
    done: bool,
}

impl ChatStream {
    /// An accumulator for a new response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interprets one SSE `data` payload (a JSON chunk or `[DONE]`).
    pub fn push_data(&mut self, data: &str) -> Result<Vec<ChatDelta>, LlmError> {
        if self.done {
            return Ok(Vec::new());
        }
        if data.trim() == "[DONE]" {
            return self.end();
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| LlmError::Malformed(e.to_string()))?;
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            return Err(upstream_error(error));
        }
        let chunk: Chunk =
            serde_json::from_value(value).map_err(|e| LlmError::Malformed(e.to_string()))?;
        let mut deltas = Vec::new();
        let first = chunk
            .choices
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.index == 0);
        if let Some(choice) = first {
            let delta = choice.delta.unwrap_or(Delta {
                content: None,
                tool_calls: None,
            });
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                deltas.push(ChatDelta::Text(text));
            }
            for (position, fragment) in delta.tool_calls.unwrap_or_default().into_iter().enumerate()
            {
                // `index` is required by the spec; a few compatible servers omit it and send
                // each call whole, in array order.
                let index = fragment
                    .index
                    .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
                let call = self.calls.entry(index).or_default();
                if let Some(id) = fragment.id.filter(|_| call.id.is_empty()) {
                    call.id = id;
                }
                if let Some(f) = fragment.function {
                    if let Some(name) = f.name.filter(|_| call.name.is_empty()) {
                        call.name = name;
                    }
                    call.arguments.push_str(&f.arguments.unwrap_or_default());
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(FinishReason::parse(&reason));
                deltas.extend(self.take_calls()?);
            }
        }
        if let Some(usage) = chunk.usage {
            deltas.push(ChatDelta::Usage(usage));
        }
        Ok(deltas)
    }

    /// Call when the HTTP body ends; a stream cut off before its finish reason is an error.
    pub fn finish(&mut self) -> Result<Vec<ChatDelta>, LlmError> {
        if self.done {
            Ok(Vec::new())
        } else if self.finish_reason.is_some() {
            self.end()
        } else {
            self.done = true;
            Err(LlmError::Truncated)
        }
    }

    fn end(&mut self) -> Result<Vec<ChatDelta>, LlmError> {
        self.done = true;
        let mut deltas = self.take_calls()?;
        deltas.push(ChatDelta::Done {
            finish_reason: self.finish_reason.take(),
        });
        Ok(deltas)
    }

    fn take_calls(&mut self) -> Result<Vec<ChatDelta>, LlmError> {
        std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(index, call)| {
                if call.name.is_empty() {
                    return Err(LlmError::ToolCallWithoutName { index });
                }
                Ok(ChatDelta::ToolCall(ToolCall {
                    // Ids only pair a call with its result, so a stable stand-in will do.
                    id: if call.id.is_empty() {
                        format!("call_{index}")
                    } else {
                        call.id
                    },
                    name: call.name,
                    arguments: if call.arguments.trim().is_empty() {
                        "{}".to_owned()
                    } else {
                        call.arguments
                    },
                }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT_STREAM: [&str; 5] = [
        r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"obfuscation":"r4N7vQ2m"}"#,
        r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
        r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#,
        "[DONE]",
    ];

    const TOOL_STREAM: [&str; 5] = [
        r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"book_table","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"party\":"}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"2}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ];

    fn run(stream: &mut ChatStream, data: &[&str]) -> Vec<ChatDelta> {
        data.iter()
            .flat_map(|d| stream.push_data(d).unwrap())
            .collect()
    }

    fn chunk(delta: Value, finish_reason: Value) -> String {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
            .to_string()
    }

    #[test]
    fn documented_text_stream() {
        let deltas = run(&mut ChatStream::new(), &TEXT_STREAM);
        assert_eq!(
            deltas,
            vec![
                ChatDelta::Text("Hello".into()),
                ChatDelta::Usage(Usage {
                    prompt_tokens: 9,
                    completion_tokens: 12
                }),
                ChatDelta::Done {
                    finish_reason: Some(FinishReason::Stop)
                },
            ]
        );
    }

    #[test]
    fn documented_tool_call_stream() {
        let mut stream = ChatStream::new();
        let deltas = run(&mut stream, &TOOL_STREAM[..3]);
        assert!(deltas.is_empty(), "no call before it is complete");
        let deltas = run(&mut stream, &TOOL_STREAM[3..]);
        assert_eq!(
            deltas,
            vec![
                ChatDelta::ToolCall(ToolCall {
                    id: "call_abc".into(),
                    name: "book_table".into(),
                    arguments: r#"{"party":2}"#.into(),
                }),
                ChatDelta::Done {
                    finish_reason: Some(FinishReason::ToolCalls)
                },
            ]
        );
        assert_eq!(stream.push_data("[DONE]").unwrap(), vec![]);
        assert_eq!(stream.finish().unwrap(), vec![]);
    }

    #[test]
    fn text_and_parallel_tool_calls_interleaved() {
        let data = [
            chunk(json!({"content": "One moment. "}), Value::Null),
            chunk(
                json!({"tool_calls": [
                    {"index": 1, "id": "call_b", "function": {"name": "send_dtmf", "arguments": "{\"dig"}},
                    {"index": 0, "id": "call_a", "function": {"name": "end_call", "arguments": ""}}
                ]}),
                Value::Null,
            ),
            chunk(
                json!({"content": "Bye", "tool_calls": [{"index": 1, "function": {"arguments": "its\":\"1#\"}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
        ];
        let data: Vec<&str> = data.iter().map(String::as_str).collect();
        let mut stream = ChatStream::new();
        let deltas = run(&mut stream, &data);
        assert_eq!(
            deltas,
            vec![
                ChatDelta::Text("One moment. ".into()),
                ChatDelta::Text("Bye".into()),
                ChatDelta::ToolCall(ToolCall {
                    id: "call_a".into(),
                    name: "end_call".into(),
                    arguments: "{}".into()
                }),
                ChatDelta::ToolCall(ToolCall {
                    id: "call_b".into(),
                    name: "send_dtmf".into(),
                    arguments: r#"{"digits":"1#"}"#.into()
                }),
            ]
        );
        // A server that closes without `[DONE]` still completes once the finish reason came.
        assert_eq!(
            stream.finish().unwrap(),
            vec![ChatDelta::Done {
                finish_reason: Some(FinishReason::ToolCalls)
            }]
        );
    }

    #[test]
    fn compatible_server_quirks() {
        // `choices: null` on the usage chunk, tool calls without index or id, no finish reason.
        let data = [
            chunk(
                json!({"tool_calls": [{"function": {"name": "end_call", "arguments": "{\"reason\":\"done\"}"}}]}),
                Value::Null,
            ),
            json!({"choices": null, "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
                .to_string(),
            "[DONE]".to_owned(),
        ];
        let data: Vec<&str> = data.iter().map(String::as_str).collect();
        assert_eq!(
            run(&mut ChatStream::new(), &data),
            vec![
                ChatDelta::Usage(Usage {
                    prompt_tokens: 1,
                    completion_tokens: 2
                }),
                ChatDelta::ToolCall(ToolCall {
                    id: "call_0".into(),
                    name: "end_call".into(),
                    arguments: r#"{"reason":"done"}"#.into()
                }),
                ChatDelta::Done {
                    finish_reason: None
                },
            ]
        );
    }

    #[test]
    fn errors_in_the_stream() {
        let mut stream = ChatStream::new();
        assert_eq!(
            stream.push_data(
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded","param":null}}"#
            ),
            Err(LlmError::Upstream {
                message: "Rate limit reached".into(),
                code: Some("rate_limit_exceeded".into())
            })
        );
        assert!(matches!(
            stream.push_data("{not json"),
            Err(LlmError::Malformed(_))
        ));
        assert!(matches!(
            stream.push_data(r#"{"choices":[{"index":0,"delta":{"content":5}}]}"#),
            Err(LlmError::Malformed(_))
        ));
        assert_eq!(stream.finish(), Err(LlmError::Truncated));

        let mut nameless = ChatStream::new();
        nameless
            .push_data(&chunk(
                json!({"tool_calls": [{"index": 3, "function": {"arguments": "{}"}}]}),
                Value::Null,
            ))
            .unwrap();
        assert_eq!(
            nameless.push_data(&chunk(json!({}), json!("tool_calls"))),
            Err(LlmError::ToolCallWithoutName { index: 3 })
        );
    }

    #[test]
    fn summary_request_and_response() {
        let body = summary_request(
            "gpt-4o-mini",
            &[
                (Speaker::Agent, "Hello, Acme.".into()),
                (Speaker::Caller, "Book a table.".into()),
            ],
        );
        assert_eq!(body["stream"], false);
        assert_eq!(
            body["messages"][1]["content"],
            "Agent: Hello, Acme.\nCaller: Book a table."
        );

        let response = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,
            "message":{"role":"assistant","content":" The caller booked a table. "},"finish_reason":"stop"}]}"#;
        assert_eq!(
            parse_completion_text(response).unwrap(),
            "The caller booked a table."
        );
        assert_eq!(
            parse_completion_text(br#"{"choices":[{"message":{"content":null}}]}"#),
            Err(LlmError::NoContent)
        );
        assert_eq!(
            parse_completion_text(br#"{"error":{"message":"bad key","code":401}}"#),
            Err(LlmError::Upstream {
                message: "bad key".into(),
                code: Some("401".into())
            })
        );
        assert!(matches!(
            parse_completion_text(b"<html>"),
            Err(LlmError::Malformed(_))
        ));
    }

    #[test]
    fn analysis_request_carries_the_strict_schema() {
        let spec = crate::analysis::parse_spec(&json!({"fields": [{"name": "intent",
            "type": "string", "description": "Why they called", "required": true}]}))
        .unwrap();
        let body = analysis_request("gpt-4o-mini", &[(Speaker::Caller, "Hi.".into())], &spec);
        assert_eq!(body["stream"], false);
        assert_eq!(body["messages"][1]["content"], "Caller: Hi.");
        assert_eq!(body["response_format"], spec.response_format());
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    }

    proptest! {
        #[test]
        fn chat_stream_survives_arbitrary_data(datas in prop::collection::vec(".{0,80}", 0..8)) {
            let mut stream = ChatStream::new();
            for d in &datas {
                let _ = stream.push_data(d);
            }
            let _ = stream.finish();
        }

        #[test]
        fn chat_stream_survives_json_shaped_data(
            datas in prop::collection::vec(r#"\{"choices":\[\{"index":0,"delta":\{"(content|tool_calls)":[\[\]{}":,0-9a-z ]{0,40}\}\]\}"#, 0..6)
        ) {
            let mut stream = ChatStream::new();
            for d in &datas {
                let _ = stream.push_data(d);
            }
            let _ = stream.push_data("[DONE]");
        }
    }
}
