//! Every sliding-window case in `$MEDSSL_FIXTURES/swinunetr/` (MONAI's
//! `sliding_window_inference` over a SwinUNETR) is reproduced to 1e-4.

use burn::tensor::Device;
use medssl_eval::sliding_window::{Blend, SlidingWindow};
use medssl_io::testing::{fixtures_dir, le_f32};
use medssl_model::weights::load_monai_safetensors;
use medssl_model::{SwinUnetr, SwinUnetrConfig};
use ndarray::{Array5, IxDyn};
use safetensors::SafeTensors;
use serde_json::Value;

fn read_f32(st: &SafeTensors, name: &str) -> Array5<f32> {
    let view = st.tensor(name).unwrap();
    let values = le_f32(view.data());
    ndarray::ArrayD::from_shape_vec(IxDyn(view.shape()), values)
        .unwrap()
        .into_dimensionality()
        .unwrap()
}

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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
    assert!(!cases.is_empty());
    let device = Device::flex();
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let weights = dir.join(case["weights_from"].as_str().unwrap());
        let net = json(&weights.with_extension("json"));
        let mut config = SwinUnetrConfig::new(
            net["in_channels"].as_u64().unwrap() as usize,
            net["out_channels"].as_u64().unwrap() as usize,
        );
        config.feature_size = net["feature_size"].as_u64().unwrap() as usize;
        config.window_size = [net["window_size"].as_u64().unwrap() as usize; 3];
        let mut model = SwinUnetr::new(&config, &device).unwrap();
        let report = load_monai_safetensors(&mut model, &weights).unwrap();
        assert!(
            report.missing.is_empty() && report.mismatched.is_empty(),
            "{name}"
        );

        let bytes = std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let input = read_f32(&st, "__input__");
        let want = read_f32(&st, "__output__");
        let blend = match case["mode"].as_str().unwrap() {
            "gaussian" => Blend::Gaussian {
                sigma_scale: case["sigma_scale"].as_f64().unwrap(),
            },
            _ => Blend::Constant,
        };
        let sw = SlidingWindow {
            roi: usize3(&case["roi_size"]),
            overlap: case["overlap"].as_f64().unwrap(),
            batch: case["sw_batch_size"].as_u64().unwrap() as usize,
            blend,
            cval: case["cval"].as_f64().unwrap() as f32,
        };
        let mut calls = 0;
        let got = sw
            .run(input.view(), |batch| {
                calls += batch.shape()[0];
                model.predict_array(batch, &device)
            })
            .unwrap();
        assert_eq!(
            calls,
            case["num_windows"].as_u64().unwrap() as usize,
            "{name}: windows"
        );
        assert_eq!(got.shape(), want.shape(), "{name}");
        let diff = got
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff <= 1e-4, "{name}: output differs by {diff}");
    }
}
