//! Writing phantoms to disk: an MSD task (`dataset.json`, `imagesTr/`, `labelsTr/`,
//! `imagesTs/`, `labelsTs/`) or an unlabelled pretraining collection (a directory of
//! images). Cases are generated and written in parallel; `dataset.json` is written last
//! and atomically, so its presence means the task is complete.

use std::path::{Path, PathBuf};

use medssl_io::nifti::{OutputType, write_volume};
use rayon::prelude::*;
use serde_json::{Map, Value, json};

use super::{Grid, Kind, case_name, generate};
use medssl_data::error::{DataError, Result};

/// What to write.
#[derive(Debug, Clone)]
pub struct Task {
    pub kind: Kind,
    pub grid: Grid,
    pub seed: u64,
    /// Training cases (indices `0..training`).
    pub training: usize,
    /// Test cases (indices after the training cases), written with their labels to
    /// `imagesTs/` and `labelsTs/`; `dataset.json` lists their images as MSD does.
    pub test: usize,
    /// Write images only, straight into the output directory (a pretraining
    /// collection), with no labels and no `dataset.json`.
    pub unlabelled: bool,
}

/// What [`write_task`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Images written.
    pub images: usize,
    /// Label maps written.
    pub labels: usize,
    /// The `dataset.json` of an MSD task.
    pub dataset_json: Option<PathBuf>,
}

/// MSD's relative path of a file in `folder`.
fn entry(folder: &str, name: &str) -> String {
    format!("./{folder}/{name}.nii.gz")
}

impl Task {
    fn check(&self) -> Result<()> {
        if self.training == 0 {
            return Err(DataError::Config(
                "a phantom task needs at least one case".into(),
            ));
        }
        if self.unlabelled && self.test > 0 {
            return Err(DataError::Config(
                "an unlabelled collection has no test split (drop the test cases)".into(),
            ));
        }
        Ok(())
    }

    /// The MSD v1 `dataset.json` of this task.
    pub fn dataset_json(&self) -> Value {
        let names = |range: std::ops::Range<usize>| {
            range
                .map(|i| case_name(self.kind, i as u64))
                .collect::<Vec<_>>()
        };
        let training: Vec<Value> = names(0..self.training)
            .iter()
            .map(|n| json!({"image": entry("imagesTr", n), "label": entry("labelsTr", n)}))
            .collect();
        let test: Vec<String> = names(self.training..self.training + self.test)
            .iter()
            .map(|n| entry("imagesTs", n))
            .collect();
        let labels: Map<String, Value> = self
            .kind
            .labels()
            .iter()
            .enumerate()
            .map(|(i, name)| (i.to_string(), json!(name)))
            .collect();
        let [i, j, k] = self.grid.shape();
        let [x, y, z] = self.grid.spacing();
        json!({
            "name": format!("synthetic-{}", self.kind.name()),
            "description": self.kind.description(),
            "reference": format!(
                "medssl synth --kind {} --seed {} --size {i},{j},{k} --spacing {x},{y},{z}",
                self.kind.name(),
                self.seed,
            ),
            "licence": "CC0-1.0",
            "release": concat!("medssl-data ", env!("CARGO_PKG_VERSION")),
            "tensorImageSize": "3D",
            "modality": {"0": self.kind.modality()},
            "labels": labels,
            "numTraining": self.training,
            "numTest": self.test,
            "training": training,
            "test": test,
        })
    }
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| DataError::os(path, e))
}

/// Generates and writes `task` under `out` (created when missing). Files of the same
/// names are replaced; other files are left alone.
pub fn write_task(task: &Task, out: &Path) -> Result<Written> {
    task.check()?;
    let image_type = if task.kind.is_ct() {
        OutputType::Int16
    } else {
        OutputType::Float32
    };
    create_dir(out)?;
    // (image folder, label folder) of each case; the unlabelled collection has neither.
    let folders = |index: usize| -> (PathBuf, Option<PathBuf>) {
        if task.unlabelled {
            (out.to_path_buf(), None)
        } else if index < task.training {
            (out.join("imagesTr"), Some(out.join("labelsTr")))
        } else {
            (out.join("imagesTs"), Some(out.join("labelsTs")))
        }
    };
    if !task.unlabelled {
        for folder in ["imagesTr", "labelsTr"] {
            create_dir(&out.join(folder))?;
        }
        if task.test > 0 {
            for folder in ["imagesTs", "labelsTs"] {
                create_dir(&out.join(folder))?;
            }
        }
    }
    let total = task.training + task.test;
    (0..total).into_par_iter().try_for_each(|index| {
        let sample = generate(task.kind, &task.grid, task.seed, index as u64);
        let file = format!("{}.nii.gz", sample.id);
        let (images, labels) = folders(index);
        write_volume(&images.join(&file), &sample.image, image_type)?;
        if let (Some(labels), Some(label)) = (labels, &sample.label) {
            write_volume(&labels.join(&file), label, OutputType::UInt8)?;
        }
        Ok::<(), DataError>(())
    })?;
    if task.unlabelled {
        return Ok(Written {
            images: total,
            labels: 0,
            dataset_json: None,
        });
    }
    let path = out.join("dataset.json");
    let text = serde_json::to_string_pretty(&task.dataset_json()).expect("JSON values serialise");
    medssl_io::atomic::write_atomically(&path, (text + "\n").as_bytes())
        .map_err(|e| DataError::os(&path, e))?;
    Ok(Written {
        images: total,
        labels: total,
        dataset_json: Some(path),
    })
}
