//! Chat history in the OpenAI chat-completions message shape: serialized, it is the request's
//! `messages` array as is.

use serde::{Deserialize, Serialize};

/// One chat message (`{"role": ..., ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// Instructions for the model.
    System { content: String },
    /// What the caller said.
    User { content: String },
    /// What the agent said (only what the caller heard) and the tools it called.
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

/// A function call requested by the model; serialized as OpenAI's
/// `{"id", "type": "function", "function": {"name", "arguments"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireToolCall", from = "WireToolCall")]
pub struct ToolCall {
    /// The model's call id (`call_...`), echoed in the tool message.
    pub id: String,
    /// Function name.
    pub name: String,
    /// JSON arguments as the model wrote them (may be invalid JSON).
    pub arguments: String,
}

#[derive(Serialize, Deserialize)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: WireFunction,
}

#[derive(Serialize, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

fn function_type() -> String {
    "function".to_owned()
}

impl From<ToolCall> for WireToolCall {
    fn from(call: ToolCall) -> Self {
        WireToolCall {
            id: call.id,
            kind: function_type(),
            function: WireFunction {
                name: call.name,
                arguments: call.arguments,
            },
        }
    }
}

impl From<WireToolCall> for ToolCall {
    fn from(wire: WireToolCall) -> Self {
        ToolCall {
            id: wire.id,
            name: wire.function.name,
            arguments: wire.function.arguments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_in_the_openai_shape() {
        let messages = vec![
            Message::System {
                content: "Be brief.".into(),
            },
            Message::User {
                content: "Call me tomorrow.".into(),
            },
            Message::Assistant {
                content: Some("Sure.".into()),
                tool_calls: vec![ToolCall {
                    id: "call_abc".into(),
                    name: "schedule_callback".into(),
                    arguments: r#"{"start_at":"2025-06-01T15:00:00Z"}"#.into(),
                }],
            },
            Message::Tool {
                tool_call_id: "call_abc".into(),
                content: "scheduled".into(),
            },
            Message::Assistant {
                content: Some("Done.".into()),
                tool_calls: vec![],
            },
        ];
        let value = serde_json::to_value(&messages).unwrap();
        assert_eq!(
            value,
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Call me tomorrow."},
                {"role": "assistant", "content": "Sure.", "tool_calls": [{
                    "id": "call_abc", "type": "function",
                    "function": {"name": "schedule_callback",
                                 "arguments": "{\"start_at\":\"2025-06-01T15:00:00Z\"}"}}]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "scheduled"},
                {"role": "assistant", "content": "Done."}
            ])
        );
        let back: Vec<Message> = serde_json::from_value(value).unwrap();
        assert_eq!(back, messages);
    }

    #[test]
    fn assistant_with_only_tool_calls_omits_content() {
        let message = Message::Assistant {
            content: None,
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "end_call".into(),
                arguments: "{}".into(),
            }],
        };
        let value = serde_json::to_value(&message).unwrap();
        assert!(value.get("content").is_none());
        assert_eq!(value["tool_calls"][0]["type"], "function");
    }
}
