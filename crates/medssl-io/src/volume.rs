//! `Volume`: the image type every other crate consumes.

use ndarray::{Array4, ArrayView3, Axis};

use crate::geometry::{self, Affine, Reorientation};

/// A channel-first 3-D image: f32 voxels `[C, I, J, K]` and the affine that maps a
/// voxel index `(i, j, k)` to RAS+ world millimetres (nibabel's `img.affine`).
///
/// Spatial index order is the order on disk for NIfTI (nibabel's index order) and
/// (column, row, slice) for DICOM, as ITK and dcm2niix write DICOM to NIfTI. The data is
/// always in standard (C) layout, so `data().as_slice()` is available to fast loops.
///
/// Label maps use the same type: their voxels hold integer class indices (0 =
/// background), which f32 represents exactly up to 2^24. One type keeps image and label
/// transformed by the same code, as MONAI does.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    data: Array4<f32>,
    affine: Affine,
}

impl Volume {
    /// Wraps `data` (`[C, I, J, K]`, any memory layout) and its affine.
    pub fn new(data: Array4<f32>, affine: Affine) -> Volume {
        let data = if data.is_standard_layout() {
            data
        } else {
            data.as_standard_layout().into_owned()
        };
        Volume { data, affine }
    }

    /// The voxels, `[C, I, J, K]`, standard layout.
    pub fn data(&self) -> &Array4<f32> {
        &self.data
    }

    /// Mutable voxels; the shape cannot change through this.
    pub fn data_mut(&mut self) -> &mut Array4<f32> {
        &mut self.data
    }

    /// Gives up the voxels.
    pub fn into_data(self) -> Array4<f32> {
        self.data
    }

    /// Voxel index to RAS+ mm.
    pub fn affine(&self) -> &Affine {
        &self.affine
    }

    /// Number of channels (4-D NIfTI volumes become channels).
    pub fn channels(&self) -> usize {
        self.data.shape()[0]
    }

    /// `[I, J, K]`.
    pub fn spatial_shape(&self) -> [usize; 3] {
        let s = self.data.shape();
        [s[1], s[2], s[3]]
    }

    /// One channel as a 3-D view.
    pub fn channel(&self, c: usize) -> ArrayView3<'_, f32> {
        self.data.index_axis(Axis(0), c)
    }

    /// Voxel spacing in mm along I, J, K (lengths of the affine's columns).
    pub fn spacing(&self) -> [f64; 3] {
        geometry::spacing(&self.affine)
    }

    /// Axis codes such as `"RAS"` (nibabel's `aff2axcodes`).
    pub fn orientation(&self) -> String {
        geometry::orientation_codes(&self.affine)
    }

    /// The same image with axes permuted and flipped to the closest canonical RAS
    /// orientation (nibabel's `as_closest_canonical`, MONAI's `Orientation("RAS")`).
    /// Never resamples. `None` when the affine is degenerate.
    pub fn to_canonical(&self) -> Option<Volume> {
        let plan = Reorientation::to_canonical(&self.affine, self.spatial_shape())?;
        if plan.is_identity() {
            return Some(self.clone());
        }
        let mut view = self.data.view();
        for (o, &flip) in plan.flip.iter().enumerate() {
            if flip {
                view.invert_axis(Axis(plan.source_axis[o] + 1));
            }
        }
        let [a, b, c] = plan.source_axis;
        let view = view.permuted_axes([0, a + 1, b + 1, c + 1]);
        Some(Volume::new(
            view.as_standard_layout().into_owned(),
            plan.affine,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::affine_from_rows;

    #[test]
    fn canonical_moves_each_voxel_to_the_same_world_point() {
        let affine = affine_from_rows([
            [0.0, 1.0, 0.0, 5.0],
            [0.0, 0.0, -1.5, 7.0],
            [-3.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let data = Array4::from_shape_fn((2, 4, 5, 6), |(c, i, j, k)| {
            (c * 1000 + i * 100 + j * 10 + k) as f32
        });
        let vol = Volume::new(data, affine);
        let canon = vol.to_canonical().unwrap();
        assert_eq!(canon.orientation(), "RAS");
        assert_eq!(canon.spatial_shape(), [5, 6, 4]);
        for ((c, i, j, k), v) in canon.data().indexed_iter() {
            let world = canon.affine() * nalgebra::Vector4::new(i as f64, j as f64, k as f64, 1.0);
            let src = affine.try_inverse().unwrap() * world;
            let (si, sj, sk) = (src[0].round(), src[1].round(), src[2].round());
            assert_eq!(*v, vol.data()[[c, si as usize, sj as usize, sk as usize]]);
        }
        assert!(canon.data().is_standard_layout());
    }
}
