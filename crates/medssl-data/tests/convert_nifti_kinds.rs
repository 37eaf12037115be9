//! `medssl dataset convert` for the datasets published as NIfTI (MSD, BTCV, AMOS22,
//! FLARE22, KiTS23, LiTS, BraTS), each on a miniature tree in its exact layout: every
//! written voxel is the source's (labels through the dataset's value map), cases land
//! in the right task and split, bad trees give errors naming the case and the problem,
//! and an interrupted conversion resumes.

mod convert_tree;

use std::path::Path;

use convert_tree::*;
use medssl_io::Volume;

const BTCV: [&str; 14] = [
    "background",
    "spleen",
    "right kidney",
    "left kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior vena cava",
    "portal vein and splenic vein",
    "pancreas",
    "right adrenal gland",
    "left adrenal gland",
];

#[test]
fn btcv_cases_are_written_voxel_for_voxel() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    btcv_tree(&src);
    let tasks = convert_ok("btcv", &src, &out);
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0].training, tasks[0].test, tasks[0].resumed),
        (2, 1, 0)
    );
    let task = out.join("BTCV");
    check_task(
        &task,
        &["CT"],
        &BTCV,
        &["BTCV_0001", "BTCV_0002"],
        &["BTCV_0061"],
    );
    for n in 1..=2 {
        let case = format!("BTCV_{n:04}");
        assert_same(&case, &written_image(&task, "imagesTr", &case, 0), &ct(n));
        assert_same(&case, &written_label(&task, &case), &labels(n, 14));
    }
    assert_same(
        "test",
        &written_image(&task, "imagesTs", "BTCV_0061", 0),
        &ct(61),
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(task.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(json["converted_from"]["kind"], "btcv");
    assert_eq!(json["numTraining"], 2);
    // A finished task is not converted again.
    assert_mentions(&convert_err("btcv", &src, &out), &["converted already"]);
}

#[test]
fn btcv_bad_trees_name_the_case_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    btcv_tree(&src);
    let training = src.join("RawData/Training");
    // An undefined label value, a label map on another grid, and (below) a missing one.
    let mut bad = labels(1, 14);
    bad.data_mut()[[0, 1, 2, 3]] = 14.0;
    write(&training.join("label/label0001.nii.gz"), &bad);
    let shifted = volume_of(
        SHAPE,
        grid([0.8, 0.8, 2.5], [-10.0, 4.0, 9.0]),
        |_, _, _| 0.0,
    );
    write(&training.join("label/label0002.nii.gz"), &shifted);
    let message = convert_err("btcv", &src, &dir.path().join("out"));
    assert_mentions(
        &message,
        &[
            "2 of 3 case(s) of BTCV could not be converted",
            "case BTCV_0001",
            "label0001.nii.gz",
            "label value(s) 14 are not among BTCV's values (0-13)",
            "case BTCV_0002",
            "not on the image grid",
            "origin [-10.0, 4.0, 9.0] against [-10.0, 4.0, 7.0]",
        ],
    );
    // The good test case was written; no dataset.json marks the task finished.
    let out = dir.path().join("out/BTCV");
    assert!(out.join("imagesTs/BTCV_0061_0000.nii.gz").is_file());
    assert!(!out.join("dataset.json").exists());

    std::fs::remove_file(training.join("label/label0002.nii.gz")).unwrap();
    let message = convert_err("btcv", &src, &dir.path().join("out2"));
    assert_mentions(
        &message,
        &["case BTCV_0002", "no label map", "label0002.nii.gz"],
    );

    let message = convert_err(
        "btcv",
        &dir.path().join("elsewhere"),
        &dir.path().join("out3"),
    );
    assert_mentions(&message, &["not a directory", "RawData/Training/img"]);
}

#[test]
fn an_interrupted_conversion_resumes_with_the_cases_left() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    btcv_tree(&src);
    convert_ok("btcv", &src, &out);
    // As if killed before case 2's label map and the dataset.json were written.
    let task = out.join("BTCV");
    std::fs::remove_file(task.join("dataset.json")).unwrap();
    std::fs::remove_file(task.join("labelsTr/BTCV_0002.nii.gz")).unwrap();
    let tasks = convert_ok("btcv", &src, &out);
    assert_eq!(
        tasks[0].resumed, 2,
        "case 1 and the test case were written before"
    );
    assert_same(
        "resumed",
        &written_label(&task, "BTCV_0002"),
        &labels(2, 14),
    );
    check_task(
        &task,
        &["CT"],
        &BTCV,
        &["BTCV_0001", "BTCV_0002"],
        &["BTCV_0061"],
    );
}

#[test]
fn amos_cases_split_into_a_ct_and_an_mri_task_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("amos22"), dir.path().join("out"));
    amos_tree(&src);
    let tasks = convert_ok("amos", &src, &out);
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["AMOS22_CT", "AMOS22_MRI"]);
    let organs = [
        "background",
        "spleen",
        "right kidney",
        "left kidney",
        "gallbladder",
        "esophagus",
        "liver",
        "stomach",
        "aorta",
        "inferior vena cava",
        "pancreas",
        "right adrenal gland",
        "left adrenal gland",
        "duodenum",
        "bladder",
        "prostate/uterus",
    ];
    let ct_task = out.join("AMOS22_CT");
    check_task(&ct_task, &["CT"], &organs, &["amos_0001", "amos_0008"], &[]);
    let mri_task = out.join("AMOS22_MRI");
    check_task(&mri_task, &["MRI"], &organs, &["amos_0507"], &["amos_0600"]);
    assert_same("va", &written_label(&ct_task, "amos_0008"), &labels(8, 16));
    assert_same(
        "mri",
        &written_image(&mri_task, "imagesTr", "amos_0507", 0),
        &ct(7),
    );
}

#[test]
fn flare22_kits23_and_lits_read_their_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");

    let flare = dir.path().join("FLARE22");
    flare22_tree(&flare);
    convert_ok("flare22", &flare, &out);
    let task = out.join("FLARE22");
    let organs = [
        "background",
        "liver",
        "right kidney",
        "spleen",
        "pancreas",
        "aorta",
        "inferior vena cava",
        "right adrenal gland",
        "left adrenal gland",
        "gallbladder",
        "esophagus",
        "stomach",
        "duodenum",
        "left kidney",
    ];
    check_task(
        &task,
        &["CT"],
        &organs,
        &["FLARE22_Tr_0001", "FLARE22_Tr_0002"],
        &[],
    );
    assert_same(
        "flare",
        &written_label(&task, "FLARE22_Tr_0002"),
        &labels(2, 14),
    );

    let kits = dir.path().join("kits23");
    kits23_tree(&kits);
    convert_ok("kits23", &kits, &out);
    let task = out.join("KiTS23");
    check_task(
        &task,
        &["CT"],
        &["background", "kidney", "tumor", "cyst"],
        &["case_00000", "case_00003"],
        &[],
    );
    assert_same(
        "kits",
        &written_image(&task, "imagesTr", "case_00003", 0),
        &ct(3),
    );

    let lits = dir.path().join("LiTS");
    lits_tree(&lits);
    convert_ok("lits", &lits, &out);
    let task = out.join("LiTS");
    check_task(
        &task,
        &["CT"],
        &["background", "liver", "tumor"],
        &["LiTS_000", "LiTS_012"],
        &["LiTS_test_005"],
    );
    assert_same("lits", &written_label(&task, "LiTS_012"), &labels(12, 3));
}

/// A BraTS case folder with four sequences (values telling the channels apart) and,
/// when `seg` is given, its segmentation.
fn brats_case(root: &Path, id: &str, suffixes: [&str; 4], seg: Option<(&str, &Volume)>) {
    let dir = root.join(id);
    for (c, suffix) in suffixes.iter().enumerate() {
        write(&dir.join(format!("{id}{suffix}.nii.gz")), &brats_channel(c));
    }
    if let Some((suffix, label)) = seg {
        write(&dir.join(format!("{id}{suffix}.nii.gz")), label);
    }
}

fn brats_channel(c: usize) -> Volume {
    volume_of(SHAPE, default_grid(), move |i, j, k| {
        (c * 1000 + i + j + k) as f32
    })
}

#[test]
fn brats_2021_and_2023_cases_become_four_channels_with_enhancing_tumour_as_3() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("brats"), dir.path().join("out"));
    let stored_2021 = volume_of(SHAPE, default_grid(), |i, j, _| {
        [0.0, 1.0, 2.0, 4.0][(i + j) % 4]
    });
    let stored_2023 = volume_of(SHAPE, default_grid(), |i, j, _| ((i + j) % 4) as f32);
    let y2021 = ["_flair", "_t1", "_t1ce", "_t2"];
    brats_case(&src, "BraTS2021_00000", y2021, Some(("_seg", &stored_2021)));
    brats_case(&src.join("ValidationData"), "BraTS2021_00800", y2021, None);
    let y2023 = ["-t2f", "-t1n", "-t1c", "-t2w"];
    brats_case(
        &src,
        "BraTS-GLI-00002-000",
        y2023,
        Some(("-seg", &stored_2023)),
    );
    convert_ok("brats", &src, &out);
    let task = out.join("BraTS");
    check_task(
        &task,
        &["FLAIR", "T1", "T1ce", "T2"],
        &[
            "background",
            "necrotic tumor core",
            "peritumoral edema",
            "enhancing tumor",
        ],
        &["BraTS-GLI-00002-000", "BraTS2021_00000"],
        &["BraTS2021_00800"],
    );
    for c in 0..4 {
        let got = written_image(&task, "imagesTr", "BraTS2021_00000", c);
        assert_same(&format!("channel {c}"), &got, &brats_channel(c));
    }
    // Both years' labels read the same classes.
    assert_same(
        "2021",
        &written_label(&task, "BraTS2021_00000"),
        &stored_2023,
    );
    assert_same(
        "2023",
        &written_label(&task, "BraTS-GLI-00002-000"),
        &stored_2023,
    );

    // 2021 files never hold 3: a 3 there is an error.
    let src2 = dir.path().join("brats2");
    brats_case(
        &src2,
        "BraTS2021_00001",
        y2021,
        Some(("_seg", &stored_2023)),
    );
    let message = convert_err("brats", &src2, &dir.path().join("out2"));
    assert_mentions(
        &message,
        &["case BraTS2021_00001", "label value(s) 3", "(0, 1, 2, 4)"],
    );
}

#[test]
fn an_msd_task_is_checked_and_its_4d_images_split_into_channel_files() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (
        dir.path().join("Task01_BrainTumour"),
        dir.path().join("out"),
    );
    let two_channels = |n: usize| {
        let a = brats_channel(n);
        let b = brats_channel(n + 1);
        let data = medssl_io::ndarray::concatenate(
            medssl_io::ndarray::Axis(0),
            &[a.data().view(), b.data().view()],
        )
        .unwrap();
        Volume::new(data, default_grid())
    };
    for n in 0..2 {
        write(
            &src.join(format!("imagesTr/BRATS_{n:03}.nii.gz")),
            &two_channels(n),
        );
        write(
            &src.join(format!("labelsTr/BRATS_{n:03}.nii.gz")),
            &labels(n, 3),
        );
    }
    std::fs::write(
        src.join("dataset.json"),
        r#"{"name": "BRATS", "modality": {"0": "FLAIR", "1": "T1w"},
            "labels": {"0": "background", "1": "edema", "2": "tumour"}, "numTraining": 2,
            "training": [
              {"image": "./imagesTr/BRATS_000.nii.gz", "label": "./labelsTr/BRATS_000.nii.gz"},
              {"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}],
            "test": []}"#,
    )
    .unwrap();
    convert_ok("msd", &src, &out);
    let task = out.join("Task01_BrainTumour");
    check_task(
        &task,
        &["FLAIR", "T1w"],
        &["background", "edema", "tumour"],
        &["BRATS_000", "BRATS_001"],
        &[],
    );
    assert_same(
        "c1",
        &written_image(&task, "imagesTr", "BRATS_001", 1),
        &brats_channel(2),
    );
    assert_same("label", &written_label(&task, "BRATS_001"), &labels(1, 3));

    // The MSD check runs first: a label value the task does not declare stops it.
    let mut bad = labels(0, 3);
    bad.data_mut()[[0, 0, 0, 0]] = 7.0;
    write(&src.join("labelsTr/BRATS_000.nii.gz"), &bad);
    let message = convert_err("msd", &src, &dir.path().join("out2"));
    assert_mentions(&message, &["BRATS_000", "7"]);
}
