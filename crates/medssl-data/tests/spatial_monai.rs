//! The spatial transforms against MONAI 1.6.1: every case of
//! `tests/data/spatial/cases.json` (made by `benches/parity/make_spatial_references.py`)
//! runs the medssl transform, built from the same parameters as a configuration table,
//! on the reference input and compares image, label and affine with MONAI's output.
//! Interpolated images must agree within 1e-6 (`spacing`, float64 in MONAI) or 1e-5
//! (`rand_affine`, whose MONAI grid is float32); everything copied (crops, pads, flips,
//! quarter turns, reorientation) and every nearest-neighbour sample exactly.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::max_abs_diff;
use medssl_data::spatial::axes::AxisMove;
use medssl_data::spatial::params::spatial_axis;
use medssl_data::spatial::pos_neg::correct_crop_center;
use medssl_data::{PipelineConfig, Sample, rng};
use medssl_io::nalgebra::Matrix4;
use medssl_io::{Affine, Volume};
use medssl_test_support::{le_f32, le_f64, test_crate_dir};
use ndarray::{Array4, ArrayView1, Axis};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

fn data_dir() -> PathBuf {
    test_crate_dir().join("tests/data/spatial")
}

/// The arrays of one safetensors file, as f64 with their shapes.
fn load(file: &str) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let path = data_dir().join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tensors = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    tensors
        .iter()
        .map(|(name, view)| {
            let raw = view.data();
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => le_f32(raw).into_iter().map(f64::from).collect(),
                Dtype::F64 => le_f64(raw),
                Dtype::U8 => raw.iter().map(|&b| b as f64).collect(),
                other => panic!("{file}: {name} has unexpected dtype {other:?}"),
            };
            (name.to_string(), (view.shape().to_vec(), values))
        })
        .collect()
}

fn array4(shape: &[usize], values: &[f64]) -> Array4<f32> {
    let shape = match shape {
        [c, i, j, k] => (*c, *i, *j, *k),
        [i, j, k] => (1, *i, *j, *k),
        other => panic!("not a volume shape: {other:?}"),
    };
    Array4::from_shape_vec(shape, values.iter().map(|&v| v as f32).collect()).unwrap()
}

fn affine(values: &[f64]) -> Affine {
    Matrix4::from_row_slice(values)
}

fn case_sample(inputs: &HashMap<String, (Vec<usize>, Vec<f64>)>, case: &Value) -> Sample {
    let (shape, image) = &inputs[case["source"].as_str().unwrap()];
    let (label_shape, label) = &inputs["label"];
    let a = affine(&inputs[&format!("affine.{}", case["affine"].as_str().unwrap())].1);
    Sample::labelled(
        case["name"].as_str().unwrap(),
        Volume::new(array4(shape, image), a),
        Volume::new(array4(label_shape, label), a),
    )
    .unwrap()
}

/// medssl's output for a case: the configured transform, or the function named.
fn run_case(case: &Value, sample: Sample) -> Sample {
    if let Some(transform) = case.get("transform") {
        let mut table: toml::Table = serde_json::from_value(case["params"].clone()).unwrap();
        table.insert("name".into(), transform.as_str().unwrap().into());
        let pipeline = PipelineConfig::from_tables(&[table]).unwrap().build();
        let mut out = pipeline.run(sample, &mut rng::stream(0, &[])).unwrap();
        assert_eq!(out.len(), 1);
        return out.remove(0);
    }
    match case["function"].as_str().unwrap() {
        "rotate90" => {
            let args = &case["args"];
            let axes: Vec<usize> = args["spatial_axes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| spatial_axis("rotate90", "spatial_axes", a.as_i64().unwrap()).unwrap())
                .collect();
            AxisMove::rot90(args["k"].as_u64().unwrap() as u32, axes[0], axes[1])
                .apply_sample(sample)
        }
        other => panic!("unknown function {other}"),
    }
}

#[test]
fn spatial_transforms_match_monai() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir().join("cases.json")).unwrap())
            .unwrap();
    let inputs = load("inputs.safetensors");
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "reference cases missing");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected = load(case["file"].as_str().unwrap());
        let out = run_case(case, case_sample(&inputs, case));
        let (shape, values) = &expected["image"];
        let want_image = array4(shape, values);
        let (shape, values) = &expected["label"];
        let want_label = array4(shape, values);
        let want_affine = affine(&expected["affine"].1);

        assert_eq!(
            out.image.data().shape(),
            want_image.shape(),
            "{name}: image shape"
        );
        // MONAI interpolates in float64 (spacing) or on a float32 grid (rand_affine).
        let tolerance = match case.get("transform").and_then(Value::as_str) {
            _ if case["params"]["mode"] == "nearest" => 0.0,
            Some("spacing") => 1e-6,
            Some("rand_affine") => 1e-5,
            _ => 0.0,
        };
        let what = format!("{name}: image");
        let (err, at) = max_abs_diff(&what, out.image.data().view(), want_image.view());
        assert!(err <= tolerance, "{what} differs by {err} at {at:?}");

        let label = out.label.as_ref().expect("label kept");
        let what = format!("{name}: label");
        let (err, at) = max_abs_diff(&what, label.data().view(), want_label.view());
        assert_eq!(err, 0.0, "{what} differs at {at:?}");

        // MONAI's RandAffine builds its matrix in float32.
        let affine_tol = if case["transform"] == "rand_affine" {
            1e-5
        } else {
            1e-9
        };
        for (got, want) in [out.image.affine(), label.affine()]
            .into_iter()
            .zip([want_affine; 2])
        {
            let what = format!("{name}: affine");
            let (diff, _) = max_abs_diff(
                &what,
                ArrayView1::from(got.as_slice()),
                ArrayView1::from(want.as_slice()),
            );
            assert!(
                diff <= affine_tol,
                "{what} {got} differs from MONAI's {want}"
            );
        }
        assert!(
            label
                .data()
                .index_axis(Axis(0), 0)
                .iter()
                .all(|v| [0.0, 1.0, 2.0, 3.0].contains(v)),
            "{name}: label values not from the input"
        );
    }
}

#[test]
fn crop_centres_are_corrected_as_monai_does() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir().join("cases.json")).unwrap())
            .unwrap();
    let shape: Vec<usize> = serde_json::from_value(cases["shape"].clone()).unwrap();
    let shape = [shape[0], shape[1], shape[2]];
    let centres = cases["crop_centres"].as_array().unwrap();
    assert!(!centres.is_empty());
    for c in centres {
        let get = |key: &str| -> [usize; 3] { serde_json::from_value(c[key].clone()).unwrap() };
        assert_eq!(
            correct_crop_center(get("centre"), get("size"), shape),
            get("corrected"),
            "{c}"
        );
    }
}
