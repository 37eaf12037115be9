//! Every network case in `$MEDSSL_FIXTURES/swinunetr/` (a MONAI SwinUNETR, its weights,
//! an input, the logits and the five encoder stage outputs) is reproduced to 1e-4.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use medssl_io::testing::{fixtures_dir, le_f32};
use medssl_model::weights::load_monai_safetensors;
use medssl_model::{SwinUnetr, SwinUnetrConfig};
use safetensors::SafeTensors;
use serde_json::Value;

/// Float32 tensor `name` of a safetensors file, as (shape, values).
fn read_f32(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    let values = le_f32(view.data());
    (view.shape().to_vec(), values)
}

fn to_tensor(shape: &[usize], values: Vec<f32>, device: &Device) -> Tensor<5> {
    Tensor::from_data(TensorData::new(values, shape.to_vec()), device)
}

fn max_abs_diff(got: Tensor<5>, want: &[f32]) -> f32 {
    let got: Vec<f32> = got.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn config_of(case: &Value) -> SwinUnetrConfig {
    let four = |key: &str| -> [usize; 4] { usizes(&case[key]).try_into().unwrap() };
    let window = case["window_size"].as_u64().unwrap() as usize;
    let mut config = SwinUnetrConfig::new(
        case["in_channels"].as_u64().unwrap() as usize,
        case["out_channels"].as_u64().unwrap() as usize,
    );
    config.feature_size = case["feature_size"].as_u64().unwrap() as usize;
    config.depths = four("depths");
    config.num_heads = four("num_heads");
    config.window_size = [window; 3];
    config.patch_size = case["patch_size"].as_u64().unwrap() as usize;
    config.use_v2 = case["use_v2"].as_bool().unwrap();
    config.normalize = case["normalize"].as_bool().unwrap();
    config.mlp_ratio = case["mlp_ratio"].as_f64().unwrap();
    config.qkv_bias = case["qkv_bias"].as_bool().unwrap();
    config
}

/// The network cases: JSON files of the directory that describe a SwinUNETR.
fn network_cases(dir: &Path) -> Vec<Value> {
    let mut cases: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_str::<Value>(&std::fs::read_to_string(p).unwrap()).unwrap())
        .filter(|v| v["model"] == "monai.networks.nets.SwinUNETR")
        .collect();
    cases.sort_by_key(|v| v["case"].as_str().unwrap().to_string());
    cases
}

#[test]
fn fixture_swinunetr_matches_monai() {
    let dir = fixtures_dir().join("swinunetr");
    let cases = network_cases(&dir);
    assert!(!cases.is_empty(), "no network cases in {}", dir.display());
    let device = Device::flex();
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let path = dir.join(format!("{name}.safetensors"));
        let config = config_of(&case);
        let mut model = SwinUnetr::new(&config, &device).unwrap();
        let report = load_monai_safetensors(&mut model, &path).unwrap();
        assert!(
            report.missing.is_empty(),
            "{name}: missing {:?}",
            report.missing
        );
        assert!(
            report.mismatched.is_empty(),
            "{name}: {:?}",
            report.mismatched
        );
        assert_eq!(
            report.loaded.len(),
            case["num_parameter_tensors"].as_u64().unwrap() as usize,
            "{name}: loaded tensors"
        );
        assert!(
            report.unexpected.iter().all(|k| k.starts_with("__")),
            "{name}: unexpected {:?}",
            report.unexpected
        );

        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (shape, input) = read_f32(&st, "__input__");
        let out = model
            .forward_all(to_tensor(&shape, input, &device))
            .unwrap();
        for (i, hidden) in out.hidden.into_iter().enumerate() {
            let (shape, want) = read_f32(&st, &format!("__hidden_{i}__"));
            assert_eq!(hidden.dims().to_vec(), shape, "{name}: hidden {i} shape");
            let diff = max_abs_diff(hidden, &want);
            eprintln!("{name}: hidden {i} max |diff| {diff:.2e}");
            assert!(diff <= 1e-4, "{name}: hidden {i} differs by {diff}");
        }
        let (shape, want) = read_f32(&st, "__output__");
        assert_eq!(out.logits.dims().to_vec(), shape, "{name}: logits shape");
        let diff = max_abs_diff(out.logits, &want);
        eprintln!("{name}: logits max |diff| {diff:.2e}");
        assert!(diff <= 1e-4, "{name}: logits differ by {diff}");
    }
}
