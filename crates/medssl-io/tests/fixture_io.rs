//! Every entry of `$MEDSSL_FIXTURES/io/expected.json` (nibabel / pydicom / SimpleITK
//! reference values) must be reproduced: shape, stored type, affine, spacing, scaling,
//! value statistics, probe voxels and the sha256 of all scaled values.

use medssl_io::geometry::spacing;
use medssl_io::nalgebra;
use medssl_io::nifti::read_header;
use medssl_io::{Affine, Format, Image, ReadOptions, read_image};
use medssl_test_support::fixtures_dir;
use serde_json::Value;

mod common;
use common::{assert_close, check_values, num, nums, read_json, usizes, value_at};

fn expected() -> Value {
    read_json(&fixtures_dir().join("io/expected.json"))
}

fn assert_affine(case: &str, what: &str, got: &Affine, want: &Value, tol: f64) {
    let rows = want.as_array().expect("4 rows");
    for (r, row) in rows.iter().enumerate() {
        for (c, w) in nums(row).into_iter().enumerate() {
            let g = got[(r, c)];
            assert!(
                (g - w).abs() <= tol,
                "{case}: {what}[{r}][{c}] = {g}, expected {w}"
            );
        }
    }
}

/// Value at a multi-index given in `order` (first index fastest in storage when
/// `first_fastest`, else last index fastest).
fn probe(image: &Image, index: &[usize], shape: &[usize], first_fastest: bool) -> f64 {
    let mut linear = 0;
    if first_fastest {
        for a in (0..index.len()).rev() {
            linear = linear * shape[a] + index[a];
        }
    } else {
        for a in 0..index.len() {
            linear = linear * shape[a] + index[a];
        }
    }
    value_at(image, linear)
}

#[test]
fn fixture_nifti_files_match_nibabel() {
    let expected = expected();
    let dir = fixtures_dir().join("io");
    let cases = expected["nifti"].as_array().expect("nifti list");
    assert!(!cases.is_empty());
    for e in cases {
        let case = e["file"].as_str().unwrap();
        let path = dir.join(case);
        let image = read_image(&path, &ReadOptions::default())
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        let nifti2 = e["format"].as_str().unwrap().starts_with("NIfTI-2");
        assert_eq!(
            image.format,
            if nifti2 {
                Format::Nifti2
            } else {
                Format::Nifti1
            },
            "{case}"
        );
        assert_eq!(image.shape, usizes(&e["shape"]), "{case}: shape");
        assert_eq!(
            image.stored_type.name(),
            e["on_disk_dtype_name"].as_str().unwrap(),
            "{case}: dtype"
        );
        let affine = image.affine.expect("NIfTI always has an affine");
        assert_affine(case, "affine", &affine, &e["affine"], 1e-5);
        let header = read_header(&path).unwrap();
        assert_affine(
            case,
            "qform",
            &header.qform_affine().unwrap(),
            &e["qform_affine"],
            1e-5,
        );
        assert_affine(
            case,
            "sform",
            &header.sform_affine(),
            &e["sform_affine"],
            1e-5,
        );
        assert_eq!(
            header.best_affine().unwrap().1,
            e["affine_source"].as_str().unwrap(),
            "{case}: affine source"
        );
        let pixdim = nums(&e["voxel_spacing_pixdim"]);
        assert_eq!(
            &header.pixdim[1..=pixdim.len()],
            pixdim.as_slice(),
            "{case}: pixdim"
        );
        for (a, (g, w)) in spacing(&affine)
            .iter()
            .zip(nums(&e["voxel_spacing_from_affine_columns"]))
            .enumerate()
        {
            assert_close(case, &format!("spacing[{a}]"), *g, w, 1e-7);
        }
        let scaling = &e["scaling"];
        assert_eq!(
            image.scaling.slope,
            num(&scaling["applied_slope"]),
            "{case}: slope"
        );
        assert_eq!(
            image.scaling.inter,
            num(&scaling["applied_inter"]),
            "{case}: inter"
        );

        let values = &e["values_after_scaling_f64"];
        check_values(case, &image, values, "sha256_f64le_first_index_fastest");
        let volume = image.to_volume().unwrap();
        for p in values["probes"].as_array().unwrap() {
            let index = usizes(&p["index"]);
            let want = num(&p["value"]);
            assert_close(
                case,
                "probe",
                probe(&image, &index, &image.shape, true),
                want,
                1e-12,
            );
            let c = index.get(3).copied().unwrap_or(0);
            let got = volume.data()[[c, index[0], index[1], index[2]]];
            assert_eq!(got, want as f32, "{case}: volume voxel {index:?}");
            let world = affine
                * nalgebra::Vector4::new(index[0] as f64, index[1] as f64, index[2] as f64, 1.0);
            for (a, w) in nums(&p["world_mm_from_affine"]).into_iter().enumerate() {
                assert_close(case, "probe world mm", world[a], w, 1e-6);
            }
        }
    }
}

/// An optional numeric list of the reference (`null` when the attribute is absent).
fn opt_nums(v: &Value) -> Option<Vec<f64>> {
    (!v.is_null()).then(|| nums(v))
}

/// What the reference entry of a single DICOM file says about its geometry: the RAS
/// affine (index i = column, j = row, k = frame) its PixelSpacing,
/// ImageOrientationPatient, ImagePositionPatient and slice spacing describe, and the
/// attributes it lacks. When some are absent, the affine is the documented assumed
/// geometry (`medssl_io::AssumedGeometry`, dcm2niix's rule): 1 mm spacing, identity
/// direction (LPS), origin 0 for what is missing.
fn reference_dicom_geometry(e: &Value) -> (Affine, Vec<&'static str>) {
    let mut missing = Vec::new();
    let position = opt_nums(&e["image_position_patient"]);
    let orientation = opt_nums(&e["image_orientation_patient"]);
    let pixel_spacing = opt_nums(&e["pixel_spacing"]);
    if position.is_none() {
        missing.push("ImagePositionPatient");
    }
    if orientation.is_none() {
        missing.push("ImageOrientationPatient");
    }
    if pixel_spacing.is_none() {
        missing.push("PixelSpacing");
    }
    let p = position.unwrap_or(vec![0.0; 3]);
    let o = orientation.unwrap_or(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let ps = pixel_spacing.unwrap_or(vec![1.0, 1.0]);
    let slice = [&e["spacing_between_slices"], &e["slice_thickness"]]
        .into_iter()
        .filter_map(Value::as_f64)
        .find(|s| *s > 0.0)
        .unwrap_or(1.0);
    let row = nalgebra::Vector3::new(o[0], o[1], o[2]);
    let col = nalgebra::Vector3::new(o[3], o[4], o[5]);
    let normal = row.cross(&col).normalize();
    let lps = [row * ps[1], col * ps[0], normal * slice];
    // RAS = diag(-1, -1, 1) · LPS.
    let sign = [-1.0, -1.0, 1.0];
    let affine = Affine::from_fn(|r, c| match (r, c) {
        (3, 3) => 1.0,
        (3, _) => 0.0,
        (_, 3) => sign[r] * p[r],
        _ => sign[r] * lps[c][r],
    });
    (affine, missing)
}

/// Compares the columns of `got` with `want`: columns 0 and 1 (spacing times the row
/// and column direction cosines) and the origin always, column 2 (slice spacing along
/// the normal) only when `with_slice_column` (single-frame files, whose slice spacing
/// is nominal).
fn assert_dicom_affine(case: &str, got: &Affine, want: &Affine, with_slice_column: bool) {
    for c in [0, 1, 3].into_iter().chain(with_slice_column.then_some(2)) {
        for r in 0..3 {
            assert_close(
                case,
                &format!("affine[{r}][{c}]"),
                got[(r, c)],
                want[(r, c)],
                1e-9,
            );
        }
    }
}

/// A file with geometry must have it exactly; one whose reference lacks position,
/// orientation or pixel spacing has none (`affine` `None`, `to_volume` refuses) and
/// carries the documented assumed geometry instead.
fn check_dicom_geometry(case: &str, image: &Image, e: &Value) {
    let frames = usizes(&e["shape"])[0];
    let (want, missing) = reference_dicom_geometry(e);
    if missing.is_empty() {
        let affine = image
            .affine
            .unwrap_or_else(|| panic!("{case}: the reference has geometry, medssl found none"));
        assert!(image.assumed_geometry.is_none(), "{case}");
        assert_dicom_affine(case, &affine, &want, frames == 1);
        if frames == 1 {
            let ps = nums(&e["pixel_spacing"]);
            for (a, s) in [ps[1], ps[0]].into_iter().enumerate() {
                assert_close(case, &format!("spacing[{a}]"), spacing(&affine)[a], s, 1e-9);
            }
        }
        return;
    }
    if frames > 1 && image.affine.is_some() {
        // The reference reads top-level attributes only; an enhanced multi-frame file
        // keeps its geometry in the functional-group sequences, where medssl finds it.
        eprintln!("{case}: geometry from the functional groups (none at the top level)");
        return;
    }
    assert!(
        image.affine.is_none(),
        "{case}: the reference lacks {missing:?}, medssl found an affine"
    );
    let assumed = image
        .assumed_geometry
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: no assumed geometry"));
    assert_eq!(assumed.missing, missing, "{case}: missing attributes");
    assert_dicom_affine(case, &assumed.affine, &want, frames == 1);
    let err = image.to_volume().unwrap_err().to_string();
    assert!(
        err.contains(missing[0]) && err.contains(case.rsplit('/').next().unwrap()),
        "{case}: {err}"
    );
    let (volume, used) = image.to_volume_or_assumed().unwrap();
    assert_eq!(used, Some(assumed), "{case}");
    assert_eq!(volume.affine(), &assumed.affine, "{case}");
}

#[test]
fn fixture_dicom_files_match_pydicom() {
    let expected = expected();
    let dir = fixtures_dir().join("io");
    let cases = expected["dicom"].as_array().expect("dicom list");
    assert!(!cases.is_empty());
    for e in cases {
        let case = e["file"].as_str().unwrap();
        let image = read_image(&dir.join(case), &ReadOptions::default())
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert_eq!(image.format, Format::Dicom, "{case}");
        let frc = usizes(&e["shape"]);
        assert_eq!(image.shape, vec![frc[2], frc[1], frc[0]], "{case}: shape");
        assert_eq!(
            image.stored_type.name(),
            e["stored_dtype"].as_str().unwrap(),
            "{case}: dtype"
        );
        if e["modality_lut_applied"].as_bool().unwrap() {
            assert_eq!(image.scaling.slope, num(&e["rescale_slope"]), "{case}");
            assert_eq!(image.scaling.inter, num(&e["rescale_intercept"]), "{case}");
        } else {
            assert!(image.scaling.is_identity(), "{case}: no rescale tags");
        }
        check_dicom_geometry(case, &image, e);
        let values = &e["values_after_modality_lut_f64"];
        check_values(case, &image, values, "sha256_f64le_frame_row_col");
        for p in values["probes"].as_array().unwrap() {
            let index = usizes(&p["index_frame_row_col"]);
            assert_close(
                case,
                "probe",
                probe(&image, &index, &frc, false),
                num(&p["value"]),
                0.0,
            );
        }
    }
}

/// Every fixture DICOM file with its position and orientation removed (and then its
/// spacings too) is still read, values unchanged, with no affine and the documented
/// assumed geometry: so that path is checked even when the reference set has no file
/// without geometry.
#[test]
fn fixture_dicom_files_without_geometry_get_the_assumed_geometry() {
    let expected = expected();
    let dir = fixtures_dir().join("io");
    let tmp = tempfile::tempdir().unwrap();
    for e in expected["dicom"].as_array().expect("dicom list") {
        let case = e["file"].as_str().unwrap();
        for (label, path, removed) in
            medssl_test_support::geometry_less_copies(&dir.join(case), tmp.path())
        {
            let mut reference = e.clone();
            for key in removed {
                reference[key] = Value::Null;
            }
            let image = read_image(&path, &ReadOptions::default())
                .unwrap_or_else(|err| panic!("{label}: {err}"));
            check_dicom_geometry(&label, &image, &reference);
            check_values(
                &label,
                &image,
                &e["values_after_modality_lut_f64"],
                "sha256_f64le_frame_row_col",
            );
            if label.starts_with("no-geometry") && usizes(&e["shape"])[0] == 1 {
                let assumed = image.assumed_geometry.as_ref().unwrap();
                let diag = Affine::from_diagonal(&nalgebra::Vector4::new(-1.0, -1.0, 1.0, 1.0));
                assert_eq!(assumed.affine, diag, "{label}");
            }
        }
    }
}

#[test]
fn fixture_dicom_series_match_pydicom_and_itk() {
    let expected = expected();
    let dir = fixtures_dir().join("io");
    let cases = expected["dicom_series"].as_array().expect("series list");
    assert!(!cases.is_empty());
    for e in cases {
        let case = e["dir"].as_str().unwrap();
        let image = read_image(&dir.join(case), &ReadOptions::default())
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert_eq!(image.format, Format::DicomSeries, "{case}");
        let src = usizes(&e["shape_slice_row_col"]);
        assert_eq!(image.shape, vec![src[2], src[1], src[0]], "{case}: shape");
        assert_eq!(
            image.shape,
            usizes(&e["ras_geometry"]["nifti_shape"]),
            "{case}"
        );
        assert_eq!(image.scaling.slope, num(&e["rescale_slope"]), "{case}");
        assert_eq!(image.scaling.inter, num(&e["rescale_intercept"]), "{case}");
        let affine = image.affine.unwrap();
        assert_affine(
            case,
            "affine",
            &affine,
            &e["ras_geometry"]["affine_ras"],
            1e-5,
        );
        let values = &e["values_after_modality_lut_f64"];
        check_values(case, &image, values, "sha256_f64le_slice_row_col");
        for p in values["probes"].as_array().unwrap() {
            let index = usizes(&p["index_slice_row_col"]);
            assert_close(
                case,
                "probe",
                probe(&image, &index, &src, false),
                num(&p["value"]),
                0.0,
            );
            let world = affine
                * nalgebra::Vector4::new(index[2] as f64, index[1] as f64, index[0] as f64, 1.0);
            for (a, w) in nums(&p["ras_mm"]).into_iter().enumerate() {
                assert_close(case, "probe RAS mm", world[a], w, 1e-6);
            }
        }
    }
}
