//! Running the `medssl` binary from integration tests.

use std::process::{Command, Output};

/// The `medssl` binary under test: `$MEDSSL_BIN` when set (e.g. a release build for
/// the long fault-injection runs), else the one Cargo built with the tests.
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("MEDSSL_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_medssl").into())
}

/// Runs `medssl` with `args`.
pub fn medssl(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run medssl")
}

/// Runs `medssl` with `args`, fails the test unless it succeeds, returns its stdout.
pub fn stdout_ok(args: &[&str]) -> String {
    let out = medssl(args);
    assert!(
        out.status.success(),
        "medssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
