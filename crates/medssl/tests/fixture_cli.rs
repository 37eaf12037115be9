//! The `medssl info` and `medssl convert` commands on every file listed in
//! `$MEDSSL_FIXTURES/io/expected.json` and `io/nrrd/expected.json`.

mod common;

use common::{medssl, stdout_ok};

use std::path::{Path, PathBuf};

use medssl_io::geometry::{affine_rows, orientation_codes, spacing};
use medssl_io::{Affine, ReadOptions, Volume, read_image, read_volume};
use medssl_test_support::fixtures_dir;
use serde_json::Value;

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join("io/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")))
        .collect()
}

fn affine_of(rows: &Value) -> Affine {
    let rows: Vec<Vec<f64>> = rows.as_array().unwrap().iter().map(nums).collect();
    Affine::from_fn(|r, c| rows[r][c])
}

/// What the reference says about an entry's geometry.
#[derive(Debug, Clone)]
enum Geometry {
    /// The file has this affine; `tolerance` is absolute for NIfTI and series (float32
    /// header fields), relative for single DICOM files (decimal-string attributes).
    /// `slice_column` is false for multi-frame files, whose frame spacing the
    /// reference does not give.
    Known {
        affine: Affine,
        tolerance: f64,
        relative: bool,
        slice_column: bool,
    },
    /// The file has none: `info --json` prints nulls and `convert` writes it with this
    /// assumed affine (see `medssl_io::AssumedGeometry`), with a warning.
    None { assumed: Affine },
    /// A multi-frame DICOM file without top-level geometry: the reference cannot say
    /// whether its functional groups hold some.
    Unknown,
}

/// One `io/expected.json` entry: path, shape in medssl's order, format name, value
/// statistics and geometry.
struct Entry {
    path: PathBuf,
    shape: Vec<u64>,
    format: &'static str,
    values: Value,
    geometry: Geometry,
}

/// The RAS affine (i = column, j = row, k = frame) of a single DICOM file from its
/// reference attributes, and whether all of position, orientation and pixel spacing
/// are present. With some absent it is the documented assumed geometry (dcm2niix's
/// rule): 1 mm spacing, identity direction (LPS), origin 0 for what is missing.
fn dicom_reference_affine(d: &Value) -> (Affine, bool) {
    let get = |key: &str| (!d[key].is_null()).then(|| nums(&d[key]));
    let (p, o, ps) = (
        get("image_position_patient"),
        get("image_orientation_patient"),
        get("pixel_spacing"),
    );
    let complete = p.is_some() && o.is_some() && ps.is_some();
    let p = p.unwrap_or(vec![0.0; 3]);
    let o = o.unwrap_or(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let ps = ps.unwrap_or(vec![1.0, 1.0]);
    let slice = [&d["spacing_between_slices"], &d["slice_thickness"]]
        .into_iter()
        .filter_map(Value::as_f64)
        .find(|s| *s > 0.0)
        .unwrap_or(1.0);
    let row = [o[0], o[1], o[2]];
    let col = [o[3], o[4], o[5]];
    let n = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    let norm = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    let lps = |r: usize| [row[r] * ps[1], col[r] * ps[0], n[r] / norm * slice, p[r]];
    let sign = [-1.0, -1.0, 1.0];
    let affine = Affine::from_fn(|r, c| {
        if r == 3 {
            f64::from(c == 3)
        } else {
            sign[r] * lps(r)[c]
        }
    });
    (affine, complete)
}

fn dicom_entry(path: PathBuf, d: &Value) -> Entry {
    let mut shape: Vec<u64> = nums(&d["shape"]).into_iter().map(|x| x as u64).collect();
    let frames = shape[0];
    shape.reverse();
    let (affine, complete) = dicom_reference_affine(d);
    let geometry = match (complete, frames) {
        (true, _) => Geometry::Known {
            affine,
            tolerance: 1e-9,
            relative: true,
            slice_column: frames == 1,
        },
        (false, 1) => Geometry::None { assumed: affine },
        (false, _) => Geometry::Unknown,
    };
    Entry {
        path,
        shape,
        format: "dicom",
        values: d["values_after_modality_lut_f64"].clone(),
        geometry,
    }
}

fn entries() -> Vec<Entry> {
    let e = expected();
    let dir = fixtures_dir().join("io");
    let shape = |v: &Value| -> Vec<u64> { nums(v).into_iter().map(|x| x as u64).collect() };
    let mut out = Vec::new();
    for n in e["nifti"].as_array().unwrap() {
        let format = if n["format"].as_str().unwrap().starts_with("NIfTI-2") {
            "nifti2"
        } else {
            "nifti1"
        };
        out.push(Entry {
            path: dir.join(n["file"].as_str().unwrap()),
            shape: shape(&n["shape"]),
            format,
            values: n["values_after_scaling_f64"].clone(),
            geometry: Geometry::Known {
                affine: affine_of(&n["affine"]),
                tolerance: 1e-5,
                relative: false,
                slice_column: true,
            },
        });
    }
    for d in e["dicom"].as_array().unwrap() {
        out.push(dicom_entry(dir.join(d["file"].as_str().unwrap()), d));
    }
    for d in e["dicom_series"].as_array().unwrap() {
        let mut s = shape(&d["shape_slice_row_col"]);
        s.reverse();
        out.push(Entry {
            path: dir.join(d["dir"].as_str().unwrap()),
            shape: s,
            format: "dicom-series",
            values: d["values_after_modality_lut_f64"].clone(),
            geometry: Geometry::Known {
                affine: affine_of(&d["ras_geometry"]["affine_ras"]),
                tolerance: 1e-5,
                relative: false,
                slice_column: true,
            },
        });
    }
    out.extend(nrrd_entries());
    out
}

/// The NRRD reference cases (`io/nrrd/expected.json`), from the repository's test data
/// when the fixture directory was made before NRRD was read.
fn nrrd_entries() -> Vec<Entry> {
    let mut dir = fixtures_dir().join("io/nrrd");
    if !dir.join("expected.json").is_file() {
        dir = medssl_test_support::test_crate_dir().join("../../testdata/io/nrrd");
    }
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let e: Value = serde_json::from_str(&text).unwrap();
    e["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Entry {
            path: dir.join(c["file"].as_str().unwrap()),
            shape: nums(&c["shape"]).into_iter().map(|x| x as u64).collect(),
            format: "nrrd",
            values: c["values_f64"].clone(),
            geometry: Geometry::Known {
                affine: affine_of(&c["affine"]),
                tolerance: 1e-9,
                relative: true,
                slice_column: true,
            },
        })
        .collect()
}

/// `medssl info --json` and plain `medssl info` on one entry: shape, format, value
/// statistics, and the values of affine, spacing and orientation (or their absence).
fn check_info(entry: &Entry) {
    let Entry {
        path,
        shape,
        format,
        values,
        geometry,
    } = entry;
    let text = stdout_ok(&["info", "--json", path.to_str().unwrap()]);
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{}: not one JSON object ({e}): {text}", path.display()));
    let case = path.display();
    assert_eq!(v["format"], *format, "{case}");
    let got_shape: Vec<u64> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(&got_shape, shape, "{case}");
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
    assert!(v["dtype"].is_string(), "{case}");
    match geometry {
        Geometry::Known {
            affine,
            tolerance,
            relative,
            slice_column,
        } => {
            let close = |g: f64, w: f64| {
                let scale = if *relative { w.abs().max(1.0) } else { 1.0 };
                (g - w).abs() <= tolerance * scale
            };
            let got = affine_of(&v["affine"]);
            for (r, row) in affine_rows(affine).iter().enumerate() {
                for (c, &w) in row.iter().enumerate() {
                    if c == 2 && !slice_column {
                        continue;
                    }
                    assert!(
                        close(got[(r, c)], w),
                        "{case}: affine[{r}][{c}] = {}, expected {w}",
                        got[(r, c)]
                    );
                }
            }
            let got_spacing = nums(&v["spacing"]);
            assert_eq!(got_spacing.len(), 3, "{case}: spacing");
            let want_spacing = spacing(affine);
            let axes = if *slice_column { 3 } else { 2 };
            for a in 0..axes {
                assert!(
                    close(got_spacing[a], want_spacing[a]),
                    "{case}: spacing[{a}] = {}, expected {}",
                    got_spacing[a],
                    want_spacing[a]
                );
            }
            // nibabel's aff2axcodes of the reference affine (a multi-frame file's slice
            // axis is checked through the direction cosines of the other two).
            let codes = v["orientation"].as_str().unwrap();
            if *slice_column {
                assert_eq!(codes, orientation_codes(affine), "{case}: orientation");
            } else {
                assert_eq!(codes.len(), 3, "{case}: orientation");
            }
        }
        Geometry::None { .. } => {
            for key in ["affine", "spacing", "orientation"] {
                assert!(v[key].is_null(), "{case}: {key} should be null: {text}");
            }
        }
        Geometry::Unknown => {
            if !v["affine"].is_null() {
                assert_eq!(v["affine"].as_array().unwrap().len(), 4, "{case}");
                assert_eq!(v["orientation"].as_str().unwrap().len(), 3, "{case}");
            }
        }
    }
    // The plain form names the same shape, and says when there is no geometry.
    let plain = stdout_ok(&["info", path.to_str().unwrap()]);
    assert!(plain.contains(&format!("{shape:?}")), "{case}: {plain}");
    if let Geometry::None { .. } = geometry {
        assert!(plain.contains("none in the file"), "{case}: {plain}");
    }
}

#[test]
fn fixture_info_json_reports_every_file() {
    for entry in entries() {
        check_info(&entry);
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

/// `medssl convert` (optionally `--canonical`), then the written file read back: same
/// voxels at the same world positions. A file without geometry is written with the
/// assumed affine the reference describes, and a warning naming it; others warn not.
fn convert_and_compare(entry: &Entry, out_dir: &Path, canonical: bool) {
    let input = &entry.path;
    let image = read_image(input, &ReadOptions::default()).unwrap();
    let (source, assumed) = image.to_volume_or_assumed().unwrap();
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
    let out = medssl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "medssl {args:?} failed: {stderr}");
    let case = input.display();
    match (&entry.geometry, assumed) {
        (Geometry::None { assumed: want }, Some(assumed)) => {
            let file_name = input.file_name().unwrap().to_string_lossy();
            assert!(
                stderr.contains("warning") && stderr.contains(&*file_name),
                "{case}: no warning naming the file: {stderr}"
            );
            for (g, w) in assumed.affine.iter().zip(want.iter()) {
                assert!(
                    (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                    "{case}: {assumed:?}"
                );
            }
        }
        (Geometry::None { .. }, None) => panic!("{case}: the reference has no geometry"),
        (_, assumed) => {
            assert!(assumed.is_none() || matches!(entry.geometry, Geometry::Unknown));
            if assumed.is_none() {
                assert!(!stderr.contains("warning"), "{case}: {stderr}");
            }
        }
    }
    let back = read_volume(&output, &ReadOptions::default()).unwrap();
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
    for entry in entries() {
        convert_and_compare(&entry, tmp.path(), false);
        convert_and_compare(&entry, tmp.path(), true);
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

/// A fixture DICOM file with ImagePositionPatient and ImageOrientationPatient removed
/// (and one also without its spacings): `info --json` prints null geometry, `convert`
/// writes it with the assumed geometry and a warning naming it. Exercises that path
/// whether or not the reference set holds such a file.
#[test]
fn dicom_file_without_geometry_is_converted_with_a_warning() {
    let e = expected();
    let dir = fixtures_dir().join("io");
    let tmp = tempfile::tempdir().unwrap();
    let single_frame: Vec<&Value> = e["dicom"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| nums(&d["shape"])[0] == 1.0)
        .collect();
    let d = *single_frame
        .first()
        .expect("a single-frame DICOM file in the fixtures");
    let file = d["file"].as_str().unwrap();
    for (label, path, removed) in
        medssl_test_support::geometry_less_copies(&dir.join(file), tmp.path())
    {
        let mut reference = d.clone();
        for key in removed {
            reference[key] = Value::Null;
        }
        let entry = dicom_entry(path, &reference);
        let Geometry::None { assumed } = &entry.geometry else {
            panic!("{label}: the reference should say no geometry");
        };
        if label.starts_with("no-geometry") {
            let diag =
                Affine::from_diagonal(&medssl_io::nalgebra::Vector4::new(-1.0, -1.0, 1.0, 1.0));
            assert_eq!(*assumed, diag);
        }
        check_info(&entry);
        let out_dir = tmp.path().join(format!("{label}.out"));
        std::fs::create_dir(&out_dir).unwrap();
        convert_and_compare(&entry, &out_dir, false);
        convert_and_compare(&entry, &out_dir, true);
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
