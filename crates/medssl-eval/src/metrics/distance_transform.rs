//! Exact Euclidean distance transform on an anisotropic voxel grid.
//!
//! Surface-distance metrics need, for every surface voxel of one mask, the distance to
//! the nearest surface voxel of the other. The separable algorithm of Felzenszwalb and
//! Huttenlocher ("Distance transforms of sampled functions", 2012) gives it exactly in
//! time linear in the number of voxels: one pass per axis, each taking the lower
//! envelope of the parabolas `f(p) + (s·(q − p))²` along every line of that axis.
//!
//! Squared distances are summed in the order axis 2, axis 1, axis 0, so a value equals
//! the brute-force minimum of `((dk·s₂)² + (dj·s₁)²) + (di·s₀)²` over the feature voxels
//! up to rounding in the choice between parabolas that tie.

use ndarray::{Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::MetricsError;

/// Squared Euclidean distance (in the squared unit of `spacing`, mm² for mm) from every
/// voxel to the nearest `true` voxel of `features`; `+inf` everywhere when there is none.
///
/// `spacing` is the voxel size along array axes 0, 1 and 2, finite and positive (else
/// [`MetricsError::Spacing`]). Lines are processed in parallel; memory is one `f64` per
/// voxel plus a few lines of scratch per thread.
pub fn squared_distance_transform(
    features: ArrayView3<'_, bool>,
    spacing: [f64; 3],
) -> Result<Array3<f64>, MetricsError> {
    if !spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(MetricsError::Spacing(spacing));
    }
    let mut out = in_plane_transform(features, spacing);
    let len = out.len_of(Axis(0));
    out.axis_iter_mut(Axis(1)).into_par_iter().for_each_init(
        || Envelope::with_capacity(len),
        |envelope, plane| envelope.transform_columns(plane, spacing[0]),
    );
    Ok(out)
}

/// The squared distances of [`squared_distance_transform`] at the `true` voxels of
/// `queries` only (same shape as `features`), in no particular order; `spacing` must
/// have been checked.
///
/// The last pass builds envelopes only along lines holding a query and evaluates them
/// only there, and no volume-sized result is written; the values are bit-identical.
pub(crate) fn squared_distances_at(
    features: ArrayView3<'_, bool>,
    queries: ArrayView3<'_, bool>,
    spacing: [f64; 3],
) -> Vec<f64> {
    debug_assert_eq!(features.shape(), queries.shape());
    let partial = in_plane_transform(features, spacing);
    let queries = queries.as_standard_layout();
    let len = partial.len_of(Axis(0));
    partial
        .axis_iter(Axis(1))
        .into_par_iter()
        .zip(queries.axis_iter(Axis(1)))
        .fold(
            || (Envelope::with_capacity(len), Vec::new()),
            |(mut envelope, mut found), (plane, wanted)| {
                envelope.query_columns(plane, wanted, spacing[0], &mut found);
                (envelope, found)
            },
        )
        .map(|(_, found)| found)
        .reduce(Vec::new, |mut a, b| {
            a.extend(b);
            a
        })
}

/// The passes along axes 2 and 1: squared distance to the nearest feature in the same
/// axis-0 plane.
fn in_plane_transform(features: ArrayView3<'_, bool>, spacing: [f64; 3]) -> Array3<f64> {
    let features = features.as_standard_layout();
    let mut out = Array3::<f64>::zeros(features.raw_dim());
    let width = out.len_of(Axis(2));
    if out.is_empty() {
        return out;
    }
    let (Some(flat_out), Some(flat_features)) = (out.as_slice_mut(), features.as_slice()) else {
        unreachable!("standard-layout arrays are contiguous")
    };
    flat_out
        .par_chunks_mut(width)
        .zip(flat_features.par_chunks(width))
        .for_each(|(line, feature)| nearest_feature_in_line(feature, line, spacing[2]));
    let len = out.len_of(Axis(1));
    // Each plane at a fixed index of axis 0 holds whole lines along axis 1 as its
    // columns, and contiguous rows along axis 2.
    out.axis_iter_mut(Axis(0)).into_par_iter().for_each_init(
        || Envelope::with_capacity(len),
        |envelope, plane| envelope.transform_columns(plane, spacing[1]),
    );
    out
}

/// First pass, on a binary line: squared distance to the nearest feature of the line.
fn nearest_feature_in_line(feature: &[bool], out: &mut [f64], step: f64) {
    let mut last = None;
    for (q, (&is_feature, o)) in feature.iter().zip(out.iter_mut()).enumerate() {
        if is_feature {
            last = Some(q);
        }
        *o = last.map_or(f64::INFINITY, |p| (q - p) as f64);
    }
    let mut next = None;
    for (q, (&is_feature, o)) in feature.iter().zip(out.iter_mut()).enumerate().rev() {
        if is_feature {
            next = Some(q);
        }
        if let Some(p) = next {
            *o = o.min((p - q) as f64);
        }
        let d = *o * step;
        *o = d * d;
    }
}

/// Columns gathered at once from a plane: one cache line of a row.
const BLOCK: usize = 8;

/// Scratch of the lower-envelope passes: a block of a plane's columns copied to
/// contiguous lines, and the envelope of one line (parabola `vertex[i]` is lowest from
/// abscissa `start[i].0 / start[i].1` on).
struct Envelope {
    block: Vec<f64>,
    line: Vec<f64>,
    vertex: Vec<usize>,
    start: Vec<(f64, f64)>,
}

impl Envelope {
    fn with_capacity(len: usize) -> Self {
        Self {
            block: vec![0.0; BLOCK * len],
            line: Vec::with_capacity(len),
            vertex: Vec::with_capacity(len),
            start: Vec::with_capacity(len),
        }
    }

    /// Copies columns `k0..k0 + cols` of `plane` to contiguous lines of the block,
    /// reading the plane row by row (one cache line per row).
    fn gather(&mut self, plane: &ArrayView2<'_, f64>, k0: usize, cols: usize) {
        let len = plane.nrows();
        for (q, row) in plane.rows().into_iter().enumerate() {
            for c in 0..cols {
                self.block[c * len + q] = row[k0 + c];
            }
        }
    }

    /// Transforms every column of `plane` (lines along its axis 0, rows contiguous).
    fn transform_columns(&mut self, mut plane: ArrayViewMut2<'_, f64>, step: f64) {
        let (len, width) = plane.dim();
        for k0 in (0..width).step_by(BLOCK) {
            let cols = BLOCK.min(width - k0);
            self.gather(&plane.view(), k0, cols);
            for c in 0..cols {
                self.line.clear();
                self.line
                    .extend_from_slice(&self.block[c * len..(c + 1) * len]);
                // Without parabolas the column is all infinite already.
                if self.build(step) {
                    let mut k = 0;
                    for q in 0..len {
                        self.block[c * len + q] = self.value_at(q, &mut k, step);
                    }
                }
            }
            for (q, mut row) in plane.rows_mut().into_iter().enumerate() {
                for c in 0..cols {
                    row[k0 + c] = self.block[c * len + q];
                }
            }
        }
    }

    /// Pushes onto `found` the transformed values of `plane` where `wanted` is set.
    fn query_columns(
        &mut self,
        plane: ArrayView2<'_, f64>,
        wanted: ArrayView2<'_, bool>,
        step: f64,
        found: &mut Vec<f64>,
    ) {
        let (len, width) = plane.dim();
        let mut any = vec![false; width];
        for row in wanted.rows() {
            any.iter_mut().zip(row).for_each(|(a, &w)| *a |= w);
        }
        for k0 in (0..width).step_by(BLOCK) {
            let cols = BLOCK.min(width - k0);
            if !any[k0..k0 + cols].contains(&true) {
                continue;
            }
            self.gather(&plane, k0, cols);
            for c in (0..cols).filter(|&c| any[k0 + c]) {
                self.line.clear();
                self.line
                    .extend_from_slice(&self.block[c * len..(c + 1) * len]);
                let has_parabolas = self.build(step);
                let mut k = 0;
                for q in (0..len).filter(|&q| wanted[[q, k0 + c]]) {
                    found.push(if has_parabolas {
                        self.value_at(q, &mut k, step)
                    } else {
                        f64::INFINITY
                    });
                }
            }
        }
    }

    /// Builds the lower envelope of the parabolas `line[p] + (step·(q − p))²` over the
    /// finite entries of `line` (infinite ones hold no feature); false if there are none.
    ///
    /// Crossing abscissas are kept as fractions `num / den` with `den > 0` and compared
    /// by cross-multiplication, which keeps divisions off the critical path.
    fn build(&mut self, step: f64) -> bool {
        self.vertex.clear();
        self.start.clear();
        let inverse_weight = 1.0 / (step * step);
        for (q, &fq) in self.line.iter().enumerate() {
            if fq == f64::INFINITY {
                continue;
            }
            let qf = q as f64;
            let mut start = (-1.0, 0.0);
            while let (Some(&p), Some(&(z_num, z_den))) = (self.vertex.last(), self.start.last()) {
                let pf = p as f64;
                // Abscissa where the parabolas of p and q cross.
                let (num, den) = (
                    (fq - self.line[p]) * inverse_weight + (qf - pf) * (qf + pf),
                    2.0 * (qf - pf),
                );
                // The first parabola starts at −∞ (den 0) and is never removed.
                if z_den > 0.0 && num * z_den <= z_num * den {
                    self.vertex.pop();
                    self.start.pop();
                } else {
                    start = (num, den);
                    break;
                }
            }
            self.vertex.push(q);
            self.start.push(start);
        }
        !self.vertex.is_empty()
    }

    /// The envelope at `q`; `k` is the current parabola, for increasing `q` from 0.
    fn value_at(&self, q: usize, k: &mut usize, step: f64) -> f64 {
        let qf = q as f64;
        while let Some(&(num, den)) = self.start.get(*k + 1) {
            if num >= qf * den {
                break;
            }
            *k += 1;
        }
        let p = self.vertex[*k];
        let d = (qf - p as f64) * step;
        self.line[p] + d * d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    /// Minimum over all feature voxels, summed in the transform's axis order.
    fn brute_force(features: ArrayView3<'_, bool>, spacing: [f64; 3]) -> Array3<f64> {
        let points: Vec<[f64; 3]> = features
            .indexed_iter()
            .filter(|(_, f)| **f)
            .map(|((i, j, k), _)| [i as f64, j as f64, k as f64])
            .collect();
        Array3::from_shape_fn(features.raw_dim(), |(i, j, k)| {
            points
                .iter()
                .map(|p| {
                    let d = [
                        (i as f64 - p[0]) * spacing[0],
                        (j as f64 - p[1]) * spacing[1],
                        (k as f64 - p[2]) * spacing[2],
                    ];
                    (d[2] * d[2] + d[1] * d[1]) + d[0] * d[0]
                })
                .fold(f64::INFINITY, f64::min)
        })
    }

    /// Checks the transform against brute force, and the query-only variant against the
    /// transform at the `queries` voxels (bit for bit).
    fn assert_matches_brute_force(
        features: &Array3<bool>,
        queries: &Array3<bool>,
        spacing: [f64; 3],
    ) {
        let fast = squared_distance_transform(features.view(), spacing).unwrap();
        let slow = brute_force(features.view(), spacing);
        for ((idx, &a), &b) in fast.indexed_iter().zip(slow.iter()) {
            let ok = if b.is_infinite() {
                a == b
            } else {
                (a - b).abs() <= 1e-12 * b.max(1.0)
            };
            assert!(
                ok,
                "at {idx:?}: transform {a}, brute force {b} (spacing {spacing:?})"
            );
        }
        let mut at_queries: Vec<f64> = fast
            .iter()
            .zip(queries)
            .filter(|(_, q)| **q)
            .map(|(d, _)| *d)
            .collect();
        let mut queried = squared_distances_at(features.view(), queries.view(), spacing);
        at_queries.sort_by(f64::total_cmp);
        queried.sort_by(f64::total_cmp);
        assert_eq!(queried, at_queries);
    }

    #[test]
    fn random_sparse_and_dense_masks_match_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for density in [0.002, 0.02, 0.2, 0.7] {
            for _ in 0..4 {
                let shape = [
                    rng.random_range(1..14usize),
                    rng.random_range(1..14usize),
                    rng.random_range(1..14usize),
                ];
                let spacing = [
                    rng.random_range(0.3..3.0),
                    rng.random_range(0.3..3.0),
                    rng.random_range(0.3..3.0),
                ];
                let features = Array3::from_shape_simple_fn(shape, || rng.random_bool(density));
                let queries = Array3::from_shape_simple_fn(shape, || rng.random_bool(0.3));
                assert_matches_brute_force(&features, &queries, spacing);
            }
        }
    }

    #[test]
    fn single_feature_gives_the_anisotropic_distance() {
        let mut features = Array3::from_elem([5, 6, 7], false);
        features[[4, 0, 3]] = true;
        let d2 = squared_distance_transform(features.view(), [0.5, 2.0, 1.25]).unwrap();
        // (0, 5, 6) is (−4, 5, 3) voxels away: 2² + 10² + 3.75².
        assert_eq!(
            d2[[0, 5, 6]],
            3.75f64.powi(2) + 10.0f64.powi(2) + 2.0f64.powi(2)
        );
        assert_eq!(d2[[4, 0, 3]], 0.0);
    }

    #[test]
    fn no_feature_is_infinite_everywhere() {
        let features = Array3::from_elem([3, 4, 5], false);
        let d2 = squared_distance_transform(features.view(), [1.0, 1.0, 1.0]).unwrap();
        assert!(d2.iter().all(|&v| v == f64::INFINITY));
        let queries = Array3::from_elem([3, 4, 5], true);
        let at = squared_distances_at(features.view(), queries.view(), [1.0, 1.0, 1.0]);
        assert_eq!(at, vec![f64::INFINITY; 60]);
        let bad = [1.0, 0.0, 1.0];
        assert_eq!(
            squared_distance_transform(features.view(), bad),
            Err(MetricsError::Spacing(bad))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn transform_equals_brute_force(
            shape in prop::array::uniform3(1usize..9),
            spacing in prop::array::uniform3(0.1f64..4.0),
            bits in prop::collection::vec(prop::bool::weighted(0.1), 512),
            query_bits in prop::collection::vec(prop::bool::weighted(0.2), 512),
        ) {
            let features = Array3::from_shape_fn(shape, |(i, j, k)| bits[(i * 8 + j) * 8 + k]);
            let queries = Array3::from_shape_fn(shape, |(i, j, k)| query_bits[(i * 8 + j) * 8 + k]);
            assert_matches_brute_force(&features, &queries, spacing);
        }
    }
}
