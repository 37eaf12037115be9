//! Window geometry of the 3-D Swin Transformer, exactly as MONAI computes it: the
//! effective window and shift per axis, the relative-position index and the mask that
//! keeps shifted windows from attending across the wrap-around seam.
//!
//! These are plain integer computations, kept apart from the tensors so they can be
//! checked directly against MONAI's documented edge behaviour.

/// MONAI's `get_window_size`: on an axis whose feature map is no larger than the window,
/// the window shrinks to the map and the shift there becomes 0.
pub fn effective_window(
    size: [usize; 3],
    window: [usize; 3],
    shift: [usize; 3],
) -> ([usize; 3], [usize; 3]) {
    let mut w = window;
    let mut s = shift;
    for a in 0..3 {
        if size[a] <= window[a] {
            w[a] = size[a];
            s[a] = 0;
        }
    }
    (w, s)
}

/// `size` rounded up to a multiple of `window` per axis (the zero-padded token grid).
pub fn padded(size: [usize; 3], window: [usize; 3]) -> [usize; 3] {
    std::array::from_fn(|a| size[a].div_ceil(window[a]) * window[a])
}

/// The relative-position index of a full `window`: entry `(i, j)` (row-major,
/// `w0*w1*w2` squared) selects the bias-table row for token `i` attending to token `j`.
pub fn relative_position_index(window: [usize; 3]) -> Vec<usize> {
    let [w0, w1, w2] = window;
    let n = w0 * w1 * w2;
    let coords: Vec<[usize; 3]> = (0..w0)
        .flat_map(|d| (0..w1).flat_map(move |h| (0..w2).map(move |w| [d, h, w])))
        .collect();
    let mut index = Vec::with_capacity(n * n);
    for a in &coords {
        for b in &coords {
            let rel = |axis: usize, size: usize| a[axis] + size - 1 - b[axis];
            index.push(
                rel(0, w0) * (2 * w1 - 1) * (2 * w2 - 1) + rel(1, w1) * (2 * w2 - 1) + rel(2, w2),
            );
        }
    }
    index
}

/// MONAI's use of the index for an effective window of `n` tokens: the top-left
/// `n x n` block of the full window's index (not the geometric index of the small
/// window), flattened row-major.
pub fn bias_index(full_window: [usize; 3], n: usize) -> Vec<usize> {
    let full = relative_position_index(full_window);
    let stride = full_window.iter().product::<usize>();
    (0..n)
        .flat_map(|i| full[i * stride..i * stride + n].iter().copied())
        .collect()
}

/// Python's `slice(start, stop)` on an axis of length `len`, with negative values
/// counted from the end and `None` as the open end; MONAI's mask relies on the
/// `-0` edge case (`slice(-w, -0)` is empty, `slice(-0, None)` is everything).
fn py_slice(len: usize, start: isize, stop: Option<isize>) -> std::ops::Range<usize> {
    let norm = |v: isize| -> usize {
        if v < 0 {
            (len as isize + v).max(0) as usize
        } else {
            (v as usize).min(len)
        }
    };
    let (s, e) = (norm(start), stop.map_or(len, norm));
    s..e.max(s)
}

/// The shifted-window attention mask of a padded grid `dims`: `[n_windows, n, n]`
/// row-major, 0 where two tokens come from the same region and -100 otherwise.
pub fn shifted_window_mask(dims: [usize; 3], window: [usize; 3], shift: [usize; 3]) -> Vec<f32> {
    let [d, h, w] = dims;
    let mut region = vec![0u32; d * h * w];
    let slices = |axis: usize| {
        let (len, ws, ss) = (dims[axis], window[axis] as isize, shift[axis] as isize);
        [
            py_slice(len, 0, Some(-ws)),
            py_slice(len, -ws, Some(-ss)),
            py_slice(len, -ss, None),
        ]
    };
    let mut count = 0;
    for sd in slices(0) {
        for sh in slices(1) {
            for sw in slices(2) {
                for z in sd.clone() {
                    for y in sh.clone() {
                        for x in sw.clone() {
                            region[(z * h + y) * w + x] = count;
                        }
                    }
                }
                count += 1;
            }
        }
    }
    let n = window.iter().product::<usize>();
    let per_window: Vec<Vec<u32>> = window_origins(dims, window)
        .map(|[z0, y0, x0]| {
            let mut ids = Vec::with_capacity(n);
            for z in z0..z0 + window[0] {
                for y in y0..y0 + window[1] {
                    for x in x0..x0 + window[2] {
                        ids.push(region[(z * h + y) * w + x]);
                    }
                }
            }
            ids
        })
        .collect();
    let mut mask = Vec::with_capacity(per_window.len() * n * n);
    for ids in &per_window {
        for a in ids {
            for b in ids {
                mask.push(if a == b { 0.0 } else { -100.0 });
            }
        }
    }
    mask
}

/// Origins of the windows of a padded grid, in MONAI's partition order (last axis
/// fastest).
fn window_origins(dims: [usize; 3], window: [usize; 3]) -> impl Iterator<Item = [usize; 3]> {
    let counts: [usize; 3] = std::array::from_fn(|a| dims[a] / window[a]);
    (0..counts[0]).flat_map(move |i| {
        (0..counts[1]).flat_map(move |j| {
            (0..counts[2]).map(move |k| [i * window[0], j * window[1], k * window[2]])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_shrink_with_zero_shift_on_small_maps() {
        // The fixture's stage geometry (feature maps 32, 16, 8, 4; window 7, shift 3).
        assert_eq!(effective_window([32; 3], [7; 3], [3; 3]), ([7; 3], [3; 3]));
        assert_eq!(effective_window([8; 3], [7; 3], [3; 3]), ([7; 3], [3; 3]));
        assert_eq!(effective_window([4; 3], [7; 3], [3; 3]), ([4; 3], [0; 3]));
        assert_eq!(
            effective_window([7, 9, 3], [7; 3], [3; 3]),
            ([7, 7, 3], [0, 3, 0])
        );
        assert_eq!(padded([32; 3], [7; 3]), [35; 3]);
        assert_eq!(padded([8; 3], [7; 3]), [14; 3]);
    }

    #[test]
    fn relative_index_matches_the_swin_formula() {
        let index = relative_position_index([2, 2, 2]);
        assert_eq!(index.len(), 64);
        // Token 0 = (0,0,0) attending to itself sits at the centre of the 3x3x3 table.
        assert_eq!(index[0], 13);
        // (0,0,0) -> (1,1,1): relative (-1,-1,-1) + 1 = (0,0,0) -> row 0.
        assert_eq!(index[7], 0);
        // (1,1,1) -> (0,0,0): relative (1,1,1) + 1 = (2,2,2) -> row 26.
        assert_eq!(index[7 * 8], 26);
        let full = relative_position_index([7, 7, 7]);
        assert_eq!(*full.iter().max().unwrap(), 13 * 13 * 13 - 1);
        // The shrunk-window slice is the top-left block of the full index.
        let small = bias_index([7, 7, 7], 64);
        assert_eq!(small[..64], full[..64]);
        assert_eq!(small[64], full[343]);
    }

    #[test]
    fn mask_separates_wrapped_regions() {
        // 1-D-like case: grid 4x1x1 with window 2, shift 1 along the first axis.
        let mask = shifted_window_mask([4, 1, 1], [2, 1, 1], [1, 0, 0]);
        assert_eq!(mask.len(), 2 * 2 * 2);
        // First window (tokens 0, 1) is one region: no masking.
        assert_eq!(&mask[..4], &[0.0, 0.0, 0.0, 0.0]);
        // Last window holds token 2 (region of [-2:-1]) and token 3 (region [-1:]).
        assert_eq!(&mask[4..], &[0.0, -100.0, -100.0, 0.0]);
        // With no shift anywhere nothing is masked.
        assert!(
            shifted_window_mask([4, 4, 4], [2, 2, 2], [0, 0, 0])
                .iter()
                .all(|&m| m == 0.0)
        );
    }
}
