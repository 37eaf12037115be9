//! Weight import and export against the MONAI checkpoints of `$MEDSSL_FIXTURES/swinunetr/`:
//! key sets, round trips and broken files.

use std::collections::BTreeSet;
use std::path::PathBuf;

use burn::tensor::Device;
use medssl_model::SwinUnetr;
use medssl_model::foreign::{Checkpoint, infer_architecture};
use medssl_model::weights::{export_monai_safetensors, load_monai_safetensors};
use medssl_test_support::fixtures_dir;
use serde_json::Value;

/// (weights file, its JSON) of every network case.
fn cases() -> Vec<(PathBuf, Value)> {
    let dir = fixtures_dir().join("swinunetr");
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.with_extension("safetensors"), v)
        })
        .filter(|(_, v)| v["model"] == "monai.networks.nets.SwinUNETR")
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty());
    out
}

#[test]
fn fixture_import_infers_the_architecture() {
    for (path, case) in cases() {
        let checkpoint = Checkpoint::read(&path).unwrap();
        let arch = infer_architecture(&checkpoint.shapes()).unwrap();
        assert_eq!(
            arch.feature_size as u64,
            case["feature_size"].as_u64().unwrap()
        );
        assert_eq!(
            arch.in_channels as u64,
            case["in_channels"].as_u64().unwrap()
        );
        assert_eq!(
            arch.out_channels.map(|c| c as u64),
            case["out_channels"].as_u64()
        );
        assert_eq!(
            arch.window_size as u64,
            case["window_size"].as_u64().unwrap()
        );
        let depths: Vec<u64> = arch.depths.iter().map(|&d| d as u64).collect();
        assert_eq!(Value::from(depths), case["depths"]);
        let heads: Vec<u64> = arch.num_heads.iter().map(|&d| d as u64).collect();
        assert_eq!(Value::from(heads), case["num_heads"]);
        assert_eq!(arch.use_v2, case["use_v2"].as_bool().unwrap());
        // The test tensors (__input__ ...) are not SwinUNETR keys nor known heads.
        assert!(checkpoint.dropped.is_empty(), "{:?}", checkpoint.dropped);
        assert!(
            checkpoint.unused.iter().all(|(k, _)| k.starts_with("__")),
            "{:?}",
            checkpoint.unused
        );
        assert_eq!(
            checkpoint.tensors.len() as u64,
            case["num_parameter_tensors"].as_u64().unwrap()
        );
    }
}

#[test]
fn fixture_export_has_monai_key_set_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    for (path, case) in cases() {
        let imported = Checkpoint::read(&path).unwrap();
        let arch = infer_architecture(&imported.shapes()).unwrap();
        let mut model = SwinUnetr::new(&arch.config(), &device).unwrap();
        let report = load_monai_safetensors(&mut model, &path).unwrap();
        assert!(report.missing.is_empty() && report.mismatched.is_empty());

        let exported_path = tmp.path().join("exported.safetensors");
        export_monai_safetensors(&model, &exported_path).unwrap();
        let exported = Checkpoint::read(&exported_path).unwrap();
        // MONAI's state dict: every parameter plus the relative_position_index buffers.
        let mut want: BTreeSet<String> = imported.tensors.keys().cloned().collect();
        for b in case["skipped_buffers"].as_array().unwrap() {
            want.insert(b.as_str().unwrap().to_string());
        }
        let got: BTreeSet<String> = exported.tensors.keys().cloned().collect();
        assert_eq!(got, want);
        for (name, tensor) in &imported.tensors {
            assert_eq!(&exported.tensors[name], tensor, "{name} changed in export");
        }
        let index = &exported.tensors["swinViT.layers1.0.blocks.0.attn.relative_position_index"];
        assert_eq!(index.dtype, safetensors::Dtype::I64);
        let tokens = arch.window_size.pow(3);
        assert_eq!(index.shape, vec![tokens, tokens]);

        // Re-import of the export loads exactly (index buffers are derived, not unexpected).
        let mut again = SwinUnetr::new(&arch.config(), &device).unwrap();
        let report = load_monai_safetensors(&mut again, &exported_path).unwrap();
        assert!(report.is_exact(), "{report:?}");
    }
}

#[test]
fn broken_or_foreign_checkpoints_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = cases().remove(0);
    let bytes = std::fs::read(&path).unwrap();

    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = Checkpoint::read(&truncated).unwrap_err().to_string();
    assert!(
        err.contains("truncated.safetensors") && err.contains("not a readable"),
        "{err}"
    );
    let device = Device::flex();
    let config = infer_architecture(&Checkpoint::read(&path).unwrap().shapes())
        .unwrap()
        .config();
    let mut model = SwinUnetr::new(&config, &device).unwrap();
    let err = load_monai_safetensors(&mut model, &truncated)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.safetensors"), "{err}");

    // A pickle of a plain list, not a state dict.
    let list = tmp.path().join("list.pt");
    std::fs::write(&list, b"\x80\x02]q\x00(K\x01K\x02e.").unwrap();
    let err = Checkpoint::read(&list).unwrap_err().to_string();
    assert!(err.contains("list.pt") && err.contains("PyTorch"), "{err}");

    // Another architecture: 12 more features than the checkpoint has.
    let wider_config = config.clone().with_feature_size(config.feature_size + 12);
    let mut wider = SwinUnetr::new(&wider_config, &device).unwrap();
    let report = load_monai_safetensors(&mut wider, &path).unwrap();
    let found = format!("[{}, {}", config.feature_size, config.in_channels);
    assert!(
        report
            .mismatched
            .iter()
            .any(|(k, why)| k == "swinViT.patch_embed.proj.weight" && why.contains(&found)),
        "shape mismatches are reported: {:?}",
        report.mismatched
    );
}

#[test]
fn encoder_only_checkpoint_loads_into_the_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = cases().remove(0);
    let full = Checkpoint::read(&path).unwrap();
    let config = infer_architecture(&full.shapes()).unwrap().config();
    // Tang et al.'s layout: encoder keys without the swinViT prefix, under `module.`,
    // next to SSL heads that SwinUNETR does not have.
    let mut tang = Checkpoint::default();
    for (key, tensor) in &full.tensors {
        if let Some(rest) = key.strip_prefix("swinViT.") {
            tang.tensors
                .insert(format!("module.{rest}"), tensor.clone());
        }
    }
    let head = full.tensors["out.conv.conv.bias"].clone();
    tang.tensors
        .insert("module.rotation_head.bias".into(), head);
    let encoder_keys = tang.tensors.len() - 1;
    let tang_path = tmp.path().join("model_swinvit.safetensors");
    tang.write(&tang_path).unwrap();

    let imported = Checkpoint::read(&tang_path).unwrap();
    assert_eq!(
        imported.dropped,
        vec!["module.rotation_head.bias".to_string()]
    );
    assert!(imported.tensors.keys().all(|k| k.starts_with("swinViT.")));
    let arch = infer_architecture(&imported.shapes()).unwrap();
    assert_eq!(arch.out_channels, None, "encoder only");
    let normalised = tmp.path().join("encoder.safetensors");
    imported.write(&normalised).unwrap();

    let mut model = SwinUnetr::new(&config, &Device::flex()).unwrap();
    let report = load_monai_safetensors(&mut model, &normalised).unwrap();
    assert_eq!(report.loaded.len(), encoder_keys);
    assert!(report.missing.iter().all(|k| !k.starts_with("swinViT.")));
    assert!(report.missing.iter().any(|k| k.starts_with("decoder1.")));
    assert!(report.unexpected.is_empty() && report.mismatched.is_empty());
}
