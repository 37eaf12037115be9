//! Exact moves of the voxel grid: axis permutations with reversals (reorientation, flips,
//! quarter turns). Voxels are copied, never interpolated, and the affine is updated so
//! every voxel keeps its world position, as MONAI updates the `MetaTensor` affine.

use medssl_io::nalgebra::Matrix4;
use medssl_io::{Affine, Volume};
use ndarray::Array4;
use rayon::prelude::*;

use crate::sample::Sample;

/// A grid move: output axis `o` runs along input axis `source[o]`, backwards when
/// `reverse[o]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisMove {
    pub source: [usize; 3],
    pub reverse: [bool; 3],
}

impl AxisMove {
    /// Reverses the listed axes in place (MONAI's `Flip`).
    pub fn flip(axes: &[usize]) -> AxisMove {
        let mut reverse = [false; 3];
        for &a in axes {
            reverse[a] = true;
        }
        AxisMove {
            source: [0, 1, 2],
            reverse,
        }
    }

    /// `k` quarter turns in the plane of axes `(a, b)`, turning from `a` towards `b`
    /// (`np.rot90(x, k, axes=(a, b))`, MONAI's `Rotate90`). `a` and `b` must differ.
    pub fn rot90(k: u32, a: usize, b: usize) -> AxisMove {
        let mut m = AxisMove::flip(&[]);
        match k % 4 {
            1 => {
                // out[a] = in[b] reversed, out[b] = in[a].
                m.source[a] = b;
                m.source[b] = a;
                m.reverse[a] = true;
            }
            2 => {
                m.reverse[a] = true;
                m.reverse[b] = true;
            }
            3 => {
                // out[a] = in[b], out[b] = in[a] reversed.
                m.source[a] = b;
                m.source[b] = a;
                m.reverse[b] = true;
            }
            _ => {}
        }
        m
    }

    /// This move followed by `next` (`next` acts on this move's output), as one move.
    pub fn then(&self, next: &AxisMove) -> AxisMove {
        AxisMove {
            source: next.source.map(|mid| self.source[mid]),
            reverse: std::array::from_fn(|o| next.reverse[o] ^ self.reverse[next.source[o]]),
        }
    }

    /// True when the move changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == AxisMove::flip(&[])
    }

    /// The output shape for an input of `shape`.
    pub fn shape(&self, shape: [usize; 3]) -> [usize; 3] {
        self.source.map(|s| shape[s])
    }

    /// The affine taking an output voxel index to the input voxel index it holds.
    pub fn index_map(&self, shape: [usize; 3]) -> Affine {
        let mut m = Matrix4::zeros();
        m[(3, 3)] = 1.0;
        for (o, (&s, &rev)) in self.source.iter().zip(&self.reverse).enumerate() {
            if rev {
                m[(s, o)] = -1.0;
                m[(s, 3)] = shape[s] as f64 - 1.0;
            } else {
                m[(s, o)] = 1.0;
            }
        }
        m
    }

    /// Applies the move to a volume. Output rows are filled in parallel; when the last
    /// axis stays in place (reorienting LPS to RAS, most flips) each row is a contiguous
    /// run of the input, copied forwards or backwards.
    pub fn apply(&self, volume: &Volume) -> Volume {
        if self.is_identity() {
            return volume.clone();
        }
        let input = volume.data();
        let values = input.as_slice().expect("a Volume is in standard layout");
        let in_shape = volume.spatial_shape();
        let in_strides: Vec<isize> = input.strides()[1..].to_vec();
        let channel_stride = input.strides()[0];
        // Per output axis: the input stride it walks, and where index 0 starts.
        let step: [isize; 3] = std::array::from_fn(|o| {
            let s = in_strides[self.source[o]];
            if self.reverse[o] { -s } else { s }
        });
        let origin: isize = (0..3)
            .filter(|&o| self.reverse[o])
            .map(|o| (in_shape[self.source[o]] as isize - 1) * in_strides[self.source[o]])
            .sum();
        let [n0, n1, n2] = self.shape(in_shape);
        let mut out = Array4::zeros((volume.channels(), n0, n1, n2));
        if n2 > 0 {
            let rows = out
                .as_slice_mut()
                .expect("a new array is in standard layout");
            rows.par_chunks_mut(n2).enumerate().for_each(|(r, row)| {
                let (c, rest) = (r / (n0 * n1), r % (n0 * n1));
                let start = c as isize * channel_stride
                    + origin
                    + (rest / n1) as isize * step[0]
                    + (rest % n1) as isize * step[1];
                copy_row(values, start, step[2], row);
            });
        }
        Volume::new(out, volume.affine() * self.index_map(in_shape))
    }

    /// Applies the move to a sample's image and label.
    pub fn apply_sample(&self, sample: Sample) -> Sample {
        if self.is_identity() {
            return sample;
        }
        Sample {
            image: self.apply(&sample.image),
            label: sample.label.as_ref().map(|l| self.apply(l)),
            id: sample.id,
        }
    }
}

/// Fills `row` with `values[start + x * step]` for each `x`; unit steps copy slices.
fn copy_row(values: &[f32], start: isize, step: isize, row: &mut [f32]) {
    let n = row.len() as isize;
    match step {
        1 => row.copy_from_slice(&values[start as usize..(start + n) as usize]),
        -1 => {
            let source = &values[(start - n + 1) as usize..=start as usize];
            row.iter_mut()
                .zip(source.iter().rev())
                .for_each(|(o, &v)| *o = v);
        }
        _ => {
            for (x, o) in row.iter_mut().enumerate() {
                *o = values[(start + x as isize * step) as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output voxel holds the input voxel its index map points at, and the affine
    /// keeps world positions, for every quarter turn and flip.
    #[test]
    fn moves_agree_with_their_index_maps() {
        let data = Array4::from_shape_fn((2, 4, 3, 5), |(c, i, j, k)| {
            (c * 1000 + i * 100 + j * 10 + k) as f32
        });
        let mut affine = Matrix4::identity();
        affine[(0, 1)] = 0.3;
        affine[(2, 3)] = 7.0;
        let volume = Volume::new(data, affine);
        let mut moves = vec![AxisMove::flip(&[0, 2]), AxisMove::flip(&[1])];
        for (a, b) in [(0, 1), (1, 2), (2, 0)] {
            moves.extend((0..4).map(|k| AxisMove::rot90(k, a, b)));
        }
        for m in moves {
            let out = m.apply(&volume);
            assert_eq!(out.spatial_shape(), m.shape([4, 3, 5]));
            let map = m.index_map([4, 3, 5]);
            for ((c, i, j, k), v) in out.data().indexed_iter() {
                let src =
                    map * medssl_io::nalgebra::Vector4::new(i as f64, j as f64, k as f64, 1.0);
                let at = [c, src[0] as usize, src[1] as usize, src[2] as usize];
                assert_eq!(*v, volume.data()[at], "{m:?}");
            }
            assert_eq!(*out.affine(), affine * map);
        }
    }

    #[test]
    fn a_quarter_turn_matches_numpy_rot90_direction() {
        // The example of numpy's documentation: np.rot90([[1, 2], [3, 4]]) == [[2, 4], [1, 3]].
        let m = AxisMove::rot90(1, 0, 1);
        let data = Array4::from_shape_fn((1, 2, 2, 1), |(_, i, j, _)| (i * 2 + j + 1) as f32);
        let out = m.apply(&Volume::new(data, Matrix4::identity()));
        let values: Vec<f32> = out.data().iter().copied().collect();
        let numpy_rot90 = [2.0, 4.0, 1.0, 3.0];
        assert_eq!(values, numpy_rot90);
    }
}
