//! Running the `medssl` binary from integration tests.

use std::process::{Command, Output};

/// Runs `medssl` with `args`.
pub fn medssl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medssl"))
        .args(args)
        .output()
        .expect("run medssl")
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
