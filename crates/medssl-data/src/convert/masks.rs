//! The datasets that publish one binary mask per structure, merged here into one label
//! map: HaN-Seg (NRRD) and TotalSegmentator (NIfTI).

use std::path::{Path, PathBuf};

use super::catalogue::{KindInfo, known};
use super::files::{find_nifti, layout_error, name, subdirs};
use super::{LabelSource, SourceCase, SourceTask};
use crate::error::{DataError, Result};

/// HaN-Seg's thirty organs at risk, in label order (its files' spelling).
pub(super) const HANSEG_STRUCTURES: [&str; 30] = [
    "A_Carotid_L",
    "A_Carotid_R",
    "Arytenoid",
    "Bone_Mandible",
    "Brainstem",
    "BuccalMucosa",
    "Cavity_Oral",
    "Cochlea_L",
    "Cochlea_R",
    "Cricopharyngeus",
    "Esophagus_S",
    "Eye_AL",
    "Eye_AR",
    "Eye_PL",
    "Eye_PR",
    "Glnd_Lacrimal_L",
    "Glnd_Lacrimal_R",
    "Glnd_Submand_L",
    "Glnd_Submand_R",
    "Glnd_Thyroid",
    "Glottis",
    "Larynx_SG",
    "Lips",
    "OpticChiasm",
    "OpticNrv_L",
    "OpticNrv_R",
    "Parotid_L",
    "Parotid_R",
    "Pituitary",
    "SpinalCord",
];

/// NRRD endings of HaN-Seg's files, segmentation first.
const NRRD_ENDINGS: [&str; 2] = [".seg.nrrd", ".nrrd"];

/// `names` as label names with the background first.
fn with_background(names: &[impl AsRef<str>]) -> Vec<String> {
    std::iter::once("background".to_string())
        .chain(names.iter().map(|n| n.as_ref().to_string()))
        .collect()
}

/// HaN-Seg: `case_NN/case_NN_IMG_CT.nrrd` and `case_NN_OAR_<structure>.seg.nrrd` per
/// structure present (a structure absent from a case is background there).
pub(super) fn hanseg(source: &Path) -> Result<SourceTask> {
    let info = known("hanseg");
    let mut case_dirs = Vec::new();
    for dir in subdirs(source)? {
        if name(&dir).starts_with("case_") {
            case_dirs.push(dir);
        } else {
            case_dirs.extend(
                subdirs(&dir)?
                    .into_iter()
                    .filter(|d| name(d).starts_with("case_")),
            );
        }
    }
    if case_dirs.is_empty() {
        return Err(layout_error(source, info, "no case_NN folders"));
    }
    let training = case_dirs
        .iter()
        .map(|dir| hanseg_case(dir, info))
        .collect::<Result<_>>()?;
    Ok(SourceTask {
        name: "HaN-Seg".into(),
        description: info.title.into(),
        channels: vec!["CT".into()],
        labels: with_background(&HANSEG_STRUCTURES),
        training,
        test: Vec::new(),
    })
}

fn hanseg_case(dir: &Path, info: &KindInfo) -> Result<SourceCase> {
    let id = name(dir);
    let image = dir.join(format!("{id}_IMG_CT.nrrd"));
    if !image.is_file() {
        return Err(layout_error(&image, info, "no such CT image"));
    }
    let prefix = format!("{id}_OAR_");
    let mut masks: Vec<(PathBuf, u8)> = Vec::new();
    for entry in super::files::entries(dir)? {
        let file = name(&entry);
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let structure = NRRD_ENDINGS
            .iter()
            .find_map(|e| rest.strip_suffix(e))
            .unwrap_or(rest);
        let class = HANSEG_STRUCTURES
            .iter()
            .position(|s| *s == structure)
            .ok_or_else(|| {
                DataError::file(
                    &entry,
                    format!(
                        "{structure:?} is not one of HaN-Seg's 30 structures ({})",
                        HANSEG_STRUCTURES.join(", ")
                    ),
                )
            })?;
        masks.push((entry, class as u8 + 1));
    }
    masks.sort_by_key(|m| m.1);
    if let Some(twice) = masks.windows(2).find(|w| w[0].1 == w[1].1) {
        return Err(DataError::file(
            &twice[1].0,
            format!("a second mask of the structure of {}", twice[0].0.display()),
        ));
    }
    Ok(SourceCase {
        id,
        images: vec![image],
        label: Some(LabelSource::Masks(masks)),
    })
}

/// TotalSegmentator: `sNNNN/ct.nii.gz` and `sNNNN/segmentations/<structure>.nii.gz`; the
/// chosen `structures` (default BTCV's organs) become classes 1, 2, ... in that order.
pub(super) fn totalsegmentator(source: &Path, structures: Option<&[String]>) -> Result<SourceTask> {
    let info = known("totalsegmentator");
    let structures: Vec<String> = match structures {
        Some(chosen) => chosen.to_vec(),
        None => TOTALSEG_DEFAULT.iter().map(|s| s.to_string()).collect(),
    };
    if structures.is_empty() || structures.len() > 255 {
        return Err(DataError::Config(format!(
            "--structures names {} structures; choose 1 to 255",
            structures.len()
        )));
    }
    let case_dirs: Vec<PathBuf> = subdirs(source)?
        .into_iter()
        .filter(|d| d.join("segmentations").is_dir())
        .collect();
    if case_dirs.is_empty() {
        return Err(layout_error(source, info, "no sNNNN/segmentations folders"));
    }
    let training = case_dirs
        .iter()
        .map(|dir| {
            let id = name(dir);
            let image = find_nifti(dir, "ct").ok_or_else(|| {
                DataError::case(&id, format!("no {}", dir.join("ct.nii.gz").display()))
            })?;
            let segmentations = dir.join("segmentations");
            let masks = structures
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mask = find_nifti(&segmentations, s).ok_or_else(|| {
                        DataError::case(
                            &id,
                            format!(
                                "no mask of the structure {s:?} ({} is missing)",
                                segmentations.join(format!("{s}.nii.gz")).display()
                            ),
                        )
                    })?;
                    Ok((mask, i as u8 + 1))
                })
                .collect::<Result<_>>()?;
            Ok(SourceCase {
                id,
                images: vec![image],
                label: Some(LabelSource::Masks(masks)),
            })
        })
        .collect::<Result<_>>()?;
    Ok(SourceTask {
        name: "TotalSegmentator".into(),
        description: format!("{}: {}", info.title, structures.join(", ")),
        channels: vec!["CT".into()],
        labels: with_background(&structures),
        training,
        test: Vec::new(),
    })
}

/// TotalSegmentator's names of BTCV's thirteen organs, in BTCV's label order.
const TOTALSEG_DEFAULT: [&str; 13] = [
    "spleen",
    "kidney_right",
    "kidney_left",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior_vena_cava",
    "portal_vein_and_splenic_vein",
    "pancreas",
    "adrenal_gland_right",
    "adrenal_gland_left",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::catalogue::{BTCV_LABELS, info};

    #[test]
    fn the_catalogue_lists_hansegs_structures() {
        let listed = info("hanseg").unwrap().labels;
        assert!(listed.ends_with(&HANSEG_STRUCTURES.join(", ")), "{listed}");
    }

    #[test]
    fn the_default_structures_are_btcvs_organs_in_its_order() {
        assert_eq!(TOTALSEG_DEFAULT.len() + 1, BTCV_LABELS.len());
        let btcv_words: Vec<String> = BTCV_LABELS[1..]
            .iter()
            .map(|l| l.replace(' ', "_"))
            .collect();
        for (ours, btcv) in TOTALSEG_DEFAULT.iter().zip(&btcv_words) {
            let mut a: Vec<&str> = ours.split('_').collect();
            let mut b: Vec<&str> = btcv.split('_').collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{ours} against BTCV's {btcv}");
        }
    }
}
