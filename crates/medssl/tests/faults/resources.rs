//! A full disk (a file-size limit: writes past it fail as on a full disk), a read-only
//! run directory and an input file removed from an interrupted run: a clear error
//! naming the file, the last checkpoint intact, and the run resumable once the fault is
//! gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::run_files::{Checkpointed, assert_failed_keeping_checkpoint, data, temporaries};

/// Runs `medssl args` with files limited to `max_bytes` (SIGXFSZ ignored, so a write
/// past the limit fails with EFBIG instead of killing the process).
fn medssl_with_file_limit(max_bytes: u64, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(r#"trap "" XFSZ; exec prlimit --fsize="$0" -- "$@""#)
        .arg(max_bytes.to_string())
        .arg(crate::common::bin())
        .args(args)
        .output()
        .expect("sh and prlimit")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn resume(run: &Path) -> Output {
    crate::common::medssl(&["finetune", "--resume", run.to_str().unwrap(), "--quiet"])
}

/// Resumes `run` to its end and checks it finished.
fn resume_to_the_end(run: &Path) {
    let out = resume(run);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run.join("result.json").is_file());
    assert!(temporaries(run).is_empty(), "{:?}", temporaries(run));
}

#[test]
fn a_full_disk_during_a_checkpoint_write_keeps_the_last_checkpoint() {
    let Checkpointed {
        run,
        state,
        dir: _dir,
    } = Checkpointed::new(3);
    // Weights of this network take megabytes; everything else of the run, kilobytes.
    let out = medssl_with_file_limit(
        1 << 20,
        &["finetune", "--resume", run.to_str().unwrap(), "--quiet"],
    );
    assert_failed_keeping_checkpoint(&out, &run, &state, &[".safetensors", "File too large"]);
    resume_to_the_end(&run);
}

#[test]
fn a_full_disk_while_caching_a_case_names_the_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let run = dir.path().join("run");
    let task = dir.path().join("abd");
    let args = [
        "finetune",
        "--task",
        task.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--shots",
        "2",
        "--set",
        "train.epochs=1",
        "--set",
        "model.roi=[32, 32, 32]",
        "--quiet",
    ];
    // A preprocessed 32³ case (image and label as f32) takes 256 KiB.
    let out = medssl_with_file_limit(100_000, &args);
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains(".medssl-cache") && log.contains("File too large"),
        "{log}"
    );
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
    assert!(!run.join("checkpoint/state.json").exists());
    resume_to_the_end(&run);
}

/// Makes a directory read-only for this process until dropped: by its mode, or, for
/// root (whom modes do not stop), with the immutable attribute.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        let guard = ReadOnly(dir.to_path_buf());
        let mode = |m| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(m)).unwrap();
        };
        mode(0o555);
        if is_writable(dir) {
            mode(0o755);
            let ok = Command::new("chattr").arg("+i").arg(dir).status();
            assert!(
                ok.is_ok_and(|s| s.success()) && !is_writable(dir),
                "cannot make {} read-only here (root without chattr +i)",
                dir.display()
            );
        }
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

fn is_writable(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    writable
}

#[test]
fn a_read_only_run_directory_is_an_error_naming_it() {
    let Checkpointed {
        run,
        state,
        dir: _dir,
    } = Checkpointed::new(2);
    {
        let _root = ReadOnly::new(&run);
        let _checkpoint = ReadOnly::new(&run.join("checkpoint"));
        let out = resume(&run);
        let log = assert_failed_keeping_checkpoint(&out, &run, &state, &[run.to_str().unwrap()]);
        assert!(
            log.contains("Permission denied") || log.contains("Operation not permitted"),
            "{log}"
        );
    }
    resume_to_the_end(&run);
}

#[test]
fn an_input_removed_before_a_resume_is_an_error_naming_it() {
    let Checkpointed { dir, run, state } = Checkpointed::new(3);
    let split: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("split.json")).unwrap()).unwrap();
    let case = split["train"][0].as_str().unwrap().to_string();
    let image = dir.path().join(format!("abd/imagesTr/{case}.nii.gz"));
    let kept = dir.path().join("kept.nii.gz");
    std::fs::rename(&image, &kept).unwrap();
    let out = resume(&run);
    assert_failed_keeping_checkpoint(&out, &run, &state, &[image.to_str().unwrap()]);
    std::fs::rename(&kept, &image).unwrap();
    resume_to_the_end(&run);
}
