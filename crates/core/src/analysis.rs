//! Post-call analysis: the fields an agent asks the LLM to fill in after each call (and an
//! optional success criterion), validated when the agent is saved; the strict JSON schema the
//! request carries, built from that definition; the answer checked against the definition (an
//! answer that does not fit is recorded as `invalid` with the reasons, never taken as it is);
//! and the `analysis.*` filters of the call list.

use crate::scheduling::request::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Most fields one agent may define (each is a property the model must fill in).
pub const MAX_FIELDS: usize = 20;
/// Longest field name, in bytes (names are `snake_case` ASCII).
pub const MAX_NAME_BYTES: usize = 64;
/// Longest field description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1000;
/// Longest success criterion, in bytes.
pub const MAX_CRITERION_BYTES: usize = 2000;
/// Most values of one enum field.
pub const MAX_ENUM_VALUES: usize = 50;
/// Longest enum value, in bytes.
pub const MAX_ENUM_VALUE_BYTES: usize = 100;
/// Longest string the model may put in a string field or `success_reason`, in characters: an
/// answer is stored on the call and sent in an event, so its size is bounded here.
pub const MAX_STRING_VALUE_CHARS: usize = 2000;
/// Most `analysis.*` filters one call list may combine.
pub const MAX_FILTERS: usize = 5;
/// How much of an invalid answer is kept for the operator to read, in bytes.
const MAX_RAW_BYTES: usize = 4096;
/// How many reasons an invalid answer records (an answer may be wrong in every key).
const MAX_REASONS: usize = 20;
/// Names the success criterion's answer uses: no field may take them.
const RESERVED: [&str; 2] = ["success", "success_reason"];
/// The schema's name in `response_format`.
const SCHEMA_NAME: &str = "call_analysis";

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    Boolean,
    /// One of the field's `values`.
    Enum,
}

impl FieldType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "string" => Some(FieldType::String),
            "number" => Some(FieldType::Number),
            "boolean" => Some(FieldType::Boolean),
            "enum" => Some(FieldType::Enum),
            _ => None,
        }
    }

    fn json_type(self) -> &'static str {
        match self {
            FieldType::String | FieldType::Enum => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
        }
    }
}

/// One field the model fills in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisField {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub description: String,
    /// The allowed values of an enum field (empty for the other types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// A required field must have a value; an optional one may be `null`.
    #[serde(default)]
    pub required: bool,
}

/// An agent's `analysis` setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisSpec {
    pub fields: Vec<AnalysisField>,
    /// When set, the model also answers `success` (boolean) and `success_reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_criterion: Option<String>,
}

fn error(field: &str, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code,
        message: message.into(),
    }
}

/// Whether `name` is `snake_case`: a lowercase letter, then lowercase letters, digits and `_`.
fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A non-blank string of at most `max` bytes at `path`, trimmed; errors name `path`.
fn bounded_text(
    value: Option<&Value>,
    path: &str,
    max: usize,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        None | Some(Value::Null) if !required => None,
        None | Some(Value::Null) => {
            errors.push(error(path, "required", format!("{path} is required")));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(error(path, "required", format!("{path} must not be blank")));
            None
        }
        Some(Value::String(s)) if s.len() > max => {
            errors.push(error(
                path,
                "too_long",
                format!("{path} is at most {max} bytes"),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(error(
                path,
                "invalid_type",
                format!("{path} must be a string"),
            ));
            None
        }
    }
}

/// Validates an agent's `analysis` setting (`{fields, success_criterion?}`); every problem is
/// listed, each naming its path under `analysis`.
pub fn parse_spec(value: &Value) -> Result<AnalysisSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = value.as_object() else {
        return Err(vec![error(
            "analysis",
            "invalid_type",
            "analysis must be an object",
        )]);
    };
    for key in obj.keys() {
        if key != "fields" && key != "success_criterion" {
            errors.push(error(
                &format!("analysis.{}", clip(key, MAX_NAME_BYTES)),
                "unknown_field",
                "analysis has fields and success_criterion only",
            ));
        }
    }
    let success_criterion = bounded_text(
        obj.get("success_criterion"),
        "analysis.success_criterion",
        MAX_CRITERION_BYTES,
        false,
        &mut errors,
    );
    let raw_fields = match obj.get("fields") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(list)) if list.len() > MAX_FIELDS => {
            errors.push(error(
                "analysis.fields",
                "too_many",
                format!("analysis.fields has at most {MAX_FIELDS} fields"),
            ));
            &[][..]
        }
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => {
            errors.push(error(
                "analysis.fields",
                "invalid_type",
                "analysis.fields must be an array",
            ));
            &[][..]
        }
    };
    let mut fields: Vec<AnalysisField> = Vec::new();
    for (i, raw) in raw_fields.iter().enumerate() {
        if let Some(field) = parse_field(raw, &format!("analysis.fields[{i}]"), &mut errors) {
            if fields.iter().any(|f| f.name == field.name) {
                errors.push(error(
                    &format!("analysis.fields[{i}].name"),
                    "duplicate",
                    format!("field {} is defined twice", field.name),
                ));
            } else {
                fields.push(field);
            }
        }
    }
    if raw_fields.is_empty() && success_criterion.is_none() && errors.is_empty() {
        errors.push(error(
            "analysis.fields",
            "required",
            "analysis needs at least one field or a success_criterion",
        ));
    }
    if errors.is_empty() {
        Ok(AnalysisSpec {
            fields,
            success_criterion,
        })
    } else {
        Err(errors)
    }
}

fn parse_field(raw: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<AnalysisField> {
    let Some(obj) = raw.as_object() else {
        errors.push(error(
            path,
            "invalid_type",
            format!("{path} must be an object"),
        ));
        return None;
    };
    let before = errors.len();
    for key in obj.keys() {
        if !["name", "type", "description", "values", "required"].contains(&key.as_str()) {
            errors.push(error(
                &format!("{path}.{}", clip(key, MAX_NAME_BYTES)),
                "unknown_field",
                "a field has name, type, description, values and required only",
            ));
        }
    }
    let name = match obj.get("name") {
        Some(Value::String(n)) if n.len() > MAX_NAME_BYTES => {
            errors.push(error(
                &format!("{path}.name"),
                "too_long",
                format!("a field name is at most {MAX_NAME_BYTES} bytes"),
            ));
            None
        }
        Some(Value::String(n)) if !is_snake_case(n) => {
            errors.push(error(
                &format!("{path}.name"),
                "invalid_value",
                "a field name is snake_case: a lowercase letter, then lowercase letters, digits or _",
            ));
            None
        }
        Some(Value::String(n)) if RESERVED.contains(&n.as_str()) => {
            errors.push(error(
                &format!("{path}.name"),
                "reserved",
                format!("{n} is the success criterion's answer; pick another name"),
            ));
            None
        }
        Some(Value::String(n)) => Some(n.clone()),
        None | Some(Value::Null) => {
            errors.push(error(
                &format!("{path}.name"),
                "required",
                format!("{path}.name is required"),
            ));
            None
        }
        Some(_) => {
            errors.push(error(
                &format!("{path}.name"),
                "invalid_type",
                format!("{path}.name must be a string"),
            ));
            None
        }
    };
    let kind = match obj
        .get("type")
        .and_then(Value::as_str)
        .and_then(FieldType::parse)
    {
        Some(kind) => Some(kind),
        None => {
            errors.push(error(
                &format!("{path}.type"),
                "invalid_value",
                format!("{path}.type is one of string, number, boolean, enum"),
            ));
            None
        }
    };
    let description = bounded_text(
        obj.get("description"),
        &format!("{path}.description"),
        MAX_DESCRIPTION_BYTES,
        true,
        errors,
    );
    let required = match obj.get("required") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(error(
                &format!("{path}.required"),
                "invalid_type",
                format!("{path}.required must be a boolean"),
            ));
            false
        }
    };
    let values = enum_values(obj.get("values"), kind, path, errors);
    if errors.len() > before {
        return None;
    }
    Some(AnalysisField {
        name: name?,
        kind: kind?,
        description: description?,
        values,
        required,
    })
}

/// An enum field's values: 1 to [`MAX_ENUM_VALUES`] distinct non-blank strings; no other type
/// takes any.
fn enum_values(
    raw: Option<&Value>,
    kind: Option<FieldType>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let at = format!("{path}.values");
    let list = match raw {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(list),
        Some(_) => {
            errors.push(error(&at, "invalid_type", format!("{at} must be an array")));
            return Vec::new();
        }
    };
    match (kind, list) {
        (Some(FieldType::Enum), None) => {
            errors.push(error(&at, "required", "an enum field lists its values"));
            Vec::new()
        }
        (Some(FieldType::Enum), Some(list)) if list.is_empty() || list.len() > MAX_ENUM_VALUES => {
            errors.push(error(
                &at,
                "invalid_value",
                format!("an enum field has 1 to {MAX_ENUM_VALUES} values"),
            ));
            Vec::new()
        }
        (Some(FieldType::Enum), Some(list)) => {
            let mut values: Vec<String> = Vec::new();
            for (i, v) in list.iter().enumerate() {
                match v.as_str() {
                    Some(s) if !s.trim().is_empty() && s.len() <= MAX_ENUM_VALUE_BYTES => {
                        if values.iter().any(|x| x == s) {
                            errors.push(error(
                                &format!("{at}[{i}]"),
                                "duplicate",
                                "enum values are distinct",
                            ));
                        } else {
                            values.push(s.to_owned());
                        }
                    }
                    _ => errors.push(error(
                        &format!("{at}[{i}]"),
                        "invalid_value",
                        format!(
                            "an enum value is a non-blank string of at most {MAX_ENUM_VALUE_BYTES} bytes"
                        ),
                    )),
                }
            }
            values
        }
        (_, Some(_)) => {
            errors.push(error(&at, "invalid_value", "only enum fields have values"));
            Vec::new()
        }
        (_, None) => Vec::new(),
    }
}

/// The agent's stored `analysis` setting, if it has a valid one (the API validated it).
pub fn from_config(config: &Value) -> Option<AnalysisSpec> {
    config
        .get("analysis")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

impl AnalysisSpec {
    /// The field `name`.
    pub fn field(&self, name: &str) -> Option<&AnalysisField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The JSON schema of the answer, in the subset OpenAI's strict structured outputs accept:
    /// every property required, no additional properties; an optional field is nullable.
    pub fn json_schema(&self) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for f in &self.fields {
            let kind = f.kind.json_type();
            let mut property = json!({
                "type": if f.required { json!(kind) } else { json!([kind, "null"]) },
                "description": f.description,
            });
            if f.kind == FieldType::Enum {
                let mut values: Vec<Value> = f.values.iter().map(|v| json!(v)).collect();
                if !f.required {
                    values.push(Value::Null);
                }
                property["enum"] = Value::from(values);
            }
            properties.insert(f.name.clone(), property);
            required.push(f.name.clone());
        }
        if let Some(criterion) = &self.success_criterion {
            properties.insert(
                "success".into(),
                json!({"type": "boolean", "description": format!(
                    "Whether the call met this criterion: {criterion}")}),
            );
            properties.insert(
                "success_reason".into(),
                json!({"type": "string", "description":
                    "One sentence on why the call did or did not meet the criterion."}),
            );
            required.extend(RESERVED.map(str::to_owned));
        }
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// The chat request's `response_format`: the answer must follow [`Self::json_schema`].
    pub fn response_format(&self) -> Value {
        json!({
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": true, "schema": self.json_schema()},
        })
    }

    /// Checks the model's answer (the message content) against the definition: a JSON object
    /// with exactly the defined keys, each of its type (enum values from the list, strings
    /// bounded), required ones not null. Anything else is `invalid`, with the reasons.
    pub fn validate(&self, content: &str) -> AnalysisResult {
        let answer: Value = match serde_json::from_str(content) {
            Ok(v) => v,
            Err(e) => {
                return AnalysisResult::invalid(
                    vec![format!("the answer is not JSON: {e}")],
                    content,
                )
            }
        };
        let Some(obj) = answer.as_object() else {
            return AnalysisResult::invalid(
                vec!["the answer is not a JSON object".to_owned()],
                content,
            );
        };
        let mut reasons = Vec::new();
        let criterion = self.success_criterion.is_some();
        for key in obj.keys() {
            let reserved = RESERVED.contains(&key.as_str());
            if self.field(key).is_none() && !(criterion && reserved) {
                reasons.push(format!("unexpected key {:?}", clip(key, MAX_NAME_BYTES)));
            }
        }
        let mut values = Map::new();
        for f in &self.fields {
            let value = obj.get(&f.name).unwrap_or(&Value::Null);
            match check_value(f, value) {
                Ok(()) => {
                    values.insert(f.name.clone(), value.clone());
                }
                Err(reason) => reasons.push(format!("{}: {reason}", f.name)),
            }
        }
        let (mut success, mut success_reason) = (None, None);
        if criterion {
            match obj.get("success") {
                Some(Value::Bool(b)) => success = Some(*b),
                Some(Value::Null) | None => reasons.push("success: missing".to_owned()),
                Some(_) => reasons.push("success: expected a boolean".to_owned()),
            }
            match obj.get("success_reason") {
                Some(Value::String(s)) if s.chars().count() <= MAX_STRING_VALUE_CHARS => {
                    success_reason = Some(s.clone())
                }
                Some(Value::String(_)) => reasons.push(format!(
                    "success_reason: longer than {MAX_STRING_VALUE_CHARS} characters"
                )),
                Some(Value::Null) | None => reasons.push("success_reason: missing".to_owned()),
                Some(_) => reasons.push("success_reason: expected a string".to_owned()),
            }
        }
        if !reasons.is_empty() {
            return AnalysisResult::invalid(reasons, content);
        }
        AnalysisResult {
            status: AnalysisStatus::Ok,
            values: Some(values),
            success,
            success_reason,
            errors: Vec::new(),
            raw: None,
        }
    }
}

/// Why `value` does not fit `field`, if it does not.
fn check_value(field: &AnalysisField, value: &Value) -> Result<(), String> {
    let expected = || format!("expected {}", field.kind.json_type());
    match (field.kind, value) {
        (_, Value::Null) if field.required => Err("required, but missing or null".to_owned()),
        (_, Value::Null) => Ok(()),
        (FieldType::String, Value::String(s)) if s.chars().count() > MAX_STRING_VALUE_CHARS => {
            Err(format!("longer than {MAX_STRING_VALUE_CHARS} characters"))
        }
        (FieldType::String, Value::String(_)) => Ok(()),
        (FieldType::Number, Value::Number(_)) => Ok(()),
        (FieldType::Boolean, Value::Bool(_)) => Ok(()),
        (FieldType::Enum, Value::String(s)) if field.values.contains(s) => Ok(()),
        (FieldType::Enum, Value::String(s)) => Err(format!(
            "{:?} is not one of the field's values",
            clip(s, MAX_ENUM_VALUE_BYTES)
        )),
        _ => Err(expected()),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// How an analysis ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisStatus {
    /// The answer fits the definition: `values` (and `success`) hold it.
    Ok,
    /// The model answered, but not as defined: `errors` says how, `raw` is (the start of) it.
    Invalid,
    /// No answer: the LLM failed for good (`errors` has why).
    Failed,
}

impl AnalysisStatus {
    /// The stored and queried name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisStatus::Ok => "ok",
            AnalysisStatus::Invalid => "invalid",
            AnalysisStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(AnalysisStatus::Ok),
            "invalid" => Some(AnalysisStatus::Invalid),
            "failed" => Some(AnalysisStatus::Failed),
            _ => None,
        }
    }
}

/// A call's analysis as stored, returned by the API and sent in `call.analysis.ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisResult {
    pub status: AnalysisStatus,
    /// The fields' values (`null` for an optional field left empty); only when `ok`.
    pub values: Option<Map<String, Value>>,
    /// The success criterion's answer, when the agent has one and the answer is `ok`.
    pub success: Option<bool>,
    pub success_reason: Option<String>,
    /// Why the answer is `invalid`, or why the analysis `failed`.
    pub errors: Vec<String>,
    /// The start of an `invalid` answer, for the operator to read.
    pub raw: Option<String>,
}

impl AnalysisResult {
    fn invalid(mut reasons: Vec<String>, content: &str) -> Self {
        let more = reasons.len().saturating_sub(MAX_REASONS);
        reasons.truncate(MAX_REASONS);
        if more > 0 {
            reasons.push(format!("and {more} more"));
        }
        AnalysisResult {
            status: AnalysisStatus::Invalid,
            values: None,
            success: None,
            success_reason: None,
            errors: reasons,
            raw: Some(clip(content, MAX_RAW_BYTES).to_owned()),
        }
    }

    /// No answer could be had: `error` says why.
    pub fn failed(error: String) -> Self {
        AnalysisResult {
            status: AnalysisStatus::Failed,
            values: None,
            success: None,
            success_reason: None,
            errors: vec![error],
            raw: None,
        }
    }
}

/// One `analysis.*` filter of `GET /api/v1/calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalysisFilter {
    /// `analysis.status=ok|invalid|failed`.
    Status(AnalysisStatus),
    /// `analysis.success=true|false` (valid analyses only).
    Success(bool),
    /// `analysis.<field>=<value>`: the field's value equals this (valid analyses only).
    Field { name: String, value: FilterValue },
}

/// The value a field filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    Text(String),
    Bool(bool),
}

impl AnalysisFilter {
    /// The JSON path of the stored result this filter compares (`None` for the status column).
    pub fn json_path(&self) -> Option<String> {
        match self {
            AnalysisFilter::Status(_) => None,
            AnalysisFilter::Success(_) => Some("$.success".to_owned()),
            // Names are snake_case (checked against the definition), so the path needs no quoting.
            AnalysisFilter::Field { name, .. } => Some(format!("$.values.{name}")),
        }
    }
}

/// Reads the `analysis.*` parameters of a call list (`params`: key without the `analysis.`
/// prefix, value). `status` and `success` need nothing else; a field needs the definition of
/// the agent the list is narrowed to (`spec`, from `agent_id`) and must be a string, enum or
/// boolean field of it. Every problem is listed, named by its parameter.
pub fn parse_filters<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    spec: Option<&AnalysisSpec>,
    agent_given: bool,
) -> Result<Vec<AnalysisFilter>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut filters = Vec::new();
    let mut params: Vec<(&str, &str)> = params.into_iter().collect();
    params.sort_unstable();
    if params.len() > MAX_FILTERS {
        return Err(vec![error(
            "analysis",
            "too_many",
            format!("at most {MAX_FILTERS} analysis filters"),
        )]);
    }
    for (key, value) in params {
        let param = format!("analysis.{}", clip(key, MAX_NAME_BYTES));
        let boolean = |errors: &mut Vec<FieldError>| match value {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                errors.push(error(
                    &param,
                    "invalid_value",
                    format!("{param} is true or false"),
                ));
                None
            }
        };
        match key {
            "status" => match AnalysisStatus::parse(value) {
                Some(s) => filters.push(AnalysisFilter::Status(s)),
                None => errors.push(error(
                    &param,
                    "invalid_value",
                    "analysis.status is ok, invalid or failed",
                )),
            },
            "success" => {
                if let Some(b) = boolean(&mut errors) {
                    filters.push(AnalysisFilter::Success(b));
                }
            }
            _ if !agent_given => errors.push(error(
                "agent_id",
                "required",
                format!("{param} filters the calls of one agent: add agent_id"),
            )),
            _ => match spec.and_then(|s| s.field(key)) {
                None => errors.push(error(
                    &param,
                    "unknown_field",
                    format!("the agent defines no analysis field {key:?}"),
                )),
                Some(f) if f.kind == FieldType::Number => errors.push(error(
                    &param,
                    "invalid_value",
                    "number fields cannot be filtered on",
                )),
                Some(f) if f.kind == FieldType::Enum && !f.values.iter().any(|v| v == value) => {
                    errors.push(error(
                        &param,
                        "invalid_value",
                        format!("{param} is one of the field's values"),
                    ))
                }
                Some(f) => {
                    let value = if f.kind == FieldType::Boolean {
                        boolean(&mut errors).map(FilterValue::Bool)
                    } else {
                        Some(FilterValue::Text(value.to_owned()))
                    };
                    if let Some(value) = value {
                        filters.push(AnalysisFilter::Field {
                            name: f.name.clone(),
                            value,
                        });
                    }
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(filters)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AnalysisSpec {
        parse_spec(&json!({
            "fields": [
                {"name": "intent", "type": "enum", "description": "Why they called",
                 "values": ["booking", "question", "complaint"], "required": true},
                {"name": "party_size", "type": "number", "description": "Guests"},
                {"name": "wants_callback", "type": "boolean", "description": "Call back?",
                 "required": true},
                {"name": "caller_name", "type": "string", "description": "Their name"},
            ],
            "success_criterion": "A table was booked.",
        }))
        .unwrap()
    }

    fn codes(errors: Vec<FieldError>) -> Vec<(String, &'static str)> {
        errors.into_iter().map(|e| (e.field, e.code)).collect()
    }

    #[test]
    fn a_definition_is_read_with_its_defaults() {
        let spec = spec();
        assert_eq!(spec.fields.len(), 4);
        assert_eq!(spec.fields[0].values, ["booking", "question", "complaint"]);
        assert!(!spec.fields[1].required);
        assert_eq!(
            spec.success_criterion.as_deref(),
            Some("A table was booked.")
        );
        // Stored and read back unchanged (the session reads it from the agent's config).
        let stored = json!({"analysis": serde_json::to_value(&spec).unwrap()});
        assert_eq!(from_config(&stored), Some(spec));
        assert_eq!(from_config(&json!({})), None);
        assert!(parse_spec(&json!({"success_criterion": "Booked."})).is_ok());
    }

    #[test]
    fn every_problem_in_a_definition_is_listed() {
        let errors = parse_spec(&json!({
            "fields": [
                {"name": "Intent", "type": "string", "description": "x"},
                {"name": "a", "type": "text", "description": "x"},
                {"name": "b", "type": "enum", "description": "x", "values": []},
                {"name": "c", "type": "string", "description": " "},
                {"name": "d", "type": "string", "description": "x", "values": ["y"]},
                {"name": "e", "type": "enum", "description": "x", "values": ["y", "y", ""]},
                {"name": "success", "type": "boolean", "description": "x"},
                {"name": "f", "type": "string", "description": "x", "required": "yes"},
                {"name": "g", "type": "string", "description": "x", "extra": 1},
                {"name": "h", "type": "string", "description": "x"},
                {"name": "h", "type": "number", "description": "y"},
                "nope",
            ],
            "success_criterion": 5,
            "other": true,
        }))
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("analysis.other".to_owned(), "unknown_field"),
                ("analysis.success_criterion".to_owned(), "invalid_type"),
                ("analysis.fields[0].name".to_owned(), "invalid_value"),
                ("analysis.fields[1].type".to_owned(), "invalid_value"),
                ("analysis.fields[2].values".to_owned(), "invalid_value"),
                ("analysis.fields[3].description".to_owned(), "required"),
                ("analysis.fields[4].values".to_owned(), "invalid_value"),
                ("analysis.fields[5].values[1]".to_owned(), "duplicate"),
                ("analysis.fields[5].values[2]".to_owned(), "invalid_value"),
                ("analysis.fields[6].name".to_owned(), "reserved"),
                ("analysis.fields[7].required".to_owned(), "invalid_type"),
                ("analysis.fields[8].extra".to_owned(), "unknown_field"),
                ("analysis.fields[10].name".to_owned(), "duplicate"),
                ("analysis.fields[11]".to_owned(), "invalid_type"),
            ]
        );
    }

    #[test]
    fn definitions_are_bounded() {
        let field =
            |i: usize| json!({"name": format!("f{i}"), "type": "string", "description": "x"});
        let max: Vec<Value> = (0..MAX_FIELDS).map(field).collect();
        assert!(parse_spec(&json!({ "fields": max })).is_ok());
        let over: Vec<Value> = (0..=MAX_FIELDS).map(field).collect();
        assert_eq!(
            codes(parse_spec(&json!({ "fields": over })).unwrap_err()),
            [("analysis.fields".to_owned(), "too_many")]
        );
        let long = |n: usize| "x".repeat(n);
        let errors = parse_spec(&json!({
            "fields": [
                {"name": long(MAX_NAME_BYTES + 1), "type": "string", "description": "x"},
                {"name": "a", "type": "string", "description": long(MAX_DESCRIPTION_BYTES + 1)},
                {"name": "b", "type": "enum", "description": "x",
                 "values": (0..=MAX_ENUM_VALUES).map(|i| i.to_string()).collect::<Vec<_>>()},
                {"name": "c", "type": "enum", "description": "x",
                 "values": [long(MAX_ENUM_VALUE_BYTES + 1)]},
            ],
            "success_criterion": long(MAX_CRITERION_BYTES + 1),
        }))
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("analysis.success_criterion".to_owned(), "too_long"),
                ("analysis.fields[0].name".to_owned(), "too_long"),
                ("analysis.fields[1].description".to_owned(), "too_long"),
                ("analysis.fields[2].values".to_owned(), "invalid_value"),
                ("analysis.fields[3].values[0]".to_owned(), "invalid_value"),
            ]
        );
        assert_eq!(
            codes(parse_spec(&json!({"fields": []})).unwrap_err()),
            [("analysis.fields".to_owned(), "required")]
        );
        assert_eq!(
            codes(parse_spec(&json!([])).unwrap_err()),
            [("analysis".to_owned(), "invalid_type")]
        );
    }

    #[test]
    fn the_schema_is_strict_and_nullable_where_optional() {
        let schema = spec().json_schema();
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["required"],
            json!([
                "intent",
                "party_size",
                "wants_callback",
                "caller_name",
                "success",
                "success_reason"
            ])
        );
        let p = &schema["properties"];
        assert_eq!(p["intent"]["type"], "string");
        assert_eq!(
            p["intent"]["enum"],
            json!(["booking", "question", "complaint"])
        );
        assert_eq!(p["intent"]["description"], "Why they called");
        assert_eq!(p["party_size"]["type"], json!(["number", "null"]));
        assert_eq!(p["wants_callback"]["type"], "boolean");
        assert_eq!(p["caller_name"]["type"], json!(["string", "null"]));
        assert_eq!(p["success"]["type"], "boolean");
        assert!(p["success"]["description"]
            .as_str()
            .unwrap()
            .contains("A table was booked."));
        assert_eq!(p["success_reason"]["type"], "string");
        let format = spec().response_format();
        assert_eq!(format["type"], "json_schema");
        assert_eq!(format["json_schema"]["strict"], true);
        assert_eq!(format["json_schema"]["name"], "call_analysis");
        assert_eq!(format["json_schema"]["schema"], schema);
        // An optional enum may be null; without a criterion there is no success.
        let plain = parse_spec(&json!({"fields": [{"name": "mood", "type": "enum",
            "description": "x", "values": ["calm", "angry"]}]}))
        .unwrap()
        .json_schema();
        assert_eq!(
            plain["properties"]["mood"]["enum"],
            json!(["calm", "angry", null])
        );
        assert_eq!(plain["required"], json!(["mood"]));
    }

    #[test]
    fn a_fitting_answer_is_ok() {
        let result = spec().validate(
            r#"{"intent": "booking", "party_size": 4, "wants_callback": false,
                "caller_name": null, "success": true, "success_reason": "Booked for 4."}"#,
        );
        assert_eq!(result.status, AnalysisStatus::Ok, "{:?}", result.errors);
        let values = result.values.unwrap();
        assert_eq!(values["intent"], "booking");
        assert_eq!(values["party_size"], 4);
        assert_eq!(values["caller_name"], Value::Null);
        assert_eq!(result.success, Some(true));
        assert_eq!(result.success_reason.as_deref(), Some("Booked for 4."));
        assert!(result.raw.is_none() && result.errors.is_empty());
        // An optional key left out is null, as strict mode would have sent it.
        let result = spec().validate(
            r#"{"intent": "question", "wants_callback": true, "success": false,
                "success_reason": "No booking."}"#,
        );
        assert_eq!(result.status, AnalysisStatus::Ok);
        assert_eq!(result.values.unwrap()["party_size"], Value::Null);
    }

    #[test]
    fn an_answer_that_does_not_fit_is_invalid_with_every_reason() {
        let content = r#"{"intent": "refund", "party_size": "four", "wants_callback": null,
            "caller_name": 7, "success": "yes", "admin": true}"#;
        let result = spec().validate(content);
        assert_eq!(result.status, AnalysisStatus::Invalid);
        assert_eq!(
            result.errors,
            [
                "unexpected key \"admin\"",
                "intent: \"refund\" is not one of the field's values",
                "party_size: expected number",
                "wants_callback: required, but missing or null",
                "caller_name: expected string",
                "success: expected a boolean",
                "success_reason: missing",
            ]
        );
        assert_eq!(result.values, None);
        assert_eq!(result.success, None);
        assert_eq!(result.raw.as_deref(), Some(content));

        let result = spec().validate("Sure, I can help with that.");
        assert_eq!(result.status, AnalysisStatus::Invalid);
        assert!(result.errors[0].starts_with("the answer is not JSON"));
        assert_eq!(
            spec().validate("[1]").errors,
            ["the answer is not a JSON object"]
        );
        // Without a criterion, success is just another unexpected key.
        let plain = parse_spec(&json!({"fields": [{"name": "a", "type": "boolean",
            "description": "x"}]}))
        .unwrap();
        assert_eq!(
            plain.validate(r#"{"a": true, "success": true}"#).errors,
            ["unexpected key \"success\""]
        );
    }

    #[test]
    fn an_oversized_answer_is_invalid_and_bounded() {
        let long = "x".repeat(MAX_STRING_VALUE_CHARS + 1);
        let content = json!({"intent": "booking", "wants_callback": true, "caller_name": long,
            "success": true, "success_reason": "ok"})
        .to_string();
        let result = spec().validate(&content);
        assert_eq!(result.status, AnalysisStatus::Invalid);
        assert_eq!(
            result.errors,
            [format!(
                "caller_name: longer than {MAX_STRING_VALUE_CHARS} characters"
            )]
        );
        // A flood of keys: the reasons and the kept text are capped.
        let mut flood = Map::new();
        for i in 0..500 {
            flood.insert(format!("k{i}{}", "y".repeat(100)), json!(i));
        }
        let result = spec().validate(&Value::Object(flood).to_string());
        assert_eq!(result.errors.len(), MAX_REASONS + 1);
        assert!(result.errors.last().unwrap().starts_with("and "));
        assert!(result.errors.iter().all(|e| e.len() < 200));
        assert!(result.raw.unwrap().len() <= MAX_RAW_BYTES);
    }

    #[test]
    fn the_result_has_one_shape_everywhere() {
        let failed = AnalysisResult::failed("analysis request failed: HTTP 500".into());
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"status": "failed", "values": null, "success": null, "success_reason": null,
                   "errors": ["analysis request failed: HTTP 500"], "raw": null})
        );
        let text = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            serde_json::from_str::<AnalysisResult>(&text).unwrap(),
            failed
        );
    }

    #[test]
    fn list_filters_are_checked_against_the_agents_definition() {
        let spec = spec();
        let parse = |params: &[(&'static str, &'static str)], agent: bool| {
            parse_filters(params.iter().copied(), agent.then_some(&spec), agent)
        };
        assert_eq!(
            parse(&[("success", "true"), ("status", "ok")], false).unwrap(),
            [
                AnalysisFilter::Status(AnalysisStatus::Ok),
                AnalysisFilter::Success(true)
            ]
        );
        let filters = parse(
            &[
                ("intent", "booking"),
                ("wants_callback", "false"),
                ("caller_name", "Ann"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            filters,
            [
                AnalysisFilter::Field {
                    name: "caller_name".into(),
                    value: FilterValue::Text("Ann".into())
                },
                AnalysisFilter::Field {
                    name: "intent".into(),
                    value: FilterValue::Text("booking".into())
                },
                AnalysisFilter::Field {
                    name: "wants_callback".into(),
                    value: FilterValue::Bool(false)
                },
            ]
        );
        assert_eq!(filters[1].json_path().as_deref(), Some("$.values.intent"));
        assert_eq!(
            AnalysisFilter::Success(true).json_path().as_deref(),
            Some("$.success")
        );
        assert_eq!(AnalysisFilter::Status(AnalysisStatus::Ok).json_path(), None);

        assert_eq!(
            codes(parse(&[("intent", "booking")], false).unwrap_err()),
            [("agent_id".to_owned(), "required")]
        );
        assert_eq!(
            codes(
                parse(
                    &[
                        ("nope", "x"),
                        ("party_size", "4"),
                        ("intent", "refund"),
                        ("wants_callback", "maybe"),
                        ("status", "done")
                    ],
                    true
                )
                .unwrap_err()
            ),
            [
                ("analysis.intent".to_owned(), "invalid_value"),
                ("analysis.nope".to_owned(), "unknown_field"),
                ("analysis.party_size".to_owned(), "invalid_value"),
                ("analysis.status".to_owned(), "invalid_value"),
                ("analysis.wants_callback".to_owned(), "invalid_value"),
            ]
        );
        // Another tenant's agent (or an agent without analysis) defines nothing.
        assert_eq!(
            codes(parse_filters([("intent", "booking")], None, true).unwrap_err()),
            [("analysis.intent".to_owned(), "unknown_field")]
        );
        let many: Vec<(&str, &str)> = vec![("success", "true"); MAX_FILTERS + 1];
        assert_eq!(
            codes(parse_filters(many, None, false).unwrap_err()),
            [("analysis".to_owned(), "too_many")]
        );
    }
}
