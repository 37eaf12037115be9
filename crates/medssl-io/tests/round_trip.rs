//! Write-then-read round trips over random shapes, affines and values: voxels come
//! back exactly, geometry to float32 header precision, qform agrees with sform, and
//! reorientation to RAS keeps every voxel at its world position.

use medssl_io::nalgebra::{Matrix4, UnitQuaternion, Vector3, Vector4};
use medssl_io::ndarray::Array4;
use medssl_io::nifti::{NiftiHeader, OutputType, read_header, write_volume};
use medssl_io::{Affine, ReadOptions, Volume, read_volume};
use proptest::prelude::*;

fn affine_strategy() -> impl Strategy<Value = Affine> {
    (
        prop::array::uniform4(-1.0f64..1.0),
        prop::array::uniform3(0.3f64..4.0),
        any::<bool>(),
        prop::array::uniform3(-200.0f64..200.0),
    )
        .prop_filter_map("non-degenerate rotation", |(q, zooms, flip, t)| {
            let q = medssl_io::nalgebra::Quaternion::new(q[0], q[1], q[2], q[3]);
            (q.norm() > 0.1).then(|| {
                let r = UnitQuaternion::from_quaternion(q).to_rotation_matrix();
                let mut m = Matrix4::identity();
                for (c, zoom) in zooms.iter().enumerate() {
                    let sign = if flip && c == 2 { -1.0 } else { 1.0 };
                    let col: Vector3<f64> = r.matrix().column(c) * *zoom * sign;
                    m.fixed_view_mut::<3, 1>(0, c).copy_from(&col);
                }
                m.fixed_view_mut::<3, 1>(0, 3).copy_from(&Vector3::from(t));
                m
            })
        })
}

fn volume_strategy(integers: bool) -> impl Strategy<Value = Volume> {
    (
        1usize..=2,
        1usize..=6,
        1usize..=6,
        1usize..=6,
        affine_strategy(),
    )
        .prop_flat_map(move |(c, i, j, k, affine)| {
            let n = c * i * j * k;
            let values = if integers {
                prop::collection::vec((0i32..=255).prop_map(|v| v as f32), n).boxed()
            } else {
                prop::collection::vec(-1e4f32..1e4, n).boxed()
            };
            values.prop_map(move |v| {
                Volume::new(Array4::from_shape_vec((c, i, j, k), v).unwrap(), affine)
            })
        })
}

fn assert_affine_close(a: &Affine, b: &Affine) -> Result<(), TestCaseError> {
    for (x, y) in a.iter().zip(b.iter()) {
        prop_assert!((x - y).abs() <= 2e-4 * y.abs().max(1.0), "{a} vs {b}");
    }
    Ok(())
}

/// The qform can only hold a rotation to the precision its float32 quaternion allows.
/// The real part `a = sqrt(1 - b² - c² - d²)` is recovered from the stored (b, c, d);
/// rounding them to float32 (relative 2^-24 each) moves a² by up to about 4·2^-23, and
/// nibabel (like medssl) sets a = 0 when |a²| < 3·2^-23. For most rotations that moves `a` by ~1e-6, but near a
/// 180-degree turn (a ≈ 0) by up to sqrt(4·2^-23) ≈ 7e-4, and each rotation entry (terms
/// 2·a·b etc.) by twice that, times the column's zoom. nibabel's own qform of such an
/// affine is off by the same amount.
fn assert_qform_close(header: &NiftiHeader, affine: &Affine) -> Result<(), TestCaseError> {
    let qform = header.qform_affine().unwrap();
    let [b, c, d] = header.quatern;
    let a2 = (1.0 - (b * b + c * c + d * d)).max(0.0);
    let da2 = 4.0 * f64::from(f32::EPSILON);
    let da = ((a2 + da2).sqrt() - a2.sqrt()).max(a2.sqrt() - (a2 - da2).max(0.0).sqrt());
    for col in 0..4 {
        let zoom = if col < 3 {
            affine.fixed_view::<3, 1>(0, col).norm()
        } else {
            0.0
        };
        for row in 0..4 {
            let (x, y) = (qform[(row, col)], affine[(row, col)]);
            let tolerance = 2e-4 * y.abs().max(1.0) + 2.0 * da * zoom;
            prop_assert!((x - y).abs() <= tolerance, "{qform} vs {affine}");
        }
    }
    Ok(())
}

fn world(affine: &Affine, idx: [usize; 3]) -> Vector4<f64> {
    affine * Vector4::new(idx[0] as f64, idx[1] as f64, idx[2] as f64, 1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn float32_round_trip_is_exact(volume in volume_strategy(false), gz in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(if gz { "v.nii.gz" } else { "v.nii" });
        write_volume(&path, &volume, OutputType::Float32).unwrap();
        let back = read_volume(&path, &ReadOptions::default()).unwrap();
        prop_assert_eq!(back.data(), volume.data());
        assert_affine_close(back.affine(), volume.affine())?;
        let header = read_header(&path).unwrap();
        assert_qform_close(&header, volume.affine())?;
    }

    #[test]
    fn integer_types_round_trip_exactly(volume in volume_strategy(true), int16 in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("labels.nii.gz");
        let ty = if int16 { OutputType::Int16 } else { OutputType::UInt8 };
        prop_assert_eq!(OutputType::smallest_exact(&volume), OutputType::UInt8);
        write_volume(&path, &volume, ty).unwrap();
        let back = read_volume(&path, &ReadOptions::default()).unwrap();
        prop_assert_eq!(back.data(), volume.data());
    }

    #[test]
    fn canonical_round_trip_keeps_world_positions(volume in volume_strategy(false)) {
        // Each output axis runs along +R, +A, +S in turn: the diagonal of the new affine
        // is positive. (For strongly oblique affines the greedy axis codes of the result
        // need not read "RAS"; nibabel and MONAI behave the same way.)
        let canonical = volume.to_canonical().unwrap();
        for o in 0..3 {
            prop_assert!(canonical.affine()[(o, o)] > 0.0, "{}", canonical.affine());
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ras.nii.gz");
        write_volume(&path, &canonical, OutputType::Float32).unwrap();
        let back = read_volume(&path, &ReadOptions::default()).unwrap();
        assert_affine_close(back.affine(), canonical.affine())?;
        let inverse = back.affine().try_inverse().unwrap();
        for ((c, i, j, k), v) in volume.data().indexed_iter() {
            let idx = inverse * world(volume.affine(), [i, j, k]);
            let [a, b, d] = [idx[0], idx[1], idx[2]].map(|x| x.round());
            prop_assert!((idx[0] - a).abs() < 1e-3 && (idx[1] - b).abs() < 1e-3 && (idx[2] - d).abs() < 1e-3);
            prop_assert_eq!(back.data()[[c, a as usize, b as usize, d as usize]], *v);
        }
    }
}

/// A near-half-turn rotation (quaternion real part ≈ 0), found by the property test
/// above: its qform is as far from the sform as nibabel's is. nibabel 5 on the same
/// affine (`set_qform(A, 1)`, then `get_qform()`) stores (b, c, d) = (0.18202418,
/// -0.5920768, 0.7850556) and its largest deviation from A is 7.0615e-4, at (1, 0).
#[test]
fn near_half_turn_qform_matches_nibabel() {
    let affine = medssl_io::geometry::affine_from_rows([
        [
            -3.1299089746132602,
            -0.3020202395171845,
            -0.21153965045980952,
            -186.75540536699282,
        ],
        [
            -0.7218065490371649,
            -0.41839491817943986,
            0.6885016915102211,
            23.030949488959333,
        ],
        [
            0.9585377097957061,
            -1.3012488058203864,
            -0.1722778549220165,
            -72.97635375414895,
        ],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("turn.nii");
    let volume = Volume::new(Array4::zeros((1, 1, 1, 1)), affine);
    write_volume(&path, &volume, OutputType::Float32).unwrap();
    let header = read_header(&path).unwrap();
    for (ours, nibabel) in header
        .quatern
        .iter()
        .zip([0.18202418, -0.5920768, 0.7850556])
    {
        assert!((ours - nibabel).abs() < 1e-7, "{:?}", header.quatern);
    }
    let deviation = header.qform_affine().unwrap() - affine;
    assert!(
        (deviation[(1, 0)].abs() - 7.0615e-4).abs() < 1e-7,
        "{deviation}"
    );
    assert!(deviation.amax() <= deviation[(1, 0)].abs(), "{deviation}");
    assert_qform_close(&header, &affine).unwrap();
}

#[test]
fn integer_output_refuses_values_it_cannot_hold() {
    let affine = Matrix4::identity();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.nii.gz");
    let fractional = Volume::new(Array4::from_elem((1, 2, 2, 2), 1.5), affine);
    let err = write_volume(&path, &fractional, OutputType::Int16).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot be stored exactly as int16"),
        "{err}"
    );
    let large = Volume::new(Array4::from_elem((1, 2, 2, 2), 300.0), affine);
    let err = write_volume(&path, &large, OutputType::UInt8).unwrap_err();
    assert!(err.to_string().contains("= 300"), "{err}");
    assert!(!path.exists(), "nothing is written on error");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temporary left"
    );
    assert_eq!(OutputType::smallest_exact(&large), OutputType::Int16);
    assert_eq!(OutputType::smallest_exact(&fractional), OutputType::Float32);
}

#[test]
fn header_image_pair_reads_like_the_single_file() {
    let single = medssl_test_support::fixtures_dir().join("io/nifti/anatomical.nii");
    let bytes = std::fs::read(&single).unwrap();
    let mut header = bytes[..348].to_vec();
    header[344..348].copy_from_slice(b"ni1\0");
    header[108..112].copy_from_slice(&0f32.to_be_bytes()); // vox_offset, big-endian file
    let tmp = tempfile::tempdir().unwrap();
    let hdr = tmp.path().join("anat.hdr");
    std::fs::write(&hdr, &header).unwrap();
    let err = medssl_io::read_image(&hdr, &ReadOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(".img file beside it is missing"),
        "{err}"
    );
    std::fs::write(tmp.path().join("anat.img"), &bytes[352..]).unwrap();
    let pair = read_volume(&hdr, &ReadOptions::default()).unwrap();
    let reference = read_volume(&single, &ReadOptions::default()).unwrap();
    assert_eq!(pair, reference);
}
