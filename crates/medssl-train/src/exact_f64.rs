//! `Option<f64>` checkpoint fields that survive the JSON round trip bit for bit.
//!
//! serde_json's default float parser can land one unit in the last place away from the
//! number it wrote, and a resumed run must report exactly what an uninterrupted one
//! does. The value is stored as the shortest decimal string that Rust's correctly
//! rounded parser maps back to the same `f64`. Use with
//! `#[serde(default, with = "crate::exact_f64")]`.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes `Some(v)` as the string of `v`.
pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serializer.serialize_some(&v.to_string()),
        None => serializer.serialize_none(),
    }
}

/// Reads what [`serialize`] wrote.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not a floating-point number"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(default, with = "crate::exact_f64")]
        value: Option<f64>,
    }

    /// Values whose shortest decimal serde_json's fast parser reads back one unit in the
    /// last place off come back exactly, as do NaN, infinities and None; a plain number
    /// or other text is refused.
    #[test]
    fn values_survive_json_text_exactly() {
        let mut x = 1.089_841_485_023_498_5_f64;
        for _ in 0..20_000 {
            x = f64::from_bits(x.to_bits() + 7_777_777);
            for v in [x, -x * 1e-300, x * 1e300, 1.0 / x] {
                let text = serde_json::to_string(&Holder { value: Some(v) }).unwrap();
                let back: Holder = serde_json::from_str(&text).unwrap();
                assert_eq!(back.value.map(f64::to_bits), Some(v.to_bits()), "{text}");
            }
        }
        for v in [None, Some(f64::INFINITY), Some(f64::NEG_INFINITY)] {
            let text = serde_json::to_string(&Holder { value: v }).unwrap();
            assert_eq!(
                serde_json::from_str::<Holder>(&text).unwrap(),
                Holder { value: v }
            );
        }
        let nan = serde_json::to_string(&Holder {
            value: Some(f64::NAN),
        })
        .unwrap();
        assert!(
            serde_json::from_str::<Holder>(&nan)
                .unwrap()
                .value
                .unwrap()
                .is_nan()
        );
        assert!(serde_json::from_str::<Holder>(r#"{"value": 0.5}"#).is_err());
        let missing: Holder = serde_json::from_str("{}").unwrap();
        assert_eq!(missing.value, None);
        assert!(serde_json::from_str::<Holder>(r#"{"value": "abc"}"#).is_err());
    }
}
