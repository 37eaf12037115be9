//! Data-set summaries of per-case metrics, for `result.json` and report tables.
//!
//! `nan` means "undefined for this case" (class absent from the ground truth, or from
//! both maps) and is left out, as MONAI's `do_metric_reduction(..., "mean")` leaves it
//! out; `count` says how many values remain. `inf` (class missing from one map only) is
//! a real failure and is kept: a mean over a set containing it is `inf` and its standard
//! deviation `nan`. Where no value remains the mean is `nan`, where MONAI would give 0.

use serde::{Deserialize, Serialize};

use super::{ClassMetrics, Metric, MetricsError, json_float};

/// Mean and sample standard deviation (n − 1) of the non-`nan` values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(with = "json_float")]
    pub mean: f64,
    /// `nan` below two values, or when a value is infinite.
    #[serde(with = "json_float")]
    pub std: f64,
    /// Values that entered, `nan`s excluded.
    pub count: usize,
}

impl Stat {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
        let count = values.len();
        let mean = if count == 0 {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / count as f64
        };
        let std = if count < 2 {
            f64::NAN
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1) as f64).sqrt()
        };
        Self { mean, std, count }
    }
}

/// One [`Stat`] per metric of [`ClassMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    pub dice: Stat,
    pub hd95: Stat,
    pub hd_max: Stat,
    pub asd_symmetric: Stat,
    pub asd_pred_to_gt: Stat,
    pub nsd: Stat,
}

impl MetricStats {
    fn from_fn(mut stat: impl FnMut(Metric) -> Stat) -> Self {
        Self {
            dice: stat(Metric::Dice),
            hd95: stat(Metric::Hd95),
            hd_max: stat(Metric::HdMax),
            asd_symmetric: stat(Metric::AsdSymmetric),
            asd_pred_to_gt: stat(Metric::AsdPredToGt),
            nsd: stat(Metric::Nsd),
        }
    }

    pub fn get(&self, metric: Metric) -> &Stat {
        match metric {
            Metric::Dice => &self.dice,
            Metric::Hd95 => &self.hd95,
            Metric::HdMax => &self.hd_max,
            Metric::AsdSymmetric => &self.asd_symmetric,
            Metric::AsdPredToGt => &self.asd_pred_to_gt,
            Metric::Nsd => &self.nsd,
        }
    }
}

/// Metrics of a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub cases: usize,
    /// Over cases, per foreground class (element 0 is class 1).
    pub classes: Vec<MetricStats>,
    /// Over cases of each case's mean over its foreground classes: the mean is MONAI's
    /// `do_metric_reduction(values, "mean")` (`DiceMetric(reduction="mean")`).
    pub foreground_mean: MetricStats,
}

/// Summarises per-case results (each the output of
/// [`segmentation_metrics`](super::segmentation_metrics) for one case).
pub fn summarize(cases: &[Vec<ClassMetrics>]) -> Result<Summary, MetricsError> {
    let first = cases.first().ok_or(MetricsError::NoCases)?;
    if let Some((case, c)) = cases
        .iter()
        .enumerate()
        .find(|(_, c)| c.len() != first.len())
    {
        return Err(MetricsError::ClassCount {
            case,
            expected: first.len(),
            got: c.len(),
        });
    }
    let classes = (0..first.len())
        .map(|class| MetricStats::from_fn(|m| Stat::of(cases.iter().map(|c| c[class].get(m)))))
        .collect();
    let foreground_mean = MetricStats::from_fn(|m| {
        Stat::of(
            cases
                .iter()
                .map(|c| Stat::of(c.iter().map(|v| v.get(m))).mean),
        )
    });
    Ok(Summary {
        cases: cases.len(),
        classes,
        foreground_mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(dice: &[f64]) -> Vec<ClassMetrics> {
        dice.iter()
            .map(|&d| ClassMetrics {
                dice: d,
                hd95: 2.0 * d,
                hd_max: f64::INFINITY,
                asd_symmetric: d,
                asd_pred_to_gt: d,
                nsd: d,
            })
            .collect()
    }

    #[test]
    fn foreground_mean_is_monai_mean_reduction() {
        // MONAI 1.6.1: do_metric_reduction(tensor([[1, nan], [nan, nan], [0.5, 0.25]]), "mean")
        // = 0.6875 over 2 cases, "mean_batch" = [0.75, 0.25]; numpy nanstd(ddof=1) of the
        // case means [1, nan, 0.375] = 0.4419417382415922, of class 1 = 0.35355339.
        let nan = f64::NAN;
        let s = summarize(&[case(&[1.0, nan]), case(&[nan, nan]), case(&[0.5, 0.25])]).unwrap();
        assert_eq!(s.cases, 3);
        assert_eq!(
            (s.foreground_mean.dice.mean, s.foreground_mean.dice.count),
            (0.6875, 2)
        );
        assert!((s.foreground_mean.dice.std - 0.441_941_738_241_592_2).abs() < 1e-15);
        assert_eq!(
            (s.classes[0].dice.mean, s.classes[1].dice.mean),
            (0.75, 0.25)
        );
        assert!((s.classes[0].dice.std - 0.353_553_390_593_273_8).abs() < 1e-15);
        assert!(s.classes[1].dice.std.is_nan());
        assert_eq!(s.classes[0].hd95.mean, 1.5);
        // inf is kept: MONAI's "mean_batch" of [[1, inf], [2, 3]] is [1.5, inf].
        assert_eq!(s.classes[0].hd_max.mean, f64::INFINITY);
        assert!(s.classes[0].hd_max.std.is_nan());
    }

    #[test]
    fn mismatched_and_missing_cases_are_errors() {
        assert_eq!(summarize(&[]), Err(MetricsError::NoCases));
        let err = summarize(&[case(&[1.0]), case(&[1.0, 0.5])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "case 1 has 2 foreground classes, the first case has 1"
        );
    }

    #[test]
    fn summary_round_trips_through_json() {
        let s = summarize(&[case(&[0.5, f64::NAN])]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.contains(r#""hd_max":{"mean":"inf","std":"nan","count":1}"#),
            "{json}"
        );
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (back.classes[0].dice.mean, back.classes[0].dice.count),
            (0.5, 1)
        );
        assert!(back.classes[0].dice.std.is_nan());
        assert_eq!(back.classes[1].dice.count, 0);
    }
}
