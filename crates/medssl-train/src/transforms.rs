//! Transform tables written in code, as a user would write them in a configuration, so
//! a run's `config.toml` shows exactly which steps ran.

use crate::error::{Result, TrainError};

/// A transform table `{ name = NAME, key = value, ... }`.
pub fn table(name: &str, params: &[(&str, toml::Value)]) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("name".into(), name.into());
    for (key, value) in params {
        t.insert((*key).into(), value.clone());
    }
    t
}

/// A TOML array of floats.
pub fn floats(values: &[f64]) -> toml::Value {
    toml::Value::Array(values.iter().map(|&v| v.into()).collect())
}

/// A TOML array of integers.
pub fn ints(values: &[usize]) -> toml::Value {
    toml::Value::Array(values.iter().map(|&v| (v as i64).into()).collect())
}

/// The key of a preprocessing cache: every parameter of the deterministic steps, so a
/// changed step recomputes the cached volumes.
pub fn preprocess_fingerprint(preprocess: &[toml::Table]) -> Result<String> {
    let steps = toml::Table::from_iter([(
        "preprocess".to_string(),
        toml::Value::Array(preprocess.iter().cloned().map(toml::Value::Table).collect()),
    )]);
    toml::to_string(&steps).map_err(|e| TrainError::Invalid(e.to_string()))
}
