//! The configuration of a fine-tuning run: every setting with its default written in
//! code, two presets, TOML files and `key=value` overrides.
//!
//! `tiny` runs in CPU minutes (feature size 12, one 64³ crop per volume and step: 64 is
//! the smallest side on which the deepest SwinUNETR stage keeps more than one voxel, see
//! [`FinetuneConfig::warnings`]); `paper` is the study's GPU
//! setting (feature size 48, 96³ crops, 4 positive/negative samples per volume, AdamW
//! 1e-4 with weight decay 1e-5, linear warm-up then cosine), the recipe of the
//! SwinUNETR and SMIT fine-tuning papers.

use medssl_data::PipelineConfig;
use medssl_data::loader::LoaderConfig;
use medssl_eval::sliding_window::{Blend, SlidingWindow};
use medssl_model::SwinUnetrConfig;
pub use medssl_ssl::Preset;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::loss::DiceCeLoss;
use crate::optimizer::OptimizerConfig;
use crate::run_dir::RunDir;
use crate::settings::{SettingsFile, layered};
use crate::swin_shape::SwinShape;
use crate::transforms::check_preprocess;

/// The network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// SwinUNETR feature size (12, 24, 48).
    pub feature_size: usize,
    /// MONAI's `use_v2` (a residual conv block before each Swin stage).
    pub use_v2: bool,
    /// Training crop and sliding-window size `[D, H, W]`, multiples of 32.
    pub roi: [usize; 3],
    /// Swin blocks per stage (MONAI's default 2-2-2-2; SMIT's encoder 2-2-4-2).
    pub depths: [usize; 4],
    /// Attention heads per stage (MONAI's default 3-6-12-24; SMIT's 4-4-4-4).
    pub num_heads: [usize; 4],
    /// Attention window edge (MONAI's default 7; SMIT's 4).
    pub window_size: usize,
    /// Whether the attention's qkv projection has a bias (MONAI's default; SMIT's has
    /// none).
    pub qkv_bias: bool,
}

/// Data preparation: deterministic preprocessing (cached) then random augmentation,
/// each a list of transform steps (see `medssl_data::transform`), checked when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Deterministic steps applied once per case and cached; also applied before
    /// validation and prediction. Empty: chosen from the task's modality (CT: window
    /// -175..250 HU to 0..1; anything else: z-score over non-zero voxels), after
    /// orientation to RAS and resampling to `spacing`.
    pub preprocess: PipelineConfig,
    /// Target voxel spacing in mm for the default preprocessing (none: keep).
    pub spacing: Option<[f64; 3]>,
    /// Random steps applied to every training sample. Empty: positive/negative crops of
    /// `roi` (`samples_per_volume`, pos 1, neg 1), flips along each axis (p 0.1),
    /// 90-degree rotations (p 0.1), intensity scale and shift (p 0.1), as in the
    /// SwinUNETR BTCV recipe.
    pub augment: PipelineConfig,
    /// Crops drawn per volume by the default augmentation.
    pub samples_per_volume: usize,
    /// Batching and worker threads. Preprocessed cases are cached under
    /// `RUN/../.medssl-cache/TASK` (shared by the runs of one study), so epochs only
    /// crop and augment.
    pub loader: LoaderConfig,
}

/// The split of the labelled cases and the label budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSettings {
    /// Fraction of the cases held out for validation.
    pub validation: f64,
    /// Fraction held out for testing (when the task has no labelled test cases).
    pub test: f64,
}

/// Optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Epochs (passes over the training cases).
    pub epochs: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the start of warm-up.
    pub warmup_start_lr: f64,
    /// Floor of the cosine schedule.
    pub min_lr: f64,
    /// Epochs of linear warm-up.
    pub warmup_epochs: u64,
    /// How the encoder takes part: `"full"`, `"warmup_decoder"` or
    /// `"frozen_encoder"` (see [`Strategy`]).
    pub strategy: Strategy,
    /// `warmup_decoder`: epochs the decoder trains alone before the encoder joins.
    pub decoder_epochs: u64,
    /// Batches whose gradients are summed before one optimiser step.
    pub accumulate: usize,
    /// Write a resumable checkpoint (weights and optimiser state) every this many
    /// epochs; one is also written after every validation, after the last epoch and
    /// when the run is interrupted (Ctrl-C), so an interruption loses at most this many
    /// epochs.
    pub checkpoint_every: u64,
    /// What of the checkpoints stays once the run has finished: a resumable checkpoint
    /// holds the optimiser's moments, twice the weights' size, which a finished run
    /// needs only to be extended.
    pub keep_checkpoints: KeepCheckpoints,
    /// AdamW (weight decay and its exemptions), clipping, frozen encoder, layer-wise
    /// decay.
    pub optimizer: OptimizerConfig,
    /// The Dice + cross-entropy loss.
    pub loss: DiceCeLoss,
    /// Where `--resume --set train.epochs=N` extended the run (written by medssl, not
    /// set by hand): the learning-rate schedule is re-stretched from each of these
    /// points, so the stored configuration alone reproduces the run's rates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
}

/// How a fine-tune trains the Swin encoder it starts from (`train.strategy`). A
/// pretrained encoder meets a new decoder: trained together from the first step, the
/// decoder's large early gradients pass through the encoder and can wipe out what
/// pretraining put there before the decoder is any use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The whole network trains from the first step (MONAI's SwinUNETR recipe).
    #[default]
    Full,
    /// The decoder trains alone for `train.decoder_epochs` epochs; then the encoder
    /// joins, its rate rising linearly from 0 over `train.warmup_epochs` epochs to the
    /// schedule's (nnssl's "sawtooth" fine-tuning warms the whole network up again in
    /// the same way once the decoder has been warmed up alone).
    WarmupDecoder,
    /// The encoder never trains: a measure of its features as they are.
    FrozenEncoder,
}

impl Strategy {
    /// The value as written in `config.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Full => "full",
            Strategy::WarmupDecoder => "warmup_decoder",
            Strategy::FrozenEncoder => "frozen_encoder",
        }
    }
}

fn default_checkpoint_every() -> u64 {
    1
}

/// What stays on disk of a run's checkpoints when it finishes (`train.keep_checkpoints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepCheckpoints {
    /// `best.safetensors` only.
    Best,
    /// `best.safetensors` and `last.safetensors` (the weights after the last epoch);
    /// the resumable checkpoint is removed.
    #[default]
    BestAndLast,
    /// Both weights files and the resumable checkpoint, so that the finished run can be
    /// extended with `--resume --set train.epochs=N`.
    All,
}

impl KeepCheckpoints {
    /// The value as written in `config.toml`.
    pub fn name(self) -> &'static str {
        match self {
            KeepCheckpoints::Best => "best",
            KeepCheckpoints::BestAndLast => "best_and_last",
            KeepCheckpoints::All => "all",
        }
    }
}

/// One extension of a run by `--resume --set train.epochs=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// `train.epochs` before the extension.
    pub from_epochs: u64,
    /// Optimiser steps the run had taken when it was extended.
    pub at_iteration: u64,
}

/// Validation during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSettings {
    /// Validate after every `every` epochs (and after the last).
    pub every: u64,
    /// Sliding-window overlap.
    pub overlap: f64,
    /// Windows per forward pass.
    pub sw_batch_size: usize,
}

/// Settings whose value may be absent (`None`), so an override may set them where the
/// defaults leave them out.
const OPTIONAL_SETTINGS: &[&str] = &["data.spacing", "train.optimizer.grad_clip_norm"];

/// A whole fine-tuning configuration (`config.toml` of a run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The preset the defaults came from.
    pub preset: Preset,
    /// Seed of every random choice (split, init, crops, augmentation).
    pub seed: u64,
    pub model: ModelSettings,
    pub data: DataSettings,
    pub split: SplitSettings,
    pub train: TrainSettings,
    pub validation: ValidationSettings,
}

impl FinetuneConfig {
    /// The network these settings describe for a task with `channels` input channels
    /// and `classes` classes (background included).
    pub fn network(&self, channels: usize, classes: usize) -> SwinUnetrConfig {
        let mut network =
            SwinUnetrConfig::new(channels, classes).with_feature_size(self.model.feature_size);
        network.use_v2 = self.model.use_v2;
        SwinShape {
            depths: self.model.depths,
            num_heads: self.model.num_heads,
            window_size: self.model.window_size,
            qkv_bias: self.model.qkv_bias,
        }
        .apply(network)
    }

    /// The sliding-window settings a run validates and predicts with: the training ROI,
    /// Gaussian blending with σ = 0.125·ROI (MONAI's default).
    pub fn sliding_window(&self) -> SlidingWindow {
        SlidingWindow {
            roi: self.model.roi,
            overlap: self.validation.overlap,
            batch: self.validation.sw_batch_size,
            blend: Blend::Gaussian { sigma_scale: 0.125 },
            cval: 0.0,
        }
    }

    /// The settings a run was started with (its `config.toml`).
    pub fn read(run: &RunDir) -> Result<FinetuneConfig> {
        let path = run.config();
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::os(&path, e))?;
        toml::from_str(&text).map_err(|e| TrainError::file(&path, e.to_string()))
    }

    /// The defaults of `preset`.
    pub fn preset(preset: Preset) -> FinetuneConfig {
        let tiny = preset == Preset::Tiny;
        let monai = SwinShape::monai();
        FinetuneConfig {
            preset,
            seed: 0,
            model: ModelSettings {
                feature_size: if tiny { 12 } else { 48 },
                use_v2: false,
                roi: if tiny { [64; 3] } else { [96; 3] },
                depths: monai.depths,
                num_heads: monai.num_heads,
                window_size: monai.window_size,
                qkv_bias: monai.qkv_bias,
            },
            data: DataSettings {
                preprocess: PipelineConfig::default(),
                spacing: if tiny { None } else { Some([1.5, 1.5, 2.0]) },
                augment: PipelineConfig::default(),
                samples_per_volume: if tiny { 1 } else { 4 },
                loader: LoaderConfig {
                    batch_size: 1,
                    shuffle: true,
                    drop_last: false,
                    num_workers: if tiny { 1 } else { 4 },
                    prefetch_batches: 2,
                },
            },
            split: SplitSettings {
                validation: 0.2,
                test: 0.2,
            },
            train: TrainSettings {
                epochs: if tiny { 60 } else { 500 },
                lr: if tiny { 1e-3 } else { 1e-4 },
                warmup_start_lr: 0.0,
                min_lr: if tiny { 1e-5 } else { 1e-6 },
                warmup_epochs: if tiny { 3 } else { 50 },
                strategy: Strategy::Full,
                decoder_epochs: 0,
                accumulate: 1,
                checkpoint_every: default_checkpoint_every(),
                keep_checkpoints: KeepCheckpoints::default(),
                optimizer: OptimizerConfig::default(),
                loss: DiceCeLoss::default(),
                extensions: Vec::new(),
            },
            validation: ValidationSettings {
                every: if tiny { 5 } else { 10 },
                overlap: if tiny { 0.25 } else { 0.5 },
                sw_batch_size: if tiny { 2 } else { 4 },
            },
        }
    }

    /// The configuration from the preset, then a TOML file's settings, then `--set
    /// key=value` overrides, in that order. Unknown keys are errors naming the key.
    pub fn load(
        preset: Preset,
        file: Option<SettingsFile<'_>>,
        overrides: &[String],
    ) -> Result<FinetuneConfig> {
        let config: FinetuneConfig = layered(
            &FinetuneConfig::preset(preset),
            file,
            overrides,
            OPTIONAL_SETTINGS,
        )?;
        config.validate()?;
        if !config.train.extensions.is_empty() {
            return Err(TrainError::Invalid(
                "train.extensions is written by `medssl finetune --resume RUN --set \
                 train.epochs=N` when a run is extended; a new run cannot have it"
                    .into(),
            ));
        }
        Ok(config)
    }

    /// The number of epochs that `--set` overrides given with `--resume` extend this
    /// (stored) configuration to; `None` when they leave `train.epochs` as it is. A
    /// resumed run keeps its settings, so that it ends as it would have uninterrupted:
    /// only `train.epochs` may be given, and only raised.
    pub fn resume_epochs(&self, overrides: &[String]) -> Result<Option<u64>> {
        for item in overrides {
            let key = item.split_once('=').map_or(item.as_str(), |(key, _)| key);
            if key.trim() != "train.epochs" {
                return Err(TrainError::Invalid(format!(
                    "--set {item}: a resumed run keeps the settings it was started with; \
                     only train.epochs may be raised, to train the run longer"
                )));
            }
        }
        let changed: FinetuneConfig = layered(self, None, overrides, OPTIONAL_SETTINGS)?;
        let (stored, asked) = (self.train.epochs, changed.train.epochs);
        if asked < stored {
            return Err(TrainError::Invalid(format!(
                "--set train.epochs={asked}: the run has {stored} epochs; it can be extended, \
                 not shortened"
            )));
        }
        Ok((asked > stored).then_some(asked))
    }

    /// The configuration as TOML, every setting written out.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| TrainError::Invalid(format!("cannot write the configuration: {e}")))
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if let Some(axis) = self.model.roi.iter().find(|&&r| r == 0 || r % 32 != 0) {
            return bad(format!(
                "model.roi {:?}: every size must be a positive multiple of 32 (found {axis})",
                self.model.roi
            ));
        }
        if let Err(e) = self.network(1, 2).validate() {
            return bad(format!("model: {e}"));
        }
        if self.train.epochs == 0
            || self.validation.every == 0
            || self.train.accumulate == 0
            || self.train.checkpoint_every == 0
        {
            return bad(
                "train.epochs, train.accumulate, train.checkpoint_every and validation.every \
                 must be at least 1"
                    .into(),
            );
        }
        let extensions = &self.train.extensions;
        let ordered = extensions.windows(2).all(|pair| {
            pair[0].from_epochs < pair[1].from_epochs
                && pair[0].at_iteration <= pair[1].at_iteration
        });
        if !ordered
            || extensions
                .last()
                .is_some_and(|e| e.from_epochs >= self.train.epochs)
        {
            return bad(format!(
                "train.extensions: each extension must start from fewer epochs than the next \
                 one (and than train.epochs = {}), at no earlier step",
                self.train.epochs
            ));
        }
        let warmup_decoder = self.train.strategy == Strategy::WarmupDecoder;
        if warmup_decoder != (self.train.decoder_epochs > 0)
            || self.train.decoder_epochs >= self.train.epochs
        {
            return bad(format!(
                "train.decoder_epochs = {} with train.strategy = \"{}\": the warmup_decoder \
                 strategy needs 1 <= train.decoder_epochs < train.epochs = {}, the others \
                 train.decoder_epochs = 0",
                self.train.decoder_epochs,
                self.train.strategy.name(),
                self.train.epochs
            ));
        }
        let scale = self.train.optimizer.encoder_lr_scale;
        if !(scale > 0.0 && scale.is_finite()) {
            return bad(format!(
                "train.optimizer.encoder_lr_scale must be positive (freeze the encoder with \
                 train.strategy = \"frozen_encoder\"), got {scale}"
            ));
        }
        if !(self.train.lr > 0.0 && self.train.lr.is_finite()) {
            return bad(format!("train.lr must be positive, got {}", self.train.lr));
        }
        if !(0.0..1.0).contains(&self.validation.overlap) {
            return bad(format!(
                "validation.overlap must be in [0, 1), got {}",
                self.validation.overlap
            ));
        }
        let held_out = self.split.validation + self.split.test;
        if !(self.split.validation > 0.0 && self.split.test >= 0.0 && held_out < 1.0) {
            return bad(format!(
                "split.validation must be > 0 and split.validation + split.test < 1, got {} and {}",
                self.split.validation, self.split.test
            ));
        }
        self.data.loader.check()?;
        check_preprocess(&self.data.preprocess)
    }

    /// Settings that train but not as a reader would assume, for the log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // The deepest stage is model.roi / 32: a single voxel when every side is below 64.
        if self.model.roi.iter().all(|&r| r < 64) {
            warnings.push(format!(
                "model.roi {:?}: every side below 64 leaves the deepest SwinUNETR stage a \
                 single voxel, where instance normalisation outputs a constant, so that stage \
                 passes no information (PyTorch/MONAI refuse to train at this size)",
                self.model.roi
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_through_toml() {
        for preset in [Preset::Tiny, Preset::Paper] {
            let config = FinetuneConfig::preset(preset);
            config.validate().unwrap();
            let text = config.to_toml().unwrap();
            let back: FinetuneConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, config);
        }
    }

    #[test]
    fn resume_overrides_may_only_raise_the_epochs() {
        let stored = FinetuneConfig::preset(Preset::Tiny);
        assert_eq!(stored.train.epochs, 60);
        let epochs = |set: &str| stored.resume_epochs(&[set.to_string()]);
        assert_eq!(stored.resume_epochs(&[]).unwrap(), None);
        assert_eq!(epochs("train.epochs=80").unwrap(), Some(80));
        assert_eq!(epochs(" train.epochs = 60").unwrap(), None);
        let err = epochs("train.lr=1").unwrap_err().to_string();
        assert!(
            err.contains("--set train.lr=1") && err.contains("only train.epochs may be raised"),
            "{err}"
        );
        let err = epochs("train.epochs=10").unwrap_err().to_string();
        assert!(
            err.contains("has 60 epochs") && err.contains("not shortened"),
            "{err}"
        );
        let err = epochs("train.epochs=many").unwrap_err().to_string();
        assert!(err.contains("train.epochs"), "{err}");
    }

    #[test]
    fn extensions_round_trip_and_are_checked() {
        let mut config = FinetuneConfig::preset(Preset::Tiny);
        config.train.epochs = 30;
        config.train.extensions = vec![
            Extension {
                from_epochs: 10,
                at_iteration: 40,
            },
            Extension {
                from_epochs: 20,
                at_iteration: 40,
            },
        ];
        config.validate().unwrap();
        let text = config.to_toml().unwrap();
        assert!(text.contains("[[train.extensions]]"), "{text}");
        let back: FinetuneConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        let written_by_hand = FinetuneConfig::load(
            Preset::Tiny,
            Some(SettingsFile {
                name: "config.toml",
                text: &text,
            }),
            &[],
        );
        assert!(
            written_by_hand.is_err(),
            "a new run cannot carry extensions"
        );

        config.train.extensions[1].at_iteration = 39;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("train.extensions"), "{err}");
        config.train.extensions[1].at_iteration = 40;
        config.train.epochs = 20;
        assert!(
            config.validate().is_err(),
            "the last extension ends before epochs"
        );
    }

    /// A ROI of 32 on every side leaves a one-voxel deepest stage: a warning naming it;
    /// one side of 64 leaves two voxels there, which instance normalisation can use.
    #[test]
    fn a_one_voxel_deepest_stage_is_a_warning() {
        let warnings_of = |roi: &str| {
            FinetuneConfig::load(Preset::Tiny, None, &[format!("model.roi={roi}")])
                .unwrap()
                .warnings()
        };
        let warnings = warnings_of("[32, 32, 32]");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("[32, 32, 32]") && warnings[0].contains("single voxel"));
        assert_eq!(warnings_of("[32, 64, 32]"), Vec::<String>::new());
    }

    /// `warmup_decoder` needs its decoder epochs, within the run; the other strategies
    /// must not set them; the encoder's scale must be positive.
    #[test]
    fn strategies_are_checked() {
        let load = |set: &[&str]| {
            let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
            FinetuneConfig::load(Preset::Tiny, None, &set)
        };
        let config = load(&[
            "train.strategy=\"warmup_decoder\"",
            "train.decoder_epochs=10",
        ])
        .unwrap();
        assert_eq!(
            (config.train.strategy, config.train.decoder_epochs),
            (Strategy::WarmupDecoder, 10)
        );
        for bad in [
            &["train.strategy=\"warmup_decoder\""][..],
            &[
                "train.strategy=\"warmup_decoder\"",
                "train.decoder_epochs=60",
            ],
            &["train.decoder_epochs=5"],
            &["train.optimizer.encoder_lr_scale=0"],
        ] {
            let error = load(bad).unwrap_err().to_string();
            assert!(error.contains("train."), "{bad:?}: {error}");
        }
        let error = load(&["train.strategy=\"sawtooth\""])
            .unwrap_err()
            .to_string();
        assert!(error.contains("train.strategy"), "{error}");
    }

    #[test]
    fn presets_do_not_warn_about_themselves() {
        for preset in [Preset::Tiny, Preset::Paper] {
            let config = FinetuneConfig::preset(preset);
            assert_eq!(config.warnings(), Vec::<String>::new(), "{preset:?}");
        }
    }

    #[test]
    fn file_and_overrides_apply_in_order() {
        let file = "seed = 3\n[train]\nlr = 0.01\nepochs = 7\n[data]\nspacing = [1.0, 1.0, 2.0]\n";
        let overrides = vec![
            "train.lr=0.002".to_string(),
            "model.roi=[64, 64, 32]".to_string(),
            "train.strategy=\"frozen_encoder\"".to_string(),
        ];
        let config = FinetuneConfig::load(
            Preset::Tiny,
            Some(SettingsFile {
                name: "config.toml",
                text: file,
            }),
            &overrides,
        )
        .unwrap();
        assert_eq!(config.seed, 3);
        assert_eq!(config.train.epochs, 7);
        assert_eq!(config.train.lr, 0.002);
        assert_eq!(config.model.roi, [64, 64, 32]);
        assert_eq!(config.data.spacing, Some([1.0, 1.0, 2.0]));
        assert_eq!(config.train.strategy, Strategy::FrozenEncoder);
        assert_eq!(config.model.feature_size, 12, "untouched defaults stay");
    }

    /// The transform lists are checked when the configuration loads, before a run
    /// writes anything: a misspelt step names the list, the step and the file it came
    /// from; a random step cannot be cached as preprocessing.
    #[test]
    fn transform_lists_are_checked_on_load() {
        let file = |text| {
            Some(SettingsFile {
                name: "exp/run.toml",
                text,
            })
        };
        let err = FinetuneConfig::load(
            Preset::Tiny,
            file("[[data.augment]]\nname = \"rand_flipp\"\nprob = 0.5\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "exp/run.toml: setting `data.augment`: unknown transform `rand_flipp`; \
                 valid transforms: orientation, spacing,"
            ),
            "{err}"
        );
        assert!(err.ends_with(", rand_gaussian_smooth"), "no example: {err}");
        let err = FinetuneConfig::load(
            Preset::Tiny,
            None,
            &["data.augment=[{name = \"rand_flip\", probability = 0.5}]".into()],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "setting `data.augment`: transform `rand_flip`: unknown field `probability`, \
             expected `prob` or `spatial_axis`"
        );
        let err = FinetuneConfig::load(
            Preset::Tiny,
            None,
            &["data.preprocess=[{name = \"orientation\"}, {prob = 0.5}]".into()],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "setting `data.preprocess`: transform 2 has no `name` (a string)"
        );
        let err = FinetuneConfig::load(
            Preset::Tiny,
            None,
            &["data.preprocess=[{name = \"rand_flip\", prob = 0.5}]".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("data.preprocess: step `rand_flip` is random"),
            "{err}"
        );
    }

    #[test]
    fn too_many_loader_workers_are_refused_on_load() {
        let err = FinetuneConfig::load(
            Preset::Tiny,
            None,
            &["data.loader.num_workers=100000".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("data.loader.num_workers = 100000")
                && err.contains(&LoaderConfig::max_workers().to_string()),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = FinetuneConfig::load(Preset::Tiny, None, &["train.lrr=1".into()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("train.lrr") && text.contains("lr, "),
            "{text}"
        );
        let err = FinetuneConfig::load(
            Preset::Tiny,
            Some(SettingsFile {
                name: "config.toml",
                text: "[modle]\nx = 1\n",
            }),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("`modle`"), "{err}");
        let err = FinetuneConfig::load(Preset::Tiny, None, &["model.roi=[48, 48, 48]".into()])
            .unwrap_err();
        assert!(err.to_string().contains("multiple of 32"), "{err}");
        let err = FinetuneConfig::load(Preset::Tiny, None, &["train.lr=fast".into()]).unwrap_err();
        assert!(err.to_string().contains("lr"), "{err}");
    }
}
