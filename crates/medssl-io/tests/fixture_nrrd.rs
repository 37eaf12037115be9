//! Every case of `$MEDSSL_FIXTURES/io/nrrd/expected.json` (pynrrd reference values,
//! cross-checked with SimpleITK) must be reproduced: shape in medssl's order, stored
//! type, RAS affine, value statistics, probes and the sha256 of all values; broken NRRD
//! files give an error naming the file and the problem.

use std::path::{Path, PathBuf};

use medssl_io::{Format, Image, IoError, ReadOptions, nalgebra, read_image, read_volume};
use medssl_test_support::fixtures_dir;
use serde_json::Value;

mod common;
use common::{assert_close, check_values, num, nums, read_json, usizes, value_at};

/// The NRRD cases of the fixture directory; a directory without them (a reference set
/// made before NRRD was read) falls back to the repository's own, so the cases are
/// always checked.
fn nrrd_dir() -> PathBuf {
    let dir = fixtures_dir().join("io/nrrd");
    if dir.join("expected.json").is_file() {
        return dir;
    }
    medssl_test_support::test_crate_dir().join("../../testdata/io/nrrd")
}

fn expected() -> Value {
    read_json(&nrrd_dir().join("expected.json"))
}

fn assert_affine(case: &str, got: &medssl_io::Affine, want: &Value) {
    let rows = want.as_array().expect("4 rows");
    assert_eq!(rows.len(), 4, "{case}: affine rows");
    for (r, row) in rows.iter().enumerate() {
        for (c, w) in nums(row).into_iter().enumerate() {
            assert_close(case, &format!("affine[{r}][{c}]"), got[(r, c)], w, 1e-6);
        }
    }
}

/// The value at a multi-index in `shape` order (first index fastest).
fn probe(image: &Image, index: &[usize]) -> f64 {
    let mut linear = 0;
    for a in (0..index.len()).rev() {
        linear = linear * image.shape[a] + index[a];
    }
    value_at(image, linear)
}

#[test]
fn fixture_nrrd_files_match_pynrrd() {
    let expected = expected();
    let cases = expected["cases"].as_array().expect("cases list");
    assert!(!cases.is_empty());
    for e in cases {
        let case = e["file"].as_str().unwrap();
        let path = nrrd_dir().join(case);
        let image = read_image(&path, &ReadOptions::default())
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        assert_eq!(image.format, Format::Nrrd, "{case}");
        assert_eq!(image.format.name(), "nrrd");
        assert_eq!(image.shape, usizes(&e["shape"]), "{case}: shape");
        assert_eq!(
            image.stored_type.name(),
            e["on_disk_dtype_name"].as_str().unwrap(),
            "{case}: stored type"
        );
        assert!(image.scaling.is_identity(), "{case}: NRRD has no scaling");
        let affine = image.affine.unwrap_or_else(|| panic!("{case}: no affine"));
        assert_affine(case, &affine, &e["affine"]);
        assert!(
            image
                .details
                .iter()
                .any(|(k, v)| k == "geometry from" && v == e["affine_source"].as_str().unwrap()),
            "{case}: details {:?}",
            image.details
        );

        let values = &e["values_f64"];
        check_values(case, &image, values, "sha256_f64le_first_index_fastest");
        assert_eq!(
            image.stats().non_finite,
            values["non_finite"].as_u64().unwrap() as usize,
            "{case}: non-finite count"
        );

        let volume = image
            .to_volume()
            .unwrap_or_else(|err| panic!("{case}: {err}"));
        let channels: usize = image.shape.iter().skip(3).product();
        assert_eq!(
            volume.data().shape()[0],
            channels.max(1),
            "{case}: channels"
        );
        for p in values["probes"].as_array().unwrap() {
            let index = usizes(&p["index"]);
            let want = num(&p["value"]);
            assert_close(case, "probe", probe(&image, &index), want, 1e-12);
            let c = index.get(3).copied().unwrap_or(0);
            let got = volume.data()[[c, index[0], index[1], index[2]]];
            assert_eq!(got, want as f32, "{case}: volume voxel {index:?}");
            let world = affine
                * nalgebra::Vector4::new(index[0] as f64, index[1] as f64, index[2] as f64, 1.0);
            for (a, w) in nums(&p["world_mm_from_affine"]).into_iter().enumerate() {
                assert_close(case, "probe world mm", world[a], w, 1e-6);
            }
        }

        // The reference itself agrees with SimpleITK wherever it was available.
        let sitk = &e["simpleitk"];
        if sitk["available"].as_bool() == Some(true) {
            assert_eq!(
                sitk["values_equal"].as_bool(),
                Some(true),
                "{case}: SimpleITK"
            );
            assert!(
                num(&sitk["affine_max_abs_diff"]) <= 1e-6,
                "{case}: SimpleITK affine"
            );
        }
    }
}

#[test]
fn read_volume_of_an_nrrd_file_has_the_ras_affine() {
    let expected = expected();
    let e = expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == "lps_oblique_int16.nrrd")
        .expect("the LPS oblique case");
    let volume = read_volume(
        &nrrd_dir().join("lps_oblique_int16.nrrd"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_affine("read_volume", volume.affine(), &e["affine"]);
    assert_eq!(volume.data().shape(), &[1, 20, 16, 12]);
}

// ---------------------------------------------------------------------------------------
// Broken and unsupported files.

/// Reads `path` and returns the error, failing the test if reading succeeded.
fn error_of(path: &Path) -> IoError {
    match read_image(path, &ReadOptions::default()) {
        Ok(image) => panic!("{} read as {:?}", path.display(), image.shape),
        Err(e) => {
            assert_eq!(e.path(), path, "the error names the input path");
            e
        }
    }
}

fn assert_mentions(err: &IoError, path: &Path, words: &[&str]) {
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "error does not name the file: {text}"
    );
    for w in words {
        assert!(text.contains(w), "error lacks {w:?}: {text}");
    }
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(nrrd_dir().join(name)).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The header text of a fixture file (up to and including the blank line) and its data.
fn split(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    (
        String::from_utf8(bytes[..end].to_vec()).unwrap(),
        bytes[end..].to_vec(),
    )
}

#[test]
fn truncated_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture_bytes("lps_oblique_int16.nrrd");
    let path = write(dir.path(), "short.nrrd", &bytes[..bytes.len() - 100]);
    let err = error_of(&path);
    assert!(matches!(err, IoError::Invalid { .. }), "{err}");
    assert_mentions(
        &err,
        &path,
        &["data shorter than the header says", "7680 bytes"],
    );

    let gz = fixture_bytes("ras_gzip_float32.nrrd");
    let path = write(dir.path(), "short_gz.nrrd", &gz[..gz.len() - 200]);
    let err = error_of(&path);
    assert!(matches!(err, IoError::Invalid { .. }), "{err}");
    assert_mentions(&err, &path, &["gzip"]);
}

#[test]
fn corrupt_gzip_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (header, mut data) = split(&fixture_bytes("ras_gzip_float32.nrrd"));
    let mid = data.len() / 2;
    for b in &mut data[20..mid] {
        *b ^= 0x5a;
    }
    let path = write(
        dir.path(),
        "bad_gz.nrrd",
        &[header.as_bytes(), &data].concat(),
    );
    let err = error_of(&path);
    assert!(matches!(err, IoError::Invalid { .. }), "{err}");
    assert_mentions(&err, &path, &["gzip"]);
}

#[test]
fn bad_magic_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = fixture_bytes("lps_oblique_int16.nrrd");
    bytes[7] = b'9';
    let path = write(dir.path(), "version9.nrrd", &bytes);
    let err = error_of(&path);
    assert!(matches!(err, IoError::Unsupported { .. }), "{err}");
    assert_mentions(&err, &path, &["NRRD0009"]);

    bytes[..4].copy_from_slice(b"NRRX");
    let path = write(dir.path(), "not_nrrd.nrrd", &bytes);
    let err = error_of(&path);
    assert_mentions(&err, &path, &["not a NIfTI file", "NRRD000N"]);
}

#[test]
fn unknown_and_unsupported_encodings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (header, data) = split(&fixture_bytes("lps_oblique_int16.nrrd"));
    for (encoding, unsupported) in [("zstd", false), ("bzip2", true), ("hex", true)] {
        let text = header.replace("encoding: raw", &format!("encoding: {encoding}"));
        let path = write(
            dir.path(),
            &format!("{encoding}.nrrd"),
            &[text.as_bytes(), &data].concat(),
        );
        let err = error_of(&path);
        assert_eq!(
            matches!(err, IoError::Unsupported { .. }),
            unsupported,
            "{encoding}: {err}"
        );
        assert_mentions(&err, &path, &["encoding", encoding]);
    }
}

#[test]
fn missing_detached_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let header = fixture_bytes("detached.nhdr");
    let path = write(dir.path(), "alone.nhdr", &header);
    let err = error_of(&path);
    assert!(matches!(err, IoError::Invalid { .. }), "{err}");
    assert_mentions(&err, &path, &["detached data file", "detached.raw"]);

    let text = String::from_utf8(header)
        .unwrap()
        .replace("data file: detached.raw", "data file: LIST");
    let path = write(dir.path(), "list.nhdr", format!("{text}a.raw\n").as_bytes());
    let err = error_of(&path);
    assert!(matches!(err, IoError::Unsupported { .. }), "{err}");
    assert_mentions(&err, &path, &["LIST"]);
}

#[test]
fn sizes_mismatches_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (header, data) = split(&fixture_bytes("lps_oblique_int16.nrrd"));
    // One size too few for the dimension.
    let text = header.replace("sizes: 20 16 12", "sizes: 20 16");
    let path = write(
        dir.path(),
        "two_sizes.nrrd",
        &[text.as_bytes(), &data].concat(),
    );
    let err = error_of(&path);
    assert_mentions(&err, &path, &["`sizes` lists 2 values for dimension 3"]);
    // Sizes larger than the data.
    let text = header.replace("sizes: 20 16 12", "sizes: 20 16 13");
    let path = write(
        dir.path(),
        "big_sizes.nrrd",
        &[text.as_bytes(), &data].concat(),
    );
    let err = error_of(&path);
    assert_mentions(
        &err,
        &path,
        &["data shorter than the header says", "[20, 16, 13]"],
    );
    // A direction list that does not match the dimension.
    let text = header.replace(" (0,0,2.5)", "");
    let path = write(
        dir.path(),
        "two_dirs.nrrd",
        &[text.as_bytes(), &data].concat(),
    );
    let err = error_of(&path);
    assert_mentions(&err, &path, &["`space directions` lists 2 entries"]);
}

#[test]
fn unknown_spaces_and_types_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (header, data) = split(&fixture_bytes("lps_oblique_int16.nrrd"));
    let text = header.replace("space: left-posterior-superior", "space: 3D-right-handed");
    let path = write(dir.path(), "rh.nrrd", &[text.as_bytes(), &data].concat());
    let err = error_of(&path);
    assert!(matches!(err, IoError::Unsupported { .. }), "{err}");
    assert_mentions(&err, &path, &["3D-right-handed"]);
    let text = header.replace("space: left-posterior-superior", "space: upside-down");
    let path = write(dir.path(), "ud.nrrd", &[text.as_bytes(), &data].concat());
    assert_mentions(
        &error_of(&path),
        &path,
        &["unknown NRRD `space: upside-down`"],
    );
    let text = header.replace("type: short", "type: block");
    let path = write(dir.path(), "block.nrrd", &[text.as_bytes(), &data].concat());
    let err = error_of(&path);
    assert!(matches!(err, IoError::Unsupported { .. }), "{err}");
    assert_mentions(&err, &path, &["block"]);
}

#[test]
fn no_geometry_gives_an_assumed_one() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture_bytes("spacings_ascii.nrrd");
    let text = String::from_utf8(bytes)
        .unwrap()
        .replace("spacings: 0.9 1.1 2.5\n", "");
    let path = write(dir.path(), "bare.nrrd", text.as_bytes());
    let image = read_image(&path, &ReadOptions::default()).unwrap();
    assert!(image.affine.is_none());
    let assumed = image.assumed_geometry.as_ref().unwrap();
    assert_eq!(
        assumed.affine,
        nalgebra::Matrix4::from_diagonal(&nalgebra::Vector4::new(-1.0, -1.0, 1.0, 1.0))
    );
    let err = image.to_volume().unwrap_err();
    assert_mentions(&err, &path, &["no geometry"]);
    assert!(image.to_volume_or_assumed().is_ok());
}
