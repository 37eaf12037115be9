//! Rotation labels: numpy `rot90` semantics, the two label tables, inverses and world
//! positions.

mod common;
mod views_common;

use common::max_abs_diff;
use medssl_data::rng::stream;
use medssl_data::views::{Rotation, RotationSet, rotate};
use medssl_io::Volume;
use medssl_io::nalgebra::Vector4;
use ndarray::{Array4, ArrayView1, array};
use views_common::{affine, encoded};

/// The value `np.rot90(x, turns, axes=(a + 1, b + 1))` puts at output index `out`, by
/// numpy's definition (turns 1: transpose(flip(x, b)); 2: flip both; 3:
/// flip(transpose(x), b)), written as index arithmetic on the input.
fn rot90_expected(input: &Array4<f32>, rotation: Rotation, out: [usize; 4]) -> f32 {
    let [a, b] = rotation.plane.map(|p| p + 1);
    let (na, nb) = (input.shape()[a], input.shape()[b]);
    let (x, y) = (out[a], out[b]);
    let mut src = out;
    match rotation.turns {
        0 => {}
        1 => (src[a], src[b]) = (y, nb - 1 - x),
        2 => (src[a], src[b]) = (na - 1 - x, nb - 1 - y),
        3 => (src[a], src[b]) = (na - 1 - y, x),
        _ => unreachable!(),
    }
    input[src]
}

fn volume(data: Array4<f32>) -> Volume {
    Volume::new(data, affine())
}

#[test]
fn label_tables_are_the_documented_ones() {
    let tang: Vec<_> = RotationSet::Tang
        .targets()
        .iter()
        .map(|r| (r.turns, r.plane))
        .collect();
    assert_eq!(tang, [(0, [1, 2]), (1, [1, 2]), (2, [1, 2]), (3, [1, 2])]);
    let planes: Vec<_> = RotationSet::AxisPlanes
        .targets()
        .iter()
        .map(|r| (r.turns, r.plane))
        .collect();
    assert_eq!(
        planes,
        [
            (0, [1, 2]),
            (1, [1, 2]),
            (2, [1, 2]),
            (3, [1, 2]),
            (1, [0, 2]),
            (2, [0, 2]),
            (3, [0, 2]),
            (1, [0, 1]),
            (2, [0, 1]),
            (3, [0, 1])
        ]
    );
}

#[test]
fn matches_numpy_documentation_examples() {
    // numpy.rot90 docs: m = [[1, 2], [3, 4]]; rot90(m) = [[2, 4], [1, 3]],
    // rot90(m, 2) = [[4, 3], [2, 1]], rot90(m, -1) = [[3, 1], [4, 2]].
    let m = volume(array![[[[1.0], [2.0]], [[3.0], [4.0]]]]);
    let plane_ij = |label| RotationSet::AxisPlanes.rotate(&m, label).unwrap();
    assert_eq!(
        plane_ij(7).data(),
        &array![[[[2.0], [4.0]], [[1.0], [3.0]]]]
    );
    assert_eq!(
        plane_ij(8).data(),
        &array![[[[4.0], [3.0]], [[2.0], [1.0]]]]
    );
    assert_eq!(
        plane_ij(9).data(),
        &array![[[[3.0], [1.0]], [[4.0], [2.0]]]]
    );
    // m = arange(8).reshape(2, 2, 2); rot90(m, 1, (1, 2)) = [[[1, 3], [0, 2]], [[5, 7], [4, 6]]]:
    // Tang's label 1 (torch rot90(1, (2, 3)) on [C, H, W, D]).
    let cube = volume(Array4::from_shape_fn((1, 2, 2, 2), |(_, i, j, k)| {
        (i * 4 + j * 2 + k) as f32
    }));
    let turned = RotationSet::Tang.rotate(&cube, 1).unwrap();
    let expected = array![[[[1.0, 3.0], [0.0, 2.0]], [[5.0, 7.0], [4.0, 6.0]]]];
    assert_eq!(turned.data(), &expected);
}

#[test]
fn every_label_follows_rot90_on_an_asymmetric_array() {
    let input = encoded([3, 4, 5], 2).image;
    for set in [RotationSet::Tang, RotationSet::AxisPlanes] {
        for (label, &rotation) in set.targets().iter().enumerate() {
            let out = set.rotate(&input, label).unwrap();
            let mut shape = input.data().shape().to_vec();
            if rotation.turns % 2 == 1 {
                shape.swap(rotation.plane[0] + 1, rotation.plane[1] + 1);
            }
            assert_eq!(out.data().shape(), &shape[..], "{set:?} label {label}");
            for ((c, i, j, k), &v) in out.data().indexed_iter() {
                assert_eq!(v, rot90_expected(input.data(), rotation, [c, i, j, k]));
            }
        }
    }
}

#[test]
fn all_ten_rotations_are_distinct_and_invert() {
    let input = encoded([4, 4, 4], 1).image;
    let rotated: Vec<Volume> = (0..10)
        .map(|l| RotationSet::AxisPlanes.rotate(&input, l).unwrap())
        .collect();
    for a in 0..10 {
        for b in a + 1..10 {
            assert_ne!(rotated[a].data(), rotated[b].data(), "labels {a} and {b}");
        }
    }
    for (label, &rotation) in RotationSet::AxisPlanes.targets().iter().enumerate() {
        let back = rotate(&rotated[label], rotation.inverse());
        assert_eq!(back.data(), input.data(), "label {label}");
        let what = format!("label {label}: affine");
        let (diff, _) = max_abs_diff(
            &what,
            ArrayView1::from(back.affine().as_slice()),
            ArrayView1::from(input.affine().as_slice()),
        );
        assert!(diff < 1e-12, "{what} differs by {diff}");
    }
}

#[test]
fn rotated_voxels_keep_their_world_position() {
    let input = encoded([3, 4, 5], 1).image;
    let inverse = input.affine().try_inverse().unwrap();
    for (label, _) in RotationSet::AxisPlanes.targets().iter().enumerate() {
        let out = RotationSet::AxisPlanes.rotate(&input, label).unwrap();
        for ((c, i, j, k), &v) in out.data().indexed_iter() {
            let world = out.affine() * Vector4::new(i as f64, j as f64, k as f64, 1.0);
            let src = inverse * world;
            let idx = [src[0], src[1], src[2]].map(|x| {
                assert!((x - x.round()).abs() < 1e-9);
                x.round() as usize
            });
            assert_eq!(
                v,
                input.data()[[c, idx[0], idx[1], idx[2]]],
                "label {label}"
            );
        }
    }
}

#[test]
fn random_rotation_draws_every_label_uniformly() {
    let input = encoded([4, 4, 4], 1).image;
    let mut counts = [0usize; 4];
    let mut rng = stream(21, &[]);
    for _ in 0..800 {
        let (out, label) = RotationSet::Tang.random(&input, &mut rng);
        assert_eq!(out, RotationSet::Tang.rotate(&input, label).unwrap());
        counts[label] += 1;
    }
    // 800 draws at p = 1/4: sd ≈ 12.2; allow 4 sd.
    assert!(
        counts.iter().all(|&c| (c as f64 - 200.0).abs() < 49.0),
        "{counts:?}"
    );
}

#[test]
fn labels_outside_the_set_are_errors() {
    let input = encoded([2, 2, 2], 1).image;
    let err = RotationSet::Tang.rotate(&input, 4).unwrap_err().to_string();
    assert!(
        err.contains("rotation label 4") && err.contains("0–3"),
        "{err}"
    );
    assert!(RotationSet::AxisPlanes.rotation(10).is_err());
}
