//! `medssl study`: write, check, plan, run and follow a benchmark study.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::HumanBytes;
use medssl_bench::cost::{PlanEstimate, Rates, estimate, plan_estimate};
use medssl_bench::definition::StudyDefinition;
use medssl_bench::plan::{Plan, Stage, parse_shard};
use medssl_bench::report::write_report;
use medssl_bench::results::write_results;
use medssl_bench::runner::{RunEvent, Runner};
use medssl_bench::slurm::{
    SlurmOptions, SlurmSettings, TimeLimits, parse_memory, parse_name, parse_time, write_scripts,
};
use medssl_bench::state::{StudyStatus, record_timing, status};
use medssl_bench::templates;

use crate::device::{DeviceName, device_model, parse_device};

/// `medssl study` subcommands.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Write a commented study file to edit: an example, or the reference paper's study.
    Init {
        /// Where to write it.
        #[arg(default_value = "study.toml")]
        file: PathBuf,
        /// Which study to start from.
        #[arg(long, value_enum, default_value_t = Template::Example)]
        template: Template,
    },
    /// Check every path, task, method and setting of a study before running it; every
    /// problem is listed.
    Validate { file: PathBuf },
    /// List the study's jobs, their dependencies, state, estimated cost and hours.
    Plan(PlanArgs),
    /// Run the jobs that are not finished (resuming interrupted ones); without --job or
    /// --shard, then write results.csv and the report.
    Run(StudyRunArgs),
    /// Done / running / failed / waiting per job, with the errors of failed ones, and
    /// the disk space the study occupies.
    Status(StatusArgs),
    /// Write Slurm array scripts (pretraining, then each row's fine-tunes after its own
    /// pretraining, CKA, then the report) and submit.sh.
    Slurm(Box<SlurmArgs>),
    /// Write OUT/results.csv and the report (OUT/report/) from the finished fine-tunes.
    Report { file: PathBuf },
}

/// The study files `medssl study init` can write.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Template {
    /// Two placeholder tasks (CT and MRI) and CPU-sized settings, every key explained.
    Example,
    /// The reference paper's study: the nine methods and scratch on nine public CT and
    /// MRI tasks (made by `medssl dataset convert`), few and all labels, paper presets.
    Paper,
}

impl Template {
    /// The file's text.
    fn text(self) -> String {
        match self {
            Template::Example => templates::example(),
            Template::Paper => templates::paper(),
        }
    }
}

/// Arguments of `medssl study plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    file: PathBuf,
    /// The device of the hours estimate: cpu, cuda or cuda:N (default: the study file's
    /// `device`). The rates come from the study's jobs finished on it.
    #[arg(long)]
    device: Option<String>,
    /// Print one JSON document (the fields are listed in the README).
    #[arg(long)]
    json: bool,
}

/// Arguments of `medssl study status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    file: PathBuf,
    /// Print one JSON document (the fields are listed in the README).
    #[arg(long)]
    json: bool,
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
    /// Device: cpu, cuda[:N] or wgpu (default: the study file's `device`).
    #[arg(long)]
    device: Option<String>,
}

/// Arguments of `medssl study slurm`. Each setting overrides the study file's `[slurm]`
/// table; what neither gives takes the default in brackets.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    file: PathBuf,
    /// Directory for the scripts and logs (default: OUT/slurm).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Slurm partition.
    #[arg(long, value_parser = parse_name)]
    partition: Option<String>,
    /// Account charged for the jobs.
    #[arg(long, value_parser = parse_name)]
    account: Option<String>,
    /// Quality of service.
    #[arg(long, value_parser = parse_name)]
    qos: Option<String>,
    /// GPUs per task [1].
    #[arg(long)]
    gpus: Option<u32>,
    /// CPUs per task [8].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    cpus: Option<u32>,
    /// Memory per task [64G].
    #[arg(long, value_parser = parse_memory)]
    mem: Option<String>,
    /// Time limit of a pretraining task [24:00:00].
    #[arg(long, value_parser = parse_time)]
    pretrain_time: Option<String>,
    /// Time limit of a fine-tune task [08:00:00].
    #[arg(long, value_parser = parse_time)]
    finetune_time: Option<String>,
    /// Time limit of a CKA task [the fine-tune's].
    #[arg(long, value_parser = parse_time)]
    cka_time: Option<String>,
    /// Time limit of the report job [00:30:00].
    #[arg(long, value_parser = parse_time)]
    report_time: Option<String>,
    /// At most N tasks of each array at once (`--array=A-B%N`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    array_limit: Option<u32>,
    /// Device of the tasks: cpu, cuda[:N] or wgpu (checked now: needs a binary built with
    /// that feature).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// The medssl binary the tasks run (default: this one).
    #[arg(long)]
    medssl: Option<PathBuf>,
}

impl SlurmArgs {
    /// The settings given on the command line.
    fn settings(&self) -> SlurmSettings {
        SlurmSettings {
            account: self.account.clone(),
            qos: self.qos.clone(),
            partition: self.partition.clone(),
            gpus: self.gpus,
            cpus: self.cpus,
            mem: self.mem.clone(),
            time: TimeLimits {
                pretrain: self.pretrain_time.clone(),
                finetune: self.finetune_time.clone(),
                cka: self.cka_time.clone(),
                report: self.report_time.clone(),
            },
            array_limit: self.array_limit,
            extra: Vec::new(),
        }
    }
}

/// `medssl study ...`.
pub fn study(command: &StudyCommand) -> Result<()> {
    match command {
        StudyCommand::Init { file, template } => init(file, *template),
        StudyCommand::Validate { file } => {
            let study = StudyDefinition::check(file)?;
            println!(
                "{}: valid ({} jobs)",
                file.display(),
                Plan::new(&study).jobs.len()
            );
            Ok(())
        }
        StudyCommand::Plan(args) => plan(args),
        StudyCommand::Run(args) => run(args),
        StudyCommand::Status(args) => print_status(args),
        StudyCommand::Slurm(args) => slurm(args),
        StudyCommand::Report { file } => {
            let study = StudyDefinition::load(file)?;
            let plan = Plan::new(&study);
            let rows = write_results(&study, &plan)?;
            let report = write_report(&study, &plan, crate::BUILD)?;
            println!("{}", written(&study, rows, &report));
            Ok(())
        }
    }
}

fn init(file: &Path, template: Template) -> Result<()> {
    if file.exists() {
        bail!("{} exists; choose another file name", file.display());
    }
    std::fs::write(file, template.text())
        .with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "wrote {}: edit the paths, then `medssl study validate {}`",
        file.display(),
        file.display()
    );
    Ok(())
}

fn plan(args: &PlanArgs) -> Result<()> {
    let study = StudyDefinition::load(&args.file)?;
    study.validate(&args.file)?;
    let device = args.device.as_deref().unwrap_or(&study.device);
    check_device(device, false)?;
    let plan = Plan::new(&study);
    let estimate = plan_estimate(&study, &plan, device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&estimate)?);
    } else {
        print_plan(&estimate, &args.file);
    }
    Ok(())
}

/// `study plan`'s table and its summary: the time left on the device and where its
/// rates come from.
fn print_plan(estimate: &PlanEstimate, file: &Path) {
    println!(
        "{:>4}  {:<56} {:<12} {:>9} {:>6} {:>7}  needs",
        "#", "job", "state", "Gvox", "share", "hours"
    );
    let total = estimate.total_gvox.max(f64::MIN_POSITIVE);
    for job in &estimate.jobs {
        let needs: Vec<String> = job.job.needs.iter().map(|n| format!("#{n}")).collect();
        let hours = job.hours.map_or("-".to_string(), |h| format!("{h:.2}"));
        println!(
            "{:>4}  {:<56} {:<12} {:>9.3} {:>5.1}% {hours:>7}  {}",
            job.job.index,
            job.job.id,
            job.state,
            job.gvox,
            100.0 * job.gvox / total,
            needs.join(" ")
        );
    }
    println!(
        "{} jobs, {:.3} Gvox in all (voxels through the encoder, billions: a proxy for time)",
        estimate.jobs.len(),
        estimate.total_gvox
    );
    let device = &estimate.device;
    match estimate.left_hours {
        Some(hours) => {
            let rates: Vec<String> = Stage::ALL
                .iter()
                .map(|stage| match estimate.rates.0.get(stage) {
                    Some(m) if m.gvox > 0.0 => format!(
                        "{} {:.0} s/Gvox ({} job{})",
                        stage.word(),
                        m.seconds / m.gvox,
                        m.jobs,
                        if m.jobs == 1 { "" } else { "s" }
                    ),
                    _ => format!("{} from all kinds", stage.word()),
                })
                .collect();
            println!(
                "left: {} jobs, {:.3} Gvox, about {hours:.2} hours on {device}, one job at a \
                 time, at the rates of this study's jobs finished on {device}: {}",
                estimate.left_jobs,
                estimate.left_gvox,
                rates.join(", ")
            );
        }
        None => println!(
            "left: {} jobs, {:.3} Gvox; hours on {device}: not measured yet (the rates come \
             from this study's jobs finished on {device}: run one, e.g. `medssl study run {} \
             --job ID --device {device}`)",
            estimate.left_jobs,
            estimate.left_gvox,
            file.display()
        ),
    }
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
    let device_name = device.unwrap_or(&study.device);
    let device = parse_device(device_name)?;
    let model = device_model(device_name, &device);
    let cost = estimate(&study, &plan)?;
    let mut left = BTreeMap::new();
    for &k in &chosen {
        if !plan.jobs[k].done_file(&study).is_file() {
            *left.entry(plan.jobs[k].kind.stage()).or_insert(0.0) += cost[k];
        }
    }
    let progress = Mutex::new(Progress {
        left,
        rates: Rates::measured(&study, &plan, &cost, device_name),
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
                let job = &plan.jobs[index];
                p.account(job.kind.stage(), cost[index], Some(seconds));
                if let Err(e) = record_timing(&study, job, device_name, &model, seconds) {
                    eprintln!(
                        "{} warning {}: its time is not recorded: {e}",
                        p.prefix(),
                        job.id
                    );
                }
                eprintln!(
                    "{} done  {} ({seconds:.0} s){}",
                    p.prefix(),
                    plan.jobs[index].id,
                    p.eta()
                );
            }
            RunEvent::Failed { index, error } => {
                p.finished += 1;
                p.account(plan.jobs[index].kind.stage(), cost[index], None);
                eprintln!("{} FAILED {}: {error}", p.prefix(), plan.jobs[index].id);
            }
            RunEvent::Blocked { index, needs } => {
                p.finished += 1;
                p.account(plan.jobs[index].kind.stage(), cost[index], None);
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
            let report = write_report(&study, &plan, crate::BUILD)?;
            eprintln!("{counts}; {}", written(&study, rows, &report));
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

/// The whole-study progress line: jobs finished of the selection, and the time left:
/// the cost left of each stage at the seconds per Gvox measured on this device (the
/// study's jobs finished earlier and those of this run; see [`Rates`]).
struct Progress {
    /// Cost not yet run, per stage.
    left: BTreeMap<Stage, f64>,
    rates: Rates,
    jobs: usize,
    finished: usize,
}

impl Progress {
    fn prefix(&self) -> String {
        format!("[{}/{}]", self.finished, self.jobs)
    }

    /// A job of `stage` and `cost` ended, after `seconds` when it ran to its end.
    fn account(&mut self, stage: Stage, cost: f64, seconds: Option<f64>) {
        if let Some(left) = self.left.get_mut(&stage) {
            *left = (*left - cost).max(0.0);
        }
        if let Some(seconds) = seconds {
            self.rates.add(stage, seconds, cost);
        }
    }

    fn eta(&self) -> String {
        if self.finished == self.jobs {
            return String::new();
        }
        let left: Option<f64> = self
            .left
            .iter()
            .map(|(&stage, &gvox)| self.rates.seconds(stage, gvox))
            .sum();
        left.map_or(String::new(), |s| {
            format!(", about {:.0} min left", s / 60.0)
        })
    }
}

fn print_status(args: &StatusArgs) -> Result<()> {
    let study = StudyDefinition::load(&args.file)?;
    let plan = Plan::new(&study);
    let status = status(&study, &plan)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    for job in &status.jobs {
        let detail = match (&job.error, &job.running) {
            (Some(error), _) => error.clone(),
            (_, Some(r)) => format!("pid {} on {}", r.pid, r.host),
            _ => String::new(),
        };
        println!("{:<12} {:<56} {detail}", job.state, job.job.id);
    }
    println!("{}", disk_line(&status));
    let summary: Vec<String> = status
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(w, n)| format!("{n} {w}"))
        .collect();
    println!("{} jobs: {}", status.jobs.len(), summary.join(", "));
    Ok(())
}

/// `disk: 4.90 GiB in OUT, of which 4.60 GiB in checkpoint/ directories ...`.
fn disk_line(status: &StudyStatus) -> String {
    let disk = status.disk;
    format!(
        "disk: {} in {}, of which {} in the runs' checkpoint/ directories (weights and \
         optimiser state kept for resuming)",
        HumanBytes(disk.total_bytes),
        status.out.display(),
        HumanBytes(disk.checkpoint_bytes)
    )
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
        .unwrap_or_else(|| study.layout().slurm_dir());
    let options = SlurmOptions {
        medssl,
        device: args.device.clone(),
        settings: study.slurm.overridden_by(&args.settings()),
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
/// syntax (`cpu`, `cuda`, `cuda:N`, `wgpu`) and, when the tasks run this binary
/// (`this_binary`), that this binary was built with the backend it needs. No device is
/// opened: the scripts are usually written on a login node without a GPU. Another
/// binary (`--medssl`) is not run here, so only the syntax is checked for it.
fn check_device(device: &str, this_binary: bool) -> Result<()> {
    let name = DeviceName::parse(device)?;
    if this_binary {
        name.check_compiled().map_err(|e| {
            anyhow::anyhow!(
                "{e}; the array tasks would fail at start (run `medssl study slurm` with a \
                 binary that has it, or name one with --medssl)"
            )
        })?;
    }
    Ok(())
}

/// What `study report` (and the end of `study run`) wrote: the wide and the long results
/// table, the report and its LaTeX tables.
fn written(study: &StudyDefinition, rows: usize, report: &Path) -> String {
    let layout = study.layout();
    format!(
        "results: {} ({rows} rows), {}; report: {}, LaTeX tables: {}",
        layout.results().display(),
        layout.results_long().display(),
        report.display(),
        layout.report_latex().display()
    )
}
