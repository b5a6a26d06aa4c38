//! OpenAI-compatible Chat Completions: request bodies, the streaming accumulator, the agent's
//! tools, the post-call summary, and sentence splitting for TTS.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// One message of the conversation history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatMessage {
    /// Instructions (the agent's system prompt).
    System(String),
    /// What the caller said.
    User(String),
    /// What the agent said (or the part the caller heard), with the tools it called.
    Assistant {
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    /// The result of running one tool call.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

/// A complete tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: a JSON object in text form.
    pub arguments_json: String,
}

/// A function the model may call, described by a JSON Schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl ChatMessage {
    fn to_json(&self) -> Value {
        match self {
            ChatMessage::System(text) => json!({"role": "system", "content": text}),
            ChatMessage::User(text) => json!({"role": "user", "content": text}),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let mut m = Map::new();
                m.insert("role".into(), "assistant".into());
                m.insert("content".into(), content.clone().into());
                if !tool_calls.is_empty() {
                    let calls = tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": c.arguments_json}})
                        })
                        .collect();
                    m.insert("tool_calls".into(), Value::Array(calls));
                }
                Value::Object(m)
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => json!({"role": "tool", "tool_call_id": tool_call_id, "content": content}),
        }
    }
}

/// The body of a streaming `POST {OPENAI_BASE_URL}/chat/completions` (with `Authorization: Bearer`).
///
/// Usage is requested so the final chunk reports token counts; `tools` is omitted when empty
/// because some servers reject an empty array.
pub fn chat_request(model: &str, messages: &[ChatMessage], tools: &[ToolSpec]) -> Value {
    let mut body = json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": messages.iter().map(ChatMessage::to_json).collect::<Vec<_>>(),
    });
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| {
                json!({"type": "function",
                       "function": {"name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
    }
    body
}

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
    let lines: Vec<String> = transcript
        .iter()
        .map(|(speaker, text)| match speaker {
            Speaker::Caller => format!("Caller: {text}"),
            Speaker::Agent => format!("Agent: {text}"),
        })
        .collect();
    json!({
        "model": model,
        "stream": false,
        "messages": [
            {"role": "system", "content": "You summarise phone calls between a caller and an AI \
              agent. In 2 to 4 plain sentences, say who called, what they wanted, what was agreed, \
              and any follow-up. Do not invent details."},
            {"role": "user", "content": lines.join("\n")},
        ],
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
                    arguments_json: if call.arguments.trim().is_empty() {
                        "{}".to_owned()
                    } else {
                        call.arguments
                    },
                }))
            })
            .collect()
    }
}

/// The tools every agent exposes to the model.
pub fn agent_tools() -> Vec<ToolSpec> {
    let spec = |name: &str, description: &str, parameters: Value| ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters,
    };
    vec![
        spec(
            "end_call",
            "Hang up once the conversation is over and you have said goodbye.",
            json!({"type": "object", "properties": {
                "reason": {"type": "string", "description": "Why the call ends, for the call log."}
            }, "additionalProperties": false}),
        ),
        spec(
            "transfer_call",
            "Transfer the caller to a human at the given phone number.",
            json!({"type": "object", "properties": {
                "to": {"type": "string", "description": "Phone number in E.164 format, e.g. +14155550100."}
            }, "required": ["to"], "additionalProperties": false}),
        ),
        spec(
            "schedule_callback",
            "Schedule a call back to the caller at an agreed time.",
            json!({"type": "object", "properties": {
                "start_at": {"type": "string", "description": "When to call, RFC 3339 with offset, e.g. 2025-03-01T15:00:00+01:00."},
                "note": {"type": "string", "description": "What the call back is about."}
            }, "required": ["start_at"], "additionalProperties": false}),
        ),
        spec(
            "send_dtmf",
            "Press keys on the phone keypad, e.g. to navigate a menu.",
            json!({"type": "object", "properties": {
                "digits": {"type": "string", "description": "Keys to press: 0-9, *, #, and w for a half-second pause."}
            }, "required": ["digits"], "additionalProperties": false}),
        ),
    ]
}

/// A validated call of one of [`agent_tools`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentToolCall {
    /// Hang up.
    EndCall { reason: Option<String> },
    /// Transfer the caller to `to` (E.164).
    TransferCall { to: String },
    /// Schedule a call back to the caller.
    ScheduleCallback {
        start_at: chrono::DateTime<chrono::FixedOffset>,
        note: Option<String>,
    },
    /// Play keypad tones (`w` is a half-second pause).
    SendDtmf { digits: String },
}

/// Why a tool call cannot be run; the text goes back to the model as the tool result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ToolError {
    /// The model named a tool that does not exist.
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    /// The arguments are not JSON or miss a required field.
    #[error("arguments are not a JSON object: {0}")]
    BadArguments(String),
    /// `to` is not an E.164 number.
    #[error("{0:?} is not a phone number in E.164 format (+ and 8 to 15 digits)")]
    BadPhoneNumber(String),
    /// `start_at` is not an RFC 3339 date-time.
    #[error("{0:?} is not an RFC 3339 date-time with offset")]
    BadTime(String),
    /// `digits` holds something other than keypad keys.
    #[error("{0:?} is not a sequence of keypad keys (0-9, *, #, w)")]
    BadDigits(String),
}

#[derive(Deserialize)]
struct EndCallArgs {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct TransferArgs {
    to: String,
}

#[derive(Deserialize)]
struct CallbackArgs {
    start_at: String,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
struct DtmfArgs {
    digits: String,
}

impl AgentToolCall {
    /// Validates a tool call the model made.
    pub fn parse(call: &ToolCall) -> Result<Self, ToolError> {
        fn args<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ToolError> {
            serde_json::from_str(json).map_err(|e| ToolError::BadArguments(e.to_string()))
        }
        match call.name.as_str() {
            "end_call" => {
                let a: EndCallArgs = args(&call.arguments_json)?;
                Ok(AgentToolCall::EndCall { reason: a.reason })
            }
            "transfer_call" => {
                let a: TransferArgs = args(&call.arguments_json)?;
                let to = a.to.trim();
                let digits = to.strip_prefix('+').unwrap_or_default();
                let valid = (8..=15).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && !digits.starts_with('0');
                if !valid {
                    return Err(ToolError::BadPhoneNumber(a.to));
                }
                Ok(AgentToolCall::TransferCall { to: to.to_owned() })
            }
            "schedule_callback" => {
                let a: CallbackArgs = args(&call.arguments_json)?;
                let start_at = chrono::DateTime::parse_from_rfc3339(a.start_at.trim())
                    .map_err(|_| ToolError::BadTime(a.start_at.clone()))?;
                Ok(AgentToolCall::ScheduleCallback {
                    start_at,
                    note: a.note,
                })
            }
            "send_dtmf" => {
                let a: DtmfArgs = args(&call.arguments_json)?;
                let valid = !a.digits.is_empty()
                    && a.digits
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'w' | 'W'));
                if !valid {
                    return Err(ToolError::BadDigits(a.digits));
                }
                Ok(AgentToolCall::SendDtmf { digits: a.digits })
            }
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }
}

/// Cuts streamed reply text into sentences, so TTS can start on the first one immediately.
///
/// A sentence ends at a newline, or at `.`, `!`, `?` or `…` (plus closing quotes or brackets)
/// once whitespace follows; so "3.5" and "e.g." never end one, and neither do common
/// abbreviations such as "Dr.".
#[derive(Debug, Clone, Default)]
pub struct SentenceSplitter {
    buf: String,
}

const ABBREVIATIONS: [&str; 11] = [
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "approx",
];

impl SentenceSplitter {
    /// A splitter with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text delta; returns the sentences it completes, trimmed, in order.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut sentences = Vec::new();
        while let Some(end) = self.boundary() {
            let rest = self.buf.split_off(end);
            let sentence = std::mem::replace(&mut self.buf, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                sentences.push(sentence.to_owned());
            }
        }
        sentences
    }

    /// Returns whatever is left (the last sentence, maybe without punctuation).
    pub fn flush(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        Some(rest.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// The byte offset just past the first complete sentence, if one is known to be complete.
    fn boundary(&self) -> Option<usize> {
        let mut chars = self.buf.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\n' {
                return Some(i + 1);
            }
            if !matches!(c, '.' | '!' | '?' | '…') {
                continue;
            }
            let mut lone_dot = c == '.';
            while let Some(&(_, next)) = chars.peek() {
                if matches!(next, '.' | '!' | '?' | '…') {
                    lone_dot = false;
                } else if !matches!(next, '"' | '\'' | '”' | '’' | ')' | ']') {
                    break;
                }
                chars.next();
            }
            let (end, next) = chars.peek().copied()?;
            if next.is_whitespace() && !(lone_dot && self.is_abbreviation(i)) {
                return Some(end);
            }
        }
        None
    }

    /// Whether the word before the `.` at `dot` is an abbreviation ("Dr", "e.g", "U.S").
    fn is_abbreviation(&self, dot: usize) -> bool {
        let before = self.buf.get(..dot).unwrap_or_default();
        let word = before
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or_default()
            .trim_start_matches(|c: char| !c.is_alphanumeric());
        let dotted = word.contains('.') && word.chars().all(|c| c.is_alphabetic() || c == '.');
        dotted || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
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
                    arguments_json: r#"{"party":2}"#.into(),
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
                    arguments_json: "{}".into()
                }),
                ChatDelta::ToolCall(ToolCall {
                    id: "call_b".into(),
                    name: "send_dtmf".into(),
                    arguments_json: r#"{"digits":"1#"}"#.into()
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
                    arguments_json: r#"{"reason":"done"}"#.into()
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
    fn request_bodies() {
        let messages = [
            ChatMessage::System("Be brief.".into()),
            ChatMessage::User("Hang up please".into()),
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "end_call".into(),
                    arguments_json: "{}".into(),
                }],
            },
            ChatMessage::Tool {
                tool_call_id: "call_1".into(),
                content: "ok".into(),
            },
            ChatMessage::Assistant {
                content: Some("Goodbye".into()),
                tool_calls: vec![],
            },
        ];
        let body = chat_request("gpt-4o-mini", &messages, &agent_tools());
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "end_call", "arguments": "{}"}}]})
        );
        assert_eq!(
            body["messages"][3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "ok"})
        );
        assert_eq!(
            body["messages"][4],
            json!({"role": "assistant", "content": "Goodbye"})
        );
        let names: Vec<&str> = body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                assert_eq!(t["type"], "function");
                assert_eq!(t["function"]["parameters"]["type"], "object");
                t["function"]["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "end_call",
                "transfer_call",
                "schedule_callback",
                "send_dtmf"
            ]
        );
        assert!(chat_request("m", &messages, &[]).get("tools").is_none());
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

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments_json: args.into(),
        }
    }

    #[test]
    fn tool_arguments_are_validated() {
        assert_eq!(
            AgentToolCall::parse(&call("end_call", "{}")),
            Ok(AgentToolCall::EndCall { reason: None })
        );
        assert_eq!(
            AgentToolCall::parse(&call("transfer_call", r#"{"to":"+14155550100"}"#)),
            Ok(AgentToolCall::TransferCall {
                to: "+14155550100".into()
            })
        );
        for bad in ["14155550100", "+0123456789", "+1415", "+1415555010a"] {
            assert!(matches!(
                AgentToolCall::parse(&call("transfer_call", &json!({"to": bad}).to_string())),
                Err(ToolError::BadPhoneNumber(_))
            ));
        }
        match AgentToolCall::parse(&call(
            "schedule_callback",
            r#"{"start_at":"2025-03-01T15:00:00+01:00","note":"quote"}"#,
        ))
        .unwrap()
        {
            AgentToolCall::ScheduleCallback { start_at, note } => {
                assert_eq!(start_at.to_rfc3339(), "2025-03-01T15:00:00+01:00");
                assert_eq!(note.as_deref(), Some("quote"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            AgentToolCall::parse(&call("schedule_callback", r#"{"start_at":"tomorrow 3pm"}"#)),
            Err(ToolError::BadTime(_))
        ));
        assert_eq!(
            AgentToolCall::parse(&call("send_dtmf", r#"{"digits":"12w#*"}"#)),
            Ok(AgentToolCall::SendDtmf {
                digits: "12w#*".into()
            })
        );
        assert!(matches!(
            AgentToolCall::parse(&call("send_dtmf", r#"{"digits":"12a"}"#)),
            Err(ToolError::BadDigits(_))
        ));
        assert!(matches!(
            AgentToolCall::parse(&call("send_dtmf", r#"{"digits":5}"#)),
            Err(ToolError::BadArguments(_))
        ));
        assert!(matches!(
            AgentToolCall::parse(&call("transfer_call", "")),
            Err(ToolError::BadArguments(_))
        ));
        assert_eq!(
            AgentToolCall::parse(&call("rm_rf", "{}")),
            Err(ToolError::UnknownTool("rm_rf".into()))
        );
    }

    fn split(deltas: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = deltas.iter().flat_map(|d| s.push(d)).collect();
        out.extend(s.flush());
        out
    }

    #[test]
    fn sentences_end_at_punctuation_followed_by_space() {
        assert_eq!(
            split(&["Hello", " there. How", " are you? I'm", " fine! Bye"]),
            ["Hello there.", "How are you?", "I'm fine!", "Bye"]
        );
        assert_eq!(
            split(&["Well… I think so.\nNext line"]),
            ["Well…", "I think so.", "Next line"]
        );
        assert_eq!(
            split(&["He said \"hi.\" Then", " left... OK"]),
            ["He said \"hi.\"", "Then left...", "OK"]
        );
    }

    #[test]
    fn sentences_do_not_end_at_abbreviations_or_decimals() {
        assert_eq!(
            split(&["Dr. Smith charges 3.5 dollars, e.g. for a visit. Fine"]),
            ["Dr. Smith charges 3.5 dollars, e.g. for a visit.", "Fine"]
        );
        assert_eq!(
            split(&["Meet at 7 p.m. tomorrow. See Mr. (Jones) now."]),
            ["Meet at 7 p.m. tomorrow.", "See Mr. (Jones) now."]
        );
        assert_eq!(
            split(&["It was 3.5. The answer is no. Okay"]),
            ["It was 3.5.", "The answer is no.", "Okay"]
        );
    }

    #[test]
    fn a_sentence_waits_for_what_follows_its_dot() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("It costs 3.").is_empty());
        assert_eq!(s.push("5 dollars. O"), ["It costs 3.5 dollars."]);
        assert_eq!(s.flush().as_deref(), Some("O"));
        assert_eq!(s.flush(), None);
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

        #[test]
        fn splitter_keeps_all_text_whatever_the_chunking(
            text in "[a-zA-Z .!?…\n\"3]{0,120}",
            cut in 0usize..120,
        ) {
            let cut = text.char_indices().map(|(i, _)| i).find(|&i| i >= cut).unwrap_or(text.len());
            let pieces = split(&[&text[..cut], &text[cut..]]);
            let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            prop_assert_eq!(words(&pieces.join(" ")), words(&text));
            prop_assert_eq!(pieces.clone(), split(&[&text]));
        }
    }
}
