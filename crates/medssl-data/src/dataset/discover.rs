//! nnU-Net v2's naming rule: `imagesTr/{case}_{XXXX}{file_ending}` holds channel `XXXX`
//! (four digits) of `case`, and `labelsTr/{case}{file_ending}` its label map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Case;
use crate::error::{DataError, Result};

/// The cases in `dir/images` (and their labels in `dir/labels`), sorted by id. A missing
/// `images` folder means no cases (a task without `imagesTs` has no test cases).
/// Misnamed files, channel files that are missing or not declared, and label maps
/// without images go to `problems`, so that one pass lists them all; a case with such a
/// problem is still returned (it counts towards `numTraining`) and named by its problem.
pub(super) fn cases(
    dir: &Path,
    images: &str,
    labels: Option<&str>,
    file_ending: &str,
    channels: usize,
    problems: &mut Vec<DataError>,
) -> Result<Vec<Case>> {
    let image_dir = dir.join(images);
    if !image_dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: BTreeMap<String, BTreeMap<usize, PathBuf>> = BTreeMap::new();
    for name in file_names(&image_dir, file_ending)? {
        let path = image_dir.join(&name);
        let stem = &name[..name.len() - file_ending.len()];
        let Some((id, channel)) = split_channel(stem) else {
            problems.push(DataError::file(
                &path,
                format!(
                    "not named {{case}}_{{channel}}{file_ending} with a 4-digit channel \
                     (e.g. case_0000{file_ending}), as nnU-Net v2 requires"
                ),
            ));
            continue;
        };
        found
            .entry(id.to_string())
            .or_default()
            .insert(channel, path);
    }

    let mut cases = Vec::with_capacity(found.len());
    for (id, files) in found {
        for (extra, path) in files.range(channels..) {
            problems.push(DataError::case(
                &id,
                format!(
                    "{}: channel {extra}, but dataset.json declares {channels} channel(s)",
                    path.display()
                ),
            ));
        }
        for missing in (0..channels).filter(|c| !files.contains_key(c)) {
            problems.push(DataError::case(
                &id,
                format!(
                    "{}: missing channel {missing} file",
                    image_dir
                        .join(format!("{id}_{missing:04}{file_ending}"))
                        .display()
                ),
            ));
        }
        let label = labels.map(|l| dir.join(l).join(format!("{id}{file_ending}")));
        cases.push(Case {
            id,
            images: files.into_values().collect(),
            label,
        });
    }

    if let Some(labels) = labels {
        let label_dir = dir.join(labels);
        if label_dir.is_dir() {
            for name in file_names(&label_dir, file_ending)? {
                let id = &name[..name.len() - file_ending.len()];
                if cases.binary_search_by(|c| c.id.as_str().cmp(id)).is_err() {
                    problems.push(DataError::file(
                        label_dir.join(&name),
                        format!("label map without images: no {images}/{id}_0000{file_ending}"),
                    ));
                }
            }
        }
    }
    Ok(cases)
}

/// Names of the files in `dir` ending in `file_ending`, hidden files (`._x.nii.gz` that
/// macOS leaves in archives) left out.
fn file_names(dir: &Path, file_ending: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::os(dir, e))? {
        let entry = entry.map_err(|e| DataError::os(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && name.ends_with(file_ending) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// `"liver_3_0001"` → `("liver_3", 1)`.
fn split_channel(stem: &str) -> Option<(&str, usize)> {
    let (id, digits) = stem.rsplit_once('_')?;
    if id.is_empty() || digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id, digits.parse().ok()?))
}
