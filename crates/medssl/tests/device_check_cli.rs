//! `--device wgpu` from the command line: a device that fails the numerical check
//! (`medssl_model::device_check`) is refused before any run directory is written, with
//! the operations it got wrong; a device that passes it trains.
//!
//! Built with the `wgpu` feature only; `.ci/run` runs it on Mesa's lavapipe with
//! `MEDSSL_REQUIRE_WGPU`, where no adapter is a failure rather than a skip.
#![cfg(feature = "wgpu")]

mod common;

use common::{medssl, stdout_ok};
use medssl_model::device_check::DeviceCheck;
use medssl_test_support::wgpu_device;

#[test]
fn a_device_is_refused_exactly_when_it_fails_the_check() {
    let Some(device) = wgpu_device() else { return };
    let check = DeviceCheck::run(&device);
    eprintln!("wgpu device check: {check:?}");
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("task");
    let task_arg = task.to_str().unwrap();
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--cases",
        "4",
        "--test-cases",
        "0",
        "--size",
        "32",
        "--seed",
        "5",
        "--out",
        task_arg,
    ]);
    let run = tmp.path().join("run");
    let out = medssl(&[
        "finetune",
        "--task",
        task_arg,
        "--out",
        run.to_str().unwrap(),
        "--device",
        "wgpu",
        "--quiet",
        "--set",
        "model.roi=[32, 32, 32]",
        "--set",
        "train.epochs=1",
        "--set",
        "train.warmup_epochs=0",
        "--set",
        "validation.every=1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("medssl finetune --device wgpu: {stderr}");
    match check.failure() {
        Some(failure) => {
            assert!(!out.status.success(), "a failing device trained: {stderr}");
            assert!(
                stderr.contains("--device wgpu (") && stderr.contains("computes wrong values"),
                "{stderr}"
            );
            // The message names each wrong operation (sizes to the rounding of the check
            // repeated in another process).
            for part in failure.split("; ") {
                let what = part.split(" is ").next().unwrap();
                assert!(stderr.contains(what), "{what} not in: {stderr}");
            }
            assert!(!run.exists(), "the refused run wrote {}", run.display());
        }
        None => {
            assert!(
                out.status.success(),
                "a device that passes failed: {stderr}"
            );
            assert!(run.join("metrics.jsonl").exists());
        }
    }
}
