//! `rand_flip` (MONAI's `RandFlipd`) and `rand_rotate90` (`RandRotate90d`): exact grid
//! moves applied with probability `prob`, to image and label together, with the affine
//! updated so world positions stay where they were.

use rand::RngExt;
use serde::Deserialize;

use crate::checks::{check_prob, invalid};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::FromParams;
use crate::spatial::axes::AxisMove;
use crate::spatial::params::{AxisList, spatial_axis};
use crate::transform::Transform;

fn default_prob() -> f64 {
    0.1
}

/// Parameters of `rand_flip`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandFlipParams {
    /// Probability of flipping.
    #[serde(default = "default_prob")]
    pub prob: f64,
    /// Axes reversed together when the flip happens; all three when absent.
    #[serde(default)]
    pub spatial_axis: Option<AxisList>,
}

/// Reverses the chosen axes with probability `prob`.
#[derive(Debug, Clone)]
pub struct RandFlip {
    prob: f64,
    flip: AxisMove,
}

impl FromParams for RandFlip {
    const NAME: &'static str = "rand_flip";
    const MONAI: &'static str = "RandFlipd";
    type Params = RandFlipParams;

    fn from_params(params: RandFlipParams) -> Result<RandFlip> {
        check_prob(Self::NAME, params.prob)?;
        let axes = match &params.spatial_axis {
            None => vec![0, 1, 2],
            Some(list) => list
                .0
                .iter()
                .map(|&a| spatial_axis(Self::NAME, "spatial_axis", a))
                .collect::<Result<_>>()?,
        };
        Ok(RandFlip {
            prob: params.prob,
            flip: AxisMove::flip(&axes),
        })
    }
}

impl Transform for RandFlip {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        if rng.random::<f64>() < self.prob {
            Ok(vec![self.flip.apply_sample(sample)])
        } else {
            Ok(vec![sample])
        }
    }
}

/// Parameters of `rand_rotate90`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandRotate90Params {
    /// Probability of rotating.
    #[serde(default = "default_prob")]
    pub prob: f64,
    /// The number of quarter turns is uniform in `1..=max_k`.
    #[serde(default = "default_max_k")]
    pub max_k: u32,
    /// The plane of rotation; turns go from the first axis towards the second, as
    /// `np.rot90` does.
    #[serde(default = "default_plane")]
    pub spatial_axes: [i64; 2],
}

fn default_max_k() -> u32 {
    3
}

fn default_plane() -> [i64; 2] {
    [0, 1]
}

/// Turns image and label by `k` quarter turns (k uniform in `1..=max_k`) with
/// probability `prob`.
#[derive(Debug, Clone)]
pub struct RandRotate90 {
    prob: f64,
    max_k: u32,
    plane: [usize; 2],
}

impl FromParams for RandRotate90 {
    const NAME: &'static str = "rand_rotate90";
    const MONAI: &'static str = "RandRotate90d";
    type Params = RandRotate90Params;

    fn from_params(params: RandRotate90Params) -> Result<RandRotate90> {
        check_prob(Self::NAME, params.prob)?;
        if params.max_k == 0 {
            return Err(invalid(Self::NAME, "max_k", "must be at least 1"));
        }
        let a = spatial_axis(Self::NAME, "spatial_axes", params.spatial_axes[0])?;
        let b = spatial_axis(Self::NAME, "spatial_axes", params.spatial_axes[1])?;
        if a == b {
            return Err(invalid(
                Self::NAME,
                "spatial_axes",
                format!(
                    "must name two different axes, got {:?}",
                    params.spatial_axes
                ),
            ));
        }
        Ok(RandRotate90 {
            prob: params.prob,
            max_k: params.max_k,
            plane: [a, b],
        })
    }
}

impl Transform for RandRotate90 {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        if rng.random::<f64>() < self.prob {
            let k = rng.random_range(1..=self.max_k);
            let turn = AxisMove::rot90(k, self.plane[0], self.plane[1]);
            Ok(vec![turn.apply_sample(sample)])
        } else {
            Ok(vec![sample])
        }
    }
}
