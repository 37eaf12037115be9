//! Image statistics: mean, variance, extremes and numpy-style percentiles.
//!
//! Sums run in f64 over fixed chunks whose partial results are merged in order, so the
//! result is accurate on volumes of 10^8 voxels and does not depend on thread count.

use rayon::prelude::*;

use super::CHUNK;

/// Count, mean and sum of squared deviations of a set of voxels. A NaN or infinite
/// voxel makes `mean` and `m2` non-finite (see [`Moments::is_finite`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub count: usize,
    pub mean: f64,
    pub m2: f64,
}

/// Accumulator lanes: independent partial sums let the compiler vectorise the loops.
const LANES: usize = 8;

impl Moments {
    const EMPTY: Moments = Moments {
        count: 0,
        mean: 0.0,
        m2: 0.0,
    };

    /// Moments of `values`, or of their non-zero voxels only when `nonzero`.
    pub fn of(values: &[f32], nonzero: bool) -> Moments {
        let parts: Vec<Moments> = values
            .par_chunks(CHUNK)
            .map(|chunk| {
                if nonzero {
                    chunk_moments::<true>(chunk)
                } else {
                    chunk_moments::<false>(chunk)
                }
            })
            .collect();
        parts.into_iter().fold(Moments::EMPTY, Moments::merge)
    }

    /// Whether no voxel was NaN or infinite.
    pub fn is_finite(&self) -> bool {
        self.mean.is_finite() && self.m2.is_finite()
    }

    /// Population standard deviation (torch's `unbiased=False`, numpy's default).
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }

    /// Sample standard deviation (torch's default `unbiased=True`); 0 for fewer than two
    /// voxels, where it is undefined.
    pub fn std_unbiased(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / (self.count - 1) as f64).sqrt()
        }
    }

    /// Chan et al.'s combination of the moments of two disjoint sets.
    fn merge(a: Moments, b: Moments) -> Moments {
        if a.count == 0 {
            return b;
        }
        if b.count == 0 {
            return a;
        }
        let (na, nb) = (a.count as f64, b.count as f64);
        let n = na + nb;
        let delta = b.mean - a.mean;
        Moments {
            count: a.count + b.count,
            mean: a.mean + delta * nb / n,
            m2: a.m2 + b.m2 + delta * delta * na * nb / n,
        }
    }
}

/// Two passes over a cached chunk: sum and count, then squared deviations from the
/// chunk mean. Branch-free (masked voxels add 0) with independent lanes, so
/// both loops vectorise.
fn chunk_moments<const NONZERO: bool>(chunk: &[f32]) -> Moments {
    let keep = |v: f32| !NONZERO || v != 0.0;
    let (body, tail) = chunk.split_at(chunk.len() - chunk.len() % LANES);
    let mut sums = [0.0f64; LANES];
    let mut counts = [0u32; LANES];
    let mut first = |lane: usize, v: f32| {
        let k = keep(v);
        sums[lane] += if k { f64::from(v) } else { 0.0 };
        counts[lane] += u32::from(k);
    };
    for block in body.chunks_exact(LANES) {
        for (lane, &v) in block.iter().enumerate() {
            first(lane, v);
        }
    }
    for (lane, &v) in tail.iter().enumerate() {
        first(lane, v);
    }
    let count = counts.iter().map(|&c| c as usize).sum::<usize>();
    if count == 0 {
        return Moments::EMPTY;
    }
    let mean = sums.iter().sum::<f64>() / count as f64;
    let mut m2 = [0.0f64; LANES];
    let mut second = |lane: usize, v: f32| {
        let d = if keep(v) { f64::from(v) - mean } else { 0.0 };
        m2[lane] += d * d;
    };
    for block in body.chunks_exact(LANES) {
        for (lane, &v) in block.iter().enumerate() {
            second(lane, v);
        }
    }
    for (lane, &v) in tail.iter().enumerate() {
        second(lane, v);
    }
    Moments {
        count,
        mean,
        m2: m2.iter().sum(),
    }
}

/// The smallest and largest voxel (infinite bounds for no voxels); NaN voxels are
/// ignored, so callers check finiteness separately.
pub fn extremes(values: &[f32]) -> (f32, f32) {
    values
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut lo = [f32::INFINITY; LANES];
            let mut hi = [f32::NEG_INFINITY; LANES];
            for block in chunk.chunks(LANES) {
                for (lane, &v) in block.iter().enumerate() {
                    lo[lane] = if v < lo[lane] { v } else { lo[lane] };
                    hi[lane] = if v > hi[lane] { v } else { hi[lane] };
                }
            }
            let lo = lo.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            (lo, hi)
        })
        .reduce(
            || (f32::INFINITY, f32::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        )
}

/// Percentiles `qs` (each in [0, 100]) of `values` with numpy's default "linear" method,
/// which `torch.quantile` shares: rank `q/100 * (n - 1)`, interpolated between its
/// neighbours as torch's `lerp` does. Reorders `values`; `values` must be non-empty and
/// free of NaN.
pub fn percentiles(values: &mut [f32], qs: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..qs.len()).collect();
    order.sort_by(|&a, &b| qs[a].total_cmp(&qs[b]));
    let mut out = vec![0.0; qs.len()];
    // Invariant: values[start..] holds exactly the sorted order statistics start.. (in
    // some order), so a larger rank is selected within it.
    let mut start = 0;
    for i in order {
        let rank = qs[i] / 100.0 * (n - 1) as f64;
        let below = (rank.floor() as usize).min(n - 1);
        let weight = rank - below as f64;
        let (_, &mut lo, above) =
            values[start..].select_nth_unstable_by(below - start, f32::total_cmp);
        start = below;
        let (lo, hi) = match above.iter().copied().min_by(f32::total_cmp) {
            Some(hi) if weight > 0.0 => (f64::from(lo), f64::from(hi)),
            _ => {
                out[i] = f64::from(lo);
                continue;
            }
        };
        let diff = hi - lo;
        out[i] = if weight < 0.5 {
            lo + weight * diff
        } else {
            hi - diff * (1.0 - weight)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy.percentile([3, 1, 4, 1, 5, 9, 2, 6], [0, 10, 25, 50, 62.5, 90, 100]).
    #[test]
    fn percentiles_match_numpy() {
        let mut values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        let got = percentiles(&mut values, &[50.0, 0.0, 90.0, 10.0, 100.0, 25.0, 62.5]);
        let numpy = [3.5, 1.0, 6.8999999999999995, 1.0, 9.0, 1.75, 4.375];
        for (g, n) in got.iter().zip(numpy) {
            assert!((g - n).abs() < 1e-12, "{got:?} vs {numpy:?}");
        }
    }

    #[test]
    fn moments_merge_chunks_exactly_and_mask_zeros() {
        let values: Vec<f32> = (0..3 * CHUNK + 17)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    (i % 101) as f32 - 40.0
                }
            })
            .collect();
        for nonzero in [false, true] {
            let kept: Vec<f64> = values
                .iter()
                .filter(|&&v| !nonzero || v != 0.0)
                .map(|&v| f64::from(v))
                .collect();
            let n = kept.len() as f64;
            let mean = kept.iter().sum::<f64>() / n;
            let var = kept.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let m = Moments::of(&values, nonzero);
            assert_eq!(m.count, kept.len());
            assert!((m.mean - mean).abs() < 1e-12 * mean.abs().max(1.0));
            assert!((m.std() - var.sqrt()).abs() < 1e-12 * var.sqrt());
        }
    }
}
