//! `medssl synth` from the command line: the MSD layout it writes, and its refusals.

mod common;

use common::{medssl, stdout_ok};
use serde_json::Value;

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn synth_writes_an_msd_task() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("task");
    let out_arg = out.to_str().unwrap();
    let args = [
        "synth",
        "--kind",
        "abdomen-ct",
        "--cases",
        "3",
        "--size",
        "32",
        "--seed",
        "1",
        "--out",
        out_arg,
    ];
    let printed = stdout_ok(&args);
    assert!(
        printed.contains("abdomen-ct") && printed.contains("32x32x32"),
        "{printed}"
    );
    assert_eq!(files(&out), ["dataset.json", "imagesTr", "labelsTr"]);
    let cases = [
        "abdomen_ct_0000.nii.gz",
        "abdomen_ct_0001.nii.gz",
        "abdomen_ct_0002.nii.gz",
    ];
    assert_eq!(files(&out.join("imagesTr")), cases);
    assert_eq!(files(&out.join("labelsTr")), cases);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(json["numTraining"], 3);
    assert_eq!(json["labels"]["1"], "liver");
    assert_eq!(
        json["training"][2]["label"],
        "./labelsTr/abdomen_ct_0002.nii.gz"
    );

    // The images are CT phantoms on the requested grid: 32^3 at 360/32 x 300/32 x 280/32 mm.
    let info = stdout_ok(&[
        "info",
        "--json",
        out.join("imagesTr").join(cases[0]).to_str().unwrap(),
    ]);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["shape"], serde_json::json!([32, 32, 32]));
    assert_eq!(info["dtype"], "int16");
    assert_eq!(info["orientation"], "RAS");
    let spacing: Vec<f64> = serde_json::from_value(info["spacing"].clone()).unwrap();
    for (got, want) in spacing.iter().zip([11.25, 9.375, 8.75]) {
        assert!((got - want).abs() < 1e-4, "{spacing:?}");
    }
    assert!(info["stats"]["min"].as_f64().unwrap() <= -1000.0);

    // A non-empty directory is refused unless --force.
    let again = medssl(&args);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("not empty") && stderr(&again).contains("--force"),
        "{}",
        stderr(&again)
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    stdout_ok(&forced);
}

#[test]
fn synth_writes_an_unlabelled_collection_with_anisotropic_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pretrain");
    let out_arg = out.to_str().unwrap();
    stdout_ok(&[
        "synth",
        "--kind",
        "headneck-ct",
        "--cases",
        "2",
        "--size",
        "24,24,16",
        "--spacing",
        "4,4,6",
        "--unlabelled",
        "--out",
        out_arg,
    ]);
    assert_eq!(
        files(&out),
        ["headneck_ct_0000.nii.gz", "headneck_ct_0001.nii.gz"]
    );
    let info = stdout_ok(&[
        "info",
        "--json",
        out.join("headneck_ct_0001.nii.gz").to_str().unwrap(),
    ]);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["shape"], serde_json::json!([24, 24, 16]));
    let spacing: Vec<f64> = serde_json::from_value(info["spacing"].clone()).unwrap();
    assert_eq!(spacing, [4.0, 4.0, 6.0]);
}

#[test]
fn synth_refuses_bad_arguments_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let bad_kind = medssl(&["synth", "--kind", "liver-ct", "--out", out]);
    assert!(!bad_kind.status.success());
    let text = stderr(&bad_kind);
    assert!(
        text.contains("liver-ct")
            && text.contains("abdomen-ct, abdomen-mri, headneck-ct, tumor-ct"),
        "{text}"
    );

    for (args, reason) in [
        (vec!["--size", "32,32"], "--size takes D or I,J,K"),
        (vec!["--size", "4"], "size 4 out of range"),
        (vec!["--spacing", "1,1"], "--spacing takes x,y,z"),
        (vec!["--spacing", "1,0,1"], "spacing must be positive"),
        (vec!["--cases", "0"], "at least one case"),
        (
            vec!["--unlabelled", "--test-cases", "2"],
            "cannot be used with",
        ),
    ] {
        let mut full = vec!["synth", "--kind", "abdomen-ct", "--out", out];
        full.extend(args.iter());
        let result = medssl(&full);
        assert!(!result.status.success(), "{args:?}");
        assert!(
            stderr(&result).contains(reason),
            "{args:?}: {}",
            stderr(&result)
        );
    }
}
