//! Reading one case and checking its content: channels on one grid, finite image
//! voxels, the label on the image grid holding only declared integer classes.

use std::collections::HashSet;
use std::path::Path;

use medssl_io::geometry::affine_rows;
use medssl_io::ndarray::{Axis, concatenate};
use medssl_io::{ReadOptions, Volume, read_volume};
use rayon::prelude::*;

use super::{Case, Task};
use crate::error::{DataError, Result};
use crate::sample::{GRID_TOLERANCE, Sample, same_grid};

/// Voxels per parallel chunk of the value scans: large enough that scheduling costs
/// nothing next to the scan, small enough to spread a volume over the threads.
const CHUNK: usize = 1 << 16;

/// How many offending label values an error lists.
const LISTED_VALUES: usize = 20;

impl Task {
    /// Reads a case: image channels stacked in channel order, the label as a 1-channel
    /// volume. Fails, naming the case and the file, when a file cannot be read, the
    /// channels do not share one grid or do not match the declared channels, an image
    /// voxel is NaN or infinite, the label does not lie on the image grid (1e-3 mm /
    /// 1e-4 relative, as nnU-Net allows) or holds values that are not declared labels;
    /// several problems of one case are all in the message, separated by `; `.
    pub fn load_case(&self, case: &Case) -> Result<Sample> {
        self.inspect(case)
            .map_err(|problems| DataError::case(&case.id, problems.join("; ")))
    }

    /// Reads a case and checks its content as [`Task::load_case`] describes, going on
    /// after a problem so that every problem of the case is found: the sample when
    /// there are none, else each problem as `FILE: what is wrong`.
    pub(super) fn inspect(&self, case: &Case) -> std::result::Result<Sample, Vec<String>> {
        let mut problems = Vec::new();
        let image = self.load_image(case, &mut problems);
        let label = case.label.as_ref().and_then(|path| {
            read(path)
                .map(|label| (path, label))
                .map_err(|problem| problems.push(problem))
                .ok()
        });
        let values = label
            .as_ref()
            .and_then(|(path, label)| undeclared_label_values(path, label, &self.labels));
        let sample = match (image, label) {
            (Some(image), Some((path, label))) => Sample::labelled(&case.id, image, label)
                .map_err(|e| match e {
                    DataError::Case { message, .. } => {
                        problems.push(format!("{}: {message}", path.display()))
                    }
                    other => problems.push(other.to_string()),
                })
                .ok(),
            (Some(image), None) if case.label.is_none() => {
                Some(Sample::unlabelled(&case.id, image))
            }
            _ => None,
        };
        problems.extend(values);
        match sample {
            Some(sample) if problems.is_empty() => Ok(sample),
            _ => Err(problems),
        }
    }

    /// The case's image files read, checked and stacked into one `[C, I, J, K]` volume;
    /// `None` when a problem (added to `problems`) makes that impossible or wrong.
    fn load_image(&self, case: &Case, problems: &mut Vec<String>) -> Option<Volume> {
        let read: Vec<std::result::Result<Volume, String>> = case
            .images
            .par_iter()
            .map(|path| {
                let volume = read(path)?;
                check_voxels_finite(&case.id, path, &volume).map_err(|e| match e {
                    DataError::Case { message, .. } => message,
                    other => other.to_string(),
                })?;
                Ok(volume)
            })
            .collect();
        let mut volumes = Vec::with_capacity(read.len());
        for result in read {
            match result {
                Ok(volume) => volumes.push(volume),
                Err(problem) => problems.push(problem),
            }
        }
        if volumes.len() < case.images.len() {
            return None;
        }
        let before = problems.len();
        let channels: usize = volumes.iter().map(Volume::channels).sum();
        if channels != self.channels.len() {
            problems.push(format!(
                "{}: the image files hold {channels} channel(s) but dataset.json declares {} \
                 ({})",
                describe_files(&case.images),
                self.channels.len(),
                self.channels.join(", "),
            ));
        }
        let Some((first, rest)) = volumes.split_first() else {
            problems.push("the case lists no image files".into());
            return None;
        };
        for (volume, path) in rest.iter().zip(&case.images[1..]) {
            if !same_grid(first, volume) {
                problems.push(format!(
                    "{}: shape {:?} and affine rows {:?} differ from shape {:?} and affine \
                     rows {:?} of {} beyond the tolerance ({GRID_TOLERANCE}): all channels \
                     must share one grid",
                    path.display(),
                    volume.spatial_shape(),
                    &affine_rows(volume.affine())[..3],
                    first.spatial_shape(),
                    &affine_rows(first.affine())[..3],
                    case.images[0].display()
                ));
            }
        }
        if problems.len() > before {
            return None;
        }
        let affine = *first.affine();
        let volumes = match <[Volume; 1]>::try_from(volumes) {
            Ok([only]) => return Some(only),
            Err(several) => several,
        };
        let views: Vec<_> = volumes.iter().map(|v| v.data().view()).collect();
        match concatenate(Axis(0), &views) {
            Ok(data) => Some(Volume::new(data, affine)),
            Err(e) => {
                problems.push(format!("cannot stack the channels: {e}"));
                None
            }
        }
    }
}

/// Reads one file of a case; the problem names the file.
fn read(path: &Path) -> std::result::Result<Volume, String> {
    read_volume(path, &ReadOptions::default()).map_err(|e| e.to_string())
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

/// The problem with a label map (read from `path`) holding values that are not integers
/// in `0..labels.len()`, listing them; `None` when every value is a declared class.
fn undeclared_label_values(path: &Path, label: &Volume, labels: &[String]) -> Option<String> {
    let classes = labels.len() as f32;
    let declared = |v: f32| v >= 0.0 && v < classes && v.fract() == 0.0;
    let values = voxels(label);
    if values
        .par_chunks(CHUNK)
        .all(|c| c.iter().all(|&v| declared(v)))
    {
        return None;
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
    Some(format!(
        "{}: label values {}{} are not declared in dataset.json (declared: {}){integer_hint}",
        path.display(),
        listed.join(", "),
        if more { " and more" } else { "" },
        names.join(", ")
    ))
}

/// Whether a label map is background (0) everywhere.
pub(super) fn background_only(label: &Volume) -> bool {
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
