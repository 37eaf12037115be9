//! `dataset.json` in its MSD v1 and nnU-Net v2 dialects, read into one description.
//!
//! The dialect is nnU-Net v2 when the file has `channel_names` or `file_ending` (the keys
//! nnU-Net v2 requires), else MSD v1. Label maps are read by their value type in either
//! dialect: `{"0": "background"}` (index → name) or `{"background": 0}` (name → index).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{Case, MAX_CLASSES};
use crate::error::{DataError, Result};

/// The file as written; keys that medssl does not use (`description`, `licence`,
/// `tensorImageSize`, ...) are ignored.
#[derive(Deserialize)]
struct Raw {
    name: Option<String>,
    modality: Option<BTreeMap<String, String>>,
    channel_names: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, Value>>,
    #[serde(rename = "numTraining")]
    num_training: Option<usize>,
    file_ending: Option<String>,
    training: Option<Vec<MsdTraining>>,
    test: Option<Vec<String>>,
    dataset: Option<BTreeMap<String, NnUnetEntry>>,
}

/// One MSD `training` entry.
#[derive(Deserialize)]
struct MsdTraining {
    image: String,
    label: String,
}

/// One entry of nnU-Net v2's optional explicit `dataset` map.
#[derive(Deserialize)]
struct NnUnetEntry {
    images: Vec<String>,
    label: String,
}

/// What dataset.json says, before the files are looked at.
pub(super) struct Spec {
    pub name: Option<String>,
    pub channels: Vec<String>,
    pub labels: Vec<String>,
    pub num_training: Option<usize>,
    pub cases: Cases,
}

/// Where the cases come from.
pub(super) enum Cases {
    /// Listed in the file (MSD `training`/`test`, nnU-Net v2 `dataset`).
    Listed {
        training: Vec<Case>,
        test: Vec<Case>,
    },
    /// Found in `imagesTr`/`labelsTr`/`imagesTs` by nnU-Net v2's naming rule.
    Discovered { file_ending: String },
}

/// Image file endings medssl-io reads.
const FILE_ENDINGS: [&str; 2] = [".nii.gz", ".nii"];

/// Reads and interprets `path` (a task's dataset.json).
pub(super) fn read(path: &Path) -> Result<Spec> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::os(path, e))?;
    let raw: Raw = serde_json::from_str(&text)
        .map_err(|e| DataError::file(path, format!("invalid dataset.json: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let nnunet_v2 = raw.channel_names.is_some() || raw.file_ending.is_some();

    let channel_map = raw.channel_names.or(raw.modality).ok_or_else(|| {
        DataError::file(
            path,
            "no `channel_names` (nnU-Net v2) or `modality` (MSD) saying what the image channels are",
        )
    })?;
    let channels = channel_map
        .into_iter()
        .map(|(key, name)| Ok((index_key(path, "channel_names", &key)?, name)))
        .collect::<Result<Vec<_>>>()?;
    let channels = consecutive(path, "channels", channels)?;
    let labels = labels(
        path,
        raw.labels
            .ok_or_else(|| DataError::file(path, "no `labels` map"))?,
    )?;

    let cases = if nnunet_v2 {
        match raw.dataset {
            Some(entries) => Cases::Listed {
                training: entries
                    .into_iter()
                    .map(|(id, entry)| Case {
                        id,
                        images: entry.images.iter().map(|p| resolve(dir, p)).collect(),
                        label: Some(resolve(dir, &entry.label)),
                    })
                    .collect(),
                test: Vec::new(),
            },
            None => {
                let file_ending = raw.file_ending.ok_or_else(|| {
                    DataError::file(path, "no `file_ending` (nnU-Net v2 requires it)")
                })?;
                if !FILE_ENDINGS.contains(&file_ending.as_str()) {
                    return Err(DataError::file(
                        path,
                        format!(
                            "file_ending {file_ending:?} is not supported: medssl reads NIfTI \
                             ({})",
                            FILE_ENDINGS.join(", ")
                        ),
                    ));
                }
                Cases::Discovered { file_ending }
            }
        }
    } else {
        let training = raw.training.ok_or_else(|| {
            DataError::file(
                path,
                "no `training` list (MSD) and no `channel_names`/`file_ending` (nnU-Net v2)",
            )
        })?;
        let listed = |image: &str, label: Option<&str>| {
            let image = resolve(dir, image);
            Case {
                id: case_id(&image),
                images: vec![image],
                label: label.map(|l| resolve(dir, l)),
            }
        };
        Cases::Listed {
            training: training
                .iter()
                .map(|t| listed(&t.image, Some(&t.label)))
                .collect(),
            test: raw
                .test
                .unwrap_or_default()
                .iter()
                .map(|t| listed(t, None))
                .collect(),
        }
    };
    Ok(Spec {
        name: raw.name,
        channels,
        labels,
        num_training: raw.num_training,
        cases,
    })
}

/// The label map in either dialect, as names by class value.
fn labels(path: &Path, raw: BTreeMap<String, Value>) -> Result<Vec<String>> {
    let mut entries = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let entry = match value {
            Value::String(name) => (index_key(path, "labels", &key)?, name),
            Value::Number(n) => {
                let index = n.as_i64().ok_or_else(|| {
                    DataError::file(
                        path,
                        format!("labels: {key:?} has value {n}, expected an integer"),
                    )
                })?;
                (index, key)
            }
            Value::Array(values) => {
                return Err(DataError::file(
                    path,
                    format!(
                        "labels: {key:?} is the region {} (nnU-Net region-based training), \
                         which medssl does not support: give every label one integer value",
                        Value::Array(values)
                    ),
                ));
            }
            other => {
                return Err(DataError::file(
                    path,
                    format!(
                        "labels: {key:?} has value {other}, expected a name (MSD: \"1\": \
                         \"liver\") or an integer (nnU-Net v2: \"liver\": 1)"
                    ),
                ));
            }
        };
        entries.push(entry);
    }
    if entries.len() > MAX_CLASSES {
        return Err(DataError::file(
            path,
            format!(
                "labels: {} classes, more than the {MAX_CLASSES} (values 0-255) a uint8 label \
                 map can hold",
                entries.len()
            ),
        ));
    }
    consecutive(path, "labels", entries)
}

/// A map key that must be an integer index (`"0"`, `"1"`, ...).
fn index_key(path: &Path, what: &str, key: &str) -> Result<i64> {
    key.trim()
        .parse()
        .map_err(|_| DataError::file(path, format!("{what}: key {key:?} is not an integer index")))
}

/// Orders `(index, name)` pairs by index and checks the indices are 0, 1, 2, ...
fn consecutive(path: &Path, what: &str, mut entries: Vec<(i64, String)>) -> Result<Vec<String>> {
    if entries.is_empty() {
        return Err(DataError::file(path, format!("{what}: the map is empty")));
    }
    entries.sort_by_key(|e| e.0);
    if entries.iter().enumerate().any(|(i, e)| e.0 != i as i64) {
        let found: Vec<String> = entries.iter().map(|e| e.0.to_string()).collect();
        return Err(DataError::file(
            path,
            format!(
                "{what}: indices must be 0, 1, 2, ... without gaps or repeats, found {}",
                found.join(", ")
            ),
        ));
    }
    Ok(entries.into_iter().map(|e| e.1).collect())
}

/// `p` relative to the task directory (absolute paths stay as they are), without the
/// `./` MSD writes, so the same file always has the same path.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    let relative: PathBuf = Path::new(p)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    dir.join(relative)
}

/// The case id of an MSD image: its file name without the NIfTI extension.
fn case_id(image: &Path) -> String {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    strip_ending(&name).to_string()
}

/// `name` without a trailing `.nii.gz` or `.nii`.
fn strip_ending(name: &str) -> &str {
    FILE_ENDINGS
        .iter()
        .find_map(|e| name.strip_suffix(e))
        .unwrap_or(name)
}
