//! Voxel-to-world geometry: the 4x4 affine, voxel spacing, axis orientation codes and
//! the permutation/flip that brings an array to the closest canonical RAS orientation.
//!
//! The orientation rule is nibabel's `io_orientation` (which MONAI's `Orientation`
//! uses): take the closest orthogonal matrix to the affine's direction part and assign
//! each array axis to the world axis it points most along, largest first.

use nalgebra::{Matrix3, Matrix4};

/// Maps a voxel index `(i, j, k, 1)` to RAS+ world millimetres, as nibabel's `img.affine`.
pub type Affine = Matrix4<f64>;

/// Where one array axis points in the world: which world axis (0 = x/R, 1 = y/A,
/// 2 = z/S) and whether it runs along (`+1`) or against (`-1`) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisOrientation {
    pub world_axis: usize,
    pub sign: i8,
}

/// Voxel spacing in mm per array axis: the lengths of the affine's first three columns.
pub fn spacing(affine: &Affine) -> [f64; 3] {
    std::array::from_fn(|c| {
        (0..3)
            .map(|r| affine[(r, c)] * affine[(r, c)])
            .sum::<f64>()
            .sqrt()
    })
}

/// nibabel's `io_orientation`: the world axis and direction of each array axis, or
/// `None` when the affine's direction part is degenerate (a zero or dependent column).
pub fn axis_orientations(affine: &Affine) -> Option<[AxisOrientation; 3]> {
    let rzs: Matrix3<f64> = affine.fixed_view::<3, 3>(0, 0).into_owned();
    let zooms = spacing(affine);
    if zooms.iter().any(|z| !z.is_finite() || *z == 0.0) {
        return None;
    }
    let mut rs = rzs;
    for (c, z) in zooms.iter().enumerate() {
        rs.column_mut(c).unscale_mut(*z);
    }
    let svd = rs.try_svd(true, true, f64::EPSILON, 0)?;
    let tol = svd.singular_values.max() * 3.0 * f64::EPSILON;
    if svd.singular_values.iter().any(|s| *s <= tol) {
        return None;
    }
    let mut r = svd.u? * svd.v_t?;
    let mut out = [AxisOrientation {
        world_axis: 0,
        sign: 1,
    }; 3];
    for (in_ax, slot) in out.iter_mut().enumerate() {
        let col = r.column(in_ax);
        let (world_axis, value) = (0..3).map(|w| (w, col[w])).fold((0, 0.0f64), |best, cand| {
            if cand.1.abs() > best.1.abs() {
                cand
            } else {
                best
            }
        });
        if value == 0.0 {
            return None;
        }
        *slot = AxisOrientation {
            world_axis,
            sign: if value < 0.0 { -1 } else { 1 },
        };
        r.row_mut(world_axis).fill(0.0);
    }
    Some(out)
}

/// Axis codes such as `"RAS"` or `"LPS"` (nibabel's `aff2axcodes`); `"???"` for a
/// degenerate affine.
pub fn orientation_codes(affine: &Affine) -> String {
    const LABELS: [[char; 2]; 3] = [['L', 'R'], ['P', 'A'], ['I', 'S']];
    match axis_orientations(affine) {
        Some(axes) => axes
            .iter()
            .map(|a| LABELS[a.world_axis][usize::from(a.sign > 0)])
            .collect(),
        None => "???".to_string(),
    }
}

/// How to take an array of shape `shape` to the closest canonical (RAS) orientation.
#[derive(Debug, Clone, PartialEq)]
pub struct Reorientation {
    /// `source_axis[o]` is the input array axis that becomes output axis `o`.
    pub source_axis: [usize; 3],
    /// Whether output axis `o` runs backwards through its source axis.
    pub flip: [bool; 3],
    /// The affine of the reoriented array.
    pub affine: Affine,
}

impl Reorientation {
    /// Plans the reorientation of an array with spatial `shape` and `affine`; `None`
    /// for a degenerate affine.
    pub fn to_canonical(affine: &Affine, shape: [usize; 3]) -> Option<Reorientation> {
        let axes = axis_orientations(affine)?;
        let mut source_axis = [0; 3];
        let mut flip = [false; 3];
        for (in_ax, a) in axes.iter().enumerate() {
            source_axis[a.world_axis] = in_ax;
            flip[a.world_axis] = a.sign < 0;
        }
        // Output index n maps to input index: along source axis s = source_axis[o],
        // i_s = n_o (no flip) or shape_s - 1 - n_o (flip).
        let mut to_input = Matrix4::<f64>::zeros();
        to_input[(3, 3)] = 1.0;
        for o in 0..3 {
            let s = source_axis[o];
            if flip[o] {
                to_input[(s, o)] = -1.0;
                to_input[(s, 3)] = shape[s] as f64 - 1.0;
            } else {
                to_input[(s, o)] = 1.0;
            }
        }
        Some(Reorientation {
            source_axis,
            flip,
            affine: affine * to_input,
        })
    }

    /// True when the array is already canonical.
    pub fn is_identity(&self) -> bool {
        self.source_axis == [0, 1, 2] && self.flip == [false; 3]
    }
}

/// Parses an affine from four rows of four numbers.
pub fn affine_from_rows(rows: [[f64; 4]; 4]) -> Affine {
    Matrix4::from_fn(|r, c| rows[r][c])
}

/// The affine as four rows of four numbers.
pub fn affine_rows(affine: &Affine) -> [[f64; 4]; 4] {
    std::array::from_fn(|r| std::array::from_fn(|c| affine[(r, c)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_nibabel_for_axis_aligned_and_oblique_affines() {
        let las = affine_from_rows([
            [-2.0, 0.0, 0.0, 32.0],
            [0.0, 2.0, 0.0, -40.0],
            [0.0, 0.0, 2.0, -16.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert_eq!(orientation_codes(&las), "LAS");
        // An ITK-style DICOM affine: columns point mostly L, P, S.
        let dicom = affine_from_rows([
            [-0.72, 0.2512742, -0.053088, 30.5],
            [-0.21, -0.8615117, 0.182016, 20.25],
            [0.0, 0.068256, 2.4928, -52.5],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert_eq!(orientation_codes(&dicom), "LPS");
        // Permuted axes: array axis 0 runs along S, 1 along R, 2 along P.
        let permuted = affine_from_rows([
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, -1.0, 0.0],
            [3.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert_eq!(orientation_codes(&permuted), "SRP");
        assert_eq!(orientation_codes(&Matrix4::zeros()), "???");
    }

    #[test]
    fn canonical_plan_maps_corners_to_the_same_world_points() {
        let affine = affine_from_rows([
            [0.0, 1.0, 0.0, 5.0],
            [0.0, 0.0, -1.5, 7.0],
            [-3.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let shape = [4, 5, 6];
        let plan = Reorientation::to_canonical(&affine, shape).unwrap();
        assert_eq!(plan.source_axis, [1, 2, 0]);
        assert_eq!(plan.flip, [false, true, true]);
        assert_eq!(orientation_codes(&plan.affine), "RAS");
        // Output voxel (0,0,0) is input voxel (3, 0, 5).
        let out0 = plan.affine * nalgebra::Vector4::new(0.0, 0.0, 0.0, 1.0);
        let in0 = affine * nalgebra::Vector4::new(3.0, 0.0, 5.0, 1.0);
        assert!((out0 - in0).norm() < 1e-12);
    }
}
