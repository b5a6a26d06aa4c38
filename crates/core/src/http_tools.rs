//! Custom tools that call the operator's server (`http_tools` of an agent): their validation
//! when stored, the check of the model's arguments against the declared schema before a call,
//! the signed request's body, and what the model reads back (the response text, bounded, or an
//! error).
//!
//! The model can be talked into anything, so nothing here trusts it: a tool is offered only as
//! the agent declares it, its arguments are checked before the server sees them, the URL is a
//! forward target checked like endpoints (again when it is called), and the server's answer is
//! cut at [`MAX_RESPONSE_BYTES`] before it reaches the model.

use crate::scheduling::request::FieldError;
use crate::session::{BOOKING_TOOLS, END_CALL, SCHEDULE_CALLBACK, SEND_DTMF, TRANSFER_CALL};
use crate::targets::{check_tool_target, TargetError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use thiserror::Error;

/// Most tools one agent may declare.
pub const MAX_HTTP_TOOLS: usize = 10;
/// Longest a tool's server may take, and the default when the agent sets none.
pub const MAX_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_TIMEOUT_MS: u64 = 5_000;
const MIN_TIMEOUT_MS: u64 = 100;
/// Most of a tool server's answer the model reads; the rest is cut, with a note.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// How long a tool may run before the caller hears its filler line.
pub const FILLER_AFTER_MS: u64 = 1_000;
/// The filler line when the tool names none.
pub const DEFAULT_FILLER: &str = "One moment, please.";
const MAX_DESCRIPTION_CHARS: usize = 1_024;
const MAX_FILLER_CHARS: usize = 200;
/// Bounds of a tool's `parameters` schema: it goes into every LLM request of the call.
const MAX_SCHEMA_BYTES: usize = 8 * 1024;
const MAX_SCHEMA_DEPTH: usize = 8;

/// One declared tool, as stored in the agent's config and carried in the call's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTool {
    /// Function name the model calls (`^[a-zA-Z0-9_-]{1,64}$`, no built-in name).
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: Value,
    /// Where the signed POST goes.
    pub url: String,
    /// Longest wait for the server's answer.
    pub timeout_ms: u64,
    /// Said when the tool runs longer than [`FILLER_AFTER_MS`]; [`DEFAULT_FILLER`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler: Option<String>,
}

impl HttpTool {
    /// The line the caller hears while this tool runs long.
    pub fn filler_line(&self) -> &str {
        self.filler.as_deref().unwrap_or(DEFAULT_FILLER)
    }

    /// The chat-completions `tools` entry offering this tool.
    pub fn spec(&self) -> Value {
        json!({"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}})
    }
}

/// The agent's `http_tools` in its stored config (none when absent or unreadable: the API
/// validated what it stored).
pub fn http_tools(config: &Value) -> Vec<HttpTool> {
    config
        .get("http_tools")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Validates an agent's `http_tools` field; with `allow_loopback` (tests, local development)
/// http(s) to 127.0.0.1 / localhost is accepted too. Returns the tools as they are stored.
pub fn parse_http_tools(value: &Value, allow_loopback: bool) -> Result<Value, Vec<FieldError>> {
    let mut errors = Vec::new();
    let err = |errors: &mut Vec<FieldError>, field: String, code: &'static str, message: String| {
        errors.push(FieldError {
            field,
            code,
            message,
        })
    };
    let Some(items) = value.as_array() else {
        err(
            &mut errors,
            "http_tools".into(),
            "invalid_type",
            "http_tools must be an array of tools".into(),
        );
        return Err(errors);
    };
    if items.len() > MAX_HTTP_TOOLS {
        err(
            &mut errors,
            "http_tools".into(),
            "too_many",
            format!("an agent has at most {MAX_HTTP_TOOLS} tools"),
        );
        return Err(errors);
    }
    let mut tools = Vec::new();
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |key: &str| format!("http_tools[{i}].{key}");
        let Some(obj) = item.as_object() else {
            err(
                &mut errors,
                format!("http_tools[{i}]"),
                "invalid_type",
                "a tool must be an object".into(),
            );
            continue;
        };
        for key in obj.keys() {
            if ![
                "name",
                "description",
                "parameters",
                "url",
                "timeout_ms",
                "filler",
            ]
            .contains(&key.as_str())
            {
                err(
                    &mut errors,
                    at(key),
                    "unknown_field",
                    format!("unknown tool field {key:?}"),
                );
            }
        }
        let string = |key: &str| obj.get(key).and_then(Value::as_str).map(str::trim);
        let name = string("name").unwrap_or_default().to_owned();
        if !valid_name(&name) {
            err(
                &mut errors,
                at("name"),
                "invalid_value",
                "name must match ^[a-zA-Z0-9_-]{1,64}$".into(),
            );
        } else if [END_CALL, TRANSFER_CALL, SCHEDULE_CALLBACK, SEND_DTMF]
            .iter()
            .chain(&BOOKING_TOOLS)
            .any(|built_in| *built_in == name)
        {
            err(
                &mut errors,
                at("name"),
                "reserved_name",
                format!("{name} is a built-in tool"),
            );
        } else if names.contains(&name) {
            err(
                &mut errors,
                at("name"),
                "duplicate",
                format!("two tools are named {name}"),
            );
        }
        names.push(name.clone());
        let description = string("description").unwrap_or_default().to_owned();
        if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
            err(
                &mut errors,
                at("description"),
                "invalid_value",
                format!("description is required, at most {MAX_DESCRIPTION_CHARS} characters"),
            );
        }
        let parameters = match obj.get("parameters") {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(schema) => {
                if let Err(message) = check_schema(schema) {
                    err(&mut errors, at("parameters"), "invalid_schema", message);
                }
                schema.clone()
            }
        };
        let url = match obj.get("url").and_then(Value::as_str) {
            None => {
                err(&mut errors, at("url"), "required", "url is required".into());
                String::new()
            }
            Some(url) => match check_tool_target(url, allow_loopback) {
                Ok(parsed) => parsed.to_string(),
                Err(e) => {
                    err(&mut errors, at("url"), "invalid_url", e.to_string());
                    String::new()
                }
            },
        };
        let timeout_ms = match obj.get("timeout_ms") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT_MS,
            Some(v) => match v.as_u64() {
                Some(ms) if (MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) => ms,
                _ => {
                    err(
                        &mut errors,
                        at("timeout_ms"),
                        "invalid_value",
                        format!("timeout_ms must be {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS}"),
                    );
                    DEFAULT_TIMEOUT_MS
                }
            },
        };
        let filler = match obj.get("filler") {
            None | Some(Value::Null) => None,
            Some(Value::String(s))
                if !s.trim().is_empty() && s.chars().count() <= MAX_FILLER_CHARS =>
            {
                Some(s.trim().to_owned())
            }
            Some(_) => {
                err(
                    &mut errors,
                    at("filler"),
                    "invalid_value",
                    format!("filler is a line of 1 to {MAX_FILLER_CHARS} characters"),
                );
                None
            }
        };
        tools.push(HttpTool {
            name,
            description,
            parameters,
            url,
            timeout_ms,
            filler,
        });
    }
    if errors.is_empty() {
        Ok(serde_json::to_value(tools).unwrap_or(Value::Null))
    } else {
        Err(errors)
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An object schema, bounded in size and depth, whose `properties` and `required` are usable.
fn check_schema(schema: &Value) -> Result<(), String> {
    if schema.to_string().len() > MAX_SCHEMA_BYTES {
        return Err(format!("parameters is at most {MAX_SCHEMA_BYTES} bytes"));
    }
    if depth(schema) > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "parameters nests at most {MAX_SCHEMA_DEPTH} levels"
        ));
    }
    let Some(obj) = schema.as_object() else {
        return Err("parameters must be a JSON Schema object".into());
    };
    if obj.get("type").and_then(Value::as_str) != Some("object") {
        return Err(r#"parameters must have "type": "object""#.into());
    }
    match obj.get("properties") {
        None => {}
        Some(Value::Object(props)) if props.values().all(Value::is_object) => {}
        Some(_) => return Err("parameters.properties must map names to schemas".into()),
    }
    match obj.get("required") {
        None => {}
        Some(Value::Array(names)) if names.iter().all(Value::is_string) => {}
        Some(_) => return Err("parameters.required must be a list of names".into()),
    }
    Ok(())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Why the model's arguments were not sent to the server; the text goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgumentError {
    /// Not a JSON object.
    #[error("arguments must be a JSON object")]
    NotAnObject,
    /// A `required` property is missing.
    #[error("missing required argument {0:?}")]
    Missing(String),
    /// A property's value is not of its declared type.
    #[error("argument {0:?} must be of type {1}")]
    WrongType(String, String),
    /// A property's value is not one of its `enum` values.
    #[error("argument {0:?} is not one of the allowed values")]
    NotAllowed(String),
    /// A property the schema does not declare, with `additionalProperties: false`.
    #[error("unknown argument {0:?}")]
    Unknown(String),
}

/// The model's arguments checked against the tool's schema (top-level `required`, the
/// `type` and `enum` of each declared property, `additionalProperties: false`).
pub fn check_arguments(
    schema: &Value,
    arguments: &str,
) -> Result<Map<String, Value>, ArgumentError> {
    let args = if arguments.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str(arguments) {
            Ok(Value::Object(args)) => args,
            _ => return Err(ArgumentError::NotAnObject),
        }
    };
    let empty = Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !args.contains_key(name) {
            return Err(ArgumentError::Missing(name.to_owned()));
        }
    }
    for (name, value) in &args {
        let Some(prop) = props.get(name) else {
            if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                return Err(ArgumentError::Unknown(name.clone()));
            }
            continue;
        };
        let types: Vec<&str> = match prop.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
            return Err(ArgumentError::WrongType(name.clone(), types.join(" or ")));
        }
        if let Some(Value::Array(allowed)) = prop.get("enum") {
            if !allowed.contains(value) {
                return Err(ArgumentError::NotAllowed(name.clone()));
            }
        }
    }
    Ok(args)
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// The body POSTed to the tool's server.
pub fn request_body(
    tool: &str,
    arguments: &Map<String, Value>,
    call_id: &str,
    caller: Option<&str>,
    agent_id: Option<&str>,
) -> String {
    json!({"tool": tool, "arguments": arguments, "call_id": call_id,
           "caller": caller, "agent_id": agent_id})
    .to_string()
}

/// How a tool run ended, as the edge saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status; `body` holds at most `MAX_RESPONSE_BYTES + 1` bytes.
    Answered { status: u16, body: Vec<u8> },
    /// No answer within the tool's timeout.
    TimedOut { after_ms: u64 },
    /// The request could not be made (network error).
    Failed(String),
    /// The URL is not a target we may call.
    Refused(TargetError),
    /// The arguments did not fit the schema; the server was not called.
    BadArguments(ArgumentError),
}

/// What the model reads as the tool's result: the server's answer text for a 2xx (cut at
/// [`MAX_RESPONSE_BYTES`] with a note), otherwise `{"error": …}`.
pub fn tool_result(outcome: &Outcome) -> String {
    let error = |message: String| json!({ "error": message }).to_string();
    match outcome {
        Outcome::Answered { status, body } if (200..300).contains(status) => {
            if body.len() <= MAX_RESPONSE_BYTES {
                return String::from_utf8_lossy(body).into_owned();
            }
            let mut cut = MAX_RESPONSE_BYTES;
            // Cut on a character boundary (a UTF-8 continuation byte is 0b10xxxxxx).
            while cut > 0 && body[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            format!(
                "{}\n[truncated: the tool's answer was longer than {MAX_RESPONSE_BYTES} bytes]",
                String::from_utf8_lossy(&body[..cut])
            )
        }
        Outcome::Answered { status, .. } => {
            error(format!("the tool's server answered HTTP {status}"))
        }
        Outcome::TimedOut { after_ms } => {
            error(format!("the tool did not answer within {after_ms} ms"))
        }
        Outcome::Failed(reason) => error(format!("the tool could not be reached: {reason}")),
        Outcome::Refused(e) => error(format!("the tool's URL is refused: {e}")),
        Outcome::BadArguments(e) => error(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(extra: Value) -> Value {
        let mut t = json!({"name": "lookup_order", "description": "Finds an order.",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"},
                "count": {"type": "integer"}, "size": {"type": "string", "enum": ["s", "m"]}},
                "required": ["order"]},
            "url": "https://tools.example.com/order"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    }

    fn codes(value: Value, loopback: bool) -> Vec<(String, &'static str)> {
        parse_http_tools(&value, loopback)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn a_valid_tool_is_stored_with_defaults() {
        let stored = parse_http_tools(&json!([tool(json!({}))]), false).unwrap();
        let tools: Vec<HttpTool> = serde_json::from_value(stored).unwrap();
        assert_eq!(tools[0].timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(tools[0].filler_line(), DEFAULT_FILLER);
        assert_eq!(tools[0].spec()["function"]["name"], "lookup_order");
        let no_params =
            parse_http_tools(&json!([tool(json!({"parameters": null}))]), false).unwrap();
        assert_eq!(no_params[0]["parameters"]["type"], "object");
    }

    #[test]
    fn names_timeouts_and_counts_are_bounded() {
        assert_eq!(
            codes(json!([tool(json!({"name": "end_call"}))]), false),
            [("http_tools[0].name".to_owned(), "reserved_name")]
        );
        assert_eq!(
            codes(json!([tool(json!({"name": "no spaces"}))]), false)[0].1,
            "invalid_value"
        );
        assert_eq!(
            codes(json!([tool(json!({"name": "x".repeat(65)}))]), false)[0].1,
            "invalid_value"
        );
        assert_eq!(
            codes(json!([tool(json!({})), tool(json!({}))]), false)[0].1,
            "duplicate"
        );
        assert_eq!(
            codes(json!([tool(json!({"timeout_ms": 10_001}))]), false)[0].1,
            "invalid_value"
        );
        let eleven: Vec<Value> = (0..11)
            .map(|i| tool(json!({"name": format!("t{i}")})))
            .collect();
        assert_eq!(codes(json!(eleven), false)[0].1, "too_many");
        assert_eq!(
            codes(json!([tool(json!({"secret": 1}))]), false)[0].1,
            "unknown_field"
        );
    }

    #[test]
    fn schemas_are_bounded() {
        assert_eq!(
            codes(
                json!([tool(json!({"parameters": {"type": "string"}}))]),
                false
            )[0]
            .1,
            "invalid_schema"
        );
        let mut deep = json!({"type": "string"});
        for _ in 0..10 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert_eq!(
            codes(json!([tool(json!({"parameters": deep}))]), false)[0].1,
            "invalid_schema"
        );
        let big: Map<String, Value> = (0..400)
            .map(|i| (format!("field_{i}"), json!({"type": "string"})))
            .collect();
        assert_eq!(
            codes(
                json!([tool(
                    json!({"parameters": {"type": "object", "properties": big}})
                )]),
                false
            )[0]
            .1,
            "invalid_schema"
        );
    }

    #[test]
    fn urls_are_forward_targets_and_loopback_only_when_allowed() {
        for url in [
            "https://10.0.0.1/x",
            "https://169.254.169.254/latest/meta-data/",
            "http://tools.example.com/",
            "http://10.0.0.1/",
            "https://localhost/",
        ] {
            assert_eq!(
                codes(json!([tool(json!({"url": url}))]), false)[0].1,
                "invalid_url",
                "{url}"
            );
        }
        // Allowing loopback for tests does not open the private network.
        for url in [
            "http://10.0.0.1/",
            "http://169.254.169.254/",
            "http://192.168.1.2/",
        ] {
            assert_eq!(
                codes(json!([tool(json!({"url": url}))]), true)[0].1,
                "invalid_url",
                "{url}"
            );
        }
        for url in ["http://127.0.0.1:9999/tool", "http://localhost:1/"] {
            assert!(parse_http_tools(&json!([tool(json!({"url": url}))]), true).is_ok());
        }
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let schema = tool(json!({}))["parameters"].clone();
        assert!(check_arguments(&schema, r#"{"order":"A1","count":2}"#).is_ok());
        assert_eq!(
            check_arguments(&schema, r#"{"count":2}"#),
            Err(ArgumentError::Missing("order".into()))
        );
        assert_eq!(
            check_arguments(&schema, r#"{"order":5}"#),
            Err(ArgumentError::WrongType("order".into(), "string".into()))
        );
        assert_eq!(
            check_arguments(&schema, r#"{"order":"A","count":1.5}"#),
            Err(ArgumentError::WrongType("count".into(), "integer".into()))
        );
        assert_eq!(
            check_arguments(&schema, r#"{"order":"A","size":"xl"}"#),
            Err(ArgumentError::NotAllowed("size".into()))
        );
        assert_eq!(
            check_arguments(&schema, "[1]"),
            Err(ArgumentError::NotAnObject)
        );
        assert_eq!(
            check_arguments(&schema, "{"),
            Err(ArgumentError::NotAnObject)
        );
        let closed = json!({"type": "object", "properties": {}, "additionalProperties": false});
        assert_eq!(
            check_arguments(&closed, r#"{"x":1}"#),
            Err(ArgumentError::Unknown("x".into()))
        );
        assert!(check_arguments(&closed, "").is_ok());
    }

    #[test]
    fn results_are_bounded_and_errors_explained() {
        let ok = Outcome::Answered {
            status: 200,
            body: b"{\"status\":\"shipped\"}".to_vec(),
        };
        assert_eq!(tool_result(&ok), r#"{"status":"shipped"}"#);
        let mut long = "é".repeat(MAX_RESPONSE_BYTES / 2).into_bytes();
        long.insert(0, b'x');
        let cut = tool_result(&Outcome::Answered {
            status: 200,
            body: long,
        });
        assert!(
            cut.ends_with(&format!("longer than {MAX_RESPONSE_BYTES} bytes]")),
            "{cut}"
        );
        assert!(cut.len() < MAX_RESPONSE_BYTES + 100);
        assert!(!cut.contains('\u{FFFD}'), "cut on a character boundary");
        let failed: Value = serde_json::from_str(&tool_result(&Outcome::Answered {
            status: 503,
            body: b"down".to_vec(),
        }))
        .unwrap();
        assert_eq!(failed["error"], "the tool's server answered HTTP 503");
        let late: Value =
            serde_json::from_str(&tool_result(&Outcome::TimedOut { after_ms: 800 })).unwrap();
        assert!(late["error"].as_str().unwrap().contains("800 ms"));
    }

    #[test]
    fn the_request_names_the_call_and_the_caller() {
        let args = check_arguments(&json!({}), r#"{"order":"A1"}"#).unwrap();
        let body: Value = serde_json::from_str(&request_body(
            "lookup_order",
            &args,
            "call_1",
            Some("+14155550100"),
            Some("agt_1"),
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"tool": "lookup_order", "arguments": {"order": "A1"}, "call_id": "call_1",
                   "caller": "+14155550100", "agent_id": "agt_1"})
        );
    }
}
