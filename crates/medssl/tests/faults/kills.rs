//! SIGKILL at random moments and at the start of writes, then resume, until the run
//! ends; the end equals an uninterrupted run's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medssl_train::run_dir::RunDir;
use serde_json::Value;

use crate::common::stdout_ok;
use crate::run_files::{
    assert_intact, data, files, in_checkpoint_dir, is_temporary, strings, temporaries,
};

/// JSON keys that differ between any two runs: wall-clock facts, and the parameter ids
/// (and with them the optimiser file's size and hash) that each process draws anew.
const PER_PROCESS: [&str; 8] = [
    "seconds",
    "started",
    "pid",
    "host",
    "finished",
    "param_ids",
    "optimizer_bytes",
    "optimizer_sha256",
];

/// A command under test: how to start it, how to resume it, and where it writes.
struct Scenario {
    name: &'static str,
    /// Arguments of a fresh start.
    start: Vec<String>,
    /// Arguments that continue an interrupted run.
    resume: Vec<String>,
    /// The directory the command writes (compared with the uninterrupted run's).
    out: PathBuf,
    /// True once a fresh start has written enough that `resume` must be used.
    started: fn(&Path) -> bool,
    /// Called after every kill with the scenario's directory: what must hold then.
    after_kill: fn(&Scenario),
}

/// How one kill was placed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KillAt {
    /// After a random delay.
    Random(Duration),
    /// As soon as a checkpoint file starts being written (a temporary file appears in a
    /// `checkpoint/` directory).
    CheckpointWrite,
    /// As soon as any file starts being written atomically.
    AnyWrite,
}

/// What a chain of kills did.
#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    /// Kills that struck while a checkpoint file (`checkpoint/*.tmp`) was being written.
    during_checkpoint_writes: usize,
    /// Kills that struck while some other file was being written.
    during_other_writes: usize,
    /// Runs completed after their kills (each compared with the reference).
    completed_runs: usize,
}

/// A small deterministic generator (xorshift64*), so a failing schedule can be rerun.
struct Draw(u64);

impl Draw {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn spawn(args: &[String], log: &Path) -> Child {
    Command::new(crate::common::bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// How long the uninterrupted reference run may take before the test gives up on it.
const REFERENCE_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// How long any later run may take, as a multiple of the reference run's time plus a
/// fixed margin (process start, a loaded machine).
fn run_deadline(reference: Duration) -> Duration {
    reference * 10 + Duration::from_secs(120)
}

/// Most processes one chain of `kills` kills may start: every kill costs one, and a
/// run that ends before its kill fires (a random delay past its end, or no write of
/// the kind awaited) one more. Beyond this the chain is not converging.
fn max_launches(kills: usize) -> usize {
    4 * kills + 8
}

/// Runs `args` and kills it as `at` says; `None` when it ended by itself first (then
/// it must have succeeded), else the temporaries present at the kill. A run still going
/// after `deadline` is killed and the test fails, naming it.
fn run_and_kill(
    args: &[String],
    at: KillAt,
    watch: &Path,
    log: &Path,
    deadline: Duration,
) -> Option<Vec<PathBuf>> {
    let mut child = spawn(args, log);
    let started = Instant::now();
    let before: Vec<PathBuf> = temporaries(watch);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "medssl {args:?} failed: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return None;
        }
        if started.elapsed() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "medssl {args:?} still ran after {deadline:?} (waiting to kill it {at:?}); \
                 killed. Its log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let fire = match at {
            KillAt::Random(delay) => started.elapsed() >= delay,
            KillAt::CheckpointWrite => temporaries(watch)
                .iter()
                .any(|t| !before.contains(t) && in_checkpoint_dir(t)),
            KillAt::AnyWrite => temporaries(watch).iter().any(|t| !before.contains(t)),
        };
        if fire {
            child.kill().unwrap();
            child.wait().unwrap();
            return Some(temporaries(watch));
        }
        std::thread::sleep(match at {
            KillAt::Random(_) => Duration::from_millis(2),
            _ => Duration::from_micros(200),
        });
    }
}

/// JSON with the wall-clock keys removed, at any depth.
fn without_volatile(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            for key in PER_PROCESS {
                map.remove(key);
            }
            for v in map.values_mut() {
                *v = without_volatile(v.take());
            }
        }
        Value::Array(items) => {
            for v in items {
                *v = without_volatile(v.take());
            }
        }
        _ => {}
    }
    value
}

/// A report with the minute it was written ("report written 2026-12-07 00:34 UTC", its
/// provenance) replaced by `<date>`: a resumed study writes its report later.
fn without_report_date(text: &str) -> String {
    const MARK: &str = "report written ";
    const DATE: usize = "2026-12-07 00:34 UTC".len();
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let date_at = at + MARK.len();
        out.push_str(&rest[..date_at]);
        out.push_str("<date>");
        rest = rest.get(date_at + DATE..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// What must be equal between two runs: every file below `dir` by relative path, with
/// the directory holding `dir` written as `<dir>` in text files, JSON and JSONL without the
/// [`PER_PROCESS`] keys, reports without the minute they were written, the rest byte
/// for byte. Left out: the shared preprocessing cache (its entries are checked on every
/// read) and the optimiser state files, which are keyed by the per-process parameter
/// ids.
fn outcome(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // Runs name their inputs, which lie beside `dir`, by absolute path.
    let root = dir.parent().unwrap().to_str().unwrap();
    for path in files(dir) {
        let relative = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy();
        if relative.contains(".medssl-cache") || name.starts_with("optimizer-") {
            continue;
        }
        assert!(
            !is_temporary(&path),
            "{relative} is left over after the run"
        );
        let bytes = std::fs::read(&path).unwrap();
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let text = || {
            String::from_utf8(bytes.clone())
                .unwrap()
                .replace(root, "<dir>")
        };
        let json = |text: &str| without_volatile(serde_json::from_str(text).unwrap()).to_string();
        let canonical = match extension {
            "json" => json(&text()),
            "jsonl" => text().lines().map(json).collect::<Vec<_>>().join("\n"),
            "md" | "html" | "tex" => without_report_date(&text()),
            "csv" | "svg" | "toml" => text(),
            _ => medssl_io::checksum::sha256_hex(&bytes),
        };
        out.insert(relative, canonical);
    }
    out
}

/// Asserts two outcomes equal, naming the first file that differs.
fn assert_same(reference: &BTreeMap<String, String>, got: &BTreeMap<String, String>, what: &str) {
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(got), names(reference), "{what}: the files differ");
    for (name, expected) in reference {
        assert_eq!(&got[name], expected, "{what}: {name} differs");
    }
}

/// Runs `scenario` once uninterrupted (the reference), then kills it `kills` times
/// (random moments, alternating with the start of a checkpoint write or of any write),
/// resuming after each kill; a run
/// that finishes before all kills are spent is compared and started over.
fn kill_and_resume(make: impl Fn(&Path) -> Scenario, kills: usize, seed: u64) -> Tally {
    kill_chain(make, kills, seed, alternating)
}

/// Where a chain places kill number `kill` (counted from 0), from the generator and the
/// reference run's length.
type Schedule = fn(usize, &mut Draw, Duration) -> KillAt;

/// Random moments, alternating with the start of a checkpoint write or of any write.
fn alternating(kill: usize, draw: &mut Draw, length: Duration) -> KillAt {
    match kill % 4 {
        1 => KillAt::CheckpointWrite,
        3 => KillAt::AnyWrite,
        _ => KillAt::Random(length.mul_f64(draw.unit())),
    }
}

/// [`kill_and_resume`] with the kills placed by `schedule`.
fn kill_chain(
    make: impl Fn(&Path) -> Scenario,
    kills: usize,
    seed: u64,
    schedule: Schedule,
) -> Tally {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = make(reference_dir.path());
    let log = reference_dir.path().join("medssl.log");
    let started = Instant::now();
    assert!(
        run_and_kill(
            &reference.start,
            KillAt::Random(Duration::MAX),
            &reference.out,
            &log,
            REFERENCE_DEADLINE,
        )
        .is_none()
    );
    let length = started.elapsed();
    let deadline = run_deadline(length);
    let expected = outcome(&reference.out);

    let mut draw = Draw(seed | 1);
    let mut tally = Tally::default();
    let mut launches = 0;
    while tally.kills < kills {
        let dir = tempfile::tempdir().unwrap();
        let scenario = make(dir.path());
        let log = dir.path().join("medssl.log");
        loop {
            let args = if (scenario.started)(&scenario.out) {
                &scenario.resume
            } else {
                &scenario.start
            };
            let at = if tally.kills >= kills {
                KillAt::Random(Duration::MAX)
            } else {
                schedule(tally.kills, &mut draw, length)
            };
            launches += 1;
            assert!(
                launches <= max_launches(kills),
                "{}: {} of {kills} kills landed in {} runs (the most allowed), the last \
                 waiting to kill {at:?}; a kill that never fires before the run ends does \
                 not converge: {tally:?}",
                scenario.name,
                tally.kills,
                max_launches(kills)
            );
            let Some(writing) = run_and_kill(args, at, &scenario.out, &log, deadline) else {
                break;
            };
            tally.kills += 1;
            if writing.iter().any(|p| in_checkpoint_dir(p)) {
                tally.during_checkpoint_writes += 1;
            } else if !writing.is_empty() {
                tally.during_other_writes += 1;
            }
            assert_intact(&scenario.out);
            (scenario.after_kill)(&scenario);
        }
        assert_same(&expected, &outcome(&scenario.out), scenario.name);
        tally.completed_runs += 1;
    }
    eprintln!("{}: {tally:?}", reference.name);
    tally
}

fn has_run(out: &Path) -> bool {
    RunDir::at(out).info().is_file()
}

fn nothing_more(_: &Scenario) {}

fn pretrain(dir: &Path, steps: usize) -> Scenario {
    data(dir);
    let out = dir.join("pretrain");
    let (d, o) = (dir.to_str().unwrap(), out.to_str().unwrap());
    Scenario {
        name: "pretrain",
        start: strings(&[
            "pretrain",
            "--method",
            "simmim",
            "--data",
            &format!("{d}/ct"),
            "--out",
            o,
            "--steps",
            &steps.to_string(),
            "--set",
            "train.checkpoint_every=2",
            "--quiet",
        ]),
        resume: strings(&["pretrain", "--resume", o, "--quiet"]),
        out,
        started: has_run,
        after_kill: nothing_more,
    }
}

fn finetune(dir: &Path, epochs: usize) -> Scenario {
    data(dir);
    let out = dir.join("finetune");
    let (d, o) = (dir.to_str().unwrap(), out.to_str().unwrap());
    Scenario {
        name: "finetune",
        start: strings(&[
            "finetune",
            "--task",
            &format!("{d}/abd"),
            "--out",
            o,
            "--shots",
            "2",
            "--set",
            &format!("train.epochs={epochs}"),
            "--set",
            "model.roi=[32, 32, 32]",
            "--set",
            "validation.every=1",
            "--quiet",
        ]),
        resume: strings(&["finetune", "--resume", o, "--quiet"]),
        out,
        started: has_run,
        after_kill: nothing_more,
    }
}

fn study(dir: &Path, steps: usize, epochs: usize) -> Scenario {
    data(dir);
    let file = dir.join("study.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "faults"
methods = ["scratch", "simmim"]
[pretraining]
data = "ct"
steps = {steps}
set = ["train.checkpoint_every=2"]
[finetune]
budgets = [2]
set = ["train.epochs={epochs}", "validation.every=1", "model.roi=[32, 32, 32]"]
[[tasks]]
name = "abd"
path = "abd"
modality = "CT"
"#
        ),
    )
    .unwrap();
    let run = strings(&["study", "run", file.to_str().unwrap()]);
    Scenario {
        name: "study",
        start: run.clone(),
        resume: run,
        out: dir.join("study"),
        started: |_| true,
        after_kill: status_matches_disk,
    }
}

/// `study status` after a kill: nothing is running, and the jobs it calls done are
/// exactly those whose result is on disk.
fn status_matches_disk(scenario: &Scenario) {
    let file = scenario.start.last().unwrap();
    let status = stdout_ok(&["study", "status", file]);
    assert!(
        !status.contains("running"),
        "a killed job is not running: {status}"
    );
    let done_on_disk = files(&scenario.out)
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap();
            let kind = p
                .strip_prefix(&scenario.out)
                .unwrap()
                .iter()
                .next()
                .unwrap();
            (name == "result.json" && (kind == "pretrain" || kind == "probe" || kind == "cka"))
                || (name == "test.json" && kind == "finetune")
                || (name == "encoder.safetensors" && kind == "supervised")
        })
        .count();
    let summary = status.lines().last().unwrap();
    let reported = if done_on_disk == 0 {
        !summary.contains(" done")
    } else {
        summary.contains(&format!(": {done_on_disk} done"))
            || summary.contains(&format!(", {done_on_disk} done"))
    };
    assert!(
        reported,
        "{done_on_disk} jobs have results on disk: {status}"
    );
}

fn assert_killed_mid_checkpoint(tally: &Tally) {
    assert!(
        tally.during_checkpoint_writes >= 1,
        "no kill struck a checkpoint write: {tally:?}"
    );
}

/// A kill that never fires (here: at a checkpoint write of a command that writes
/// none) ends the chain with an error after a bounded number of runs, not a hang.
#[test]
#[should_panic(expected = "methods: 0 of 1 kills landed in 12 runs (the most allowed)")]
fn a_kill_that_never_fires_fails_instead_of_hanging() {
    let methods = |dir: &Path| Scenario {
        name: "methods",
        start: strings(&["methods"]),
        resume: strings(&["methods"]),
        out: dir.to_path_buf(),
        started: |_| false,
        after_kill: nothing_more,
    };
    kill_chain(methods, 1, 1, |_, _, _| KillAt::CheckpointWrite);
}

#[test]
fn fault_short_finetune() {
    let tally = kill_and_resume(|d| finetune(d, 3), 3, 7);
    assert!(tally.kills >= 3);
}

#[test]
fn fault_short_pretrain() {
    let tally = kill_and_resume(|d| pretrain(d, 6), 3, 11);
    assert!(tally.kills >= 3);
}

#[test]
fn fault_short_study() {
    let tally = kill_and_resume(|d| study(d, 2, 2), 2, 13);
    assert!(tally.kills >= 2);
}

#[test]
#[ignore = "minutes: cargo test --release -- --ignored fault"]
fn fault_full_pretrain() {
    let tally = kill_and_resume(|d| pretrain(d, 40), 24, 101);
    assert_killed_mid_checkpoint(&tally);
}

#[test]
#[ignore = "minutes: cargo test --release -- --ignored fault"]
fn fault_full_finetune() {
    let tally = kill_and_resume(|d| finetune(d, 12), 24, 202);
    assert_killed_mid_checkpoint(&tally);
}

#[test]
#[ignore = "minutes: cargo test --release -- --ignored fault"]
fn fault_full_study() {
    let tally = kill_and_resume(|d| study(d, 8, 4), 24, 303);
    assert_killed_mid_checkpoint(&tally);
}
