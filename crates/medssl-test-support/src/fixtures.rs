//! The reference fixtures of the fixture-driven tests: where they are, the raw tensor
//! bytes they hold, and DICOM copies made from them without geometry.

use std::path::{Path, PathBuf};

/// The reference fixture directory: `$MEDSSL_FIXTURES` when set (relative values are
/// taken from the repository root), else the repository's own `testdata/`, written by
/// the scripts in `benches/parity/`, so a clone with nothing beside it tests itself.
///
/// The root is found at run time from the `CARGO_MANIFEST_DIR` cargo sets for the test
/// being run (a crate directory two levels below the root), not baked in at compile
/// time: a build cache shared between checkouts at different paths would otherwise
/// point every test at the checkout that happened to compile this crate.
pub fn fixtures_dir() -> PathBuf {
    let root = repository_root();
    match std::env::var_os("MEDSSL_FIXTURES") {
        Some(dir) => root.join(dir),
        None => root.join("testdata"),
    }
}

/// The repository root: two levels above the crate whose tests are running.
pub(crate) fn repository_root() -> PathBuf {
    test_crate_dir().join("../..")
}

/// The directory of the crate whose tests are running, from the `CARGO_MANIFEST_DIR`
/// cargo sets at run time (see [`fixtures_dir`] for why not at compile time).
pub fn test_crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The little-endian `f32` values of raw tensor bytes (safetensors' byte order).
pub fn le_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

/// The little-endian `f64` values of raw tensor bytes.
pub fn le_f64(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

/// The little-endian `i64` values of raw tensor bytes.
pub fn le_i64(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

/// A JSON list of numbers from a reference file, as f64; panics, showing the value,
/// on anything else.
pub fn json_f64s(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")))
        .collect()
}

/// Copies the DICOM file `src` to `dst` without the attributes `tags`, given as (group,
/// element) pairs, e.g. `(0x0020, 0x0032)` for ImagePositionPatient: a file without
/// geometry made from one with it. Transfer syntax and pixel data are kept.
fn copy_dicom_without(src: &Path, dst: &Path, tags: &[(u16, u16)]) -> Result<(), String> {
    let mut obj = dicom_object::open_file(src).map_err(|e| format!("{}: {e}", src.display()))?;
    for &(group, element) in tags {
        obj.remove_element(dicom_core::Tag(group, element));
    }
    obj.write_to_file(dst)
        .map_err(|e| format!("{}: {e}", dst.display()))
}

/// ImagePositionPatient, ImageOrientationPatient.
const POSITION_AND_ORIENTATION: [(u16, u16); 2] = [(0x0020, 0x0032), (0x0020, 0x0037)];
/// PixelSpacing, SliceThickness, SpacingBetweenSlices.
const SPACINGS: [(u16, u16); 3] = [(0x0028, 0x0030), (0x0018, 0x0050), (0x0018, 0x0088)];

/// The geometry-less copies the tests make of the DICOM file `src`, written into
/// `dir`: `no-position` (position and orientation removed) and `no-geometry` (the
/// spacings too). Each comes with its label, its path and the keys of the pydicom
/// reference entry that no longer hold a value.
pub fn geometry_less_copies(src: &Path, dir: &Path) -> Vec<(String, PathBuf, Vec<&'static str>)> {
    let position = ["image_position_patient", "image_orientation_patient"];
    let spacings = ["pixel_spacing", "slice_thickness", "spacing_between_slices"];
    let name = src.file_name().expect("a file").to_string_lossy();
    let all_tags: Vec<(u16, u16)> = POSITION_AND_ORIENTATION
        .iter()
        .chain(&SPACINGS)
        .copied()
        .collect();
    [
        (
            "no-position",
            &POSITION_AND_ORIENTATION[..],
            position.to_vec(),
        ),
        (
            "no-geometry",
            &all_tags[..],
            position.iter().chain(&spacings).copied().collect(),
        ),
    ]
    .into_iter()
    .map(|(what, tags, removed)| {
        let label = format!("{what}-{name}");
        let path = dir.join(&label);
        copy_dicom_without(src, &path, tags).unwrap_or_else(|e| panic!("{label}: {e}"));
        (label, path, removed)
    })
    .collect()
}
