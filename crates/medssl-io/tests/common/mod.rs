//! What the reader fixture tests share: the reference JSON files and their numbers, and
//! the value summaries (sha256, probes) the references give for each file.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

use medssl_io::Image;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A reference JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A reference number; the strings `"nan"`, `"inf"` and `"-inf"` stand for non-finite
/// values (the fixtures' strict-JSON convention).
pub fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        _ => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

pub fn nums(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

pub fn usizes(v: &Value) -> Vec<usize> {
    nums(v).into_iter().map(|x| x as usize).collect()
}

/// `got` equals `want` within `rel` relative to `max(|want|, 1)`; a non-finite value on
/// either side fails first (the fixtures hold only finite values where this is used).
pub fn assert_close(case: &str, what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        got.is_finite() && want.is_finite(),
        "{case}: {what} = {got}, expected {want} (non-finite)"
    );
    let tol = rel * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol,
        "{case}: {what} = {got}, expected {want}"
    );
}

/// The sha256 of the scaled values as little-endian f64 in storage order, as the
/// references compute it.
pub fn sha256_of_scaled(image: &Image) -> String {
    let mut hasher = Sha256::new();
    image
        .samples
        .for_each_scaled(image.scaling, |v| hasher.update(v.to_le_bytes()));
    format!("{:x}", hasher.finalize())
}

/// The scaled value at the storage position `linear`.
pub fn value_at(image: &Image, linear: usize) -> f64 {
    let mut value = f64::NAN;
    let mut i = 0;
    image.samples.for_each_scaled(image.scaling, |v| {
        if i == linear {
            value = v;
        }
        i += 1;
    });
    value
}

/// The value summary a reference gives for a file (count, sum, min, max and the sha256
/// under `sha_key`) against the image's scaled values.
pub fn check_values(case: &str, image: &Image, values: &Value, sha_key: &str) {
    let stats = image.stats();
    assert_eq!(
        stats.count,
        values["count"].as_u64().unwrap() as usize,
        "{case}: count"
    );
    assert_close(case, "sum", stats.sum, num(&values["sum"]), 1e-12);
    assert_close(case, "min", stats.min, num(&values["min"]), 1e-12);
    assert_close(case, "max", stats.max, num(&values["max"]), 1e-12);
    assert_eq!(
        sha256_of_scaled(image),
        values[sha_key].as_str().unwrap(),
        "{case}: sha256 of the scaled values"
    );
}
