//! Writing a found task in the nnU-Net v2 layout, case by case, checking each case on
//! the way and resuming where an interrupted conversion stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{Image, ReadOptions, Volume, read_image};
use ndarray::{Array4, s};
use rayon::prelude::*;
use serde_json::json;

use super::{LabelSource, Progress, SourceCase, SourceTask, ValueMap, chaos};
use crate::dataset::{DATASET_JSON, Task};
use crate::error::{DataError, Result};
use crate::sample::same_grid;

/// The file ending of every written image.
const FILE_ENDING: &str = ".nii.gz";

/// At most this many cases are read at once: a whole-body CT in f32 takes a gigabyte.
const CASES_AT_ONCE: usize = 4;

/// A task written by a conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedTask {
    pub name: String,
    /// The task directory (holding dataset.json).
    pub dir: PathBuf,
    /// Cases with ground truth (`imagesTr`/`labelsTr`) and without (`imagesTs`).
    pub training: usize,
    pub test: usize,
    /// Cases an earlier, interrupted conversion had written already.
    pub resumed: usize,
    /// Findings that do not stop the conversion (overlapping structure masks).
    pub notes: Vec<String>,
}

/// What converting one case found.
struct CaseOutcome {
    resumed: bool,
    notes: Vec<String>,
}

/// Writes `task` under `out` (see the module documentation) and checks the result
/// reads as a task.
pub(super) fn write_task(
    task: &SourceTask,
    kind: &str,
    source: &Path,
    out: &Path,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<ConvertedTask> {
    let dir = out.join(&task.name);
    let json_path = dir.join(DATASET_JSON);
    if json_path.exists() {
        return Err(DataError::file(
            &json_path,
            "exists: this task was converted already; remove its folder to convert it again",
        ));
    }
    if task.training.is_empty() {
        return Err(DataError::file(
            source,
            format!("no cases with ground truth found for {}", task.name),
        ));
    }
    let jobs: Vec<(&SourceCase, &str)> = task
        .training
        .iter()
        .map(|c| (c, "imagesTr"))
        .chain(task.test.iter().map(|c| (c, "imagesTs")))
        .collect();
    for folder in ["imagesTr", "labelsTr", "imagesTs"] {
        if folder != "imagesTs" || !task.test.is_empty() {
            let path = dir.join(folder);
            medssl_io::atomic::create_dir_for_writes(&path).map_err(|e| DataError::os(path, e))?;
        }
    }
    let done = AtomicUsize::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads().min(CASES_AT_ONCE))
        .build()
        .map_err(|e| DataError::Config(format!("cannot start the conversion's threads: {e}")))?;
    let outcomes: Vec<Result<CaseOutcome>> = pool.install(|| {
        jobs.par_iter()
            .map(|(case, images)| {
                let outcome = write_case(task, case, &dir, images);
                if let Ok(o) = &outcome {
                    progress(Progress {
                        task: &task.name,
                        case: &case.id,
                        done: done.fetch_add(1, Ordering::Relaxed) + 1,
                        total: jobs.len(),
                        resumed: o.resumed,
                    });
                }
                outcome
            })
            .collect()
    });
    let mut problems = Vec::new();
    let mut converted = ConvertedTask {
        name: task.name.clone(),
        dir: dir.clone(),
        training: task.training.len(),
        test: task.test.len(),
        resumed: 0,
        notes: Vec::new(),
    };
    for (outcome, (case, _)) in outcomes.into_iter().zip(&jobs) {
        match outcome {
            Ok(o) => {
                converted.resumed += usize::from(o.resumed);
                converted.notes.extend(
                    o.notes
                        .into_iter()
                        .map(|n| format!("case {}: {n}", case.id)),
                );
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(DataError::file(
            source,
            format!(
                "{} of {} case(s) of {} could not be converted (the others are written; \
                 fix these and run the same command again to finish):\n{}",
                problems.len(),
                jobs.len(),
                task.name,
                problems.join("\n")
            ),
        ));
    }
    let json = dataset_json(task, kind, source);
    medssl_io::atomic::write_atomically(&json_path, json.as_bytes())
        .map_err(|e| DataError::os(&json_path, e))?;
    Task::open(&dir)?;
    Ok(converted)
}

/// The nnU-Net v2 dataset.json of `task`, with where it came from.
fn dataset_json(task: &SourceTask, kind: &str, source: &Path) -> String {
    let channels: serde_json::Map<String, serde_json::Value> = task
        .channels
        .iter()
        .enumerate()
        .map(|(i, name)| (i.to_string(), json!(name)))
        .collect();
    let labels: serde_json::Map<String, serde_json::Value> = task
        .labels
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), json!(i)))
        .collect();
    let source = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
    let value = json!({
        "name": task.name,
        "description": task.description,
        "channel_names": channels,
        "labels": labels,
        "numTraining": task.training.len(),
        "file_ending": FILE_ENDING,
        "converted_from": {"kind": kind, "source": source.display().to_string()},
    });
    serde_json::to_string_pretty(&value).expect("a JSON value serialises") + "\n"
}

/// Converts one case into `dir` (`images`: `imagesTr` or `imagesTs`), or finds it
/// converted by an earlier run.
fn write_case(
    task: &SourceTask,
    case: &SourceCase,
    dir: &Path,
    images: &str,
) -> Result<CaseOutcome> {
    let in_case = |e: DataError| match e {
        DataError::Case { .. } => e,
        other => DataError::case(&case.id, other.to_string()),
    };
    let image_paths: Vec<PathBuf> = (0..task.channels.len())
        .map(|c| {
            dir.join(images)
                .join(format!("{}_{c:04}{FILE_ENDING}", case.id))
        })
        .collect();
    let label_path = case.label.as_ref().map(|_| {
        dir.join("labelsTr")
            .join(format!("{}{FILE_ENDING}", case.id))
    });
    if image_paths.iter().chain(&label_path).all(|p| p.exists()) {
        return Ok(CaseOutcome {
            resumed: true,
            notes: Vec::new(),
        });
    }
    let (image, first) = read_channels(task, case).map_err(in_case)?;
    let mut notes = Vec::new();
    let label = match &case.label {
        Some(source) => Some(
            label_volume(task, source, &image, first.as_ref(), &mut notes)
                .map_err(|e| DataError::case(&case.id, e.to_string()))?,
        ),
        None => None,
    };
    for (c, path) in image_paths.iter().enumerate() {
        let channel = Volume::new(
            image.data().slice(s![c..c + 1, .., .., ..]).to_owned(),
            *image.affine(),
        );
        write_volume(path, &channel, OutputType::smallest_exact(&channel))?;
    }
    if let (Some(label), Some(path)) = (label, label_path) {
        write_volume(&path, &label, OutputType::UInt8)?;
    }
    Ok(CaseOutcome {
        resumed: false,
        notes,
    })
}

/// The case's channels stacked on one grid, and, when its ground truth is a PNG slice
/// stack, the first image file as read (the series the stack is laid on); other cases
/// do not keep its samples beside the volume.
fn read_channels(task: &SourceTask, case: &SourceCase) -> Result<(Volume, Option<Image>)> {
    let keep_first = matches!(case.label, Some(LabelSource::PngSlices { .. }));
    let mut first: Option<Image> = None;
    let mut volumes: Vec<(PathBuf, Volume)> = Vec::new();
    for path in &case.images {
        let image = read_image(path, &ReadOptions::default())?;
        volumes.push((path.clone(), image.to_volume()?));
        if keep_first && first.is_none() {
            first = Some(image);
        }
    }
    if volumes.is_empty() {
        return Err(DataError::case(&case.id, "no image files"));
    }
    let channels: usize = volumes.iter().map(|(_, v)| v.channels()).sum();
    if channels != task.channels.len() {
        return Err(DataError::case(
            &case.id,
            format!(
                "{channels} channel(s) in {}, but {} has {} ({})",
                list_paths(volumes.iter().map(|v| &v.0)),
                task.name,
                task.channels.len(),
                task.channels.join(", ")
            ),
        ));
    }
    let (first_path, reference) = &volumes[0];
    for (path, volume) in &volumes[1..] {
        if !same_grid(reference, volume) {
            return Err(DataError::case(
                &case.id,
                format!(
                    "{} is not on the grid of {}: {}",
                    path.display(),
                    first_path.display(),
                    grid_difference(reference, volume)
                ),
            ));
        }
    }
    let shape = reference.spatial_shape();
    let mut data = Array4::zeros((channels, shape[0], shape[1], shape[2]));
    let mut c = 0;
    for (_, volume) in &volumes {
        let n = volume.channels();
        data.slice_mut(s![c..c + n, .., .., ..])
            .assign(volume.data());
        c += n;
    }
    Ok((Volume::new(data, *reference.affine()), first))
}

fn list_paths<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> String {
    paths
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How `b`'s grid differs from `a`'s, for error messages.
fn grid_difference(a: &Volume, b: &Volume) -> String {
    if a.spatial_shape() != b.spatial_shape() {
        format!(
            "shape {:?} against {:?}",
            b.spatial_shape(),
            a.spatial_shape()
        )
    } else {
        let round = |s: [f64; 3]| s.map(|x| (x * 1e4).round() / 1e4);
        format!(
            "the same shape {:?} but another placement (spacing {:?} against {:?}, origin \
             {:?} against {:?})",
            a.spatial_shape(),
            round(b.spacing()),
            round(a.spacing()),
            round(origin(b)),
            round(origin(a))
        )
    }
}

fn origin(v: &Volume) -> [f64; 3] {
    let a = v.affine();
    [a[(0, 3)], a[(1, 3)], a[(2, 3)]]
}

/// The case's classes on the image grid, as a one-channel volume.
fn label_volume(
    task: &SourceTask,
    source: &LabelSource,
    image: &Volume,
    first: Option<&Image>,
    notes: &mut Vec<String>,
) -> Result<Volume> {
    let shape = image.spatial_shape();
    let mut classes = Array4::<f32>::zeros((1, shape[0], shape[1], shape[2]));
    match source {
        LabelSource::Map { path, values } => {
            let map = read_on_grid(path, image)?;
            assign_classes(&mut classes, &map, path, values, &task.name)?;
        }
        LabelSource::Masks(masks) => {
            let mut overlapped = vec![false; classes.len()];
            let binary = ValueMap::Identity { max: 1 };
            for (path, class) in masks {
                let mask = read_on_grid(path, image)?;
                let mut bad = None;
                let voxels = classes.iter_mut().zip(mask.data().iter());
                for ((out, &v), overlap) in voxels.zip(overlapped.iter_mut()) {
                    match binary.class(v) {
                        Some(1) => {
                            *overlap |= *out != 0.0;
                            *out = f32::from(*class);
                        }
                        Some(_) => {}
                        None => bad = Some(v),
                    }
                }
                if let Some(v) = bad {
                    return Err(DataError::file(
                        path,
                        format!("holds the value {v}: a structure mask holds 0 and 1 only"),
                    ));
                }
            }
            let overlapping = overlapped.iter().filter(|&&o| o).count();
            if overlapping > 0 {
                notes.push(format!(
                    "{overlapping} voxel(s) lie in two or more structure masks; each keeps \
                     the structure of the highest label value"
                ));
            }
        }
        LabelSource::PngSlices { pngs, values } => {
            let series = first.expect("the first image is kept for a PNG slice stack");
            let ordered = chaos::pair_slices(pngs, &series.path)?;
            let stack = medssl_io::png_slices::label_stack(&ordered, series)?.to_volume()?;
            assign_classes(&mut classes, &stack, &series.path, values, &task.name)?;
        }
    }
    Ok(Volume::new(classes, *image.affine()))
}

/// Reads a one-channel label file and checks it lies on the image's grid.
fn read_on_grid(path: &Path, image: &Volume) -> Result<Volume> {
    let volume = read_image(path, &ReadOptions::default())?.to_volume()?;
    if volume.channels() != 1 {
        return Err(DataError::file(
            path,
            format!("{} channels: a label map has one", volume.channels()),
        ));
    }
    if !same_grid(image, &volume) {
        return Err(DataError::file(
            path,
            format!(
                "the label map is not on the image grid: {}",
                grid_difference(image, &volume)
            ),
        ));
    }
    Ok(volume)
}

/// Turns the stored values of `map` (read from `path`) into classes; a value the dataset
/// does not define is an error naming up to five of them.
fn assign_classes(
    classes: &mut Array4<f32>,
    map: &Volume,
    path: &Path,
    values: &ValueMap,
    task: &str,
) -> Result<()> {
    let mut unexpected: Vec<f32> = Vec::new();
    for (out, &v) in classes.iter_mut().zip(map.data().iter()) {
        match values.class(v) {
            Some(class) => *out = f32::from(class),
            None => {
                if unexpected.len() < 5 && !unexpected.iter().any(|u| u.to_bits() == v.to_bits()) {
                    unexpected.push(v);
                }
            }
        }
    }
    if unexpected.is_empty() {
        Ok(())
    } else {
        let shown: Vec<String> = unexpected.iter().map(|v| v.to_string()).collect();
        Err(DataError::file(
            path,
            format!(
                "label value(s) {} are not among {task}'s values ({})",
                shown.join(", "),
                values.describe()
            ),
        ))
    }
}
