//! File order (first index fastest) to the channel-first standard layout of a `Volume`.
//!
//! Files store `(i, j, k, c)` with `i` fastest; a `Volume` is `[C, I, J, K]` with `K`
//! fastest, so every channel is a 3-D transpose. Done element by element it misses the
//! cache on every read and dominated the time of loading a CT volume. Here the output is
//! written in parallel slabs of `I_BLOCK` rows, a `K_BLOCK`-long run of each row at a
//! time, so the input cache lines a tile reads are reused by the next rows of the slab.

use rayon::prelude::*;

/// Output `i` planes per parallel task: 32 i16 samples fill one 64-byte cache line.
const I_BLOCK: usize = 32;
/// `k` values per tile.
const K_BLOCK: usize = 64;

/// Converts samples in file order `(i, j, k, c)` of the given spatial `dims` and channel
/// count into `[C, I, J, K]` standard order, applying `convert` to each sample.
///
/// `src.len()` must equal `dims[0] * dims[1] * dims[2] * channels`.
pub(crate) fn file_order_to_channel_first<T, F>(
    src: &[T],
    dims: [usize; 3],
    channels: usize,
    convert: F,
) -> Vec<f32>
where
    T: Copy + Sync,
    F: Fn(T) -> f32 + Sync,
{
    let [ni, nj, nk] = dims;
    let volume = ni * nj * nk;
    debug_assert_eq!(src.len(), volume * channels);
    let mut out = vec![0f32; src.len()];
    if volume == 0 {
        return out;
    }
    let plane = nj * nk;
    for (channel_out, channel_in) in out.chunks_mut(volume).zip(src.chunks(volume)) {
        channel_out
            .par_chunks_mut(I_BLOCK * plane)
            .enumerate()
            .for_each(|(block, slab)| {
                let i0 = block * I_BLOCK;
                let rows = slab.len() / plane;
                for j in 0..nj {
                    for k0 in (0..nk).step_by(K_BLOCK) {
                        let k1 = (k0 + K_BLOCK).min(nk);
                        for di in 0..rows {
                            let row = &mut slab[di * plane + j * nk..][k0..k1];
                            let first = k0 * ni * nj + j * ni + i0 + di;
                            for (dk, value) in row.iter_mut().enumerate() {
                                *value = convert(channel_in[first + dk * ni * nj]);
                            }
                        }
                    }
                }
            });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, ShapeBuilder};

    /// The reference: ndarray's own Fortran-to-C conversion, element by element.
    fn reference(src: &[i16], dims: [usize; 3], channels: usize) -> Vec<f32> {
        let f = Array4::from_shape_vec((dims[0], dims[1], dims[2], channels).f(), src.to_vec())
            .unwrap();
        f.permuted_axes([3, 0, 1, 2])
            .iter()
            .map(|&x| f32::from(x) * 0.5 - 3.0)
            .collect()
    }

    #[test]
    fn transposes_like_ndarray_for_shapes_that_do_not_fill_the_tiles() {
        for (dims, channels) in [
            ([1, 1, 1], 1),
            ([33, 5, 65], 2),
            ([70, 3, 130], 1),
            ([31, 17, 64], 3),
            ([0, 4, 4], 1),
        ] {
            let len = dims.iter().product::<usize>() * channels;
            let src: Vec<i16> = (0..len).map(|n| (n * 7919 % 65_521) as i16).collect();
            let ours =
                file_order_to_channel_first(&src, dims, channels, |x| f32::from(x) * 0.5 - 3.0);
            assert_eq!(
                ours,
                reference(&src, dims, channels),
                "{dims:?} x {channels}"
            );
        }
    }
}
