//! Writing phantoms: the MSD task layout and `dataset.json`, the files read back with
//! medssl-io on the generator's grid, the unlabelled pretraining collection, and the
//! refusals.

use std::path::Path;

use medssl_io::{ReadOptions, read_volume};
use medssl_synth::{Grid, Kind, Task, generate, write_task};
use serde_json::{Value, json};

fn task(kind: Kind, training: usize, test: usize, unlabelled: bool) -> Task {
    Task {
        kind,
        grid: Grid::fitted(kind, [20, 18, 16]).unwrap(),
        seed: 5,
        training,
        test,
        unlabelled,
    }
}

fn read(path: &Path) -> medssl_io::Volume {
    read_volume(path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The file holds exactly the generated volume, on the same grid (the header stores
/// the affine as float32).
fn assert_same(path: &Path, want: &medssl_io::Volume) {
    let got = read(path);
    assert_eq!(got.data(), want.data(), "{}", path.display());
    for (a, b) in got.affine().iter().zip(want.affine().iter()) {
        assert!(
            (a - b).abs() < 1e-4,
            "{}: {} vs {}",
            path.display(),
            got.affine(),
            want.affine()
        );
    }
}

#[test]
fn an_msd_task_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("Task01_Synth");
    let t = task(Kind::AbdomenCt, 2, 1, false);
    let written = write_task(&t, &out).unwrap();
    assert_eq!((written.images, written.labels), (3, 3));
    assert_eq!(
        written.dataset_json.as_deref(),
        Some(out.join("dataset.json").as_path())
    );

    let text = std::fs::read_to_string(out.join("dataset.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["name"], "synthetic-abdomen-ct");
    assert_eq!(json["modality"], json!({"0": "CT"}));
    assert_eq!(json["tensorImageSize"], "3D");
    assert_eq!(
        json["labels"],
        json!({"0": "background", "1": "liver", "2": "spleen", "3": "kidney_left",
               "4": "kidney_right", "5": "pancreas", "6": "aorta"})
    );
    assert_eq!(
        (json["numTraining"].as_u64(), json["numTest"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        json["training"],
        json!([
            {"image": "./imagesTr/abdomen_ct_0000.nii.gz", "label": "./labelsTr/abdomen_ct_0000.nii.gz"},
            {"image": "./imagesTr/abdomen_ct_0001.nii.gz", "label": "./labelsTr/abdomen_ct_0001.nii.gz"},
        ])
    );
    assert_eq!(json["test"], json!(["./imagesTs/abdomen_ct_0002.nii.gz"]));
    assert!(json["description"].as_str().unwrap().contains("CT"));
    assert!(json["reference"].as_str().unwrap().contains("--seed 5"));

    for (index, (images, labels)) in [
        (0, ("imagesTr", "labelsTr")),
        (1, ("imagesTr", "labelsTr")),
        (2, ("imagesTs", "labelsTs")),
    ] {
        let sample = generate(Kind::AbdomenCt, &t.grid, 5, index);
        let file = format!("abdomen_ct_{index:04}.nii.gz");
        assert_same(&out.join(images).join(&file), &sample.image);
        assert_same(
            &out.join(labels).join(&file),
            sample.label.as_ref().unwrap(),
        );
    }
    // int16 HU images and uint8 label maps.
    let header =
        medssl_io::nifti::read_header(&out.join("imagesTr/abdomen_ct_0000.nii.gz")).unwrap();
    assert_eq!(header.datatype, 4);
    let header =
        medssl_io::nifti::read_header(&out.join("labelsTr/abdomen_ct_0000.nii.gz")).unwrap();
    assert_eq!(header.datatype, 2);

    // Writing again replaces the files with the same content.
    write_task(&t, &out).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("dataset.json")).unwrap(),
        text
    );
}

#[test]
fn mri_tasks_are_float32_and_have_no_test_folders_without_test_cases() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(Kind::AbdomenMri, 1, 0, false);
    write_task(&t, dir.path()).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("dataset.json")).unwrap())
            .unwrap();
    assert_eq!(json["modality"], json!({"0": "MRI"}));
    assert_eq!(json["test"], json!([]));
    let file = dir.path().join("imagesTr/abdomen_mri_0000.nii.gz");
    assert_eq!(medssl_io::nifti::read_header(&file).unwrap().datatype, 16);
    assert_same(&file, &generate(Kind::AbdomenMri, &t.grid, 5, 0).image);
    assert!(!dir.path().join("imagesTs").exists());
}

#[test]
fn an_unlabelled_collection_is_a_folder_of_images() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(Kind::HeadNeckCt, 3, 0, true);
    let written = write_task(&t, dir.path()).unwrap();
    assert_eq!(
        (written.images, written.labels, written.dataset_json),
        (3, 0, None)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "headneck_ct_0000.nii.gz",
            "headneck_ct_0001.nii.gz",
            "headneck_ct_0002.nii.gz"
        ]
    );
    assert_same(
        &dir.path().join(&names[1]),
        &generate(Kind::HeadNeckCt, &t.grid, 5, 1).image,
    );
}

#[test]
fn impossible_tasks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_task(&task(Kind::TumorCt, 0, 2, false), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one case"), "{err}");
    let err = write_task(&task(Kind::TumorCt, 2, 2, true), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unlabelled") && err.contains("test"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
    // An output path that is a file: the error names it.
    let file = dir.path().join("taken");
    std::fs::write(&file, "x").unwrap();
    let err = write_task(&task(Kind::TumorCt, 1, 0, false), &file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("taken"), "{err}");
}
