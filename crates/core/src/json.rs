//! How the API reads the JSON numbers of a request body.

use serde_json::{Number, Value};

/// Rewrites every number written with a fraction of zero (`5.0`, `1e3`) as the integer it is,
/// at any depth: JSON (RFC 8259) and JSON Schema make no difference between `5` and `5.0`, so a
/// whole-number field must accept both. Values beyond 64-bit integers stay as they are.
pub fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(whole) = n.as_f64().filter(|_| n.is_f64()).and_then(as_integer) {
                *n = whole;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// `f` as an integer Number when it is one and fits `i64` or `u64`.
fn as_integer(f: f64) -> Option<Number> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() != 0.0 || !f.is_finite() {
        return None;
    }
    if (-TWO_63..TWO_63).contains(&f) {
        Some(Number::from(f as i64))
    } else if (TWO_63..2.0 * TWO_63).contains(&f) {
        Some(Number::from(f as u64))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Schemathesis found `"idle_reminder_ms": 200593.0` refused as "expected u64".
    #[test]
    fn whole_floats_become_integers_at_any_depth() {
        let mut v: Value =
            serde_json::from_str(r#"{"a": 5.0, "b": [1e3, -2.0, 0.5], "c": {"d": 18446744073709549568.0}, "e": 1e300, "f": 7}"#)
                .unwrap();
        whole_numbers(&mut v);
        assert_eq!(v["a"].as_u64(), Some(5));
        assert_eq!(v["b"], json!([1000, -2, 0.5]));
        assert_eq!(v["c"]["d"].as_u64(), Some(18_446_744_073_709_549_568));
        assert!(v["e"].is_f64(), "beyond u64 stays a float");
        assert_eq!(v["f"], json!(7));
    }
}
