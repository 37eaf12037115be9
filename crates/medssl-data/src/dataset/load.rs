//! Reading one case and checking its content: channels on one grid, finite image
//! voxels, the label on the image grid holding only declared integer classes.

use std::collections::HashSet;
use std::path::Path;

use medssl_io::geometry::affine_rows;
use medssl_io::ndarray::{Axis, concatenate};
use medssl_io::{ReadOptions, Volume, read_volume};
use rayon::prelude::*;

use super::{Case, DATASET_JSON, Task};
use crate::error::{DataError, Result};
use crate::sample::{Sample, same_grid};

/// Voxels per parallel chunk of the value scans: large enough that scheduling costs
/// nothing next to the scan, small enough to spread a volume over the threads.
const CHUNK: usize = 1 << 16;

/// How many offending label values an error lists.
const LISTED_VALUES: usize = 20;

/// What [`Task::check`] found that is worth a look but does not stop a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Number of cases read and checked (training and test).
    pub cases: usize,
    /// Training cases whose label map is background only. Legitimate (a scan without the
    /// structure) but often a conversion mistake, and it gives a Dice of 0 or 1 only.
    pub empty_labels: Vec<String>,
}

impl CheckReport {
    /// One line per finding, for logs.
    pub fn warnings(&self) -> Vec<String> {
        self.empty_labels
            .iter()
            .map(|id| format!("case {id}: the label map is background only"))
            .collect()
    }
}

impl Task {
    /// Reads a case: image channels stacked in channel order, the label as a 1-channel
    /// volume. Fails, naming the case and the file, when a file cannot be read, the
    /// channels do not share one grid or do not match the declared channels, an image
    /// voxel is NaN or infinite, the label does not lie on the image grid (1e-3 mm /
    /// 1e-4 relative, as nnU-Net allows) or holds values that are not declared labels.
    pub fn load_case(&self, case: &Case) -> Result<Sample> {
        let image = self.load_image(case)?;
        let Some(label_path) = &case.label else {
            return Ok(Sample::unlabelled(&case.id, image));
        };
        let label = read(case, label_path)?;
        let sample = Sample::labelled(&case.id, image, label).map_err(|e| match e {
            DataError::Case { message, .. } => in_file(case, label_path, message),
            other => other,
        })?;
        if let Some(label) = &sample.label {
            check_label_values(case, label_path, label, &self.labels)?;
        }
        Ok(sample)
    }

    /// Reads and checks every case, in parallel. Problems that make a case unusable are
    /// errors (all of them at once, one line per case, when several cases fail);
    /// background-only label maps are returned in the report.
    pub fn check(&self) -> Result<CheckReport> {
        let cases: Vec<&Case> = self.training.iter().chain(&self.test).collect();
        let results: Vec<Result<bool>> = cases
            .par_iter()
            .map(|case| {
                let sample = self.load_case(case)?;
                Ok(sample.label.as_ref().is_some_and(background_only))
            })
            .collect();
        let mut report = CheckReport {
            cases: cases.len(),
            empty_labels: Vec::new(),
        };
        let mut failures = Vec::new();
        for (case, result) in cases.iter().zip(results) {
            match result {
                Ok(true) => report.empty_labels.push(case.id.clone()),
                Ok(false) => {}
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            0 => Ok(report),
            1 => Err(failures.remove(0)),
            n => {
                let lines: Vec<String> = failures.iter().map(|e| format!("  {e}")).collect();
                Err(DataError::file(
                    self.dir.join(DATASET_JSON),
                    format!(
                        "{n} of {} cases failed the check:\n{}",
                        cases.len(),
                        lines.join("\n")
                    ),
                ))
            }
        }
    }

    /// The case's image files read, checked and stacked into one `[C, I, J, K]` volume.
    fn load_image(&self, case: &Case) -> Result<Volume> {
        let volumes: Vec<Volume> = case
            .images
            .par_iter()
            .map(|path| {
                let volume = read(case, path)?;
                check_voxels_finite(&case.id, path, &volume)?;
                Ok(volume)
            })
            .collect::<Result<_>>()?;
        let channels: usize = volumes.iter().map(Volume::channels).sum();
        if channels != self.channels.len() {
            return Err(DataError::case(
                &case.id,
                format!(
                    "the image files hold {channels} channel(s) but dataset.json declares {} \
                     ({}): {}",
                    self.channels.len(),
                    self.channels.join(", "),
                    describe_files(&case.images)
                ),
            ));
        }
        let (first, rest) = volumes
            .split_first()
            .ok_or_else(|| DataError::case(&case.id, "the case lists no image files"))?;
        for (volume, path) in rest.iter().zip(&case.images[1..]) {
            if !same_grid(first, volume) {
                return Err(in_file(
                    case,
                    path,
                    format!(
                        "shape {:?} and affine rows {:?} differ from shape {:?} and affine \
                         rows {:?} of {}: all channels must share one grid",
                        volume.spatial_shape(),
                        &affine_rows(volume.affine())[..3],
                        first.spatial_shape(),
                        &affine_rows(first.affine())[..3],
                        case.images[0].display()
                    ),
                ));
            }
        }
        let affine = *first.affine();
        let volumes = match <[Volume; 1]>::try_from(volumes) {
            Ok([only]) => return Ok(only),
            Err(several) => several,
        };
        let views: Vec<_> = volumes.iter().map(|v| v.data().view()).collect();
        let data = concatenate(Axis(0), &views)
            .map_err(|e| DataError::case(&case.id, format!("cannot stack the channels: {e}")))?;
        Ok(Volume::new(data, affine))
    }
}

/// Reads one file of a case; the error names the case and the file.
fn read(case: &Case, path: &Path) -> Result<Volume> {
    read_volume(path, &ReadOptions::default()).map_err(|e| DataError::case(&case.id, e.to_string()))
}

/// An error about `path` of `case`.
fn in_file(case: &Case, path: &Path, problem: impl std::fmt::Display) -> DataError {
    DataError::case(&case.id, format!("{}: {problem}", path.display()))
}

/// `a.nii.gz, b.nii.gz` for a message.
fn describe_files(paths: &[std::path::PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// The voxels of a volume as one slice (volumes are always in standard layout).
fn voxels(volume: &Volume) -> &[f32] {
    volume
        .data()
        .as_slice()
        .expect("Volume keeps its data in standard layout")
}

/// Fails when an image voxel of case `id` (read from `path`) is NaN or infinite: it
/// would turn every loss it touches into NaN many steps later, far from its cause.
pub(crate) fn check_voxels_finite(id: &str, path: &Path, volume: &Volume) -> Result<()> {
    let values = voxels(volume);
    let bad: usize = values
        .par_chunks(CHUNK)
        .map(|c| c.iter().filter(|v| !v.is_finite()).count())
        .sum();
    if bad == 0 {
        return Ok(());
    }
    let first = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
    let [_, i, j, k] = unravel(first, volume.data().shape());
    Err(DataError::case(
        id,
        format!(
            "{}: {bad} NaN or infinite voxel(s), the first at (i, j, k) = ({i}, {j}, {k}) \
             (value {})",
            path.display(),
            values[first]
        ),
    ))
}

/// Fails when the label holds values that are not integers in `0..labels.len()`; the
/// error lists the offending values.
fn check_label_values(case: &Case, path: &Path, label: &Volume, labels: &[String]) -> Result<()> {
    let classes = labels.len() as f32;
    let declared = |v: f32| v >= 0.0 && v < classes && v.fract() == 0.0;
    let values = voxels(label);
    if values
        .par_chunks(CHUNK)
        .all(|c| c.iter().all(|&v| declared(v)))
    {
        return Ok(());
    }
    let mut seen = HashSet::new();
    let mut offending: Vec<f32> = Vec::new();
    let mut more = false;
    for &v in values.iter().filter(|&&v| !declared(v)) {
        if seen.insert(v.to_bits()) {
            if offending.len() == LISTED_VALUES {
                more = true;
                break;
            }
            offending.push(v);
        }
    }
    offending.sort_by(f32::total_cmp);
    let listed: Vec<String> = offending.iter().map(f32::to_string).collect();
    let names: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} {n}"))
        .collect();
    let integer_hint = if offending.iter().any(|v| v.fract() != 0.0 || !v.is_finite()) {
        "; label maps must hold integer class values"
    } else {
        ""
    };
    Err(in_file(
        case,
        path,
        format!(
            "label values {}{} are not declared in dataset.json (declared: {}){integer_hint}",
            listed.join(", "),
            if more { " and more" } else { "" },
            names.join(", ")
        ),
    ))
}

/// Whether a label map is background (0) everywhere.
fn background_only(label: &Volume) -> bool {
    voxels(label)
        .par_chunks(CHUNK)
        .all(|c| c.iter().all(|&v| v == 0.0))
}

/// The `[c, i, j, k]` index of flat position `n` in a standard-layout array of `shape`.
fn unravel(mut n: usize, shape: &[usize]) -> [usize; 4] {
    let mut index = [0; 4];
    for axis in (0..4).rev() {
        index[axis] = n % shape[axis];
        n /= shape[axis];
    }
    index
}
