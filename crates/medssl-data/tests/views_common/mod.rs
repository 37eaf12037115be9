//! Helpers shared by the view tests: volumes whose voxels encode their own index, so a
//! view can be checked voxel by voxel against the box it claims, and small transforms.

// Each test file uses a different subset of the helpers.
#![allow(dead_code)]

use medssl_data::rng::Rng;
use medssl_data::{Pipeline, Result, Sample, Transform};
use medssl_io::Volume;
use medssl_io::nalgebra::{Matrix4, Vector4};
use ndarray::Array4;
use rand::RngExt;

/// Channel offset of the encoding (values stay below 2^24, exact in f32).
pub const CHANNEL: f32 = 100_000.0;

/// The value encoding voxel `(c, i, j, k)` of a volume of `shape`.
pub fn code(shape: [usize; 3], c: usize, [i, j, k]: [usize; 3]) -> f32 {
    c as f32 * CHANNEL + ((i * shape[1] + j) * shape[2] + k) as f32
}

/// The label of voxel `(i, j, k)`: 1 + (i + 2j + 3k) mod 5, never background.
pub fn label_code([i, j, k]: [usize; 3]) -> f32 {
    (1 + (i + 2 * j + 3 * k) % 5) as f32
}

/// An anisotropic, translated affine.
pub fn affine() -> Matrix4<f64> {
    let mut a = Matrix4::from_diagonal(&Vector4::new(0.8, 1.5, 2.5, 1.0));
    a[(0, 3)] = -40.0;
    a[(1, 3)] = 12.5;
    a[(2, 3)] = 3.0;
    a
}

/// A labelled sample whose image voxels hold `code` and label voxels `label_code`.
pub fn encoded(shape: [usize; 3], channels: usize) -> Sample {
    let image = Array4::from_shape_fn((channels, shape[0], shape[1], shape[2]), |(c, i, j, k)| {
        code(shape, c, [i, j, k])
    });
    let label = Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(_, i, j, k)| {
        label_code([i, j, k])
    });
    Sample::labelled(
        "case-7",
        Volume::new(image, affine()),
        Volume::new(label, affine()),
    )
    .unwrap()
}

/// Source voxel `start + local` if it lies inside `shape`.
pub fn source_index(shape: [usize; 3], start: [isize; 3], local: [usize; 3]) -> Option<[usize; 3]> {
    let idx: [isize; 3] = std::array::from_fn(|a| start[a] + local[a] as isize);
    (0..3)
        .all(|a| idx[a] >= 0 && (idx[a] as usize) < shape[a])
        .then(|| idx.map(|x| x as usize))
}

/// Asserts that `view` is exactly the box at `start` of an `encoded(shape, ..)` sample:
/// every voxel inside the source holds its code, every voxel outside holds `fill`
/// (image) or 0 (label, when the view has one), and the affine puts voxel 0 where source
/// voxel `start` is.
pub fn assert_is_box(view: &Sample, shape: [usize; 3], start: [isize; 3], fill: f32) {
    for ((c, i, j, k), &v) in view.image.data().indexed_iter() {
        let expected = match source_index(shape, start, [i, j, k]) {
            Some(src) => code(shape, c, src),
            None => fill,
        };
        assert_eq!(
            v, expected,
            "image voxel ({c}, {i}, {j}, {k}) of the box at {start:?}"
        );
    }
    if let Some(label) = &view.label {
        for ((_, i, j, k), &v) in label.data().indexed_iter() {
            let expected = source_index(shape, start, [i, j, k]).map_or(0.0, label_code);
            assert_eq!(
                v, expected,
                "label voxel ({i}, {j}, {k}) of the box at {start:?}"
            );
        }
    }
    let origin = view.image.affine() * Vector4::new(0.0, 0.0, 0.0, 1.0);
    let expected = affine() * Vector4::new(start[0] as f64, start[1] as f64, start[2] as f64, 1.0);
    assert!(
        (origin - expected).norm() < 1e-9,
        "affine origin {origin} vs {expected}"
    );
}

/// No augmentation.
pub fn identity() -> Pipeline {
    Pipeline::new(Vec::new())
}

/// A random augmentation: adds one offset drawn uniformly from [0, 1) to every image
/// voxel.
#[derive(Debug)]
pub struct RandomOffset;

impl Transform for RandomOffset {
    fn name(&self) -> &'static str {
        "test_random_offset"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        let offset: f32 = rng.random();
        sample.image.data_mut().mapv_inplace(|x| x + offset);
        Ok(vec![sample])
    }
}

/// A step that turns one sample into two (as a crop with `num_samples = 2`).
#[derive(Debug)]
pub struct Duplicate;

impl Transform for Duplicate {
    fn name(&self) -> &'static str {
        "test_duplicate"
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _: &mut Rng) -> Result<Vec<Sample>> {
        Ok(vec![sample.clone(), sample])
    }
}

/// A pipeline of `RandomOffset` only.
pub fn random_offset() -> Pipeline {
    Pipeline::new(vec![Box::new(RandomOffset)])
}
