//! Surface voxels of binary masks and the distances between two surfaces, with MONAI's
//! rules (`monai.metrics.utils.get_mask_edges` / `get_surface_distance`, euclidean).

use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;

use super::distance_transform::squared_distances_at;

/// The surface of a binary mask: its voxels with at least one of the six face
/// neighbours outside the mask, voxels beyond the array counting as background. This is
/// MONAI's `mask ^ scipy.ndimage.binary_erosion(mask)` (cross-shaped element, border
/// value 0), so a mask touching the array border has a surface there.
pub fn surface_voxels(mask: ArrayView3<'_, bool>) -> Array3<bool> {
    let mask = mask.as_standard_layout();
    let [n0, n1, n2] = [
        mask.len_of(Axis(0)),
        mask.len_of(Axis(1)),
        mask.len_of(Axis(2)),
    ];
    let mut out = Array3::from_elem(mask.raw_dim(), false);
    let Some(m) = mask.as_slice() else {
        unreachable!("as_standard_layout gives a contiguous array")
    };
    let row = |i: usize, j: usize| &m[(i * n1 + j) * n2..][..n2];
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut plane)| {
            for (j, mut out_row) in plane.outer_iter_mut().enumerate() {
                let centre = row(i, j);
                let Some(out_row) = out_row.as_slice_mut() else {
                    unreachable!("rows of a standard-layout array are contiguous")
                };
                let neighbours = [
                    i.checked_sub(1).map(|i| row(i, j)),
                    (i + 1 < n0).then(|| row(i + 1, j)),
                    j.checked_sub(1).map(|j| row(i, j)),
                    (j + 1 < n1).then(|| row(i, j + 1)),
                ];
                let ([Some(a), Some(b), Some(c), Some(d)], 3..) = (neighbours, n2) else {
                    // On the array border (and in rows too short for an interior) every
                    // mask voxel has a background neighbour.
                    out_row.copy_from_slice(centre);
                    continue;
                };
                // Equal-length slices let the loop run without bounds checks.
                let n = n2 - 2;
                let (left, mid, right) = (&centre[..n], &centre[1..n + 1], &centre[2..n + 2]);
                let (a, b, c, d) = (&a[1..n + 1], &b[1..n + 1], &c[1..n + 1], &d[1..n + 1]);
                let inner = &mut out_row[1..n + 1];
                for k in 0..n {
                    // Non-short-circuit `&` keeps the loop branch-free.
                    inner[k] = mid[k] & !(left[k] & right[k] & a[k] & b[k] & c[k] & d[k]);
                }
                out_row[0] = centre[0];
                out_row[n + 1] = centre[n + 1];
            }
        });
    out
}

/// Distances (mm) from every surface voxel of `from` to the nearest surface voxel of
/// `to`, in no particular order.
///
/// Empty surfaces follow MONAI's `get_surface_distance`: when `to` is empty every
/// voxel of `from` is at `+inf`; when only `from` is empty the list holds one `+inf`
/// per voxel of `to` (so a directed mean is `inf`, not `nan`); both empty gives an
/// empty list.
pub(crate) fn directed_surface_distances(
    from: ArrayView3<'_, bool>,
    to: ArrayView3<'_, bool>,
    spacing: [f64; 3],
) -> Vec<f64> {
    let count = |s: &ArrayView3<'_, bool>| s.iter().filter(|&&v| v).count();
    let (n_from, n_to) = (count(&from), count(&to));
    if n_to == 0 {
        return vec![f64::INFINITY; n_from];
    }
    if n_from == 0 {
        return vec![f64::INFINITY; n_to];
    }
    let mut distances = squared_distances_at(to, from, spacing);
    distances.iter_mut().for_each(|d| *d = d.sqrt());
    distances
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn solid_block_surface_is_its_shell() {
        let mut mask = Array3::from_elem([5, 5, 5], false);
        mask.slice_mut(ndarray::s![1..4, 1..4, 1..4]).fill(true);
        let surface = surface_voxels(mask.view());
        assert_eq!(surface.iter().filter(|&&v| v).count(), 26);
        assert!(!surface[[2, 2, 2]]);
        assert!(surface[[1, 2, 2]] && surface[[3, 3, 3]]);
    }

    #[test]
    fn border_touching_voxels_are_surface() {
        let mask = Array3::from_elem([3, 3, 4], true);
        let surface = surface_voxels(mask.view());
        // Only the centre column (1, 1, 1..3) is interior.
        assert_eq!(surface.iter().filter(|&&v| !v).count(), 2);
        assert!(!surface[[1, 1, 1]] && !surface[[1, 1, 2]]);
    }

    #[test]
    fn random_masks_match_the_neighbour_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let shape = [
                rng.random_range(1..7usize),
                rng.random_range(1..7usize),
                rng.random_range(1..7usize),
            ];
            let mask = Array3::from_shape_simple_fn(shape, || rng.random_bool(0.8));
            let inside = |i: isize, j: isize, k: isize| {
                mask.get([i, j, k].map(|v| usize::try_from(v).unwrap_or(usize::MAX)))
                    .copied()
                    .unwrap_or(false)
            };
            let expected = Array3::from_shape_fn(shape, |(i, j, k)| {
                let (i, j, k) = (i as isize, j as isize, k as isize);
                inside(i, j, k)
                    && [
                        (-1, 0, 0),
                        (1, 0, 0),
                        (0, -1, 0),
                        (0, 1, 0),
                        (0, 0, -1),
                        (0, 0, 1),
                    ]
                    .iter()
                    .any(|(di, dj, dk)| !inside(i + di, j + dj, k + dk))
            });
            assert_eq!(surface_voxels(mask.view()), expected, "{mask:?}");
        }
    }

    #[test]
    fn empty_surfaces_follow_monai() {
        let mut a = Array3::from_elem([2, 3, 4], false);
        a[[0, 1, 1]] = true;
        a[[1, 2, 3]] = true;
        let empty = Array3::from_elem([2, 3, 4], false);
        let s = [1.0; 3];
        assert_eq!(
            directed_surface_distances(a.view(), empty.view(), s),
            vec![f64::INFINITY; 2]
        );
        assert_eq!(
            directed_surface_distances(empty.view(), a.view(), s),
            vec![f64::INFINITY; 2]
        );
        assert!(directed_surface_distances(empty.view(), empty.view(), s).is_empty());
    }
}
