//! The configuration of a pretraining run: the settings every method shares (encoder,
//! data, optimisation, schedules) and the method's own `[pretext]` table, each with its
//! default written in code, in two presets, loadable from TOML with `key=value`
//! overrides. `medssl config show --method NAME --preset P` prints it.

use medssl_data::Pipeline;
use medssl_data::loader::LoaderConfig;
use medssl_model::SwinUnetrConfig;
use medssl_ssl::{Method, Preset};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::run_dir::RunDir;
use crate::settings::layered;
use crate::transforms::table;

/// The encoder being pretrained and the crops it sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSettings {
    /// Feature size (a multiple of 12); must equal the fine-tuning network's to transfer.
    pub feature_size: usize,
    /// MONAI's `use_v2` encoder (a residual conv block before each stage).
    pub use_v2: bool,
    /// Image channels of the collection.
    pub in_channels: usize,
    /// Crop size of a view `[D, H, W]` (multi-crop: the global views), multiples of 32.
    pub crop: [usize; 3],
}

/// How the collection's volumes are prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainData {
    /// Deterministic steps, cached per volume: orientation to RAS and the CT window
    /// -1000..1000 HU to 0..1, clipped (the SwinUNETR pretraining recipe). Collections
    /// of MRI should use a percentile scaling instead.
    pub preprocess: Vec<toml::Table>,
    /// Random steps applied to each view after it is cut (one sample in, one out):
    /// flips along each axis and intensity scale/shift.
    pub augment: Vec<toml::Table>,
    /// The same for multi-crop's local views (empty: `augment`).
    pub local_augment: Vec<toml::Table>,
    /// Volumes per batch and worker threads.
    pub loader: LoaderConfig,
}

/// Optimisation and the schedules the loop runs for every method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainTrain {
    /// Passes over the collection.
    pub epochs: u64,
    /// Stop after this many optimiser steps instead (the schedules then span them).
    pub steps: Option<u64>,
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    /// Epochs of linear warm-up from 0.
    pub warmup_epochs: u64,
    /// AdamW weight decay at the start, cosine-scheduled to `weight_decay_end`; applied
    /// to weights of two or more dimensions only (not biases, norms, tokens or the
    /// relative position bias tables), as DINO and SimMIM do.
    pub weight_decay: f64,
    /// Weight decay at the end.
    pub weight_decay_end: f64,
    /// Adam β1, β2 and ε.
    pub betas: [f64; 2],
    pub epsilon: f64,
    /// Clip the global gradient norm to this (none: no clipping).
    pub grad_clip_norm: Option<f64>,
    /// Batches whose gradients are summed into one step.
    pub accumulate: usize,
    /// Epochs during which the method's last head layer is not updated (DINO).
    pub freeze_last_layer: u64,
    /// EMA teacher momentum at the start, cosine-scheduled to `teacher_momentum_end`.
    pub teacher_momentum: f64,
    /// Teacher momentum at the end.
    pub teacher_momentum_end: f64,
    /// Write a checkpoint every this many steps (and at the end of every epoch).
    pub checkpoint_every: u64,
}

/// A whole pretraining configuration (`config.toml` of a run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// The method (`medssl methods` lists them).
    pub method: String,
    /// The preset the defaults came from.
    pub preset: Preset,
    /// Seed of every random choice (initialisation, order, crops, masks, augmentation).
    pub seed: u64,
    pub encoder: EncoderSettings,
    pub data: PretrainData,
    pub train: PretrainTrain,
    /// The method's own settings.
    pub pretext: toml::Table,
}

/// Dotted keys whose default is "none".
const OPTIONAL: [&str; 2] = ["train.steps", "train.grad_clip_norm"];

impl PretrainConfig {
    /// The defaults of method `M` in `preset`.
    pub fn preset<M: Method>(preset: Preset) -> Result<PretrainConfig> {
        let tiny = preset == Preset::Tiny;
        let recipe = M::recipe(preset);
        let pretext = toml::Table::try_from(M::settings(preset)).map_err(|e| {
            TrainError::Invalid(format!("cannot write the {} settings: {e}", M::INFO.name))
        })?;
        Ok(PretrainConfig {
            method: M::INFO.name.to_string(),
            preset,
            seed: 0,
            encoder: EncoderSettings {
                feature_size: if tiny { 12 } else { 48 },
                use_v2: false,
                in_channels: 1,
                crop: recipe.crop.unwrap_or(if tiny { [32; 3] } else { [96; 3] }),
            },
            data: PretrainData {
                preprocess: vec![
                    table("orientation", &[]),
                    table(
                        "scale_intensity_range",
                        &[
                            ("a_min", (-1000.0).into()),
                            ("a_max", 1000.0.into()),
                            ("b_min", 0.0.into()),
                            ("b_max", 1.0.into()),
                            ("clip", true.into()),
                        ],
                    ),
                ],
                augment: default_augment(),
                local_augment: Vec::new(),
                loader: LoaderConfig {
                    batch_size: 2,
                    shuffle: true,
                    drop_last: true,
                    num_workers: if tiny { 1 } else { 4 },
                    prefetch_batches: 2,
                },
            },
            train: PretrainTrain {
                epochs: if tiny { 20 } else { 100 },
                steps: None,
                lr: recipe.lr,
                min_lr: 1e-6,
                warmup_epochs: if tiny { 1 } else { 10 },
                weight_decay: recipe.weight_decay.0,
                weight_decay_end: recipe.weight_decay.1,
                betas: [0.9, 0.999],
                epsilon: 1e-8,
                grad_clip_norm: recipe.grad_clip_norm,
                accumulate: 1,
                freeze_last_layer: recipe.freeze_last_layer,
                teacher_momentum: recipe.teacher_momentum,
                teacher_momentum_end: 1.0,
                checkpoint_every: if tiny { 50 } else { 500 },
            },
            pretext,
        })
    }

    /// The defaults of `M` in `preset`, then a TOML file, then `key=value` overrides;
    /// unknown keys are errors naming the key. The result is checked.
    pub fn load<M: Method>(
        preset: Preset,
        file: Option<&str>,
        overrides: &[String],
    ) -> Result<PretrainConfig> {
        let config: PretrainConfig = layered(
            &PretrainConfig::preset::<M>(preset)?,
            file,
            overrides,
            &OPTIONAL,
        )?;
        if config.method != M::INFO.name {
            return Err(TrainError::Invalid(format!(
                "the configuration is for method `{}`, not `{}`",
                config.method,
                M::INFO.name
            )));
        }
        config.check::<M>()?;
        Ok(config)
    }

    /// The settings a run was started with (its `config.toml`).
    pub fn read(run: &RunDir) -> Result<PretrainConfig> {
        let path = run.path("config.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::os(&path, e))?;
        toml::from_str(&text).map_err(|e| TrainError::file(&path, e.to_string()))
    }

    /// The configuration as TOML, every setting written out.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| TrainError::Invalid(format!("cannot write the configuration: {e}")))
    }

    /// The encoder these settings describe (the output head of a SwinUNETR of this
    /// encoder is irrelevant to pretraining: 2 classes).
    pub fn network(&self) -> SwinUnetrConfig {
        let mut network = SwinUnetrConfig::new(self.encoder.in_channels, 2)
            .with_feature_size(self.encoder.feature_size);
        network.use_v2 = self.encoder.use_v2;
        network
    }

    /// Optimiser steps of the run on a collection of `volumes` volumes.
    pub fn total_steps(&self, volumes: usize) -> u64 {
        let batches = self.data.loader.batches(volumes) as u64;
        self.train
            .steps
            .unwrap_or(self.train.epochs * (batches / self.train.accumulate as u64))
    }

    /// Voxels of the views of one volume, as method `M` cuts them (see
    /// `Crops::voxels`).
    pub fn view_voxels<M: Method>(&self) -> Result<usize> {
        let plan = M::view_plan(
            &self.pretext::<M>()?,
            &self.network(),
            self.encoder.crop,
            Pipeline::default(),
            Pipeline::default(),
        )
        .map_err(|e| TrainError::Invalid(format!("views: {e}")))?;
        Ok(plan.crops.voxels())
    }

    /// The method's settings, typed.
    pub fn pretext<M: Method>(&self) -> Result<M::Settings> {
        toml::Value::Table(self.pretext.clone())
            .try_into()
            .map_err(|e| TrainError::Invalid(format!("pretext settings of {}: {e}", self.method)))
    }

    /// Checks values that parse but cannot work, naming the key.
    pub fn check<M: Method>(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if let Some(axis) = self.encoder.crop.iter().find(|&&r| r == 0 || r % 32 != 0) {
            return bad(format!(
                "encoder.crop {:?}: every size must be a positive multiple of 32 (found {axis})",
                self.encoder.crop
            ));
        }
        if self.encoder.feature_size == 0 || self.encoder.feature_size % 12 != 0 {
            return bad(format!(
                "encoder.feature_size must be a positive multiple of 12, got {}",
                self.encoder.feature_size
            ));
        }
        let t = &self.train;
        if t.epochs == 0 || t.accumulate == 0 || t.checkpoint_every == 0 || t.steps == Some(0) {
            return bad(
                "train.epochs, train.steps, train.accumulate and train.checkpoint_every must \
                 be at least 1"
                    .into(),
            );
        }
        for (name, value) in [("train.lr", t.lr), ("train.min_lr", t.min_lr)] {
            if !(value >= 0.0 && value.is_finite()) {
                return bad(format!(
                    "{name} must be a finite non-negative number, got {value}"
                ));
            }
        }
        if t.lr == 0.0 {
            return bad("train.lr must be positive".into());
        }
        for (name, value) in [
            ("train.teacher_momentum", t.teacher_momentum),
            ("train.teacher_momentum_end", t.teacher_momentum_end),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return bad(format!("{name} must be in [0, 1], got {value}"));
            }
        }
        M::check(&self.pretext::<M>()?, &self.network(), self.encoder.crop)
            .map_err(|e| TrainError::Invalid(format!("pretext: {e}")))
    }
}

/// Flips along each axis (p 0.5) and intensity scale and shift by up to 10% (p 0.5).
fn default_augment() -> Vec<toml::Table> {
    let mut steps: Vec<toml::Table> = (0..3)
        .map(|axis| {
            table(
                "rand_flip",
                &[
                    ("prob", 0.5.into()),
                    ("spatial_axis", toml::Value::Array(vec![axis.into()])),
                ],
            )
        })
        .collect();
    steps.push(table(
        "rand_scale_intensity",
        &[("factors", 0.1.into()), ("prob", 0.5.into())],
    ));
    steps.push(table(
        "rand_shift_intensity",
        &[("offsets", 0.1.into()), ("prob", 0.5.into())],
    ));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_ssl::methods::SimMimMethod;

    #[test]
    fn presets_round_trip_through_toml() {
        for preset in [Preset::Tiny, Preset::Paper] {
            let config = PretrainConfig::preset::<SimMimMethod>(preset).unwrap();
            config.check::<SimMimMethod>().unwrap();
            let back: PretrainConfig = toml::from_str(&config.to_toml().unwrap()).unwrap();
            assert_eq!(back, config);
        }
    }

    #[test]
    fn overrides_reach_the_method_table_and_bad_keys_are_named() {
        let config = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &["pretext.mask_ratio=0.75".into(), "train.steps=7".into()],
        )
        .unwrap();
        assert_eq!(config.pretext::<SimMimMethod>().unwrap().mask_ratio, 0.75);
        assert_eq!(config.train.steps, Some(7));
        let err = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &["pretext.mask_ratoi=0.75".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("pretext.mask_ratoi"), "{err}");
        let err = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &["pretext.block_size=12".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("block_size"), "{err}");
    }
}
