//! Every network case in `$MEDSSL_FIXTURES/swinunetr/` (a MONAI SwinUNETR, its weights,
//! an input, the logits and the five encoder stage outputs) is reproduced to 1e-5
//! (`common::TOLERANCE`), with the network built from every argument the case states;
//! in builds with the `wgpu` feature also on wgpu, with Burn's operations in place of
//! our CPU kernels, to the same bound.

mod common;

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use common::{TOLERANCE, TestDevice, json, network_config, read_f32, test_devices};
use medssl_model::SwinUnetr;
use medssl_model::weights::load_monai_safetensors;
use medssl_test_support::fixtures_dir;
use medssl_test_support::max_abs_diff;
use safetensors::SafeTensors;
use serde_json::Value;

fn to_tensor(shape: &[usize], values: Vec<f32>, device: &Device) -> Tensor<5> {
    Tensor::from_data(TensorData::new(values, shape.to_vec()), device)
}

fn host_values(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The network cases: JSON files of the directory that describe a SwinUNETR.
fn network_cases(dir: &Path) -> Vec<Value> {
    let mut cases: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| json(&p))
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
    for on in test_devices() {
        for case in &cases {
            check_case(&dir, case, &on);
        }
    }
}

/// One network case on one device: every weight loads, and the five encoder stages and
/// the logits are within the tolerance of MONAI's.
fn check_case(dir: &Path, case: &Value, on: &TestDevice) {
    let device = &on.device;
    let name = format!("{} on {}", case["case"].as_str().unwrap(), on.name);
    let path = dir.join(format!("{}.safetensors", case["case"].as_str().unwrap()));
    let config = network_config(case);
    let mut model = SwinUnetr::new(&config, device).unwrap();
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
    let out = on.on_its_path(&name, || {
        model.forward_all(to_tensor(&shape, input, device)).unwrap()
    });
    for (i, hidden) in out.hidden.into_iter().enumerate() {
        let (shape, want) = read_f32(&st, &format!("__hidden_{i}__"));
        assert_eq!(hidden.dims().to_vec(), shape, "{name}: hidden {i} shape");
        let what = format!("{name}: hidden {i}");
        let diff = max_abs_diff(&what, &host_values(hidden), &want);
        eprintln!("{what} max |diff| {diff:.3e}");
        assert!(diff <= TOLERANCE, "{what} differs by {diff:e}");
    }
    let (shape, want) = read_f32(&st, "__output__");
    assert_eq!(out.logits.dims().to_vec(), shape, "{name}: logits shape");
    let what = format!("{name}: logits");
    let diff = max_abs_diff(&what, &host_values(out.logits), &want);
    eprintln!("{what} max |diff| {diff:.3e}");
    assert!(diff <= TOLERANCE, "{what} differ by {diff:e}");
}

/// A case that asks for an option medssl does not implement fails naming it, rather
/// than being compared with a network built without it.
#[test]
#[should_panic(expected = "norm_name = \"batch\": medssl's SwinUNETR supports only \"instance\"")]
fn a_case_with_an_unsupported_option_is_refused() {
    let dir = fixtures_dir().join("swinunetr");
    let mut case = network_cases(&dir).remove(0);
    case["norm_name"] = "batch".into();
    network_config(&case);
}

#[test]
#[should_panic(expected = "key \"num_layers\" is neither a SwinUNETR argument")]
fn a_case_with_an_unknown_key_is_refused() {
    let dir = fixtures_dir().join("swinunetr");
    let mut case = network_cases(&dir).remove(0);
    case["num_layers"] = 5.into();
    network_config(&case);
}
