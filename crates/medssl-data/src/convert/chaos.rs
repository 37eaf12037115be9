//! CHAOS: DICOM series with one greyscale PNG of ground truth per slice, made into a
//! CT task and two MR tasks (T1-DUAL in and out of phase as two channels; T2-SPIR).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::catalogue::{KindInfo, known};
use super::files::{entries, layout_error, name, natural_cmp, subdirs};
use super::{LabelSource, SourceCase, SourceTask, ValueMap};
use crate::error::{DataError, Result};

fn chaos() -> &'static KindInfo {
    known("chaos")
}

/// CT ground truth: any pixel above 0 is liver.
fn ct_values() -> ValueMap {
    ValueMap::Ranges(vec![(0..=0, 0), (1..=255, 1)])
}

/// MR ground truth: the organisers' grey values with their tolerance bands.
fn mr_values() -> ValueMap {
    ValueMap::Ranges(vec![
        (0..=0, 0),
        (55..=70, 1),
        (110..=135, 2),
        (175..=200, 3),
        (240..=255, 4),
    ])
}

/// The CT and MR tasks found under `source` (`Train_Sets/` or the folder holding it).
pub(super) fn tasks(source: &Path) -> Result<Vec<SourceTask>> {
    let root = [
        source.join("Train_Sets"),
        source.join("CHAOS_Train_Sets").join("Train_Sets"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .unwrap_or_else(|| source.to_path_buf());
    let mut tasks = Vec::new();
    if root.join("CT").is_dir() {
        let training = numbered(&root.join("CT"))?
            .iter()
            .map(|dir| {
                labelled(
                    format!("CHAOS_CT_{}", name(dir)),
                    vec![dir.join("DICOM_anon")],
                    &dir.join("Ground"),
                    ct_values(),
                )
            })
            .collect::<Result<_>>()?;
        tasks.push(task(
            "CHAOS_CT",
            "CT",
            vec!["CT"],
            &["background", "liver"],
            training,
        ));
    }
    if root.join("MR").is_dir() {
        let patients = numbered(&root.join("MR"))?;
        let mut t1 = Vec::new();
        let mut t2 = Vec::new();
        for dir in &patients {
            let dual = dir.join("T1DUAL");
            let in_phase = dual.join("DICOM_anon").join("InPhase");
            let out_phase = dual.join("DICOM_anon").join("OutPhase");
            t1.push(labelled(
                format!("CHAOS_MR_{}", name(dir)),
                vec![in_phase, out_phase],
                &dual.join("Ground"),
                mr_values(),
            )?);
            let spir = dir.join("T2SPIR");
            t2.push(labelled(
                format!("CHAOS_MR_{}", name(dir)),
                vec![spir.join("DICOM_anon")],
                &spir.join("Ground"),
                mr_values(),
            )?);
        }
        let organs = [
            "background",
            "liver",
            "right kidney",
            "left kidney",
            "spleen",
        ];
        tasks.push(task(
            "CHAOS_MR_T1",
            "MRI T1-DUAL",
            vec!["T1 in phase", "T1 out of phase"],
            &organs,
            t1,
        ));
        tasks.push(task("CHAOS_MR_T2", "MRI T2-SPIR", vec!["T2"], &organs, t2));
    }
    if tasks.is_empty() {
        return Err(layout_error(&root, chaos(), "no CT/ or MR/ folder"));
    }
    Ok(tasks)
}

fn task(
    name: &str,
    what: &str,
    channels: Vec<&str>,
    labels: &[&str],
    training: Vec<SourceCase>,
) -> SourceTask {
    SourceTask {
        name: name.into(),
        description: format!("{}, {what}", chaos().title),
        channels: channels.into_iter().map(String::from).collect(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        training,
        test: Vec::new(),
    }
}

/// The patient folders (named by number) of `dir`.
fn numbered(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(subdirs(dir)?
        .into_iter()
        .filter(|d| name(d).chars().all(|c| c.is_ascii_digit()))
        .collect())
}

/// A case whose ground truth is the PNG slices in `ground`, laid on the series of its
/// first image.
fn labelled(
    id: String,
    images: Vec<PathBuf>,
    ground: &Path,
    values: ValueMap,
) -> Result<SourceCase> {
    for dir in &images {
        if !dir.is_dir() {
            return Err(layout_error(dir, chaos(), "no such DICOM folder"));
        }
    }
    if !ground.is_dir() {
        return Err(layout_error(ground, chaos(), "no ground truth folder"));
    }
    let pngs: Vec<PathBuf> = entries(ground)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    Ok(SourceCase {
        id,
        images,
        label: Some(LabelSource::PngSlices { pngs, values }),
    })
}

/// The PNG slices in the order of the series' slices (as the series is stacked, along
/// the slice normal). A PNG belongs to the DICOM file of the same name stem (CHAOS MR
/// names them so); otherwise the n-th PNG in natural name order belongs to the n-th
/// DICOM file in natural name order (CHAOS CT's `liver_GT_000.png` ... beside
/// `i0000,0000b.dcm` ...), wherever that file's slice lies in space.
pub(super) fn pair_slices(pngs: &[PathBuf], series: &Path) -> Result<Vec<PathBuf>> {
    let files = medssl_io::dicom::series_files(series, None)?;
    if pngs.len() != files.len() {
        return Err(DataError::file(
            series,
            format!(
                "{} ground-truth PNG slice(s) for {} DICOM slice(s): one PNG per slice is \
                 expected",
                pngs.len(),
                files.len()
            ),
        ));
    }
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let by_stem: HashMap<String, &PathBuf> = pngs.iter().map(|p| (stem(p), p)).collect();
    if files.iter().all(|f| by_stem.contains_key(&stem(f))) {
        return Ok(files.iter().map(|f| by_stem[&stem(f)].clone()).collect());
    }
    let mut by_name: Vec<&PathBuf> = files.iter().collect();
    by_name.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    let mut pngs_by_name: Vec<&PathBuf> = pngs.iter().collect();
    pngs_by_name.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    let png_of: HashMap<&PathBuf, &PathBuf> = by_name.into_iter().zip(pngs_by_name).collect();
    Ok(files.iter().map(|f| png_of[f].clone()).collect())
}
