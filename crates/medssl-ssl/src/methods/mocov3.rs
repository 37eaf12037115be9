//! MoCo v3 (Chen et al., ICCV 2021) on the 3-D Swin encoder: two random resized crops
//! of one region of each volume; an online encoder, projector and predictor; a momentum
//! encoder and projector (EMA, momentum rising from 0.99 to 1 on a cosine); the
//! symmetric InfoNCE `ctr(q1, k2) + ctr(q2, k1)` scaled by `2T`, the other volumes of
//! the batch as negatives. The heads are `moco/builder.py`'s `_build_mlp`: linear layers
//! without bias, batch norm and ReLU after each hidden layer, and a batch norm without
//! affine parameters after the projector's last layer (none after the predictor's).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use medssl_data::Pipeline;
use medssl_data::views::{ViewBatch, ViewPlan};
use medssl_model::SwinUnetrConfig;
use medssl_model::swin::SwinTransformer;
use serde::{Deserialize, Serialize};

use super::checks;
use super::simclr::{
    check_region, check_scale, contrastive_scale, global_token, preset_region, two_crops,
};
use crate::error::Result;
use crate::heads::{Mlp, MlpBias, MlpConfig};
use crate::losses::contrastive::mocov3;
use crate::monitors::embedding_spread;
use crate::pretext::{Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss};
use crate::teacher::{ema, frozen_copy};

/// MoCo v3's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MocoV3Settings {
    /// Hidden width of the projector and predictor MLPs.
    pub hidden_dim: usize,
    /// Output width (where the loss is computed).
    pub out_dim: usize,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// Side of the region both views are cut from, in voxels, placed at random in the
    /// volume: 48³ in `tiny` (views of 32³), 128³ in `paper` (views of 96³). Absent: the
    /// whole volume, as torchvision crops the whole image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<[usize; 3]>,
    /// Range of the fraction of the region's volume each view covers before it is
    /// resized to the crop: `[0.08, 1]` in `paper`, MoCo v3's
    /// `RandomResizedCrop(scale=(crop_min, 1))` with its default `--crop-min 0.08`;
    /// `[0.4, 1]` in `tiny` (`simclr::contrastive_scale`).
    pub scale: [f64; 2],
}

/// The MoCo v3 method.
pub struct MocoV3Method;

/// MoCo v3's network.
#[derive(Module, Debug)]
pub struct MocoV3 {
    pub swin_vit: SwinTransformer,
    pub projector: Mlp,
    pub predictor: Mlp,
    /// The momentum encoder and projector (EMA, no gradients).
    pub momentum_encoder: SwinTransformer,
    pub momentum_projector: Mlp,
    temperature: f64,
}

impl Method for MocoV3Method {
    type Net = MocoV3;
    type Settings = MocoV3Settings;

    const INFO: MethodInfo = MethodInfo {
        name: "mocov3",
        family: Family::Contrastive,
        description: "symmetric InfoNCE between an online encoder with predictor and a \
                      momentum encoder (Chen et al. 2021)",
    };

    /// The paper's heads (3-layer projector and 2-layer predictor, hidden 4096, output
    /// 256, batch norms, no biases) in `paper`, hidden 256 and output 64 in `tiny`;
    /// T = 0.2; both views cut from one region (128³ in `paper`, 48³ in `tiny`) at 8–100%
    /// of its volume in `paper` (`--crop-min 0.08`), 40–100% in `tiny`.
    fn settings(preset: Preset) -> MocoV3Settings {
        let tiny = preset == Preset::Tiny;
        MocoV3Settings {
            hidden_dim: if tiny { 256 } else { 4096 },
            out_dim: if tiny { 64 } else { 256 },
            temperature: 0.2,
            region: Some(preset_region(preset)),
            scale: contrastive_scale(preset),
        }
    }

    /// AdamW with weight decay 0.1 (the paper's ViT recipe), momentum 0.99 rising to 1.
    fn recipe(_preset: Preset) -> Recipe {
        Recipe {
            weight_decay: (0.1, 0.1),
            teacher_momentum: 0.99,
            ..Recipe::adamw(1.5e-4)
        }
    }

    fn check(
        settings: &MocoV3Settings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
    ) -> Result<()> {
        checks::positive("temperature", settings.temperature)?;
        check_region(settings.region, crop)?;
        check_scale("scale", settings.scale)?;
        checks::widths(&[
            ("hidden_dim", settings.hidden_dim),
            ("out_dim", settings.out_dim),
        ])
    }

    fn view_plan(
        settings: &MocoV3Settings,
        _encoder: &SwinUnetrConfig,
        crop: [usize; 3],
        augment: Pipeline,
        local_augment: Pipeline,
    ) -> Result<ViewPlan> {
        Ok(two_crops(
            settings.region,
            settings.scale,
            crop,
            augment,
            local_augment,
        ))
    }

    /// `_build_mlp(3, ...)` as the projector and `_build_mlp(2, ..., last_bn=False)` as
    /// the predictor: every linear layer without bias.
    fn build(settings: &MocoV3Settings, encoder: &SwinUnetrConfig, device: &Device) -> MocoV3 {
        let (hidden, out) = (settings.hidden_dim, settings.out_dim);
        let swin_vit = SwinTransformer::new(encoder, device);
        let projector = MlpConfig {
            dims: vec![encoder.feature_size << 4, hidden, hidden, out],
            batch_norm: true,
            output_norm: true,
        }
        .init_with_bias(MlpBias::Never, device);
        MocoV3 {
            momentum_encoder: frozen_copy(&swin_vit),
            momentum_projector: frozen_copy(&projector),
            swin_vit,
            projector,
            predictor: MlpConfig {
                dims: vec![out, hidden, out],
                batch_norm: true,
                output_norm: false,
            }
            .init_with_bias(MlpBias::Never, device),
            temperature: settings.temperature,
        }
    }
}

impl Pretext for MocoV3 {
    type Aux = ();

    fn loss(&self, batch: &ViewBatch, _context: &StepContext) -> Result<StepLoss<()>> {
        let device = self.swin_vit.patch_embed.proj.weight.val().device();
        let h1 = global_token(&self.swin_vit, batch, 0, &device)?;
        let h2 = global_token(&self.swin_vit, batch, 1, &device)?;
        let spread = embedding_spread(h1.clone())?;
        let query = |h: Tensor<2>| self.predictor.forward(self.projector.forward(h));
        let key = |v: usize| -> Result<Tensor<2>> {
            let h = global_token(&self.momentum_encoder, batch, v, &device)?;
            Ok(self.momentum_projector.forward(h).detach())
        };
        let loss = mocov3(query(h1), query(h2), key(0)?, key(1)?, self.temperature);
        Ok(StepLoss::contrastive("contrastive", loss, spread))
    }

    fn after_step(self, _aux: Vec<()>, momentum: f64) -> MocoV3 {
        MocoV3 {
            momentum_encoder: ema(self.momentum_encoder, &self.swin_vit, momentum),
            momentum_projector: ema(self.momentum_projector, &self.projector, momentum),
            ..self
        }
    }

    fn encoder(&self) -> &SwinTransformer {
        &self.swin_vit
    }

    fn has_teacher(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::test_support::{
        assert_apart, assert_close, assert_ema_step, assert_near, assert_only_the_student_learns,
        assert_two_views_of_one_region, assert_views_share_one_region, encoder, epoch_start,
        finite_scalar, param_grads, parameters, pooled_last_stage, seeded, smooth_batch,
        view_tensor,
    };
    use burn::module::{ModuleVisitor, Param};
    use burn::optim::{AdamWConfig, GradientsParams};
    use std::collections::BTreeMap;

    /// `_build_mlp`: no linear layer has a bias (the predictor's last one included); the
    /// projector's hidden norms are affine, its output norm is not; the predictor has
    /// one affine norm after its hidden layer and none after its output.
    #[test]
    fn heads_are_moco_v3s_bias_free_mlps() {
        let device = Device::flex();
        let encoder = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        let net = MocoV3Method::build(&MocoV3Method::settings(Preset::Tiny), &encoder, &device);
        for (name, mlp, layers) in [
            ("projector", &net.projector, 3),
            ("momentum projector", &net.momentum_projector, 3),
            ("predictor", &net.predictor, 2),
        ] {
            assert_eq!(mlp.layers().len(), layers, "{name}");
            assert!(
                mlp.layers().iter().all(|l| l.bias.is_none()),
                "{name} has a bias"
            );
        }
        let affine = |mlp: &Mlp| -> Vec<Option<bool>> {
            mlp.norms()
                .iter()
                .map(|n| n.as_ref().map(|n| n.affine()))
                .collect()
        };
        assert_eq!(
            affine(&net.projector),
            [Some(true), Some(true), Some(false)]
        );
        assert_eq!(affine(&net.predictor), [Some(true), None]);
        // Parameters: weights, and γ and β of the affine norms only.
        let (fs, hidden, out) = (12 << 4, 256, 64);
        let projector = fs * hidden + hidden * hidden + hidden * out + 4 * hidden;
        let predictor = out * hidden + hidden * out + 2 * hidden;
        assert_eq!(net.projector.num_params(), projector);
        assert_eq!(net.predictor.num_params(), predictor);
    }

    /// Two views of one region at `--crop-min 0.08` in `paper` (0.4 in `tiny`), the
    /// region following the preset.
    #[test]
    fn views_are_resized_crops_of_one_region() {
        assert_two_views_of_one_region::<MocoV3Method>([0.4, 1.0], [0.08, 1.0]);
        let encoder = encoder();
        let bad = MocoV3Settings {
            scale: [0.3, 0.1],
            ..MocoV3Method::settings(Preset::Tiny)
        };
        let err = MocoV3Method::check(&bad, &encoder, [32; 3]).unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
        let bad = MocoV3Settings {
            region: Some([16; 3]),
            ..MocoV3Method::settings(Preset::Tiny)
        };
        let err = MocoV3Method::check(&bad, &encoder, [32; 3]).unwrap_err();
        assert!(err.to_string().contains("region"), "{err}");
    }

    /// The query and key views are random resized crops of one 48³ region of the volume,
    /// not crops at independent positions of the whole volume (the old bug).
    #[test]
    fn the_views_of_a_pair_come_from_one_region() {
        assert_views_share_one_region::<MocoV3Method>();
    }

    /// The tiny net with a momentum encoder and projector unlike the online ones (as
    /// they are after some training), initialised from fixed seeds.
    fn net_with_distinct_momentum_branch(device: &Device) -> MocoV3 {
        let settings = MocoV3Method::settings(Preset::Tiny);
        let net = seeded::<MocoV3Method>(&settings, 1, device);
        let other = seeded::<MocoV3Method>(&settings, 2, device);
        MocoV3 {
            momentum_encoder: frozen_copy(&other.swin_vit),
            momentum_projector: frozen_copy(&other.projector),
            ..net
        }
    }

    /// The queries are the online encoder, projector and predictor's outputs, the keys
    /// the momentum encoder and projector's (no predictor), and the loss pairs each
    /// view's query with the other view's key, `ctr(q1, k2) + ctr(q2, k1)`: the method's
    /// loss equals the one recomputed here from those branches, and differs from what
    /// keys of the query's own view, keys from the online branch or queries without the
    /// predictor would give.
    #[test]
    fn queries_come_from_the_online_branch_and_keys_from_the_momentum_branch() {
        let device = Device::flex();
        let net = net_with_distinct_momentum_branch(&device);
        let t = MocoV3Method::settings(Preset::Tiny).temperature;
        let batch = smooth_batch(2, 2, 32);
        let out = net.loss(&batch, &epoch_start(0)).unwrap();
        let loss = finite_scalar("loss", out.total);

        let x = |v| view_tensor(&batch, v, &device);
        let h = [0, 1].map(|v| pooled_last_stage(&net.swin_vit, x(v)));
        let hm = [0, 1].map(|v| pooled_last_stage(&net.momentum_encoder, x(v)));
        let z = h.map(|h| net.projector.forward(h));
        let q = z.clone().map(|z| net.predictor.forward(z));
        let k = hm.map(|h| net.momentum_projector.forward(h));
        let ctr = |q: &[Tensor<2>; 2], k: &[Tensor<2>; 2]| {
            let value = mocov3(q[0].clone(), q[1].clone(), k[0].clone(), k[1].clone(), t);
            finite_scalar("by hand", value)
        };
        let want = ctr(&q, &k);
        assert_close("loss", loss, want, 1e-5);
        let online_keys = z.clone();
        for (wrong, value) in [
            (
                "keys of the own view",
                ctr(&q, &[k[1].clone(), k[0].clone()]),
            ),
            ("keys from the online branch", ctr(&q, &online_keys)),
            ("queries without the predictor", ctr(&z, &k)),
        ] {
            assert_apart(wrong, want, value, 1e-3);
        }
    }

    /// A copy of `grads` for `module`'s parameters (an optimiser step consumes them).
    fn copy_grads<M: Module>(module: &M, grads: &GradientsParams) -> GradientsParams {
        struct Copy<'a>(&'a GradientsParams, GradientsParams);
        impl ModuleVisitor for Copy<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(grad) = self.0.get::<D>(param.id) {
                    self.1.register(param.id, grad);
                }
            }
        }
        let mut copy = Copy(grads, GradientsParams::new());
        module.visit(&mut copy);
        copy.1
    }

    /// The trainer's step (`trainer.rs`: loss, backward, optimiser step, then
    /// `after_step` with the step's momentum) on the autodiff device, twice:
    /// - no gradient reaches the momentum encoder or projector (their parameters
    ///   require none and get none), while every online parameter gets a finite one,
    ///   not all zero in the encoder, the projector and the predictor;
    /// - each optimiser step leaves the momentum branch as it was (the step's keys came
    ///   from it, before its update) and each `after_step` leaves the online branch;
    /// - `after_step` moves every momentum parameter towards the online one as the step
    ///   left it, `p ← m·p + (1 − m)·q` with m = 0.9 (`assert_ema_step`);
    /// - by hand over both steps, on the first values of the patch embedding's and the
    ///   projector's first weights: online q0 → q1 → q2 and momentum p0 = q0 give
    ///   p2 = m²·p0 + m(1 − m)·q1 + (1 − m)·q2, where blending the online values from
    ///   before each step, or blending the other way round, is off by at least
    ///   (1 − m)·|q1 − q0| ≥ 5e-4.
    ///
    /// The second step reuses the first step's gradients: the update rule does not
    /// depend on where they came from, and one backward pass keeps the test fast.
    #[test]
    fn the_momentum_branch_gets_no_gradient_and_follows_the_online_one_after_each_step() {
        let device = Device::flex().autodiff();
        let settings = MocoV3Method::settings(Preset::Tiny);
        let net = seeded::<MocoV3Method>(&settings, 3, &device);
        let batch = smooth_batch(2, 2, 32);
        let loss = net.loss(&batch, &epoch_start(0)).unwrap().total;
        finite_scalar("loss", loss.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        assert_only_the_student_learns(
            &param_grads(&net, &grads),
            &["momentum_encoder", "momentum_projector"],
            &["swin_vit", "projector", "predictor"],
        );

        let (m, lr) = (0.9, 1e-2);
        let pairs = [
            ("momentum_encoder", "swin_vit"),
            ("momentum_projector", "projector"),
        ];
        let mut optimizer = AdamWConfig::new().init();
        let second = copy_grads(&net, &grads);
        let p0 = parameters(&net);
        let net = optimizer.step(lr, net, grads);
        let q1 = parameters(&net);
        let net = net.after_step(vec![()], m);
        let p1 = parameters(&net);
        assert_ema_step(&p0, &q1, &p1, &pairs, m);
        let net = optimizer.step(lr, net, second);
        let q2 = parameters(&net);
        let net = net.after_step(vec![()], m);
        let p2 = parameters(&net);
        assert_ema_step(&p1, &q2, &p2, &pairs, m);

        for (online, momentum) in [
            (
                "swin_vit.patch_embed.proj.weight",
                "momentum_encoder.patch_embed.proj.weight",
            ),
            (
                "projector.layers.0.weight",
                "momentum_projector.layers.0.weight",
            ),
        ] {
            assert_eq!(
                p0[online], p0[momentum],
                "the momentum branch starts as a copy"
            );
            for i in 0..4 {
                let value =
                    |params: &BTreeMap<String, Vec<f32>>, path: &str| f64::from(params[path][i]);
                let (start, after1, after2) =
                    (value(&p0, online), value(&q1, online), value(&q2, online));
                assert!(
                    (after1 - start).abs() >= 5e-3,
                    "{online}[{i}]: the step moved it too little to tell ({start} → {after1})"
                );
                let closed = m * m * start + m * (1.0 - m) * after1 + (1.0 - m) * after2;
                assert_near(
                    &format!("{momentum}[{i}] after two steps"),
                    value(&p2, momentum),
                    closed,
                    1e-6,
                );
            }
        }
    }
}
