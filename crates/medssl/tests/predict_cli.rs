//! `medssl predict` on a folder (NIfTI files and a DICOM series in, one label map per
//! case out, a line per case, a spacing warning, a broken file that fails alone) and
//! `evaluate --json`'s per-case values, on one quickly trained run.

mod common;

use std::path::Path;

use common::{medssl, stdout_ok};
use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{ReadOptions, Volume, read_volume};
use medssl_test_support::fixtures_dir;
use serde_json::Value;

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A 32³ synthetic task (8 training cases, 2 in imagesTs) and a run trained one epoch
/// on it.
fn trained_run(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (task, run) = (dir.join("task"), dir.join("run"));
    #[rustfmt::skip]
    stdout_ok(&[
        "synth", "--kind", "abdomen-ct", "--cases", "8", "--test-cases", "2", "--size", "32",
        "--seed", "5", "--out", arg(&task),
    ]);
    #[rustfmt::skip]
    stdout_ok(&[
        "finetune", "--task", arg(&task), "--out", arg(&run), "--quiet",
        "--set", "train.epochs=1", "--set", "validation.every=1",
        "--set", "model.roi=[32, 32, 32]",
        "--set", "train.warmup_epochs=0",
    ]);
    (task, run)
}

/// A `metric_per_case` value (number, or `"nan"` / `"inf"`) as f64.
fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a metric value: {other}"),
    }
}

/// Same voxel grid: shape and affine (the NIfTI sform is float32, hence the tolerance).
fn assert_same_grid(output: &Volume, input: &Volume, case: &str) {
    assert_eq!(output.spatial_shape(), input.spatial_shape(), "{case}");
    let largest = (output.affine() - input.affine()).abs().max();
    assert!(largest < 1e-4, "{case}: affines differ by {largest}");
}

#[test]
fn evaluate_json_holds_the_per_case_values_and_predict_segments_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (task, run) = trained_run(tmp.path());

    // evaluate --json: metric_per_case holds exactly the values of evaluation-test.csv.
    let printed = stdout_ok(&["evaluate", "--run", arg(&run), "--split", "test", "--json"]);
    let summary: Value = serde_json::from_str(&printed).unwrap();
    let per_case = summary["metric_per_case"].as_object().unwrap();
    assert_eq!(per_case.len() as u64, summary["cases"].as_u64().unwrap());
    let csv = std::fs::read_to_string(run.join("evaluation-test.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "case",
            "class",
            "dice",
            "hd95",
            "hd_max",
            "asd",
            "asd_pred_to_gt",
            "nsd"
        ]
    );
    let mut rows = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let metrics = &per_case[fields[0]][fields[1]];
        for (column, text) in header[2..].iter().zip(&fields[2..]) {
            let (json, csv) = (number(&metrics[*column]), text.parse::<f64>().unwrap());
            // The same f64 printed twice; serde_json's default parser (without its
            // float_roundtrip feature) may read a number one unit in the last place off.
            let same = json == csv || (json - csv).abs() <= f64::EPSILON * csv.abs();
            assert!(
                same || (json.is_nan() && csv.is_nan()),
                "{} {} {column}: {json} in JSON, {csv} in the CSV",
                fields[0],
                fields[1]
            );
        }
        assert_eq!(metrics.as_object().unwrap().len(), 6, "{metrics}");
        rows += 1;
    }
    let classes = per_case.values().next().unwrap().as_object().unwrap().len();
    assert_eq!(rows, per_case.len() * classes);

    // The input folder: the two imagesTs cases, one of them again at twice the voxel
    // size, a DICOM series, a broken file, and a file that is not an image.
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut good = Vec::new();
    for entry in std::fs::read_dir(task.join("imagesTs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&path, input.join(&name)).unwrap();
        let case = name.trim_end_matches(".nii.gz").trim_end_matches("_0000");
        good.push((case.to_string(), input.join(&name)));
    }
    assert_eq!(good.len(), 2);
    let image = read_volume(&good[0].1, &ReadOptions::default()).unwrap();
    let mut coarse = *image.affine();
    for c in 0..3 {
        for r in 0..3 {
            coarse[(r, c)] *= 2.0;
        }
    }
    let coarse_path = input.join("coarse.nii.gz");
    let coarse_image = Volume::new(image.data().clone(), coarse);
    write_volume(&coarse_path, &coarse_image, OutputType::Float32).unwrap();
    good.push(("coarse".into(), coarse_path.clone()));
    let series = input.join("series_ct");
    std::fs::create_dir(&series).unwrap();
    for entry in std::fs::read_dir(fixtures_dir().join("io/ct_series_oblique")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, series.join(path.file_name().unwrap())).unwrap();
    }
    good.push(("series_ct".into(), series));
    std::fs::write(input.join("broken.nii.gz"), b"not an image").unwrap();
    std::fs::write(input.join("notes.txt"), b"left out").unwrap();

    let output = tmp.path().join("out");
    let out = medssl(&[
        "predict",
        "--run",
        arg(&run),
        "-i",
        arg(&input),
        "-o",
        arg(&output),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "a broken case fails the command");
    assert!(
        stderr.contains("1 of 5 cases failed: broken"),
        "the count at the end: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: broken: {}: not a NIfTI file",
            input.join("broken.nii.gz").display()
        )),
        "an error line naming the file: {stderr}"
    );
    assert_eq!(stdout.lines().count(), 4, "a line per good case: {stdout}");
    for (case, path) in &good {
        let target = output.join(format!("{case}.nii.gz"));
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{case}  ")))
            .unwrap_or_else(|| panic!("no line for {case}: {stdout}"));
        let seconds = line
            .strip_prefix(&format!("{case}  "))
            .and_then(|rest| rest.strip_suffix(&format!(" s  -> {}", target.display())))
            .unwrap_or_else(|| panic!("{line}"));
        assert!(seconds.parse::<f64>().unwrap() >= 0.0, "{line}");
        let mask = read_volume(&target, &ReadOptions::default()).unwrap();
        let image = read_volume(path, &ReadOptions::default()).unwrap();
        assert_same_grid(&mask, &image, case);
        let top = classes as f32;
        assert!(
            mask.data()
                .iter()
                .all(|&v| v == v.round() && (0.0..=top).contains(&v)),
            "{case}: labels are the classes 0..={top}"
        );
    }
    let warned: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect();
    assert!(
        warned.iter().any(|w| w.starts_with("coarse: spacing ")
            && w.contains("more than 25% from the training spacing")
            && w.contains("median of")),
        "{stderr}"
    );
    for (case, _) in &good[..2] {
        assert!(
            !warned.iter().any(|w| w.starts_with(&format!("{case}:"))),
            "{case} has the training spacing: {stderr}"
        );
    }

    // One file in, one file out (-i/-o or positional), with the same warning.
    let single = tmp.path().join("single.nii.gz");
    let out = medssl(&[
        "predict",
        "--run",
        arg(&run),
        "-i",
        arg(&coarse_path),
        "-o",
        arg(&single),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than 25% from the training"));
    let mask = read_volume(&single, &ReadOptions::default()).unwrap();
    assert_same_grid(&mask, &coarse_image, "single");
}
