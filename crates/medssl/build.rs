//! Stamps the version line `medssl --version` prints with the commit and the compiled
//! features, so a run record or a bug report says exactly which build produced it.
//!
//! The commit comes from `MEDSSL_COMMIT` when set (builds from a source archive), else
//! from `git rev-parse` in the checkout, else it is `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MEDSSL_COMMIT");
    let commit = std::env::var("MEDSSL_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(key, _)| key.strip_prefix("CARGO_FEATURE_").map(str::to_lowercase))
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "cpu".to_string()
    } else {
        format!("cpu, {}", features.join(", "))
    };
    println!("cargo:rustc-env=MEDSSL_COMMIT={commit}");
    println!(
        "cargo:rustc-env=MEDSSL_VERSION_LINE={} (commit {commit}; devices: {features})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
}

/// The short hash of the checked-out commit; `None` outside a git checkout or without
/// git. Rebuilds when the commit changes (HEAD or the branch it points to). Uncommitted
/// edits are not flagged: the build script does not rerun on every source edit, so such
/// a flag would go stale.
fn git_commit() -> Option<String> {
    let git_dir = run_git(&["rev-parse", "--absolute-git-dir"])?;
    let git_dir = Path::new(&git_dir);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Some(branch) = run_git(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed={}", git_dir.join(branch).display());
        println!(
            "cargo:rerun-if-changed={}",
            git_dir.join("packed-refs").display()
        );
    }
    run_git(&["rev-parse", "--short=12", "HEAD"])
}

/// A git command's trimmed standard output, if it ran and succeeded.
fn run_git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
