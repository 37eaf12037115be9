//! Public checkpoint layouts (Tang et al.'s `model_swinvit.pt`, MONAI's
//! `ssl_pretrained_weights.pth`, SMIT's pretrained encoder) import whole: every encoder
//! tensor reaches the network with the value MONAI's own loader gives it.
//!
//! The cases and their references are written by `benches/parity/make_import_cases.py`
//! with MONAI; `tests/data/import/cases.json` lists them, so more cases in the same
//! format are checked with no code change.

use burn::tensor::Device;
use medssl_model::SwinUnetr;
use medssl_model::foreign::{Checkpoint, infer_architecture};
use medssl_model::import::import_checkpoint;
use medssl_model::weights::export_monai_safetensors;
use medssl_test_support::{import_case_file as checkpoint_file, import_cases as cases};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn public_layouts_import_every_encoder_tensor_as_monai_loads_it() {
    let tmp = tempfile::tempdir().unwrap();
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let path = checkpoint_file(&case, tmp.path());
        let checkpoint = Checkpoint::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            serde_json::to_value(checkpoint.layout).unwrap(),
            case["layout"],
            "{name}: layout"
        );
        let arch = infer_architecture(&checkpoint.shapes()).unwrap();
        let want = &case["architecture"];
        assert_eq!(
            arch.feature_size as u64,
            want["feature_size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            arch.in_channels as u64,
            want["in_channels"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(serde_json::json!(arch.depths), want["depths"], "{name}");
        assert_eq!(
            serde_json::json!(arch.num_heads),
            want["num_heads"],
            "{name}"
        );
        assert_eq!(
            arch.window_size as u64,
            want["window_size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(arch.qkv_bias, want["qkv_bias"].as_bool().unwrap(), "{name}");
        assert_eq!(arch.out_channels, None, "{name}: encoder only");

        let expected_unused = strings(&case["unused"]);
        let mut model = SwinUnetr::new(&arch.config(), &Device::flex()).unwrap();
        if !expected_unused.is_empty() {
            let err = import_checkpoint(&mut model, &checkpoint, &path, false)
                .unwrap_err()
                .to_string();
            for key in &expected_unused {
                assert!(err.contains(key.as_str()), "{name}: {err}");
            }
            assert!(err.contains("--allow-unused"), "{err}");
        }
        let report = import_checkpoint(&mut model, &checkpoint, &path, !expected_unused.is_empty())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.left_out, strings(&case["left_out"]), "{name}: heads");
        let unused: Vec<String> = report.unused.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(unused, expected_unused, "{name}: unused");
        assert!(report.missing.iter().all(|k| !k.starts_with("swinViT.")));
        println!("{name}: {}", report.summary());

        // What the network now holds, tensor by tensor, against MONAI's loader.
        let exported = tmp.path().join(format!("{name}.safetensors"));
        export_monai_safetensors(&model, &exported).unwrap();
        let bytes = std::fs::read(&exported).unwrap();
        let ours = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let expected = case["expected"].as_object().unwrap();
        let encoder_params = ours
            .names()
            .into_iter()
            .filter(|k| k.starts_with("swinViT.") && !k.ends_with("relative_position_index"))
            .count();
        assert_eq!(
            encoder_params,
            expected.len(),
            "{name}: encoder tensor count"
        );
        assert_eq!(
            report
                .loaded
                .iter()
                .filter(|k| k.starts_with("swinViT."))
                .count(),
            expected.len()
        );
        for (key, want) in expected {
            let view = ours
                .tensor(key)
                .unwrap_or_else(|_| panic!("{name}: the network has no {key}"));
            assert_eq!(
                serde_json::json!(view.shape()),
                want["shape"],
                "{name}: {key}"
            );
            let digest = format!("{:x}", Sha256::digest(view.data()));
            assert_eq!(
                digest,
                want["sha256"].as_str().unwrap(),
                "{name}: {key} values differ from MONAI's"
            );
        }
    }
}

#[test]
fn an_incomplete_encoder_is_refused_naming_the_missing_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let case = &cases()[0];
    let path = checkpoint_file(case, tmp.path());
    let mut checkpoint = Checkpoint::read(&path).unwrap();
    let arch = infer_architecture(&checkpoint.shapes()).unwrap();
    checkpoint
        .tensors
        .retain(|k, _| !k.contains(".mlp.linear1."));
    let mut model = SwinUnetr::new(&arch.config(), &Device::flex()).unwrap();
    let err = import_checkpoint(&mut model, &checkpoint, &path, true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("swinViT.layers1.0.blocks.0.mlp.linear1.weight"),
        "{err}"
    );
    assert!(
        err.contains("lacks 16 of the network's 118 encoder tensors"),
        "{err}"
    );
}
