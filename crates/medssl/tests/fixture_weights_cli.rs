//! `medssl weights` and `medssl speed` from the command line.

mod common;

use common::{medssl, stdout_ok};

use medssl_test_support::fixtures_dir;
use serde_json::Value;

/// The weights file of every network case in the fixture directory.
fn network_cases() -> Vec<(String, Value)> {
    let dir = fixtures_dir().join("swinunetr");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if v["model"] == "monai.networks.nets.SwinUNETR" {
                let weights = path.with_extension("safetensors");
                out.push((weights.to_str().unwrap().to_string(), v));
            }
        }
    }
    assert!(!out.is_empty());
    out
}

#[test]
fn fixture_weights_inspect_import_export() {
    let tmp = tempfile::tempdir().unwrap();
    for (weights, case) in network_cases() {
        let fs = case["feature_size"].as_u64().unwrap();
        let inspect = stdout_ok(&["weights", "inspect", &weights]);
        assert!(inspect.contains(&format!("feature_size={fs}")), "{inspect}");
        assert!(inspect.contains("swinViT.patch_embed.proj.weight"));

        let imported = tmp.path().join("imported.safetensors");
        // The fixture files carry test tensors (__input__ ...) beside the network's.
        let out = medssl(&["weights", "import", &weights, imported.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("__input__"));
        let text = stdout_ok(&[
            "weights",
            "import",
            &weights,
            imported.to_str().unwrap(),
            "--allow-unused",
        ]);
        assert!(text.contains(&format!("feature_size={fs}")), "{text}");
        assert!(text.contains("not imported (--allow-unused)"), "{text}");
        assert!(text.contains("wrote"), "{text}");

        let exported = tmp.path().join("exported.safetensors");
        stdout_ok(&[
            "weights",
            "export",
            imported.to_str().unwrap(),
            exported.to_str().unwrap(),
        ]);
        let listing = stdout_ok(&["weights", "inspect", exported.to_str().unwrap()]);
        assert!(listing.contains("relative_position_index"), "{listing}");
    }
    let junk = tmp.path().join("junk.pth");
    std::fs::write(&junk, b"definitely not a checkpoint").unwrap();
    let out = medssl(&["weights", "import", junk.to_str().unwrap(), "x.safetensors"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.pth"), "{err}");
}

#[test]
fn speed_reports_the_documented_json() {
    let text = stdout_ok(&[
        "speed",
        "--feature-size",
        "12",
        "--roi",
        "32",
        "--volume",
        "32,32,48",
        "--iters",
        "1",
        "--json",
    ]);
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    for key in [
        "forward_ms",
        "train_step_ms",
        "sliding_window_ms",
        "peak_rss_mb",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {v}"));
        assert!(x > 0.0, "{key} = {x}");
    }
    assert_eq!(v["backend"], "flex");
    assert!(v["threads"].as_u64().unwrap() >= 1);
    let out = medssl(&["speed", "--roi", "40", "--iters", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not divisible by 32"));
}
