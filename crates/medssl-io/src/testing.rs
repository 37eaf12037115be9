//! Helpers shared by the fixture-driven tests of every crate in the workspace.

use std::path::PathBuf;

/// The reference fixture directory: `$MEDSSL_FIXTURES`, else `../shared/fixtures`
/// beside the repository root (relative values are taken from the repository root).
pub fn fixtures_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("MEDSSL_FIXTURES") {
        Some(dir) => root.join(dir),
        None => root.join("../shared/fixtures"),
    }
}
