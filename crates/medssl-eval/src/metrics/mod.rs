//! Segmentation metrics with MONAI 1.6.1's definitions, per case and foreground class:
//! Dice, 95th-percentile and maximum Hausdorff distance, average surface distance
//! (symmetric and prediction → truth) and normalised surface Dice, in mm from the voxel
//! spacing.
//!
//! Results match `monai.metrics` on one-hot inputs with `include_background=False`,
//! euclidean distances, `use_subvoxels=False` and `DiceMetric`'s `ignore_empty=True`,
//! including which results are `nan` and which `inf` when a mask is empty:
//!
//! | class present in | dice | hd95 | hd_max | asd (both) | nsd |
//! |---|---|---|---|---|---|
//! | truth only | 0 | nan | inf | inf | 0 |
//! | prediction only | nan | nan | inf | inf | 0 |
//! | neither | nan | nan | nan | nan | nan |
//!
//! Surfaces are the mask XOR its 6-connected erosion (background beyond the array).
//! Distances from one surface to the other come from an exact Euclidean distance
//! transform ([`distance_transform`]) of the other surface on the bounding box of the
//! class in either map: every surface voxel lies in that box, so cropping changes no
//! distance. Work is parallel across classes and within each transform; a class in
//! flight holds about 20 bytes per voxel of its box.
//!
//! Distances, sums, means and the HD95 percentile (rank `0.95 · (n − 1)`, not MONAI's
//! float32-rounded 0.95) are f64 where MONAI keeps float32: results equal a float64
//! evaluation of MONAI's rules to ~1e-12 and MONAI's own float32 values to ~1e-7
//! relative. The NSD tolerance test is done in float32 as MONAI does it, so a distance
//! that rounds onto the tolerance counts the same way. [`summarize`] reduces per-case
//! results over a data set.

mod aggregate;
mod census;
pub mod distance_transform;
pub mod json_float;
pub mod surface;
mod surface_scores;

use std::fmt;

use ndarray::{ArrayView3, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use aggregate::{MetricStats, Stat, Summary, summarize};
use census::Census;
use surface::{directed_surface_distances, surface_voxels};
use surface_scores::surface_scores;

/// What [`segmentation_metrics`] needs besides the two label maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSettings {
    /// Classes including background 0; labels must lie in `0..num_classes`.
    pub num_classes: usize,
    /// Voxel size in mm along array axes 0, 1, 2 (not necessarily x, y, z).
    pub spacing_mm: [f64; 3],
    /// Normalised-surface-Dice tolerance in mm of each foreground class `1..num_classes`.
    pub nsd_tolerance_mm: Vec<f64>,
}

impl MetricSettings {
    fn validate(&self) -> Result<(), MetricsError> {
        if self.num_classes < 2 {
            return Err(MetricsError::Classes(self.num_classes));
        }
        if !self.spacing_mm.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(MetricsError::Spacing(self.spacing_mm));
        }
        if self.nsd_tolerance_mm.len() != self.num_classes - 1 {
            return Err(MetricsError::ToleranceCount {
                expected: self.num_classes - 1,
                got: self.nsd_tolerance_mm.len(),
            });
        }
        match self
            .nsd_tolerance_mm
            .iter()
            .position(|t| !(t.is_finite() && *t >= 0.0))
        {
            Some(i) => Err(MetricsError::Tolerance {
                class: i + 1,
                value: self.nsd_tolerance_mm[i],
            }),
            None => Ok(()),
        }
    }
}

/// Which of the two label maps a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMap {
    Prediction,
    GroundTruth,
}

impl fmt::Display for LabelMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prediction => "the prediction",
            Self::GroundTruth => "the ground truth",
        })
    }
}

/// Why metrics could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics need background and at least one foreground class, got num_classes = {0}")]
    Classes(usize),
    #[error("voxel spacing must be finite and positive, got {0:?} mm")]
    Spacing([f64; 3]),
    #[error("expected one NSD tolerance per foreground class ({expected}), got {got}")]
    ToleranceCount { expected: usize, got: usize },
    #[error("the NSD tolerance of class {class} must be finite and non-negative, got {value} mm")]
    Tolerance { class: usize, value: f64 },
    #[error("prediction shape {pred:?} differs from ground-truth shape {gt:?}")]
    Shape { pred: Vec<usize>, gt: Vec<usize> },
    #[error("the label maps have no voxels (shape {0:?})")]
    Empty(Vec<usize>),
    #[error("{map} holds label {value}, outside the classes 0..{num_classes}")]
    Label {
        map: LabelMap,
        value: i64,
        num_classes: usize,
    },
    #[error("no cases to summarise")]
    NoCases,
    #[error("case {case} has {got} foreground classes, the first case has {expected}")]
    ClassCount {
        case: usize,
        expected: usize,
        got: usize,
    },
}

/// The metrics [`ClassMetrics`] holds, in its field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Dice,
    Hd95,
    HdMax,
    AsdSymmetric,
    AsdPredToGt,
    Nsd,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Self::Dice,
        Self::Hd95,
        Self::HdMax,
        Self::AsdSymmetric,
        Self::AsdPredToGt,
        Self::Nsd,
    ];

    /// The field name, as in `result.json` and the reference fixtures.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dice => "dice",
            Self::Hd95 => "hd95",
            Self::HdMax => "hd_max",
            Self::AsdSymmetric => "asd_symmetric",
            Self::AsdPredToGt => "asd_pred_to_gt",
            Self::Nsd => "nsd",
        }
    }
}

/// The metrics of one foreground class in one case; distances in mm. Serialised with
/// non-finite values as the strings `"nan"`/`"inf"` ([`json_float`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    #[serde(with = "json_float")]
    pub dice: f64,
    /// 95th percentile of each directed surface-distance list, the larger of the two.
    #[serde(with = "json_float")]
    pub hd95: f64,
    /// Largest surface distance in either direction.
    #[serde(with = "json_float")]
    pub hd_max: f64,
    /// Mean over both directed lists together.
    #[serde(with = "json_float")]
    pub asd_symmetric: f64,
    /// Mean distance from the prediction's surface to the ground truth's.
    #[serde(with = "json_float")]
    pub asd_pred_to_gt: f64,
    /// Fraction of both surfaces within the class tolerance of the other.
    #[serde(with = "json_float")]
    pub nsd: f64,
}

impl ClassMetrics {
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Dice => self.dice,
            Metric::Hd95 => self.hd95,
            Metric::HdMax => self.hd_max,
            Metric::AsdSymmetric => self.asd_symmetric,
            Metric::AsdPredToGt => self.asd_pred_to_gt,
            Metric::Nsd => self.nsd,
        }
    }
}

/// Metrics of every foreground class `1..num_classes` (element 0 is class 1) for a
/// predicted label map against the ground truth, both `[D, H, W]` with integer labels
/// of any type that converts losslessly to `i64` (`u8`, `i16`, `u32`, `i64`, ...).
pub fn segmentation_metrics<T>(
    pred: ArrayView3<'_, T>,
    gt: ArrayView3<'_, T>,
    settings: &MetricSettings,
) -> Result<Vec<ClassMetrics>, MetricsError>
where
    T: Copy + Send + Sync + Into<i64>,
{
    settings.validate()?;
    let census = census(pred, gt, settings.num_classes)?;
    Ok((1..settings.num_classes)
        .into_par_iter()
        .map(|class| class_metrics(pred, gt, class, &census, settings))
        .collect())
}

/// Dice alone of every foreground class, as in [`segmentation_metrics`] (`nan` where
/// the ground truth lacks the class): one pass over the maps, cheap enough for
/// validation during training.
pub fn dice_per_class<T>(
    pred: ArrayView3<'_, T>,
    gt: ArrayView3<'_, T>,
    num_classes: usize,
) -> Result<Vec<f64>, MetricsError>
where
    T: Copy + Send + Sync + Into<i64>,
{
    if num_classes < 2 {
        return Err(MetricsError::Classes(num_classes));
    }
    let census = census(pred, gt, num_classes)?;
    Ok((1..num_classes).map(|class| census.dice(class)).collect())
}

/// Checks that the maps are comparable and counts them.
fn census<T>(
    pred: ArrayView3<'_, T>,
    gt: ArrayView3<'_, T>,
    num_classes: usize,
) -> Result<Census, MetricsError>
where
    T: Copy + Send + Sync + Into<i64>,
{
    if pred.shape() != gt.shape() {
        return Err(MetricsError::Shape {
            pred: pred.shape().to_vec(),
            gt: gt.shape().to_vec(),
        });
    }
    if pred.is_empty() {
        return Err(MetricsError::Empty(pred.shape().to_vec()));
    }
    Census::of(pred, gt, num_classes)
}

fn class_metrics<T>(
    pred: ArrayView3<'_, T>,
    gt: ArrayView3<'_, T>,
    class: usize,
    census: &Census,
    settings: &MetricSettings,
) -> ClassMetrics
where
    T: Copy + Send + Sync + Into<i64>,
{
    let (pred_to_gt, gt_to_pred) = match census.bounding_box(class) {
        None => (Vec::new(), Vec::new()),
        Some([r0, r1, r2]) => {
            let region = s![r0.clone(), r1.clone(), r2.clone()];
            let surface = |map: ArrayView3<'_, T>| {
                let mask = map.slice(region).mapv(|v| v.into() == class as i64);
                surface_voxels(mask.view())
            };
            let (pred_surface, gt_surface) = rayon::join(|| surface(pred), || surface(gt));
            let spacing = settings.spacing_mm;
            rayon::join(
                || directed_surface_distances(pred_surface.view(), gt_surface.view(), spacing),
                || directed_surface_distances(gt_surface.view(), pred_surface.view(), spacing),
            )
        }
    };
    let scores = surface_scores(pred_to_gt, gt_to_pred, settings.nsd_tolerance_mm[class - 1]);
    ClassMetrics {
        dice: census.dice(class),
        hd95: scores.hd95,
        hd_max: scores.hd_max,
        asd_symmetric: scores.asd_symmetric,
        asd_pred_to_gt: scores.asd_pred_to_gt,
        nsd: scores.nsd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn settings(num_classes: usize) -> MetricSettings {
        MetricSettings {
            num_classes,
            spacing_mm: [1.0, 1.0, 1.0],
            nsd_tolerance_mm: vec![1.0; num_classes - 1],
        }
    }

    #[test]
    fn bad_settings_and_inputs_are_errors() {
        let a = Array3::<u8>::zeros([2, 3, 4]);
        let with = |edit: &dyn Fn(&mut MetricSettings)| {
            let mut s = settings(3);
            edit(&mut s);
            segmentation_metrics(a.view(), a.view(), &s).unwrap_err()
        };
        assert_eq!(with(&|s| s.num_classes = 1), MetricsError::Classes(1));
        assert_eq!(
            with(&|s| s.spacing_mm[1] = f64::NAN).to_string(),
            "voxel spacing must be finite and positive, got [1.0, NaN, 1.0] mm"
        );
        assert_eq!(
            with(&|s| s.nsd_tolerance_mm.truncate(1)),
            MetricsError::ToleranceCount {
                expected: 2,
                got: 1
            }
        );
        assert_eq!(
            with(&|s| s.nsd_tolerance_mm[1] = -1.0),
            MetricsError::Tolerance {
                class: 2,
                value: -1.0
            }
        );
        let b = Array3::<u8>::zeros([2, 3, 5]);
        let err = segmentation_metrics(a.view(), b.view(), &settings(2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prediction shape [2, 3, 4] differs from ground-truth shape [2, 3, 5]"
        );
        let empty = Array3::<u8>::zeros([0, 3, 4]);
        let err = segmentation_metrics(empty.view(), empty.view(), &settings(2)).unwrap_err();
        assert_eq!(err, MetricsError::Empty(vec![0, 3, 4]));
        assert_eq!(
            dice_per_class(a.view(), a.view(), 1),
            Err(MetricsError::Classes(1))
        );
        assert!(matches!(
            dice_per_class(a.view(), b.view(), 2),
            Err(MetricsError::Shape { .. })
        ));
    }

    #[test]
    fn class_metrics_serialise_non_finite_values_as_strings() {
        let m = ClassMetrics {
            dice: 0.5,
            hd95: f64::NAN,
            hd_max: f64::INFINITY,
            asd_symmetric: 1.25,
            asd_pred_to_gt: 0.0,
            nsd: 1.0,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"dice":0.5,"hd95":"nan","hd_max":"inf","asd_symmetric":1.25,"asd_pred_to_gt":0.0,"nsd":1.0}"#
        );
        let back: ClassMetrics = serde_json::from_str(&json).unwrap();
        assert!(back.hd95.is_nan() && back.hd_max == f64::INFINITY && back.asd_symmetric == 1.25);
        assert!(serde_json::from_str::<ClassMetrics>(&json.replace("\"inf\"", "\"big\"")).is_err());
    }
}
