//! MSD and nnU-Net v2 tasks written here with medssl-io's NIfTI writer: what `Task::open`
//! and `Task::load_case` return must be exactly what was written (float32 voxels and an
//! affine whose entries float32 holds exactly), and every broken input is an error that
//! names the case, the file and the problem.

use std::path::{Path, PathBuf};

use medssl_data::dataset::{CheckReport, MAX_CLASSES, Task};
use medssl_io::geometry::affine_from_rows;
use medssl_io::ndarray::{Array4, s};
use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{Affine, Volume};
use serde_json::json;

const SHAPE: (usize, usize, usize) = (4, 5, 3);

/// 1.5 x 1.25 x 2 mm voxels, origin (-10, 5, 3): all exact in float32.
fn grid() -> Affine {
    shifted_grid(0.0)
}

/// `grid()` with its origin moved `mm` along x.
fn shifted_grid(mm: f64) -> Affine {
    affine_from_rows([
        [1.5, 0.0, 0.0, -10.0 + mm],
        [0.0, 1.25, 0.0, 5.0],
        [0.0, 0.0, 2.0, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ])
}

/// An image whose every voxel (channel included) has its own value, distinct per case.
fn image(channels: usize, case: usize) -> Volume {
    let (i, j, k) = SHAPE;
    Volume::new(
        Array4::from_shape_fn((channels, i, j, k), |(c, i, j, k)| {
            (case * 10_000 + c * 1000 + i * 100 + j * 10 + k) as f32 * 0.5 - 300.0
        }),
        grid(),
    )
}

/// A label map with classes 0, 1 and 2.
fn label() -> Volume {
    let (i, j, k) = SHAPE;
    Volume::new(
        Array4::from_shape_fn((1, i, j, k), |(_, i, j, k)| ((i + j + k) % 3) as f32),
        grid(),
    )
}

fn write(path: &Path, volume: &Volume, ty: OutputType) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_volume(path, volume, ty).unwrap();
}

fn write_json(dir: &Path, value: serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    let text = serde_json::to_string_pretty(&value).unwrap();
    std::fs::write(dir.join("dataset.json"), text).unwrap();
}

/// An MSD task: two-channel 4-D images, cases prostate_0..2 and test case prostate_9.
fn msd(dir: &Path) {
    for case in 0..3 {
        let name = format!("prostate_{case}.nii.gz");
        write(
            &dir.join("imagesTr").join(&name),
            &image(2, case),
            OutputType::Float32,
        );
        write(
            &dir.join("labelsTr").join(&name),
            &label(),
            OutputType::UInt8,
        );
    }
    write(
        &dir.join("imagesTs/prostate_9.nii.gz"),
        &image(2, 9),
        OutputType::Float32,
    );
    write_json(dir, msd_json(3));
}

fn msd_json(cases: usize) -> serde_json::Value {
    let training: Vec<_> = (0..cases)
        .map(|c| {
            json!({
                "image": format!("./imagesTr/prostate_{c}.nii.gz"),
                "label": format!("./labelsTr/prostate_{c}.nii.gz"),
            })
        })
        .collect();
    json!({
        "name": "Prostate",
        "description": "ignored",
        "tensorImageSize": "4D",
        "modality": {"0": "T2", "1": "ADC"},
        "labels": {"0": "background", "1": "PZ", "2": "TZ"},
        "numTraining": cases,
        "numTest": 1,
        "training": training,
        "test": ["./imagesTs/prostate_9.nii.gz"],
    })
}

/// An nnU-Net v2 task: channels in `_0000`/`_0001` files, cases a and b, test case c.
fn nnunet(dir: &Path) {
    for (n, case) in ["a", "b"].iter().enumerate() {
        for c in 0..2 {
            let file = dir.join(format!("imagesTr/{case}_{c:04}.nii.gz"));
            write(&file, &channel(n, c), OutputType::Float32);
        }
        write(
            &dir.join(format!("labelsTr/{case}.nii.gz")),
            &label(),
            OutputType::UInt8,
        );
    }
    for c in 0..2 {
        let file = dir.join(format!("imagesTs/c_{c:04}.nii.gz"));
        write(&file, &channel(2, c), OutputType::Float32);
    }
    write_json(dir, nnunet_json(2));
}

fn nnunet_json(num_training: usize) -> serde_json::Value {
    json!({
        "channel_names": {"0": "T1", "1": "T2"},
        "labels": {"background": 0, "tumor": 2, "edema": 1},
        "numTraining": num_training,
        "file_ending": ".nii.gz",
    })
}

/// Channel `c` of case number `case` as its own single-channel file.
fn channel(case: usize, c: usize) -> Volume {
    let all = image(2, case);
    Volume::new(
        all.data().slice(s![c..c + 1, .., .., ..]).to_owned(),
        grid(),
    )
}

fn error_text<T: std::fmt::Debug>(result: medssl_data::Result<T>) -> String {
    result.expect_err("the input is broken").to_string()
}

fn assert_mentions(message: &str, words: &[&str]) {
    for word in words {
        assert!(message.contains(word), "expected {word:?} in: {message}");
    }
}

fn path_text(path: PathBuf) -> String {
    path.display().to_string()
}

#[test]
fn msd_task_reads_cases_channels_and_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let task = Task::open(dir).unwrap();
    assert_eq!(task.name, "Prostate");
    assert_eq!(task.channels, ["T2", "ADC"]);
    assert_eq!(task.labels, ["background", "PZ", "TZ"]);
    assert_eq!(
        task.training_ids(),
        ["prostate_0", "prostate_1", "prostate_2"]
    );
    let case = &task.training[1];
    assert_eq!(case.images, [dir.join("imagesTr/prostate_1.nii.gz")]);
    assert_eq!(case.label, Some(dir.join("labelsTr/prostate_1.nii.gz")));
    assert_eq!(task.test.len(), 1);
    assert_eq!(task.test[0].id, "prostate_9");
    assert_eq!(task.test[0].label, None);

    let sample = task.load_case(case).unwrap();
    assert_eq!(sample.id, "prostate_1");
    assert_eq!(sample.image, image(2, 1));
    assert_eq!(sample.label, Some(label()));
    let test = task.load_case(&task.test[0]).unwrap();
    assert_eq!(test.image, image(2, 9));
    assert_eq!(test.label, None);

    assert_eq!(
        task.check().unwrap(),
        CheckReport {
            training: 3,
            test: 1,
            empty_labels: vec![],
            spacing: Some([[1.5, 1.25, 2.0]; 2]),
        }
    );
}

#[test]
fn nnunet_task_finds_cases_and_stacks_channel_files_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    // Hidden files (macOS archive debris) and other endings are not cases.
    std::fs::write(dir.join("imagesTr/._a_0000.nii.gz"), b"junk").unwrap();
    std::fs::write(dir.join("imagesTr/notes.txt"), b"junk").unwrap();
    let task = Task::open(dir).unwrap();
    assert_eq!(task.name, dir.file_name().unwrap().to_string_lossy());
    assert_eq!(task.channels, ["T1", "T2"]);
    assert_eq!(task.labels, ["background", "edema", "tumor"]);
    assert_eq!(task.training_ids(), ["a", "b"]);
    assert_eq!(
        task.training[1].images,
        [
            dir.join("imagesTr/b_0000.nii.gz"),
            dir.join("imagesTr/b_0001.nii.gz")
        ]
    );
    assert_eq!(task.test.len(), 1);
    assert_eq!(task.test[0].id, "c");
    assert_eq!(task.case("b"), Some(&task.training[1]));

    let sample = task.load_case(&task.training[1]).unwrap();
    assert_eq!(sample.image, image(2, 1));
    assert_eq!(sample.label, Some(label()));
    assert_eq!(task.load_case(&task.test[0]).unwrap().image, image(2, 2));
    let report = task.check().unwrap();
    assert_eq!((report.training, report.test), (2, 1));
}

#[test]
fn nnunet_explicit_dataset_map_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    let mut spec = nnunet_json(1);
    spec["dataset"] = json!({
        "only_b": {
            "images": ["./imagesTr/b_0000.nii.gz", "imagesTr/b_0001.nii.gz"],
            "label": "labelsTr/b.nii.gz",
        }
    });
    write_json(dir, spec);
    let task = Task::open(dir).unwrap();
    assert_eq!(task.training_ids(), ["only_b"]);
    assert!(task.test.is_empty());
    let sample = task.load_case(&task.training[0]).unwrap();
    assert_eq!(sample.image, image(2, 1));
}

/// Label maps are uint8: 256 classes (values 0-255) fit, 257 are refused, naming the
/// count, instead of wrapping class 256 to 0.
#[test]
fn more_classes_than_a_uint8_label_holds_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = |classes: usize| {
        let labels: serde_json::Map<String, serde_json::Value> = (0..classes)
            .map(|i| (i.to_string(), json!(format!("class{i}"))))
            .collect();
        json!({"modality": {"0": "CT"}, "labels": labels, "training": []})
    };
    write_json(tmp.path(), spec(MAX_CLASSES));
    assert_eq!(Task::open(tmp.path()).unwrap().labels.len(), 256);
    write_json(tmp.path(), spec(MAX_CLASSES + 1));
    assert_mentions(
        &error_text(Task::open(tmp.path())),
        &[
            "dataset.json",
            "labels: 257 classes, more than the 256 (values 0-255) a uint8 label map can hold",
        ],
    );
}

#[test]
fn label_and_channel_maps_are_ordered_by_value_not_text() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("class{i}")).collect();
    let labels: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), json!(n)))
        .collect();
    write_json(
        tmp.path(),
        json!({"modality": {"0": "CT"}, "labels": labels, "training": []}),
    );
    let task = Task::open(tmp.path()).unwrap();
    assert_eq!(task.labels, names);
    assert!(task.training.is_empty());
}

#[test]
fn label_within_the_grid_tolerance_is_accepted_beyond_it_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let moved = |mm| Volume::new(label().into_data(), shifted_grid(mm));
    // 0.5 um on an origin of 10 mm: 5e-5 relative, inside nnU-Net's 1e-4.
    write(
        &dir.join("labelsTr/prostate_0.nii.gz"),
        &moved(0.0005),
        OutputType::UInt8,
    );
    // 10 um: 1e-3 relative, a different grid.
    let bad = dir.join("labelsTr/prostate_1.nii.gz");
    write(&bad, &moved(0.01), OutputType::UInt8);
    let task = Task::open(dir).unwrap();
    assert!(task.load_case(&task.training[0]).is_ok());
    let message = error_text(task.load_case(&task.training[1]));
    assert_mentions(
        &message,
        &["case prostate_1", &path_text(bad), "affine differs"],
    );
}

#[test]
fn label_of_another_shape_names_case_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let small = Volume::new(Array4::zeros((1, 4, 5, 2)), grid());
    let bad = dir.join("labelsTr/prostate_2.nii.gz");
    write(&bad, &small, OutputType::UInt8);
    let task = Task::open(dir).unwrap();
    let message = error_text(task.load_case(&task.training[2]));
    assert_mentions(
        &message,
        &[
            "case prostate_2",
            &path_text(bad),
            "label shape [4, 5, 2] differs from image shape [4, 5, 3]",
        ],
    );
}

#[test]
fn channel_files_off_the_first_channels_grid_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    let bad = dir.join("imagesTr/a_0001.nii.gz");
    let moved = Volume::new(channel(0, 1).into_data(), shifted_grid(0.5));
    write(&bad, &moved, OutputType::Float32);
    let task = Task::open(dir).unwrap();
    let message = error_text(task.load_case(&task.training[0]));
    assert_mentions(
        &message,
        &[
            "case a",
            &path_text(bad),
            "all channels must share one grid",
        ],
    );
}

#[test]
fn image_with_fewer_channels_than_declared_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let bad = dir.join("imagesTr/prostate_0.nii.gz");
    write(&bad, &image(1, 0), OutputType::Float32);
    let task = Task::open(dir).unwrap();
    let message = error_text(task.load_case(&task.training[0]));
    assert_mentions(
        &message,
        &[
            "case prostate_0",
            &path_text(bad),
            "hold 1 channel(s) but dataset.json declares 2 (T2, ADC)",
        ],
    );
}

#[test]
fn undeclared_and_non_integer_label_values_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let mut values = label();
    values.data_mut()[[0, 1, 1, 1]] = 7.0;
    values.data_mut()[[0, 2, 1, 1]] = 3.0;
    values.data_mut()[[0, 3, 1, 1]] = 7.0;
    let undeclared = dir.join("labelsTr/prostate_0.nii.gz");
    write(&undeclared, &values, OutputType::UInt8);
    values.data_mut()[[0, 0, 0, 0]] = 0.5;
    let fractional = dir.join("labelsTr/prostate_1.nii.gz");
    write(&fractional, &values, OutputType::Float32);

    let task = Task::open(dir).unwrap();
    let message = error_text(task.load_case(&task.training[0]));
    assert_mentions(
        &message,
        &[
            "case prostate_0",
            &path_text(undeclared),
            "label values 3, 7 are not declared",
            "0 background, 1 PZ, 2 TZ",
        ],
    );
    assert!(!message.contains("integer"), "{message}");
    let message = error_text(task.load_case(&task.training[1]));
    assert_mentions(
        &message,
        &[
            "case prostate_1",
            "label values 0.5, 3, 7 are not declared",
            "integer class values",
        ],
    );
}

#[test]
fn nan_voxel_names_case_file_and_position() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    let mut bad_channel = channel(1, 1);
    bad_channel.data_mut()[[0, 1, 2, 0]] = f32::NAN;
    bad_channel.data_mut()[[0, 3, 4, 2]] = f32::INFINITY;
    let bad = dir.join("imagesTr/b_0001.nii.gz");
    write(&bad, &bad_channel, OutputType::Float32);
    let task = Task::open(dir).unwrap();
    let message = error_text(task.load_case(&task.training[1]));
    assert_mentions(
        &message,
        &[
            "case b",
            &path_text(bad),
            "2 NaN or infinite voxel(s), the first at (i, j, k) = (1, 2, 0)",
        ],
    );
}

#[test]
fn background_only_label_is_reported_not_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let empty = Volume::new(Array4::zeros((1, 4, 5, 3)), grid());
    write(
        &dir.join("labelsTr/prostate_2.nii.gz"),
        &empty,
        OutputType::UInt8,
    );
    let task = Task::open(dir).unwrap();
    assert!(task.load_case(&task.training[2]).is_ok());
    let report = task.check().unwrap();
    assert_eq!(report.empty_labels, ["prostate_2"]);
    assert_eq!(
        report.warnings(),
        ["case prostate_2: the label map is background only"]
    );
}

#[test]
fn check_lists_every_failing_case() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let mut bad = image(2, 0);
    bad.data_mut()[[1, 0, 0, 0]] = f32::NAN;
    write(
        &dir.join("imagesTr/prostate_0.nii.gz"),
        &bad,
        OutputType::Float32,
    );
    std::fs::write(dir.join("imagesTs/prostate_9.nii.gz"), b"not an image").unwrap();
    let task = Task::open(dir).unwrap();
    let message = error_text(task.check());
    assert_mentions(
        &message,
        &[
            "2 of 4 cases failed the check",
            "case prostate_0",
            "NaN",
            "case prostate_9",
            "prostate_9.nii.gz",
        ],
    );
    assert!(!message.contains("prostate_1"), "{message}");
}

#[test]
fn missing_files_are_errors_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let gone = dir.join("labelsTr/prostate_1.nii.gz");
    std::fs::remove_file(&gone).unwrap();
    assert_mentions(
        &error_text(Task::open(dir)),
        &["case prostate_1", &path_text(gone), "does not exist"],
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    std::fs::remove_file(dir.join("imagesTr/b_0001.nii.gz")).unwrap();
    assert_mentions(
        &error_text(Task::open(dir)),
        &[
            "case b",
            &path_text(dir.join("imagesTr/b_0001.nii.gz")),
            "missing channel 1 file",
        ],
    );

    std::fs::rename(
        dir.join("imagesTr/b_0000.nii.gz"),
        dir.join("imagesTr/b_0001.nii.gz"),
    )
    .unwrap();
    let message = error_text(Task::open(dir));
    assert_mentions(&message, &["case b", "missing channel 0 file"]);
}

#[test]
fn nnunet_naming_problems_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    let label_a = dir.join("labelsTr/a.nii.gz");
    std::fs::remove_file(&label_a).unwrap();
    assert_mentions(
        &error_text(Task::open(dir)),
        &["case a", &path_text(label_a.clone()), "does not exist"],
    );
    write(&label_a, &label(), OutputType::UInt8);

    let orphan = dir.join("labelsTr/z.nii.gz");
    write(&orphan, &label(), OutputType::UInt8);
    assert_mentions(
        &error_text(Task::open(dir)),
        &[&path_text(orphan.clone()), "label map without images"],
    );
    std::fs::remove_file(&orphan).unwrap();

    let extra = dir.join("imagesTr/a_0002.nii.gz");
    write(&extra, &channel(0, 0), OutputType::Float32);
    assert_mentions(
        &error_text(Task::open(dir)),
        &["case a", &path_text(extra.clone()), "declares 2 channel(s)"],
    );
    std::fs::remove_file(&extra).unwrap();

    let unnamed = dir.join("imagesTr/a.nii.gz");
    write(&unnamed, &channel(0, 0), OutputType::Float32);
    assert_mentions(
        &error_text(Task::open(dir)),
        &[&path_text(unnamed), "4-digit channel"],
    );
}

#[test]
fn num_training_and_duplicates_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    write_json(dir, nnunet_json(3));
    assert_mentions(
        &error_text(Task::open(dir)),
        &[
            "dataset.json",
            &format!(
                "numTraining is 3 but 2 training cases are found in {}",
                dir.join("imagesTr").display()
            ),
        ],
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    let mut spec = msd_json(3);
    spec["training"][2] = spec["training"][0].clone();
    write_json(dir, spec);
    assert_mentions(
        &error_text(Task::open(dir)),
        &["case id prostate_0 appears more than once"],
    );

    let mut spec = msd_json(3);
    spec["training"][2]["label"] = json!("./labelsTr/prostate_0.nii.gz");
    write_json(dir, spec);
    assert_mentions(
        &error_text(Task::open(dir)),
        &["prostate_0.nii.gz is used by cases prostate_0 and prostate_2"],
    );
}

#[test]
fn bad_dataset_json_content_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nnunet(dir);
    let cases = [
        (
            json!({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
                   "labels": {"background": 0, "tumor": [1, 2]}}),
            "\"tumor\" is the region [1,2]",
        ),
        (
            json!({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
                   "labels": {"background": 0, "liver": 2}}),
            "labels: indices must be 0, 1, 2, ... without gaps or repeats, found 0, 2",
        ),
        (
            json!({"channel_names": {"0": "CT"}, "file_ending": ".mha",
                   "labels": {"background": 0}}),
            "file_ending \".mha\" is not supported",
        ),
        (
            json!({"channel_names": {"zero": "CT"}, "file_ending": ".nii.gz",
                   "labels": {"background": 0}}),
            "channel_names: key \"zero\" is not an integer index",
        ),
        (
            json!({"labels": {"0": "background"}, "training": []}),
            "no `channel_names` (nnU-Net v2) or `modality` (MSD)",
        ),
        (
            json!({"modality": {"0": "CT"}, "labels": {"0": "background"}}),
            "no `training` list",
        ),
    ];
    for (spec, expected) in cases {
        write_json(dir, spec);
        assert_mentions(&error_text(Task::open(dir)), &["dataset.json", expected]);
    }
    std::fs::write(dir.join("dataset.json"), "{\"labels\": ").unwrap();
    assert_mentions(
        &error_text(Task::open(dir)),
        &["dataset.json", "invalid dataset.json"],
    );
}

/// `open_checked` goes on past the first problem: a missing file, the problems of one
/// case's image and label together, and another case's label grid, all in one error,
/// and a task without problems gives the summary's counts and spacing range.
#[test]
fn open_checked_lists_every_problem_of_every_case() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    msd(dir);
    // Case 2 on voxels twice as large: 3 x 2.5 x 4 mm.
    let coarse = affine_from_rows([
        [3.0, 0.0, 0.0, -10.0],
        [0.0, 2.5, 0.0, 5.0],
        [0.0, 0.0, 4.0, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    write(
        &dir.join("imagesTr/prostate_2.nii.gz"),
        &Volume::new(image(2, 2).into_data(), coarse),
        OutputType::Float32,
    );
    write(
        &dir.join("labelsTr/prostate_2.nii.gz"),
        &Volume::new(label().into_data(), coarse),
        OutputType::UInt8,
    );
    let (task, report) = Task::open_checked(dir).unwrap();
    assert_eq!(
        report.summary(&task),
        "Prostate: 3 training case(s), 1 test case(s); 2 channel(s) (T2, ADC); 3 classes \
         (background, PZ, TZ); spacing 1.5-3 x 1.25-2.5 x 2-4 mm"
    );

    let mut nan = image(2, 0);
    nan.data_mut()[[0, 1, 1, 1]] = f32::NAN;
    write(
        &dir.join("imagesTr/prostate_0.nii.gz"),
        &nan,
        OutputType::Float32,
    );
    let mut seven = label();
    seven.data_mut()[[0, 0, 0, 0]] = 7.0;
    write(
        &dir.join("labelsTr/prostate_0.nii.gz"),
        &seven,
        OutputType::UInt8,
    );
    let gone = dir.join("labelsTr/prostate_1.nii.gz");
    std::fs::remove_file(&gone).unwrap();
    let small = Volume::new(Array4::zeros((1, 4, 5, 2)), grid());
    write(
        &dir.join("labelsTr/prostate_2.nii.gz"),
        &small,
        OutputType::UInt8,
    );

    let message = error_text(Task::open_checked(dir));
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 5, "{message}");
    assert_mentions(
        lines[0],
        &["dataset.json", "3 of 4 cases failed the check (4 problems)"],
    );
    // Case by case in dataset order, whether found by `open` or in the files.
    assert_mentions(lines[1], &["case prostate_0", "prostate_0.nii.gz", "1 NaN"]);
    assert_mentions(
        lines[2],
        &["case prostate_0", "label values 7 are not declared"],
    );
    assert_mentions(
        lines[3],
        &["case prostate_1", &path_text(gone), "does not exist"],
    );
    assert_mentions(
        lines[4],
        &[
            "case prostate_2",
            "label shape [4, 5, 2] differs from image shape [4, 5, 3]",
        ],
    );
}
