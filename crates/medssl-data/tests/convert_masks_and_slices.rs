//! `medssl dataset convert` for the datasets whose ground truth is not one label map:
//! HaN-Seg (NRRD, one mask per structure), TotalSegmentator (one NIfTI mask per
//! structure, a chosen subset merged) and CHAOS (DICOM series with one PNG per slice),
//! each on a miniature tree in its exact layout.

mod convert_tree;

use convert_tree::*;
use medssl_data::convert::ConvertOptions;
use medssl_io::{ReadOptions, read_volume};
use medssl_test_support::fixtures_dir;

/// HaN-Seg's label names: its thirty structures in alphabetical order.
const HANSEG: [&str; 31] = [
    "background",
    "A_Carotid_L",
    "A_Carotid_R",
    "Arytenoid",
    "Bone_Mandible",
    "Brainstem",
    "BuccalMucosa",
    "Cavity_Oral",
    "Cochlea_L",
    "Cochlea_R",
    "Cricopharyngeus",
    "Esophagus_S",
    "Eye_AL",
    "Eye_AR",
    "Eye_PL",
    "Eye_PR",
    "Glnd_Lacrimal_L",
    "Glnd_Lacrimal_R",
    "Glnd_Submand_L",
    "Glnd_Submand_R",
    "Glnd_Thyroid",
    "Glottis",
    "Larynx_SG",
    "Lips",
    "OpticChiasm",
    "OpticNrv_L",
    "OpticNrv_R",
    "Parotid_L",
    "Parotid_R",
    "Pituitary",
    "SpinalCord",
];

#[test]
fn hanseg_masks_merge_into_one_label_map_on_the_ct() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("HaN-Seg"), dir.path().join("out"));
    let case = hanseg_tree(&src);
    let tasks = convert_ok("hanseg", &src, &out);
    assert_eq!(tasks[0].notes.len(), 1, "{:?}", tasks[0].notes);
    assert_mentions(
        &tasks[0].notes[0],
        &["case case_01", "23 voxel(s)", "highest label value"],
    );
    let task = out.join("HaN-Seg");
    let t = check_task(&task, &["CT"], &HANSEG, &["case_01"], &[]);
    let class = |name: &str| t.labels.iter().position(|l| l == name).unwrap() as f32;
    let (brainstem, cord, lips) = (class("Brainstem"), class("SpinalCord"), class("Lips"));
    assert_eq!((brainstem, cord, lips), (5.0, 30.0, 23.0));
    // The CT as read from its NRRD file, on which every mask lies.
    let ct_read = read_volume(&case.join("case_01_IMG_CT.nrrd"), &ReadOptions::default()).unwrap();
    assert_same(
        "CT",
        &written_image(&task, "imagesTr", "case_01", 0),
        &ct_read,
    );
    let want = volume_of(SHAPE, *ct_read.affine(), |i, j, k| {
        if (2..4).contains(&i) {
            cord
        } else if j == 4 && k == 3 {
            lips
        } else if i <= 2 {
            brainstem
        } else {
            0.0
        }
    });
    assert_same("labels", &written_label(&task, "case_01"), &want);
}

#[test]
fn hanseg_bad_masks_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("HaN-Seg");
    let case = hanseg_tree(&src);
    write_nrrd(
        &case.join("case_01_OAR_Lips.seg.nrrd"),
        &volume_of(
            SHAPE,
            default_grid(),
            |i, _, _| if i == 0 { 2.0 } else { 0.0 },
        ),
    );
    let message = convert_err("hanseg", &src, &dir.path().join("out"));
    assert_mentions(
        &message,
        &[
            "case case_01",
            "case_01_OAR_Lips.seg.nrrd",
            "holds the value 2",
            "0 and 1 only",
        ],
    );

    write_nrrd(
        &case.join("case_01_OAR_Lips.seg.nrrd"),
        &mask(|i, _, _| i == 0),
    );
    write_nrrd(
        &case.join("case_01_OAR_Eyebrow.seg.nrrd"),
        &mask(|i, _, _| i == 0),
    );
    let message = convert_err("hanseg", &src, &dir.path().join("out"));
    assert_mentions(
        &message,
        &["case_01_OAR_Eyebrow.seg.nrrd", "\"Eyebrow\" is not one of"],
    );
}

#[test]
fn totalsegmentator_merges_the_chosen_structures_in_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (
        dir.path().join("Totalsegmentator_dataset"),
        dir.path().join("out"),
    );
    totalseg_tree(&src);
    let options = ConvertOptions {
        structures: Some(vec!["spleen".into(), "liver".into()]),
    };
    convert_with("totalsegmentator", &src, &out, &options).unwrap();
    let task = out.join("TotalSegmentator");
    check_task(
        &task,
        &["CT"],
        &["background", "spleen", "liver"],
        &["s0000", "s0001"],
        &[],
    );
    let want = volume_of(SHAPE, default_grid(), |i, j, _| {
        if i == 1 {
            2.0
        } else if j == 3 {
            1.0
        } else {
            0.0
        }
    });
    assert_same("s0001", &written_label(&task, "s0001"), &want);
    assert_same("ct", &written_image(&task, "imagesTr", "s0001", 0), &ct(1));

    // The default structures (BTCV's organs) are not all in this tree.
    let message = convert_err("totalsegmentator", &src, &dir.path().join("out2"));
    assert_mentions(
        &message,
        &["case s0000", "no mask of the structure \"kidney_right\""],
    );
    // --structures belongs to totalsegmentator only.
    let message = convert_with("btcv", &src, &dir.path().join("out3"), &options).unwrap_err();
    assert_mentions(&message, &["--structures applies to totalsegmentator only"]);
}

#[test]
fn chaos_png_slices_land_on_their_dicom_slices() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("CHAOS_Train_Sets"), dir.path().join("out"));
    chaos_tree(&src);
    let slices = series_in_slice_order().len();
    let tasks = convert_ok("chaos", &src, &out);
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["CHAOS_CT", "CHAOS_MR_T1", "CHAOS_MR_T2"]);
    let series = read_volume(
        &fixtures_dir().join("io/ct_series_oblique"),
        &ReadOptions::default(),
    )
    .unwrap();
    let shape = series.spatial_shape();
    assert_eq!(shape, [64, 64, slices]);

    let ct_task = out.join("CHAOS_CT");
    check_task(
        &ct_task,
        &["CT"],
        &["background", "liver"],
        &["CHAOS_CT_1"],
        &[],
    );
    assert_same(
        "CT image",
        &written_image(&ct_task, "imagesTr", "CHAOS_CT_1", 0),
        &series,
    );
    // Voxel (column c, row r, slice k) holds pixel (r, c) of the PNG paired with slice
    // k's file, numbered slices - 1 - k.
    let want = volume_of(shape, *series.affine(), |c, r, k| {
        f32::from(u8::from(ct_truth(slices - 1 - k, r, c) > 0))
    });
    assert_same("CT liver", &written_label(&ct_task, "CHAOS_CT_1"), &want);

    let organs = [
        "background",
        "liver",
        "right kidney",
        "left kidney",
        "spleen",
    ];
    let t1 = out.join("CHAOS_MR_T1");
    check_task(
        &t1,
        &["T1 in phase", "T1 out of phase"],
        &organs,
        &["CHAOS_MR_2"],
        &[],
    );
    let t2 = out.join("CHAOS_MR_T2");
    check_task(&t2, &["T2"], &organs, &["CHAOS_MR_2"], &[]);
    let want = volume_of(shape, *series.affine(), |c, r, k| mr_truth(k, r, c).1);
    for task in [&t1, &t2] {
        assert_same("MR organs", &written_label(task, "CHAOS_MR_2"), &want);
    }
    assert_same(
        "out of phase",
        &written_image(&t1, "imagesTr", "CHAOS_MR_2", 1),
        &series,
    );
}

#[test]
fn chaos_bad_ground_truth_names_the_case_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("Train_Sets");
    let case = src.join("MR/5/T2SPIR");
    let mr_name = |k: usize| format!("IMG-0001-{:05}", k + 1);
    copy_series(&case.join("DICOM_anon"), |k| format!("{}.dcm", mr_name(k)));
    let slices = series_in_slice_order().len();
    for k in 0..slices {
        // 90 lies in no organ's band.
        let value = if k == 7 { 90 } else { 0 };
        write_png(
            &case.join(format!("Ground/{}.png", mr_name(k))),
            64,
            64,
            |_, _| value,
        );
    }
    std::fs::create_dir_all(src.join("MR/5/T1DUAL/DICOM_anon")).unwrap();
    let message = convert_err("chaos", &src, &dir.path().join("out"));
    assert_mentions(&message, &["InPhase", "no such DICOM folder"]);

    copy_series(&src.join("MR/5/T1DUAL/DICOM_anon/InPhase"), |k| {
        format!("{}.dcm", mr_name(k))
    });
    copy_series(&src.join("MR/5/T1DUAL/DICOM_anon/OutPhase"), |k| {
        format!("{}.dcm", mr_name(k))
    });
    std::fs::create_dir_all(src.join("MR/5/T1DUAL/Ground")).unwrap();
    write_png(&src.join("MR/5/T1DUAL/Ground/x.png"), 64, 64, |_, _| 0);
    let message = convert_err("chaos", &src, &dir.path().join("out"));
    assert_mentions(
        &message,
        &[
            "case CHAOS_MR_5",
            "1 ground-truth PNG slice(s) for 40 DICOM slice(s)",
            "label value(s) 90 are not among CHAOS_MR_T2's values (0, 55-70, 110-135, 175-200, \
             240-255)",
        ],
    );
}
