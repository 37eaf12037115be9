//! Using a trained run: load its network and preprocessing, segment a volume and bring
//! the result back onto the input's own voxel grid (orientation, spacing, extent), as
//! nnU-Net's export does.

use std::path::Path;

use burn::tensor::Device;
use medssl_data::dataset::MAX_CLASSES;
use medssl_data::rng::stream;
use medssl_data::spatial::resample::{Interpolation, Padding, resample};
use medssl_data::{Pipeline, Sample};
use medssl_io::Volume;
use medssl_io::nifti::OutputType;
use medssl_model::SwinUnetr;
use medssl_model::weights::load_monai_safetensors;
use ndarray::{Array3, Array4, Axis};

use super::config::FinetuneConfig;
use super::trainer::RunInfo;
use super::validate::sliding_window;
use crate::error::{Result, TrainError};
use crate::run_dir::RunDir;

/// A trained network with the configuration and preprocessing it was trained with.
pub struct TrainedRun {
    pub config: FinetuneConfig,
    pub network: SwinUnetr,
    preprocess: Pipeline,
    device: Device,
}

impl TrainedRun {
    /// Loads `RUN/best.safetensors` (the best validation) onto `device` (no autodiff).
    pub fn open(run_dir: &Path, device: Device) -> Result<TrainedRun> {
        let run = RunDir::open(run_dir)?;
        let config = FinetuneConfig::read(&run)?;
        let info: RunInfo = run.read_json("run.json")?;
        let network_config = config.network(info.channels, info.classes);
        let mut network = SwinUnetr::new(&network_config, &device)
            .map_err(|e| TrainError::file(run.path("config.toml"), e.to_string()))?;
        let weights = run.path("best.safetensors");
        if !weights.exists() {
            return Err(TrainError::file(
                &weights,
                "missing: the run has not validated yet (train until the first validation)",
            ));
        }
        let report = load_monai_safetensors(&mut network, &weights)
            .map_err(|e| TrainError::file(&weights, e.to_string()))?;
        if !report.is_exact() {
            return Err(TrainError::file(
                &weights,
                "weights do not fit the run's network",
            ));
        }
        let preprocess = Pipeline::from_config(&config.data.preprocess)
            .map_err(|e| TrainError::file(run.path("config.toml"), e.to_string()))?;
        Ok(TrainedRun {
            config,
            network,
            preprocess,
            device,
        })
    }

    /// `image` through the run's preprocessing (the grid and intensities the network
    /// was trained on).
    pub fn prepare(&self, id: &str, image: &Volume) -> Result<Volume> {
        // The preprocessing is deterministic: its random stream is never drawn from.
        let mut unused = stream(0, &[]);
        let mut prepared = self
            .preprocess
            .run(Sample::unlabelled(id, image.clone()), &mut unused)
            .map_err(|e| TrainError::Invalid(format!("case {id}: {e}")))?;
        if prepared.len() != 1 {
            return Err(TrainError::Invalid(format!(
                "case {id}: preprocessing must give one volume per case"
            )));
        }
        Ok(prepared.remove(0).image)
    }

    /// Class probabilities `[K, I, J, K]` for `image` on the image's own grid: the
    /// run's preprocessing, sliding-window inference, softmax, then trilinear
    /// resampling back through the affines.
    pub fn probabilities(&self, id: &str, image: &Volume) -> Result<Volume> {
        let fail = |e: String| TrainError::Invalid(format!("case {id}: {e}"));
        let prepared = self.prepare(id, image)?;
        let logits = sliding_window(&self.config)
            .run(prepared.data().view().insert_axis(Axis(0)), |batch| {
                self.network.predict_array(batch, &self.device)
            })
            .map_err(|e| fail(e.to_string()))?
            .index_axis_move(Axis(0), 0);
        let on_prepared = Volume::new(softmax_classes(logits), *prepared.affine());
        let index_map = prepared
            .affine()
            .try_inverse()
            .ok_or_else(|| fail("degenerate affine after preprocessing".into()))?
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
}

/// Softmax over the class axis of `[K, D, H, W]` logits.
fn softmax_classes(mut logits: Array4<f32>) -> Array4<f32> {
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
        return Err(TrainError::Invalid(format!(
            "the network predicts {} classes, more than the {MAX_CLASSES} (values 0-255) a \
             uint8 label map can hold",
            shape[0]
        )));
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

/// `medssl predict`: segments the image at `input` (NIfTI file or DICOM series) with
/// the run's best network and writes the label map to `output` (uint8 NIfTI on the
/// input's grid and affine) and, when asked, the class probabilities (float32, one
/// channel per class).
pub fn predict_file(
    run_dir: &Path,
    input: &Path,
    output: &Path,
    probabilities_out: Option<&Path>,
    device: Device,
) -> Result<()> {
    let trained = TrainedRun::open(run_dir, device)?;
    let image = medssl_io::read_volume(input, &medssl_io::ReadOptions::default())
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let id = input.display().to_string();
    let probabilities = trained.probabilities(&id, &image)?;
    let labels = argmax_classes(probabilities.data())?
        .mapv(f32::from)
        .insert_axis(Axis(0));
    let write = |path: &Path, volume: &Volume, ty| {
        medssl_io::nifti::write_volume(path, volume, ty)
            .map_err(|e| TrainError::Invalid(e.to_string()))
    };
    write(
        output,
        &Volume::new(labels, *image.affine()),
        OutputType::UInt8,
    )?;
    if let Some(path) = probabilities_out {
        write(path, &probabilities, OutputType::Float32)?;
    }
    Ok(())
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
