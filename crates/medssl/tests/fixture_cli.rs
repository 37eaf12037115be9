//! The `medssl info` and `medssl convert` commands on every file listed in
//! `$MEDSSL_FIXTURES/io/expected.json`.

mod common;

use common::{medssl, stdout_ok};

use std::path::{Path, PathBuf};

use medssl_io::testing::fixtures_dir;
use medssl_io::{ReadOptions, Volume, read_volume};
use serde_json::Value;

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join("io/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (path, expected shape in medssl's order, expected format name, stats) of every entry.
fn entries() -> Vec<(PathBuf, Vec<u64>, &'static str, Value)> {
    let e = expected();
    let dir = fixtures_dir().join("io");
    let shape = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let mut out = Vec::new();
    for n in e["nifti"].as_array().unwrap() {
        let format = if n["format"].as_str().unwrap().starts_with("NIfTI-2") {
            "nifti2"
        } else {
            "nifti1"
        };
        out.push((
            dir.join(n["file"].as_str().unwrap()),
            shape(&n["shape"]),
            format,
            n["values_after_scaling_f64"].clone(),
        ));
    }
    for d in e["dicom"].as_array().unwrap() {
        let mut s = shape(&d["shape"]);
        s.reverse();
        out.push((
            dir.join(d["file"].as_str().unwrap()),
            s,
            "dicom",
            d["values_after_modality_lut_f64"].clone(),
        ));
    }
    for d in e["dicom_series"].as_array().unwrap() {
        let mut s = shape(&d["shape_slice_row_col"]);
        s.reverse();
        out.push((
            dir.join(d["dir"].as_str().unwrap()),
            s,
            "dicom-series",
            d["values_after_modality_lut_f64"].clone(),
        ));
    }
    out
}

#[test]
fn fixture_info_json_reports_every_file() {
    for (path, shape, format, values) in entries() {
        let text = stdout_ok(&["info", "--json", path.to_str().unwrap()]);
        let v: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{}: not one JSON object ({e}): {text}", path.display()));
        let case = path.display();
        assert_eq!(v["format"], format, "{case}");
        let got_shape: Vec<u64> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(got_shape, shape, "{case}");
        for key in ["sum", "min", "max"] {
            let got = v["stats"][key].as_f64().unwrap();
            let want = values[key].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{case}: {key} {got} vs {want}"
            );
        }
        let mean = v["stats"]["mean"].as_f64().unwrap();
        let want_mean = values["sum"].as_f64().unwrap() / values["count"].as_f64().unwrap();
        assert!(
            (mean - want_mean).abs() <= 1e-9 * want_mean.abs().max(1.0),
            "{case}: mean"
        );
        assert_eq!(
            v["affine"].as_array().unwrap().len(),
            4,
            "{case}: affine rows"
        );
        assert_eq!(v["orientation"].as_str().unwrap().len(), 3, "{case}");
        assert_eq!(v["spacing"].as_array().unwrap().len(), 3, "{case}");
        assert!(v["dtype"].is_string(), "{case}");
        // The plain form names the file and the same shape.
        let plain = stdout_ok(&["info", path.to_str().unwrap()]);
        assert!(plain.contains(&format!("{shape:?}")), "{case}: {plain}");
    }
}

fn world(volume: &Volume, i: usize, j: usize, k: usize) -> [f64; 3] {
    let w = volume.affine() * medssl_io::nalgebra::Vector4::new(i as f64, j as f64, k as f64, 1.0);
    [w[0], w[1], w[2]]
}

/// The value found at the world position of input voxel (c, i, j, k) in `out`.
fn value_at_world(out: &Volume, point: [f64; 3], c: usize) -> f32 {
    let inv = out.affine().try_inverse().unwrap();
    let idx = inv * medssl_io::nalgebra::Vector4::new(point[0], point[1], point[2], 1.0);
    let [i, j, k] = [idx[0], idx[1], idx[2]].map(|x| x.round() as usize);
    out.data()[[c, i, j, k]]
}

fn convert_and_compare(input: &Path, out_dir: &Path, canonical: bool) {
    let source = read_volume(input, &ReadOptions::default()).unwrap();
    let name = format!(
        "{}{}.nii.gz",
        input.file_name().unwrap().to_string_lossy(),
        if canonical { "-ras" } else { "" }
    );
    let output = out_dir.join(name);
    let mut args = vec!["convert", input.to_str().unwrap(), output.to_str().unwrap()];
    if canonical {
        args.push("--canonical");
    }
    stdout_ok(&args);
    let back = read_volume(&output, &ReadOptions::default()).unwrap();
    let case = input.display();
    assert_eq!(back.channels(), source.channels(), "{case}");
    if canonical {
        assert_eq!(back.orientation(), "RAS", "{case}");
    } else {
        assert_eq!(back.data(), source.data(), "{case}: voxels");
        for (a, b) in back.affine().iter().zip(source.affine().iter()) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{case}: affine {a} vs {b}"
            );
        }
    }
    // Every voxel lands at the same world position (within float32 header precision).
    let [ni, nj, nk] = source.spatial_shape();
    for (i, j, k) in [
        (0, 0, 0),
        (ni - 1, nj - 1, nk - 1),
        (ni / 2, nj / 3, nk / 2),
        (1.min(ni - 1), nj - 1, 0),
    ] {
        for c in 0..source.channels() {
            let v = value_at_world(&back, world(&source, i, j, k), c);
            assert_eq!(
                v,
                source.data()[[c, i, j, k]],
                "{case}: voxel ({c},{i},{j},{k})"
            );
        }
    }
}

#[test]
fn fixture_convert_round_trips_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    for (path, ..) in entries() {
        convert_and_compare(&path, tmp.path(), false);
        convert_and_compare(&path, tmp.path(), true);
    }
    // No temporary files are left behind.
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with('.'),
            "left over: {name:?}"
        );
    }
}

#[test]
fn errors_name_the_file_and_exit_nonzero() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.nii.gz");
    let out = medssl(&["info", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.nii.gz"), "{err}");
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "hello, this is not an image at all; long enough to sniff ................................................................................................................................").unwrap();
    let out = medssl(&["info", text.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a NIfTI"),
        "{err}"
    );
}
