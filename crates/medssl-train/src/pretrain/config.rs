//! The configuration of a pretraining run: the settings every method shares (encoder,
//! data, optimisation, schedules) and the method's own `[pretext]` table, each with its
//! default written in code, in two presets, loadable from TOML with `key=value`
//! overrides. `medssl config show --method NAME --preset P` prints it.
//!
//! The defaults follow the method's published recipe where it has one: its clipping
//! mode ([`Method::clip_mode`]), whether its learning rate scales with the batch
//! ([`Method::lr_batch_scaling`]), its CT window ([`Method::intensity_window`]) and
//! voxel spacing ([`Method::spacing`]), and no flips or 90° turns for a method that
//! predicts rotations.

use std::path::PathBuf;

use medssl_data::loader::LoaderConfig;
use medssl_data::views::{Crops, ViewPlan};
use medssl_data::{Pipeline, PipelineConfig, TransformStep};
use medssl_model::SwinUnetrConfig;
use medssl_ssl::{ClipMode, Method, Preset};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::finetune::FinetuneConfig;
use crate::run_dir::RunDir;
use crate::settings::{SettingsFile, layered};
use crate::swin_shape::SwinShape;
use crate::transforms::{check_preprocess, floats, ints};

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
    /// Swin blocks per stage, heads per stage, window edge and qkv bias: MONAI's by
    /// default (2-2-2-2, 3-6-12-24, 7, on), as fine-tuning's `model.*` of the same
    /// names, which must match them to fine-tune the encoder.
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: usize,
    pub qkv_bias: bool,
}

/// How the collection's volumes are prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainData {
    /// Deterministic steps, cached per volume. The default is the pretraining
    /// preprocessing of Tang et al.'s SwinUNETR (MONAI transforms):
    /// 1. `orientation` to RAS;
    /// 2. paper preset only: `spacing` to the method's voxel spacing
    ///    ([`Method::spacing`]: 1.5 × 1.5 × 2 mm unless the method's paper says
    ///    otherwise; SMIT 2 mm). The tiny preset does not resample: its synthetic
    ///    volumes have ~5 mm voxels, which 1.5 mm would blow up tenfold;
    /// 3. `scale_intensity_range`: the method's CT window ([`Method::intensity_window`],
    ///    -1000..1000 HU unless its paper says otherwise; SMIT -175..250) to 0..1,
    ///    clipped;
    /// 4. `crop_foreground` (MONAI's `CropForegroundd` on the windowed image): the box
    ///    of the voxels above 0, i.e. above the window's lower bound (not air), margin
    ///    0. A volume with no such voxel (all air, or a blank scan) stops the run with
    ///    an error naming the case: take it out of the collection;
    /// 5. `spatial_pad` (symmetric, with 0) to the largest view the method cuts, so no
    ///    crop reaches outside the volume.
    ///
    /// The last step's size follows `encoder.crop` and the method's settings: while
    /// `data.preprocess` is left at its default, loading a configuration derives it
    /// from the final settings. Collections of MRI should replace step 3 by a
    /// percentile scaling (`scale_intensity_range_percentiles`).
    pub preprocess: PipelineConfig,
    /// Random steps applied to each view after it is cut (one sample in, one out).
    /// Default: flips along each axis (p 0.5 each) and intensity scale/shift by up to
    /// 10% (p 0.5 each); for a method that predicts the rotation of its views (RotNet,
    /// SwinUNETR-SSL) the flips are left out, as in Tang et al.'s pretraining: a flip
    /// or 90° turn of a view is itself a rotation or mirror image, which makes the
    /// rotation label ambiguous. Such a method refuses `rand_flip` and
    /// `rand_rotate90` here and in `local_augment`.
    pub augment: PipelineConfig,
    /// The same for multi-crop's local views (empty: `augment`).
    pub local_augment: PipelineConfig,
    /// Volumes per batch and worker threads.
    pub loader: LoaderConfig,
}

impl PretrainData {
    /// The augmentation of the views and that of multi-crop's local views
    /// (`local_augment`, or `augment` when it is empty), as the view plan takes them.
    pub fn view_augmentations(&self) -> (Pipeline, Pipeline) {
        let local = if self.local_augment.is_empty() {
            &self.augment
        } else {
            &self.local_augment
        };
        (self.augment.build(), local.build())
    }
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
    /// `lr` is per 256 volumes: the run's peak learning rate is
    /// `lr · data.loader.batch_size · accumulate / 256` (DINO's linear scaling rule;
    /// `min_lr` is not scaled, as in DINO). The default is the method's
    /// ([`Method::lr_batch_scaling`]); `false`: `lr` is the peak rate itself.
    pub lr_batch_scaling: bool,
    /// Epochs of linear warm-up from 0.
    pub warmup_epochs: u64,
    /// AdamW weight decay at the start, cosine-scheduled to `weight_decay_end`; applied
    /// to weights of two or more dimensions only (not biases, norms, tokens or the
    /// relative position bias tables), as DINO and SimMIM do (the optimiser's
    /// `DecayExempt::Vectors`).
    pub weight_decay: f64,
    /// Weight decay at the end.
    pub weight_decay_end: f64,
    /// Adam β1, β2 and ε.
    pub betas: [f64; 2],
    pub epsilon: f64,
    /// Clip gradients to this L2 norm (none: no clipping), as `clip_mode` says.
    pub grad_clip_norm: Option<f64>,
    /// How `grad_clip_norm` clips: `"global"`, the norm of all gradients together
    /// (PyTorch's `clip_grad_norm_`), or `"per_parameter"`, each parameter's gradient
    /// on its own (DINO's `utils.clip_gradients`). The default is the method's
    /// ([`Method::clip_mode`]).
    pub clip_mode: ClipMode,
    /// Batches whose gradients are summed into one step.
    pub accumulate: usize,
    /// Epochs during which the method's last head layer is not updated (DINO).
    pub freeze_last_layer: u64,
    /// EMA teacher momentum at the start, cosine-scheduled to `teacher_momentum_end`.
    pub teacher_momentum: f64,
    /// Teacher momentum at the end.
    pub teacher_momentum_end: f64,
    /// Write a checkpoint every this many optimiser steps (and at the end of every
    /// epoch; see `crate::fit` for when else).
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
    /// Frozen-feature probes of the encoder while it trains (`pretrain --probe`).
    pub probe: ProbeSchedule,
}

/// When and on what the encoder is probed during pretraining: the linear and k-NN
/// probes of `medssl probe` on a labelled task, so representation quality can be
/// watched long before a fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSchedule {
    /// The labelled task (MSD layout); no probes when absent. Its split, preprocessing
    /// and window are those of a fine-tune of the same preset and seed; the scores are
    /// on its validation cases.
    pub task: Option<PathBuf>,
    /// Probe after every this many optimiser steps, and after the last.
    pub every: u64,
}

/// Dotted keys whose default is "none".
const OPTIONAL: [&str; 3] = ["train.steps", "train.grad_clip_norm", "probe.task"];

impl PretrainConfig {
    /// The defaults of method `M` in `preset`.
    pub fn preset<M: Method>(preset: Preset) -> Result<PretrainConfig> {
        let tiny = preset == Preset::Tiny;
        let recipe = M::recipe(preset);
        let monai = SwinShape::monai();
        let pretext = toml::Table::try_from(M::settings(preset)).map_err(|e| {
            TrainError::Invalid(format!("cannot write the {} settings: {e}", M::INFO.name))
        })?;
        let mut config = PretrainConfig {
            method: M::INFO.name.to_string(),
            preset,
            seed: 0,
            encoder: EncoderSettings {
                feature_size: if tiny { 12 } else { 48 },
                use_v2: false,
                in_channels: 1,
                crop: recipe.crop.unwrap_or(if tiny { [32; 3] } else { [96; 3] }),
                depths: monai.depths,
                num_heads: monai.num_heads,
                window_size: monai.window_size,
                qkv_bias: monai.qkv_bias,
            },
            data: PretrainData {
                preprocess: PipelineConfig::default(),
                augment: PipelineConfig::default(),
                local_augment: PipelineConfig::default(),
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
                lr_batch_scaling: M::lr_batch_scaling(preset),
                warmup_epochs: if tiny { 1 } else { 10 },
                weight_decay: recipe.weight_decay.0,
                weight_decay_end: recipe.weight_decay.1,
                betas: [0.9, 0.999],
                epsilon: 1e-8,
                grad_clip_norm: recipe.grad_clip_norm,
                clip_mode: M::clip_mode(preset),
                accumulate: 1,
                freeze_last_layer: recipe.freeze_last_layer,
                teacher_momentum: recipe.teacher_momentum,
                teacher_momentum_end: 1.0,
                checkpoint_every: if tiny { 50 } else { 500 },
            },
            pretext,
            probe: ProbeSchedule {
                task: None,
                every: if tiny { 100 } else { 1000 },
            },
        };
        let plan = config.plan::<M>(Pipeline::default(), Pipeline::default())?;
        config.data.preprocess = default_preprocess::<M>(preset, &plan)?;
        config.data.augment = default_augment(plan.rotations.is_some())?;
        Ok(config)
    }

    /// The defaults of `M` in `preset`, then a TOML file, then `key=value` overrides;
    /// unknown keys are errors naming the key. The result is checked.
    pub fn load<M: Method>(
        preset: Preset,
        file: Option<SettingsFile<'_>>,
        overrides: &[String],
    ) -> Result<PretrainConfig> {
        let defaults = PretrainConfig::preset::<M>(preset)?;
        let mut config: PretrainConfig = layered(&defaults, file, overrides, &OPTIONAL)?;
        if config.method != M::INFO.name {
            return Err(TrainError::Invalid(format!(
                "the configuration is for method `{}`, not `{}`",
                config.method,
                M::INFO.name
            )));
        }
        // Steps left at their defaults follow the final settings (the padding follows
        // the crop). Settings that cannot cut views are reported by `check` below.
        let default_preprocess = config.data.preprocess == defaults.data.preprocess;
        let default_augment = config.data.augment == defaults.data.augment;
        if default_preprocess || default_augment {
            if let Ok(plan) = config.plan::<M>(Pipeline::default(), Pipeline::default()) {
                if default_preprocess {
                    config.data.preprocess = self::default_preprocess::<M>(config.preset, &plan)?;
                }
                if default_augment {
                    config.data.augment = self::default_augment(plan.rotations.is_some())?;
                }
            }
        }
        config.check::<M>()?;
        Ok(config)
    }

    /// The settings a run was started with (its `config.toml`).
    pub fn read(run: &RunDir) -> Result<PretrainConfig> {
        let path = run.config();
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
        SwinShape {
            depths: self.encoder.depths,
            num_heads: self.encoder.num_heads,
            window_size: self.encoder.window_size,
            qkv_bias: self.encoder.qkv_bias,
        }
        .apply(network)
    }

    /// The fine-tune settings the probes set their task up with: the preset's, at this
    /// run's seed, with the network of this encoder.
    pub fn probe_config(&self) -> FinetuneConfig {
        let mut config = FinetuneConfig::preset(self.preset);
        config.seed = self.seed;
        let model = &mut config.model;
        model.feature_size = self.encoder.feature_size;
        model.use_v2 = self.encoder.use_v2;
        model.depths = self.encoder.depths;
        model.num_heads = self.encoder.num_heads;
        model.window_size = self.encoder.window_size;
        model.qkv_bias = self.encoder.qkv_bias;
        config
    }

    /// The peak learning rate of the run: `train.lr`, times `batch_size · accumulate /
    /// 256` with `train.lr_batch_scaling`.
    pub fn peak_lr(&self) -> f64 {
        if self.train.lr_batch_scaling {
            let volumes = self.data.loader.batch_size * self.train.accumulate;
            self.train.lr * volumes as f64 / 256.0
        } else {
            self.train.lr
        }
    }

    /// Optimiser steps of the run on a collection of `volumes` volumes: `train.steps`,
    /// else `train.epochs` whole epochs of the loop's steps (`crate::fit::steps_per_epoch`,
    /// a partial accumulation at an epoch's end being a step).
    pub fn total_steps(&self, volumes: usize) -> u64 {
        let batches = self.data.loader.batches(volumes);
        self.train.steps.unwrap_or(
            self.train.epochs * crate::fit::steps_per_epoch(batches, self.train.accumulate),
        )
    }

    /// Voxels of the views of one volume, as method `M` cuts them (see
    /// `Crops::voxels`).
    pub fn view_voxels<M: Method>(&self) -> Result<usize> {
        let plan = self.plan::<M>(Pipeline::default(), Pipeline::default())?;
        Ok(plan.crops.voxels())
    }

    /// The views method `M` cuts with these settings, augmented by `augment` and
    /// `local_augment`.
    fn plan<M: Method>(&self, augment: Pipeline, local_augment: Pipeline) -> Result<ViewPlan> {
        M::view_plan(
            &self.pretext::<M>()?,
            &self.network(),
            self.encoder.crop,
            augment,
            local_augment,
        )
        .map_err(|e| TrainError::context("views", e))
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
        if self.probe.every == 0 {
            return bad("probe.every must be at least 1".into());
        }
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
        if let Err(e) = self.network().validate() {
            return bad(format!("encoder: {e}"));
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
        self.data.loader.check()?;
        check_preprocess(&self.data.preprocess)?;
        M::check(&self.pretext::<M>()?, &self.network(), self.encoder.crop)
            .map_err(|e| TrainError::context("pretext", e))?;
        self.check_steps::<M>()
    }

    /// Refuses augmentations that would make a rotation method's labels wrong
    /// (`ViewPlan::check`: no `rand_flip` or `rand_rotate90` with rotation labels). The
    /// steps themselves were checked when the configuration was read.
    fn check_steps<M: Method>(&self) -> Result<()> {
        let (augment, local_augment) = self.data.view_augmentations();
        // The global augmentation first, so the error names the list at fault.
        self.plan::<M>(augment.clone(), Pipeline::default())?
            .check()
            .map_err(|e| TrainError::context("data.augment", e))?;
        self.plan::<M>(augment, local_augment)?
            .check()
            .map_err(|e| TrainError::context("data.local_augment", e))
    }
}

/// The largest view `crops` cut, per axis: what the volume is padded to so no view
/// reaches outside it (region crops: the region, and at least the views' output size,
/// so a view is never cut from less than its own size).
fn largest_view(crops: &Crops) -> [usize; 3] {
    let max = |a: [usize; 3], b: [usize; 3]| std::array::from_fn(|i| a[i].max(b[i]));
    match crops {
        Crops::Random(c) => c.size,
        Crops::Multi(c) => max(c.global_size, c.local_size),
        Crops::Nested(c) => max(c.outer_size, c.inner_size),
        Crops::Region(c) => {
            let views = c
                .local
                .as_ref()
                .map_or(c.global.size, |l| max(c.global.size, l.size));
            c.region.map_or(views, |region| max(region, views))
        }
        Crops::Grid(g) => g.span(),
        Crops::Copies { crops, .. } => crops.size,
    }
}

/// The default preprocessing of method `M` in `preset` whose views `plan` cuts (see
/// [`PretrainData::preprocess`]).
fn default_preprocess<M: Method>(preset: Preset, plan: &ViewPlan) -> Result<PipelineConfig> {
    let [a_min, a_max] = M::intensity_window(preset);
    let mut steps = PipelineConfig::default();
    steps.push(TransformStep::new("orientation", &[])?);
    if preset == Preset::Paper {
        let pixdim = floats(&M::spacing(preset));
        steps.push(TransformStep::new("spacing", &[("pixdim", pixdim)])?);
    }
    steps.push(TransformStep::new(
        "scale_intensity_range",
        &[
            ("a_min", a_min.into()),
            ("a_max", a_max.into()),
            ("b_min", 0.0.into()),
            ("b_max", 1.0.into()),
            ("clip", true.into()),
        ],
    )?);
    steps.push(TransformStep::new(
        "crop_foreground",
        &[
            ("threshold", 0.0.into()),
            ("margin", 0.into()),
            ("allow_smaller", true.into()),
        ],
    )?);
    steps.push(TransformStep::new(
        "spatial_pad",
        &[("spatial_size", ints(&largest_view(&plan.crops)))],
    )?);
    Ok(steps)
}

/// Flips along each axis (p 0.5; left out for a method with rotation labels) and
/// intensity scale and shift by up to 10% (p 0.5).
fn default_augment(rotations: bool) -> Result<PipelineConfig> {
    let flips = if rotations { 0 } else { 3 };
    let mut steps = (0..flips)
        .map(|axis| {
            TransformStep::new(
                "rand_flip",
                &[("prob", 0.5.into()), ("spatial_axis", ints(&[axis]))],
            )
        })
        .collect::<medssl_data::Result<PipelineConfig>>()?;
    steps.push(TransformStep::new(
        "rand_scale_intensity",
        &[("factors", 0.1.into()), ("prob", 0.5.into())],
    )?);
    steps.push(TransformStep::new(
        "rand_shift_intensity",
        &[("offsets", 0.1.into()), ("prob", 0.5.into())],
    )?);
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_ssl::methods::{RotNetMethod, SimMimMethod, SwinUnetrSslMethod};
    use medssl_ssl::{MethodInfo, Recipe};

    /// SimMIM with every hook a method may override changed: per-parameter clipping,
    /// batch-scaled learning rate, SMIT's window and spacing.
    struct Hooked;

    impl Method for Hooked {
        type Net = <SimMimMethod as Method>::Net;
        type Settings = <SimMimMethod as Method>::Settings;
        const INFO: MethodInfo = SimMimMethod::INFO;

        fn settings(preset: Preset) -> Self::Settings {
            SimMimMethod::settings(preset)
        }
        fn recipe(preset: Preset) -> Recipe {
            SimMimMethod::recipe(preset)
        }
        fn clip_mode(_preset: Preset) -> ClipMode {
            ClipMode::PerParameter
        }
        fn lr_batch_scaling(_preset: Preset) -> bool {
            true
        }
        fn intensity_window(_preset: Preset) -> [f64; 2] {
            [-175.0, 250.0]
        }
        fn spacing(_preset: Preset) -> [f64; 3] {
            [2.0; 3]
        }
        fn check(
            settings: &Self::Settings,
            encoder: &SwinUnetrConfig,
            crop: [usize; 3],
        ) -> medssl_ssl::Result<()> {
            SimMimMethod::check(settings, encoder, crop)
        }
        fn view_plan(
            settings: &Self::Settings,
            encoder: &SwinUnetrConfig,
            crop: [usize; 3],
            augment: Pipeline,
            local_augment: Pipeline,
        ) -> medssl_ssl::Result<ViewPlan> {
            SimMimMethod::view_plan(settings, encoder, crop, augment, local_augment)
        }
        fn build(
            settings: &Self::Settings,
            encoder: &SwinUnetrConfig,
            device: &burn::tensor::Device,
        ) -> Self::Net {
            SimMimMethod::build(settings, encoder, device)
        }
    }

    fn names(steps: &PipelineConfig) -> Vec<&str> {
        steps.steps().iter().map(|s| s.name()).collect()
    }

    fn step<'a>(steps: &'a PipelineConfig, name: &str) -> &'a toml::Table {
        steps
            .steps()
            .iter()
            .find(|s| s.name() == name)
            .unwrap()
            .table()
    }

    fn floats_of(value: &toml::Value) -> Vec<f64> {
        let array = value.as_array().unwrap();
        array.iter().map(|v| v.as_float().unwrap()).collect()
    }

    fn ints_of(value: &toml::Value) -> Vec<i64> {
        let array = value.as_array().unwrap();
        array.iter().map(|v| v.as_integer().unwrap()).collect()
    }

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

    /// Tang et al.'s pretraining preprocessing: orientation, (paper) spacing, window,
    /// foreground crop, padding to the largest view; the tiny preset never resamples.
    #[test]
    fn default_preprocessing_is_tangs_with_the_methods_window_and_spacing() {
        let tiny = PretrainConfig::preset::<SimMimMethod>(Preset::Tiny).unwrap();
        let steps = &tiny.data.preprocess;
        assert_eq!(
            names(steps),
            [
                "orientation",
                "scale_intensity_range",
                "crop_foreground",
                "spatial_pad"
            ]
        );
        let window = step(steps, "scale_intensity_range");
        assert_eq!(window["a_min"].as_float(), Some(-1000.0));
        assert_eq!(window["a_max"].as_float(), Some(1000.0));
        assert_eq!(window["clip"].as_bool(), Some(true));
        let crop = step(steps, "crop_foreground");
        assert_eq!(crop["threshold"].as_float(), Some(0.0));
        assert_eq!(crop["margin"].as_integer(), Some(0));
        // SimMIM cuts one random crop of `encoder.crop`.
        assert_eq!(
            ints_of(&step(steps, "spatial_pad")["spatial_size"]),
            tiny.encoder.crop.map(|c| c as i64)
        );

        let paper = PretrainConfig::preset::<SimMimMethod>(Preset::Paper).unwrap();
        let steps = &paper.data.preprocess;
        assert_eq!(names(steps)[..2], ["orientation", "spacing"]);
        assert_eq!(
            floats_of(&step(steps, "spacing")["pixdim"]),
            [1.5, 1.5, 2.0]
        );
        assert_eq!(
            ints_of(&step(steps, "spatial_pad")["spatial_size"]),
            paper.encoder.crop.map(|c| c as i64)
        );
        paper.check::<SimMimMethod>().unwrap();

        // A method's own window and spacing.
        let hooked = PretrainConfig::preset::<Hooked>(Preset::Paper).unwrap();
        let steps = &hooked.data.preprocess;
        assert_eq!(floats_of(&step(steps, "spacing")["pixdim"]), [2.0; 3]);
        let window = step(steps, "scale_intensity_range");
        assert_eq!(window["a_min"].as_float(), Some(-175.0));
        assert_eq!(window["a_max"].as_float(), Some(250.0));
        let tiny = PretrainConfig::preset::<Hooked>(Preset::Tiny).unwrap();
        assert!(!names(&tiny.data.preprocess).contains(&"spacing"));
    }

    /// Every method's presets build (the view plan the defaults derive from included)
    /// and pass their checks; the padding is at least the crop.
    #[test]
    fn every_methods_presets_build_and_check() {
        use medssl_ssl::methods::{METHODS, MethodVisitor, visit};
        struct Presets;
        impl MethodVisitor for Presets {
            type Output = ();
            fn visit<M: Method>(self) {
                for preset in [Preset::Tiny, Preset::Paper] {
                    let config = PretrainConfig::preset::<M>(preset).unwrap();
                    config.check::<M>().unwrap();
                    let pad =
                        ints_of(&step(&config.data.preprocess, "spatial_pad")["spatial_size"]);
                    let name = M::INFO.name;
                    assert!(pad.iter().all(|&p| p > 0), "{name}: {pad:?}");
                }
            }
        }
        for info in METHODS {
            visit(info.name, Presets).unwrap();
        }
    }

    /// The padding covers every view: the larger of global and local crops, the outer
    /// crop, the grid's span, a region crop's region and output sizes.
    #[test]
    fn the_padding_covers_the_largest_view() {
        use medssl_data::views::{CpcGrid, MultiCrop, NestedCrops, RegionCrops, ScaledViews};
        let multi = MultiCrop {
            global_size: [32, 32, 64],
            local_size: [48, 16, 16],
            local_resize: Some([96; 3]),
            ..MultiCrop::default()
        };
        assert_eq!(largest_view(&Crops::Multi(multi)), [48, 32, 64]);
        let nested = NestedCrops {
            outer_size: [64; 3],
            inner_size: [32; 3],
            ..NestedCrops::default()
        };
        assert_eq!(largest_view(&Crops::Nested(nested)), [64; 3]);
        let grid = CpcGrid {
            grid: 3,
            cell: [16; 3],
            overlap: 4,
            ..CpcGrid::default()
        };
        assert_eq!(largest_view(&Crops::Grid(grid)), [40; 3]);
        let views = |size| ScaledViews {
            count: 2,
            size,
            scale: [0.4, 1.0],
        };
        let region = RegionCrops {
            region: Some([64, 64, 16]),
            global: views([32; 3]),
            local: Some(views([16, 16, 48])),
            ..RegionCrops::default()
        };
        assert_eq!(largest_view(&Crops::Region(region.clone())), [64, 64, 48]);
        let whole = RegionCrops {
            region: None,
            ..region
        };
        assert_eq!(largest_view(&Crops::Region(whole)), [32, 32, 48]);
    }

    /// The padding follows the final crop while the preprocessing is left at its
    /// default; a preprocessing given by the user is kept as given.
    #[test]
    fn default_padding_follows_the_crop_given() {
        let config = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &["encoder.crop=[64, 64, 32]".into()],
        )
        .unwrap();
        let pad = step(&config.data.preprocess, "spatial_pad");
        assert_eq!(ints_of(&pad["spatial_size"]), [64, 64, 32]);
        let file = "[data]\npreprocess = [{ name = \"orientation\" }]\n";
        let config = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            Some(SettingsFile {
                name: "config.toml",
                text: file,
            }),
            &["encoder.crop=[64, 64, 32]".into()],
        )
        .unwrap();
        assert_eq!(names(&config.data.preprocess), ["orientation"]);
    }

    /// Every transform list is checked on load, naming the list; a random step cannot be
    /// cached as preprocessing.
    #[test]
    fn transform_lists_are_checked_on_load() {
        let refused = |set: &str| {
            PretrainConfig::load::<SimMimMethod>(Preset::Tiny, None, &[set.to_string()])
                .unwrap_err()
                .to_string()
        };
        let err = refused("data.local_augment=[{name = \"rand_fiip\"}]");
        assert!(
            err.starts_with("setting `data.local_augment`: unknown transform `rand_fiip`"),
            "{err}"
        );
        let err = refused("data.preprocess=[{name = \"rand_flip\", prob = 0.5}]");
        assert!(
            err.starts_with("data.preprocess: step `rand_flip` is random"),
            "{err}"
        );
    }

    /// An all-air volume (nothing above the window's lower bound) stops the
    /// preprocessing with an error naming the case.
    #[test]
    fn an_all_air_volume_is_an_error_naming_the_case() {
        use medssl_data::Sample;
        use medssl_io::{Affine, Volume};
        let config = PretrainConfig::preset::<SimMimMethod>(Preset::Tiny).unwrap();
        let pipeline = config.data.preprocess.build();
        let mut rng = medssl_data::rng::stream(0, &[]);
        let air = ndarray::Array4::from_elem((1, 8, 8, 8), -1000.0f32);
        let sample = Sample::unlabelled("blank_scan_7", Volume::new(air, Affine::identity()));
        let err = pipeline.run(sample, &mut rng).unwrap_err().to_string();
        assert!(err.contains("blank_scan_7"), "{err}");
        assert!(err.contains("crop_foreground"), "{err}");

        // A small body in air: cropped to it, then padded back to the crop size.
        let mut body = ndarray::Array4::from_elem((1, 40, 40, 40), -1000.0f32);
        body.slice_mut(ndarray::s![.., 10..20, 12..30, 5..9])
            .fill(40.0);
        let sample = Sample::unlabelled("body", Volume::new(body, Affine::identity()));
        let out = pipeline.run(sample, &mut rng).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].spatial_shape(), [32, 32, 32]);
        let image = out[0].image.data();
        let inside = image.iter().filter(|&&v| v > 0.0).count();
        assert_eq!(inside, 10 * 18 * 4);
    }

    /// A method that predicts rotations gets no flips by default and refuses them when
    /// given, before anything is written.
    #[test]
    fn rotation_methods_have_no_flips_and_refuse_them() {
        let flips = |c: &PretrainConfig| {
            let steps = names(&c.data.augment);
            steps.iter().filter(|n| **n == "rand_flip").count()
        };
        let simmim = PretrainConfig::preset::<SimMimMethod>(Preset::Tiny).unwrap();
        assert_eq!(flips(&simmim), 3);
        for preset in [Preset::Tiny, Preset::Paper] {
            let rotnet = PretrainConfig::preset::<RotNetMethod>(preset).unwrap();
            assert_eq!(flips(&rotnet), 0);
            assert_eq!(
                names(&rotnet.data.augment),
                ["rand_scale_intensity", "rand_shift_intensity"]
            );
            rotnet.check::<RotNetMethod>().unwrap();
            let ssl = PretrainConfig::preset::<SwinUnetrSslMethod>(preset).unwrap();
            assert_eq!(flips(&ssl), 0);
            ssl.check::<SwinUnetrSslMethod>().unwrap();
        }

        let mut rotnet = PretrainConfig::preset::<RotNetMethod>(Preset::Tiny).unwrap();
        let flip = simmim.data.augment.steps()[1].clone();
        rotnet.data.augment = std::iter::once(flip)
            .chain(rotnet.data.augment.steps().iter().cloned())
            .collect();
        let err = rotnet.check::<RotNetMethod>().unwrap_err().to_string();
        assert!(
            err.contains("data.augment") && err.contains("rand_flip"),
            "{err}"
        );
        let mut ssl = PretrainConfig::preset::<SwinUnetrSslMethod>(Preset::Tiny).unwrap();
        ssl.data
            .augment
            .push(TransformStep::new("rand_rotate90", &[("prob", 0.5.into())]).unwrap());
        let err = ssl.check::<SwinUnetrSslMethod>().unwrap_err().to_string();
        assert!(err.contains("data.augment"), "{err}");
        assert!(err.contains("rand_rotate90"), "{err}");
        // Through `load`, as `medssl pretrain --config` reads it.
        let file = "[[data.augment]]\nname = \"rand_flip\"\nprob = 0.5\n";
        let err = PretrainConfig::load::<RotNetMethod>(
            Preset::Tiny,
            Some(SettingsFile {
                name: "config.toml",
                text: file,
            }),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("rand_flip"), "{err}");
        // Methods without rotation labels keep their flips.
        PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            Some(SettingsFile {
                name: "config.toml",
                text: file,
            }),
            &[],
        )
        .unwrap();
    }

    /// Whole epochs count the loop's steps: 5 batches summed 2 at a time make 3 steps
    /// (the fifth batch a step of its own), so 4 epochs are 12 steps; `train.steps`
    /// overrides.
    #[test]
    fn total_steps_count_a_partial_accumulation_as_a_step() {
        let mut config = PretrainConfig::preset::<SimMimMethod>(Preset::Tiny).unwrap();
        config.data.loader.batch_size = 2;
        config.data.loader.drop_last = false;
        config.train.accumulate = 2;
        config.train.epochs = 4;
        config.train.steps = None;
        assert_eq!(config.data.loader.batches(10), 5);
        assert_eq!(config.total_steps(10), 12);
        config.train.steps = Some(7);
        assert_eq!(config.total_steps(10), 7);
    }

    /// DINO's rule: `lr · batch / 256` over the volumes of one optimiser step.
    #[test]
    fn lr_batch_scaling_multiplies_by_the_step_batch_over_256() {
        let mut config = PretrainConfig::preset::<SimMimMethod>(Preset::Tiny).unwrap();
        assert!(!config.train.lr_batch_scaling);
        config.train.lr = 5e-4;
        config.data.loader.batch_size = 2;
        config.train.accumulate = 4;
        assert_eq!(config.peak_lr(), 5e-4);
        config.train.lr_batch_scaling = true;
        assert_eq!(config.peak_lr(), 5e-4 * 8.0 / 256.0);
        assert_eq!(config.peak_lr(), 1.5625e-5);
        config.data.loader.batch_size = 64;
        config.train.accumulate = 4;
        assert_eq!(config.peak_lr(), 5e-4);
    }

    /// The method's hooks set the defaults, `--set` changes them, and a stored file
    /// without them is refused naming the key.
    #[test]
    fn clipping_and_batch_scaling_default_to_the_methods() {
        let simmim = PretrainConfig::preset::<SimMimMethod>(Preset::Paper).unwrap();
        assert_eq!(simmim.train.clip_mode, ClipMode::Global);
        let hooked = PretrainConfig::preset::<Hooked>(Preset::Paper).unwrap();
        assert_eq!(hooked.train.clip_mode, ClipMode::PerParameter);
        assert!(hooked.train.lr_batch_scaling);
        let text = hooked.to_toml().unwrap();
        assert!(text.contains("clip_mode = \"per_parameter\""), "{text}");
        assert!(text.contains("lr_batch_scaling = true"), "{text}");

        for key in ["clip_mode", "lr_batch_scaling"] {
            let mut table = toml::Table::try_from(&simmim).unwrap();
            table["train"].as_table_mut().unwrap().remove(key).unwrap();
            let err =
                toml::from_str::<PretrainConfig>(&toml::to_string(&table).unwrap()).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let set = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &[
                "train.clip_mode=per_parameter".into(),
                "train.lr_batch_scaling=true".into(),
            ],
        )
        .unwrap();
        assert_eq!(set.train.clip_mode, ClipMode::PerParameter);
        assert!(set.train.lr_batch_scaling);
    }

    /// The encoder's Swin shape is a setting (as fine-tuning's `model.*`): it reaches the
    /// network, a shape the network cannot have is refused naming what is wrong, and
    /// the default is MONAI's shape.
    #[test]
    fn the_encoder_shape_reaches_the_network_and_defaults_to_monais() {
        let config = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &[
                "encoder.depths=[2,2,4,2]".into(),
                "encoder.num_heads=[4,4,4,4]".into(),
                "encoder.window_size=4".into(),
                "encoder.qkv_bias=false".into(),
            ],
        )
        .unwrap();
        let network = config.network();
        assert_eq!(network.depths, [2, 2, 4, 2]);
        assert_eq!(network.num_heads, [4, 4, 4, 4]);
        assert_eq!(network.window_size, [4; 3]);
        assert!(!network.qkv_bias);

        let err = PretrainConfig::load::<SimMimMethod>(
            Preset::Tiny,
            None,
            &["encoder.num_heads=[5,6,12,24]".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("encoder") && err.contains("heads"), "{err}");

        let monai = PretrainConfig::preset::<SimMimMethod>(Preset::Tiny).unwrap();
        assert_eq!(
            monai.network(),
            SwinUnetrConfig::new(1, 2).with_feature_size(12)
        );
    }
}
