//! One parallel pass over a pair of label maps: label validation, the confusion matrix
//! (which gives Dice) and each class's bounding box (which bounds the surface work).

use std::ops::Range;

use ndarray::{ArrayView1, ArrayView3, Axis, Zip};

use super::{LabelMap, MetricsError};

/// Voxel counts and extents of every class in a prediction/ground-truth pair.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Census {
    num_classes: usize,
    /// `confusion[p * C + g]`: voxels labelled `p` in the prediction and `g` in the truth.
    confusion: Vec<u64>,
    /// Per class, the smallest box holding its voxels in either map (`None`: absent).
    boxes: Vec<Option<[Range<usize>; 3]>>,
}

impl Census {
    /// Counts `pred` against `gt`; a label outside `0..num_classes` is an error.
    pub fn of<T>(
        pred: ArrayView3<'_, T>,
        gt: ArrayView3<'_, T>,
        num_classes: usize,
    ) -> Result<Self, MetricsError>
    where
        T: Copy + Sync + Into<i64>,
    {
        let scan = Zip::indexed(pred.lanes(Axis(2)))
            .and(gt.lanes(Axis(2)))
            .par_fold(
                || Scan::new(num_classes),
                |mut scan, (i, j), p, g| {
                    scan.row(i, j, p, g);
                    scan
                },
                Scan::merge,
            );
        if let Some((map, value)) = scan.invalid {
            return Err(MetricsError::Label {
                map,
                value,
                num_classes,
            });
        }
        let boxes = (0..num_classes)
            .map(|c| {
                (scan.hi[c][0] >= scan.lo[c][0])
                    .then(|| std::array::from_fn(|a| scan.lo[c][a]..scan.hi[c][a] + 1))
            })
            .collect();
        Ok(Self {
            num_classes,
            confusion: scan.confusion,
            boxes,
        })
    }

    /// The region of `class` in the prediction or the ground truth.
    pub fn bounding_box(&self, class: usize) -> Option<&[Range<usize>; 3]> {
        self.boxes[class].as_ref()
    }

    /// `2|P ∩ G| / (|P| + |G|)`, or `nan` when the ground truth lacks the class (MONAI's
    /// `DiceMetric(ignore_empty=True)`, even when the prediction lacks it too).
    pub fn dice(&self, class: usize) -> f64 {
        let c = self.num_classes;
        let pred: u64 = self.confusion[class * c..(class + 1) * c].iter().sum();
        let gt: u64 = (0..c).map(|p| self.confusion[p * c + class]).sum();
        if gt == 0 {
            return f64::NAN;
        }
        2.0 * self.confusion[class * c + class] as f64 / (pred + gt) as f64
    }
}

/// Accumulator of one parallel task of [`Census::of`].
struct Scan {
    num_classes: usize,
    confusion: Vec<u64>,
    lo: Vec<[usize; 3]>,
    hi: Vec<[usize; 3]>,
    /// Per class, first and last `k` in the current row (`first == usize::MAX`: unseen).
    first: Vec<usize>,
    last: Vec<usize>,
    seen: Vec<usize>,
    invalid: Option<(LabelMap, i64)>,
}

impl Scan {
    fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            confusion: vec![0; num_classes * num_classes],
            lo: vec![[usize::MAX; 3]; num_classes],
            hi: vec![[0; 3]; num_classes],
            first: vec![usize::MAX; num_classes],
            last: vec![0; num_classes],
            seen: Vec::new(),
            invalid: None,
        }
    }

    fn class_of(&mut self, value: i64, map: LabelMap) -> Option<usize> {
        match usize::try_from(value) {
            Ok(c) if c < self.num_classes => Some(c),
            _ => {
                self.invalid.get_or_insert((map, value));
                None
            }
        }
    }

    /// Scans row `(i, j)` as runs of equal `(pred, gt)` labels, so the per-voxel work
    /// is a comparison with the previous voxel.
    fn row<T: Copy + Into<i64>>(
        &mut self,
        i: usize,
        j: usize,
        pred: ArrayView1<'_, T>,
        gt: ArrayView1<'_, T>,
    ) {
        let mut voxels = pred
            .iter()
            .zip(gt.iter())
            .map(|(&p, &g)| (p.into(), g.into()));
        let Some(mut current) = voxels.next() else {
            return;
        };
        let mut start = 0;
        for (k, labels) in voxels.enumerate() {
            if labels != current {
                self.run(current, start..k + 1);
                (current, start) = (labels, k + 1);
            }
        }
        self.run(current, start..pred.len());
        for c in self.seen.drain(..) {
            let (lo, hi) = (&mut self.lo[c], &mut self.hi[c]);
            *lo = [lo[0].min(i), lo[1].min(j), lo[2].min(self.first[c])];
            *hi = [hi[0].max(i), hi[1].max(j), hi[2].max(self.last[c])];
            self.first[c] = usize::MAX;
        }
    }

    /// Records voxels `ks` of the current row, labelled `(pred, gt)`.
    fn run(&mut self, (pred, gt): (i64, i64), ks: Range<usize>) {
        let (Some(p), Some(g)) = (
            self.class_of(pred, LabelMap::Prediction),
            self.class_of(gt, LabelMap::GroundTruth),
        ) else {
            return;
        };
        self.confusion[p * self.num_classes + g] += ks.len() as u64;
        for c in [p, g] {
            if self.first[c] == usize::MAX {
                self.first[c] = ks.start;
                self.seen.push(c);
            }
            self.last[c] = ks.end - 1;
        }
    }

    fn merge(mut self, other: Self) -> Self {
        self.confusion
            .iter_mut()
            .zip(&other.confusion)
            .for_each(|(a, b)| *a += b);
        for c in 0..self.num_classes {
            self.lo[c] = std::array::from_fn(|a| self.lo[c][a].min(other.lo[c][a]));
            self.hi[c] = std::array::from_fn(|a| self.hi[c][a].max(other.hi[c][a]));
        }
        self.invalid = self.invalid.or(other.invalid);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn counts_boxes_and_dice() {
        let mut pred = Array3::<u8>::zeros([4, 5, 6]);
        let mut gt = Array3::<u8>::zeros([4, 5, 6]);
        pred[[1, 2, 3]] = 1;
        pred[[2, 2, 3]] = 1;
        gt[[2, 2, 3]] = 1;
        gt[[3, 4, 0]] = 1;
        gt[[0, 0, 5]] = 2;
        let census = Census::of(pred.view(), gt.view(), 3).unwrap();
        assert_eq!(census.bounding_box(1), Some(&[1..4, 2..5, 0..4]));
        assert_eq!(census.bounding_box(2), Some(&[0..1, 0..1, 5..6]));
        assert_eq!(census.dice(1), 2.0 * 1.0 / 4.0);
        assert_eq!(census.dice(2), 0.0);
        let empty = Array3::<u8>::zeros([4, 5, 6]);
        let census = Census::of(empty.view(), empty.view(), 3).unwrap();
        assert_eq!(census.bounding_box(1), None);
        assert!(census.dice(1).is_nan());
    }

    #[test]
    fn random_maps_match_direct_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..10 {
            let shape = [
                rng.random_range(1..6usize),
                rng.random_range(1..6usize),
                rng.random_range(1..9usize),
            ];
            // Runs of equal labels, as in real maps, plus an often absent class 3.
            let mut label = || {
                if rng.random_bool(0.05) {
                    3
                } else {
                    rng.random_range(0..3u8)
                }
            };
            let pred = Array3::from_shape_simple_fn(shape, &mut label);
            let gt = pred.mapv(|v| if v == 1 { 1 } else { 0 });
            let census = Census::of(pred.view(), gt.view(), 4).unwrap();
            for class in 0..4u8 {
                let voxels: Vec<_> = pred
                    .indexed_iter()
                    .zip(gt.iter())
                    .filter(|((_, p), g)| **p == class || **g == class)
                    .map(|((idx, _), _)| idx)
                    .collect();
                let expected = (!voxels.is_empty()).then(|| {
                    let lo = |f: fn(&(usize, usize, usize)) -> usize| {
                        voxels.iter().map(f).min().unwrap()
                    };
                    let hi = |f: fn(&(usize, usize, usize)) -> usize| {
                        voxels.iter().map(f).max().unwrap() + 1
                    };
                    [
                        lo(|v| v.0)..hi(|v| v.0),
                        lo(|v| v.1)..hi(|v| v.1),
                        lo(|v| v.2)..hi(|v| v.2),
                    ]
                });
                assert_eq!(
                    census.bounding_box(class.into()),
                    expected.as_ref(),
                    "class {class}"
                );
                let count = |m: &Array3<u8>| m.iter().filter(|&&v| v == class).count() as f64;
                let both = pred
                    .iter()
                    .zip(&gt)
                    .filter(|&(&p, &g)| p == class && g == class)
                    .count() as f64;
                let dice = census.dice(class.into());
                if count(&gt) == 0.0 {
                    assert!(dice.is_nan());
                } else {
                    assert_eq!(dice, 2.0 * both / (count(&pred) + count(&gt)));
                }
            }
        }
    }

    #[test]
    fn out_of_range_labels_are_named() {
        let pred = Array3::<i16>::zeros([2, 2, 2]);
        let mut gt = Array3::<i16>::zeros([2, 2, 2]);
        gt[[1, 1, 1]] = -1;
        let err = Census::of(pred.view(), gt.view(), 2).unwrap_err();
        assert_eq!(
            err,
            MetricsError::Label {
                map: LabelMap::GroundTruth,
                value: -1,
                num_classes: 2
            }
        );
        gt[[1, 1, 1]] = 0;
        let mut pred = pred;
        pred[[0, 1, 0]] = 2;
        let err = Census::of(pred.view(), gt.view(), 2).unwrap_err();
        assert_eq!(
            err,
            MetricsError::Label {
                map: LabelMap::Prediction,
                value: 2,
                num_classes: 2
            }
        );
    }
}
