//! `medssl study` end to end on a miniature study (SimMIM and scratch, one synthetic
//! task, two pretraining steps, two fine-tune epochs, SimMIM's CKA job): it runs, reruns
//! do nothing, a killed run resumed writes the same results.csv as one left alone, a
//! failed pretraining blocks only its fine-tunes and CKA job, `--job` runs exactly one
//! job and writes nothing else, and the Slurm scripts, run by a fake Slurm
//! (`fake_slurm.sh`), block only the failed method's rows and end with the same
//! results.csv as `study run`.

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

/// A collection of `volumes` images (`DIR/ct`) and a task of 6 cases (`DIR/abd`), 32³.
fn data(dir: &Path, volumes: usize) {
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
}

/// [`data`] and the study file.
fn setup(dir: &Path, volumes: usize) -> String {
    data(dir, volumes);
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
    if !cfg!(feature = "cuda") {
        // The default `--device cuda` needs a binary built with the cuda feature: refused
        // when the scripts are written, not in every array task.
        let out = medssl(&["study", "slurm", &file]);
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            error.contains("built without the `cuda` feature")
                && error.contains("cargo build --release -p medssl --features cuda"),
            "{error}"
        );
        assert!(!dir.path().join("study/slurm").exists());
    }
    let out = medssl(&["study", "slurm", &file, "--device", "gpu"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device gpu"));
    stdout_ok(&[
        "study",
        "slurm",
        &file,
        "--partition",
        "gpu",
        "--gpus",
        "2",
        "--device",
        "cpu",
    ]);
    let slurm = dir.path().join("study/slurm");
    let read = |name: &str| std::fs::read_to_string(slurm.join(name)).unwrap();
    let pretrain = read("pretrain.sbatch");
    assert!(pretrain.contains("#SBATCH --array=0-0"), "{pretrain}");
    assert!(pretrain.contains("#SBATCH --partition=gpu"), "{pretrain}");
    assert!(pretrain.contains("#SBATCH --gres=gpu:2"), "{pretrain}");
    assert!(pretrain.contains("'pretrain/simmim'"), "{pretrain}");
    // One script per stage, its jobs grouped by row; submit.sh gives each row's range
    // its own array and dependency.
    let finetune = read("finetune.sbatch");
    assert!(!finetune.contains("#SBATCH --array"), "{finetune}");
    assert!(
        finetune.contains("#SBATCH --kill-on-invalid-dep=yes")
            && finetune.contains("#   --array=0-0     scratch\n")
            && finetune.contains("#   --array=1-1     simmim (after pretrain.sbatch task 0)\n"),
        "{finetune}"
    );
    assert!(
        finetune.contains(
            "  'finetune/abd/scratch.2-shots.seed-0'\n  'finetune/abd/simmim.2-shots.seed-0'\n"
        ),
        "{finetune}"
    );
    assert!(
        finetune.contains("study run") && finetune.contains("--job \"${jobs[task]}\""),
        "{finetune}"
    );
    let cka = read("cka.sbatch");
    assert!(cka.contains("'cka/abd/simmim.seed-0'"), "{cka}");
    let submit = read("submit.sh");
    for line in [
        "pretrain=$(submit pretrain.sbatch)\n",
        "finetune_scratch=$(submit --array=0-0 finetune.sbatch)\n",
        "finetune_simmim=$(submit --array=1-1 --dependency=\"afterok:${pretrain}_0\" finetune.sbatch)\n",
        "cka_simmim=$(submit --array=0-0 --dependency=\"afterok:${pretrain}_0,afterany:${finetune_simmim}\" cka.sbatch)\n",
        "report=$(submit --dependency=\"afterany:${pretrain}:${finetune_scratch}:${finetune_simmim}:${cka_simmim}\" report.sbatch)\n",
    ] {
        assert!(submit.contains(line), "{line} in {submit}");
    }
    assert!(read("report.sbatch").contains("study report"));

    // What an array task runs: exactly the one job it names, and nothing else: no
    // results.csv, no report (the report job writes them).
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
    let study = dir.path().join("study");
    assert!(!study.join("results.csv").exists());
    assert!(!study.join("report").exists());
    let status = stdout_ok(&["study", "status", &file]);
    assert!(
        status.contains("4 jobs: 1 done, 1 ready, 2 waiting"),
        "{status}"
    );
    let out = medssl(&["study", "run", &file, "--job", "finetune/abd/nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job `finetune/abd/nope`"));
}

/// The study of the fake-Slurm test: three rows, one pretraining step, one epoch; the
/// RotNet pretraining asks for batches of 8 from a collection of 4 volumes, so it fails
/// when it starts (a setting only a run can find wrong, like a real mistake).
const CLUSTER_STUDY: &str = r#"name = "mini"
out = "OUT"
methods = ["scratch", "simmim", "rotnet"]
[pretraining]
data = "ct"
steps = 1
[pretraining.method_set]
rotnet = ["data.loader.batch_size=8"]
[finetune]
budgets = [2]
set = ["train.epochs=1", "validation.every=1"]
[[tasks]]
name = "abd"
path = "abd"
modality = "CT"
"#;

/// The fake Slurm (`sbatch`, `squeue`, `fake-slurm-run`; see the script's header).
const FAKE_SLURM: &str = include_str!("fake_slurm.sh");

/// `medssl study slurm`'s scripts, submitted by their own submit.sh to a fake Slurm
/// that runs each task as its own process in dependency order: the RotNet pretraining
/// fails and blocks (cancels) only RotNet's fine-tune and CKA arrays; everything else
/// runs, the report job runs last, and its results.csv equals `study run`'s.
#[test]
fn slurm_scripts_run_under_a_fake_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path(), 4);
    let study_file = |out: &str| {
        let file = dir.path().join(format!("{out}.toml"));
        std::fs::write(&file, CLUSTER_STUDY.replace("OUT", out)).unwrap();
        file.to_str().unwrap().to_string()
    };
    let (local, cluster) = (study_file("local"), study_file("cluster"));

    // The same study in one process.
    let out = medssl(&["study", "run", &local]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("FAILED pretrain/rotnet") && log.contains("4 finished now"),
        "{log}"
    );
    let expected = std::fs::read_to_string(dir.path().join("local/results.csv")).unwrap();
    assert_eq!(expected.lines().count(), 3, "{expected}");

    // The scripts, checked as shell.
    stdout_ok(&["study", "slurm", &cluster, "--device", "cpu", "--gpus", "0"]);
    let slurm = dir.path().join("cluster/slurm");
    let mut scripts: Vec<_> = std::fs::read_dir(&slurm)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    scripts.sort();
    let names: Vec<_> = scripts
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "cka.sbatch",
            "finetune.sbatch",
            "pretrain.sbatch",
            "report.sbatch",
            "submit.sh"
        ]
    );
    let shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
    if !shellcheck {
        eprintln!("shellcheck is not on PATH: the scripts are checked with bash -n only");
    }
    for script in &scripts {
        let out = Command::new("bash").arg("-n").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        if shellcheck {
            let out = Command::new("shellcheck").arg(script).output().unwrap();
            assert!(
                out.status.success(),
                "shellcheck {}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    // The fake Slurm, first on PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["sbatch", "squeue", "fake-slurm-run"] {
        let path = bin.join(name);
        std::fs::write(&path, FAKE_SLURM).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let state = dir.path().join("slurm-state");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let fake = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .env("PATH", &path)
            .env("FAKE_SLURM_STATE", &state)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let submit = slurm.join("submit.sh");
    let (ok, stdout, stderr) = fake("bash", &[submit.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "submitted: pretrain 100, finetune 101 102 103, cka 104 105, report 106\n"
    );
    let (ok, queue, _) = fake("squeue", &[]);
    assert!(ok && queue.lines().count() == 9, "{queue}");
    let (ok, stdout, stderr) = fake("fake-slurm-run", &[]);
    let submissions = std::fs::read_to_string(state.join("submissions.log")).unwrap();
    let events = std::fs::read_to_string(state.join("events.log")).unwrap();
    eprintln!("submissions:\n{submissions}events:\n{events}");
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        submissions,
        "100 name=medssl-pretrain array=0-1 dependency=- kill-on-invalid-dep=no\n\
         101 name=medssl-finetune array=0-0 dependency=- kill-on-invalid-dep=yes\n\
         102 name=medssl-finetune array=1-1 dependency=afterok:100_0 kill-on-invalid-dep=yes\n\
         103 name=medssl-finetune array=2-2 dependency=afterok:100_1 kill-on-invalid-dep=yes\n\
         104 name=medssl-cka array=0-0 dependency=afterok:100_0,afterany:102 kill-on-invalid-dep=yes\n\
         105 name=medssl-cka array=1-1 dependency=afterok:100_1,afterany:103 kill-on-invalid-dep=yes\n\
         106 name=medssl-report array=- dependency=afterany:100:101:102:103:104:105 kill-on-invalid-dep=no\n"
    );
    assert_eq!(
        events,
        "run 100_0 medssl-pretrain COMPLETED\n\
         run 100_1 medssl-pretrain FAILED\n\
         run 101_0 medssl-finetune COMPLETED\n\
         run 102_1 medssl-finetune COMPLETED\n\
         cancel 103_2 medssl-finetune DependencyNeverSatisfied\n\
         run 104_0 medssl-cka COMPLETED\n\
         cancel 105_1 medssl-cka DependencyNeverSatisfied\n\
         run 106 medssl-report COMPLETED\n"
    );
    let task_log = std::fs::read_to_string(slurm.join("logs/medssl-pretrain-100_1.log")).unwrap();
    assert!(task_log.contains("too few"), "{task_log}");

    let got = std::fs::read_to_string(dir.path().join("cluster/results.csv")).unwrap();
    assert_eq!(got, expected);
    assert!(dir.path().join("cluster/report/index.html").is_file());
    let status = stdout_ok(&["study", "status", &cluster]);
    assert!(
        status.contains("7 jobs: 4 done, 1 failed, 2 waiting"),
        "{status}"
    );
}
