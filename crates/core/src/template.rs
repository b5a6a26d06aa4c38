//! Per-call variables in an agent's prompt and first message: `{{contact.name}}`,
//! `{{ call.start_at }}`, `{{contact.company | our customer}}`.
//!
//! A template is checked when it is saved ([`validate`]: every unknown or malformed variable
//! is an error naming it and its place) and filled per call ([`render`]), so a caller never hears
//! braces. The syntax:
//!
//! - `{{name}}`, spaces inside the braces allowed: the value of `name`, or nothing when the call
//!   has none;
//! - `{{name | default}}`: the same, with `default` (trimmed) when the call has no value;
//! - `\{{`: a literal `{{`.
//!
//! The names ([`Variable`]): `contact.name`, `contact.email`, `contact.phone`, `contact.<field>`
//! for a field the caller declares (an agent's `variables.contact_fields`, a campaign's
//! columns), `call.to`, `call.from`, `call.direction`, `call.start_at` (the call's start on the
//! clocks of its time zone), `call.time_zone`, `agent.name`.
//!
//! Rendering is one pass over the template: a value is inserted as it is and never read again,
//! so a contact named `{{agent.name}}` is spoken as those characters, not expanded.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Contact fields every call may carry (from `contact` and the number dialled).
pub const CONTACT_BUILTINS: [&str; 3] = ["name", "email", "phone"];
/// Call facts a template may name (`call.<fact>`).
pub const CALL_FACTS: [&str; 5] = ["to", "from", "direction", "start_at", "time_zone"];
/// Agent facts a template may name (`agent.<fact>`).
pub const AGENT_FACTS: [&str; 1] = ["name"];
/// Longest `{{ … }}`, braces included: a tag is a name and a short default, not a paragraph.
const MAX_TAG_CHARS: usize = 200;
/// Longest declared contact field name.
pub const MAX_FIELD_CHARS: usize = 64;

/// A problem with a template, naming where it is (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{name}}` names no variable the template's user supplies.
    #[error("unknown variable {{{{{name}}}}} at line {line}, column {column}")]
    Unknown {
        /// The name as written (trimmed).
        name: String,
        /// Line of the opening braces.
        line: usize,
        /// Column of the opening braces.
        column: usize,
    },
    /// `{{` that does not open a variable (unclosed, empty, not a name); `\{{` is a literal.
    #[error("malformed variable at line {line}, column {column}: {reason}")]
    Malformed {
        /// Why it is not a variable.
        reason: &'static str,
        /// Line of the opening braces.
        line: usize,
        /// Column of the opening braces.
        column: usize,
    },
}

impl TemplateError {
    /// Stable machine-readable code (`unknown_variable`, `malformed_variable`).
    pub fn code(&self) -> &'static str {
        match self {
            TemplateError::Unknown { .. } => "unknown_variable",
            TemplateError::Malformed { .. } => "malformed_variable",
        }
    }
}

/// A variable a template may name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variable {
    /// `contact.<field>`: a built-in ([`CONTACT_BUILTINS`]) or a declared field.
    Contact(String),
    /// `call.<fact>` ([`CALL_FACTS`]).
    Call(&'static str),
    /// `agent.<fact>` ([`AGENT_FACTS`]).
    Agent(&'static str),
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variable::Contact(field) => write!(f, "contact.{field}"),
            Variable::Call(fact) => write!(f, "call.{fact}"),
            Variable::Agent(fact) => write!(f, "agent.{fact}"),
        }
    }
}

/// The names a template may use: the fixed ones plus the contact fields its user declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Contact fields beyond [`CONTACT_BUILTINS`] (an agent's declared fields, campaign columns).
    pub contact_fields: BTreeSet<String>,
}

impl Known {
    /// The fixed names plus `fields` as contact fields.
    pub fn with_contact_fields<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Known {
            contact_fields: fields.into_iter().map(Into::into).collect(),
        }
    }

    /// The variable `name` stands for, when it is known.
    pub fn resolve(&self, name: &str) -> Option<Variable> {
        let (scope, fact) = name.split_once('.')?;
        match scope {
            "contact" if CONTACT_BUILTINS.contains(&fact) || self.contact_fields.contains(fact) => {
                Some(Variable::Contact(fact.to_owned()))
            }
            "call" => CALL_FACTS
                .iter()
                .find(|f| **f == fact)
                .map(|f| Variable::Call(f)),
            "agent" => AGENT_FACTS
                .iter()
                .find(|f| **f == fact)
                .map(|f| Variable::Agent(f)),
            _ => None,
        }
    }
}

/// Whether `field` may be a contact field's name: a letter or `_`, then letters, digits, `_`.
pub fn is_field_name(field: &str) -> bool {
    let mut chars = field.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && field.len() <= MAX_FIELD_CHARS
}

/// Whether `name` has a variable's shape (`scope.field`), known or not.
fn is_variable_name(name: &str) -> bool {
    name.split_once('.').is_some_and(|(scope, field)| {
        !scope.is_empty() && scope.chars().all(|c| c.is_ascii_alphabetic()) && is_field_name(field)
    })
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    /// Text spoken as it is (an escaped `\{{` is already `{{` here).
    Text(&'a str),
    /// `{{name | default}}`.
    Tag {
        name: &'a str,
        default: Option<&'a str>,
        line: usize,
        column: usize,
    },
    /// `{{` that opens no variable: an error when validating, literal text when rendering.
    Bad {
        raw: &'a str,
        reason: &'static str,
        line: usize,
        column: usize,
    },
}

/// Splits `src` into pieces, tracking lines and columns for errors.
fn pieces(src: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut column = 1;
    let advance = |text: &str, line: &mut usize, column: &mut usize| {
        for c in text.chars() {
            if c == '\n' {
                *line += 1;
                *column = 1;
            } else {
                *column += 1;
            }
        }
    };
    while let Some(at) = rest.find("{{") {
        if rest[..at].ends_with('\\') {
            out.push(Piece::Text(&rest[..at - 1]));
            out.push(Piece::Text("{{"));
            advance(&rest[..at + 2], &mut line, &mut column);
            rest = &rest[at + 2..];
            continue;
        }
        out.push(Piece::Text(&rest[..at]));
        advance(&rest[..at], &mut line, &mut column);
        let after = &rest[at + 2..];
        let (piece, used) = match after.find("}}") {
            None => {
                // Unclosed: only the braces are taken, the rest is ordinary text.
                let piece = Piece::Bad {
                    raw: "{{",
                    reason: "no closing }}",
                    line,
                    column,
                };
                (piece, 2)
            }
            Some(end) => {
                let inner = &after[..end];
                let raw = &rest[at..at + 2 + end + 2];
                let bad = |reason| Piece::Bad {
                    raw,
                    reason,
                    line,
                    column,
                };
                let (name, default) = match inner.split_once('|') {
                    Some((name, default)) => (name.trim(), Some(default.trim())),
                    None => (inner.trim(), None),
                };
                let piece = if raw.chars().count() > MAX_TAG_CHARS {
                    bad("longer than 200 characters")
                } else if inner.contains('\n') {
                    bad("a variable fits on one line")
                } else if inner.contains("{{") {
                    bad("braces inside a variable")
                } else if name.is_empty() {
                    bad("no variable name")
                } else if !is_variable_name(name) {
                    bad("not a variable name (scope.field, e.g. contact.name)")
                } else {
                    Piece::Tag {
                        name,
                        default,
                        line,
                        column,
                    }
                };
                (piece, 2 + end + 2)
            }
        };
        out.push(piece);
        advance(&rest[at..at + used], &mut line, &mut column);
        rest = &rest[at + used..];
    }
    out.push(Piece::Text(rest));
    out
}

/// Checks `src` against the names `known` allows: every unknown or malformed variable, in order.
pub fn validate(src: &str, known: &Known) -> Result<(), Vec<TemplateError>> {
    let errors: Vec<TemplateError> = pieces(src)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Tag {
                name, line, column, ..
            } if known.resolve(name).is_none() => Some(TemplateError::Unknown {
                name: name.to_owned(),
                line,
                column,
            }),
            Piece::Bad {
                reason,
                line,
                column,
                ..
            } => Some(TemplateError::Malformed {
                reason,
                line,
                column,
            }),
            _ => None,
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A use of a variable in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The name as written (`contact.name`).
    pub name: String,
    /// Whether it has a `| default`.
    pub has_default: bool,
}

/// Every well-formed variable `src` uses, in order (known or not).
pub fn uses(src: &str) -> Vec<Use> {
    pieces(src)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Tag { name, default, .. } => Some(Use {
                name: name.to_owned(),
                has_default: default.is_some(),
            }),
            _ => None,
        })
        .collect()
}

/// Contact fields `src` needs a value for: used without a `| default`, sorted, once each.
pub fn required_contact_fields(src: &str) -> BTreeSet<String> {
    uses(src)
        .into_iter()
        .filter(|u| !u.has_default)
        .filter_map(|u| u.name.strip_prefix("contact.").map(str::to_owned))
        .collect()
}

/// A call's values, by variable name (`contact.name` → `Ada`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(BTreeMap<String, String>);

impl Values {
    /// No values: every variable renders its default or nothing.
    pub fn new() -> Self {
        Values::default()
    }

    /// Sets `variable` to `value`; a blank value counts as none (its default is spoken).
    pub fn set(&mut self, variable: &Variable, value: Option<&str>) -> &mut Self {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            Some(value) => {
                self.0.insert(variable.to_string(), value.to_owned());
            }
            None => {
                self.0.remove(&variable.to_string());
            }
        }
        self
    }

    /// The value of `name`, if the call has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// `src` filled with `values`, in one pass: a variable without a value becomes its default, or
/// nothing; `\{{` becomes `{{`. Text that opens no variable (left by a template saved before
/// variables were checked) is kept as written.
pub fn render(src: &str, values: &Values) -> String {
    let mut out = String::with_capacity(src.len());
    for piece in pieces(src) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Bad { raw, .. } => out.push_str(raw),
            Piece::Tag { name, default, .. } => {
                if let Some(value) = values.get(name).or(default) {
                    out.push_str(value);
                }
            }
        }
    }
    out
}

/// A call's start as `call.start_at` speaks it: weekday, day, month, year and 24-hour time on
/// the clocks of `zone` (`Monday 7 December 2026, 14:30`).
pub fn spoken_time(at: DateTime<Utc>, zone: &crate::zones::Zone<'_>) -> String {
    zone.at(at).format("%A %-d %B %Y, %H:%M").to_string()
}

/// Longest value of a declared contact field, in bytes.
pub const MAX_FIELD_VALUE_BYTES: usize = 1024;

/// The declared-field values of a scheduling request's `contact` object: every key but
/// `name`, `email` and `phone` (`phone` is the number called), each a string (or a number, kept as
/// written) of at most [`MAX_FIELD_VALUE_BYTES`]; `null` is no value.
pub fn contact_field_values(
    contact: Option<&serde_json::Value>,
) -> Result<BTreeMap<String, String>, Vec<crate::scheduling::request::FieldError>> {
    use crate::scheduling::request::FieldError;
    use serde_json::Value;
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let Some(Value::Object(contact)) = contact else {
        return Ok(out);
    };
    for (key, value) in contact {
        if CONTACT_BUILTINS.contains(&key.as_str()) {
            continue;
        }
        let field = format!("contact.{key}");
        if !is_field_name(key) {
            errors.push(FieldError::new(
                &field,
                "invalid_field_name",
                format!("{field}: a contact field is a letter or _, then letters, digits or _"),
            ));
            continue;
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => {
                errors.push(FieldError::new(
                    &field,
                    "invalid_type",
                    format!("{field} must be a string"),
                ));
                continue;
            }
        };
        if text.len() > MAX_FIELD_VALUE_BYTES {
            errors.push(FieldError::new(
                &field,
                "too_long",
                format!("{field} is at most {MAX_FIELD_VALUE_BYTES} bytes"),
            ));
        } else if !text.is_empty() {
            out.insert(key.clone(), text);
        }
    }
    if out.len() > 50 {
        errors.push(FieldError::new(
            "contact",
            "too_many_fields",
            "contact has at most 50 fields besides name, email and phone",
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Declared contact fields as a call stores them (a JSON object of strings); none when absent
/// or unreadable.
pub fn stored_fields(json: Option<&str>) -> BTreeMap<String, String> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// The contact fields `templates` need (used without a default) that `has` says the call
/// lacks: a scheduled call missing one is refused rather than heard with a gap.
pub fn missing_contact_fields(templates: &[&str], has: impl Fn(&str) -> bool) -> Vec<String> {
    let mut needed = BTreeSet::new();
    for src in templates {
        needed.extend(required_contact_fields(src));
    }
    needed.into_iter().filter(|f| !has(f)).collect()
}

/// What a call knows when its prompt and greeting are filled.
pub struct CallFacts<'a> {
    pub contact_name: Option<&'a str>,
    pub contact_email: Option<&'a str>,
    /// The other party's number: the callee of an outbound call, the caller of an inbound one.
    pub contact_phone: Option<&'a str>,
    /// Declared contact fields (see [`contact_field_values`]).
    pub contact_fields: &'a BTreeMap<String, String>,
    pub to: &'a str,
    pub from: Option<&'a str>,
    /// `inbound` or `outbound`.
    pub direction: &'a str,
    /// The scheduled start of an outbound call, the arrival of an inbound one.
    pub start_at: Option<DateTime<Utc>>,
    /// The call's zone; `call.start_at` is shown in UTC without one.
    pub zone: Option<crate::zones::Zone<'a>>,
    pub agent_name: Option<&'a str>,
}

impl CallFacts<'_> {
    /// The values of every variable this call can fill.
    pub fn values(&self) -> Values {
        let mut v = Values::new();
        let contact = |f: &str| Variable::Contact(f.to_owned());
        v.set(&contact("name"), self.contact_name);
        v.set(&contact("email"), self.contact_email);
        v.set(&contact("phone"), self.contact_phone);
        for (field, value) in self.contact_fields {
            v.set(&contact(field), Some(value));
        }
        v.set(&Variable::Call("to"), Some(self.to));
        v.set(&Variable::Call("from"), self.from);
        v.set(&Variable::Call("direction"), Some(self.direction));
        let start = self.start_at.map(|at| match &self.zone {
            Some(zone) => spoken_time(at, zone),
            None => at.format("%A %-d %B %Y, %H:%M UTC").to_string(),
        });
        v.set(&Variable::Call("start_at"), start.as_deref());
        let zone = self.zone.as_ref().map_or("UTC", |z| z.name());
        v.set(&Variable::Call("time_zone"), Some(zone));
        v.set(&Variable::Agent("name"), self.agent_name);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        let known = Known::with_contact_fields(["company"]);
        let mut values = Values::new();
        for (name, value) in pairs {
            values.set(&known.resolve(name).unwrap(), Some(value));
        }
        values
    }

    #[test]
    fn renders_known_variables_with_spaces_and_defaults() {
        let v = values(&[("contact.name", "Ada"), ("call.to", "+15550001111")]);
        assert_eq!(render("Hi {{contact.name}}!", &v), "Hi Ada!");
        assert_eq!(render("Hi {{  contact.name  }}!", &v), "Hi Ada!");
        assert_eq!(
            render("Dialled {{call.to}} for {{ contact.company | you }}", &v),
            "Dialled +15550001111 for you"
        );
        assert_eq!(render("Hi {{contact.email}}.", &v), "Hi .");
        assert_eq!(
            render("Hi {{contact.name|there}}", &Values::new()),
            "Hi there"
        );
    }

    #[test]
    fn blank_values_fall_back_to_the_default() {
        let v = values(&[("contact.name", "   ")]);
        assert_eq!(render("Hi {{contact.name | there}}", &v), "Hi there");
    }

    #[test]
    fn an_escaped_brace_pair_is_literal_and_never_a_variable() {
        let v = values(&[("contact.name", "Ada")]);
        assert_eq!(
            render(r"Say \{{contact.name}} to {{contact.name}}", &v),
            "Say {{contact.name}} to Ada"
        );
        assert_eq!(validate(r"\{{nonsense", &Known::default()), Ok(()));
    }

    #[test]
    fn values_are_never_expanded_again() {
        let v = values(&[
            ("contact.name", "{{call.to}} {{agent.secret}}"),
            ("call.to", "+15550001111"),
        ]);
        assert_eq!(
            render("Hello {{contact.name}}", &v),
            "Hello {{call.to}} {{agent.secret}}"
        );
    }

    #[test]
    fn unknown_variables_are_named_with_their_place() {
        let errors = validate(
            "Hello {{contact.name}}\n  and {{ contact.nmae }} at {{call.when}}",
            &Known::default(),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                TemplateError::Unknown {
                    name: "contact.nmae".into(),
                    line: 2,
                    column: 7
                },
                TemplateError::Unknown {
                    name: "call.when".into(),
                    line: 2,
                    column: 29
                },
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            "unknown variable {{contact.nmae}} at line 2, column 7"
        );
        assert_eq!(errors[0].code(), "unknown_variable");
    }

    #[test]
    fn declared_contact_fields_are_known() {
        assert!(validate("{{contact.company}}", &Known::default()).is_err());
        assert_eq!(
            validate(
                "{{contact.company}}",
                &Known::with_contact_fields(["company"])
            ),
            Ok(())
        );
        for name in ["contact.name", "contact.email", "contact.phone"] {
            assert!(Known::default().resolve(name).is_some(), "{name}");
        }
        for fact in CALL_FACTS {
            assert!(Known::default().resolve(&format!("call.{fact}")).is_some());
        }
        assert!(Known::default().resolve("agent.name").is_some());
        assert!(Known::default().resolve("agent.secret").is_none());
    }

    #[test]
    fn malformed_tags_are_errors_and_render_as_written() {
        for (src, reason) in [
            ("Hi {{contact.name", "no closing }}"),
            ("Hi {{}}", "no variable name"),
            ("Hi {{ | x }}", "no variable name"),
            (
                "Hi {{name}}",
                "not a variable name (scope.field, e.g. contact.name)",
            ),
            (
                "Hi {{contact.first name}}",
                "not a variable name (scope.field, e.g. contact.name)",
            ),
            ("Hi {{contact.\nname}}", "a variable fits on one line"),
            ("Hi {{ {{contact.name}}", "braces inside a variable"),
        ] {
            let errors = validate(src, &Known::default()).unwrap_err();
            assert_eq!(
                errors,
                vec![TemplateError::Malformed {
                    reason,
                    line: 1,
                    column: 4
                }],
                "{src}"
            );
        }
        assert_eq!(
            render("Hi {{contact.name", &Values::new()),
            "Hi {{contact.name"
        );
        let long = format!("{{{{contact.name | {}}}}}", "x".repeat(200));
        assert!(validate(&long, &Known::default()).is_err());
    }

    #[test]
    fn required_fields_are_the_contact_ones_without_a_default() {
        let src = "{{contact.name}} {{contact.company | you}} {{call.to}} {{contact.name}} {{contact.email}}";
        assert_eq!(
            required_contact_fields(src),
            BTreeSet::from(["email".to_owned(), "name".to_owned()])
        );
    }

    #[test]
    fn field_names() {
        assert!(is_field_name("company"));
        assert!(is_field_name("_plan2"));
        assert!(!is_field_name("2plan"));
        assert!(!is_field_name("first name"));
        assert!(!is_field_name(""));
        assert!(!is_field_name(&"a".repeat(65)));
    }

    #[test]
    fn start_at_is_spoken_on_the_zone_clocks() {
        let rules = crate::zones::Tzdb;
        let zone = crate::zones::Zone::resolve(&rules, "Europe/Paris").unwrap();
        let at = "2026-12-07T13:30:00Z".parse().unwrap();
        assert_eq!(spoken_time(at, &zone), "Monday 7 December 2026, 14:30");
    }

    #[test]
    fn a_call_fills_every_variable_it_knows() {
        let fields = BTreeMap::from([("company".to_owned(), "Acme".to_owned())]);
        let rules = crate::zones::Tzdb;
        let facts = CallFacts {
            contact_name: Some("Ada"),
            contact_email: None,
            contact_phone: Some("+15550002222"),
            contact_fields: &fields,
            to: "+15550002222",
            from: Some("+15550001111"),
            direction: "outbound",
            start_at: Some("2026-12-07T13:30:00Z".parse().unwrap()),
            zone: crate::zones::Zone::resolve(&rules, "America/New_York"),
            agent_name: Some("Ava"),
        };
        let src = "{{agent.name}} for {{contact.name}} at {{contact.company}} \
                   ({{contact.email | no email}}) {{call.direction}} {{call.from}}->{{call.to}} \
                   {{call.start_at}} {{call.time_zone}} {{contact.phone}}";
        assert_eq!(
            validate(src, &Known::with_contact_fields(["company"])),
            Ok(())
        );
        assert_eq!(
            render(src, &facts.values()),
            "Ava for Ada at Acme (no email) outbound +15550001111->+15550002222 \
             Monday 7 December 2026, 08:30 America/New_York +15550002222"
        );
        let utc = CallFacts {
            zone: None,
            ..facts
        };
        assert_eq!(
            render("{{call.start_at}} {{call.time_zone}}", &utc.values()),
            "Monday 7 December 2026, 13:30 UTC UTC"
        );
    }

    #[test]
    fn contact_field_values_are_checked() {
        let body = serde_json::json!({"name": "Ada", "email": "a@b.c", "company": " Acme ",
                                      "seats": 12, "empty": "", "gone": null});
        assert_eq!(
            contact_field_values(Some(&body)).unwrap(),
            BTreeMap::from([
                ("company".to_owned(), "Acme".to_owned()),
                ("seats".to_owned(), "12".to_owned())
            ])
        );
        let bad =
            serde_json::json!({"first name": "x", "plan": {"a": 1}, "notes": "n".repeat(1025)});
        let errors = contact_field_values(Some(&bad)).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["contact.first name", "contact.notes", "contact.plan"]
        );
        assert_eq!(contact_field_values(None).unwrap(), BTreeMap::new());
    }

    #[test]
    fn missing_fields_are_the_needed_ones_the_call_lacks() {
        let missing = missing_contact_fields(
            &[
                "Hi {{contact.name}} of {{contact.company}}",
                "{{contact.plan | your plan}} {{contact.phone}}",
            ],
            |f| f == "phone" || f == "name",
        );
        assert_eq!(missing, vec!["company".to_owned()]);
    }

    fn known_name() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "contact.name",
            "contact.email",
            "contact.phone",
            "contact.company",
            "call.to",
            "call.from",
            "call.direction",
            "call.start_at",
            "call.time_zone",
            "agent.name",
        ])
    }

    /// Template text around tags: anything but braces and backslashes, so the only tags are ours.
    fn filler() -> impl Strategy<Value = String> {
        "[^{}\\\\]{0,12}"
    }

    proptest! {
        #[test]
        fn rendering_known_variables_leaves_no_braces(
            parts in prop::collection::vec((filler(), known_name(), " {0,2}", prop::option::of("[a-z ]{0,8}")), 0..8),
            tail in filler(),
            value in "[^{}]{0,12}",
            set in any::<bool>(),
        ) {
            let known = Known::with_contact_fields(["company"]);
            let mut src = String::new();
            let mut values = Values::new();
            for (text, name, pad, default) in &parts {
                src.push_str(text);
                match default {
                    Some(d) => src.push_str(&format!("{{{{{pad}{name}{pad}|{d}}}}}")),
                    None => src.push_str(&format!("{{{{{pad}{name}{pad}}}}}")),
                }
                if set {
                    values.set(&known.resolve(name).unwrap(), Some(&value));
                }
            }
            src.push_str(&tail);
            prop_assert_eq!(validate(&src, &known), Ok(()));
            let out = render(&src, &values);
            prop_assert!(!out.contains("{{"), "{out}");
            prop_assert!(!out.contains("}}"), "{out}");
        }

        #[test]
        fn unknown_names_are_always_refused(
            before in filler(),
            scope in "(contact|call|agent|x)",
            field in "[a-z_][a-z0-9_]{0,10}",
        ) {
            let name = format!("{scope}.{field}");
            let known = Known::default();
            let src = format!("{before}{{{{{name}}}}}");
            if known.resolve(&name).is_none() {
                let errors = validate(&src, &known).unwrap_err();
                prop_assert_eq!(errors.len(), 1);
                let is_unknown = matches!(&errors[0], TemplateError::Unknown { name: n, .. } if *n == name);
                prop_assert!(is_unknown);
            } else {
                prop_assert_eq!(validate(&src, &known), Ok(()));
            }
        }

        #[test]
        fn rendering_any_text_never_panics(src in "\\PC{0,64}", value in "\\PC{0,16}") {
            let mut values = Values::new();
            values.set(&Variable::Contact("name".into()), Some(&value));
            let _ = render(&src, &values);
            let _ = validate(&src, &Known::default());
        }
    }
}
