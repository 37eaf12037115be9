//! Parameter types the spatial transforms share: per-axis values that a configuration
//! may write as one number (every axis) or three, random ranges, and the value checks
//! whose errors name the transform and the parameter.

use serde::Deserialize;

use crate::checks::invalid;
use crate::error::Result;

/// One value per spatial axis `[I, J, K]`. A configuration writes either a list of three
/// (`roi_size = [96, 96, 64]`) or one number for all axes (`margin = 2`), as MONAI's
/// `ensure_tuple_rep` allows.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(
    from = "OneOrThree<T>",
    bound(deserialize = "T: Deserialize<'de> + Copy")
)]
pub struct Triple<T>(pub [T; 3]);

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a number or a list of 3 numbers (one per spatial axis)"
)]
enum OneOrThree<T> {
    One(T),
    Three([T; 3]),
}

impl<T: Copy> From<OneOrThree<T>> for Triple<T> {
    fn from(value: OneOrThree<T>) -> Triple<T> {
        match value {
            OneOrThree::One(v) => Triple([v; 3]),
            OneOrThree::Three(v) => Triple(v),
        }
    }
}

/// One spatial axis or several (`spatial_axis = 0` or `spatial_axis = [0, 2]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "OneOrMany")]
pub struct AxisList(pub Vec<i64>);

#[derive(Deserialize)]
#[serde(untagged, expecting = "an axis (0, 1, 2) or a list of axes")]
enum OneOrMany {
    One(i64),
    Many(Vec<i64>),
}

impl From<OneOrMany> for AxisList {
    fn from(value: OneOrMany) -> AxisList {
        match value {
            OneOrMany::One(a) => AxisList(vec![a]),
            OneOrMany::Many(a) => AxisList(a),
        }
    }
}

/// The interval a random parameter is drawn from, uniformly. Written as one number `x`
/// (the interval `[-x, x]`) or a pair `[low, high]`, as in MONAI's `RandAffine` ranges.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(from = "RangeRepr")]
pub struct AxisRange {
    pub low: f64,
    pub high: f64,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a number x (the range [-x, x]) or a pair [low, high]"
)]
enum RangeRepr {
    Symmetric(f64),
    Bounds([f64; 2]),
}

impl From<RangeRepr> for AxisRange {
    fn from(value: RangeRepr) -> AxisRange {
        match value {
            RangeRepr::Symmetric(x) => AxisRange { low: -x, high: x },
            RangeRepr::Bounds([low, high]) => AxisRange { low, high },
        }
    }
}

impl AxisRange {
    /// A uniform draw from `[low, high)`; exactly `low` when the interval is empty.
    pub fn sample(&self, rng: &mut crate::Rng) -> f64 {
        use rand::RngExt;
        self.low + (self.high - self.low) * rng.random::<f64>()
    }
}

/// A spatial axis index `0..3`, or `-3..0` counted from the last axis (numpy style).
pub fn spatial_axis(transform: &str, param: &str, axis: i64) -> Result<usize> {
    match axis {
        0..=2 => Ok(axis as usize),
        -3..=-1 => Ok((axis + 3) as usize),
        _ => Err(invalid(
            transform,
            param,
            format!("names axis {axis}; spatial axes are 0, 1, 2 (or -3, -2, -1)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        size: Triple<usize>,
        spacing: Triple<f64>,
        range: AxisRange,
    }

    fn parse(text: &str) -> std::result::Result<Example, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn triples_broadcast_one_number_and_take_three() {
        let e = parse("size = 4\nspacing = [1, 1.5, 2.0]\nrange = 0.5").unwrap();
        assert_eq!(e.size, Triple([4, 4, 4]));
        assert_eq!(e.spacing, Triple([1.0, 1.5, 2.0]));
        assert_eq!(
            e.range,
            AxisRange {
                low: -0.5,
                high: 0.5
            }
        );
        let e = parse("size = [1, 2, 3]\nspacing = 2\nrange = [0.1, 0.3]").unwrap();
        assert_eq!(e.size, Triple([1, 2, 3]));
        assert_eq!(e.range.low, 0.1);
    }

    #[test]
    fn wrong_lengths_and_types_say_what_is_expected() {
        let err = parse("size = [1, 2]\nspacing = 1\nrange = 1").unwrap_err();
        assert!(err.to_string().contains("a list of 3 numbers"), "{err}");
        let err = parse("size = 1.5\nspacing = 1\nrange = 1").unwrap_err();
        assert!(err.to_string().contains("a list of 3 numbers"), "{err}");
        let err = parse("size = 1\nspacing = 1\nrange = [1, 2, 3]").unwrap_err();
        assert!(err.to_string().contains("pair [low, high]"), "{err}");
    }

    #[test]
    fn axes_count_from_the_end_when_negative() {
        assert_eq!(spatial_axis("t", "axis", -1).unwrap(), 2);
        assert_eq!(spatial_axis("t", "axis", 1).unwrap(), 1);
        let err = spatial_axis("t", "axis", 3).unwrap_err().to_string();
        assert!(err.contains("`t`") && err.contains("`axis`"), "{err}");
    }
}
