//! Serde encoding of `f64` metric values that keeps `nan` and `inf` apart.
//!
//! Surface metrics are legitimately `nan` (class absent from the ground truth) or `inf`
//! (class missing from one map), and the two mean different things. JSON has no such
//! numbers and `serde_json` would write both as `null`, so non-finite values are written
//! as the strings `"nan"`, `"inf"` and `"-inf"` (the convention of the reference
//! fixtures); finite values stay plain numbers. Use with `#[serde(with = ...)]`.

use serde::{Deserialize, Deserializer, Serializer, de::Error};

pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    match *value {
        v if v.is_finite() => serializer.serialize_f64(v),
        v if v.is_nan() => serializer.serialize_str("nan"),
        v if v > 0.0 => serializer.serialize_str("inf"),
        _ => serializer.serialize_str("-inf"),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }
    match Repr::deserialize(deserializer)? {
        Repr::Number(v) => Ok(v),
        Repr::Text(s) => match s.as_str() {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(D::Error::custom(format!(
                "expected a number, \"nan\", \"inf\" or \"-inf\", got {other:?}"
            ))),
        },
    }
}
