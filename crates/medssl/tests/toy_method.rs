//! Adding a method is one file plus one registry line: on a copy of this workspace, a
//! tenth method (`toy`, RotNet under another name) is written into
//! `crates/medssl-ssl/src/methods/toy.rs` and registered with one line; the copy's
//! `medssl` then lists it, shows its settings and pretrains with it for one step.
//!
//! It builds the workspace's own crates a second time (minutes), so it is left out of
//! the default run: `cargo test -p medssl --test toy_method -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (two levels above this crate).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Cargo target directory this test was built in (`TARGET/debug/deps/toy_method-*`),
/// so the copy reuses the compiled dependencies.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Runs `command`, fails the test unless it succeeds, returns its stdout.
fn ok(command: &mut Command) -> String {
    let out = command.output().expect("start command");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Copies the files git would commit (tracked and new, not ignored) into `to`.
fn copy_workspace(to: &Path) {
    let files = ok(Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .current_dir(workspace()));
    for file in files.lines() {
        let from = workspace().join(file);
        if !from.is_file() {
            continue; // deleted in the work tree, not yet in the index
        }
        let dest = to.join(file);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&from, &dest).unwrap();
    }
}

#[test]
#[ignore = "builds the workspace a second time; run with --ignored"]
fn a_tenth_method_is_one_file_plus_one_line() {
    let copy = std::env::temp_dir().join("medssl-toy-method");
    let _ = std::fs::remove_dir_all(&copy);
    copy_workspace(&copy);

    // The file: RotNet's, under the name `toy`.
    let methods = copy.join("crates/medssl-ssl/src/methods");
    let rotnet = std::fs::read_to_string(methods.join("rotnet.rs")).unwrap();
    let toy = rotnet
        .replace("RotNet", "Toy")
        .replace("name: \"rotnet\"", "name: \"toy\"");
    assert_ne!(toy, rotnet);
    std::fs::write(methods.join("toy.rs"), toy).unwrap();
    // The line.
    let registry_path = methods.join("mod.rs");
    let registry = std::fs::read_to_string(&registry_path).unwrap();
    let anchor = "    ibot::IbotMethod,\n";
    assert!(registry.contains(anchor), "the registry list moved");
    let registered = registry.replace(anchor, &format!("{anchor}    toy::ToyMethod,\n"));
    let changed: Vec<_> = registered
        .lines()
        .filter(|line| !registry.lines().any(|old| old == *line))
        .collect();
    assert_eq!(changed, ["    toy::ToyMethod,"]);
    std::fs::write(&registry_path, registered).unwrap();

    // Test scaffolding, not part of adding a method: the copy's binary gets its own
    // name, so that building it in the shared target directory leaves this workspace's
    // `medssl` (which other tests run) in place.
    let manifest_path = copy.join("crates/medssl/Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let bin_section = "[[bin]]\nname = \"medssl\"";
    assert!(manifest.contains(bin_section), "the [[bin]] section moved");
    let manifest = manifest.replace(bin_section, "[[bin]]\nname = \"medssl-with-toy\"");
    std::fs::write(&manifest_path, manifest).unwrap();
    ok(Command::new(env!("CARGO"))
        .args(["build", "-p", "medssl"])
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(&copy));
    let bin = target_dir().join("debug/medssl-with-toy");

    let listing = ok(Command::new(&bin).arg("methods"));
    let line = listing
        .lines()
        .find(|l| l.starts_with("toy "))
        .unwrap_or_else(|| panic!("toy not listed:\n{listing}"));
    assert!(line.contains("rotation"), "{line}");
    let shown = ok(Command::new(&bin).args(["config", "show", "--method", "toy"]));
    assert!(shown.contains("method = \"toy\""), "{shown}");

    let data = copy.join("data");
    ok(Command::new(&bin)
        .args(["synth", "--kind", "abdomen-ct", "--unlabelled"])
        .args(["--cases", "2", "--size", "40", "--seed", "1", "--out"])
        .arg(&data));
    let run = copy.join("run");
    ok(Command::new(&bin)
        .args([
            "pretrain", "--method", "toy", "--steps", "1", "--quiet", "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&run));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let step: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(step["iteration"], 1);
    assert!(
        step["loss"]
            .as_f64()
            .is_some_and(|l| l.is_finite() && l > 0.0),
        "{step}"
    );
    assert!(run.join("encoder.safetensors").is_file());
    std::fs::remove_dir_all(&copy).unwrap();
}
