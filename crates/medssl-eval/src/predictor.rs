//! A trained network applied to images: preprocess a volume as in training, segment it
//! window by window and bring the result back onto the input's own voxel grid
//! (orientation, spacing, extent), as nnU-Net's export does; list the images of an input
//! folder and check each one's voxel spacing against the spacing the network was
//! trained at.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use medssl_data::dataset::MAX_CLASSES;
use medssl_data::rng::stream;
use medssl_data::spatial::resample::{Interpolation, Padding, resample};
use medssl_data::{DataError, Pipeline, Sample};
use medssl_io::geometry::{Affine, axis_orientations, spacing};
use medssl_io::nifti::OutputType;
use medssl_io::{ReadOptions, Volume};
use medssl_model::SwinUnetr;
use ndarray::{Array3, Array4, Axis};

use crate::error::{EvalError, Result};
use crate::sliding_window::SlidingWindow;

/// A network with the preprocessing and sliding-window settings it was trained with,
/// on the device it runs on: everything needed to segment an image.
pub struct Predictor {
    network: SwinUnetr,
    preprocess: Pipeline,
    window: SlidingWindow,
    device: Device,
}

impl Predictor {
    /// `network` (no autodiff), fed images through `preprocess` (the deterministic
    /// preprocessing of its training) and inferred window by window with `window`.
    pub fn new(
        network: SwinUnetr,
        preprocess: Pipeline,
        window: SlidingWindow,
        device: Device,
    ) -> Predictor {
        Predictor {
            network,
            preprocess,
            window,
            device,
        }
    }

    /// The network.
    pub fn network(&self) -> &SwinUnetr {
        &self.network
    }

    /// The network, without the rest (to compare it with others).
    pub fn into_network(self) -> SwinUnetr {
        self.network
    }

    /// The sliding-window settings; their `roi` is the training patch size.
    pub fn window(&self) -> &SlidingWindow {
        &self.window
    }

    /// `image` through the preprocessing (the grid and intensities the network was
    /// trained on).
    pub fn prepare(&self, id: &str, image: &Volume) -> Result<Volume> {
        // The preprocessing is deterministic: its random stream is never drawn from.
        let mut unused = stream(0, &[]);
        let mut prepared = self
            .preprocess
            .run(Sample::unlabelled(id, image.clone()), &mut unused)
            .map_err(|e| EvalError::case(id, e))?;
        if prepared.len() != 1 {
            return Err(EvalError::case(
                id,
                "preprocessing must give one volume per case",
            ));
        }
        Ok(prepared.remove(0).image)
    }

    /// Class probabilities `[K, I, J, K]` for `image` on the image's own grid: the
    /// preprocessing, sliding-window inference, softmax, then trilinear resampling back
    /// through the affines.
    pub fn probabilities(&self, id: &str, image: &Volume) -> Result<Volume> {
        let prepared = self.prepare(id, image)?;
        let logits = self
            .window
            .run(prepared.data().view().insert_axis(Axis(0)), |batch| {
                self.network.predict_array(batch, &self.device)
            })
            .map_err(|e| EvalError::case(id, e))?
            .index_axis_move(Axis(0), 0);
        let on_prepared = Volume::new(softmax_classes(logits), *prepared.affine());
        let index_map = prepared
            .affine()
            .try_inverse()
            .ok_or_else(|| EvalError::case(id, "degenerate affine after preprocessing"))?
            * image.affine();
        let back = resample(
            &on_prepared,
            &index_map,
            image.spatial_shape(),
            Interpolation::Bilinear,
            Padding::Border,
        );
        Ok(Volume::new(back, *image.affine()))
    }

    /// Segments the image at `input` (NIfTI file or DICOM series directory) and writes
    /// the label map to `output` (uint8 NIfTI on the input's grid and affine) and, when
    /// asked, the class probabilities (float32, one channel per class); returns the
    /// input's voxel spacing along x, y, z (mm) for [`spacing_warning`].
    pub fn predict_file(
        &self,
        input: &Path,
        output: &Path,
        probabilities_out: Option<&Path>,
    ) -> Result<[f64; 3]> {
        let image = medssl_io::read_volume(input, &ReadOptions::default())?;
        let id = input.display().to_string();
        let probabilities = self.probabilities(&id, &image)?;
        let labels = argmax_classes(probabilities.data())?
            .mapv(f32::from)
            .insert_axis(Axis(0));
        medssl_io::nifti::write_volume(
            output,
            &Volume::new(labels, *image.affine()),
            OutputType::UInt8,
        )?;
        if let Some(path) = probabilities_out {
            medssl_io::nifti::write_volume(path, &probabilities, OutputType::Float32)?;
        }
        world_spacing(image.affine()).ok_or_else(|| {
            EvalError::file(input, "degenerate affine: no voxel spacing along x, y, z")
        })
    }
}

/// Softmax over the class axis of `[K, D, H, W]` logits.
pub fn softmax_classes(mut logits: Array4<f32>) -> Array4<f32> {
    for mut lane in logits.lanes_mut(Axis(0)) {
        let max = lane.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        lane.mapv_inplace(|v| (v - max).exp());
        let sum = lane.sum();
        lane.mapv_inplace(|v| v / sum);
    }
    logits
}

/// The most probable class at each voxel of `[K, I, J, K]` probabilities (first on
/// ties), as a uint8 label map: an error naming the count for more than
/// [`MAX_CLASSES`] classes, which uint8 cannot hold.
pub fn argmax_classes(probabilities: &Array4<f32>) -> Result<Array3<u8>> {
    let shape = probabilities.shape();
    if shape[0] > MAX_CLASSES {
        return Err(EvalError::TooManyClasses { classes: shape[0] });
    }
    let mut labels = Array3::<u8>::zeros((shape[1], shape[2], shape[3]));
    let mut best = probabilities.index_axis(Axis(0), 0).to_owned();
    for k in 1..shape[0] {
        ndarray::Zip::from(&mut best)
            .and(&mut labels)
            .and(probabilities.index_axis(Axis(0), k))
            .for_each(|b, l, &v| {
                if v > *b {
                    *b = v;
                    *l = k as u8;
                }
            });
    }
    Ok(labels)
}

/// One image of a `predict` input folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictInput {
    /// The case name, which names the output `CASE.nii.gz`.
    pub case: String,
    /// A NIfTI file or a DICOM series directory.
    pub path: PathBuf,
}

/// The images of a `predict` input folder, sorted by case name: every NIfTI file
/// (`CASE.nii`, `CASE.nii.gz`, with nnU-Net's channel suffix `_0000` left out of the
/// case name) and every sub-folder (a DICOM series; the case is the folder's name).
/// Hidden entries and other files are left out. Two entries with the same case name are
/// an error naming both, since their outputs would overwrite each other.
pub fn predict_inputs(dir: &Path) -> Result<Vec<PredictInput>> {
    let os = |source| EvalError::Data(DataError::os(dir, source));
    let entries = std::fs::read_dir(dir).map_err(os)?;
    let mut inputs: Vec<PredictInput> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(os)?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let case = if path.is_dir() {
            name.to_string()
        } else if let Some(stem) = name
            .strip_suffix(".nii.gz")
            .or_else(|| name.strip_suffix(".nii"))
        {
            stem.strip_suffix("_0000").unwrap_or(stem).to_string()
        } else {
            continue;
        };
        inputs.push(PredictInput { case, path });
    }
    inputs.sort_by(|a, b| a.case.cmp(&b.case).then_with(|| a.path.cmp(&b.path)));
    if let Some(pair) = inputs.windows(2).find(|w| w[0].case == w[1].case) {
        return Err(EvalError::file(
            dir,
            format!(
                "{} and {} would both be written as {}.nii.gz; rename one",
                pair[0].path.display(),
                pair[1].path.display(),
                pair[0].case
            ),
        ));
    }
    if inputs.is_empty() {
        return Err(EvalError::file(
            dir,
            "no NIfTI files (.nii, .nii.gz) or DICOM series folders to segment (for one DICOM \
             series, give an output file name ending in .nii.gz)",
        ));
    }
    Ok(inputs)
}

/// An input spacing further than this factor from the training spacing on some axis
/// draws a warning (25%: beyond the usual scanner-to-scanner spread of one protocol).
pub const SPACING_TOLERANCE: f64 = 1.25;

/// Voxel spacing in mm along the world axes x, y, z (each array axis assigned to the
/// world axis it points most along), so images stored in different orientations
/// compare; `None` for a degenerate affine.
pub fn world_spacing(affine: &Affine) -> Option<[f64; 3]> {
    let axes = axis_orientations(affine)?;
    let per_axis = spacing(affine);
    let mut world = [0.0; 3];
    for (axis, orientation) in axes.iter().enumerate() {
        world[orientation.world_axis] = per_axis[axis];
    }
    Some(world)
}

/// The spacing a network was trained at and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSpacing {
    /// x, y, z in mm.
    pub mm: [f64; 3],
    /// Where the spacing comes from (a setting, or the training cases), for the warning.
    pub source: String,
}

/// The per-axis median of `spacings` (x, y, z in mm), the spacing a network trained on
/// images of these spacings without resampling has seen most; `None` for no spacings.
pub fn median_spacing(spacings: &[[f64; 3]]) -> Option<[f64; 3]> {
    if spacings.is_empty() {
        return None;
    }
    Some(std::array::from_fn(|axis| {
        median(spacings.iter().map(|s| s[axis]).collect())
    }))
}

/// The median (mean of the middle two for an even count) of a non-empty list.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The warning for an input whose spacing differs from the training spacing by more
/// than [`SPACING_TOLERANCE`] on some axis (the network sees structures at another
/// scale, or resampled from far coarser voxels); `None` when it is close enough.
pub fn spacing_warning(input: [f64; 3], training: &TrainingSpacing) -> Option<String> {
    let far: Vec<String> = ["x", "y", "z"]
        .iter()
        .zip(input.iter().zip(training.mm))
        .filter(|(_, (i, t))| (*i / t).max(t / *i) > SPACING_TOLERANCE)
        .map(|(axis, (i, t))| format!("{axis} {:.2}×", i / t))
        .collect();
    let mm = |s: [f64; 3]| format!("{:.2} × {:.2} × {:.2} mm", s[0], s[1], s[2]);
    (!far.is_empty()).then(|| {
        format!(
            "spacing {} is more than {:.0}% from the training spacing {} ({}; {}); the \
             segmentation may be poor",
            mm(input),
            (SPACING_TOLERANCE - 1.0) * 100.0,
            mm(training.mm),
            training.source,
            far.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 256 classes fit a uint8 label map: the last is class 255, not wrapped.
    #[test]
    fn argmax_names_each_of_256_classes() {
        let mut p = Array4::<f32>::zeros((256, 1, 1, 2));
        p[[255, 0, 0, 0]] = 1.0;
        p[[7, 0, 0, 1]] = 1.0;
        p[[9, 0, 0, 1]] = 1.0;
        let labels = argmax_classes(&p).unwrap();
        assert_eq!(labels.into_raw_vec_and_offset().0, vec![255, 7]);
    }

    #[test]
    fn spacing_far_from_training_is_named_per_axis() {
        let training = TrainingSpacing {
            mm: [1.5, 1.5, 2.0],
            source: "data.spacing of the run".into(),
        };
        // 24% coarser in x is within the tolerance; z at 5 mm is 2.5 times 2 mm.
        assert_eq!(spacing_warning([1.86, 1.5, 2.0], &training), None);
        assert_eq!(
            spacing_warning([1.5, 1.0, 5.0], &training).unwrap(),
            "spacing 1.50 × 1.00 × 5.00 mm is more than 25% from the training spacing \
             1.50 × 1.50 × 2.00 mm (data.spacing of the run; y 0.67×, z 2.50×); the \
             segmentation may be poor"
        );
    }

    #[test]
    fn world_spacing_follows_the_axes_not_the_array_order() {
        // Array axis 0 runs along z (3 mm), 1 along x (0.5 mm), 2 along -y (0.8 mm).
        let affine = Affine::new(
            0.0, 0.5, 0.0, 0.0, //
            0.0, 0.0, -0.8, 0.0, //
            3.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 1.0,
        );
        assert_eq!(world_spacing(&affine), Some([0.5, 0.8, 3.0]));
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn median_spacing_is_taken_per_axis() {
        let spacings = [[1.0, 0.5, 3.0], [0.8, 0.7, 2.0], [0.9, 0.6, 5.0]];
        assert_eq!(median_spacing(&spacings), Some([0.9, 0.6, 3.0]));
        assert_eq!(median_spacing(&[]), None);
    }

    #[test]
    fn input_folders_list_nifti_files_and_series_folders_by_case() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.nii.gz", "a_0000.nii", "notes.txt", ".hidden.nii.gz"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("c_series")).unwrap();
        let cases: Vec<String> = predict_inputs(dir.path())
            .unwrap()
            .into_iter()
            .map(|i| i.case)
            .collect();
        assert_eq!(cases, ["a", "b", "c_series"]);
        std::fs::write(dir.path().join("b.nii"), b"").unwrap();
        let err = predict_inputs(dir.path()).unwrap_err().to_string();
        assert!(err.contains("would both be written as b.nii.gz"), "{err}");
    }

    #[test]
    fn more_classes_than_uint8_holds_are_an_error_naming_the_count() {
        let p = Array4::<f32>::zeros((257, 1, 1, 1));
        let err = argmax_classes(&p).unwrap_err().to_string();
        assert_eq!(
            err,
            "the network predicts 257 classes, more than the 256 (values 0-255) a uint8 \
             label map can hold"
        );
    }
}
