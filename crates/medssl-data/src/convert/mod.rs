//! Public segmentation datasets, as downloaded and unpacked, turned into medssl's task
//! layout (`medssl dataset convert KIND SOURCE OUT`), as nnU-Net ships one conversion
//! script per dataset.
//!
//! Every kind reads its dataset's own directory layout and file formats (NIfTI, NRRD,
//! DICOM series with PNG slice ground truth, one mask file per structure) and writes one
//! or more tasks under `OUT`, each in the nnU-Net v2 layout medssl reads:
//! `OUT/<Task>/dataset.json`, `imagesTr/<case>_<channel>.nii.gz`,
//! `labelsTr/<case>.nii.gz` and `imagesTs/` for cases without ground truth.
//!
//! Converting checks what a later run would trip over, case by case, and lists every
//! problem at once: the channels of a case and its label map on one grid, label values
//! the dataset defines (an unexpected value is an error naming the case, the file and
//! the value), masks that hold 0 and 1 only. The source is only read. Files are written
//! atomically, the label map of a case last, so an interrupted conversion resumes: a
//! case whose files all exist is not converted again, and `dataset.json` is written
//! only when every case is, which marks the task finished.

mod catalogue;
mod chaos;
mod files;
mod labels;
mod masks;
mod nifti_kinds;
mod writer;

use std::path::{Path, PathBuf};

pub use catalogue::{KIND_NAMES, KINDS, KindInfo, info};
pub use labels::ValueMap;
pub use writer::ConvertedTask;

use crate::error::{DataError, Result};

/// Choices a conversion takes besides the kind and the folders.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// TotalSegmentator: the structures merged into the label map, in label order
    /// (`None`: the thirteen abdominal organs BTCV annotates).
    pub structures: Option<Vec<String>>,
}

/// What the conversion of one case reports while it runs.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub task: &'a str,
    pub case: &'a str,
    /// Cases of the task finished so far (this one included) and in all.
    pub done: usize,
    pub total: usize,
    /// Whether the case was converted by an earlier, interrupted run.
    pub resumed: bool,
}

/// Converts the dataset `kind` unpacked in `source` into tasks under `out`, and
/// returns what each task holds. `progress` hears of every finished case.
pub fn convert(
    kind: &str,
    source: &Path,
    out: &Path,
    options: &ConvertOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Vec<ConvertedTask>> {
    let info = info(kind).ok_or_else(|| {
        DataError::Config(format!(
            "unknown dataset kind {kind:?}; kinds: {}",
            KIND_NAMES.join(", ")
        ))
    })?;
    if !source.is_dir() {
        return Err(DataError::file(
            source,
            format!(
                "not a directory: {} expects {}",
                info.title, info.source_layout
            ),
        ));
    }
    if options.structures.is_some() && kind != "totalsegmentator" {
        return Err(DataError::Config(format!(
            "--structures applies to totalsegmentator only, not {kind}"
        )));
    }
    let tasks = match kind {
        "msd" => nifti_kinds::msd(source)?,
        "btcv" => vec![nifti_kinds::btcv(source)?],
        "amos" => nifti_kinds::amos(source)?,
        "flare22" => vec![nifti_kinds::flare22(source)?],
        "kits23" => vec![nifti_kinds::kits23(source)?],
        "lits" => vec![nifti_kinds::lits(source)?],
        "brats" => vec![nifti_kinds::brats(source)?],
        "chaos" => chaos::tasks(source)?,
        "hanseg" => vec![masks::hanseg(source)?],
        "totalsegmentator" => vec![masks::totalsegmentator(
            source,
            options.structures.as_deref(),
        )?],
        _ => unreachable!("every catalogue kind has a converter"),
    };
    let mut written = Vec::new();
    let mut problems = Vec::new();
    for task in &tasks {
        match writer::write_task(task, kind, source, out, progress) {
            Ok(t) => written.push(t),
            Err(e) => problems.push(e),
        }
    }
    match problems.len() {
        0 => Ok(written),
        1 => Err(problems.remove(0)),
        _ => Err(DataError::Config(
            problems
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}

/// A task as found in the source: what its channels and labels are and where each
/// case's files lie.
#[derive(Debug, Clone)]
pub(crate) struct SourceTask {
    /// The task folder's name under OUT and the `name` in dataset.json.
    pub name: String,
    pub description: String,
    pub channels: Vec<String>,
    /// Label names by class value, background first.
    pub labels: Vec<String>,
    pub training: Vec<SourceCase>,
    pub test: Vec<SourceCase>,
}

/// One case of the source: its image files in channel order and its ground truth.
#[derive(Debug, Clone)]
pub(crate) struct SourceCase {
    pub id: String,
    /// Files or DICOM series directories; a file may hold several channels (a 4-D
    /// NIfTI).
    pub images: Vec<PathBuf>,
    pub label: Option<LabelSource>,
}

/// Where a case's ground truth comes from and how its values become classes.
#[derive(Debug, Clone)]
pub(crate) enum LabelSource {
    /// One label map whose values `values` turns into classes.
    Map { path: PathBuf, values: ValueMap },
    /// One binary mask (0 and 1) per structure with the class it becomes; where masks
    /// overlap, the highest class wins (masks are listed by class).
    Masks(Vec<(PathBuf, u8)>),
    /// Greyscale PNG slices, one per slice of the DICOM series that is the case's first
    /// image, paired by [`chaos::pair_slices`].
    PngSlices {
        pngs: Vec<PathBuf>,
        values: ValueMap,
    },
}
