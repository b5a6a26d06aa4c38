//! The one PATCH convention of the API: a field that is absent stays as it is, `null` clears it
//! where the resource allows clearing it (otherwise a 422 `not_clearable` field error), and a
//! value sets it. Resources validated as a whole (agents, numbers) merge the body over the
//! stored record with [`merge`]; resources with typed fields (endpoints) read each field as a
//! [`Patch`].

use crate::scheduling::request::FieldError;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// One field of a PATCH body.
///
/// With serde, put `#[serde(default)]` on the field: a missing key is then `Absent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Not in the body: keep the stored value.
    #[default]
    Absent,
    /// `null`: clear the stored value.
    Null,
    /// A new value.
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Patch::Null,
            Some(value) => Patch::Value(value),
        })
    }
}

impl<'a> Patch<&'a Value> {
    /// The field `name` of a JSON body.
    pub fn field(body: &'a Value, name: &str) -> Self {
        match body.get(name) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(value) => Patch::Value(value),
        }
    }
}

impl<T> Patch<T> {
    /// Whether the body leaves the field as it is.
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    /// The new value, if the body sets one.
    pub fn into_value(self) -> Option<T> {
        match self {
            Patch::Value(value) => Some(value),
            Patch::Absent | Patch::Null => None,
        }
    }

    /// The field's value once the patch is applied to `current`.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Absent => current,
            Patch::Null => None,
            Patch::Value(value) => Some(value),
        }
    }

    /// The patch with its value transformed.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Value(value) => Patch::Value(f(value)),
        }
    }
}

/// The 422 field error for `null` on a field that cannot be cleared.
pub fn not_clearable(field: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: "not_clearable",
        message: format!("{field} cannot be cleared; leave it out to keep it"),
    }
}

/// Applies a PATCH body to a stored record (both JSON objects; `null` in the record means
/// unset), for resources that then validate the merged record with their creation rules.
/// `null` on a field of `required` is refused.
pub fn merge(
    current: &Value,
    changes: &Value,
    required: &[&str],
) -> Result<Value, Vec<FieldError>> {
    let Some(changes) = changes.as_object() else {
        return Err(vec![FieldError {
            field: String::new(),
            code: "invalid_body",
            message: "the body must be a JSON object".to_owned(),
        }]);
    };
    // Inserted rather than collected: each `collect` into a map compiles a sort.
    let mut merged = Map::new();
    for (key, value) in current.as_object().into_iter().flatten() {
        if !value.is_null() {
            merged.insert(key.clone(), value.clone());
        }
    }
    let mut errors = Vec::new();
    for (key, value) in changes {
        if !value.is_null() {
            merged.insert(key.clone(), value.clone());
        } else if required.contains(&key.as_str()) {
            errors.push(not_clearable(key));
        } else {
            merged.remove(key);
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(merged))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        description: Patch<String>,
        #[serde(default)]
        limit: Patch<u32>,
    }

    #[test]
    fn absent_null_and_value_are_three_things() {
        let body: Body = serde_json::from_value(json!({"description": null})).unwrap();
        assert_eq!(body.description, Patch::Null);
        assert_eq!(body.limit, Patch::Absent);
        let body: Body = serde_json::from_value(json!({"description": "x", "limit": 3})).unwrap();
        assert_eq!(body.description, Patch::Value("x".to_owned()));
        assert_eq!(body.limit, Patch::Value(3));
        assert!(serde_json::from_value::<Body>(json!({"limit": "3"})).is_err());

        let body = json!({"a": null, "b": 1});
        assert_eq!(Patch::field(&body, "a"), Patch::Null);
        assert_eq!(Patch::field(&body, "b"), Patch::Value(&json!(1)));
        assert_eq!(Patch::field(&body, "c"), Patch::Absent);
    }

    #[test]
    fn applying_a_field() {
        assert_eq!(Patch::Absent.apply(Some(1)), Some(1));
        assert_eq!(Patch::Null.apply(Some(1)), None);
        assert_eq!(Patch::Value(2).apply(Some(1)), Some(2));
        assert_eq!(Patch::Value(2).into_value(), Some(2));
        assert_eq!(Patch::<u8>::Null.into_value(), None);
        assert!(Patch::<u8>::Absent.is_absent() && !Patch::<u8>::Null.is_absent());
        assert_eq!(Patch::Value(2).map(|v| v * 2), Patch::Value(4));
    }

    #[test]
    fn merging_keeps_clears_and_sets() {
        let stored =
            json!({"name": "Ava", "first_message": "Hi", "voice": {"id": "v"}, "llm": null});
        let merged = merge(
            &stored,
            &json!({"first_message": null, "voice": {"id": "w"}}),
            &["name"],
        )
        .unwrap();
        assert_eq!(merged, json!({"name": "Ava", "voice": {"id": "w"}}));
        assert_eq!(
            merge(&stored, &json!({}), &["name"]).unwrap(),
            json!({"name": "Ava", "first_message": "Hi", "voice": {"id": "v"}}),
            "stored nulls are unset fields"
        );
        let errors = merge(&stored, &json!({"name": null, "llm": null}), &["name"]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].field.as_str(), errors[0].code),
            ("name", "not_clearable")
        );
        assert_eq!(
            merge(&stored, &json!([1]), &[]).unwrap_err()[0].code,
            "invalid_body"
        );
    }
}
