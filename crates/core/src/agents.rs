//! Validation of `/api/v1/agents` and `/api/v1/numbers` bodies, and reading an agent's stored
//! configuration (voice, LLM, retry policy for unanswered calls, call backs, dialling countries).

use crate::dialing::{is_known_country, DialPolicy};
use crate::hours::parse_hours;
use crate::scheduling::request::{is_e164, FieldError};
use crate::scheduling::state::RetryPolicy;
use crate::zones::ZoneRules;
use serde_json::{json, Map, Value};

/// Longest agent name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest system prompt / first message, in bytes.
const MAX_PROMPT_BYTES: usize = 32 * 1024;
/// Upper bounds of a retry policy: a runaway policy must not dial someone all day.
const MAX_RETRIES: u64 = 10;
const MIN_SPACING_SECS: u64 = 10;
const MAX_SPACING_SECS: u64 = 7 * 24 * 3600;
/// Call backs one number may get per rolling 24 hours, unless the agent says otherwise.
pub const DEFAULT_CALLBACKS_PER_NUMBER_PER_DAY: u32 = 1;
/// Upper bound of `callbacks.max_per_number_per_day`.
const MAX_CALLBACKS_PER_NUMBER_PER_DAY: u64 = 10;
/// Longest `allowed_countries` list.
const MAX_ALLOWED_COUNTRIES: usize = 50;
/// TTS providers an agent may name.
pub const VOICE_PROVIDERS: [&str; 3] = ["elevenlabs", "deepgram", "openai"];

/// A validated agent: the columns, and `config` (voice, llm, retry) as stored JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    pub name: String,
    pub system_prompt: String,
    pub first_message: Option<String>,
    /// `{voice?, llm?, retry?, …, analysis?, …, variables?, reminders?}`, only the validated parts.
    pub config: Value,
}

/// Validates `POST /api/v1/agents`; every problem is listed. HTTP tools must be public https
/// targets (see [`parse_agent_for`]).
pub fn parse_agent(body: &Value) -> Result<AgentSpec, Vec<FieldError>> {
    parse_agent_for(body, false)
}

/// [`parse_agent`], with `allow_loopback_tools` (the `ALLOW_PRIVATE_TARGETS` setting) also
/// accepting HTTP tools on this machine.
pub fn parse_agent_for(
    body: &Value,
    allow_loopback_tools: bool,
) -> Result<AgentSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![error(
            "",
            "invalid_body",
            "the body must be a JSON object",
        )]);
    };
    let name = text(obj, "name", MAX_NAME_CHARS * 4, true, &mut errors);
    if name
        .as_deref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        errors.push(error("name", "too_long", "name is at most 200 characters"));
    }
    let system_prompt = text(obj, "system_prompt", MAX_PROMPT_BYTES, true, &mut errors);
    let first_message = text(obj, "first_message", MAX_PROMPT_BYTES, false, &mut errors);
    let mut config = Map::new();
    if let Some(voice) = voice(obj, &mut errors) {
        config.insert("voice".into(), voice);
    }
    if let Some(llm) = llm(obj, &mut errors) {
        config.insert("llm".into(), llm);
    }
    if let Some(retry) = retry(obj, &mut errors) {
        config.insert("retry".into(), retry);
    }
    if let Some(callbacks) = callbacks(obj, &mut errors) {
        config.insert("callbacks".into(), callbacks);
    }
    let countries = allowed_countries_field(obj, &mut errors);
    if let Some(countries) = &countries {
        config.insert("allowed_countries".into(), json!(countries));
    }
    // Live-call settings (see `live`): conversation timers/turn-taking and STT. They are read
    // exactly as a call will read them; any value a call would have to replace is an error here.
    for key in ["session", "stt"] {
        if let Some(value) = sub_object(obj, key, &mut errors) {
            let value = Value::Object(value.clone());
            let probe = crate::live::agent_setup("", None, &json!({ key: value.clone() }));
            let preemptive = ["preemptive", "preemptive_stable_ms"]
                .into_iter()
                .find(|field| key == "session" && value.get(field).is_some());
            if key == "session" && value.get("http_tools").is_some() {
                errors.push(error(
                    "session.http_tools",
                    "invalid_value",
                    "HTTP tools are declared with http_tools",
                ));
            } else if key == "session" && value.get("schedule_callback").is_some() {
                errors.push(error(
                    "session.schedule_callback",
                    "invalid_value",
                    "call backs are turned on with callbacks.enabled",
                ));
            } else if let Some(field) = preemptive {
                errors.push(FieldError {
                    field: format!("session.{field}"),
                    code: "invalid_value",
                    message: "preemptive generation is set with stt.preemptive".to_owned(),
                });
            } else if probe.warnings.is_empty() {
                // The transfer number is dialled like any other: same rules, same countries.
                if let Some(to) = probe.session.transfer_to.as_deref().map(str::trim) {
                    if !to.is_empty() {
                        let policy = DialPolicy {
                            allowed_countries: countries.clone(),
                        };
                        if let Err(refusal) = policy.check(to) {
                            errors.push(FieldError::refused("session.transfer_to", &refusal));
                        }
                    }
                }
                config.insert(key.into(), value);
            } else {
                for warning in probe.warnings {
                    errors.push(FieldError {
                        field: key.to_owned(),
                        code: "invalid_value",
                        message: warning,
                    });
                }
            }
        }
    }
    if let Some(analysis) = analysis(obj, &mut errors) {
        config.insert("analysis".into(), analysis);
    }
    if let Some(recording) = recording(obj, &mut errors) {
        config.insert("recording".into(), recording);
    }
    match obj.get("http_tools") {
        None | Some(Value::Null) => {}
        Some(tools) => match crate::http_tools::parse_http_tools(tools, allow_loopback_tools) {
            Ok(tools) => {
                config.insert("http_tools".into(), tools);
            }
            Err(e) => errors.extend(e),
        },
    }
    if let Some(sms) = sms_settings(obj, &mut errors) {
        config.insert("sms".into(), sms);
    }
    if let Some(calendar) = obj.get("calendar").filter(|v| !v.is_null()) {
        if let Some(calendar) = crate::appointments::parse_calendar(calendar, &mut errors) {
            // The feed is fetched like a webhook target: the same address rules.
            let stored = json!({ "calendar": calendar });
            if let Err(e) = crate::appointments::check_feed_url(&stored, allow_loopback_tools) {
                errors.push(e);
            }
            config.insert("calendar".into(), calendar);
        }
    }
    let variables = variables(obj, &mut errors);
    if let Some(variables) = &variables {
        config.insert("variables".into(), variables.clone());
    }
    // Every variable of the prompt and greeting must be one a call can fill: checked against the
    // declared contact fields, so a typo is refused here rather than spoken as nothing.
    let known = template_known(&Value::Object(config.clone()));
    for (field, text) in [
        ("system_prompt", system_prompt.as_deref()),
        ("first_message", first_message.as_deref()),
    ] {
        if let Err(found) = crate::template::validate(text.unwrap_or_default(), &known) {
            errors.extend(
                found
                    .iter()
                    .map(|e| FieldError::new(field, e.code(), format!("{field}: {e}"))),
            );
        }
    }
    if let Some(reminders) = sub_object(obj, "reminders", &mut errors) {
        match crate::reminders::parse_settings(reminders) {
            Ok(reminders) => {
                config.insert("reminders".into(), reminders);
            }
            Err(e) => errors.extend(e),
        }
    }
    match (name, system_prompt) {
        (Some(name), Some(system_prompt)) if errors.is_empty() => Ok(AgentSpec {
            name,
            system_prompt,
            first_message,
            config: Value::Object(config),
        }),
        _ => Err(errors),
    }
}

/// Most contact fields an agent may declare.
const MAX_CONTACT_FIELDS: usize = 50;

/// `variables`: `{contact_fields: [name, …]}`, the contact fields beyond name, email and phone
/// its prompt and greeting may use (`{{contact.<field>}}`); `None` when absent.
fn variables(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let variables = sub_object(obj, "variables", errors)?;
    let invalid = |errors: &mut Vec<FieldError>, message: String| {
        errors.push(FieldError::new(
            "variables.contact_fields",
            "invalid_value",
            message,
        ));
        None
    };
    let list = match variables.get("contact_fields") {
        None | Some(Value::Null) => return Some(json!({"contact_fields": []})),
        Some(Value::Array(list)) if list.len() <= MAX_CONTACT_FIELDS => list,
        Some(_) => {
            return invalid(
                errors,
                format!(
                "variables.contact_fields is a list of at most {MAX_CONTACT_FIELDS} field names"
            ),
            )
        }
    };
    let mut fields: Vec<&str> = Vec::new();
    for item in list {
        match item.as_str() {
            Some(f) if crate::template::CONTACT_BUILTINS.contains(&f) => {
                return invalid(
                    errors,
                    format!("variables.contact_fields: {f} is always known, do not declare it"),
                )
            }
            Some(f) if crate::template::is_field_name(f) => {
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
            _ => {
                return invalid(
                    errors,
                    format!(
                        "variables.contact_fields: {item} is not a field name (a letter or _, then letters, digits or _, at most {} characters)",
                        crate::template::MAX_FIELD_CHARS
                    ),
                )
            }
        }
    }
    Some(json!({ "contact_fields": fields }))
}

/// The contact fields an agent's stored config declares (beyond name, email and phone).
pub fn contact_fields(config: &Value) -> Vec<String> {
    config
        .pointer("/variables/contact_fields")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The variable names an agent's prompt and greeting may use, given its stored config.
pub fn template_known(config: &Value) -> crate::template::Known {
    crate::template::Known::with_contact_fields(contact_fields(config))
}

/// The retry policy in an agent's stored config; the default (2 retries, 10 min) when absent.
pub fn retry_policy(config: &Value) -> RetryPolicy {
    let default = RetryPolicy::default();
    let read = |key: &str| {
        config
            .pointer(&format!("/retry/{key}"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    RetryPolicy {
        max_retries: read("max_retries").unwrap_or(default.max_retries),
        spacing_secs: read("spacing_seconds").unwrap_or(default.spacing_secs),
    }
}

/// What an agent allows of `schedule_callback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackSettings {
    /// The tool is offered and run; off unless the agent turns it on.
    pub enabled: bool,
    /// Call backs one number may get per rolling 24 hours (per tenant).
    pub max_per_number_per_day: u32,
}

/// The call-back settings in an agent's stored config (off when absent).
pub fn callback_settings(config: &Value) -> CallbackSettings {
    CallbackSettings {
        enabled: config
            .pointer("/callbacks/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        max_per_number_per_day: config
            .pointer("/callbacks/max_per_number_per_day")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_CALLBACKS_PER_NUMBER_PER_DAY),
    }
}

/// The agent's `allowed_countries`, if it sets them.
pub fn allowed_countries(config: &Value) -> Option<Vec<String>> {
    let list = config.get("allowed_countries")?.as_array()?;
    Some(
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// Where the agent may dial: its `allowed_countries`, else the country of `our_number` (the
/// number the caller reached), else anywhere. Premium ranges are refused in every case.
pub fn dial_policy(config: &Value, our_number: Option<&str>) -> DialPolicy {
    match allowed_countries(config) {
        Some(countries) => DialPolicy::only(countries),
        None => match our_number.and_then(crate::dialing::country_of) {
            Some(country) => DialPolicy::only(vec![country.to_owned()]),
            None => DialPolicy::anywhere(),
        },
    }
}

/// The voice id in an agent's stored config, if any.
pub fn voice_id(config: &Value) -> Option<&str> {
    config.pointer("/voice/voice_id").and_then(Value::as_str)
}

/// What keeps an agent from being deleted: the numbers it answers and its calls not yet
/// finished (a scheduled call would otherwise dial with no prompt, a number would answer with
/// no one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", in_use_message(.numbers, *.open_calls))]
pub struct AgentInUse {
    /// The numbers (E.164) the agent answers.
    pub numbers: Vec<String>,
    /// Its calls in a status that is not final.
    pub open_calls: u64,
}

fn in_use_message(numbers: &[String], open_calls: u64) -> String {
    let mut uses = Vec::new();
    match numbers {
        [] => {}
        [one] => uses.push(format!("number {one}")),
        many => uses.push(format!("numbers {}", many.join(", "))),
    }
    match open_calls {
        0 => {}
        1 => uses.push("1 call not yet finished".to_owned()),
        n => uses.push(format!("{n} calls not yet finished")),
    }
    format!(
        "the agent is in use by {}: attach the numbers to another agent (or delete them) and \
         cancel or wait for the calls first",
        uses.join(" and ")
    )
}

/// An agent may be deleted only when no number answers with it and none of its calls is still
/// open (see [`open_call_statuses`]).
pub fn deletable(numbers: Vec<String>, open_calls: u64) -> Result<(), AgentInUse> {
    if numbers.is_empty() && open_calls == 0 {
        Ok(())
    } else {
        Err(AgentInUse {
            numbers,
            open_calls,
        })
    }
}

/// The call statuses that still need their agent: every status that is not final.
pub fn open_call_statuses() -> Vec<&'static str> {
    crate::scheduling::CallStatus::ALL
        .into_iter()
        .filter(|s| !crate::scheduling::state::is_terminal(*s))
        .map(|s| s.as_str())
        .collect()
}

/// A validated `POST /api/v1/numbers` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberSpec {
    pub number: String,
    pub agent_id: String,
    pub owner_phone: Option<String>,
    pub ring_owner_first: bool,
    /// Business hours as stored (see [`crate::hours`]); `None`: always routed as during hours.
    pub hours: Option<Value>,
    /// The agent answering after hours; `None`: the number's agent.
    pub after_hours_agent_id: Option<String>,
}

/// Validates `POST /api/v1/numbers`, with `zones` giving the rules of the hours' time zone;
/// the agents' existence is checked by the edge.
pub fn parse_number(body: &Value, zones: &dyn ZoneRules) -> Result<NumberSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![error(
            "",
            "invalid_body",
            "the body must be a JSON object",
        )]);
    };
    let number = phone(obj, "number", true, &mut errors);
    let agent_id = text(obj, "agent_id", 128, true, &mut errors);
    let owner_phone = text(obj, "owner_phone", 256, false, &mut errors).and_then(|owner| {
        // The owner's phone is dialled (ring it first): the rules of every dialled number.
        match DialPolicy::anywhere().check(&owner) {
            Ok(_) => Some(owner),
            Err(refusal) => {
                errors.push(FieldError::refused("owner_phone", &refusal));
                None
            }
        }
    });
    let ring_owner_first = match obj.get("ring_owner_first") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(error(
                "ring_owner_first",
                "invalid_type",
                "ring_owner_first must be a boolean",
            ));
            false
        }
    };
    if ring_owner_first && owner_phone.is_none() && errors.is_empty() {
        errors.push(error(
            "owner_phone",
            "required",
            "owner_phone is required with ring_owner_first",
        ));
    }
    let hours = match obj.get("hours") {
        None | Some(Value::Null) => None,
        Some(value) => parse_hours(value, zones, "hours", &mut errors).map(|h| h.to_json()),
    };
    let after_hours_agent_id = text(obj, "after_hours_agent_id", 128, false, &mut errors);
    match (number, agent_id) {
        (Some(number), Some(agent_id)) if errors.is_empty() => Ok(NumberSpec {
            number,
            agent_id,
            owner_phone,
            ring_owner_first,
            hours,
            after_hours_agent_id,
        }),
        _ => Err(errors),
    }
}

fn error(field: &str, code: &'static str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code,
        message: message.to_owned(),
    }
}

/// A non-blank string field of at most `max` bytes, trimmed.
fn text(
    obj: &Map<String, Value>,
    name: &str,
    max: usize,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) => {
            if required {
                errors.push(error(name, "required", &format!("{name} is required")));
            }
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            if required {
                errors.push(error(
                    name,
                    "required",
                    &format!("{name} must not be blank"),
                ));
            }
            None
        }
        Some(Value::String(s)) if s.len() > max => {
            errors.push(error(
                name,
                "too_long",
                &format!("{name} is at most {max} bytes"),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(error(
                name,
                "invalid_type",
                &format!("{name} must be a string"),
            ));
            None
        }
    }
}

fn phone(
    obj: &Map<String, Value>,
    name: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = text(obj, name, 16, required, errors)?;
    if is_e164(&value) {
        Some(value)
    } else {
        errors.push(error(
            name,
            "invalid_phone",
            &format!("{name} must be an E.164 number such as +15551234567"),
        ));
        None
    }
}

fn sub_object<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => {
            errors.push(error(
                name,
                "invalid_type",
                &format!("{name} must be an object"),
            ));
            None
        }
    }
}

fn voice(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let voice = sub_object(obj, "voice", errors)?;
    let provider = match voice.get("provider") {
        Some(Value::String(p)) if VOICE_PROVIDERS.contains(&p.as_str()) => p.clone(),
        _ => {
            errors.push(error(
                "voice.provider",
                "invalid_value",
                "voice.provider must be one of elevenlabs, deepgram, openai",
            ));
            return None;
        }
    };
    let mut out = json!({"provider": provider});
    match voice.get("voice_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 200 => {
            out["voice_id"] = Value::from(id.as_str())
        }
        Some(_) => errors.push(error(
            "voice.voice_id",
            "invalid_value",
            "voice.voice_id is a non-empty string of at most 200 bytes",
        )),
    }
    Some(out)
}

fn llm(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let llm = sub_object(obj, "llm", errors)?;
    match llm.get("model") {
        None | Some(Value::Null) => Some(json!({})),
        Some(Value::String(m)) if !m.is_empty() && m.len() <= 200 => Some(json!({"model": m})),
        Some(_) => {
            errors.push(error(
                "llm.model",
                "invalid_value",
                "llm.model is a non-empty string of at most 200 bytes",
            ));
            None
        }
    }
}

fn callbacks(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let callbacks = sub_object(obj, "callbacks", errors)?;
    let enabled = match callbacks.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(error(
                "callbacks.enabled",
                "invalid_type",
                "callbacks.enabled must be a boolean",
            ));
            false
        }
    };
    let max = match callbacks.get("max_per_number_per_day") {
        None | Some(Value::Null) => u64::from(DEFAULT_CALLBACKS_PER_NUMBER_PER_DAY),
        Some(v) => match v
            .as_u64()
            .filter(|n| (1..=MAX_CALLBACKS_PER_NUMBER_PER_DAY).contains(n))
        {
            Some(n) => n,
            None => {
                errors.push(error(
                    "callbacks.max_per_number_per_day",
                    "invalid_value",
                    &format!(
                        "callbacks.max_per_number_per_day is a whole number from 1 to {MAX_CALLBACKS_PER_NUMBER_PER_DAY}"
                    ),
                ));
                return None;
            }
        },
    };
    Some(json!({"enabled": enabled, "max_per_number_per_day": max}))
}

/// `recording`: `{enabled, disclosure}` (see `recording::parse_settings`); `None` when absent.
fn recording(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let settings = sub_object(obj, "recording", errors)?;
    crate::recording::parse_settings(settings)
        .map_err(|refused| {
            for e in refused {
                errors.push(error(e.field(), "invalid_value", &e.to_string()));
            }
        })
        .ok()
}

/// `sms`: `{confirmations: bool}` (a text confirming each scheduled call, through the message
/// outbox); `None` when absent.
fn sms_settings(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let settings = sub_object(obj, "sms", errors)?;
    let mut valid = true;
    for key in settings.keys().filter(|k| k.as_str() != "confirmations") {
        valid = false;
        errors.push(FieldError {
            field: format!("sms.{key}"),
            code: "invalid_value",
            message: "sms has only confirmations".to_owned(),
        });
    }
    let confirmations = match settings.get("confirmations") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(error(
                "sms.confirmations",
                "invalid_type",
                "sms.confirmations is true or false",
            ));
            return None;
        }
    };
    valid.then(|| json!({"confirmations": confirmations}))
}

/// Whether the agent texts a confirmation of each scheduled call (`sms.confirmations`).
pub fn sms_confirmations(config: &Value) -> bool {
    config
        .pointer("/sms/confirmations")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `allowed_countries`: ISO 3166-1 alpha-2 codes (stored upper case); `None` when absent.
fn allowed_countries_field(
    obj: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<String>> {
    let invalid = |errors: &mut Vec<FieldError>, message: String| {
        errors.push(FieldError {
            field: "allowed_countries".to_owned(),
            code: "invalid_value",
            message,
        });
        None
    };
    let list = match obj.get("allowed_countries") {
        None | Some(Value::Null) => return None,
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_ALLOWED_COUNTRIES => list,
        Some(_) => {
            return invalid(
                errors,
                format!("allowed_countries is a list of 1 to {MAX_ALLOWED_COUNTRIES} ISO 3166-1 alpha-2 codes such as \"US\""),
            )
        }
    };
    let mut countries: Vec<String> = Vec::new();
    for item in list {
        let code = item
            .as_str()
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        if !is_known_country(&code) {
            return invalid(
                errors,
                format!("allowed_countries: {item} is not an ISO 3166-1 alpha-2 country code with a phone calling code"),
            );
        }
        if !countries.contains(&code) {
            countries.push(code);
        }
    }
    Some(countries)
}

fn retry(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let retry = sub_object(obj, "retry", errors)?;
    let default = RetryPolicy::default();
    let mut bounded = |key: &str, min: u64, max: u64, fallback: u32| -> u64 {
        match retry.get(key) {
            None | Some(Value::Null) => u64::from(fallback),
            Some(v) => match v.as_u64().filter(|n| (min..=max).contains(n)) {
                Some(n) => n,
                None => {
                    errors.push(error(
                        &format!("retry.{key}"),
                        "invalid_value",
                        &format!("retry.{key} is a whole number from {min} to {max}"),
                    ));
                    u64::from(fallback)
                }
            },
        }
    };
    let max_retries = bounded("max_retries", 0, MAX_RETRIES, default.max_retries);
    let spacing = bounded(
        "spacing_seconds",
        MIN_SPACING_SECS,
        MAX_SPACING_SECS,
        default.spacing_secs,
    );
    Some(json!({"max_retries": max_retries, "spacing_seconds": spacing}))
}

/// The post-call analysis definition (`crate::analysis`), stored in its validated form.
fn analysis(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    match obj.get("analysis") {
        None | Some(Value::Null) => None,
        Some(value) => match crate::analysis::parse_spec(value) {
            Ok(spec) => serde_json::to_value(spec).ok(),
            Err(mut found) => {
                errors.append(&mut found);
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zones::Tzdb;

    #[test]
    fn sms_settings_take_only_confirmations() {
        let base = || json!({"name": "a", "system_prompt": "b"});
        let mut body = base();
        body["sms"] = json!({"confirmations": true});
        let spec = parse_agent(&body).unwrap();
        assert!(sms_confirmations(&spec.config));
        assert!(!sms_confirmations(&parse_agent(&base()).unwrap().config));
        for bad in [
            json!({"confirmations": "yes"}),
            json!({"reminders": true}),
            json!(true),
        ] {
            let mut body = base();
            body["sms"] = bad.clone();
            let errors = parse_agent(&body).unwrap_err();
            assert!(
                errors.iter().all(|e| e.field.starts_with("sms")),
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn an_agent_in_use_names_what_uses_it() {
        assert_eq!(deletable(vec![], 0), Ok(()));
        let numbers = deletable(vec!["+15550001111".into()], 0).unwrap_err();
        assert!(numbers
            .to_string()
            .starts_with("the agent is in use by number +15550001111:"));
        let both = deletable(vec!["+15550001111".into(), "+15550002222".into()], 3).unwrap_err();
        assert!(both.to_string().starts_with(
            "the agent is in use by numbers +15550001111, +15550002222 and 3 calls not yet finished:"
        ));
        let calls = deletable(vec![], 1).unwrap_err();
        assert!(calls
            .to_string()
            .starts_with("the agent is in use by 1 call not yet finished:"));
    }

    #[test]
    fn open_calls_are_every_status_not_final() {
        assert_eq!(
            open_call_statuses(),
            [
                "scheduled",
                "dispatching",
                "queued",
                "ringing",
                "in_progress"
            ]
        );
    }

    fn codes(errors: Vec<FieldError>) -> Vec<(String, &'static str)> {
        errors.into_iter().map(|e| (e.field, e.code)).collect()
    }

    #[test]
    fn minimal_and_full_agents() {
        let a = parse_agent(&json!({"name": " Ava ", "system_prompt": "Be kind."})).unwrap();
        assert_eq!(a.name, "Ava");
        assert_eq!(a.config, json!({}));
        assert_eq!(retry_policy(&a.config), RetryPolicy::default());

        let a = parse_agent(&json!({
            "name": "Ava", "system_prompt": "Be kind.", "first_message": "Hi!",
            "voice": {"provider": "elevenlabs", "voice_id": "v1"}, "llm": {"model": "gpt-4o"},
            "retry": {"max_retries": 1, "spacing_seconds": 30}
        }))
        .unwrap();
        assert_eq!(a.first_message.as_deref(), Some("Hi!"));
        assert_eq!(voice_id(&a.config), Some("v1"));
        assert_eq!(
            retry_policy(&a.config),
            RetryPolicy {
                max_retries: 1,
                spacing_secs: 30
            }
        );
    }

    #[test]
    fn live_call_settings_are_validated_like_a_call_reads_them() {
        let a = parse_agent(&json!({
            "name": "Ava", "system_prompt": "Be kind.",
            "session": {"idle_hangup_ms": 5000, "min_interrupt_words": 2},
            "stt": {"model": "nova-2-phonecall", "endpointing_ms": 500}
        }))
        .unwrap();
        assert_eq!(a.config["session"]["idle_hangup_ms"], 5000);
        assert_eq!(a.config["stt"]["endpointing_ms"], 500);
        let errors = parse_agent(&json!({
            "name": "Ava", "system_prompt": "Be kind.",
            "session": {"min_interrupt_words": "two"}, "stt": {"endpointing_ms": 1}
        }))
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("session".to_owned(), "invalid_value"),
                ("stt".to_owned(), "invalid_value"),
            ]
        );
    }

    // Schemathesis found `stt.language: {}` accepted (and the default language used).
    #[test]
    fn stt_names_of_the_wrong_type_are_refused() {
        for stt in [
            json!({"language": {}}),
            json!({"model": 3}),
            json!({"model": ["nova"]}),
        ] {
            let errors =
                parse_agent(&json!({"name": "Ava", "system_prompt": "Be kind.", "stt": stt}))
                    .unwrap_err();
            assert_eq!(
                codes(errors),
                [("stt".to_owned(), "invalid_value")],
                "{stt}"
            );
        }
        let ok = parse_agent(&json!({
            "name": "Ava", "system_prompt": "Be kind.", "stt": {"model": null, "language": "fr"}
        }));
        assert!(ok.is_ok());
    }

    #[test]
    fn preemption_is_an_stt_setting() {
        let a = parse_agent(&json!({
            "name": "Ava", "system_prompt": "Be kind.",
            "stt": {"model": "flux-general-en", "preemptive": true, "eot_threshold": 0.7,
                    "eager_eot_threshold": 0.5, "eot_timeout_ms": 4000}
        }))
        .unwrap();
        assert_eq!(a.config["stt"]["eager_eot_threshold"], 0.5);
        let errors = parse_agent(&json!({
            "name": "Ava", "system_prompt": "Be kind.",
            "session": {"preemptive": true}, "stt": {"eager_eot_threshold": 0.95}
        }))
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("session.preemptive".to_owned(), "invalid_value"),
                ("stt".to_owned(), "invalid_value"),
            ]
        );
    }

    #[test]
    fn variables_are_checked_against_the_declared_contact_fields() {
        let body = json!({"name": "A", "system_prompt": "Call {{contact.nmae}} at {{ contact.company }}.",
                          "first_message": "Hi {{contact.name | there}} {{call.nope}}"});
        let errors = parse_agent(&body).unwrap_err();
        let found: Vec<(&str, &str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.code, e.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "system_prompt",
                    "unknown_variable",
                    "system_prompt: unknown variable {{contact.nmae}} at line 1, column 6"
                ),
                (
                    "system_prompt",
                    "unknown_variable",
                    "system_prompt: unknown variable {{contact.company}} at line 1, column 26"
                ),
                (
                    "first_message",
                    "unknown_variable",
                    "first_message: unknown variable {{call.nope}} at line 1, column 29"
                ),
            ]
        );
        let declared = json!({"name": "A", "system_prompt": "Call {{contact.name}} at {{ contact.company }}.",
                              "variables": {"contact_fields": ["company", "company"]}});
        let spec = parse_agent(&declared).unwrap();
        assert_eq!(
            spec.config["variables"],
            json!({"contact_fields": ["company"]})
        );
        assert_eq!(contact_fields(&spec.config), vec!["company".to_owned()]);
        for bad in [
            json!(["name"]),
            json!(["first name"]),
            json!("company"),
            json!([1]),
        ] {
            let body =
                json!({"name": "A", "system_prompt": "P", "variables": {"contact_fields": bad}});
            let errors = parse_agent(&body).unwrap_err();
            assert_eq!(errors[0].field, "variables.contact_fields", "{bad}");
        }
        let malformed = json!({"name": "A", "system_prompt": "JSON like {{\"a\": 1}}"});
        assert_eq!(
            parse_agent(&malformed).unwrap_err()[0].code,
            "malformed_variable"
        );
        let escaped = json!({"name": "A", "system_prompt": "JSON like \\{{\"a\": 1}}"});
        assert!(parse_agent(&escaped).is_ok());
    }

    #[test]
    fn reminders_are_stored_validated() {
        let body = json!({"name": "A", "system_prompt": "P",
                          "reminders": {"before_minutes": [60, 1440], "channels": ["email"]}});
        let spec = parse_agent(&body).unwrap();
        assert_eq!(
            spec.config["reminders"],
            json!({"before_minutes": [1440, 60], "channels": ["email"]})
        );
        let bad = json!({"name": "A", "system_prompt": "P", "reminders": {"before_minutes": [0]}});
        assert_eq!(
            parse_agent(&bad).unwrap_err()[0].field,
            "reminders.before_minutes"
        );
        let bad = json!({"name": "A", "system_prompt": "P", "reminders": [60]});
        assert_eq!(parse_agent(&bad).unwrap_err()[0].field, "reminders");
    }

    #[test]
    fn agent_errors_are_all_listed() {
        let errors = parse_agent(&json!({
            "name": "", "system_prompt": 3, "voice": {"provider": "skype"},
            "retry": {"max_retries": 99, "spacing_seconds": 1}
        }))
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("name".to_owned(), "required"),
                ("system_prompt".to_owned(), "invalid_type"),
                ("voice.provider".to_owned(), "invalid_value"),
                ("retry.max_retries".to_owned(), "invalid_value"),
                ("retry.spacing_seconds".to_owned(), "invalid_value"),
            ]
        );
        assert_eq!(
            codes(parse_agent(&json!([])).unwrap_err()),
            [(String::new(), "invalid_body")]
        );
    }

    #[test]
    fn callbacks_are_off_unless_enabled() {
        let a = parse_agent(&json!({"name": "Ava", "system_prompt": "Be kind."})).unwrap();
        assert_eq!(
            callback_settings(&a.config),
            CallbackSettings {
                enabled: false,
                max_per_number_per_day: DEFAULT_CALLBACKS_PER_NUMBER_PER_DAY
            }
        );
        let a = parse_agent(&json!({"name": "Ava", "system_prompt": "Be kind.",
            "callbacks": {"enabled": true, "max_per_number_per_day": 3},
            "allowed_countries": ["us", "CA", "US"]}))
        .unwrap();
        assert_eq!(
            callback_settings(&a.config),
            CallbackSettings {
                enabled: true,
                max_per_number_per_day: 3
            }
        );
        assert_eq!(
            allowed_countries(&a.config),
            Some(vec!["US".to_owned(), "CA".to_owned()])
        );
        let errors = parse_agent(&json!({"name": "Ava", "system_prompt": "Be kind.",
            "callbacks": {"enabled": "yes", "max_per_number_per_day": 0},
            "allowed_countries": ["XX"], "session": {"schedule_callback": true}}))
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("callbacks.enabled".to_owned(), "invalid_type"),
                (
                    "callbacks.max_per_number_per_day".to_owned(),
                    "invalid_value"
                ),
                ("allowed_countries".to_owned(), "invalid_value"),
                ("session.schedule_callback".to_owned(), "invalid_value"),
            ]
        );
    }

    #[test]
    fn transfer_numbers_follow_the_dialling_rules() {
        let agent = |session: Value, countries: Value| {
            parse_agent(&json!({"name": "Ava", "system_prompt": "Be kind.",
                "session": session, "allowed_countries": countries}))
        };
        assert!(agent(json!({"transfer_to": "+14155550123"}), Value::Null).is_ok());
        for (to, countries, code) in [
            ("+19005550123", Value::Null, "premium_number"),
            ("+882123456789", Value::Null, "premium_number"),
            ("sip:desk@pbx.example", Value::Null, "sip_address"),
            ("12345", Value::Null, "invalid_phone"),
            ("+442071838750", json!(["US"]), "country_not_allowed"),
        ] {
            let errors = agent(json!({ "transfer_to": to }), countries).unwrap_err();
            assert_eq!(
                codes(errors),
                [("session.transfer_to".to_owned(), code)],
                "{to}"
            );
        }
    }

    #[test]
    fn the_dial_policy_defaults_to_the_country_of_our_number() {
        let none = json!({});
        assert_eq!(
            dial_policy(&none, Some("+14155550123")),
            DialPolicy::only(vec!["US".into()])
        );
        assert_eq!(dial_policy(&none, None), DialPolicy::anywhere());
        let set = json!({"allowed_countries": ["GB"]});
        assert_eq!(
            dial_policy(&set, Some("+14155550123")),
            DialPolicy::only(vec!["GB".into()])
        );
    }

    #[test]
    fn numbers_are_validated() {
        let n = parse_number(
            &json!({"number": "+15017122661", "agent_id": "ag_1"}),
            &Tzdb,
        )
        .unwrap();
        assert!(!n.ring_owner_first);
        let errors =
            parse_number(&json!({"number": "555", "ring_owner_first": true}), &Tzdb).unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("number".to_owned(), "invalid_phone"),
                ("agent_id".to_owned(), "required"),
            ]
        );
        let errors = parse_number(
            &json!({"number": "+15017122661", "agent_id": "a", "ring_owner_first": true}),
            &Tzdb,
        )
        .unwrap_err();
        assert_eq!(codes(errors), [("owner_phone".to_owned(), "required")]);
        for (owner, code) in [
            ("+19005550123", "premium_number"),
            ("sip:attacker@evil.example", "sip_address"),
            ("anonymous", "withheld_number"),
        ] {
            let errors = parse_number(
                &json!({"number": "+15017122661", "agent_id": "a", "owner_phone": owner}),
                &Tzdb,
            )
            .unwrap_err();
            assert_eq!(codes(errors), [("owner_phone".to_owned(), code)], "{owner}");
        }
    }

    #[test]
    fn analysis_is_stored_validated_and_its_errors_listed_with_the_others() {
        let a = parse_agent(&json!({
            "name": "Ava", "system_prompt": "Be kind.",
            "analysis": {"fields": [{"name": "intent", "type": "enum", "description": "Why",
                "values": ["booking", "other"], "required": true}]}
        }))
        .unwrap();
        assert_eq!(
            a.config["analysis"],
            json!({"fields": [{"name": "intent", "type": "enum", "description": "Why",
                "values": ["booking", "other"], "required": true}]})
        );
        let errors = parse_agent(&json!({
            "name": "", "system_prompt": "Be kind.",
            "analysis": {"fields": [{"name": "x", "type": "date", "description": "d"}]}
        }))
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("name".to_owned(), "required"),
                ("analysis.fields[0].type".to_owned(), "invalid_value")
            ]
        );
    }

    #[test]
    fn numbers_take_hours_and_an_after_hours_agent() {
        let n = parse_number(
            &json!({"number": "+15017122661", "agent_id": "a", "after_hours_agent_id": "b",
                "hours": {"time_zone": "America/New_York", "weekly": {"mon": [["09:00", "17:00"]]}}}),
            &Tzdb,
        )
        .unwrap();
        assert_eq!(n.after_hours_agent_id.as_deref(), Some("b"));
        let hours = n.hours.unwrap();
        assert_eq!(hours["weekly"]["mon"], json!([["09:00", "17:00"]]));
        assert_eq!(hours["exceptions"], json!([]));
        let errors = parse_number(
            &json!({"number": "+15017122661", "agent_id": "a", "after_hours_agent_id": 7,
                "hours": {"time_zone": "Nowhere/Land", "weekly": {}}}),
            &Tzdb,
        )
        .unwrap_err();
        assert_eq!(
            codes(errors),
            [
                ("hours.time_zone".to_owned(), "invalid_time_zone"),
                ("after_hours_agent_id".to_owned(), "invalid_type"),
            ]
        );
    }
}
