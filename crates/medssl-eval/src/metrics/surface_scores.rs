//! Hausdorff distances, average surface distances and normalised surface Dice from the
//! two directed surface-distance lists, with MONAI 1.6.1's reductions and its `nan`/`inf`
//! results for empty masks.

/// The surface metrics of one class, in mm (NSD is a fraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SurfaceScores {
    pub hd95: f64,
    pub hd_max: f64,
    pub asd_symmetric: f64,
    pub asd_pred_to_gt: f64,
    pub nsd: f64,
}

/// Reduces the distances from the prediction's surface to the ground truth's
/// (`pred_to_gt`) and back (`gt_to_pred`).
///
/// * HD95: [`quantile`] 0.95 (in f64) of each list, then the larger (`nan` if either is `nan`,
///   as `torch.max` propagates it); HD max: the largest distance.
/// * ASD: mean over the concatenation of both lists (MONAI `symmetric=True`), and the
///   mean of `pred_to_gt` alone.
/// * NSD: the fraction of all surface voxels within `tolerance_mm`, compared in float32
///   as MONAI compares its float32 distances with `<=`.
///
/// Empty lists give `nan`; lists of `inf` (one mask empty) give `inf` for the maximum
/// and means but `nan` for HD95, exactly as `torch.quantile` interpolates `inf − inf`.
pub(crate) fn surface_scores(
    mut pred_to_gt: Vec<f64>,
    mut gt_to_pred: Vec<f64>,
    tolerance_mm: f64,
) -> SurfaceScores {
    let sum = |d: &[f64]| d.iter().sum::<f64>();
    let within = |d: &[f64]| {
        d.iter()
            .filter(|&&v| v as f32 <= tolerance_mm as f32)
            .count()
    };
    let (n_pg, n_gp) = (pred_to_gt.len(), gt_to_pred.len());
    let ratio = |num: f64, den: usize| if den == 0 { f64::NAN } else { num / den as f64 };
    SurfaceScores {
        hd95: nan_max(
            quantile(&mut pred_to_gt, 0.95),
            quantile(&mut gt_to_pred, 0.95),
        ),
        hd_max: nan_max(max(&pred_to_gt), max(&gt_to_pred)),
        asd_symmetric: ratio(sum(&pred_to_gt) + sum(&gt_to_pred), n_pg + n_gp),
        asd_pred_to_gt: ratio(sum(&pred_to_gt), n_pg),
        nsd: ratio(
            (within(&pred_to_gt) + within(&gt_to_pred)) as f64,
            n_pg + n_gp,
        ),
    }
}

/// Largest value, `nan` for an empty list.
fn max(values: &[f64]) -> f64 {
    values.iter().copied().reduce(f64::max).unwrap_or(f64::NAN)
}

/// `max` that propagates `nan` like `torch.max`.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The `q` quantile with linear interpolation, in f64 throughout: rank `q · (n − 1)`
/// and the two neighbours blended with the lerp formula numpy's `quantile` and
/// `torch.quantile` share (`low + w·(high − low)` for `w < 0.5`, else
/// `high − (high − low)·(1 − w)`), so `inf` values give `nan` as in MONAI. `nan` for an
/// empty list. Reorders `values`; runs in linear time.
///
/// MONAI runs `torch.quantile` on float32 distances, which first rounds `q` to float32
/// (0.949999988 for 0.95): with a few hundred surface voxels that moves the rank by
/// ~1e-6 and HD95 by ~1e-7 relative. This is the float64 value, as the reference's
/// float64 re-implementation computes it; MONAI's float32 result is within 1e-5.
pub(crate) fn quantile(values: &mut [f64], q: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let rank = q * (n - 1) as f64;
    let below = rank.floor() as usize;
    let weight = rank - below as f64;
    let (_, &mut low, above) = values.select_nth_unstable_by(below, f64::total_cmp);
    let high = if rank.ceil() as usize == below {
        low
    } else {
        above.iter().copied().reduce(f64::min).unwrap_or(low)
    };
    if weight < 0.5 {
        low + weight * (high - low)
    } else {
        high - (high - low) * (1.0 - weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_linear_interpolation_in_f64() {
        // numpy.quantile([4., 1., 3., 2.], 0.95) = 3.85 (float64): rank 0.95 · 3 = 2.85.
        let mut v = [4.0, 1.0, 3.0, 2.0];
        let rank = 0.95 * 3.0;
        assert_eq!(
            quantile(&mut v, 0.95),
            4.0 - (4.0 - 3.0) * (1.0 - (rank - 2.0))
        );
        assert!((quantile(&mut v, 0.95) - 3.85).abs() < 1e-15);
        // A long list where float32's q (0.949999988) would move the result by ~1e-7.
        let mut long: Vec<f64> = (0..400).map(|i| f64::from(i) * 0.01).collect();
        long.reverse();
        let expected = 0.95 * 399.0 * 0.01;
        assert!((quantile(&mut long, 0.95) - expected).abs() < 1e-14);
        assert_eq!(quantile(&mut [5.0], 0.95), 5.0);
        assert_eq!(quantile(&mut [1.0, 2.0, 3.0], 0.5), 2.0);
        assert!(quantile(&mut [], 0.95).is_nan());
        assert!(quantile(&mut [f64::INFINITY; 3], 0.95).is_nan());
    }

    #[test]
    fn scores_of_one_empty_mask_are_monai_nan_and_inf() {
        let s = surface_scores(vec![f64::INFINITY; 3], vec![f64::INFINITY; 3], 1.0);
        assert!(s.hd95.is_nan());
        assert_eq!(
            (s.hd_max, s.asd_symmetric, s.asd_pred_to_gt, s.nsd),
            (f64::INFINITY, f64::INFINITY, f64::INFINITY, 0.0)
        );
        let s = surface_scores(vec![], vec![], 1.0);
        assert!(
            [s.hd95, s.hd_max, s.asd_symmetric, s.asd_pred_to_gt, s.nsd]
                .iter()
                .all(|v| v.is_nan())
        );
    }

    #[test]
    fn symmetric_asd_is_the_mean_of_the_concatenation() {
        let s = surface_scores(vec![1.0, 3.0], vec![2.0], 1.5);
        assert_eq!(s.asd_symmetric, 2.0);
        assert_eq!(s.asd_pred_to_gt, 2.0);
        assert_eq!(s.hd_max, 3.0);
        assert_eq!(s.nsd, 1.0 / 3.0);
    }

    #[test]
    fn nsd_compares_in_float32() {
        // 1.2000000000000002 and 1.2 round to the same float32, so MONAI counts it.
        let s = surface_scores(vec![2.0 * 0.6 + 2e-16], vec![], 1.2);
        assert_eq!(s.nsd, 1.0);
    }
}
