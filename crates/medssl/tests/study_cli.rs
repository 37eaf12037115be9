//! `medssl study` end to end on a miniature study (SimMIM and scratch, one synthetic
//! task, two pretraining steps, two fine-tune epochs, SimMIM's CKA job): it runs, reruns
//! do nothing, a killed run resumed writes the same results.csv as one left alone, a
//! failed pretraining blocks only its fine-tunes and CKA job, `--job` runs exactly one
//! job and writes nothing else, and the Slurm scripts, run by a fake Slurm
//! (`fake_slurm.sh`), block only the failed method's rows and end with the same
//! results.csv as `study run`. Also: `study validate` lists every problem of a file,
//! the `[slurm]` table and its flags reach the scripts, `study plan` and `study status`
//! print JSON, hours from the rates of finished jobs, and the disk space used; a job
//! whose run was started with other settings is refused, naming them. A
//! `supervised:` row trains its encoder on a source first and fine-tunes from it with
//! its own `finetune.method_set` settings.

mod common;
// The miniature dataset downloads the converters' tests build.
#[path = "../../medssl-data/tests/convert_tree/mod.rs"]
mod convert_tree;

/// Writes a miniature download of one dataset into a folder.
type BuildTree = fn(&std::path::Path);

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{medssl, stdout_ok};
use serde_json::Value;

const STUDY: &str = r#"name = "mini"
methods = ["scratch", "simmim"]
[pretraining]
data = "ct"
steps = 2
[finetune]
budgets = [2]
set = ["train.epochs=2", "validation.every=1", "model.roi=[32, 32, 32]"]
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
    task(dir, "abd", 0);
}

/// A labelled task of 6 cases (`DIR/NAME`), 32³, from `seed`.
fn task(dir: &Path, name: &str, seed: u64) {
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--cases",
        "6",
        "--size",
        "32",
        "--seed",
        &seed.to_string(),
        "--out",
        dir.join(name).to_str().unwrap(),
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

/// Runs `medssl` with `args` and parses its stdout as one JSON document.
fn json(args: &[&str]) -> Value {
    let out = stdout_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Every file below `dir` with its size.
fn sizes(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push((entry.path(), entry.metadata().unwrap().len()));
            }
        }
    }
    out
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
    assert!(
        plan.contains("left: 6 jobs") && plan.contains("hours on cpu: not measured yet"),
        "{plan}"
    );
    let before = json(&["study", "plan", &file, "--json"]);
    let jobs = before["jobs"].as_array().unwrap();
    let kinds: Vec<&str> = jobs.iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["pretrain", "probe", "probe", "finetune", "finetune", "cka"],
        "{before}"
    );
    assert_eq!(jobs[4]["id"], "finetune/abd/simmim.2-shots.seed-0");
    assert_eq!(jobs[4]["method"], "simmim");
    assert_eq!(jobs[4]["task"], "abd");
    assert_eq!(jobs[4]["budget"], "2-shots");
    assert_eq!(jobs[4]["seed"], 0);
    assert_eq!(jobs[4]["needs"], serde_json::json!([0]));
    assert_eq!(jobs[4]["state"], "waiting");
    assert!(
        jobs.iter()
            .all(|j| j["gvox"].as_f64().unwrap() > 0.0 && j["hours"].is_null())
    );
    assert_eq!(before["device"], "cpu");
    assert_eq!(before["left_jobs"], 6);
    assert_eq!(jobs[2]["id"], "probe/abd/simmim");
    assert_eq!(jobs[2]["needs"], serde_json::json!([0]));
    assert!(before["left_hours"].is_null(), "{before}");
    let out = medssl(&["study", "run", &file]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("[6/6] done"), "{log}");
    let expected = results(straight.path());
    assert_eq!(expected.lines().count(), 3, "{expected}");
    assert!(expected.starts_with("job,method,task,modality,budget,seed,train_cases"));
    let status = stdout_ok(&["study", "status", &file]);
    assert!(status.contains("6 jobs: 6 done"), "{status}");

    // The hours come from the jobs just finished, per kind, on this device only.
    let after = json(&["study", "plan", &file, "--json"]);
    assert_eq!(after["left_jobs"], 0);
    assert_eq!(after["left_hours"], 0.0);
    for (stage, jobs) in [("pretrain", 1), ("finetune", 2), ("probe", 2), ("cka", 1)] {
        let measured = &after["rates"][stage];
        assert_eq!(measured["jobs"], jobs, "{after}");
        assert!(measured["seconds"].as_f64().unwrap() > 0.0, "{after}");
    }
    for job in after["jobs"].as_array().unwrap() {
        let rate = &after["rates"][job["kind"].as_str().unwrap()];
        let expected = job["gvox"].as_f64().unwrap() * rate["seconds"].as_f64().unwrap()
            / rate["gvox"].as_f64().unwrap()
            / 3600.0;
        let hours = job["hours"].as_f64().unwrap();
        assert!((hours - expected).abs() <= 1e-9 * expected, "{job}");
    }
    let plan = stdout_ok(&["study", "plan", &file]);
    assert!(
        plan.contains(
            "hours on cpu, one job at a time, at the rates of this study's jobs \
             finished on cpu: pretrain "
        ) && plan.contains(" s/Gvox (2 jobs), cka "),
        "{plan}"
    );
    let cuda = stdout_ok(&["study", "plan", &file, "--device", "cuda"]);
    assert!(cuda.contains("hours on cuda: not measured yet"), "{cuda}");

    // The disk space: every file of the study, and those of the runs' checkpoints.
    let out = straight.path().join("study");
    let files = sizes(&out);
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let checkpoints: u64 = files
        .iter()
        .filter(|(p, _)| p.parent().unwrap().ends_with("checkpoint"))
        .map(|(_, n)| n)
        .sum();
    assert!(checkpoints > 0 && checkpoints < total);
    let state = json(&["study", "status", &file, "--json"]);
    assert_eq!(state["disk"]["total_bytes"], total, "{state}");
    assert_eq!(state["disk"]["checkpoint_bytes"], checkpoints, "{state}");
    assert_eq!(state["counts"]["done"], 6, "{state}");
    assert_eq!(state["jobs"].as_array().unwrap().len(), 6);
    for job in state["jobs"].as_array().unwrap() {
        assert_eq!(job["state"], "done");
        let dir = out.join(job["id"].as_str().unwrap());
        let bytes: u64 = sizes(&dir).iter().map(|(_, n)| n).sum();
        assert_eq!(job["bytes"], bytes, "{job}");
    }

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
        report.contains("(figures/cka-pretrained-2-shots.png)")
            && report.contains("### Frozen-feature probes on abd")
            && report.contains("(figures/probe-abd.png)"),
        "{report}"
    );
    // Each probe scored every stage on the test cases: a balanced accuracy in [0, 1]
    // or null (a stage whose training tokens have one class).
    for row in ["scratch", "simmim"] {
        let path = straight
            .path()
            .join(format!("study/probe/abd/{row}/result.json"));
        let probe: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let stages = probe["stages"].as_object().unwrap();
        assert_eq!(stages.len(), 5, "{probe}");
        for scores in stages.values() {
            let accuracy = &scores["linear"]["balanced_accuracy"];
            assert!(
                accuracy.is_null() || (0.0..=1.0).contains(&accuracy.as_f64().unwrap()),
                "{probe}"
            );
        }
        assert!(probe["held_out_cases"].as_u64().unwrap() >= 1, "{probe}");
    }
    let again = medssl(&["study", "run", &file]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("0 finished now, 6 already done"), "{log}");

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
    assert!(log.contains("skip  probe/abd/simmim"), "{log}");
    assert!(log.contains("2 finished now"), "{log}");
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
        status.contains("6 jobs: 2 done, 1 failed, 3 waiting"),
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
        "probe_scratch=$(submit --array=0-0 probe.sbatch)\n",
        "probe_simmim=$(submit --array=1-1 --dependency=\"afterok:${pretrain}_0\" probe.sbatch)\n",
        "report=$(submit --dependency=\"afterany:${pretrain}:${finetune_scratch}:${finetune_simmim}:${probe_scratch}:${probe_simmim}:${cka_simmim}\" report.sbatch)\n",
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
        status.contains("6 jobs: 1 done, 2 ready, 3 waiting"),
        "{status}"
    );
    let out = medssl(&["study", "run", &file, "--job", "finetune/abd/nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job `finetune/abd/nope`"));
}

/// A job whose run was started with other settings is not continued with the study's
/// new ones: `study run` refuses it naming the keys that differ, and with the settings
/// restored it resumes the run and finishes it. (The run is made unfinished by
/// removing its result, as a kill between its last checkpoint and its result leaves
/// it.)
#[test]
fn a_job_started_with_other_settings_is_refused_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path(), 4);
    let job = ["study", "run", &file, "--job", "pretrain/simmim"];
    stdout_ok(&job);
    let result = dir.path().join("study/pretrain/simmim/result.json");
    std::fs::remove_file(&result).unwrap();

    std::fs::write(&file, STUDY.replace("steps = 2", "steps = 3")).unwrap();
    let out = medssl(&job);
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("holds a run started with other settings (train.steps differ)"),
        "{log}"
    );
    assert!(!result.exists());

    std::fs::write(&file, STUDY).unwrap();
    let out = medssl(&job);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps = serde_json::from_str::<Value>(&std::fs::read_to_string(&result).unwrap()).unwrap()
        ["steps"]
        .clone();
    assert_eq!(steps, 2);
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
set = ["train.epochs=1", "validation.every=1", "model.roi=[32, 32, 32]"]
[[tasks]]
name = "abd"
path = "abd"
modality = "CT"
[slurm]
account = "lab42"
qos = "normal"
array_limit = 2
extra = ["--constraint=a100"]
[slurm.time]
finetune = "01:00:00"
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
        log.contains("FAILED pretrain/rotnet") && log.contains("6 finished now"),
        "{log}"
    );
    let expected = std::fs::read_to_string(dir.path().join("local/results.csv")).unwrap();
    assert_eq!(expected.lines().count(), 3, "{expected}");

    // The scripts, checked as shell; the study file's [slurm] settings are in each.
    stdout_ok(&["study", "slurm", &cluster, "--device", "cpu", "--gpus", "0"]);
    let slurm = dir.path().join("cluster/slurm");
    let finetune = std::fs::read_to_string(slurm.join("finetune.sbatch")).unwrap();
    assert!(
        finetune.contains(
            "#SBATCH --time=01:00:00\n#SBATCH --cpus-per-task=8\n#SBATCH --mem=64G\n\
             #SBATCH --account=lab42\n#SBATCH --qos=normal\n#SBATCH --constraint=a100\n"
        ),
        "{finetune}"
    );
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
            "probe.sbatch",
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
        "submitted: pretrain 100, finetune 101 102 103, probe 104 105 106, cka 107 108, report 109\n"
    );
    let (ok, queue, _) = fake("squeue", &[]);
    assert!(ok && queue.lines().count() == 12, "{queue}");
    let (ok, stdout, stderr) = fake("fake-slurm-run", &[]);
    let submissions = std::fs::read_to_string(state.join("submissions.log")).unwrap();
    let events = std::fs::read_to_string(state.join("events.log")).unwrap();
    eprintln!("submissions:\n{submissions}events:\n{events}");
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        submissions,
        "100 name=medssl-pretrain array=0-1%2 dependency=- kill-on-invalid-dep=no\n\
         101 name=medssl-finetune array=0-0%2 dependency=- kill-on-invalid-dep=yes\n\
         102 name=medssl-finetune array=1-1%2 dependency=afterok:100_0 kill-on-invalid-dep=yes\n\
         103 name=medssl-finetune array=2-2%2 dependency=afterok:100_1 kill-on-invalid-dep=yes\n\
         104 name=medssl-probe array=0-0%2 dependency=- kill-on-invalid-dep=yes\n\
         105 name=medssl-probe array=1-1%2 dependency=afterok:100_0 kill-on-invalid-dep=yes\n\
         106 name=medssl-probe array=2-2%2 dependency=afterok:100_1 kill-on-invalid-dep=yes\n\
         107 name=medssl-cka array=0-0%2 dependency=afterok:100_0,afterany:102 kill-on-invalid-dep=yes\n\
         108 name=medssl-cka array=1-1%2 dependency=afterok:100_1,afterany:103 kill-on-invalid-dep=yes\n\
         109 name=medssl-report array=- dependency=afterany:100:101:102:103:104:105:106:107:108 kill-on-invalid-dep=no\n"
    );
    assert_eq!(
        events,
        "run 100_0 medssl-pretrain COMPLETED\n\
         run 100_1 medssl-pretrain FAILED\n\
         run 101_0 medssl-finetune COMPLETED\n\
         run 102_1 medssl-finetune COMPLETED\n\
         cancel 103_2 medssl-finetune DependencyNeverSatisfied\n\
         run 104_0 medssl-probe COMPLETED\n\
         run 105_1 medssl-probe COMPLETED\n\
         cancel 106_2 medssl-probe DependencyNeverSatisfied\n\
         run 107_0 medssl-cka COMPLETED\n\
         cancel 108_1 medssl-cka DependencyNeverSatisfied\n\
         run 109 medssl-report COMPLETED\n"
    );
    let task_log = std::fs::read_to_string(slurm.join("logs/medssl-pretrain-100_1.log")).unwrap();
    assert!(task_log.contains("too few"), "{task_log}");

    let got = std::fs::read_to_string(dir.path().join("cluster/results.csv")).unwrap();
    assert_eq!(got, expected);
    assert!(dir.path().join("cluster/report/index.html").is_file());
    let status = stdout_ok(&["study", "status", &cluster]);
    assert!(
        status.contains("10 jobs: 6 done, 1 failed, 3 waiting"),
        "{status}"
    );
}

/// A study file with a mistake in every section: `study validate` lists them all, each
/// with its key, and fails; the ones found without the disk stop `study plan` too.
#[test]
fn validate_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(
        &file,
        r#"name = "broken"
methods = ["scratch", "simclrr", "scratch"]
[pretraining]
data = "ct"
stepz = 2
[finetune]
budgets = [0, 2]
seeds = []
[[tasks]]
name = "abd"
path = "abd"
modality = "CT"
[[tasks]]
name = "mri"
path = "mri"
modality = "PET"
[slurm]
account = "my lab"
array_limit = 0
extra = ["--constraint=a100", "--dependency=afterok:1", "constraint=v100"]
[slurm.time]
pretrain = "1 day"
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = medssl(&["study", "validate", file]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    let expected = [
        "  pretraining: unknown field `stepz`",
        "  tasks[1].modality: unknown variant `PET`, expected `CT` or `MRI`",
        "  methods: unknown method `simclrr`",
        "  methods: `scratch` is listed twice",
        "  finetune.budgets: 0 is neither a positive count, a fraction in (0, 1) nor \"all\"",
        "  finetune.seeds: the list is empty",
        "  slurm.account: `my lab` is not a Slurm name",
        "  slurm.time.pretrain: `1 day` is not a Slurm time limit",
        "  slurm.array_limit: 0 would never run a task",
        "  slurm.extra[1]: `--dependency=afterok:1` is written by `medssl study slurm` itself",
        "  slurm.extra[2]: `constraint=v100` is not an sbatch option",
        "  task abd: ",
    ];
    assert!(
        error.starts_with(&format!("error: {file}: {} problems:\n", expected.len())),
        "{error}"
    );
    for line in expected {
        assert!(
            error.lines().any(|l| l.starts_with(line)),
            "`{line}` in:\n{error}"
        );
    }
    assert_eq!(error.lines().count(), 1 + expected.len(), "{error}");
    assert!(
        !error.contains("BudgetSpec") && !error.contains("Option<"),
        "{error}"
    );

    // `study plan` reads the file the same way: every problem found without the disk
    // (all but the task's directory) is listed.
    let out = medssl(&["study", "plan", file]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        error.starts_with(&format!(
            "error: {file}: {} problems:\n",
            expected.len() - 1
        )),
        "{error}"
    );
}

/// `study status` says how much the study occupies, and how much of it is the runs'
/// checkpoints, in words and (`--json`) in bytes per job.
#[test]
fn status_shows_the_disk_space_of_the_study() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, STUDY).unwrap();
    let file = file.to_str().unwrap();
    let out = dir.path().join("study");
    let written = [
        ("pretrain/simmim/checkpoint/weights-2.safetensors", 2048),
        ("pretrain/simmim/checkpoint/optimizer-2.bin", 1024),
        ("pretrain/simmim/encoder.safetensors", 512),
        (
            "finetune/abd/scratch.2-shots.seed-0/checkpoint/state.json",
            100,
        ),
        ("finetune/abd/scratch.2-shots.seed-0/best.safetensors", 300),
        ("finetune/abd/.medssl-cache/abd/case-1.bin", 6000),
        ("results.csv", 16),
    ];
    for (path, bytes) in written {
        let path = out.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![b'x'; bytes]).unwrap();
    }
    let total: usize = written.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 10000);
    let status = stdout_ok(&["study", "status", file]);
    assert!(
        status.contains(&format!(
            "disk: 9.77 KiB in {}, of which 3.10 KiB in the runs' checkpoint/ directories",
            out.display()
        )),
        "{status}"
    );
    assert!(
        status.lines().last().unwrap() == "6 jobs: 3 ready, 3 waiting",
        "the counts come last: {status}"
    );
    let state = json(&["study", "status", file, "--json"]);
    assert_eq!(state["study"], "mini");
    assert_eq!(state["out"], out.to_str().unwrap());
    assert_eq!(state["disk"]["total_bytes"], 10000);
    assert_eq!(state["disk"]["checkpoint_bytes"], 2048 + 1024 + 100);
    assert_eq!(
        state["counts"],
        serde_json::json!({"done": 0, "running": 0, "failed": 0, "interrupted": 0,
                           "waiting": 3, "ready": 3})
    );
    let jobs: Vec<(&str, &str, u64)> = state["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap(),
                j["state"].as_str().unwrap(),
                j["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [
            ("pretrain/simmim", "ready", 3584),
            ("probe/abd/scratch", "ready", 0),
            ("probe/abd/simmim", "waiting", 0),
            ("finetune/abd/scratch.2-shots.seed-0", "ready", 400),
            ("finetune/abd/simmim.2-shots.seed-0", "waiting", 0),
            ("cka/abd/simmim.seed-0", "waiting", 0),
        ]
    );
}

/// The `[slurm]` table reaches every script: account, QOS, the time limit of each job
/// kind, the array throttle and the extra directives; flags override the file, and a
/// bad flag is refused naming it.
#[test]
fn slurm_settings_come_from_the_study_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path(), 4);
    let file = dir.path().join("study.toml");
    std::fs::write(
        &file,
        format!(
            "{STUDY}[slurm]\naccount = \"lab42\"\nqos = \"normal\"\narray_limit = 3\n\
             extra = [\"--constraint=a100\", \"#SBATCH --mail-type=FAIL\"]\n\
             [slurm.time]\npretrain = \"2-00:00:00\"\nfinetune = \"04:00:00\"\ncka = \"45\"\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    stdout_ok(&[
        "study",
        "slurm",
        file,
        "--device",
        "cpu",
        "--qos",
        "urgent",
        "--report-time",
        "10:00",
    ]);
    let slurm = dir.path().join("study/slurm");
    let read = |name: &str| std::fs::read_to_string(slurm.join(name)).unwrap();
    let directives = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("#SBATCH") && !l.starts_with("#SBATCH --output="))
            .map(str::to_string)
            .collect()
    };
    let common = |name: &str, time: &str, gres: bool| {
        let mut lines = vec![
            format!("#SBATCH --job-name=medssl-{name}"),
            format!("#SBATCH --time={time}"),
            "#SBATCH --cpus-per-task=8".to_string(),
            "#SBATCH --mem=64G".to_string(),
            "#SBATCH --account=lab42".to_string(),
            "#SBATCH --qos=urgent".to_string(),
        ];
        if gres {
            lines.push("#SBATCH --gres=gpu:1".to_string());
        }
        lines.push("#SBATCH --constraint=a100".to_string());
        lines.push("#SBATCH --mail-type=FAIL".to_string());
        lines
    };
    let mut pretrain = common("pretrain", "2-00:00:00", true);
    pretrain.push("#SBATCH --array=0-0%3".into());
    assert_eq!(directives(&read("pretrain.sbatch")), pretrain);
    let mut finetune = common("finetune", "04:00:00", true);
    finetune.push("#SBATCH --kill-on-invalid-dep=yes".into());
    assert_eq!(directives(&read("finetune.sbatch")), finetune);
    let mut cka = common("cka", "45", true);
    cka.push("#SBATCH --kill-on-invalid-dep=yes".into());
    assert_eq!(directives(&read("cka.sbatch")), cka);
    assert_eq!(
        directives(&read("report.sbatch")),
        common("report", "10:00", false)
    );
    let submit = read("submit.sh");
    for line in [
        "finetune_scratch=$(submit --array=0-0%3 finetune.sbatch)\n",
        "finetune_simmim=$(submit --array=1-1%3 --dependency=\"afterok:${pretrain}_0\" finetune.sbatch)\n",
        "cka_simmim=$(submit --array=0-0%3 --dependency=\"afterok:${pretrain}_0,afterany:${finetune_simmim}\" cka.sbatch)\n",
    ] {
        assert!(submit.contains(line), "{line} in {submit}");
    }

    let out = medssl(&[
        "study",
        "slurm",
        file,
        "--device",
        "cpu",
        "--finetune-time",
        "4h",
    ]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        error.contains("'--finetune-time") && error.contains("`4h` is not a Slurm time limit"),
        "{error}"
    );
    let out = medssl(&[
        "study",
        "slurm",
        file,
        "--device",
        "cpu",
        "--array-limit",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--array-limit"));
}

/// `supervised:src` with a `[[sources]]` task: the supervised fine-tune on every case of
/// src writes its encoder, the row's fine-tune on abd starts from it with the row's
/// decoder warm-up, the report names each row's strategy, and nothing is fine-tuned on
/// the source.
#[test]
fn a_supervised_row_starts_from_its_source_fine_tune() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path(), 1);
    task(dir.path(), "src", 9);
    let study = STUDY.replace(
        r#"["scratch", "simmim"]"#,
        r#"["scratch", "supervised:src"]"#,
    ) + r#"[finetune.method_set]
supervised-src = ["train.strategy=\"warmup_decoder\"", "train.decoder_epochs=1"]
[[sources]]
name = "src"
path = "src"
modality = "CT"
"#;
    let file = dir.path().join("study.toml");
    std::fs::write(&file, study).unwrap();
    let file = file.to_str().unwrap();
    let out = medssl(&["study", "run", file]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let root = dir.path().join("study");
    let encoder = root.join("supervised/src/encoder.safetensors");
    assert!(encoder.is_file(), "{log}");
    assert!(root.join("supervised/src/test.json").is_file());
    assert!(!root.join("finetune/src").exists());
    let run = root.join("finetune/abd/supervised-src.2-shots.seed-0");
    let init = std::fs::read_to_string(run.join("init_report.json")).unwrap();
    assert!(
        init.contains("supervised/src/encoder.safetensors"),
        "{init}"
    );
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        config.contains("strategy = \"warmup_decoder\"") && config.contains("decoder_epochs = 1"),
        "{config}"
    );
    let scratch =
        std::fs::read_to_string(root.join("finetune/abd/scratch.2-shots.seed-0/config.toml"))
            .unwrap();
    assert!(scratch.contains("strategy = \"full\""), "{scratch}");
    assert!(results(dir.path()).contains(",supervised-src,abd,"));
    let report = std::fs::read_to_string(root.join("report/report.md")).unwrap();
    assert!(
        report.contains("scratch: full; supervised-src: warmup_decoder (1 decoder epochs)"),
        "{report}"
    );
}

/// `study init --template paper` writes the reference paper's study: the nine methods
/// and scratch on nine public tasks (CT and MRI, each under the name `medssl dataset
/// convert` gives it, with the kind that makes it), TotalSegmentator as the source of
/// a positive control, the paper presets. `study validate` lists every task directory
/// and the pretraining collection that are not there yet, and passes once they are
/// (here tiny synthetic tasks); `init` writes over no file.
#[test]
fn init_writes_the_paper_study() {
    use medssl_bench::definition::{AllCases, BudgetSpec, Modality, StudyDefinition};
    use medssl_ssl::Preset;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paper.toml");
    let file = path.to_str().unwrap();
    let printed = stdout_ok(&["study", "init", file, "--template", "paper"]);
    assert!(printed.contains("wrote"), "{printed}");

    let study = StudyDefinition::load(&path).unwrap();
    assert_eq!(study.methods.len(), 10, "{:?}", study.methods);
    assert_eq!(study.methods[0], "scratch");
    assert_eq!(study.ssl_methods().len(), 9);
    let tasks = [
        ("BTCV", Modality::Ct),
        ("FLARE22", Modality::Ct),
        ("AMOS22_MRI", Modality::Mri),
        ("CHAOS_MR_T2", Modality::Mri),
        ("HaN-Seg", Modality::Ct),
        ("KiTS23", Modality::Ct),
        ("LiTS", Modality::Ct),
        ("Task07_Pancreas", Modality::Ct),
        ("Task10_Colon", Modality::Ct),
    ];
    let written: Vec<(&str, Modality)> = study
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.modality))
        .collect();
    assert_eq!(written, tasks);
    for task in study.tasks.iter().chain(&study.sources) {
        assert_eq!(task.path, Path::new("data").join(&task.name));
    }
    let sources: Vec<&str> = study.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(sources, ["TotalSegmentator"]);
    assert_eq!(study.pretraining.preset, Preset::Paper);
    assert_eq!(study.finetune.preset, Preset::Paper);
    let budgets = &study.finetune.budgets;
    assert!(budgets.iter().any(|b| matches!(b, BudgetSpec::Shots(_))));
    assert_eq!(budgets.last(), Some(&BudgetSpec::Named(AllCases::All)));
    // Each task's comment names the converter kind that makes it.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (i, _) in lines.iter().enumerate().filter(|(_, l)| **l == "[[tasks]]") {
        assert!(
            lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#'))
                .any(|l| l.contains("`medssl dataset convert ")),
            "no converter kind above line {i}:\n{text}"
        );
    }

    let again = medssl(&["study", "init", file, "--template", "paper"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    let out = medssl(&["study", "validate", file]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    let labelled: Vec<&str> = tasks.iter().map(|(name, _)| *name).chain(sources).collect();
    for name in &labelled {
        assert!(
            error
                .lines()
                .any(|l| l.starts_with(&format!("  task {name}: "))
                    && l.contains(&format!("data/{name}"))),
            "task {name} in:\n{error}"
        );
    }
    assert!(
        error.contains("pretraining.data: ") && error.contains("ct-collection.txt"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1 + labelled.len() + 1, "{error}");

    // Each task as `medssl dataset convert` writes it from a miniature download in its
    // dataset's layout, and the collection listed as the file says to list it.
    let data = dir.path().join("data");
    let downloads = dir.path().join("downloads");
    let trees: [(&str, &str, BuildTree); 10] = [
        ("btcv", "btcv", convert_tree::btcv_tree),
        ("flare22", "FLARE22", convert_tree::flare22_tree),
        ("amos", "amos22", convert_tree::amos_tree),
        ("chaos", "CHAOS_Train_Sets", convert_tree::chaos_tree),
        ("hanseg", "HaN-Seg", |p| {
            convert_tree::hanseg_tree(p);
        }),
        ("kits23", "kits23", convert_tree::kits23_tree),
        ("lits", "LiTS", convert_tree::lits_tree),
        ("msd", "Task07_Pancreas", convert_tree::msd_tree),
        ("msd", "Task10_Colon", convert_tree::msd_tree),
        (
            "totalsegmentator",
            "Totalsegmentator_dataset",
            convert_tree::totalseg_tree,
        ),
    ];
    for (kind, folder, build) in trees {
        let source = downloads.join(folder);
        build(&source);
        let mut args = vec!["dataset", "convert", kind, source.to_str().unwrap()];
        args.push(data.to_str().unwrap());
        if kind == "totalsegmentator" {
            args.extend(["--structures", "liver,spleen"]);
        }
        stdout_ok(&args);
    }
    let mut collection = String::new();
    for task in ["AMOS22_CT", "CHAOS_CT", "TotalSegmentator"] {
        for entry in std::fs::read_dir(data.join(task).join("imagesTr")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            collection.push_str(&format!("{task}/imagesTr/{name}\n"));
        }
    }
    std::fs::write(data.join("ct-collection.txt"), collection).unwrap();
    let valid = stdout_ok(&["study", "validate", file]);
    assert!(valid.contains("valid ("), "{valid}");
}
