//! `medssl study` end to end on a miniature study (SimMIM and scratch, one synthetic
//! task, two pretraining steps, two fine-tune epochs, SimMIM's CKA job): it runs, reruns
//! do nothing, a killed run resumed writes the same results.csv as one left alone, a
//! failed pretraining blocks only its fine-tunes and CKA job, `--job` runs exactly one
//! job, and the Slurm scripts chain the arrays.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{medssl, stdout_ok};

const STUDY: &str = r#"name = "mini"
methods = ["scratch", "simmim"]
[pretraining]
data = "ct"
steps = 2
[finetune]
budgets = [2]
set = ["train.epochs=2", "validation.every=1"]
[[tasks]]
name = "abd"
path = "abd"
modality = "CT"
"#;

/// A collection of `volumes` images and a task of 6 cases, 32³, and the study file.
fn setup(dir: &Path, volumes: usize) -> String {
    let d = dir.to_str().unwrap();
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--unlabelled",
        "--cases",
        &volumes.to_string(),
        "--size",
        "32",
        "--out",
        &format!("{d}/ct"),
    ]);
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--cases",
        "6",
        "--size",
        "32",
        "--out",
        &format!("{d}/abd"),
    ]);
    let file = dir.join("study.toml");
    std::fs::write(&file, STUDY).unwrap();
    file.to_str().unwrap().to_string()
}

fn results(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("study/results.csv")).unwrap()
}

#[test]
fn a_killed_study_resumes_to_the_same_results() {
    let straight = tempfile::tempdir().unwrap();
    let file = setup(straight.path(), 4);
    let plan = stdout_ok(&["study", "plan", &file]);
    assert!(
        plan.contains("finetune/abd/simmim.2-shots.seed-0"),
        "{plan}"
    );
    assert!(plan.contains("waiting") && plan.contains("#0"), "{plan}");
    let out = medssl(&["study", "run", &file]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("[4/4] done"), "{log}");
    let expected = results(straight.path());
    assert_eq!(expected.lines().count(), 3, "{expected}");
    assert!(expected.starts_with("job,method,task,modality,budget,seed,train_cases"));
    let status = stdout_ok(&["study", "status", &file]);
    assert!(status.contains("4 jobs: 4 done"), "{status}");
    let cka: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            straight
                .path()
                .join("study/cka/abd/simmim.seed-0/result.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let stages = cka["pretrained_vs_finetuned"]["2-shots"]["stages"]
        .as_array()
        .unwrap();
    assert_eq!(stages.len(), 5, "{cka}");
    for stage in stages {
        let value = stage["minibatch_cka"].as_f64().unwrap();
        assert!(value.is_finite() && value <= 1.0 + 1e-9, "{stage}");
    }
    assert!(cka["few_vs_many"].is_null(), "one budget: {cka}");
    let report = std::fs::read_to_string(straight.path().join("study/report/report.md")).unwrap();
    assert!(
        report.contains("(figures/cka-pretrained-2-shots.png)"),
        "{report}"
    );
    let again = medssl(&["study", "run", &file]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("0 finished now, 4 already done"), "{log}");

    // Killed twice: during the pretraining, then during the first fine-tune.
    let killed = tempfile::tempdir().unwrap();
    let file = setup(killed.path(), 4);
    for wait in [Duration::from_secs(4), Duration::from_secs(20)] {
        let mut child = Command::new(common::bin())
            .args(["study", "run", &file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let status = stdout_ok(&["study", "status", &file]);
        assert!(
            !status.contains("running"),
            "a killed job is not running: {status}"
        );
    }
    let out = medssl(&["study", "run", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(results(killed.path()), expected);
}

#[test]
fn a_failed_pretraining_blocks_only_its_finetunes() {
    let dir = tempfile::tempdir().unwrap();
    // One volume: too few for a batch of two, so the pretraining fails when it starts.
    let file = setup(dir.path(), 1);
    let out = medssl(&["study", "run", &file]);
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("FAILED pretrain/simmim"), "{log}");
    assert!(
        log.contains("skip  finetune/abd/simmim.2-shots.seed-0"),
        "{log}"
    );
    assert!(log.contains("1 finished now"), "{log}");
    let status = stdout_ok(&["study", "status", &file]);
    let failed = status
        .lines()
        .find(|l| l.contains("pretrain/simmim"))
        .unwrap();
    assert!(
        failed.starts_with("failed") && failed.contains("too few"),
        "{status}"
    );
    assert!(
        status.contains("4 jobs: 1 done, 1 failed, 2 waiting"),
        "{status}"
    );
    assert_eq!(results(dir.path()).lines().count(), 2);
}

#[test]
fn slurm_arrays_run_one_job_each() {
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path(), 4);
    stdout_ok(&["study", "slurm", &file, "--partition", "gpu", "--gpus", "2"]);
    let slurm = dir.path().join("study/slurm");
    let read = |name: &str| std::fs::read_to_string(slurm.join(name)).unwrap();
    let pretrain = read("pretrain.sbatch");
    assert!(pretrain.contains("#SBATCH --array=0-0"), "{pretrain}");
    assert!(pretrain.contains("#SBATCH --partition=gpu"), "{pretrain}");
    assert!(pretrain.contains("#SBATCH --gres=gpu:2"), "{pretrain}");
    assert!(pretrain.contains("'pretrain/simmim'"), "{pretrain}");
    let finetune = read("finetune.sbatch");
    assert!(finetune.contains("#SBATCH --array=0-1"), "{finetune}");
    assert!(
        finetune.contains("'finetune/abd/scratch.2-shots.seed-0'")
            && finetune.contains("'finetune/abd/simmim.2-shots.seed-0'"),
        "{finetune}"
    );
    assert!(
        finetune.contains("study run")
            && finetune.contains("--job \"${jobs[$SLURM_ARRAY_TASK_ID]}\""),
        "{finetune}"
    );
    let submit = read("submit.sh");
    assert!(
        submit.contains("--dependency=afterok:$pretrain finetune.sbatch"),
        "{submit}"
    );
    let cka = read("cka.sbatch");
    assert!(
        cka.contains("#SBATCH --array=0-0") && cka.contains("'cka/abd/simmim.seed-0'"),
        "{cka}"
    );
    assert!(
        submit.contains("--dependency=afterany:$finetune cka.sbatch")
            && submit.contains("--dependency=afterany:$cka report.sbatch"),
        "{submit}"
    );
    assert!(read("report.sbatch").contains("study report"));

    // What an array task runs: exactly the one job it names.
    let out = medssl(&[
        "study",
        "run",
        &file,
        "--job",
        "finetune/abd/scratch.2-shots.seed-0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = stdout_ok(&["study", "status", &file]);
    assert!(
        status.contains("4 jobs: 1 done, 1 ready, 2 waiting"),
        "{status}"
    );
    let out = medssl(&["study", "run", &file, "--job", "finetune/abd/nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job `finetune/abd/nope`"));
}
