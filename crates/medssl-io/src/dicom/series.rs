//! DICOM directories: find the image files (whatever their names), group them by
//! SeriesInstanceUID, sort one series by position along the slice normal (never by file
//! name or InstanceNumber), check even spacing and stack the slices.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{
    FileInfo, decode_samples, describe, has_dicom_marker, open, slice_normal, stack_affine,
};
use crate::error::{IoError, Result};
use crate::geometry::Affine;
use crate::image::{Format, Image};
use crate::samples::{Samples, Scaling};

/// One series found in a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSummary {
    pub uid: String,
    pub description: Option<String>,
    pub number: Option<i64>,
    pub modality: Option<String>,
    /// Number of image files.
    pub images: usize,
}

/// What a directory scan found.
struct Scan {
    /// Image files with their attributes, grouped by SeriesInstanceUID.
    series: BTreeMap<String, Vec<(PathBuf, FileInfo)>>,
    files_seen: usize,
    non_dicom: usize,
    without_image: usize,
}

/// Every regular file below `dir`, sorted for determinism (links are not followed).
fn files_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| IoError::os(&d, e))? {
            let entry = entry.map_err(|e| IoError::os(&d, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| IoError::os(&entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn scan(dir: &Path) -> Result<Scan> {
    let files = files_below(dir)?;
    let found: Vec<Option<(PathBuf, Option<FileInfo>)>> = files
        .par_iter()
        .map(|path| {
            if !has_dicom_marker(path) {
                return Ok(None);
            }
            let obj = open(path, true)?;
            Ok(Some((path.clone(), FileInfo::of(&obj))))
        })
        .collect::<Result<_>>()?;
    let mut scan = Scan {
        series: BTreeMap::new(),
        files_seen: files.len(),
        non_dicom: 0,
        without_image: 0,
    };
    for item in found {
        match item {
            None => scan.non_dicom += 1,
            Some((_, None)) => scan.without_image += 1,
            Some((path, Some(info))) => scan
                .series
                .entry(info.series_uid.clone())
                .or_default()
                .push((path, info)),
        }
    }
    if scan.series.is_empty() {
        return Err(IoError::invalid(
            dir,
            format!(
                "no DICOM images in this directory ({} files: {} not DICOM, {} DICOM without \
                 pixel data)",
                scan.files_seen, scan.non_dicom, scan.without_image
            ),
        ));
    }
    Ok(scan)
}

fn summary(uid: &str, files: &[(PathBuf, FileInfo)]) -> SeriesSummary {
    let first = &files[0].1;
    SeriesSummary {
        uid: uid.to_string(),
        description: first.series_description.clone(),
        number: first.series_number,
        modality: first.modality.clone(),
        images: files.len(),
    }
}

/// Lists the series of image files below `dir`, most images first.
pub fn list_series(dir: &Path) -> Result<Vec<SeriesSummary>> {
    Ok(summaries(&scan(dir)?))
}

fn summaries(scan: &Scan) -> Vec<SeriesSummary> {
    let mut list: Vec<SeriesSummary> = scan
        .series
        .iter()
        .map(|(uid, files)| summary(uid, files))
        .collect();
    list.sort_by(|a, b| b.images.cmp(&a.images).then(a.uid.cmp(&b.uid)));
    list
}

fn describe_list(list: &[SeriesSummary]) -> String {
    list.iter()
        .map(|s| {
            format!(
                "{} ({} images{})",
                s.uid,
                s.images,
                s.description
                    .as_deref()
                    .map(|d| format!(", {d}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads the series `uid` from `dir`, or, without a UID, the series with the most
/// images; when several series tie for most, it is an error listing them.
pub fn read_series(dir: &Path, uid: Option<&str>) -> Result<Image> {
    let Chosen { files, others } = choose_series(dir, uid)?;
    let mut image = stack_series(dir, order_slices(dir, files)?)?;
    if !others.is_empty() {
        image
            .details
            .push(("other series".into(), describe_list(&others)));
    }
    Ok(image)
}

/// The image files of the series [`read_series`]`(dir, uid)` reads, in the order it
/// stacks them: slice `k` of the volume (its third index) comes from `files[k]`; a
/// series held in one file (multi-frame or not) gives that one file.
///
/// It exists to pair per-slice annotations with the slices they belong to: ground truth
/// shipped as one PNG per DICOM file (as in CHAOS) is named after the DICOM files, while
/// the volume is ordered along the slice normal, not by name or InstanceNumber. The
/// files are chosen, checked and sorted by the same code as `read_series`, so this fails
/// wherever the series' headers would make `read_series` fail; the pixel data is not
/// decoded.
pub fn series_files(dir: &Path, uid: Option<&str>) -> Result<Vec<PathBuf>> {
    let files = choose_series(dir, uid)?.files;
    Ok(match order_slices(dir, files)? {
        Slices::Single(path) => vec![path],
        Slices::Stack { files, .. } => files.into_iter().map(|(path, _)| path).collect(),
    })
}

/// The series chosen in a directory.
struct Chosen {
    /// Its image files, not yet in slice order.
    files: Vec<(PathBuf, FileInfo)>,
    /// The other series there.
    others: Vec<SeriesSummary>,
}

/// Chooses the series `uid` below `dir`, or, without a UID, the series with the most
/// images, which must be unique.
fn choose_series(dir: &Path, uid: Option<&str>) -> Result<Chosen> {
    let mut scan = scan(dir)?;
    let list = summaries(&scan);
    let chosen = match uid {
        Some(uid) => {
            if !scan.series.contains_key(uid) {
                return Err(IoError::invalid(
                    dir,
                    format!(
                        "no series {uid}; the directory holds: {}",
                        describe_list(&list)
                    ),
                ));
            }
            uid.to_string()
        }
        None => {
            if list.len() > 1 && list[0].images == list[1].images {
                return Err(IoError::invalid(
                    dir,
                    format!(
                        "{} series with {} images each; choose one with --series UID: {}",
                        list.iter().filter(|s| s.images == list[0].images).count(),
                        list[0].images,
                        describe_list(&list)
                    ),
                ));
            }
            list[0].uid.clone()
        }
    };
    let files = scan.series.remove(&chosen).expect("chosen series exists");
    let others = list.into_iter().filter(|s| s.uid != chosen).collect();
    Ok(Chosen { files, others })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The files of one series in volume order.
enum Slices {
    /// The series is one file, read as it is (its frames are the slices).
    Single(PathBuf),
    /// Single-frame files sorted along the slice normal, and the affine of their stack.
    Stack {
        files: Vec<(PathBuf, FileInfo)>,
        affine: Affine,
    },
}

/// Checks that the files of a multi-file series share orientation, pixel spacing and
/// size, sorts them by position along the slice normal and checks that they are evenly
/// spaced.
fn order_slices(dir: &Path, mut files: Vec<(PathBuf, FileInfo)>) -> Result<Slices> {
    if files.len() == 1 {
        let (path, _) = files.remove(0);
        return Ok(Slices::Single(path));
    }
    let (first_path, first) = files[0].clone();
    let first_path = &first_path;
    let missing = |path: &Path, what: &str| {
        IoError::invalid(
            path,
            format!("missing {what}: cannot place the slice in a volume"),
        )
    };
    let orientation = first.planes[0]
        .orientation
        .ok_or_else(|| missing(first_path, "ImageOrientationPatient"))?;
    let pixel_spacing = first.planes[0]
        .pixel_spacing
        .ok_or_else(|| missing(first_path, "PixelSpacing"))?;
    let normal = slice_normal(&orientation);
    let mut placed = Vec::with_capacity(files.len());
    for (path, info) in files {
        if info.frames != 1 {
            return Err(IoError::unsupported(
                &path,
                format!(
                    "a multi-frame file ({} frames) inside a multi-file series",
                    info.frames
                ),
            ));
        }
        let plane = info.planes[0];
        let position = plane
            .position
            .ok_or_else(|| missing(&path, "ImagePositionPatient"))?;
        let this_orientation = plane
            .orientation
            .ok_or_else(|| missing(&path, "ImageOrientationPatient"))?;
        let this_spacing = plane
            .pixel_spacing
            .ok_or_else(|| missing(&path, "PixelSpacing"))?;
        let differs =
            |a: &[f64], b: &[f64], tol: f64| a.iter().zip(b).any(|(x, y)| (x - y).abs() > tol);
        if differs(&this_orientation, &orientation, 1e-4) {
            return Err(IoError::invalid(
                &path,
                format!(
                    "ImageOrientationPatient {this_orientation:?} differs from {orientation:?} \
                     of {}: slices of one volume must share the orientation",
                    file_name(first_path)
                ),
            ));
        }
        if differs(&this_spacing, &pixel_spacing, 1e-4)
            || info.rows != first.rows
            || info.columns != first.columns
        {
            return Err(IoError::invalid(
                &path,
                format!(
                    "{}x{} pixels at spacing {this_spacing:?} differ from {}x{} at \
                     {pixel_spacing:?} of {}",
                    info.rows,
                    info.columns,
                    first.rows,
                    first.columns,
                    file_name(first_path)
                ),
            ));
        }
        let along = nalgebra::Vector3::from(position).dot(&normal);
        placed.push((along, position, path, info));
    }
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));

    let positions: Vec<[f64; 3]> = placed.iter().map(|p| p.1).collect();
    let names: Vec<String> = placed.iter().map(|p| file_name(&p.2)).collect();
    let affine = stack_affine(dir, &orientation, &pixel_spacing, &positions, 1.0, &|i| {
        names[i].clone()
    })?;
    let files = placed
        .into_iter()
        .map(|(_, _, path, info)| (path, info))
        .collect();
    Ok(Slices::Stack { files, affine })
}

/// Reads a series' files, in the order [`order_slices`] gave them, into one image.
fn stack_series(dir: &Path, slices: Slices) -> Result<Image> {
    let (files, affine) = match slices {
        Slices::Single(path) => {
            let mut image = super::read_file(&path)?;
            image.format = Format::DicomSeries;
            return Ok(image);
        }
        Slices::Stack { files, affine } => (files, affine),
    };
    let decoded: Vec<(Samples, Scaling)> = files
        .par_iter()
        .map(|(path, info)| {
            let obj = open(path, false)?;
            Ok((decode_samples(path, &obj, info)?, info.scaling))
        })
        .collect::<Result<_>>()?;
    let stored_type = decoded[0].0.sample_type();
    let (samples, scaling) = concatenate(dir, decoded)?;
    let first_info = &files[0].1;
    let mut details = describe(first_info);
    details.push(("files".into(), files.len().to_string()));
    Ok(Image {
        path: dir.to_path_buf(),
        format: Format::DicomSeries,
        shape: vec![first_info.columns, first_info.rows, files.len()],
        stored_type,
        samples,
        scaling,
        affine: Some(affine),
        assumed_geometry: None,
        details,
    })
}

/// Stacks decoded slices. When all slices share one rescale, the stored samples are kept
/// with that scaling; otherwise each slice is rescaled to f64 first.
fn concatenate(dir: &Path, slices: Vec<(Samples, Scaling)>) -> Result<(Samples, Scaling)> {
    let scaling = slices[0].1;
    let mismatch = |ty| {
        IoError::invalid(
            dir,
            format!("slices store different sample types ({ty:?} among others)"),
        )
    };
    if slices.iter().all(|(_, s)| *s == scaling) {
        let mut iter = slices.into_iter();
        let (mut all, _) = iter.next().expect("at least one slice");
        for (s, _) in iter {
            all.extend(s).map_err(mismatch)?;
        }
        return Ok((all, scaling));
    }
    let mut values = Vec::new();
    for (s, sc) in slices {
        s.for_each_scaled(sc, |v| values.push(v));
    }
    Ok((Samples::F64(values), Scaling::IDENTITY))
}
