//! Volume-wide operations of the phantom renderers: smooth random fields (organ
//! texture, MRI bias), Gaussian blur (partial-volume effect, correlated noise) and
//! seeded Gaussian noise. Volumes are `[I, J, K]` in standard order; every pass works on
//! whole contiguous rows or planes and runs in parallel over planes.

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::Grid;
use medssl_data::rng::{Rng, stream};

/// Mean over a lattice cell of `(1 - w)^2 + w^2` for smoothstep weights `w`: the
/// variance an interpolated unit-variance lattice keeps along one axis.
const SMOOTHSTEP_VARIANCE: f64 = 26.0 / 35.0;

/// A smooth random field on `grid` with features about `cell` mm across and roughly
/// unit variance: a random lattice with spacing `cell`, randomly shifted, interpolated
/// with smoothstep weights (continuous slope at the lattice planes) one axis at a time.
pub(crate) fn smooth_field(grid: &Grid, cell: f64, rng: &mut Rng) -> Vec<f32> {
    let shape = grid.shape();
    let spacing = grid.spacing();
    let plan: [Vec<(usize, f32)>; 3] = std::array::from_fn(|a| {
        let shift: f64 = rng.random_range(0.0..1.0);
        (0..shape[a])
            .map(|n| {
                let t = shift + n as f64 * spacing[a] / cell;
                let i = t.floor();
                let u = t - i;
                (i as usize, (u * u * (3.0 - 2.0 * u)) as f32)
            })
            .collect()
    });
    let lattice: [usize; 3] = std::array::from_fn(|a| plan[a].last().map_or(0, |p| p.0) + 2);
    let values: Vec<f32> = (0..lattice.iter().product::<usize>())
        .map(|_| StandardNormal.sample(rng))
        .collect();
    let [ni, nj, nk] = shape;
    let [li, lj, lk] = lattice;
    // Along K: (li, lj, lk) -> (li, lj, nk).
    let mut along_k = vec![0f32; li * lj * nk];
    for (src, dst) in values.chunks_exact(lk).zip(along_k.chunks_exact_mut(nk)) {
        for (d, &(i, w)) in dst.iter_mut().zip(&plan[2]) {
            *d = src[i] + w * (src[i + 1] - src[i]);
        }
    }
    // Along J: (li, lj, nk) -> (li, nj, nk), whole rows at a time.
    let mut along_j = vec![0f32; li * nj * nk];
    for (src, dst) in along_k
        .chunks_exact(lj * nk)
        .zip(along_j.chunks_exact_mut(nj * nk))
    {
        for (row, &(j, w)) in dst.chunks_exact_mut(nk).zip(&plan[1]) {
            mix_rows(
                row,
                &src[j * nk..(j + 1) * nk],
                &src[(j + 1) * nk..(j + 2) * nk],
                w,
            );
        }
    }
    // Along I: whole planes, normalised to unit variance on average.
    let gain = SMOOTHSTEP_VARIANCE.powf(-1.5) as f32;
    let plane = nj * nk;
    let mut out = vec![0f32; ni * plane];
    out.par_chunks_mut(plane)
        .zip(plan[0].par_iter())
        .for_each(|(dst, &(i, w))| {
            mix_rows(
                dst,
                &along_j[i * plane..(i + 1) * plane],
                &along_j[(i + 1) * plane..(i + 2) * plane],
                w,
            );
            dst.iter_mut().for_each(|v| *v *= gain);
        });
    out
}

/// `dst = a + w (b - a)`.
fn mix_rows(dst: &mut [f32], a: &[f32], b: &[f32], w: f32) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = x + w * (y - x);
    }
}

/// The normalised Gaussian kernel with standard deviation `sigma` voxels truncated at
/// 3 sigma, radius `round(3 sigma)` as scipy's `gaussian_filter(truncate=3.0)` takes it;
/// `[1]` when sigma is zero.
fn kernel(sigma: f64) -> Vec<f32> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let radius = (3.0 * sigma + 0.5) as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|d| (-0.5 * (d as f64 / sigma).powi(2)).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|v| (v / total) as f32).collect()
}

/// Blurs `data` (`[I, J, K]`) with a Gaussian of `sigma` voxels per axis, repeating the
/// border voxels outside the volume (the partial-volume effect of a scanner's point
/// spread function).
pub(crate) fn blur(data: &mut [f32], shape: [usize; 3], sigma: [f64; 3]) {
    let [ni, nj, nk] = shape;
    let plane = nj * nk;
    let (wi, wj, wk) = (kernel(sigma[0]), kernel(sigma[1]), kernel(sigma[2]));
    if wk.len() > 1 || wj.len() > 1 {
        data.par_chunks_mut(plane).for_each(|p| {
            let mut copy = p.to_vec();
            if wk.len() > 1 {
                let mut padded = Vec::with_capacity(nk + wk.len());
                for (dst, src) in p.chunks_exact_mut(nk).zip(copy.chunks_exact(nk)) {
                    convolve_row(dst, src, &wk, &mut padded);
                }
                copy.copy_from_slice(p);
            }
            if wj.len() > 1 {
                convolve_lines(p, &copy, nk, &wj);
            }
        });
    }
    if wi.len() > 1 {
        let copy = data.to_vec();
        let r = (wi.len() / 2) as isize;
        data.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
            dst.fill(0.0);
            for (d, &w) in wi.iter().enumerate() {
                let src = (i as isize + d as isize - r).clamp(0, ni as isize - 1) as usize;
                for (o, &v) in dst.iter_mut().zip(&copy[src * plane..(src + 1) * plane]) {
                    *o += w * v;
                }
            }
        });
    }
}

/// Convolves one contiguous row with `w` (odd length), repeating the ends: the row is
/// copied into `padded` with `r` repeated values on each side, then each tap is added
/// to the whole row at once.
fn convolve_row(dst: &mut [f32], src: &[f32], w: &[f32], padded: &mut Vec<f32>) {
    let r = w.len() / 2;
    let n = src.len();
    padded.clear();
    padded.extend(std::iter::repeat_n(src[0], r));
    padded.extend_from_slice(src);
    padded.extend(std::iter::repeat_n(src[n - 1], r));
    dst.fill(0.0);
    for (m, &wm) in w.iter().enumerate() {
        for (d, &v) in dst.iter_mut().zip(&padded[m..m + n]) {
            *d += wm * v;
        }
    }
}

/// Convolves across rows of length `row` (each output row is a weighted sum of whole
/// input rows), repeating the first and last rows.
fn convolve_lines(dst: &mut [f32], src: &[f32], row: usize, w: &[f32]) {
    let lines = (src.len() / row) as isize;
    let r = (w.len() / 2) as isize;
    for (j, d) in dst.chunks_exact_mut(row).enumerate() {
        d.fill(0.0);
        for (m, &wm) in w.iter().enumerate() {
            let s = (j as isize + m as isize - r).clamp(0, lines - 1) as usize;
            for (o, &v) in d.iter_mut().zip(&src[s * row..(s + 1) * row]) {
                *o += wm * v;
            }
        }
    }
}

/// The standard deviation left of unit white noise after [`blur`] with `sigma` (away
/// from the borders): divide by it to restore unit variance.
pub(crate) fn blurred_noise_sd(sigma: [f64; 3]) -> f32 {
    sigma
        .iter()
        .map(|&s| kernel(s).iter().map(|w| w * w).sum::<f32>())
        .product::<f32>()
        .sqrt()
}

/// Standard normal noise on `shape`, each `I` plane drawn from its own stream
/// `stream(seed, path ++ [plane])`, so the result is the same on any number of threads.
pub(crate) fn white_noise(shape: [usize; 3], seed: u64, path: &[u64]) -> Vec<f32> {
    let plane = shape[1] * shape[2];
    let mut out = vec![0f32; shape[0] * plane];
    out.par_chunks_mut(plane).enumerate().for_each(|(i, p)| {
        let mut full = path.to_vec();
        full.push(i as u64);
        let mut rng = stream(seed, &full);
        p.iter_mut()
            .for_each(|v| *v = StandardNormal.sample(&mut rng));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_sd(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    #[test]
    fn blur_matches_scipy_gaussian_filter_with_nearest_borders() {
        // scipy 1.17.1: ndimage.gaussian_filter1d(x, sigma, mode='nearest', truncate=3.0)
        let x = [0.0f32, 0.0, 1.0, 0.0, 0.0, 5.0, 2.0, 0.0, -3.0, 0.0];
        let cases: [(f64, [f64; 10]); 3] = [
            (
                0.6,
                [
                    2.566268649e-03,
                    1.655245667e-01,
                    6.638183294e-01,
                    1.783559099e-01,
                    8.353216392e-01,
                    3.650140780e+00,
                    2.147560686e+00,
                    -1.526932234e-01,
                    -1.986322451e+00,
                    -4.965737000e-01,
                ],
            ),
            (
                0.8,
                [
                    0.021929645,
                    0.228512147,
                    0.499116417,
                    0.338160371,
                    1.208349669,
                    2.952606376,
                    2.075004633,
                    -0.118863923,
                    -1.45348996,
                    -0.685536441,
                ],
            ),
            (
                1.3,
                [
                    0.094011014,
                    0.24187246,
                    0.419476341,
                    0.741260665,
                    1.4158056,
                    1.948911377,
                    1.476535687,
                    0.24168078,
                    -0.625896174,
                    -0.628793404,
                ],
            ),
        ];
        for (sigma, want) in cases {
            // Along each axis in turn: the same line laid along I, J and K.
            for axis in 0..3 {
                let mut shape = [1, 1, 1];
                shape[axis] = 10;
                let mut sigmas = [0.0; 3];
                sigmas[axis] = sigma;
                let mut data = x.to_vec();
                blur(&mut data, shape, sigmas);
                for (got, want) in data.iter().zip(want) {
                    assert!(
                        (f64::from(*got) - want).abs() < 1e-5,
                        "sigma {sigma} axis {axis}: {data:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn blur_matches_a_direct_convolution_and_keeps_constants() {
        // Reference: the separable sum written out voxel by voxel.
        let shape = [5, 6, 7];
        let data: Vec<f32> = (0..210).map(|i| ((i * 37) % 23) as f32).collect();
        let sigma = [0.8, 0.0, 1.3];
        let mut fast = data.clone();
        blur(&mut fast, shape, sigma);
        let (wi, wk) = (kernel(sigma[0]), kernel(sigma[2]));
        let (ri, rk) = ((wi.len() / 2) as isize, (wk.len() / 2) as isize);
        let at = |i: isize, j: usize, k: isize| {
            let i = i.clamp(0, 4) as usize;
            let k = k.clamp(0, 6) as usize;
            data[(i * 6 + j) * 7 + k]
        };
        for i in 0..5isize {
            for j in 0..6 {
                for k in 0..7isize {
                    let mut want = 0.0;
                    for (a, &w1) in wi.iter().enumerate() {
                        for (c, &w3) in wk.iter().enumerate() {
                            want += w1 * w3 * at(i + a as isize - ri, j, k + c as isize - rk);
                        }
                    }
                    let got = fast[(i as usize * 6 + j) * 7 + k as usize];
                    assert!((got - want).abs() < 1e-4, "{i},{j},{k}: {got} vs {want}");
                }
            }
        }
        let mut flat = vec![3.5f32; 210];
        blur(&mut flat, shape, [0.7, 0.7, 0.7]);
        assert!(flat.iter().all(|&v| (v - 3.5).abs() < 1e-5));
    }

    #[test]
    fn noise_is_standard_normal_and_blurred_noise_is_rescaled_exactly() {
        let shape = [40, 40, 40];
        let noise = white_noise(shape, 5, &[1, 2]);
        let (mean, sd) = mean_sd(&noise);
        assert!(mean.abs() < 0.01 && (sd - 1.0).abs() < 0.01, "{mean} {sd}");
        assert_eq!(noise, white_noise(shape, 5, &[1, 2]));
        let sigma = [0.6, 0.6, 0.6];
        let mut blurred = noise;
        blur(&mut blurred, shape, sigma);
        let interior: Vec<f32> = (3..37)
            .flat_map(|i| (3..37).flat_map(move |j| (3..37).map(move |k| (i * 40 + j) * 40 + k)))
            .map(|n| blurred[n])
            .collect();
        let (_, sd) = mean_sd(&interior);
        let expected = f64::from(blurred_noise_sd(sigma));
        assert!((sd / expected - 1.0).abs() < 0.03, "{sd} vs {expected}");
    }

    #[test]
    fn smooth_field_has_about_unit_variance_and_is_smooth() {
        // 64 mm / 4 mm cells: about 17^3 independent lattice values, so the sample
        // standard deviation is within a few percent of the field's.
        let grid = Grid::new([32, 32, 22], [2.0, 2.0, 3.0]).unwrap();
        let field = smooth_field(&grid, 4.0, &mut stream(9, &[]));
        let (mean, sd) = mean_sd(&field);
        assert!(mean.abs() < 0.05 && (sd - 1.0).abs() < 0.08, "{mean} {sd}");
        // Neighbours along K (3 mm apart, three quarters of a cell) and along I (half a
        // cell) are correlated, unlike white noise (whose steps have sd sqrt(2)).
        let field = smooth_field(&grid, 12.0, &mut stream(9, &[]));
        let (_, sd) = mean_sd(&field);
        let steps: Vec<f32> = field
            .chunks_exact(22)
            .flat_map(|row| row.windows(2).map(|w| w[1] - w[0]))
            .collect();
        let (_, step_sd) = mean_sd(&steps);
        assert!(step_sd < 0.5 * sd, "{step_sd} vs {sd}");
    }
}
