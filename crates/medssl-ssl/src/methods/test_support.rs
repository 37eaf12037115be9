//! What the methods' unit tests share: the small encoder they build, a method's view
//! plan with no augmentation, and the wiring tests' batches, hand computations,
//! NaN-safe comparisons and gradient reports.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use medssl_data::views::{Crops, RandomCrops, RegionCrops, ScaledViews, ViewBatch, ViewPlan};
use medssl_data::{Pipeline, Sample, rng};
use medssl_io::{Affine, Volume};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use ndarray::{Array4, Array5};

use crate::pretext::{Method, Preset, StepContext};

/// The encoder of the unit tests: feature size 12, one input channel.
pub fn encoder() -> SwinUnetrConfig {
    SwinUnetrConfig::new(1, 2).with_feature_size(12)
}

/// `M`'s network for `settings` on [`fast_encoder`], initialised from `seed` (so a
/// test's values do not change from run to run).
pub fn seeded<M: Method>(settings: &M::Settings, seed: u64, device: &Device) -> M::Net {
    medssl_model::seeding::build_seeded(device, seed, |device| {
        Ok::<_, std::convert::Infallible>(M::build(settings, &fast_encoder(), device))
    })
    .unwrap_or_else(|never| match never {})
}

/// `M`'s view plan for `settings` and `crop`³ crops of [`encoder`], with empty
/// augmentation pipelines.
pub fn plan_of<M: Method>(settings: &M::Settings, crop: usize) -> ViewPlan {
    M::view_plan(
        settings,
        &encoder(),
        [crop; 3],
        Pipeline::default(),
        Pipeline::default(),
    )
    .expect("a view plan")
}

/// Two smooth, different 32³ views of a batch of 2, the first half of the 16³ patch grid
/// (along the first axis) masked in both: a batch for the masked distillation methods.
pub fn masked_two_view_batch() -> ViewBatch {
    let view = |k: f32| {
        Array5::from_shape_fn((2, 1, 32, 32, 32), |(b, _, z, y, x)| {
            ((z * 7 + y * 3 + x) as f32 * 0.05 + k + b as f32).sin()
        })
    };
    let mask = Array4::from_shape_fn((2, 16, 16, 16), |(_, z, _, _)| z < 8);
    ViewBatch {
        ids: vec!["a".into(), "b".into()],
        views: vec![view(0.0), view(1.0)],
        masks: vec![mask.clone(), mask],
        labels: Vec::new(),
    }
}

/// The first step of `epoch` in a 10-epoch run.
pub fn epoch_start(epoch: u64) -> StepContext {
    StepContext {
        epoch,
        epochs: 10,
        iteration: 0,
    }
}

/// The region crops of `M`'s plan for `settings`.
pub fn region_crops<M: Method>(settings: &M::Settings, crop: usize) -> RegionCrops {
    match plan_of::<M>(settings, crop).crops {
        Crops::Region(crops) => crops,
        other => panic!("{} cuts {other:?}, not region crops", M::INFO.name),
    }
}

/// `M`'s presets cut two global views of the crop size from one region (48³ tiny at
/// `tiny_scale`, 128³ paper at `paper_scale`) and no local views.
pub fn assert_two_views_of_one_region<M: Method>(tiny_scale: [f64; 2], paper_scale: [f64; 2]) {
    for (preset, region, crop, scale) in [
        (Preset::Tiny, 48, 32, tiny_scale),
        (Preset::Paper, 128, 96, paper_scale),
    ] {
        let settings = M::settings(preset);
        M::check(&settings, &encoder(), [crop; 3]).expect("valid settings");
        let crops = region_crops::<M>(&settings, crop);
        assert_eq!(crops.region, Some([region; 3]), "{preset:?}");
        assert_eq!(
            crops.global,
            ScaledViews {
                count: 2,
                size: [crop; 3],
                scale
            },
            "{preset:?}"
        );
        assert_eq!(crops.local, None, "{preset:?}");
    }
}

// What the wiring tests share: batches, hand-computed values, comparisons that fail on
// NaN, view-source decoding and gradient reports.

/// `count` smooth views of a batch of `batch` volumes of `side`³ voxels (one channel),
/// every view of every volume different, with values in `-1..1`: view `v` of volume `b`
/// is a sine of its coordinates whose frequencies and phase depend on `v` and `b`.
pub fn smooth_batch(count: usize, batch: usize, side: usize) -> ViewBatch {
    let view = |v: usize| {
        Array5::from_shape_fn((batch, 1, side, side, side), |(b, _, z, y, x)| {
            let (fv, fb) = (v as f32, b as f32);
            let t = (z as f32) * (0.11 + 0.03 * fv) + (y as f32) * (0.07 + 0.02 * fb)
                - (x as f32) * 0.05;
            (t + 1.3 * fv + 0.7 * fb).sin()
        })
    };
    ViewBatch {
        ids: (0..batch).map(|b| format!("case{b}")).collect(),
        views: (0..count).map(view).collect(),
        masks: Vec::new(),
        labels: Vec::new(),
    }
}

/// View `v` of `batch` as a tensor on `device`.
pub fn view_tensor(batch: &ViewBatch, v: usize, device: &Device) -> Tensor<5> {
    medssl_model::arrays::to_tensor(batch.views[v].clone(), device)
}

/// A tensor's values.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 values")
}

/// The value of a one-element tensor, which must be finite.
pub fn finite_scalar(what: &str, tensor: Tensor<1>) -> f64 {
    let value = f64::from(tensor.into_scalar::<f32>());
    assert!(value.is_finite(), "{what} is {value}");
    value
}

/// `got` equals `want` to `rel` relative (of `|want|`, at least 1e-6 absolute); NaN or
/// infinity on either side fails.
pub fn assert_close(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        got.is_finite() && want.is_finite(),
        "{what}: got {got}, want {want}"
    );
    let tolerance = rel * want.abs().max(1e-6);
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got}, want {want} (difference {}, tolerance {tolerance})",
        (got - want).abs()
    );
}

/// `got` equals `want` to `tolerance` absolute; NaN or infinity on either side fails.
pub fn assert_near(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        got.is_finite() && want.is_finite() && (got - want).abs() <= tolerance,
        "{what}: got {got}, want {want} (tolerance {tolerance})"
    );
}

/// `a` and `b` differ by more than `rel` relative (of the larger magnitude): the value a
/// wrong wiring would give is told apart from the right one, so the test comparing the
/// method's value with the right one can fail. NaN or infinity fails.
pub fn assert_apart(what: &str, a: f64, b: f64, rel: f64) {
    assert!(a.is_finite() && b.is_finite(), "{what}: {a} and {b}");
    assert!(
        (a - b).abs() > rel * a.abs().max(b.abs()),
        "{what}: {a} and {b} are not told apart"
    );
}

/// Every element of `got` equals `want`'s to `rel` relative of the largest magnitude
/// in `want`; NaN or infinity fails.
pub fn assert_all_close(what: &str, got: &[f32], want: &[f32], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want
        .iter()
        .map(|w| f64::from(w.abs()))
        .fold(1e-6, |m, w| if w > m { w } else { m });
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite() && w.is_finite(), "{what}[{i}]: {g} {w}");
        assert!(
            (f64::from(g) - f64::from(w)).abs() <= rel * scale,
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// The mean cross-entropy of `logits` (`[labels.len(), classes]`, row-major) against
/// `labels`, in f64 from the definition.
pub fn cross_entropy_f64(logits: &[f32], classes: usize, labels: &[usize]) -> f64 {
    assert_eq!(logits.len(), classes * labels.len());
    let total: f64 = logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let row: Vec<f64> = row.iter().map(|&l| f64::from(l)).collect();
            let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = row.iter().map(|l| (l - top).exp()).sum::<f64>().ln() + top;
            log_sum - row[label]
        })
        .sum();
    total / labels.len() as f64
}

/// Per row of `logits` (`[n, classes]`), the index of the largest value.
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes)
        .map(|row| {
            (0..classes)
                .reduce(|best, c| if row[c] > row[best] { c } else { best })
                .expect("a class")
        })
        .collect()
}

/// A volume of `shape` whose three channels hold each voxel's index on the three axes:
/// a view cut (and linearly resized) from it tells where it came from.
pub fn coordinate_sample(shape: [usize; 3]) -> Sample {
    let image = Array4::from_shape_fn((3, shape[0], shape[1], shape[2]), |(a, i, j, k)| {
        [i, j, k][a] as f32
    });
    Sample::unlabelled("coordinates", Volume::new(image, Affine::identity()))
}

/// The `[lowest, highest]` source index per axis that a view of [`coordinate_sample`]
/// shows.
pub fn source_range(view: &Array4<f32>) -> [[f32; 2]; 3] {
    std::array::from_fn(|a| {
        let channel = view.index_axis(ndarray::Axis(0), a);
        assert!(
            channel.iter().all(|x| x.is_finite()),
            "axis {a}: not finite"
        );
        let low = channel.iter().copied().fold(f32::INFINITY, f32::min);
        let high = channel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(
            low.is_finite() && high.is_finite(),
            "axis {a}: {low}..{high}"
        );
        [low, high]
    })
}

/// The source ranges ([`source_range`]) of the first two views of `plan` cut from
/// `sample`, for 8 draws.
fn pair_ranges(plan: &ViewPlan, sample: &Sample) -> Vec<[[[f32; 2]; 3]; 2]> {
    (0..8)
        .map(|seed| {
            let set = plan
                .views(sample, &mut rng::stream(seed, &[]))
                .expect("views");
            [0, 1].map(|v| source_range(&set.views[v]))
        })
        .collect()
}

/// The largest extent on any axis of the source voxels that the two views of a draw
/// show together (their union), over `pairs`.
fn widest_pair(pairs: &[[[[f32; 2]; 3]; 2]]) -> f32 {
    let mut widest = 0.0f32;
    for [a, b] in pairs {
        for axis in 0..3 {
            let extent = a[axis][1].max(b[axis][1]) - a[axis][0].min(b[axis][0]);
            assert!(extent.is_finite(), "axis {axis}: {extent}");
            widest = widest.max(extent);
        }
    }
    widest
}

/// `M`'s tiny views of an 80³ volume are random resized crops of one 48³ region: over 8
/// draws, each view shows a cube of source voxels (one scale on every axis) between
/// 20 and 47 voxels a side (a box of 21–48 voxels, 8–100% of the region, resized to
/// 32³), and the two views together span at most the region (47 voxels between the
/// first and the last). Two crops at independent positions of the whole volume (the
/// old `Crops::Random` plan, or a region of the whole volume) span more in some draw,
/// which the same measure tells.
pub fn assert_views_share_one_region<M: Method>() {
    let settings = M::settings(Preset::Tiny);
    let plan = plan_of::<M>(&settings, 32);
    let region = region_crops::<M>(&settings, 32).region.expect("a region")[0] as f32;
    assert_eq!(region, 48.0);
    let sample = coordinate_sample([80; 3]);
    let pairs = pair_ranges(&plan, &sample);
    for (draw, pair) in pairs.iter().enumerate() {
        for (v, range) in pair.iter().enumerate() {
            let extents = range.map(|[low, high]| high - low);
            for (axis, [low, high]) in range.iter().copied().enumerate() {
                assert!(
                    low >= 0.0 && high <= 79.0,
                    "draw {draw} view {v} axis {axis}: {low}..{high} outside the volume"
                );
                assert!(
                    (20.0 - 1e-3..=47.0 + 1e-3).contains(&extents[axis]),
                    "draw {draw} view {v} axis {axis}: extent {}",
                    extents[axis]
                );
                assert!(
                    (extents[axis] - extents[0]).abs() < 1e-3,
                    "draw {draw} view {v}: extents {extents:?} differ between axes"
                );
            }
        }
    }
    let shared = widest_pair(&pairs);
    assert!(
        shared <= region - 1.0 + 1e-3,
        "the two views span {shared} voxels, more than the {region}-voxel region"
    );
    let independent = ViewPlan {
        crops: Crops::Random(RandomCrops {
            count: 2,
            size: [32; 3],
            fill: 0.0,
        }),
        ..plan_of::<M>(&settings, 32)
    };
    let whole = {
        let mut whole = plan_of::<M>(&settings, 32);
        if let Crops::Region(crops) = &mut whole.crops {
            crops.region = None;
        }
        whole
    };
    for (name, plan) in [("independent crops", independent), ("whole volume", whole)] {
        let spread = widest_pair(&pair_ranges(&plan, &sample));
        assert!(
            spread > region - 1.0 + 1e-3,
            "{name}: the measure cannot tell a shared region ({spread} voxels)"
        );
    }
}

/// What a backward pass left for one float parameter.
#[derive(Debug, Clone)]
pub struct ParamGrad {
    /// The parameter's module path, e.g. `swin_vit.patch_embed.proj.weight`.
    pub path: String,
    /// Whether the parameter requires a gradient.
    pub requires_grad: bool,
    /// The L2 norm of its gradient, when it has one.
    pub grad_norm: Option<f64>,
}

/// For every float parameter of `module`, its gradient's norm in `grads` (the optimiser's
/// view of a backward pass).
pub fn param_grads<M: Module>(module: &M, grads: &GradientsParams) -> Vec<ParamGrad> {
    struct Report<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        out: Vec<ParamGrad>,
    }
    impl ModuleVisitor for Report<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad_norm = self.grads.get::<D>(param.id).map(|g| {
                let n = g.clone().shape().num_elements();
                let squares = g.reshape([n]).powf_scalar(2.0).sum();
                f64::from(squares.into_scalar::<f32>()).sqrt()
            });
            self.out.push(ParamGrad {
                path: self.path.join("."),
                requires_grad: param.val().is_require_grad(),
                grad_norm,
            });
        }
    }
    let mut report = Report {
        grads,
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut report);
    report.out
}

/// `module` with every float parameter set to zero (its gradient requirement kept).
pub fn zeroed<M: Module>(module: M) -> M {
    struct Zero;
    impl ModuleMapper for Zero {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| t.zeros_like())
        }
    }
    module.map(&mut Zero)
}

/// The mean over space of `encoder`'s last stage for `x`, `[B, 16F]`: the global
/// embedding the contrastive and rotation heads read, computed here on its own.
pub fn pooled_last_stage(encoder: &SwinTransformer, x: Tensor<5>) -> Tensor<2> {
    let [.., last] = encoder.forward(x);
    let [b, c, ..] = last.dims();
    last.mean_dim(4).mean_dim(3).mean_dim(2).reshape([b, c])
}

// What the self-distillation wiring tests (DINO, iBOT, SMIT) share: a faster encoder, a
// small head, patch masks, the losses and centre updates computed by hand in f64, and
// the EMA and gradient checks.

use std::collections::BTreeMap;

use crate::losses::distillation::Distill;

/// [`encoder`] with 4³ windows: the same four stages of two blocks (the second with
/// shifted windows), an order of magnitude faster on 32³ views than 7³ windows (which pad
/// the 16³ patch grid to 21³), for tests that run several losses and backward passes.
pub fn fast_encoder() -> SwinUnetrConfig {
    SwinUnetrConfig {
        window_size: [4; 3],
        ..encoder()
    }
}

/// A distillation head small enough for loss tests: 32 prototypes, hidden width 16,
/// bottleneck 8, batch norm as in the `tiny` preset (so the tests see its statistics
/// taken over all crops at once).
pub fn small_head() -> crate::heads::HeadSettings {
    crate::heads::HeadSettings {
        out_dim: 32,
        hidden_dim: 16,
        bottleneck_dim: 8,
        norm_last_layer: true,
        batch_norm: true,
    }
}

/// The patch mask of a batch of two 32³ views, `[2, 16, 16, 16]`: patch `[z, y, x]` of
/// volume `b` is masked when `masked(b, [z, y, x])`.
pub fn patch_mask(masked: impl Fn(usize, [usize; 3]) -> bool) -> Array4<bool> {
    Array4::from_shape_fn((2, 16, 16, 16), |(b, z, y, x)| masked(b, [z, y, x]))
}

/// `mask` (`[B, d, h, w]` patches) on the tokens of a stage `factor` patches coarser,
/// `[B, (d/f)(h/f)(w/f)]` flattened row-major, 1 where the token's first patch is masked
/// (the masks of these tests mask whole tokens): worked out here, not by
/// `inputs::coarse_mask`.
pub fn coarse_tokens(mask: &Array4<bool>, factor: usize) -> Vec<f32> {
    let [b, d, h, w] = [0, 1, 2, 3].map(|a| mask.shape()[a]);
    let mut out = Vec::new();
    for image in 0..b {
        for z in (0..d).step_by(factor) {
            for y in (0..h).step_by(factor) {
                for x in (0..w).step_by(factor) {
                    out.push(f32::from(u8::from(mask[[image, z, y, x]])));
                }
            }
        }
    }
    out
}

/// `[k]` centre values of a few tenths that differ between prototypes (`phase`
/// tells two centres of one method apart): a centre whose subtraction changes the
/// teacher's distribution, unlike a constant one.
pub fn test_center(k: usize, phase: f32, device: &Device) -> Tensor<1> {
    let values: Vec<f32> = (0..k)
        .map(|i| 0.3 * (0.9 * i as f32 + phase).sin())
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(values, [k]), device)
}

/// `log_softmax` of a row in f64.
fn log_softmax_f64(row: &[f64]) -> Vec<f64> {
    let top = row.iter().copied().fold(f64::NEG_INFINITY, |m, v| {
        assert!(v.is_finite(), "logit {v}");
        if v > m { v } else { m }
    });
    let log_sum = row.iter().map(|v| (v - top).exp()).sum::<f64>().ln() + top;
    row.iter().map(|v| v - log_sum).collect()
}

/// Per row of `teacher` and `student` (`[n, k]` row-major, `k` = `center.len()`), the
/// distillation cross-entropy from its definition, in f64: `-Σ p log q` with `p =
/// softmax((teacher − center) / teacher_temp)` and `q = softmax(student / student_temp)`.
pub fn distill_rows(
    teacher: &[f32],
    student: &[f32],
    center: &[f32],
    distill: &Distill,
) -> Vec<f64> {
    let k = center.len();
    assert_eq!(teacher.len(), student.len(), "teacher and student rows");
    assert_eq!(teacher.len() % k, 0, "rows of {k}");
    teacher
        .chunks(k)
        .zip(student.chunks(k))
        .map(|(t, s)| {
            let t: Vec<f64> = t
                .iter()
                .zip(center)
                .map(|(&t, &c)| (f64::from(t) - f64::from(c)) / distill.teacher_temp)
                .collect();
            let s: Vec<f64> = s
                .iter()
                .map(|&s| f64::from(s) / distill.student_temp)
                .collect();
            let log_q = log_softmax_f64(&s);
            -log_softmax_f64(&t)
                .iter()
                .zip(&log_q)
                .map(|(log_p, log_q)| log_p.exp() * log_q)
                .sum::<f64>()
        })
        .collect()
}

/// The (teacher crop, student crop) pairs of `teachers` and `students` crops (crop `i` of
/// both the same crop), the pairs of one crop with itself included when `same`.
pub fn crop_pairs(teachers: usize, students: usize, same: bool) -> Vec<(usize, usize)> {
    (0..teachers)
        .flat_map(|t| (0..students).map(move |s| (t, s)))
        .filter(|&(t, s)| same || t != s)
        .collect()
}

/// The cross-view distillation loss (DINO's, and the global terms of iBOT and SMIT) by
/// hand: over `pairs` of (teacher crop, student crop), the mean of the batch-mean
/// [`distill_rows`].
pub fn cross_view_loss(
    teacher: &[Vec<f32>],
    student: &[Vec<f32>],
    center: &[f32],
    distill: &Distill,
    pairs: &[(usize, usize)],
) -> f64 {
    let terms: Vec<f64> = pairs
        .iter()
        .map(|&(t, s)| {
            let rows = distill_rows(&teacher[t], &student[s], center, distill);
            rows.iter().sum::<f64>() / rows.len() as f64
        })
        .collect();
    terms.iter().sum::<f64>() / terms.len() as f64
}

/// The masked patch-token loss (iBOT's and SMIT's) by hand: `teacher` and `student`
/// `[images, tokens, k]`, `mask` `[images, tokens]` (1 = masked); per image the mean
/// [`distill_rows`] over its masked tokens (0 when none is), then the mean over images.
pub fn masked_patch_loss(
    teacher: &[f32],
    student: &[f32],
    mask: &[f32],
    center: &[f32],
    distill: &Distill,
    tokens: usize,
) -> f64 {
    let rows = distill_rows(teacher, student, center, distill);
    assert_eq!(rows.len(), mask.len(), "one mask value per token");
    let per_image: Vec<f64> = rows
        .chunks(tokens)
        .zip(mask.chunks(tokens))
        .map(|(ce, m)| {
            let masked = m.iter().filter(|&&m| m == 1.0).count();
            let sum: f64 = ce
                .iter()
                .zip(m)
                .filter(|(_, m)| **m == 1.0)
                .map(|(c, _)| c)
                .sum();
            if masked == 0 {
                0.0
            } else {
                sum / masked as f64
            }
        })
        .collect();
    per_image.iter().sum::<f64>() / per_image.len() as f64
}

/// A centre after one batch, by hand: `momentum · center + (1 − momentum) · mean`, the
/// mean over every row of every block of `outputs` (`[n, k]` row-major each).
pub fn center_update(center: &[f32], outputs: &[Vec<f32>], momentum: f64) -> Vec<f32> {
    let k = center.len();
    let rows: Vec<&[f32]> = outputs.iter().flat_map(|o| o.chunks(k)).collect();
    (0..k)
        .map(|j| {
            let mean = rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / rows.len() as f64;
            (momentum * f64::from(center[j]) + (1.0 - momentum) * mean) as f32
        })
        .collect()
}

/// Every float parameter's values by module path (`teacher_head.mlp.0.weight`).
pub fn parameters<M: Module>(module: &M) -> BTreeMap<String, Vec<f32>> {
    struct Collect {
        path: Vec<String>,
        out: BTreeMap<String, Vec<f32>>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.insert(self.path.join("."), values(param.val()));
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    module.visit(&mut collect);
    collect.out
}

/// Whether module path `path` lies under `prefix`.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// `net` after one plain SGD step at rate `lr` on `grads`: the student moved as an
/// optimiser moves it before the loop calls `after_step`.
pub fn sgd_step<M: Module>(net: M, grads: GradientsParams, lr: f64) -> M {
    burn::optim::SgdConfig::new().init().step(lr, net, grads)
}

/// Asserts one EMA step of a teacher. `before` holds the network's parameters before the
/// optimiser step, `stepped` after it, `after` after `after_step(.., momentum)`; for each
/// `(teacher, student)` pair of module paths: the optimiser left every teacher parameter
/// alone and `after_step` every student one; each teacher parameter has a student
/// counterpart and became `momentum · before + (1 − momentum) · stepped student` (to 1e-6
/// of its largest value); and the optimiser moved the student enough that an EMA towards
/// the student before the step (or with the weights swapped) would be told apart.
pub fn assert_ema_step(
    before: &BTreeMap<String, Vec<f32>>,
    stepped: &BTreeMap<String, Vec<f32>>,
    after: &BTreeMap<String, Vec<f32>>,
    pairs: &[(&str, &str)],
    momentum: f64,
) {
    let mut largest_move = 0.0f64;
    for &(teacher, student) in pairs {
        let teacher_paths: Vec<&String> = before.keys().filter(|p| under(p, teacher)).collect();
        let student_count = before.keys().filter(|p| under(p, student)).count();
        assert!(!teacher_paths.is_empty(), "no parameter under {teacher}");
        assert_eq!(
            teacher_paths.len(),
            student_count,
            "{teacher} against {student}"
        );
        for path in teacher_paths {
            let twin = format!("{student}{}", &path[teacher.len()..]);
            let (t0, s0) = (&before[path], &before[&twin]);
            assert_eq!(
                &stepped[path], t0,
                "the optimiser moved the teacher's {path}"
            );
            let s1 = &stepped[&twin];
            assert_eq!(&after[&twin], s1, "after_step moved the student's {twin}");
            let want: Vec<f32> = t0
                .iter()
                .zip(s1)
                .map(|(&t, &s)| (momentum * f64::from(t) + (1.0 - momentum) * f64::from(s)) as f32)
                .collect();
            assert_all_close(&format!("EMA of {path}"), &after[path], &want, 1e-6);
            let scale = want.iter().fold(1e-6f64, |m, w| m.max(f64::from(w.abs())));
            for (&a, &b) in s0.iter().zip(s1) {
                let moved = (1.0 - momentum) * (f64::from(a) - f64::from(b)).abs() / scale;
                assert!(moved.is_finite(), "{twin}: {a} -> {b}");
                largest_move = largest_move.max(moved);
            }
        }
    }
    assert!(
        largest_move > 1e-4,
        "the optimiser step moved the student too little ({largest_move:e} of a parameter's \
         scale) to tell the student after the step from the one before it"
    );
}

/// Asserts that a backward pass reached the student and nothing else: every parameter
/// under a `frozen` module path (the teacher, the centres) neither requires a gradient nor
/// got one; every other parameter lies under a `trained` path, requires a gradient and
/// got a finite one; and under each `trained` path the gradients are not all zero.
pub fn assert_only_the_student_learns(report: &[ParamGrad], frozen: &[&str], trained: &[&str]) {
    for prefix in frozen.iter().chain(trained) {
        assert!(
            report.iter().any(|p| under(&p.path, prefix)),
            "no parameter under {prefix}"
        );
    }
    for p in report {
        if frozen.iter().any(|f| under(&p.path, f)) {
            assert!(!p.requires_grad, "{} requires a gradient", p.path);
            assert!(p.grad_norm.is_none(), "{} got a gradient", p.path);
        } else {
            assert!(
                trained.iter().any(|t| under(&p.path, t)),
                "{} is neither",
                p.path
            );
            assert!(p.requires_grad, "{} does not require a gradient", p.path);
            let norm = p
                .grad_norm
                .unwrap_or_else(|| panic!("{} got no gradient", p.path));
            assert!(norm.is_finite(), "{}: gradient norm {norm}", p.path);
        }
    }
    for prefix in trained {
        let total: f64 = report
            .iter()
            .filter(|p| under(&p.path, prefix))
            .filter_map(|p| p.grad_norm)
            .map(|n| n * n)
            .sum();
        assert!(total > 0.0, "the gradients under {prefix} are all zero");
    }
}

/// Masks of two 32³ views that differ between the views and between the volumes, in
/// whole stage-3 tokens (16-voxel blocks), 0 to 4 of a volume's 8: view 0 masks half of
/// volume 0 (z < 16 voxels) and a quarter of volume 1 (y and x < 16); view 1 nothing of
/// volume 0 and half of volume 1 (x ≥ 16).
pub fn uneven_masks() -> Vec<Array4<bool>> {
    vec![
        patch_mask(|b, [z, y, x]| if b == 0 { z < 8 } else { y < 8 && x < 8 }),
        patch_mask(|b, [_, _, x]| b == 1 && x >= 8),
    ]
}

/// `batch` with its masked views changed only under masked patches (`under_masks`) or
/// only under visible ones: `cos` of the voxel's coordinates added there.
pub fn perturbed(batch: &ViewBatch, under_masks: bool) -> ViewBatch {
    let mut out = batch.clone();
    let mut changed = 0;
    for (view, mask) in out.views.iter_mut().zip(&batch.masks) {
        let patch = view.shape()[2] / mask.shape()[1];
        for ((b, _, z, y, x), value) in view.indexed_iter_mut() {
            if mask[[b, z / patch, y / patch, x / patch]] == under_masks {
                *value += ((z + 2 * y + 3 * x) as f32 * 0.3).cos();
                changed += 1;
            }
        }
    }
    assert!(changed > 0, "no voxel to change");
    out
}

/// `encoder` blind to its input: the patch embedding zeroed, so that every patch embeds
/// to 0 whatever its voxels (a masked patch still gets the mask token).
pub fn content_blind(mut encoder: SwinTransformer) -> SwinTransformer {
    encoder.patch_embed = zeroed(encoder.patch_embed);
    encoder
}

/// The largest difference between `a` and `b`, element by element; NaN or infinity
/// fails.
pub fn largest_gap(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths");
    a.iter().zip(b).fold(0.0, |largest, (&a, &b)| {
        assert!(a.is_finite() && b.is_finite(), "{a} against {b}");
        let gap = (f64::from(a) - f64::from(b)).abs();
        if gap > largest { gap } else { largest }
    })
}

/// The named component of a step's loss (weights applied), which must be finite.
pub fn component<A>(step: &crate::pretext::StepLoss<A>, name: &str) -> f64 {
    let (_, value) = step
        .components
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no component {name}"));
    finite_scalar(name, value.clone())
}

/// [`masked_patch_loss`] with one mean over every masked token of every image instead of
/// a mean per image: what a loss normalised over the batch's masked tokens would give.
pub fn pooled_masked_patch_loss(
    teacher: &[f32],
    student: &[f32],
    mask: &[f32],
    center: &[f32],
    distill: &Distill,
) -> f64 {
    let rows = distill_rows(teacher, student, center, distill);
    let masked = mask.iter().filter(|&&m| m == 1.0).count();
    let sum: f64 = rows
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m == 1.0)
        .map(|(c, _)| c)
        .sum();
    sum / masked as f64
}

/// Step 1 of a method with two centres (iBOT, SMIT) in the loop's order: loss and
/// backward, an SGD step, `after_step(.., momentum)`. Asserts that the teacher moved as
/// [`assert_ema_step`] says for the `(teacher, student)` module pairs, and that the
/// centres (`centers` reads them) are the updates step 1's loss computed. Returns the
/// network after the step and those centres.
pub fn first_step_of_two_centres<N>(
    net: N,
    batch: &ViewBatch,
    pairs: &[(&str, &str)],
    momentum: f64,
    centers: impl Fn(&N) -> [Vec<f32>; 2],
) -> (N, [Vec<f32>; 2])
where
    N: crate::pretext::Pretext<Aux = [Tensor<1>; 2]>,
{
    let before = parameters(&net);
    let step = net.loss(batch, &epoch_start(0)).unwrap();
    let grads = GradientsParams::from_grads(step.total.backward(), &net);
    let net = sgd_step(net, grads, 0.1);
    let stepped = parameters(&net);
    let updates = step.aux.clone().map(values);
    let net = net.after_step(vec![step.aux], momentum);
    assert_ema_step(&before, &stepped, &parameters(&net), pairs, momentum);
    let current = centers(&net);
    assert_eq!(
        current, updates,
        "the centres after step 1 are step 1's updates"
    );
    (net, current)
}

/// `head` applied by hand to the rows of several crops at once (one batch, as the
/// methods' `MultiCropWrapper` semantics ask): the logits of each crop, in order.
pub fn rows_through(head: &crate::heads::DinoHead, crops: Vec<Tensor<2>>) -> Vec<Vec<f32>> {
    let rows: Vec<usize> = crops.iter().map(|c| c.dims()[0]).collect();
    let all = values(head.forward(Tensor::cat(crops, 0)));
    let k = all.len() / rows.iter().sum::<usize>();
    let mut start = 0;
    rows.iter()
        .map(|&n| {
            let crop = all[start * k..(start + n) * k].to_vec();
            start += n;
            crop
        })
        .collect()
}

/// [`rows_through`] for token crops `[B, N, C]`: every token of every crop in one
/// batch; the logits of all crops in order, flattened.
pub fn tokens_through(head: &crate::heads::DinoHead, crops: Vec<Tensor<3>>) -> Vec<f32> {
    rows_through(head, crate::heads::token_rows(crops)).concat()
}
