//! Every sliding-window case in `$MEDSSL_FIXTURES/swinunetr/` (MONAI's
//! `sliding_window_inference` over a SwinUNETR) is reproduced to 1e-5
//! (`common::TOLERANCE`), with the network built from every argument its weights' case
//! states and the window settings from the case; in builds with the `wgpu` feature also
//! on wgpu, to the same bound.

mod common;

use std::path::Path;

use common::{TOLERANCE, TestDevice, json, network_config, read_f32, test_devices};
use medssl_eval::sliding_window::{Blend, SlidingWindow, scan_interval, window_starts};
use medssl_model::SwinUnetr;
use medssl_model::weights::load_monai_safetensors;
use medssl_test_support::fixtures_dir;
use medssl_test_support::max_abs_diff;
use ndarray::{Array5, IxDyn};
use safetensors::SafeTensors;
use serde_json::Value;

fn array5(st: &SafeTensors, name: &str) -> Array5<f32> {
    let (shape, values) = read_f32(st, name);
    ndarray::ArrayD::from_shape_vec(IxDyn(&shape), values)
        .unwrap()
        .into_dimensionality()
        .unwrap()
}

fn usize3(v: &Value) -> [usize; 3] {
    let v: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    v.try_into().unwrap()
}

/// The inferer a case describes; panics on a blending or padding mode medssl lacks.
fn inferer(name: &str, case: &Value) -> SlidingWindow {
    let blend = match case["mode"].as_str() {
        Some("gaussian") => Blend::Gaussian {
            sigma_scale: case["sigma_scale"].as_f64().unwrap(),
        },
        Some("constant") => Blend::Constant,
        other => panic!("{name}: mode {other:?} is not supported (gaussian or constant)"),
    };
    assert_eq!(
        case["padding_mode"], "constant",
        "{name}: only constant padding is supported"
    );
    SlidingWindow {
        roi: usize3(&case["roi_size"]),
        overlap: case["overlap"].as_f64().unwrap(),
        batch: case["sw_batch_size"].as_u64().unwrap() as usize,
        blend,
        cval: case["cval"].as_f64().unwrap() as f32,
    }
}

#[test]
fn fixture_sliding_window_matches_monai() {
    let dir = fixtures_dir().join("swinunetr");
    let mut cases: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| json(&p))
        .filter(|v| v["function"] == "monai.inferers.sliding_window_inference")
        .collect();
    cases.sort_by_key(|v| v["case"].as_str().unwrap().to_string());
    assert!(
        !cases.is_empty(),
        "no sliding-window cases in {}",
        dir.display()
    );
    for on in test_devices() {
        for case in &cases {
            check_case(&dir, case, &on);
        }
    }
}

/// One sliding-window case on one device: the windows MONAI visits, and the blended
/// output within the tolerance.
fn check_case(dir: &Path, case: &Value, on: &TestDevice) {
    let name = &format!("{} on {}", case["case"].as_str().unwrap(), on.name);
    let device = &on.device;
    let weights = dir.join(case["weights_from"].as_str().unwrap());
    let config = network_config(&json(&weights.with_extension("json")));
    let mut model = SwinUnetr::new(&config, device).unwrap();
    let report = load_monai_safetensors(&mut model, &weights).unwrap();
    assert!(
        report.missing.is_empty() && report.mismatched.is_empty(),
        "{name}: missing {:?}, mismatched {:?}",
        report.missing,
        report.mismatched
    );

    let bytes =
        std::fs::read(dir.join(format!("{}.safetensors", case["case"].as_str().unwrap()))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let input = array5(&st, "__input__");
    let want = array5(&st, "__output__");
    let sw = inferer(name, case);
    // Windows tile the image padded to at least the roi.
    let size: [usize; 3] = std::array::from_fn(|a| input.shape()[a + 2].max(sw.roi[a]));
    let interval = scan_interval(size, sw.roi, sw.overlap);
    assert_eq!(
        interval,
        usize3(&case["scan_interval"]),
        "{name}: scan interval"
    );
    let starts = window_starts(size, sw.roi, interval);
    let mut windows = Vec::new();
    for &d in &starts[0] {
        for &h in &starts[1] {
            for &w in &starts[2] {
                windows.push(serde_json::json!([d, h, w]));
            }
        }
    }
    assert_eq!(
        Value::from(windows),
        case["window_starts_dhw"],
        "{name}: window starts"
    );
    let mut calls = 0;
    let got = on
        .on_its_path(name, || {
            sw.run(input.view(), |batch| {
                calls += batch.shape()[0];
                model.predict_array(batch, device)
            })
        })
        .unwrap();
    assert_eq!(
        calls,
        case["num_windows"].as_u64().unwrap() as usize,
        "{name}: windows"
    );
    assert_eq!(got.shape(), want.shape(), "{name}");
    let what = format!("{name}: output");
    let diff = max_abs_diff(
        &what,
        got.as_slice().expect("standard layout"),
        want.as_slice().expect("standard layout"),
    );
    eprintln!("{what} max |diff| {diff:.3e}");
    assert!(diff <= TOLERANCE, "{what} differs by {diff:e}");
}
