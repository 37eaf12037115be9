//! `medssl study`: write, check, plan, run and follow a benchmark study.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use medssl_bench::cost::estimate;
use medssl_bench::definition::{EXAMPLE, StudyDefinition};
use medssl_bench::plan::{JobKind, Plan, parse_shard};
use medssl_bench::report::write_report;
use medssl_bench::results::write_results;
use medssl_bench::runner::{RunEvent, Runner};
use medssl_bench::slurm::{SlurmOptions, write_scripts};
use medssl_bench::state::{JobState, state};

use crate::device::parse_device;

/// `medssl study` subcommands.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Write a commented example study file.
    Init {
        /// Where to write it.
        #[arg(default_value = "study.toml")]
        file: PathBuf,
    },
    /// Check every path, task, method and setting of a study before running it.
    Validate { file: PathBuf },
    /// List the study's jobs, their dependencies, state and estimated cost.
    Plan { file: PathBuf },
    /// Run the jobs that are not finished (resuming interrupted ones); without --job or
    /// --shard, then write results.csv and the report.
    Run(StudyRunArgs),
    /// Done / running / failed / waiting per job, with the errors of failed ones.
    Status { file: PathBuf },
    /// Write Slurm array scripts (pretraining, then each row's fine-tunes after its own
    /// pretraining, CKA, then the report) and submit.sh.
    Slurm(SlurmArgs),
    /// Write OUT/results.csv and the report (OUT/report/) from the finished fine-tunes.
    Report { file: PathBuf },
}

/// Arguments of `medssl study run`.
#[derive(Debug, Args)]
pub struct StudyRunArgs {
    file: PathBuf,
    /// Run only shard INDEX of COUNT (INDEX from 0): jobs k with k mod COUNT = INDEX.
    #[arg(long, conflicts_with = "job")]
    shard: Option<String>,
    /// Run only the job with this id (`medssl study plan` lists them).
    #[arg(long)]
    job: Option<String>,
    /// Jobs run at the same time.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Device: cpu, or cuda[:N] (default: the study file's `device`).
    #[arg(long)]
    device: Option<String>,
}

/// Arguments of `medssl study slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    file: PathBuf,
    /// Directory for the scripts and logs (default: OUT/slurm).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
    /// GPUs per task.
    #[arg(long, default_value_t = 1)]
    gpus: usize,
    /// CPUs per task.
    #[arg(long, default_value_t = 8)]
    cpus: usize,
    /// Memory per task.
    #[arg(long, default_value = "64G")]
    mem: String,
    /// Time limit of a pretraining task.
    #[arg(long, default_value = "24:00:00")]
    pretrain_time: String,
    /// Time limit of a fine-tune task.
    #[arg(long, default_value = "08:00:00")]
    finetune_time: String,
    /// Device of the tasks: cpu, or cuda[:N] (checked now: needs a binary built with
    /// the cuda feature).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// The medssl binary the tasks run (default: this one).
    #[arg(long)]
    medssl: Option<PathBuf>,
}

/// `medssl study ...`.
pub fn study(command: &StudyCommand) -> Result<()> {
    match command {
        StudyCommand::Init { file } => init(file),
        StudyCommand::Validate { file } => {
            let study = StudyDefinition::load(file)?;
            study.validate(file)?;
            println!(
                "{}: valid ({} jobs)",
                file.display(),
                Plan::new(&study).jobs.len()
            );
            Ok(())
        }
        StudyCommand::Plan { file } => plan(file),
        StudyCommand::Run(args) => run(args),
        StudyCommand::Status { file } => status(file),
        StudyCommand::Slurm(args) => slurm(args),
        StudyCommand::Report { file } => {
            let study = StudyDefinition::load(file)?;
            let plan = Plan::new(&study);
            let rows = write_results(&study, &plan)?;
            let report = write_report(&study, &plan)?;
            println!(
                "{} ({rows} rows), {}",
                study.out_dir().join("results.csv").display(),
                report.display()
            );
            Ok(())
        }
    }
}

fn init(file: &Path) -> Result<()> {
    if file.exists() {
        bail!("{} exists; choose another file name", file.display());
    }
    std::fs::write(file, EXAMPLE).with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "wrote {}: edit the paths, then `medssl study validate {}`",
        file.display(),
        file.display()
    );
    Ok(())
}

fn plan(file: &Path) -> Result<()> {
    let study = StudyDefinition::load(file)?;
    study.validate(file)?;
    let plan = Plan::new(&study);
    let cost = estimate(&study, &plan)?;
    let total: f64 = cost.iter().sum();
    println!(
        "{:>4}  {:<56} {:<12} {:>9} {:>6}  needs",
        "#", "job", "state", "Gvox", "share"
    );
    for (k, job) in plan.jobs.iter().enumerate() {
        let needs: Vec<String> = job.needs.iter().map(|n| format!("#{n}")).collect();
        println!(
            "{k:>4}  {:<56} {:<12} {:>9.3} {:>5.1}%  {}",
            job.id,
            state(&study, &plan, k).word(),
            cost[k],
            100.0 * cost[k] / total.max(f64::MIN_POSITIVE),
            needs.join(" ")
        );
    }
    println!(
        "{} jobs, {total:.3} Gvox in all (voxels through the encoder, billions: a proxy for time)",
        plan.jobs.len()
    );
    Ok(())
}

fn run(args: &StudyRunArgs) -> Result<()> {
    let selection = match (&args.job, &args.shard) {
        (Some(id), _) => Selection::Job(id),
        (None, Some(shard)) => Selection::Shard(shard),
        (None, None) => Selection::All,
    };
    run_jobs(&args.file, selection, args.jobs, args.device.as_deref()).map(drop)
}

/// Which jobs of a study a run takes.
#[derive(Debug, Clone, Copy)]
enum Selection<'a> {
    /// Every job; the run ends by writing results.csv and the report.
    All,
    /// One job (`--job ID`, what a Slurm array task runs).
    Job(&'a str),
    /// One shard (`--shard i/n`).
    Shard(&'a str),
}

/// Runs every job of the study `file` that is not finished, with a progress line per
/// job, then writes results.csv and the report; returns the report's path.
pub fn run_study(file: &Path, jobs: usize, device: Option<&str>) -> Result<PathBuf> {
    run_jobs(file, Selection::All, jobs, device)?.context("the study run wrote no report")
}

/// Runs the jobs of `selection` that are not finished. Only a whole-study run writes
/// results.csv and the report (and returns the report's path): a job or a shard writes
/// nothing but its own jobs' directories, since other processes (array tasks, shards)
/// run the rest; `medssl study report` (the Slurm report job) writes them at the end.
fn run_jobs(
    file: &Path,
    selection: Selection,
    jobs: usize,
    device: Option<&str>,
) -> Result<Option<PathBuf>> {
    let study = StudyDefinition::load(file)?;
    study.validate(file)?;
    let plan = Plan::new(&study);
    let chosen = match selection {
        Selection::Job(id) => vec![plan.find(id)?],
        Selection::Shard(shard) => {
            let (index, count) = parse_shard(shard)?;
            plan.shard(index, count)?
        }
        Selection::All => (0..plan.jobs.len()).collect(),
    };
    let device = parse_device(device.unwrap_or(&study.device))?;
    let cost = estimate(&study, &plan)?;
    let mut left = [0.0; 3];
    for &k in &chosen {
        if !plan.jobs[k].done_file(&study).is_file() {
            left[stage(&plan.jobs[k].kind)] += cost[k];
        }
    }
    let progress = Mutex::new(Progress {
        left,
        spent: [(0.0, 0.0); 3],
        jobs: chosen.len(),
        finished: 0,
    });
    let observe = |event: RunEvent| {
        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            RunEvent::Started { index } => {
                eprintln!("{} start {}", p.prefix(), plan.jobs[index].id)
            }
            RunEvent::Finished { index, seconds } => {
                p.finished += 1;
                p.account(&plan.jobs[index].kind, cost[index], Some(seconds));
                eprintln!(
                    "{} done  {} ({seconds:.0} s){}",
                    p.prefix(),
                    plan.jobs[index].id,
                    p.eta()
                );
            }
            RunEvent::Failed { index, error } => {
                p.finished += 1;
                p.account(&plan.jobs[index].kind, cost[index], None);
                eprintln!("{} FAILED {}: {error}", p.prefix(), plan.jobs[index].id);
            }
            RunEvent::Blocked { index, needs } => {
                p.finished += 1;
                p.account(&plan.jobs[index].kind, cost[index], None);
                eprintln!(
                    "{} skip  {}: it needs {}, which failed",
                    p.prefix(),
                    plan.jobs[index].id,
                    plan.jobs[needs].id
                );
            }
            RunEvent::Warning { index, message } => {
                eprintln!("{} warning {}: {message}", p.prefix(), plan.jobs[index].id)
            }
            RunEvent::Waiting { index, needs } => eprintln!(
                "{} wait  {} for {} (run by another process or shard)",
                p.prefix(),
                plan.jobs[index].id,
                plan.jobs[needs].id
            ),
        }
    };
    let summary = Runner::new(&study, &plan, device).run(&chosen, jobs, &observe)?;
    let counts = format!(
        "{} finished now, {} already done, {} failed, {} skipped",
        summary.finished.len(),
        summary.already_done.len(),
        summary.failed.len(),
        summary.blocked.len(),
    );
    let report = match selection {
        Selection::All => {
            let rows = write_results(&study, &plan)?;
            let report = write_report(&study, &plan)?;
            eprintln!(
                "{counts}; results: {} ({rows} rows); report: {}",
                study.out_dir().join("results.csv").display(),
                report.display()
            );
            Some(report)
        }
        Selection::Job(_) | Selection::Shard(_) => {
            eprintln!(
                "{counts}; `medssl study report {}` writes results.csv and the report",
                file.display()
            );
            None
        }
    };
    if !summary.failed.is_empty() || !summary.blocked.is_empty() {
        bail!(
            "{} job(s) did not finish; `medssl study status {}` shows why, and running again retries them",
            summary.failed.len() + summary.blocked.len(),
            file.display()
        );
    }
    Ok(report)
}

/// The whole-study progress line: jobs finished of the selection, and the time left.
/// The cost estimate ranks jobs of one kind well but weighs kinds against each other
/// roughly (it leaves out validation and evaluation), so the time left is the cost
/// left of each kind at the seconds per cost unit measured on that kind's finished jobs
/// (on all finished jobs for a kind not seen yet).
struct Progress {
    /// Cost not yet run, per [`stage`].
    left: [f64; 3],
    /// Seconds and cost of the jobs finished by this run, per stage.
    spent: [(f64, f64); 3],
    jobs: usize,
    finished: usize,
}

/// Pretraining, fine-tuning or CKA, as an index.
fn stage(kind: &JobKind) -> usize {
    match kind {
        JobKind::Pretrain { .. } => 0,
        JobKind::Finetune { .. } => 1,
        JobKind::Cka { .. } => 2,
    }
}

impl Progress {
    fn prefix(&self) -> String {
        format!("[{}/{}]", self.finished, self.jobs)
    }

    /// A job of `kind` and `cost` ended, after `seconds` when it ran to its end.
    fn account(&mut self, kind: &JobKind, cost: f64, seconds: Option<f64>) {
        let k = stage(kind);
        self.left[k] = (self.left[k] - cost).max(0.0);
        if let Some(seconds) = seconds {
            self.spent[k].0 += seconds;
            self.spent[k].1 += cost;
        }
    }

    fn eta(&self) -> String {
        let (seconds, cost) = self
            .spent
            .iter()
            .fold((0.0, 0.0), |(s, c), &(ks, kc)| (s + ks, c + kc));
        if cost <= 0.0 || self.finished == self.jobs {
            return String::new();
        }
        let left: f64 = (0..3)
            .map(|k| {
                let (ks, kc) = self.spent[k];
                let rate = if kc > 0.0 { ks / kc } else { seconds / cost };
                self.left[k] * rate
            })
            .sum();
        format!(", about {:.0} min left", left / 60.0)
    }
}

fn status(file: &Path) -> Result<()> {
    let study = StudyDefinition::load(file)?;
    let plan = Plan::new(&study);
    let mut counts = std::collections::BTreeMap::new();
    for (k, job) in plan.jobs.iter().enumerate() {
        let s = state(&study, &plan, k);
        *counts.entry(s.word()).or_insert(0) += 1;
        let detail = match &s {
            JobState::Failed(f) => f.error.clone(),
            JobState::Running(r) => format!("pid {} on {}", r.pid, r.host),
            _ => String::new(),
        };
        println!("{:<12} {:<56} {detail}", s.word(), job.id);
    }
    let summary: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    println!("{} jobs: {}", plan.jobs.len(), summary.join(", "));
    Ok(())
}

fn slurm(args: &SlurmArgs) -> Result<()> {
    let file = std::fs::canonicalize(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let study = StudyDefinition::load(&file)?;
    study.validate(&file)?;
    let plan = Plan::new(&study);
    let medssl = match &args.medssl {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find this program's path")?,
    };
    let this_binary = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .ok()
        .is_some_and(|exe| std::fs::canonicalize(&medssl).is_ok_and(|m| m == exe));
    check_device(&args.device, this_binary)?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| study.out_dir().join("slurm"));
    let options = SlurmOptions {
        medssl,
        partition: args.partition.clone(),
        gpus: args.gpus,
        cpus: args.cpus,
        memory: args.mem.clone(),
        pretrain_time: args.pretrain_time.clone(),
        finetune_time: args.finetune_time.clone(),
        device: args.device.clone(),
    };
    let scripts = write_scripts(&file, &plan, &options, &dir)?;
    println!(
        "wrote {}; submit with {}",
        dir.display(),
        scripts.submit.display()
    );
    Ok(())
}

/// Checks `--device` of the Slurm scripts now rather than in every array task: its
/// syntax (`cpu`, `cuda`, `cuda:N`) and, when the tasks run this binary
/// (`this_binary`), that this binary was built with the backend it needs. No device is
/// opened: the scripts are usually written on a login node without a GPU. Another
/// binary (`--medssl`) is not run here, so only the syntax is checked for it.
fn check_device(device: &str, this_binary: bool) -> Result<()> {
    let index = device.strip_prefix("cuda").map(|rest| match rest {
        "" => Ok(()),
        _ => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .map(drop)
            .ok_or(()),
    });
    match (device, index) {
        ("cpu", _) => Ok(()),
        (_, Some(Ok(()))) if this_binary && !cfg!(feature = "cuda") => bail!(
            "--device {device}: this medssl was built without the `cuda` feature, so the \
             array tasks would fail at start; rebuild with \
             `cargo build --release -p medssl --features cuda` (on a machine with the CUDA \
             toolkit) and run `medssl study slurm` with that binary, or name it with \
             --medssl, or use --device cpu"
        ),
        (_, Some(Ok(()))) => Ok(()),
        (_, Some(Err(()))) => bail!("bad device {device}: use cuda or cuda:N"),
        (_, None) => bail!(
            "unknown device {device}: use cpu{}",
            if cfg!(feature = "cuda") || !this_binary {
                " or cuda[:N]"
            } else {
                " (this binary was built without the cuda feature)"
            }
        ),
    }
}
