//! Miniature source trees for the dataset converters' tests: tiny volumes with values
//! that tell every voxel, case and channel apart, written in each dataset's formats
//! (NIfTI, NRRD, DICOM copies, greyscale PNG), and the checks on what a conversion
//! wrote.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use medssl_data::convert::{self, ConvertOptions, ConvertedTask};
use medssl_data::dataset::Task;
use medssl_io::nalgebra::Matrix4;
use medssl_io::ndarray::Array4;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{Affine, ReadOptions, Volume, read_volume};
use medssl_test_support::fixtures_dir;

/// The array shape of every miniature volume.
pub const SHAPE: [usize; 3] = [6, 5, 4];

/// A grid of [`SHAPE`] with the given spacing and origin, axes along RAS.
pub fn grid(spacing: [f64; 3], origin: [f64; 3]) -> Affine {
    let mut a = Matrix4::identity();
    for axis in 0..3 {
        a[(axis, axis)] = spacing[axis];
        a[(axis, 3)] = origin[axis];
    }
    a
}

/// The grid most cases use.
pub fn default_grid() -> Affine {
    grid([0.8, 0.8, 2.5], [-10.0, 4.0, 7.0])
}

/// A one-channel volume of `shape` on `affine` with `f(i, j, k)` at each voxel.
pub fn volume_of(
    shape: [usize; 3],
    affine: Affine,
    f: impl Fn(usize, usize, usize) -> f32,
) -> Volume {
    let data = Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(_, i, j, k)| f(i, j, k));
    Volume::new(data, affine)
}

/// A CT-like image of case `seed`: integer values in HU, distinct per voxel and case.
pub fn ct(seed: usize) -> Volume {
    volume_of(SHAPE, default_grid(), move |i, j, k| {
        (seed * 100 + i * 20 + j * 4 + k) as f32 - 1000.0
    })
}

/// A label map of values `0..classes`, varied over the volume and by `seed`.
pub fn labels(seed: usize, classes: usize) -> Volume {
    volume_of(SHAPE, default_grid(), move |i, j, k| {
        ((i + 2 * j + 3 * k + seed) % classes) as f32
    })
}

/// Writes `volume` at `path` (NIfTI by its ending), creating folders, in the smallest
/// exact type.
pub fn write(path: &Path, volume: &Volume) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_volume(path, volume, OutputType::smallest_exact(volume)).unwrap();
}

/// Writes a one-channel `volume` as an NRRD file with attached raw int16 data in LPS
/// space, as 3D Slicer writes HaN-Seg's files.
pub fn write_nrrd(path: &Path, volume: &Volume) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let [ni, nj, nk] = volume.spatial_shape();
    let a = volume.affine();
    // RAS to LPS: the first two world axes change sign.
    let lps = |row: usize, col: usize| {
        if row < 2 {
            -a[(row, col)]
        } else {
            a[(row, col)]
        }
    };
    let direction = |col: usize| format!("({},{},{})", lps(0, col), lps(1, col), lps(2, col));
    let mut bytes = format!(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: {ni} \
         {nj} {nk}\nspace directions: {} {} {}\nkinds: domain domain domain\nendian: \
         little\nencoding: raw\nspace origin: {}\n\n",
        direction(0),
        direction(1),
        direction(2),
        direction(3),
    )
    .into_bytes();
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                bytes.extend((volume.data()[[0, i, j, k]] as i16).to_le_bytes());
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes an 8-bit greyscale PNG of `rows` x `columns` with `f(row, column)`.
pub fn write_png(path: &Path, rows: usize, columns: usize, f: impl Fn(usize, usize) -> u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, columns as u32, rows as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = (0..rows)
        .flat_map(|r| (0..columns).map(move |c| (r, c)))
        .map(|(r, c)| f(r, c))
        .collect();
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&pixels)
        .unwrap();
}

/// Every file below `dir` with its content, to show a conversion left the source as it
/// was.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()]
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Converts `kind` from `source` into `out`, checks the source is unchanged, and
/// returns the tasks written.
pub fn convert_ok(kind: &str, source: &Path, out: &Path) -> Vec<ConvertedTask> {
    convert_with(kind, source, out, &ConvertOptions::default()).unwrap()
}

/// [`convert_ok`] with options, returning the error as text.
pub fn convert_with(
    kind: &str,
    source: &Path,
    out: &Path,
    options: &ConvertOptions,
) -> Result<Vec<ConvertedTask>, String> {
    let before = snapshot(source);
    let result = convert::convert(kind, source, out, options, &|_| {});
    assert!(
        before == snapshot(source),
        "converting {kind} changed its source"
    );
    result.map_err(|e| e.to_string())
}

/// The error of converting `kind`, which must fail.
pub fn convert_err(kind: &str, source: &Path, out: &Path) -> String {
    match convert_with(kind, source, out, &ConvertOptions::default()) {
        Ok(tasks) => panic!("converting {kind} succeeded: {tasks:?}"),
        Err(e) => e,
    }
}

/// Asserts `message` holds every fragment.
pub fn assert_mentions(message: &str, fragments: &[&str]) {
    for f in fragments {
        assert!(message.contains(f), "{f:?} is not in: {message}");
    }
}

/// Opens the written task `dir` with every case checked, and asserts its channels,
/// labels and case ids (training, then test).
pub fn check_task(
    dir: &Path,
    channels: &[&str],
    labels: &[&str],
    training: &[&str],
    test: &[&str],
) -> Task {
    let (task, _) = Task::open_checked(dir).unwrap();
    assert_eq!(task.channels, channels, "{}", dir.display());
    assert_eq!(task.labels, labels, "{}", dir.display());
    let ids = |cases: &[medssl_data::dataset::Case]| {
        let mut ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&task.training), training, "{}", dir.display());
    assert_eq!(ids(&task.test), test, "{}", dir.display());
    task
}

/// Reads a written file.
pub fn read(path: &Path) -> Volume {
    read_volume(path, &ReadOptions::default()).unwrap()
}

/// Asserts two volumes have the same grid and exactly the same values.
pub fn assert_same(what: &str, got: &Volume, want: &Volume) {
    assert_eq!(got.spatial_shape(), want.spatial_shape(), "{what}: shape");
    let diff = (got.affine() - want.affine()).abs().max();
    assert!(diff < 1e-4, "{what}: affines differ by {diff}");
    assert_eq!(got.data(), want.data(), "{what}: values");
}

/// The written image of channel `c` of `case` in `task` (`imagesTr` or `imagesTs`).
pub fn written_image(task: &Path, folder: &str, case: &str, c: usize) -> Volume {
    read(&task.join(folder).join(format!("{case}_{c:04}.nii.gz")))
}

/// The written label map of `case` in `task`.
pub fn written_label(task: &Path, case: &str) -> Volume {
    read(&task.join("labelsTr").join(format!("{case}.nii.gz")))
}

/// BTCV's layout: two training cases and one test case.
pub fn btcv_tree(root: &Path) {
    let raw = root.join("RawData");
    for n in 1..=2 {
        write(&raw.join(format!("Training/img/img{n:04}.nii.gz")), &ct(n));
        write(
            &raw.join(format!("Training/label/label{n:04}.nii.gz")),
            &labels(n, 14),
        );
    }
    write(&raw.join("Testing/img/img0061.nii.gz"), &ct(61));
}

/// A binary mask that is 1 where `inside(i, j, k)`.
pub fn mask(inside: impl Fn(usize, usize, usize) -> bool) -> Volume {
    volume_of(SHAPE, default_grid(), move |i, j, k| {
        f32::from(u8::from(inside(i, j, k)))
    })
}

/// HaN-Seg's layout: `set_1/case_01` with the CT and three structures, two of which
/// overlap at i == 2.
pub fn hanseg_tree(root: &Path) -> PathBuf {
    let case = root.join("set_1/case_01");
    write_nrrd(&case.join("case_01_IMG_CT.nrrd"), &ct(1));
    write_nrrd(&case.join("case_01_IMG_MR_T1.nrrd"), &ct(2));
    write_nrrd(
        &case.join("case_01_OAR_Brainstem.seg.nrrd"),
        &mask(|i, _, _| i <= 2),
    );
    write_nrrd(
        &case.join("case_01_OAR_SpinalCord.seg.nrrd"),
        &mask(|i, _, _| (2..4).contains(&i)),
    );
    write_nrrd(
        &case.join("case_01_OAR_Lips.seg.nrrd"),
        &mask(|_, j, k| j == 4 && k == 3),
    );
    case
}

/// TotalSegmentator's layout: two subjects with three structures each.
pub fn totalseg_tree(root: &Path) {
    for n in 0..2 {
        let subject = root.join(format!("s{n:04}"));
        write(&subject.join("ct.nii.gz"), &ct(n));
        let seg = subject.join("segmentations");
        write(&seg.join("liver.nii.gz"), &mask(move |i, _, _| i == n));
        write(&seg.join("spleen.nii.gz"), &mask(|_, j, _| j == 3));
        write(&seg.join("kidney_left.nii.gz"), &mask(|_, _, k| k == 0));
    }
}

/// The reference CT series' files in the order the series stacks them (along the slice
/// normal).
pub fn series_in_slice_order() -> Vec<PathBuf> {
    medssl_io::dicom::series_files(&fixtures_dir().join("io/ct_series_oblique"), None).unwrap()
}

/// Copies the reference series into `dir`, the file of slice k named `name(k)`.
pub fn copy_series(dir: &Path, name: impl Fn(usize) -> String) {
    std::fs::create_dir_all(dir).unwrap();
    for (k, file) in series_in_slice_order().iter().enumerate() {
        std::fs::copy(file, dir.join(name(k))).unwrap();
    }
}

/// CHAOS CT's ground-truth pattern of the PNG numbered `n`: 255 on a diagonal band.
pub fn ct_truth(n: usize, r: usize, c: usize) -> u8 {
    if (r + c + n) % 5 == 0 { 255 } else { 0 }
}

/// CHAOS MR's grey value (inside the organisers' bands) and class of pixel (r, c) in
/// the PNG numbered `n`.
pub fn mr_truth(n: usize, r: usize, c: usize) -> (u8, f32) {
    let class = (r + 2 * c + n) % 5;
    ([0, 60, 130, 180, 250][class], class as f32)
}

/// CHAOS' layout under `src` (`Train_Sets/`): CT patient 1, its DICOM files named
/// against the slice order with PNGs paired by that name order, and MR patient 2 with
/// T1-DUAL in and out of phase and T2-SPIR, each PNG named as its DICOM file.
pub fn chaos_tree(src: &Path) {
    let root = src.join("Train_Sets");
    let slices = series_in_slice_order().len();
    // CT: file names count against the slice order (as CHAOS CT's do), and the PNGs
    // are paired with the DICOM files by that name order.
    let ct_case = root.join("CT/1");
    copy_series(&ct_case.join("DICOM_anon"), |k| {
        format!("i{:04},0000b.dcm", slices - 1 - k)
    });
    for n in 0..slices {
        let png = ct_case.join(format!("Ground/liver_GT_{n:03}.png"));
        write_png(&png, 64, 64, |r, c| ct_truth(n, r, c));
    }
    // MR: each PNG is named as its DICOM file.
    let mr_case = root.join("MR/2");
    let mr_name = |k: usize| format!("IMG-0004-{:05}", 2 * k + 1);
    for phase in ["InPhase", "OutPhase"] {
        copy_series(&mr_case.join("T1DUAL/DICOM_anon").join(phase), |k| {
            format!("{}.dcm", mr_name(k))
        });
    }
    copy_series(&mr_case.join("T2SPIR/DICOM_anon"), |k| {
        format!("{}.dcm", mr_name(k))
    });
    for sequence in ["T1DUAL", "T2SPIR"] {
        for k in 0..slices {
            let png = mr_case
                .join(sequence)
                .join(format!("Ground/{}.png", mr_name(k)));
            write_png(&png, 64, 64, |r, c| mr_truth(k, r, c).0);
        }
    }
}

/// AMOS22's layout: CT cases 1 (imagesTr) and 8 (imagesVa), MRI case 507 (imagesTr)
/// and MRI test case 600 (imagesTs).
pub fn amos_tree(src: &Path) {
    for (folder, labels_folder, n) in [
        ("imagesTr", Some("labelsTr"), 1),
        ("imagesTr", Some("labelsTr"), 507),
        ("imagesVa", Some("labelsVa"), 8),
        ("imagesTs", None, 600),
    ] {
        write(
            &src.join(folder).join(format!("amos_{n:04}.nii.gz")),
            &ct(n % 50),
        );
        if let Some(l) = labels_folder {
            write(
                &src.join(l).join(format!("amos_{n:04}.nii.gz")),
                &labels(n, 16),
            );
        }
    }
}

/// FLARE22's layout: labelled cases 1 and 2.
pub fn flare22_tree(flare: &Path) {
    let labelled = flare.join("Training/FLARE22_LabeledCase50");
    for n in 1..=2 {
        write(
            &labelled.join(format!("images/FLARE22_Tr_{n:04}_0000.nii.gz")),
            &ct(n),
        );
        write(
            &labelled.join(format!("labels/FLARE22_Tr_{n:04}.nii.gz")),
            &labels(n, 14),
        );
    }
}

/// KiTS23's layout: cases 0 and 3 in the repository's `dataset/`.
pub fn kits23_tree(kits: &Path) {
    for n in [0, 3] {
        let case = kits.join(format!("dataset/case_{n:05}"));
        write(&case.join("imaging.nii.gz"), &ct(n));
        write(&case.join("segmentation.nii.gz"), &labels(n, 4));
    }
}

/// LiTS' layout: cases 0 and 12 in two batch folders, test volume 5 beside them.
pub fn lits_tree(lits: &Path) {
    write(&lits.join("Training Batch 1/volume-0.nii"), &ct(0));
    write(
        &lits.join("Training Batch 1/segmentation-0.nii"),
        &labels(0, 3),
    );
    write(&lits.join("Training Batch 2/volume-12.nii"), &ct(12));
    write(
        &lits.join("Training Batch 2/segmentation-12.nii"),
        &labels(12, 3),
    );
    write(&lits.join("test-volume-5.nii"), &ct(5));
}

/// An MSD task folder `dir` with one CT channel, three classes and two training cases
/// (MSD v1's dataset.json listing them).
pub fn msd_tree(dir: &Path) {
    for n in 0..2 {
        write(&dir.join(format!("imagesTr/case_{n:03}.nii.gz")), &ct(n));
        write(
            &dir.join(format!("labelsTr/case_{n:03}.nii.gz")),
            &labels(n, 3),
        );
    }
    std::fs::write(
        dir.join("dataset.json"),
        r#"{"name": "MSD", "modality": {"0": "CT"},
            "labels": {"0": "background", "1": "organ", "2": "tumour"}, "numTraining": 2,
            "training": [
              {"image": "./imagesTr/case_000.nii.gz", "label": "./labelsTr/case_000.nii.gz"},
              {"image": "./imagesTr/case_001.nii.gz", "label": "./labelsTr/case_001.nii.gz"}],
            "test": []}"#,
    )
    .unwrap();
}
