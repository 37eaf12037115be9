//! Labelled tasks in the Medical Segmentation Decathlon / nnU-Net layout (`dataset.json`,
//! `imagesTr`, `labelsTr`, `imagesTs`), checked on load.
//!
//! Both dialects of `dataset.json` are read:
//!
//! - **MSD v1** lists its cases: `"training": [{"image": "./imagesTr/x.nii.gz", "label":
//!   "./labelsTr/x.nii.gz"}]`, `"test": ["./imagesTs/y.nii.gz"]`, with `"modality":
//!   {"0": "CT"}` and `"labels": {"0": "background", "1": "liver"}`. A 4-D image file
//!   holds all channels (medssl-io turns its volumes into channels).
//! - **nnU-Net v2** names its channels and labels the other way round (`"channel_names":
//!   {"0": "CT"}`, `"labels": {"background": 0, "liver": 1}`) and lists no cases: they are
//!   found as `imagesTr/{case}_{0000..}{file_ending}` with `labelsTr/{case}{file_ending}`
//!   (and `imagesTs/` for test cases), or taken from an explicit `"dataset"` map.
//!
//! Region-based labels (`"tumor": [1, 2]`) are rejected with an explicit error: a model
//! trained here predicts one class per voxel, so every label needs one integer value.
//! Label values must run 0, 1, 2, ... without gaps, as nnU-Net requires.
//!
//! [`Task::open`] makes the cheap checks (files exist, `numTraining` matches, no case or
//! file twice); [`Task::load_case`] reads one case and checks its content;
//! [`Task::open_checked`] does both for every case of the task (training and test) and
//! lists every problem at once, before a long run starts (`medssl dataset check`,
//! nnU-Net's `--verify_dataset_integrity`).
//!
//! Grids are compared as MONAI and nnU-Net compare them: the same `[I, J, K]` shape and
//! affines whose entries agree within 1e-4 of their magnitude (at least 1e-3 mm, so
//! float32 headers written by different tools agree) — see
//! [`crate::sample::affines_agree`].

mod check;
mod discover;
mod json;
mod load;
mod source;

pub(crate) use load::check_voxels_finite;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

pub use check::{CheckReport, Unchecked};
pub use source::TaskSource;

/// The file every task directory holds.
pub const DATASET_JSON: &str = "dataset.json";

/// The most classes (background included) a task may have: label maps are read,
/// predicted and written as uint8, whose values 0-255 name 256 classes.
pub const MAX_CLASSES: usize = 256;

/// A segmentation task: where its files are, what its channels and labels mean, and its
/// cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// `name` from dataset.json, else the directory name.
    pub name: String,
    /// The task directory (the one holding dataset.json).
    pub dir: PathBuf,
    /// Channel names / modalities by channel index (`["CT"]`, `["T2", "ADC"]`).
    pub channels: Vec<String>,
    /// Label names by class value: `labels[0]` is the background's name. Values run
    /// from 0 without gaps, so `labels.len()` is the number of output classes.
    pub labels: Vec<String>,
    /// Cases with a label map.
    pub training: Vec<Case>,
    /// Cases without a label map (`imagesTs`).
    pub test: Vec<Case>,
}

/// One case: its image files (one per channel in the nnU-Net layout, or one file that
/// holds every channel) and its label map when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The case identifier (file name without channel suffix and extension).
    pub id: String,
    /// Image files in channel order.
    pub images: Vec<PathBuf>,
    /// The label map, for training cases.
    pub label: Option<PathBuf>,
}

impl Task {
    /// Reads `dir/dataset.json`, finds the cases and makes the cheap checks: every file
    /// exists, `numTraining` matches the cases found, and no case id or file appears
    /// twice. Every problem found is in the error, one per line. Image content is
    /// checked by [`Task::load_case`], [`Task::check`] and [`Task::open_checked`].
    pub fn open(dir: &Path) -> Result<Task> {
        let (task, problems) = Task::scan(dir)?;
        if problems.is_empty() {
            Ok(task)
        } else {
            Err(task.problems_error(problems))
        }
    }

    /// The task as dataset.json and the folders describe it, with the cheap checks'
    /// problems beside it rather than the first one as an error, so that a whole-task
    /// check lists them all. Only a dataset.json that cannot be read or understood, or a
    /// folder that cannot be listed, is an error.
    fn scan(dir: &Path) -> Result<(Task, Vec<DataError>)> {
        let json_path = dir.join(DATASET_JSON);
        let spec = json::read(&json_path)?;
        let mut problems = Vec::new();
        let (training, test, source) = match spec.cases {
            json::Cases::Listed { training, test } => (training, test, "listed".to_string()),
            json::Cases::Discovered { file_ending } => {
                let mut found = |images, labels| {
                    let channels = spec.channels.len();
                    discover::cases(dir, images, labels, &file_ending, channels, &mut problems)
                };
                (
                    found("imagesTr", Some("labelsTr"))?,
                    found("imagesTs", None)?,
                    format!("found in {}", dir.join("imagesTr").display()),
                )
            }
        };
        if let Some(declared) = spec.num_training
            && declared != training.len()
        {
            problems.push(DataError::file(
                &json_path,
                format!(
                    "numTraining is {declared} but {} training cases are {source}",
                    training.len()
                ),
            ));
        }
        check_unique(&json_path, training.iter().chain(&test), &mut problems);
        for case in training.iter().chain(&test) {
            for path in case.images.iter().chain(&case.label) {
                if !path.is_file() {
                    problems.push(DataError::case(
                        &case.id,
                        format!("{}: file does not exist", path.display()),
                    ));
                }
            }
        }
        let name = spec.name.unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let task = Task {
            name,
            dir: dir.to_path_buf(),
            channels: spec.channels,
            labels: spec.labels,
            training,
            test,
        };
        Ok((task, problems))
    }

    /// The training or test case with this id.
    pub fn case(&self, id: &str) -> Option<&Case> {
        self.training.iter().chain(&self.test).find(|c| c.id == id)
    }

    /// Ids of the training cases, in dataset order (what a split divides).
    pub fn training_ids(&self) -> Vec<String> {
        self.training.iter().map(|c| c.id.clone()).collect()
    }
}

/// Adds a problem for every case id or file used twice (a copy-paste slip in
/// dataset.json that would otherwise leak a case from training into validation).
fn check_unique<'a>(
    json_path: &Path,
    cases: impl Iterator<Item = &'a Case>,
    problems: &mut Vec<DataError>,
) {
    let mut ids: HashSet<&str> = HashSet::new();
    let mut files: HashMap<&Path, &str> = HashMap::new();
    for case in cases {
        if !ids.insert(&case.id) {
            problems.push(DataError::file(
                json_path,
                format!("case id {} appears more than once", case.id),
            ));
        }
        for path in case.images.iter().chain(&case.label) {
            if let Some(other) = files.insert(path, &case.id) {
                problems.push(DataError::file(
                    json_path,
                    format!(
                        "{} is used by cases {other} and {}",
                        path.display(),
                        case.id
                    ),
                ));
            }
        }
    }
}
