//! Public pretrained weights from the command line: `medssl weights import` reports what
//! it loaded per stage and refuses leftovers unless asked; `medssl finetune --init`
//! starts from SMIT's encoder once the network has SMIT's Swin layout.
//!
//! The checkpoints are the import cases of `crates/medssl-model/tests/data/import`
//! (written with MONAI by `benches/parity/make_import_cases.py`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{medssl, stdout_ok};
use medssl_test_support::{import_case_file as checkpoint_file, import_cases as cases};
use serde_json::Value;

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn weights_import_loads_public_layouts_whole_and_says_so_per_stage() {
    let tmp = tempfile::tempdir().unwrap();
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let input = checkpoint_file(&case, tmp.path());
        let output = tmp.path().join(format!("{name}.safetensors"));
        let mut per_stage = BTreeMap::new();
        for key in case["expected"].as_object().unwrap().keys() {
            let stage = key.split('.').nth(1).unwrap().to_string();
            *per_stage.entry(stage).or_insert(0) += 1;
        }
        let unused = case["unused"].as_array().unwrap();
        let mut args = vec!["weights", "import", arg(&input), arg(&output)];
        if !unused.is_empty() {
            let out = medssl(&args);
            assert!(!out.status.success(), "{name}: leftovers were imported");
            let err = stderr(&out);
            assert!(err.contains("--allow-unused"), "{err}");
            for key in unused {
                assert!(err.contains(key.as_str().unwrap()), "{err}");
            }
            assert!(
                !output.exists(),
                "a refused import wrote {}",
                output.display()
            );
            args.push("--allow-unused");
        }
        let text = stdout_ok(&args);
        for (stage, n) in &per_stage {
            assert!(text.contains(&format!("{stage} {n}")), "{name}: {text}");
        }
        // The output holds exactly what was loaded: it imports without leftovers.
        let again = tmp.path().join(format!("{name}.again.safetensors"));
        let text = stdout_ok(&["weights", "import", arg(&output), arg(&again)]);
        assert!(text.contains("MONAI SwinUNETR state dict"), "{text}");
    }
}

#[test]
fn finetune_starts_from_smit_weights_with_smit_swin_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let smit = cases()
        .into_iter()
        .find(|c| c["layout"] == "smit")
        .expect("a SMIT case");
    let weights = checkpoint_file(&smit, tmp.path());
    let task = tmp.path().join("task");
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--cases",
        "6",
        "--size",
        "32",
        "--seed",
        "3",
        "--out",
        arg(&task),
    ]);
    let finetune = |run: &Path, extra: &[&str]| {
        let mut args = vec![
            "finetune",
            "--task",
            arg(&task),
            "--out",
            arg(run),
            "--quiet",
            "--shots",
            "2",
            "--init",
            arg(&weights),
            "--set",
            "train.epochs=1",
            "--set",
            "model.roi=[32, 32, 32]",
            "--set",
            "train.warmup_epochs=0",
            "--set",
            "model.feature_size=48",
        ];
        args.extend(extra);
        medssl(&args)
    };
    // The run's Swin layout differs from SMIT's: the error gives the settings.
    let run = tmp.path().join("default-layout");
    let out = finetune(&run, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--set 'model.depths=[2,2,4,2]'"), "{err}");
    assert!(err.contains("model.qkv_bias=false"), "{err}");
    assert!(!run.exists());

    let layout = [
        "--set",
        "model.depths=[2,2,4,2]",
        "--set",
        "model.num_heads=[4,4,4,4]",
        "--set",
        "model.window_size=4",
        "--set",
        "model.qkv_bias=false",
    ];
    // SMIT's learned norms have no place in a SwinUNETR: refused unless allowed.
    let run = tmp.path().join("strict");
    let out = finetune(&run, &layout);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("module.norm0.weight") && err.contains("--allow-unused"),
        "{err}"
    );
    assert!(!run.exists());

    let run = tmp.path().join("smit");
    let mut extra = layout.to_vec();
    extra.push("--allow-unused");
    let out = finetune(&run, &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("init_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["layout"], "smit");
    assert_eq!(report["loaded_per_stage"]["layers3"], 51);
    let encoder = report["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k.as_str().unwrap().starts_with("swinViT."))
        .count();
    assert_eq!(encoder, smit["expected"].as_object().unwrap().len());
    assert!(report["unexpected"].as_array().unwrap().len() == 10);
}
