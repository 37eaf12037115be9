//! Layered settings: defaults written in code, then a TOML file, then `--set key=value`
//! overrides, with every unknown key an error that names it and lists the valid ones.
//! Fine-tuning and pretraining configurations both load this way.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, TrainError};

/// `defaults`, then the TOML text `file`, then each `key=value` of `overrides`, in that
/// order. `optional` lists the dotted keys whose default is "none" (absent from the
/// defaults table) and that may therefore be added.
pub fn layered<T: Serialize + DeserializeOwned>(
    defaults: &T,
    file: Option<&str>,
    overrides: &[String],
    optional: &[&str],
) -> Result<T> {
    let mut table = toml::Table::try_from(defaults)
        .map_err(|e| TrainError::Invalid(format!("cannot serialise the defaults: {e}")))?;
    if let Some(text) = file {
        let overlay: toml::Table = text
            .parse()
            .map_err(|e| TrainError::Invalid(format!("configuration file: {e}")))?;
        merge(&mut table, overlay, "", optional)?;
    }
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| TrainError::Invalid(format!("--set {item}: expected key=value")))?;
        set_key(&mut table, key.trim(), value.trim(), optional)?;
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| TrainError::Invalid(format!("configuration: {e}")))
}

/// Merges `overlay` into `base`; keys must exist in `base` (so a typo is an error that
/// names it), except inside free-form tables (transform lists).
fn merge(
    base: &mut toml::Table,
    overlay: toml::Table,
    prefix: &str,
    optional: &[&str],
) -> Result<()> {
    for (key, value) in overlay {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => {
                merge(inner, value, &path, optional)?
            }
            (Some(slot), value) => *slot = value,
            (None, value) if optional.contains(&path.as_str()) => {
                base.insert(key, value);
            }
            (None, _) => {
                let valid: Vec<&String> = base.keys().collect();
                return Err(TrainError::Invalid(format!(
                    "unknown setting `{path}`; valid keys here: {}",
                    valid
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// `--set a.b.c=value`: the value is parsed as TOML (numbers, booleans, arrays,
/// quoted strings), or taken as a bare string.
fn set_key(table: &mut toml::Table, key: &str, value: &str, optional: &[&str]) -> Result<()> {
    let parsed: toml::Value = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut overlay = toml::Table::new();
    let parts: Vec<&str> = key.split('.').collect();
    let mut cursor = &mut overlay;
    for part in &parts[..parts.len() - 1] {
        cursor = cursor
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("just inserted a table");
    }
    cursor.insert(parts[parts.len() - 1].to_string(), parsed);
    merge(table, overlay, "", optional)
        .map_err(|e| TrainError::Invalid(format!("--set {key}: {e}")))
}
