//! JSON value helpers shared by the expression evaluator and the pipeline stages:
//! number normalisation, truthiness, total ordering, dotted paths.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// A JSON number from an f64: integral values within ±2^53 become integers
/// (so `1.0` serialises as `1`), non-finite values become `null`.
pub fn num(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// The numeric value of a JSON value (numbers only).
pub fn as_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Truthiness: null, false, 0, "" are false; everything else true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Total order over JSON values: null < bool < number < string < array < object.
pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let o = cmp_values(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let xs = serde_json::to_string(x).unwrap_or_default();
            let ys = serde_json::to_string(y).unwrap_or_default();
            xs.cmp(&ys)
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Equality with numeric comparison by value (`1 == 1.0`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => cmp_values(a, b) == Ordering::Equal,
        _ => a == b,
    }
}

/// Split a dotted path into segments.
pub fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

/// Look up a dotted path (array elements by index).
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Assign at a dotted path, creating (or replacing non-object) intermediate objects.
pub fn set_path(v: &mut Value, path: &[String], new: Value) {
    if path.is_empty() {
        *v = new;
        return;
    }
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    if let Value::Object(m) = v {
        if path.len() == 1 {
            m.insert(path[0].clone(), new);
        } else {
            let child = m.entry(path[0].clone()).or_insert(Value::Null);
            set_path(child, &path[1..], new);
        }
    }
}

/// Display form used for string concatenation and `toString`.
pub fn to_display(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_normalise() {
        assert_eq!(num(3.0), json!(3));
        assert_eq!(num(2.5), json!(2.5));
        assert_eq!(num(f64::NAN), Value::Null);
    }

    #[test]
    fn paths() {
        let mut v = json!({});
        set_path(&mut v, &split_path("a.b.c"), json!(1));
        assert_eq!(v, json!({"a":{"b":{"c":1}}}));
        assert_eq!(get_path(&v, &split_path("a.b.c")), Some(&json!(1)));
        assert_eq!(get_path(&v, &split_path("a.x")), None);
        assert_eq!(cmp_values(&json!(null), &json!(0)), Ordering::Less);
        assert!(values_equal(&json!(1), &json!(1.0)));
    }
}
