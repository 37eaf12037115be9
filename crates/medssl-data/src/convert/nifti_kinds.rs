//! The datasets published as NIfTI image and label-map files: MSD, BTCV, AMOS22,
//! FLARE22, KiTS23, LiTS and BraTS. Each finds its cases in its own layout; the label
//! values each defines are checked when the case is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::catalogue::{BTCV_LABELS, known};
use super::files::{find_nifti, layout_error, name, nifti_files, require_dir, subdirs};
use super::{LabelSource, SourceCase, SourceTask, ValueMap};
use crate::dataset::Task;
use crate::error::{DataError, Result};

/// Label names by value, background first, as owned strings.
fn label_names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The label map `path` whose values are the classes `0..labels`.
fn identity_label(path: PathBuf, labels: usize) -> Option<LabelSource> {
    Some(LabelSource::Map {
        path,
        values: ValueMap::Identity {
            max: u8::try_from(labels - 1).expect("at most 256 classes"),
        },
    })
}

/// An error for a case whose ground truth is missing.
fn missing_label(case: &str, expected: &Path) -> DataError {
    DataError::case(
        case,
        format!("no label map: expected {}", expected.display()),
    )
}

/// MSD: an already native task, checked whole (every case read) and rewritten in the
/// nnU-Net v2 layout under its folder's name.
pub(super) fn msd(source: &Path) -> Result<Vec<SourceTask>> {
    if !source.join(crate::dataset::DATASET_JSON).is_file() {
        return Err(layout_error(source, known("msd"), "no dataset.json"));
    }
    let (task, _report) = Task::open_checked(source)?;
    let classes = task.labels.len();
    let case = |c: &crate::dataset::Case| SourceCase {
        id: c.id.clone(),
        images: c.images.clone(),
        label: c.label.clone().and_then(|l| identity_label(l, classes)),
    };
    Ok(vec![SourceTask {
        name: name(source),
        description: format!("{} (Medical Segmentation Decathlon)", task.name),
        channels: task.channels.clone(),
        labels: task.labels.clone(),
        training: task.training.iter().map(case).collect(),
        test: task.test.iter().map(case).collect(),
    }])
}

/// BTCV: `RawData/Training/{img,label}` and `RawData/Testing/img`.
pub(super) fn btcv(source: &Path) -> Result<SourceTask> {
    let info = known("btcv");
    let root = if source.join("RawData").is_dir() {
        source.join("RawData")
    } else {
        source.to_path_buf()
    };
    let images = require_dir(root.join("Training").join("img"), info)?;
    let labels = require_dir(root.join("Training").join("label"), info)?;
    let case = |stem: &str, path: PathBuf, labelled: bool| -> Result<SourceCase> {
        let number = stem.strip_prefix("img").unwrap_or(stem);
        let id = format!("BTCV_{number}");
        let label = if labelled {
            let label_stem = format!("label{number}");
            let path = find_nifti(&labels, &label_stem)
                .ok_or_else(|| missing_label(&id, &labels.join(format!("{label_stem}.nii.gz"))))?;
            identity_label(path, BTCV_LABELS.len())
        } else {
            None
        };
        Ok(SourceCase {
            id,
            images: vec![path],
            label,
        })
    };
    let training = nifti_files(&images)?
        .into_iter()
        .map(|(stem, path)| case(&stem, path, true))
        .collect::<Result<_>>()?;
    let testing = root.join("Testing").join("img");
    let test = if testing.is_dir() {
        nifti_files(&testing)?
            .into_iter()
            .map(|(stem, path)| case(&stem, path, false))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    Ok(SourceTask {
        name: "BTCV".into(),
        description: info.title.into(),
        channels: vec!["CT".into()],
        labels: label_names(&BTCV_LABELS),
        training,
        test,
    })
}

/// AMOS22's fifteen organs by label value.
const AMOS_LABELS: [&str; 16] = [
    "background",
    "spleen",
    "right kidney",
    "left kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior vena cava",
    "pancreas",
    "right adrenal gland",
    "left adrenal gland",
    "duodenum",
    "bladder",
    "prostate/uterus",
];

/// AMOS22 case numbers from this one on are MRI.
const AMOS_FIRST_MRI: u32 = 500;

/// AMOS22: `imagesTr`+`labelsTr`, `imagesVa`+`labelsVa` (both become training cases)
/// and `imagesTs`, split by case number into a CT and an MRI task.
pub(super) fn amos(source: &Path) -> Result<Vec<SourceTask>> {
    let info = known("amos");
    require_dir(source.join("imagesTr"), info)?;
    let mut parts: BTreeMap<bool, (Vec<SourceCase>, Vec<SourceCase>)> = BTreeMap::new();
    for (images, labels) in [
        ("imagesTr", Some("labelsTr")),
        ("imagesVa", Some("labelsVa")),
        ("imagesTs", None),
    ] {
        let dir = source.join(images);
        if !dir.is_dir() {
            continue;
        }
        for (stem, path) in nifti_files(&dir)? {
            let number: u32 = stem
                .strip_prefix("amos_")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| layout_error(&path, info, "not named amos_NNNN.nii.gz"))?;
            let label = match labels {
                Some(labels) => {
                    let label_dir = source.join(labels);
                    let label = find_nifti(&label_dir, &stem).ok_or_else(|| {
                        missing_label(&stem, &label_dir.join(format!("{stem}.nii.gz")))
                    })?;
                    identity_label(label, AMOS_LABELS.len())
                }
                None => None,
            };
            let mri = number >= AMOS_FIRST_MRI;
            let part = parts.entry(mri).or_default();
            let case = SourceCase {
                id: stem,
                images: vec![path],
                label,
            };
            if labels.is_some() {
                part.0.push(case);
            } else {
                part.1.push(case);
            }
        }
    }
    if parts.is_empty() {
        return Err(layout_error(source, info, "no amos_NNNN.nii.gz images"));
    }
    Ok(parts
        .into_iter()
        .map(|(mri, (training, test))| {
            let modality = if mri { "MRI" } else { "CT" };
            SourceTask {
                name: format!("AMOS22_{modality}"),
                description: format!("AMOS22, {modality} cases"),
                channels: vec![modality.into()],
                labels: label_names(&AMOS_LABELS),
                training,
                test,
            }
        })
        .collect())
}

/// FLARE22's thirteen organs by label value.
const FLARE22_LABELS: [&str; 14] = [
    "background",
    "liver",
    "right kidney",
    "spleen",
    "pancreas",
    "aorta",
    "inferior vena cava",
    "right adrenal gland",
    "left adrenal gland",
    "gallbladder",
    "esophagus",
    "stomach",
    "duodenum",
    "left kidney",
];

/// FLARE22: the labelled training cases, `images/<case>_0000.nii.gz` with
/// `labels/<case>.nii.gz`.
pub(super) fn flare22(source: &Path) -> Result<SourceTask> {
    let info = known("flare22");
    let nested = source.join("Training").join("FLARE22_LabeledCase50");
    let root = if nested.is_dir() {
        nested
    } else {
        source.to_path_buf()
    };
    let images = require_dir(root.join("images"), info)?;
    let labels = require_dir(root.join("labels"), info)?;
    let training = nifti_files(&images)?
        .into_iter()
        .map(|(stem, path)| {
            let id = stem
                .strip_suffix("_0000")
                .ok_or_else(|| layout_error(&path, info, "not named <case>_0000.nii.gz"))?
                .to_string();
            let label = find_nifti(&labels, &id)
                .ok_or_else(|| missing_label(&id, &labels.join(format!("{id}.nii.gz"))))?;
            Ok(SourceCase {
                label: identity_label(label, FLARE22_LABELS.len()),
                id,
                images: vec![path],
            })
        })
        .collect::<Result<_>>()?;
    Ok(SourceTask {
        name: "FLARE22".into(),
        description: info.title.into(),
        channels: vec!["CT".into()],
        labels: label_names(&FLARE22_LABELS),
        training,
        test: Vec::new(),
    })
}

/// KiTS23: `case_NNNNN/imaging.nii.gz` with `segmentation.nii.gz`.
pub(super) fn kits23(source: &Path) -> Result<SourceTask> {
    let info = known("kits23");
    let root = if source.join("dataset").is_dir() {
        source.join("dataset")
    } else {
        source.to_path_buf()
    };
    let mut training = Vec::new();
    for dir in subdirs(&root)? {
        let id = name(&dir);
        if !id.starts_with("case_") {
            continue;
        }
        let image = find_nifti(&dir, "imaging").ok_or_else(|| {
            DataError::case(&id, format!("no {}", dir.join("imaging.nii.gz").display()))
        })?;
        let label = find_nifti(&dir, "segmentation")
            .ok_or_else(|| missing_label(&id, &dir.join("segmentation.nii.gz")))?;
        training.push(SourceCase {
            id,
            images: vec![image],
            label: identity_label(label, 4),
        });
    }
    if training.is_empty() {
        return Err(layout_error(&root, info, "no case_NNNNN folders"));
    }
    Ok(SourceTask {
        name: "KiTS23".into(),
        description: info.title.into(),
        channels: vec!["CT".into()],
        labels: label_names(&["background", "kidney", "tumor", "cyst"]),
        training,
        test: Vec::new(),
    })
}

/// LiTS: `volume-N` with `segmentation-N`, and `test-volume-N`, in SOURCE or its
/// subfolders.
pub(super) fn lits(source: &Path) -> Result<SourceTask> {
    let info = known("lits");
    let mut folders = vec![source.to_path_buf()];
    folders.extend(subdirs(source)?);
    let mut volumes: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut segmentations: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut tests: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for folder in &folders {
        for (stem, path) in nifti_files(folder)? {
            let numbered = |prefix: &str| stem.strip_prefix(prefix)?.parse::<u32>().ok();
            let (map, n) = if let Some(n) = numbered("test-volume-") {
                (&mut tests, n)
            } else if let Some(n) = numbered("volume-") {
                (&mut volumes, n)
            } else if let Some(n) = numbered("segmentation-") {
                (&mut segmentations, n)
            } else {
                continue;
            };
            if let Some(earlier) = map.insert(n, path.clone()) {
                return Err(DataError::file(
                    &path,
                    format!("case {n} appears twice (also {})", earlier.display()),
                ));
            }
        }
    }
    if volumes.is_empty() {
        return Err(layout_error(source, info, "no volume-N.nii files"));
    }
    let id = |n: u32| format!("LiTS_{n:03}");
    let training = volumes
        .into_iter()
        .map(|(n, image)| {
            let label = segmentations.remove(&n).ok_or_else(|| {
                missing_label(
                    &id(n),
                    &image.with_file_name(format!("segmentation-{n}.nii")),
                )
            })?;
            Ok(SourceCase {
                id: id(n),
                images: vec![image],
                label: identity_label(label, 3),
            })
        })
        .collect::<Result<_>>()?;
    if let Some((n, path)) = segmentations.into_iter().next() {
        return Err(DataError::file(
            path,
            format!("a segmentation without its volume-{n}"),
        ));
    }
    Ok(SourceTask {
        name: "LiTS".into(),
        description: info.title.into(),
        channels: vec!["CT".into()],
        labels: label_names(&["background", "liver", "tumor"]),
        training,
        test: tests
            .into_iter()
            .map(|(n, image)| SourceCase {
                id: format!("LiTS_test_{n:03}"),
                images: vec![image],
                label: None,
            })
            .collect(),
    })
}

/// BraTS file suffixes: the four channels in medssl's order (FLAIR, T1, T1ce, T2), then
/// the segmentation, for 2021 (`_flair`) and 2023 (`-t2f`) naming.
const BRATS_NAMING: [([&str; 4], &str, &str); 2] = [
    (["_flair", "_t1", "_t1ce", "_t2"], "_seg", "2021"),
    (["-t2f", "-t1n", "-t1c", "-t2w"], "-seg", "2023"),
];

/// BraTS: one folder per case, four sequences and the segmentation; 2021 stores
/// enhancing tumour as 4, 2023 as 3.
pub(super) fn brats(source: &Path) -> Result<SourceTask> {
    let info = known("brats");
    let mut candidates = Vec::new();
    for dir in subdirs(source)? {
        candidates.push(dir.clone());
        candidates.extend(subdirs(&dir)?);
    }
    let (mut training, mut test) = (Vec::new(), Vec::new());
    for dir in candidates {
        let id = name(&dir);
        let Some((channels, seg, year)) = BRATS_NAMING
            .iter()
            .find(|(channels, _, _)| find_nifti(&dir, &format!("{id}{}", channels[0])).is_some())
        else {
            continue;
        };
        let images = channels
            .iter()
            .map(|suffix| {
                find_nifti(&dir, &format!("{id}{suffix}")).ok_or_else(|| {
                    DataError::case(
                        &id,
                        format!("no {}", dir.join(format!("{id}{suffix}.nii.gz")).display()),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let values = if *year == "2021" {
            ValueMap::Table(vec![(0, 0), (1, 1), (2, 2), (4, 3)])
        } else {
            ValueMap::Identity { max: 3 }
        };
        let label =
            find_nifti(&dir, &format!("{id}{seg}")).map(|path| LabelSource::Map { path, values });
        let case = SourceCase { id, images, label };
        if case.label.is_some() {
            training.push(case);
        } else {
            test.push(case);
        }
    }
    if training.is_empty() && test.is_empty() {
        return Err(layout_error(source, info, "no BraTS case folders"));
    }
    Ok(SourceTask {
        name: "BraTS".into(),
        description: info.title.into(),
        channels: label_names(&["FLAIR", "T1", "T1ce", "T2"]),
        labels: label_names(&[
            "background",
            "necrotic tumor core",
            "peritumoral edema",
            "enhancing tumor",
        ]),
        training,
        test,
    })
}
