//! Feature reuse: how much of an encoder survives fine-tuning, measured as the CKA
//! between the encoder stage outputs of two networks on one fixed set of probe patches.
//!
//! The probe is cut from the validation cases of a fine-tune run's split (the run is
//! opened by `medssl-train`), after that run's preprocessing: `model.roi`-sized patches
//! on a regular grid covering each volume (a side shorter than the roi is zero-padded,
//! as sliding-window inference pads), taken round-robin over the cases so that a small
//! probe still spans every case. When the validation cases give fewer patches than asked
//! (small tasks of small volumes), the test cases follow, then the training cases (no
//! label is read; the cases used are recorded). No random draw is involved, so every
//! comparison of a study sees the same patches.
//!
//! Each stage output `[C, D, H, W]` of a patch is flattened, channel-major, to one row
//! of `C·D·H·W` features: the spatial layout is kept, since pooling would hide features
//! that moved. Two estimates per stage: linear CKA over all patches (Kornblith et al.
//! 2019, Gram form, biased HSIC), which holds every patch's features, and the unbiased
//! minibatch CKA (Nguyen, Raghu & Kornblith 2021), which holds one batch. The first is
//! skipped, not approximated, when the features would pass [`FULL_SET_LIMIT_BYTES`].

use burn::tensor::Device;
use medssl_data::dataset::Task;
use medssl_model::arrays::{to_array, to_tensor};
use medssl_model::{ModelError, SwinUnetr};
use ndarray::{Array2, Array4, Array5, Axis, s};
use serde::{Deserialize, Serialize};

use crate::cka::{Estimator, MinibatchCka, cka};
use crate::error::{EvalError, Result};
use crate::evaluate::load_case;
use crate::predictor::Predictor;

/// Names of the five encoder outputs, shallow to deep (MONAI's `hidden_states_out`).
pub const STAGES: [&str; 5] = ["patch_embed", "stage1", "stage2", "stage3", "stage4"];

/// The most feature memory (both networks, all stages) the all-patch linear CKA may hold.
pub const FULL_SET_LIMIT_BYTES: usize = 4 << 30;

/// A fixed set of preprocessed patches both networks are run on.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The cases the patches come from.
    pub cases: Vec<String>,
    /// `[C, D, H, W]` patches of the run's `model.roi`.
    pub patches: Vec<Array4<f32>>,
}

impl Probe {
    /// Up to `count` patches of the cases `parts` of `task`, each case prepared by
    /// `predictor` and cut into patches of its `window().roi`. The parts are taken in
    /// order (a run's validation, test, then training cases), a part only while those
    /// before it gave fewer than `count` patches; the probe's cases are every case of
    /// the parts taken (none when every part is empty).
    pub fn cut(
        predictor: &Predictor,
        task: &Task,
        parts: &[&[String]],
        count: usize,
    ) -> Result<Probe> {
        let mut probe = Probe {
            cases: Vec::new(),
            patches: Vec::with_capacity(count),
        };
        for part in parts {
            if probe.patches.len() < count && !part.is_empty() {
                let per_case = part
                    .iter()
                    .map(|id| case_patches(task, predictor, id))
                    .collect::<Result<Vec<_>>>()?;
                probe.cases.extend(part.iter().cloned());
                probe.take_round_robin(&per_case, count);
            }
        }
        Ok(probe)
    }

    /// Adds patches of `per_case`, one case after the other, until there are `count`.
    fn take_round_robin(&mut self, per_case: &[Vec<Array4<f32>>], count: usize) {
        let most = per_case.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..most {
            for case in per_case {
                if self.patches.len() == count {
                    return;
                }
                if let Some(patch) = case.get(k) {
                    self.patches.push(patch.clone());
                }
            }
        }
    }
}

/// The grid patches of case `id` after `predictor`'s preprocessing.
fn case_patches(task: &Task, predictor: &Predictor, id: &str) -> Result<Vec<Array4<f32>>> {
    let sample = load_case(task, id)?;
    let prepared = predictor.prepare(id, &sample.image)?;
    Ok(grid_patches(prepared.data(), predictor.window().roi))
}

/// The `roi` patches of a regular grid covering `volume` `[C, D, H, W]`: per axis
/// `ceil(size / roi)` starts spread evenly from 0 to `size - roi`, raster order.
fn grid_patches(volume: &Array4<f32>, roi: [usize; 3]) -> Vec<Array4<f32>> {
    let shape = volume.shape();
    let starts: Vec<Vec<usize>> = (0..3)
        .map(|a| {
            let (size, r) = (shape[a + 1], roi[a]);
            let n = size.div_ceil(r).max(1);
            if n == 1 {
                return vec![0];
            }
            (0..n)
                .map(|k| ((k * (size - r)) as f64 / (n - 1) as f64).round() as usize)
                .collect()
        })
        .collect();
    let mut patches = Vec::new();
    for &i in &starts[0] {
        for &j in &starts[1] {
            for &k in &starts[2] {
                let mut patch = Array4::<f32>::zeros((shape[0], roi[0], roi[1], roi[2]));
                let ends = [
                    (i + roi[0]).min(shape[1]),
                    (j + roi[1]).min(shape[2]),
                    (k + roi[2]).min(shape[3]),
                ];
                patch
                    .slice_mut(s![.., ..ends[0] - i, ..ends[1] - j, ..ends[2] - k])
                    .assign(&volume.slice(s![.., i..ends[0], j..ends[1], k..ends[2]]));
                patches.push(patch);
            }
        }
    }
    patches
}

/// The similarity of one encoder stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSimilarity {
    /// The stage's name ([`STAGES`]).
    pub stage: String,
    /// Features per patch (`C·D·H·W`).
    pub features: usize,
    /// Linear CKA over all patches (`None` past [`FULL_SET_LIMIT_BYTES`]).
    pub linear_cka: Option<f64>,
    /// Unbiased minibatch CKA.
    pub minibatch_cka: f64,
}

/// The CKA of every encoder stage for each `(i, j)` of `pairs` of `networks`, on
/// `probe`, in minibatches of about `batch` patches (the probe is split into equal-sized
/// batches of at least 4, so no patch is dropped). Each network runs once per batch,
/// however many pairs it is in.
pub fn stage_similarity(
    networks: &[&SwinUnetr],
    pairs: &[(usize, usize)],
    probe: &Probe,
    batch: usize,
    device: &Device,
) -> Result<Vec<Vec<StageSimilarity>>> {
    let n = probe.patches.len();
    if n < 4 {
        return Err(EvalError::TooFewPatches { patches: n });
    }
    let batches = n.div_ceil(batch.max(4)).min(n / 4);
    let mut minibatch = vec![vec![MinibatchCka::new(); STAGES.len()]; pairs.len()];
    // rows[network][stage]: every patch's features, for the all-patch estimate.
    let mut rows: Vec<Vec<Vec<Vec<f32>>>> = vec![vec![Vec::new(); STAGES.len()]; networks.len()];
    let mut features = [0; STAGES.len()];
    let mut held = 0usize;
    let mut full_set = true;
    let mut start = 0;
    for index in 0..batches {
        let size = n / batches + usize::from(index < n % batches);
        let patches = &probe.patches[start..start + size];
        start += size;
        let outputs = networks
            .iter()
            .map(|network| stage_features(network, patches, device))
            .collect::<Result<Vec<_>>>()?;
        for (pair, &(i, j)) in pairs.iter().enumerate() {
            for stage in 0..STAGES.len() {
                minibatch[pair][stage]
                    .add(outputs[i][stage].view(), outputs[j][stage].view())
                    .map_err(|source| EvalError::Cka {
                        stage: STAGES[stage],
                        source,
                    })?;
            }
        }
        for (network, stages) in outputs.into_iter().enumerate() {
            for (stage, x) in stages.into_iter().enumerate() {
                features[stage] = x.ncols();
                held += x.len() * size_of::<f32>();
                full_set &= held <= FULL_SET_LIMIT_BYTES;
                if full_set {
                    rows[network][stage].extend(x.rows().into_iter().map(|r| r.to_vec()));
                }
            }
        }
        if !full_set {
            rows = vec![vec![Vec::new(); STAGES.len()]; networks.len()];
        }
    }
    let grams: Vec<Vec<Array2<f64>>> = rows
        .iter()
        .map(|stages| stages.iter().map(|r| gram(r)).collect())
        .collect();
    pairs
        .iter()
        .zip(&minibatch)
        .map(|(&(i, j), minibatch)| {
            STAGES
                .iter()
                .enumerate()
                .map(|(stage, &name)| {
                    let fail = |source| EvalError::Cka {
                        stage: name,
                        source,
                    };
                    let linear_cka = if full_set {
                        let (k, l) = (&grams[i][stage], &grams[j][stage]);
                        Some(cka(k.view(), l.view(), Estimator::Biased).map_err(fail)?)
                    } else {
                        None
                    };
                    Ok(StageSimilarity {
                        stage: name.to_string(),
                        features: features[stage],
                        linear_cka,
                        minibatch_cka: minibatch[stage].finish().map_err(fail)?,
                    })
                })
                .collect()
        })
        .collect()
}

/// The five stage outputs of `network` for `patches`, one row per patch.
fn stage_features(
    network: &SwinUnetr,
    patches: &[Array4<f32>],
    device: &Device,
) -> Result<Vec<Array2<f32>>> {
    let views: Vec<_> = patches.iter().map(|p| p.view()).collect();
    let batch: Array5<f32> = ndarray::stack(Axis(0), &views).map_err(ModelError::from)?;
    let outputs = network
        .encode(to_tensor(batch, device))
        .map_err(ModelError::from)?;
    outputs
        .into_iter()
        .map(|tensor| {
            let array = to_array(tensor)?;
            let rows = array.shape()[0];
            let columns = array.len() / rows;
            Ok(array
                .into_shape_with_order((rows, columns))
                .map_err(ModelError::from)?)
        })
        .collect()
}

/// The linear Gram matrix of `rows` in f64.
fn gram(rows: &[Vec<f32>]) -> Array2<f64> {
    let n = rows.len();
    let mut gram = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = rows[i]
                .iter()
                .zip(&rows[j])
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            gram[[i, j]] = dot;
            gram[[j, i]] = dot;
        }
    }
    gram
}

#[cfg(test)]
mod tests {
    use crate::cka::gram_linear;
    use medssl_model::SwinUnetrConfig;

    use super::*;

    #[test]
    fn grid_patches_cover_the_volume_and_pad_short_sides() {
        let volume = Array4::from_shape_fn((1, 40, 32, 20), |(_, i, j, k)| {
            (i * 10_000 + j * 100 + k) as f32
        });
        let patches = grid_patches(&volume, [32, 32, 32]);
        // 40 needs two starts (0 and 8), 32 one, 20 one (zero-padded to 32).
        assert_eq!(patches.len(), 2);
        assert_eq!(patches[0][[0, 0, 0, 0]], 0.0);
        assert_eq!(patches[1][[0, 0, 0, 0]], 80_000.0);
        assert_eq!(patches[1][[0, 31, 31, 19]], 393_119.0);
        assert_eq!(patches[1][[0, 31, 31, 20]], 0.0);
    }

    fn network(seed: u64, device: &Device) -> SwinUnetr {
        let config = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        medssl_model::seeding::build_seeded(device, seed, |device| SwinUnetr::new(&config, device))
            .unwrap()
    }

    fn probe(count: usize) -> Probe {
        let patches = (0..count)
            .map(|p| {
                Array4::from_shape_fn((1, 32, 32, 32), |(_, i, j, k)| {
                    ((i * 7 + j * 3 + k + p * 11) % 17) as f32 / 17.0 - 0.5
                })
            })
            .collect();
        Probe {
            cases: vec!["synthetic".into()],
            patches,
        }
    }

    #[test]
    fn a_network_is_identical_to_itself_at_every_stage() {
        let device = Device::default();
        let a = network(1, &device);
        let similarity = stage_similarity(&[&a], &[(0, 0)], &probe(8), 4, &device)
            .unwrap()
            .remove(0);
        assert_eq!(similarity.len(), 5);
        let features: Vec<usize> = similarity.iter().map(|s| s.features).collect();
        assert_eq!(
            features,
            [12 * 16 * 16 * 16, 24 * 512, 48 * 64, 96 * 8, 192]
        );
        for stage in &similarity {
            assert!((stage.linear_cka.unwrap() - 1.0).abs() < 1e-9, "{stage:?}");
            assert!((stage.minibatch_cka - 1.0).abs() < 1e-9, "{stage:?}");
        }
    }

    #[test]
    fn the_all_patch_estimate_equals_linear_cka_of_the_stacked_features() {
        let device = Device::default();
        let (a, b) = (network(1, &device), network(2, &device));
        let probe = probe(10);
        // 10 patches in batches of about 4 give 2 batches of 5: three would leave one
        // below the unbiased estimator's 4.
        // The pair (b, a) next to (a, b): each network runs once, both pairs agree.
        let mut both = stage_similarity(&[&a, &b], &[(0, 1), (1, 0)], &probe, 4, &device).unwrap();
        let similarity = both.remove(0);
        assert_eq!(similarity, both[0]);
        let (x, y) = (
            stage_features(&a, &probe.patches, &device).unwrap(),
            stage_features(&b, &probe.patches, &device).unwrap(),
        );
        for (stage, s) in similarity.iter().enumerate() {
            let (x, y) = (x[stage].mapv(f64::from), y[stage].mapv(f64::from));
            let expected = cka(
                gram_linear(x.view()).view(),
                gram_linear(y.view()).view(),
                Estimator::Biased,
            )
            .unwrap();
            let got = s.linear_cka.unwrap();
            assert!(
                (got - expected).abs() < 1e-9,
                "{}: {got} vs {expected}",
                s.stage
            );
            assert!(
                got < 0.999,
                "{}: different seeds give equal features",
                s.stage
            );
            let mut minibatch = MinibatchCka::new();
            for range in [0..5, 5..10] {
                let rows = |m: &Array2<f64>| m.slice(s![range.clone(), ..]).to_owned();
                minibatch.add(rows(&x).view(), rows(&y).view()).unwrap();
            }
            let expected = minibatch.finish().unwrap();
            assert!((s.minibatch_cka - expected).abs() < 1e-9, "{}", s.stage);
        }
    }

    #[test]
    fn fewer_than_four_patches_is_an_error() {
        let device = Device::default();
        let a = network(1, &device);
        let error = stage_similarity(&[&a], &[(0, 0)], &probe(3), 8, &device).unwrap_err();
        assert!(
            error.to_string().contains("at least 4 probe patches"),
            "{error}"
        );
    }
}
