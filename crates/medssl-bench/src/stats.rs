//! The statistics of the study's tables: the paired Wilcoxon signed-rank test with
//! Holm's correction and the smallest p it can reach, ranks with ties (mean ranks for
//! the test, competition ranks for the tables), mean and standard deviation.
//!
//! The test follows `scipy.stats.wilcoxon` (two-sided, zero differences dropped, no
//! continuity correction): the exact null distribution of the positive rank sum when
//! fewer than [`EXACT_MAX`] differences remain and their magnitudes are all distinct,
//! otherwise the normal approximation with the tie correction of the variance. (SciPy's
//! `method="auto"` also turns to the approximation when zeros were dropped; here the
//! remaining differences are tested exactly, as its `method="exact"` does.)

/// Largest number of non-zero differences tested with the exact distribution.
pub const EXACT_MAX: usize = 25;

/// A Wilcoxon signed-rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilcoxon {
    /// Non-zero differences used.
    pub n: usize,
    /// The smaller of the positive and the negative rank sums.
    pub statistic: f64,
    /// Two-sided p-value (1 when no difference is non-zero).
    pub p: f64,
    /// Whether the exact distribution was used.
    pub exact: bool,
}

/// Ranks 1..n of `values` (ascending), ties sharing their mean rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = mean;
        }
        i = j + 1;
    }
    ranks
}

/// Competition ("min") ranks 1..n of `values`, highest first: tied values share the
/// best rank of their group and the next value skips the ranks they used (0.9, 0.8,
/// 0.8, 0.7 rank 1, 2, 2, 4), the usual ranking of method-comparison tables. Values
/// that are not numbers come last.
pub fn competition_ranks(values: &[f64]) -> Vec<usize> {
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    values
        .iter()
        .map(|&v| 1 + values.iter().filter(|&&o| key(o) > key(v)).count())
        .collect()
}

/// The smallest two-sided p the signed-rank test can give for `n` paired values: all
/// differences of one sign, `2 / 2^n` with the exact distribution (fewer than
/// [`EXACT_MAX`]), the normal tail at the largest statistic otherwise; 1 for no pairs.
/// Below 6 pairs it is above 0.05, so no difference can be significant at that level.
pub fn wilcoxon_min_p(n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    if n < EXACT_MAX {
        return (2.0 / 2f64.powi(n as i32)).min(1.0);
    }
    let nf = n as f64;
    let z = (nf * (nf + 1.0) / 4.0) / (nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0).sqrt();
    libm::erfc(z / std::f64::consts::SQRT_2)
}

/// The test of the paired differences `d` (e.g. per-case Dice of one method minus
/// another's) against a median of zero.
pub fn wilcoxon(d: &[f64]) -> Wilcoxon {
    let nonzero: Vec<f64> = d.iter().copied().filter(|&x| x != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return Wilcoxon {
            n,
            statistic: 0.0,
            p: 1.0,
            exact: false,
        };
    }
    let magnitudes: Vec<f64> = nonzero.iter().map(|x| x.abs()).collect();
    let r = ranks(&magnitudes);
    let plus: f64 = nonzero
        .iter()
        .zip(&r)
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let statistic = plus.min(total - plus);
    let tied = {
        let mut sorted = magnitudes.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.windows(2).any(|w| w[0] == w[1])
    };
    if n < EXACT_MAX && !tied {
        // Counts of subsets of {1..n} by their sum: the null distribution of W+.
        let max = n * (n + 1) / 2;
        let mut counts = vec![0.0f64; max + 1];
        counts[0] = 1.0;
        for k in 1..=n {
            for s in (k..=max).rev() {
                counts[s] += counts[s - k];
            }
        }
        let all = 2f64.powi(n as i32);
        let lower: f64 = counts[..=statistic as usize].iter().sum::<f64>() / all;
        return Wilcoxon {
            n,
            statistic,
            p: (2.0 * lower).min(1.0),
            exact: true,
        };
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let ties: f64 = {
        let mut sorted = magnitudes;
        sorted.sort_by(f64::total_cmp);
        let mut sum = 0.0;
        let mut i = 0;
        while i < sorted.len() {
            let j = sorted[i..].iter().take_while(|&&x| x == sorted[i]).count();
            let t = j as f64;
            sum += t * t * t - t;
            i += j;
        }
        sum
    };
    let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - ties / 48.0;
    let z = (statistic - mean) / variance.sqrt();
    Wilcoxon {
        n,
        statistic,
        p: libm::erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0),
        exact: false,
    }
}

/// Holm's step-down adjustment of `p` (family-wise error), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (i, &k) in order.iter().enumerate() {
        running = running.max(((m - i) as f64 * p[k]).min(1.0));
        adjusted[k] = running;
    }
    adjusted
}

/// Mean and sample standard deviation (`ddof = 1`; 0 for one value) of the finite
/// values; `None` when there are none.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let sd = if finite.len() > 1 {
        (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference p-values from SciPy 1.17.1, `scipy.stats.wilcoxon(d)` (two-sided,
    /// `zero_method="wilcox"`, no continuity correction) with `method` as named.
    #[test]
    fn wilcoxon_matches_scipy() {
        let a = [3.0, -1.0, 4.0, -15.0, 9.0, 2.0, 6.0, -5.5];
        let b = [
            1.0, 1.0, -1.0, 2.0, 2.0, 2.0, -3.0, 3.0, 3.0, 4.0, -4.0, 5.0,
        ];
        let c: Vec<f64> = (0..30)
            .map(|i| ((i * 7) % 31) as f64 - 15.0 + 0.5 * (i % 3) as f64)
            .collect();
        let d = [
            0.0, 0.0, 2.0, -1.0, 3.0, 4.0, -5.0, 6.0, 7.0, 0.0, 8.0, 9.0, -10.0, 11.0,
        ];
        // (differences, statistic, p, exact); A and D: method="exact" (D's zeros are
        // dropped first, as scipy's exact method does), B and C: "approx".
        let cases: [(&[f64], f64, f64, bool); 4] = [
            (&a, 14.0, 0.640625, true),
            (&b, 20.5, 0.1446833368027591, false),
            (&c, 213.5, 0.9310606072182522, false),
            (&d, 16.0, 0.1474609375, true),
        ];
        for (i, (diffs, statistic, p, exact)) in cases.into_iter().enumerate() {
            let got = wilcoxon(diffs);
            assert_eq!(got.statistic, statistic, "case {i}");
            assert_eq!(got.exact, exact, "case {i}");
            assert!((got.p - p).abs() < 1e-12, "case {i}: {} vs {p}", got.p);
        }
        // All eight differences positive: the smallest exact two-sided p, 2 / 2^8.
        let all = wilcoxon(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!((all.statistic, all.p), (0.0, 2.0 / 256.0));
        assert_eq!(wilcoxon(&[0.0, 0.0]).p, 1.0);
    }

    #[test]
    fn holm_steps_down_and_stays_monotone() {
        // p sorted: 0.01 (×4), 0.02 (×3), 0.03 (×2 = 0.06), 0.04 (×1, raised to 0.06).
        let adjusted = holm(&[0.03, 0.01, 0.04, 0.02]);
        let expected = [0.06, 0.04, 0.06, 0.06];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-15, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
    }

    #[test]
    fn competition_ranks_share_the_best_rank_and_skip() {
        assert_eq!(competition_ranks(&[0.8, 0.9, 0.8, 0.7]), vec![2, 1, 2, 4]);
        assert_eq!(competition_ranks(&[0.5, 0.5, 0.5]), vec![1, 1, 1]);
        assert_eq!(competition_ranks(&[f64::NAN, 0.1]), vec![2, 1]);
    }

    #[test]
    fn the_smallest_p_is_that_of_all_differences_of_one_sign() {
        for n in [1, 4, 5, 6, 8] {
            let all_positive: Vec<f64> = (1..=n).map(f64::from).collect();
            assert_eq!(
                wilcoxon_min_p(n as usize),
                wilcoxon(&all_positive).p,
                "n = {n}"
            );
        }
        assert_eq!(wilcoxon_min_p(5), 0.0625);
        assert_eq!(wilcoxon_min_p(6), 0.03125);
        assert_eq!(wilcoxon_min_p(0), 1.0);
        // From 25 pairs on, the normal approximation: for 30 one-sided differences
        // z = 232.5 / sqrt(2363.75), p = erfc(z / sqrt 2) = 1.7343976283e-06 (Python's math.erfc).
        let all_positive: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(wilcoxon_min_p(30), wilcoxon(&all_positive).p);
        assert!((wilcoxon_min_p(30) - 1.7343976283e-06).abs() < 1e-15);
    }

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(ranks(&[0.3, 0.1, 0.3, 0.2]), vec![3.5, 1.0, 3.5, 2.0]);
        let (mean, sd) = mean_sd(&[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert_eq!((mean, sd), (2.0, 1.0));
        assert_eq!(mean_sd(&[f64::NAN]), None);
    }
}
