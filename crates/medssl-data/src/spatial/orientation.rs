//! `orientation`: permute and flip the voxel axes so they run along the named world
//! directions (MONAI's `Orientationd(axcodes=...)`, nibabel's `io_orientation` rule).
//! Exact: no resampling, so oblique scans keep their obliquity in the affine.

use serde::Deserialize;

use crate::checks::invalid;
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::FromParams;
use crate::spatial::axes::AxisMove;
use crate::transform::Transform;
use medssl_io::geometry::Reorientation;

/// Parameters of `orientation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrientationParams {
    /// Target axis codes, one letter per array axis from `L`/`R`, `P`/`A`, `I`/`S` (each
    /// pair once): the direction each axis runs *towards*, as nibabel writes them.
    #[serde(default = "default_axcodes")]
    pub axcodes: String,
}

fn default_axcodes() -> String {
    "RAS".to_string()
}

/// Reorients image and label to `axcodes`.
#[derive(Debug, Clone)]
pub struct Orientation {
    /// From the closest canonical (RAS) orientation to the target.
    from_ras: AxisMove,
}

impl FromParams for Orientation {
    const NAME: &'static str = "orientation";
    const MONAI: &'static str = "Orientationd";
    type Params = OrientationParams;

    fn from_params(params: OrientationParams) -> Result<Orientation> {
        const PAIRS: [[char; 2]; 3] = [['L', 'R'], ['P', 'A'], ['I', 'S']];
        let codes: Vec<char> = params.axcodes.to_uppercase().chars().collect();
        let bad = || {
            invalid(
                Self::NAME,
                "axcodes",
                format!(
                    "must be 3 letters naming each of L/R, P/A, I/S once (e.g. \"RAS\", \"LPS\"), got {:?}",
                    params.axcodes
                ),
            )
        };
        if codes.len() != 3 {
            return Err(bad());
        }
        let mut from_ras = AxisMove::flip(&[]);
        let mut seen = [false; 3];
        for (o, code) in codes.iter().enumerate() {
            let (world, pair) = PAIRS
                .iter()
                .enumerate()
                .find(|(_, pair)| pair.contains(code))
                .ok_or_else(bad)?;
            if std::mem::replace(&mut seen[world], true) {
                return Err(bad());
            }
            from_ras.source[o] = world;
            from_ras.reverse[o] = *code == pair[0];
        }
        Ok(Orientation { from_ras })
    }
}

impl Orientation {
    /// The move that takes a sample to the target orientation.
    fn plan(&self, sample: &Sample) -> Result<AxisMove> {
        let to_ras = Reorientation::to_canonical(sample.image.affine(), sample.spatial_shape())
            .ok_or_else(|| {
                sample.error(format!(
                    "orientation: the image affine is degenerate (a zero, non-finite or \
                         dependent column), so its axis directions are unknown: {}",
                    sample.image.affine()
                ))
            })?;
        let to_ras = AxisMove {
            source: to_ras.source_axis,
            reverse: to_ras.flip,
        };
        Ok(to_ras.then(&self.from_ras))
    }
}

impl Transform for Orientation {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let plan = self.plan(&sample)?;
        Ok(vec![plan.apply_sample(sample)])
    }
}
