//! Every case in `$MEDSSL_FIXTURES/losses/*.json` (MONAI `DiceLoss` / `DiceCELoss` and
//! the bare cross-entropy term) reproduced from the stored logits and labels.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use medssl_test_support::{fixtures_dir, le_f32, le_i64};
use medssl_train::loss::cross_entropy;
use medssl_train::{DiceCeLoss, DiceLoss};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

struct Inputs {
    logits: Tensor<5>,
    labels: Tensor<5, Int>,
}

fn shape5(shape: &[usize]) -> [usize; 5] {
    shape.try_into().expect("a 5-D tensor")
}

fn read_inputs(st: &SafeTensors, spec: &Value, device: &Device) -> Inputs {
    let logits = st.tensor(spec["logits"].as_str().unwrap()).unwrap();
    assert_eq!(logits.dtype(), Dtype::F32);
    let values = le_f32(logits.data());
    let labels = st.tensor(spec["labels"].as_str().unwrap()).unwrap();
    assert_eq!(labels.dtype(), Dtype::I64);
    let classes = le_i64(labels.data());
    Inputs {
        logits: Tensor::from_data(TensorData::new(values, shape5(logits.shape())), device),
        labels: Tensor::from_data(TensorData::new(classes, shape5(labels.shape())), device),
    }
}

/// MONAI keyword arguments as our loss configuration; `to_onehot_y` and `softmax` are
/// what our losses always do, anything else unknown fails the test.
fn dice_config(kwargs: &Value) -> DiceLoss {
    let mut table = serde_json::Map::new();
    for (key, value) in kwargs.as_object().unwrap() {
        match key.as_str() {
            "to_onehot_y" | "softmax" => assert_eq!(value, &Value::Bool(true), "{key}"),
            _ => {
                table.insert(key.clone(), value.clone());
            }
        }
    }
    serde_json::from_value(Value::Object(table)).expect("known DiceLoss arguments")
}

fn values(tensor: Tensor<2>) -> Vec<f64> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn expected(case: &Value) -> Vec<f64> {
    match &case["value_f64"] {
        Value::Array(v) => v.iter().map(|x| x.as_f64().unwrap()).collect(),
        v => vec![v.as_f64().unwrap()],
    }
}

#[test]
fn fixture_losses_match_monai() {
    let device = Device::flex();
    let dir = fixtures_dir().join("losses");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let bytes = std::fs::read(path.with_extension("safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let inputs: HashMap<String, Inputs> = meta["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|spec| {
                let name = spec["name"].as_str().unwrap().to_string();
                (name, read_inputs(&st, spec, &device))
            })
            .collect();
        for case in meta["cases"].as_array().unwrap() {
            let input = &inputs[case["input"].as_str().unwrap()];
            let (logits, labels) = (input.logits.clone(), input.labels.clone());
            let class = case["class"].as_str().unwrap_or("");
            let ours = match (case["loss"].as_str().unwrap(), class) {
                ("ce_only", _) => values(cross_entropy(logits, labels).reshape([1, 1])),
                (_, "monai.losses.DiceCELoss") => {
                    let loss = DiceCeLoss {
                        dice: dice_config(&case["kwargs"]),
                        ..DiceCeLoss::default()
                    };
                    values(loss.forward(logits, labels).reshape([1, 1]))
                }
                (_, "monai.losses.DiceLoss") => {
                    values(dice_config(&case["kwargs"]).forward(logits, labels))
                }
                (loss, class) => panic!("unknown loss case {loss} ({class})"),
            };
            let reference = expected(case);
            assert_eq!(ours.len(), reference.len(), "{case}");
            for (o, r) in ours.iter().zip(&reference) {
                // MONAI's own float32 result is within 3e-7 of its float64 one, ours
                // within 2.5e-7; both are held to 1e-6 of the float64 value.
                assert!(
                    (o - r).abs() <= 1e-6 * r.abs().max(1.0),
                    "{} {}: ours {o}, MONAI f64 {r}",
                    case["input"],
                    case["loss"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no loss cases under {}", dir.display());
}
