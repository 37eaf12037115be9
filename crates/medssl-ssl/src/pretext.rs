//! The contract between a pretraining method and the one loop that trains them all.
//!
//! A method is two things. Its [`Method`] says what it is (name, family, description),
//! what settings it has in each [`Preset`], what inputs it needs from the data pipeline
//! (a [`ViewPlan`]) and how its network is built. Its network, a [`Pretext`], is one Burn
//! module holding the encoder, the heads and, for the self-distillation methods, the EMA
//! teacher (whose parameters never require gradients, so the optimiser leaves them
//! alone and one checkpoint holds the whole method state); it computes the loss of a
//! batch and updates its teacher after each optimiser step.
//!
//! The loop owns everything the methods share: AdamW, the learning-rate and
//! weight-decay schedules, gradient clipping and accumulation, the teacher-momentum
//! schedule, freezing the last head layer in the first epoch, checkpoints, resume and
//! the metrics log. Adding a method is a new file with these two impls.

use burn::module::{Module, ParamId};
use burn::tensor::Tensor;
use medssl_data::views::ViewBatch;
use medssl_data::views::ViewPlan;
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The two scales every configuration comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// CPU minutes on a laptop: feature size 12, small crops, small heads.
    Tiny,
    /// The study's GPU setting: the published recipes.
    Paper,
}

/// The four families of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Instance discrimination between views (SimCLR, MoCo v3, CPC).
    Contrastive,
    /// Predicting the rotation applied to a view (RotNet, SwinUNETR-SSL).
    Rotation,
    /// Reconstructing masked voxels (SimMIM, SMIT).
    MaskedImageModelling,
    /// Matching an EMA teacher's outputs (DINO, iBOT).
    SelfDistillation,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Contrastive => "contrastive",
            Family::Rotation => "rotation",
            Family::MaskedImageModelling => "masked image modelling",
            Family::SelfDistillation => "self-distillation",
        })
    }
}

/// What `medssl methods` lists about a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The name used on the command line and in run directories.
    pub name: &'static str,
    /// Its family.
    pub family: Family,
    /// One line: the pretext task and where it comes from.
    pub description: &'static str,
}

/// The recipe a method's paper uses (optimisation, and the crop where the method needs
/// its own), which the loop's defaults start from (every value can still be set in the
/// run's configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// Peak learning rate (for the preset's batch size).
    pub lr: f64,
    /// Weight decay at the start and at the end of the cosine schedule.
    pub weight_decay: (f64, f64),
    /// Gradient-norm clipping limit, of the global norm or of each parameter's as
    /// [`Method::clip_mode`] says.
    pub grad_clip_norm: Option<f64>,
    /// Epochs with the last head layer frozen.
    pub freeze_last_layer: u64,
    /// EMA teacher momentum at the start (it rises to 1).
    pub teacher_momentum: f64,
    /// The crop size when the preset's (32³ tiny, 96³ paper) does not suit the method.
    pub crop: Option<[usize; 3]>,
}

impl Recipe {
    /// AdamW at `lr` with weight decay 0.05, clipping at 3: the defaults of a method
    /// whose paper does not say otherwise.
    pub fn adamw(lr: f64) -> Recipe {
        Recipe {
            lr,
            weight_decay: (0.05, 0.05),
            grad_clip_norm: Some(3.0),
            freeze_last_layer: 0,
            teacher_momentum: 0.996,
            crop: None,
        }
    }
}

/// How gradients are clipped to the limit (`train.grad_clip_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMode {
    /// The L2 norm of all gradients together, PyTorch's `clip_grad_norm_`: every
    /// gradient is scaled by `limit / (norm + 1e-6)` when that is below 1.
    #[default]
    Global,
    /// Each parameter's gradient on its own, DINO's `utils.clip_gradients` (also iBOT's
    /// and SMIT's): a parameter whose gradient norm `n` gives `limit / (n + 1e-6) < 1`
    /// has its gradient scaled by that factor; the others are left as they are.
    PerParameter,
}

impl std::fmt::Display for ClipMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClipMode::Global => "global",
            ClipMode::PerParameter => "per_parameter",
        })
    }
}

/// Where the run is when a loss is computed, for methods whose loss changes over
/// training (temperature warm-ups).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepContext {
    /// The epoch being trained, from 0.
    pub epoch: u64,
    /// Epochs of the run.
    pub epochs: u64,
    /// Optimiser steps taken so far.
    pub iteration: u64,
}

/// One batch's loss: the scalar to minimise and what the log shows about it.
#[derive(Debug)]
pub struct StepLoss<A> {
    /// The total loss, shape `[1]`.
    pub total: Tensor<1>,
    /// Its named parts, each as it enters the sum (weights applied), shape `[1]`.
    pub components: Vec<(&'static str, Tensor<1>)>,
    /// Values to log that are not losses (temperatures, collapse monitors).
    pub monitors: Vec<(&'static str, f64)>,
    /// What [`Pretext::after_step`] needs from this batch (DINO: the teacher outputs'
    /// mean, for the centre).
    pub aux: A,
}

impl StepLoss<()> {
    /// A loss of one component (`name`), monitored by the embedding spread when the
    /// batch has one: the step of the contrastive methods.
    pub fn contrastive(name: &'static str, loss: Tensor<1>, spread: Option<f64>) -> StepLoss<()> {
        StepLoss {
            total: loss.clone(),
            components: vec![(name, loss)],
            monitors: spread
                .map(|s| ("embedding_spread", s))
                .into_iter()
                .collect(),
            aux: (),
        }
    }
}

/// A method's network: encoder, heads and teacher, trained as one module.
pub trait Pretext: Module {
    /// What a loss computation hands to [`after_step`](Self::after_step).
    type Aux;

    /// The loss of one batch of views on the autodiff device the module lives on.
    fn loss(&self, batch: &ViewBatch, context: &StepContext) -> Result<StepLoss<Self::Aux>>;

    /// Called after every optimiser step with the teacher momentum of that step and the
    /// `aux` of each batch that step summed: updates the teacher (EMA) and any running
    /// state such as DINO's centre. Methods without a teacher return `self`.
    fn after_step(self, aux: Vec<Self::Aux>, momentum: f64) -> Self;

    /// The encoder being pretrained (what `encoder.safetensors` holds).
    fn encoder(&self) -> &SwinTransformer;

    /// Whether the method has an EMA teacher (the loop then logs its momentum).
    fn has_teacher(&self) -> bool {
        false
    }

    /// Parameters that receive no update during the first `freeze_last_layer` epochs
    /// (DINO's last head layer); none by default.
    fn last_layer(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

/// A pretraining method: its description, settings, inputs and network.
pub trait Method {
    /// Its network.
    type Net: Pretext;
    /// Its own settings, the `[pretext]` table of a run's `config.toml`.
    type Settings: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug;

    /// Name, family and description.
    const INFO: MethodInfo;

    /// The defaults of `preset`.
    fn settings(preset: Preset) -> Self::Settings;

    /// The optimisation recipe of `preset`.
    fn recipe(preset: Preset) -> Recipe;

    /// How the recipe's `grad_clip_norm` clips (`train.clip_mode`): the global norm
    /// unless the method's code clips each parameter on its own (DINO's
    /// `clip_gradients`).
    fn clip_mode(_preset: Preset) -> ClipMode {
        ClipMode::Global
    }

    /// Whether the recipe's learning rate is per 256 volumes (`train.lr_batch_scaling`):
    /// the run then trains at `lr · batch_size · accumulate / 256`, as DINO scales its
    /// `lr` by the total batch size over 256. Off by default: `lr` is the rate itself.
    fn lr_batch_scaling(_preset: Preset) -> bool {
        false
    }

    /// The CT window `[a_min, a_max]` in HU that the default preprocessing maps to
    /// `0..1` (clipped): -1000..1000 HU, the window of Tang et al.'s SwinUNETR
    /// pretraining, unless the method's paper uses another (SMIT: -175..250).
    fn intensity_window(_preset: Preset) -> [f64; 2] {
        [-1000.0, 1000.0]
    }

    /// The voxel spacing in mm `[x, y, z]` the default preprocessing of the paper
    /// preset resamples to, so every method sees the same anatomy per voxel: 1.5 × 1.5 ×
    /// 2 mm, the spacing of SwinUNETR's fine-tuning recipes (Tang et al.'s pretraining
    /// script imports `Spacingd` but does not apply it), unless the method's paper
    /// resamples to another (SMIT: 2 mm). The tiny preset does not resample.
    fn spacing(_preset: Preset) -> [f64; 3] {
        [1.5, 1.5, 2.0]
    }

    /// Rejects settings that parse but cannot work, naming the key.
    fn check(settings: &Self::Settings, encoder: &SwinUnetrConfig, crop: [usize; 3]) -> Result<()>;

    /// The views and masks each volume yields, cut at `crop` voxels and augmented by
    /// `augment` (and `local_augment` for multi-crop's small views).
    fn view_plan(
        settings: &Self::Settings,
        encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: medssl_data::Pipeline,
        local_augment: medssl_data::Pipeline,
    ) -> Result<ViewPlan>;

    /// A freshly initialised network (call inside `medssl_model::seeding::build_seeded`).
    fn build(
        settings: &Self::Settings,
        encoder: &SwinUnetrConfig,
        device: &burn::tensor::Device,
    ) -> Self::Net;
}
