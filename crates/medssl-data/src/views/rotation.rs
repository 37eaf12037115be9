//! Rotation prediction: fixed, numbered sets of quarter-turn rotations whose label the
//! network must recognise.
//!
//! A [`Rotation`] turns the array by `turns × 90°` in the plane of two spatial axes with
//! exactly numpy's `np.rot90(x, turns, axes=(a + 1, b + 1))` semantics on a `[C, I, J, K]`
//! array (also `torch.rot90`): axis `a` turns towards axis `b`, so for one turn
//! `out[.., x, .., y, ..] = in[.., y, .., n_b − 1 − x, ..]` (`x` on axis `a`, `y` on
//! axis `b`), and the two axes swap extents.

use medssl_io::nalgebra::Matrix4;
use medssl_io::{Affine, Volume};
use ndarray::Axis;
use rand::RngExt;

use crate::error::{DataError, Result};
use crate::rng::Rng;

/// `turns` quarter turns (0–3) in the plane of spatial axes `plane = [a, b]` (0 = I,
/// 1 = J, 2 = K), turning `a` towards `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Quarter turns, 0–3.
    pub turns: u8,
    /// The two spatial axes spanning the rotation plane, distinct.
    pub plane: [usize; 2],
}

impl Rotation {
    /// The rotation that undoes this one.
    pub fn inverse(self) -> Rotation {
        Rotation {
            turns: (4 - self.turns % 4) % 4,
            plane: self.plane,
        }
    }
}

const fn rot(turns: u8, a: usize, b: usize) -> Rotation {
    Rotation {
        turns,
        plane: [a, b],
    }
}

/// Tang et al.'s set: `rot_rand` in SwinUNETR's pretraining code draws `k` in 0–3 and
/// applies `x.rot90(k, (2, 3))` to each `[C, H, W, D]` sample, i.e. turns in the plane of
/// the last two spatial axes (J, K). Label = `k`.
const TANG: [Rotation; 4] = [rot(0, 1, 2), rot(1, 1, 2), rot(2, 1, 2), rot(3, 1, 2)];

/// Identity plus 1, 2 and 3 quarter turns about each axis (the 10 classes of 3-D rotation
/// prediction, Taleb et al. 2020): labels 1–3 turn in the (J, K) plane, 4–6 in (I, K),
/// 7–9 in (I, J).
const AXIS_PLANES: [Rotation; 10] = [
    rot(0, 1, 2),
    rot(1, 1, 2),
    rot(2, 1, 2),
    rot(3, 1, 2),
    rot(1, 0, 2),
    rot(2, 0, 2),
    rot(3, 0, 2),
    rot(1, 0, 1),
    rot(2, 0, 1),
    rot(3, 0, 1),
];

/// Which rotations a rotation-prediction head classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationSet {
    /// 4 classes: 0/90/180/270° in the (J, K) plane, as SwinUNETR pretraining.
    Tang,
    /// 10 classes: identity and 90/180/270° in each axis plane, for RotNet.
    AxisPlanes,
}

impl RotationSet {
    /// The rotation of each label, label = index.
    pub fn targets(self) -> &'static [Rotation] {
        match self {
            RotationSet::Tang => &TANG,
            RotationSet::AxisPlanes => &AXIS_PLANES,
        }
    }

    /// The rotation with `label`; an error for a label outside the set.
    pub fn rotation(self, label: usize) -> Result<Rotation> {
        self.targets().get(label).copied().ok_or_else(|| {
            DataError::Config(format!(
                "rotation label {label} is outside the {self:?} set (0–{})",
                self.targets().len() - 1
            ))
        })
    }

    /// `volume` rotated by the rotation with `label`.
    pub fn rotate(self, volume: &Volume, label: usize) -> Result<Volume> {
        Ok(rotate(volume, self.rotation(label)?))
    }

    /// A uniformly drawn label and the volume rotated by it.
    pub fn random(self, volume: &Volume, rng: &mut Rng) -> (Volume, usize) {
        let label = rng.random_range(0..self.targets().len());
        (rotate(volume, self.targets()[label]), label)
    }
}

/// `volume` rotated by `rotation` (see the module docs for the index mapping). The affine
/// is changed so every voxel keeps its world position: the rotation shows in the array,
/// which is what the network sees, while the image still overlays its source.
pub fn rotate(volume: &Volume, rotation: Rotation) -> Volume {
    let [a, b] = rotation.plane;
    let mut view = volume.data().view();
    // new index -> old index, composed in the order the view operations are applied.
    let mut to_old = Matrix4::<f64>::identity();
    let flip = |view: &mut ndarray::ArrayView4<f32>, axis: usize, to_old: &mut Affine| {
        view.invert_axis(Axis(axis + 1));
        let mut m = Matrix4::identity();
        m[(axis, axis)] = -1.0;
        m[(axis, 3)] = (view.shape()[axis + 1] - 1) as f64;
        *to_old *= m;
    };
    let swap = |view: &mut ndarray::ArrayView4<f32>, to_old: &mut Affine| {
        view.swap_axes(a + 1, b + 1);
        let mut m = Matrix4::identity();
        m.swap_rows(a, b);
        *to_old *= m;
    };
    match rotation.turns % 4 {
        0 => {}
        // np.rot90: k = 1 is transpose(flip(m, b)), k = 3 is flip(transpose(m), b).
        1 => {
            flip(&mut view, b, &mut to_old);
            swap(&mut view, &mut to_old);
        }
        2 => {
            flip(&mut view, a, &mut to_old);
            flip(&mut view, b, &mut to_old);
        }
        _ => {
            swap(&mut view, &mut to_old);
            flip(&mut view, b, &mut to_old);
        }
    }
    Volume::new(
        view.as_standard_layout().into_owned(),
        volume.affine() * to_old,
    )
}
