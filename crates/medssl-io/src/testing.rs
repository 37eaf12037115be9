//! Helpers shared by the fixture-driven tests of every crate in the workspace.

use std::path::{Path, PathBuf};

/// The reference fixture directory: `$MEDSSL_FIXTURES`, else `../shared/fixtures`
/// beside the repository root (relative values are taken from the repository root).
///
/// The root is found at run time from the `CARGO_MANIFEST_DIR` cargo sets for the test
/// being run (a crate directory two levels below the root), not baked in at compile
/// time: a build cache shared between checkouts at different paths would otherwise
/// point every test at the checkout that happened to compile this crate.
pub fn fixtures_dir() -> PathBuf {
    let root = test_crate_dir().join("../..");
    match std::env::var_os("MEDSSL_FIXTURES") {
        Some(dir) => root.join(dir),
        None => root.join("../shared/fixtures"),
    }
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

/// Copies the DICOM file `src` to `dst` without the attributes `tags`, given as (group,
/// element) pairs, e.g. `(0x0020, 0x0032)` for ImagePositionPatient: a file without
/// geometry made from one with it. Transfer syntax and pixel data are kept.
pub fn copy_dicom_without(src: &Path, dst: &Path, tags: &[(u16, u16)]) -> Result<(), String> {
    let mut obj = dicom_object::open_file(src).map_err(|e| format!("{}: {e}", src.display()))?;
    for &(group, element) in tags {
        obj.remove_element(dicom_core::Tag(group, element));
    }
    obj.write_to_file(dst)
        .map_err(|e| format!("{}: {e}", dst.display()))
}
