//! `medssl dataset check`, `medssl finetune --check` and `medssl config show --task` on
//! synthetic tasks: a broken task has every problem listed in one run and nothing
//! written, a sound one is summarised, and the resolved transforms are explained.

mod common;

use std::path::Path;

use common::{medssl, stdout_ok};
use medssl_io::ndarray::s;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{ReadOptions, Volume, read_volume};

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `medssl synth` of `kind`: 8 training and 2 test cases of 32³ voxels of 1.5 x 1.5 x 2
/// mm.
fn synth(kind: &str, out: &Path) {
    stdout_ok(&[
        "synth",
        "--kind",
        kind,
        "--cases",
        "8",
        "--test-cases",
        "2",
        "--size",
        "32",
        "--spacing",
        "1.5,1.5,2",
        "--seed",
        "3",
        "--out",
        arg(out),
    ]);
}

fn read(path: &Path) -> Volume {
    read_volume(path, &ReadOptions::default()).unwrap()
}

/// The file of case `n` (abdomen_ct_000N) in `folder`.
fn case_file(task: &Path, folder: &str, n: usize) -> std::path::PathBuf {
    task.join(folder).join(format!("abdomen_ct_{n:04}.nii.gz"))
}

/// Breaks five cases of a synthetic abdomen CT task (7 classes, 0-6), one problem
/// each, in training and test cases; returns the expected `(case, fragments)` lines.
fn break_task(task: &Path) -> Vec<(&'static str, Vec<String>)> {
    // Case 1: a label of 24³ on the 32³ image grid.
    let label = case_file(task, "labelsTr", 1);
    let full = read(&label);
    let small = full.data().slice(s![.., 0..24, 0..24, 0..24]).to_owned();
    write_volume(
        &label,
        &Volume::new(small, *full.affine()),
        OutputType::UInt8,
    )
    .unwrap();
    // Case 2: label value 7, which dataset.json does not declare.
    let seven = case_file(task, "labelsTr", 2);
    let mut values = read(&seven);
    values.data_mut()[[0, 3, 4, 5]] = 7.0;
    write_volume(&seven, &values, OutputType::UInt8).unwrap();
    // Case 3: an image file cut in half.
    let truncated = case_file(task, "imagesTr", 3);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // Case 4: its label map deleted.
    let deleted = case_file(task, "labelsTr", 4);
    std::fs::remove_file(&deleted).unwrap();
    // Test case 9 (imagesTs): a NaN voxel.
    let nan = case_file(task, "imagesTs", 9);
    let mut image = read(&nan);
    image.data_mut()[[0, 1, 2, 3]] = f32::NAN;
    write_volume(&nan, &image, OutputType::Float32).unwrap();

    let text = |p: &Path| p.display().to_string();
    vec![
        (
            "abdomen_ct_0001",
            vec![
                text(&label),
                "label shape [24, 24, 24] differs from image shape [32, 32, 32]".into(),
            ],
        ),
        (
            "abdomen_ct_0002",
            vec![
                text(&seven),
                "label values 7 are not declared in dataset.json".into(),
            ],
        ),
        ("abdomen_ct_0003", vec![text(&truncated)]),
        (
            "abdomen_ct_0004",
            vec![text(&deleted), "file does not exist".into()],
        ),
        (
            "abdomen_ct_0009",
            vec![
                text(&nan),
                "1 NaN or infinite voxel(s), the first at (i, j, k) = (1, 2, 3)".into(),
            ],
        ),
    ]
}

/// Asserts that `text` lists each expected problem on a line of its own naming the case,
/// under a header counting 5 failed cases of 10.
fn assert_lists(text: &str, expected: &[(&str, Vec<String>)]) {
    assert!(
        text.contains("5 of 10 cases failed the check"),
        "no count in: {text}"
    );
    for (case, fragments) in expected {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("case {case}:")))
            .unwrap_or_else(|| panic!("no line for {case} in: {text}"));
        for fragment in fragments {
            assert!(
                line.contains(fragment.as_str()),
                "{fragment:?} not in {line:?}"
            );
        }
    }
    let problem_lines = text.lines().filter(|l| l.starts_with("  case ")).count();
    assert_eq!(problem_lines, expected.len(), "{text}");
}

#[test]
fn every_problem_of_a_broken_task_is_listed_at_once_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    synth("abdomen-ct", &task);
    let expected = break_task(&task);

    let out = medssl(&["dataset", "check", arg(&task)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "a summary for a broken task");
    assert_lists(&stderr(&out), &expected);

    // `finetune --check`, and a plain start, check the same before writing anything.
    let run = tmp.path().join("run");
    for extra in [&["--check"][..], &[]] {
        let mut args = vec!["finetune", "--task", arg(&task), "--out", arg(&run)];
        args.extend(extra);
        let out = medssl(&args);
        assert!(!out.status.success(), "{args:?} accepted a broken task");
        assert_lists(&stderr(&out), &expected);
        assert!(!run.exists(), "{args:?} wrote {}", run.display());
        assert!(
            !tmp.path().join(".medssl-cache").exists(),
            "{args:?} wrote a cache"
        );
    }
}

#[test]
fn a_sound_task_is_summarised_and_finetune_check_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    synth("abdomen-ct", &task);

    let out = medssl(&["dataset", "check", arg(&task)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "synthetic-abdomen-ct: 8 training case(s), 2 test case(s); 1 channel(s) (CT); 7 \
         classes (background, liver, spleen, kidney_left, kidney_right, pancreas, aorta); \
         spacing 1.5 x 1.5 x 2 mm; no problems found\n"
    );

    // The tiny preset's defaults do not warn about themselves.
    let run = tmp.path().join("run");
    let out = medssl(&[
        "finetune",
        "--task",
        arg(&task),
        "--out",
        arg(&run),
        "--shots",
        "3",
        "--check",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("synthetic-abdomen-ct: 8 training case(s)"),
        "{}",
        stderr(&out)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let counts: Vec<usize> = printed
        .trim_start_matches("check passed: ")
        .split(" / ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts[0], 3, "{printed}");
    assert!(counts[1] >= 1 && counts[2] >= 1, "{printed}");
    assert!(
        printed.ends_with("test cases; nothing written\n"),
        "{printed}"
    );
    assert!(!run.exists(), "--check wrote {}", run.display());
    assert!(!tmp.path().join(".medssl-cache").exists());

    // A roi the network degenerates at still warns.
    let out = medssl(&[
        "finetune",
        "--task",
        arg(&task),
        "--check",
        "--set",
        "model.roi=[32, 32, 32]",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: model.roi [32, 32, 32]"),
        "{}",
        stderr(&out)
    );
}

/// `config show --task` resolves the transforms for the task's modality (CT window or
/// z-score) and the preset's crop, as valid TOML with a comment on every step and setting.
#[test]
fn config_show_task_explains_the_resolved_transforms() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, intensity) in [
        ("abdomen-ct", "scale_intensity_range"),
        ("abdomen-mri", "normalize_intensity"),
    ] {
        let task = tmp.path().join(kind);
        synth(kind, &task);
        let text = stdout_ok(&["config", "show", "--task", arg(&task), "--preset", "paper"]);
        let config: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}: {text}"));
        let data = config["data"].as_table().unwrap();
        let names = |key: &str| -> Vec<String> {
            data[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("preprocess"), ["orientation", "spacing", intensity]);
        assert_eq!(
            data["preprocess"][1]["pixdim"], data["spacing"],
            "resampling to data.spacing"
        );
        assert_eq!(
            names("augment")[..2],
            ["spatial_pad", "rand_crop_by_pos_neg_label"]
        );
        let crop = &data["augment"][1];
        assert_eq!(crop["spatial_size"], config["model"]["roi"]);
        assert_eq!(crop["num_samples"], data["samples_per_volume"]);

        // Every step has a comment line above its header, every setting one after it.
        let mut settings = 0;
        let mut in_step = false;
        for (previous, line) in text.lines().zip(text.lines().skip(1)) {
            if line.starts_with("[[data.") {
                assert!(previous.starts_with("# "), "{line} has no comment above it");
                in_step = true;
            } else if in_step && line.contains(" = ") && !line.starts_with("name = ") {
                let (_, comment) = line
                    .split_once(" # ")
                    .unwrap_or_else(|| panic!("no comment on {line:?}"));
                assert!(comment.len() > 5, "{line}");
                settings += 1;
            }
        }
        assert!(settings >= 15, "{settings} settings in {text}");
    }
}

#[test]
fn dataset_list_names_every_kind_with_its_layout_and_source() {
    let listed: serde_json::Value =
        serde_json::from_str(&stdout_ok(&["dataset", "list", "--json"])).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "msd",
            "btcv",
            "amos",
            "flare22",
            "kits23",
            "lits",
            "chaos",
            "hanseg",
            "totalsegmentator",
            "brats"
        ]
    );
    for kind in listed.as_array().unwrap() {
        for key in ["modality", "labels", "source_layout", "tasks", "published"] {
            assert!(!kind[key].as_str().unwrap().is_empty(), "{kind}: {key}");
        }
    }
    let plain = stdout_ok(&["dataset", "list"]);
    assert!(
        plain.contains("chaos: CHAOS") && plain.contains("  source:    "),
        "{plain}"
    );
}

/// A miniature BTCV download: `RawData/Training/{img,label}` with two cases (label
/// values 0-13) and `RawData/Testing/img` with one.
fn btcv_download(root: &Path) {
    let affine = read(&case_file_of_synth(root)).affine().to_owned();
    let volume = |f: &dyn Fn(usize, usize, usize) -> f32| {
        let data =
            medssl_io::ndarray::Array4::from_shape_fn((1, 8, 7, 6), |(_, i, j, k)| f(i, j, k));
        Volume::new(data, affine)
    };
    let raw = root.join("RawData");
    for n in 1..=2 {
        let image = volume(&|i, j, k| (i * 50 + j * 7 + k + n) as f32 - 500.0);
        let label = volume(&|i, j, k| ((i + j + k + n) % 14) as f32);
        for (path, v, ty) in [
            (
                format!("Training/img/img{n:04}.nii.gz"),
                image,
                OutputType::Int16,
            ),
            (
                format!("Training/label/label{n:04}.nii.gz"),
                label,
                OutputType::UInt8,
            ),
        ] {
            std::fs::create_dir_all(raw.join(&path).parent().unwrap()).unwrap();
            write_volume(&raw.join(path), &v, ty).unwrap();
        }
    }
    std::fs::create_dir_all(raw.join("Testing/img")).unwrap();
    let test = volume(&|i, _, _| i as f32);
    write_volume(
        &raw.join("Testing/img/img0061.nii.gz"),
        &test,
        OutputType::Int16,
    )
    .unwrap();
}

/// An affine to place the miniature volumes on: the one `synth` writes.
fn case_file_of_synth(root: &Path) -> std::path::PathBuf {
    let task = root.join("synth");
    synth("abdomen-ct", &task);
    case_file(&task, "imagesTr", 0)
}

#[test]
fn dataset_convert_writes_a_task_that_checks_and_names_bad_cases() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("btcv"), dir.path().join("data"));
    btcv_download(&src);
    let converted = medssl(&["dataset", "convert", "btcv", arg(&src), arg(&out)]);
    assert!(converted.status.success(), "{}", stderr(&converted));
    let text = String::from_utf8_lossy(&converted.stdout).into_owned();
    // A line per case on stderr, none with --quiet.
    assert!(
        stderr(&converted).contains("BTCV [3/3] "),
        "{}",
        stderr(&converted)
    );
    let quiet_out = dir.path().join("quiet");
    let quiet = medssl(&[
        "dataset",
        "convert",
        "btcv",
        arg(&src),
        arg(&quiet_out),
        "-q",
    ]);
    assert!(
        quiet.status.success() && stderr(&quiet).is_empty(),
        "{}",
        stderr(&quiet)
    );
    assert!(
        text.contains("BTCV: 2 training and 1 test case(s)"),
        "{text}"
    );
    let check = stdout_ok(&["dataset", "check", arg(&out.join("BTCV"))]);
    assert!(
        check.contains("2 training case(s), 1 test case(s); 1 channel(s) (CT); 14 classes"),
        "{check}"
    );
    let written = read(&out.join("BTCV/labelsTr/BTCV_0002.nii.gz"));
    let source = read(&src.join("RawData/Training/label/label0002.nii.gz"));
    assert_eq!(written.data(), source.data());

    // A label value BTCV does not define: exit status 1, the case and value named.
    let label = src.join("RawData/Training/label/label0001.nii.gz");
    let mut bad = read(&label);
    bad.data_mut()[[0, 3, 3, 3]] = 20.0;
    write_volume(&label, &bad, OutputType::UInt8).unwrap();
    let failed = medssl(&[
        "dataset",
        "convert",
        "btcv",
        arg(&src),
        arg(&dir.path().join("again")),
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let message = stderr(&failed);
    for fragment in ["case BTCV_0001", "label value(s) 20", "(0-13)"] {
        assert!(message.contains(fragment), "{fragment:?} not in {message}");
    }
    let unknown = medssl(&["dataset", "convert", "decathlon", arg(&src), arg(&out)]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("totalsegmentator"),
        "{}",
        stderr(&unknown)
    );
}
