//! Cutting a box out of a volume — the one primitive behind every crop and pad. The box
//! may reach outside the volume; those voxels take a constant. The affine is moved so
//! every kept voxel stays at its world position.

use medssl_io::nalgebra::Vector4;
use medssl_io::{Affine, Volume};
use ndarray::{Array4, s};

use crate::sample::Sample;

/// The box `[start, start + size)` of `volume` (start may be negative, the end may lie
/// past the border: outside voxels are `fill`), with the affine translated to the box's
/// first voxel.
pub fn extract(volume: &Volume, start: [isize; 3], size: [usize; 3], fill: f32) -> Volume {
    let shape = volume.spatial_shape();
    let mut data = Array4::from_elem((volume.channels(), size[0], size[1], size[2]), fill);
    // Overlap of the box with the volume, in source and destination coordinates.
    let mut src = [(0isize, 0isize); 3];
    let mut dst = [(0isize, 0isize); 3];
    for a in 0..3 {
        let lo = start[a].max(0);
        let hi = (start[a] + size[a] as isize).min(shape[a] as isize);
        src[a] = (lo, hi.max(lo));
        dst[a] = (lo - start[a], hi.max(lo) - start[a]);
    }
    if (0..3).all(|a| src[a].1 > src[a].0) {
        data.slice_mut(s![
            ..,
            dst[0].0..dst[0].1,
            dst[1].0..dst[1].1,
            dst[2].0..dst[2].1
        ])
        .assign(&volume.data().slice(s![
            ..,
            src[0].0..src[0].1,
            src[1].0..src[1].1,
            src[2].0..src[2].1
        ]));
    }
    Volume::new(data, translated(volume.affine(), start))
}

/// The affine of a grid whose first voxel is voxel `start` of the grid of `affine`.
pub fn translated(affine: &Affine, start: [isize; 3]) -> Affine {
    let origin = affine * Vector4::new(start[0] as f64, start[1] as f64, start[2] as f64, 1.0);
    let mut moved = *affine;
    moved.fixed_view_mut::<4, 1>(0, 3).copy_from(&origin);
    moved
}

/// The same box cut from a sample's image (outside voxels `image_fill`) and label
/// (outside voxels background, 0).
pub fn extract_sample(
    sample: &Sample,
    start: [isize; 3],
    size: [usize; 3],
    image_fill: f32,
) -> Sample {
    Sample {
        id: sample.id.clone(),
        image: extract(&sample.image, start, size, image_fill),
        label: sample.label.as_ref().map(|l| extract(l, start, size, 0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_io::nalgebra::Matrix4;

    fn ramp(shape: [usize; 3]) -> Volume {
        let data = Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(_, i, j, k)| {
            (i * 100 + j * 10 + k) as f32
        });
        let mut affine = Matrix4::from_diagonal(&Vector4::new(2.0, 1.5, 3.0, 1.0));
        affine[(0, 3)] = -10.0;
        Volume::new(data, affine)
    }

    #[test]
    fn box_inside_keeps_values_and_world_positions() {
        let v = ramp([5, 6, 7]);
        let c = extract(&v, [1, 2, 3], [3, 2, 4], -1.0);
        assert_eq!(c.spatial_shape(), [3, 2, 4]);
        assert_eq!(c.data()[[0, 0, 0, 0]], 123.0);
        assert_eq!(c.data()[[0, 2, 1, 3]], 336.0);
        let world = |a: &Affine, i: f64, j: f64, k: f64| a * Vector4::new(i, j, k, 1.0);
        assert_eq!(
            world(c.affine(), 0.0, 0.0, 0.0),
            world(v.affine(), 1.0, 2.0, 3.0)
        );
    }

    #[test]
    fn box_past_the_border_is_filled() {
        let v = ramp([2, 2, 2]);
        let c = extract(&v, [-1, 0, 1], [4, 2, 2], 7.0);
        assert_eq!(c.data()[[0, 0, 0, 0]], 7.0);
        assert_eq!(c.data()[[0, 1, 0, 0]], 1.0);
        assert_eq!(c.data()[[0, 2, 1, 0]], 111.0);
        assert_eq!(c.data()[[0, 2, 1, 1]], 7.0);
        assert_eq!(c.data()[[0, 3, 0, 0]], 7.0);
        assert_eq!(c.affine()[(0, 3)], -12.0);
        let outside = extract(&v, [5, 5, 5], [2, 2, 2], 0.5);
        assert!(outside.data().iter().all(|&x| x == 0.5));
    }
}
