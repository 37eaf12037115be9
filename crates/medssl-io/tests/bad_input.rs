//! Broken and inconsistent inputs give an error that names the file and the problem,
//! never a panic. The broken files are made here from the reference fixtures.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use medssl_io::{IoError, ReadOptions, read_image};
use medssl_test_support::fixtures_dir;

fn nifti(name: &str) -> PathBuf {
    fixtures_dir().join("io/nifti").join(name)
}

fn series_dir() -> PathBuf {
    fixtures_dir().join("io/ct_series_oblique")
}

/// Reads `path` and returns the error text, failing the test if reading succeeded.
fn error_of(path: &Path, series: Option<&str>) -> String {
    let options = ReadOptions {
        series: series.map(str::to_string),
    };
    match read_image(path, &options) {
        Ok(image) => panic!(
            "{} read as {:?} {:?}",
            path.display(),
            image.format,
            image.shape
        ),
        Err(e) => {
            assert_eq!(e.path(), path, "error names the input path");
            e.to_string()
        }
    }
}

fn assert_mentions(err: &str, path: &Path, words: &[&str]) {
    assert!(
        err.contains(&path.display().to_string()),
        "no path in: {err}"
    );
    for w in words {
        assert!(err.contains(w), "expected {w:?} in: {err}");
    }
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn truncated_nifti_header_and_data() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(nifti("anatomical.nii")).unwrap();
    let short_header = write_bytes(tmp.path(), "short_header.nii", &bytes[..200]);
    assert_mentions(
        &error_of(&short_header, None),
        &short_header,
        &["truncated header", "348"],
    );
    let short_data = write_bytes(tmp.path(), "short_data.nii", &bytes[..bytes.len() - 10]);
    assert_mentions(
        &error_of(&short_data, None),
        &short_data,
        &["data shorter than the header says", "[33, 41, 25]"],
    );
}

#[test]
fn huge_claimed_dimensions_are_an_error_not_an_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(nifti("nan_slope.nii")).unwrap();
    for axis in 1..=3 {
        let at = 40 + 2 * axis;
        bytes[at..at + 2].copy_from_slice(&30000i16.to_le_bytes());
    }
    let path = write_bytes(tmp.path(), "huge.nii", &bytes);
    assert_mentions(
        &error_of(&path, None),
        &path,
        &["data shorter than the header says", "[30000, 30000, 30000]"],
    );
}

#[test]
fn wrong_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(nifti("nan_slope.nii")).unwrap();
    bytes[344..348].copy_from_slice(b"xyz\0");
    let path = write_bytes(tmp.path(), "magic.nii", &bytes);
    assert_mentions(&error_of(&path, None), &path, &["wrong magic", "xyz"]);
}

#[test]
fn zero_and_negative_dimensions() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(nifti("nan_slope.nii")).unwrap(); // little-endian NIfTI-1
    for (value, name) in [(0i16, "zero.nii"), (-5i16, "negative.nii")] {
        let mut b = bytes.clone();
        b[44..46].copy_from_slice(&value.to_le_bytes()); // dim[2]
        let path = write_bytes(tmp.path(), name, &b);
        assert_mentions(
            &error_of(&path, None),
            &path,
            &[&format!("dim[2] = {value}"), "at least 1"],
        );
    }
}

#[test]
fn corrupt_and_truncated_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(nifti("example4d.nii.gz")).unwrap();
    let mut flipped = bytes.clone();
    for b in &mut flipped[2000..2400] {
        *b ^= 0x5a;
    }
    let path = write_bytes(tmp.path(), "flipped.nii.gz", &flipped);
    assert_mentions(&error_of(&path, None), &path, &["corrupt gzip stream"]);
    let cut = write_bytes(tmp.path(), "cut.nii.gz", &bytes[..bytes.len() / 2]);
    assert_mentions(&error_of(&cut, None), &cut, &["corrupt gzip stream"]);
}

#[test]
fn unsupported_datatype_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(nifti("nan_slope.nii")).unwrap();
    bytes[70..72].copy_from_slice(&32i16.to_le_bytes()); // datatype = complex64
    let path = write_bytes(tmp.path(), "complex.nii", &bytes);
    assert_mentions(&error_of(&path, None), &path, &["unsupported", "complex64"]);
}

#[test]
fn missing_file_and_not_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.nii.gz");
    let err = read_image(&missing, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, IoError::Os { .. }));
    assert_mentions(&err.to_string(), &missing, &[]);
    let text = write_bytes(tmp.path(), "notes.txt", &[b'a'; 400]);
    assert_mentions(
        &error_of(&text, None),
        &text,
        &["not a NIfTI file", "not a DICOM file"],
    );
}

/// Copies the fixture series into `dir`, letting `edit` change each file's data set
/// (given its sorted position 0..n) or drop it (return false).
fn copy_series(dir: &Path, edit: impl Fn(usize, &mut dicom_object::DefaultDicomObject) -> bool) {
    let mut files: Vec<(f64, PathBuf)> = std::fs::read_dir(series_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .map(|p| {
            let obj = dicom_object::open_file(&p).unwrap();
            let z = obj
                .element(tags::IMAGE_POSITION_PATIENT)
                .unwrap()
                .to_multi_float64()
                .unwrap()[2];
            (z, p)
        })
        .collect();
    files.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (i, (_, path)) in files.iter().enumerate() {
        let mut obj = dicom_object::open_file(path).unwrap();
        if edit(i, &mut obj) {
            obj.write_to_file(dir.join(path.file_name().unwrap()))
                .unwrap();
        }
    }
}

#[test]
fn dicom_folder_without_images() {
    let tmp = tempfile::tempdir().unwrap();
    write_bytes(tmp.path(), "README.txt", b"nothing to see");
    std::fs::copy(
        series_dir().join("README.txt"),
        tmp.path().join("notes.dcm"),
    )
    .unwrap();
    assert_mentions(
        &error_of(tmp.path(), None),
        tmp.path(),
        &["no DICOM images", "2 files", "2 not DICOM"],
    );
}

#[test]
fn two_series_need_a_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    copy_series(&a, |_, _| true);
    copy_series(&b, |_, obj| {
        obj.put(DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4.5.6.7"),
        ));
        true
    });
    let err = error_of(tmp.path(), None);
    assert_mentions(
        &err,
        tmp.path(),
        &["2 series with 40 images", "--series", "1.2.3.4.5.6.7"],
    );
    let image = read_image(
        tmp.path(),
        &ReadOptions {
            series: Some("1.2.3.4.5.6.7".into()),
        },
    )
    .unwrap();
    assert_eq!(image.shape, vec![64, 64, 40]);
    let err = error_of(tmp.path(), Some("9.9.9"));
    assert_mentions(&err, tmp.path(), &["no series 9.9.9", "1.2.3.4.5.6.7"]);
}

#[test]
fn uneven_slice_spacing_names_the_gap() {
    let tmp = tempfile::tempdir().unwrap();
    copy_series(tmp.path(), |i, _| i != 17);
    let err = error_of(tmp.path(), None);
    assert_mentions(
        &err,
        tmp.path(),
        &["uneven slice spacing", "gap of 5.0000 mm", "2.5000 mm"],
    );
}

#[test]
fn missing_pixel_spacing() {
    let tmp = tempfile::tempdir().unwrap();
    copy_series(tmp.path(), |i, obj| {
        if i == 3 {
            obj.remove_element(tags::PIXEL_SPACING);
        }
        true
    });
    let err = read_image(tmp.path(), &ReadOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("missing PixelSpacing"), "{text}");
    assert!(
        err.path().starts_with(tmp.path()),
        "names a file of the series: {text}"
    );
}

#[test]
fn rescale_stored_as_un_is_read_as_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    copy_series(tmp.path(), |_, obj| {
        obj.put(DataElement::new(
            tags::RESCALE_INTERCEPT,
            VR::UN,
            PrimitiveValue::from(b"-1000 ".to_vec()),
        ));
        true
    });
    let written = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let obj = dicom_object::open_file(&written).unwrap();
    assert_eq!(obj.element(tags::RESCALE_INTERCEPT).unwrap().vr(), VR::UN);
    let image = read_image(tmp.path(), &ReadOptions::default()).unwrap();
    assert_eq!(image.scaling.inter, -1000.0);
    // Stored values run from 24 to 1785.
    assert_eq!(image.stats().min, 24.0 - 1000.0);
}
