//! Layered settings: defaults written in code, then a TOML file, then `--set key=value`
//! overrides, with every unknown key an error that names it and lists the valid ones.
//! Fine-tuning and pretraining configurations both load this way.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, TrainError};

/// A settings file (`--config`): its name, which every error about a value it set
/// starts with, and its text.
#[derive(Debug, Clone, Copy)]
pub struct SettingsFile<'a> {
    /// How messages name it: the path as the user gave it.
    pub name: &'a str,
    /// The TOML text.
    pub text: &'a str,
}

/// `defaults`, then the TOML `file`, then each `key=value` of `overrides`, in that
/// order. `optional` lists the dotted keys whose default is "none" (absent from the
/// defaults table) and that may therefore be added. An error about a value names where
/// the value came from: the file, or `--set`.
pub fn layered<T: Serialize + DeserializeOwned>(
    defaults: &T,
    file: Option<SettingsFile<'_>>,
    overrides: &[String],
    optional: &[&str],
) -> Result<T> {
    let defaults = toml::Table::try_from(defaults)
        .map_err(|e| TrainError::Invalid(format!("cannot serialise the defaults: {e}")))?;
    let mut table = defaults.clone();
    let mut from_file = BTreeSet::new();
    if let Some(file) = file {
        let in_file = |e: &dyn std::fmt::Display| {
            TrainError::Invalid(format!("{}: {}", file.name, e.to_string().trim_end()))
        };
        let overlay: toml::Table = file.text.parse().map_err(|e| in_file(&e))?;
        dotted_keys(&overlay, "", &mut from_file);
        merge(&mut table, overlay, "", optional).map_err(|e| in_file(&e))?;
    }
    let mut from_set = BTreeSet::new();
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| TrainError::Invalid(format!("--set {item}: expected key=value")))?;
        set_key(&mut table, key.trim(), value.trim(), optional)?;
        from_set.insert(key.trim().to_string());
    }
    toml::Value::Table(table).try_into().map_err(|e| {
        let key = problem_key(&e);
        let message = explain(&e, key.as_deref(), &defaults);
        match file.filter(|_| {
            key.as_ref()
                .is_some_and(|k| from_file.contains(k) && !from_set.contains(k))
        }) {
            Some(file) => TrainError::Invalid(format!("{}: {message}", file.name)),
            None => TrainError::Invalid(message),
        }
    })
}

/// The dotted keys whose values differ between two settings of one type (a key
/// present on one side only counts), compared as their TOML tables: tables are entered,
/// anything else (lists included) is compared whole.
pub fn differing_keys<T: Serialize>(a: &T, b: &T) -> Result<Vec<String>> {
    let table = |value: &T| {
        toml::Table::try_from(value)
            .map_err(|e| TrainError::Invalid(format!("cannot serialise the settings: {e}")))
    };
    let mut keys = Vec::new();
    differences(&table(a)?, &table(b)?, "", &mut keys);
    Ok(keys)
}

fn differences(a: &toml::Table, b: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (a.get(key), b.get(key)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                differences(x, y, &path, out);
            }
            (x, y) if x != y => out.push(path),
            _ => {}
        }
    }
}

/// Every dotted key of `table` (`train.lr`, `train`, ...) into `out`.
fn dotted_keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let toml::Value::Table(inner) = value {
            dotted_keys(inner, &path, out);
        }
        out.insert(path);
    }
}

/// The dotted key a deserialisation error is about, when it says.
fn problem_key(error: &toml::de::Error) -> Option<String> {
    error
        .to_string()
        .lines()
        .find_map(|line| Some(line.strip_prefix("in `")?.strip_suffix('`')?.to_string()))
}

/// A value of the wrong form, said in a user's words: the setting, what it got, what it
/// takes (`a whole number`, not serde's `u64`), and the setting's default as an example
/// of the right form to copy.
fn explain(error: &toml::de::Error, key: Option<&str>, defaults: &toml::Table) -> String {
    let message = [
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(error.message().trim().to_string(), |m, (serde, plain)| {
        m.replace(serde, plain)
    });
    let Some(key) = key else {
        return format!("configuration: {message}");
    };
    let default = key
        .split('.')
        .try_fold(None::<&toml::Value>, |at, part| match at {
            None => defaults.get(part).map(Some),
            Some(value) => value.get(part).map(Some),
        })
        .flatten();
    match default {
        Some(value) if shows_the_form(value) => {
            format!("setting `{key}`: {message}, e.g. --set '{key}={value}' (its default)")
        }
        _ => format!("setting `{key}`: {message}"),
    }
}

/// Whether a default is worth copying as an example: a value or a list of values, not
/// a table or a list of tables (a transform list, whose message names the step at
/// fault; an empty list shows no form at all).
fn shows_the_form(value: &toml::Value) -> bool {
    match value {
        toml::Value::Table(_) => false,
        toml::Value::Array(items) => items.first().is_some_and(|item| !item.is_table()),
        _ => true,
    }
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Settings {
        train: Train,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Train {
        epochs: u64,
        lr: f64,
        roi: [usize; 3],
        shuffle: bool,
    }

    /// Defaults of every kind of value: a whole number, a number, an array, a boolean.
    fn defaults() -> Settings {
        Settings {
            train: Train {
                epochs: 20,
                lr: 3e-4,
                roi: [32; 3],
                shuffle: true,
            },
        }
    }

    fn refused(set: &str) -> String {
        layered(&defaults(), None, &[set.to_string()], &[])
            .unwrap_err()
            .to_string()
    }

    /// A value of the wrong form names the setting, says what it takes in plain words
    /// (no Rust type names) and shows the default as a value to copy.
    #[test]
    fn a_value_of_the_wrong_form_is_explained_with_an_example() {
        let err = refused("train.epochs=abc");
        assert!(err.contains("setting `train.epochs`"), "{err}");
        assert!(err.contains("expected a whole number"), "{err}");
        assert!(err.contains("--set 'train.epochs=20'"), "{err}");
        assert!(!err.contains("u64"), "{err}");

        let err = refused("train.roi=64");
        assert!(err.contains("setting `train.roi`"), "{err}");
        assert!(err.contains("an array of length 3"), "{err}");
        assert!(err.contains("--set 'train.roi=[32, 32, 32]'"), "{err}");

        let err = refused("train.lr=fast");
        assert!(err.contains("expected a number"), "{err}");
        assert!(!err.contains("f64"), "{err}");

        let err = refused("train.shuffle=3");
        assert!(err.contains("expected true or false"), "{err}");
        assert!(err.contains("--set 'train.shuffle=true'"), "{err}");
    }

    /// A bad value or an unknown key from the file is said with the file's name; the
    /// same value given with `--set` after it is not blamed on the file.
    #[test]
    fn errors_about_the_file_name_it() {
        let defaults = defaults();
        let load = |text: &str, set: &[&str]| {
            let file = SettingsFile {
                name: "exp/run.toml",
                text,
            };
            let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
            layered(&defaults, Some(file), &set, &[])
                .unwrap_err()
                .to_string()
        };
        let err = load("[train]\nepochs = \"ten\"\n", &[]);
        assert!(
            err.starts_with("exp/run.toml: setting `train.epochs`: "),
            "{err}"
        );
        let err = load("[train]\nepoch = 3\n", &[]);
        assert!(
            err.starts_with("exp/run.toml: unknown setting `train.epoch`"),
            "{err}"
        );
        let err = load("[train\n", &[]);
        assert!(err.starts_with("exp/run.toml: "), "{err}");
        let err = load("[train]\nepochs = 5\n", &["train.epochs=ten"]);
        assert!(err.starts_with("setting `train.epochs`"), "{err}");
    }

    /// Changed leaves and keys on one side only are named by their dotted paths; a
    /// list counts as one value; equal settings differ nowhere.
    #[test]
    fn differing_keys_names_changed_and_one_sided_keys() {
        let a: toml::Table = "x = 1\nlist = [1, 2]\n[t]\ny = 2.0\nz = \"a\"\n[t.u]\nv = true"
            .parse()
            .unwrap();
        let mut b = a.clone();
        assert!(differing_keys(&a, &b).unwrap().is_empty());
        b["t"]["u"]
            .as_table_mut()
            .unwrap()
            .insert("v".into(), false.into());
        b["t"].as_table_mut().unwrap().remove("z");
        b["list"] = toml::Value::Array(vec![1.into()]);
        b.insert("w".into(), 3.into());
        assert_eq!(
            differing_keys(&a, &b).unwrap(),
            ["list", "t.u.v", "t.z", "w"]
        );
    }
}
