//! `medssl pretrain`, `medssl methods` and `medssl config show`: self-supervised
//! pretraining of the Swin encoder on an unlabelled collection, the list of methods,
//! and every setting of a run with its default.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use medssl_data::dataset::Task;
use medssl_ssl::methods::{METHODS, MethodVisitor, visit};
use medssl_ssl::{Method, Preset};
use medssl_train::error::TrainError;
use medssl_train::finetune::FinetuneConfig;
use medssl_train::finetune::pipelines::commented_toml;
use medssl_train::launch::{Launch, start_or_resume};
use medssl_train::pretrain::{Pretrain, PretrainConfig};
use medssl_train::run_dir::RunDir;

use crate::device::parse_device;
use crate::progress::{EpochBar, Interrupt, Verbosity, shell_word, show_event, verbosity};
use crate::run_args::PresetArg;
use crate::run_args::RunArgs;

/// Arguments of `medssl pretrain`.
#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// The method (`medssl methods` lists them).
    #[arg(long, required_unless_present = "resume")]
    method: Option<String>,
    /// The unlabelled collection: a directory searched for NIfTI files and DICOM series,
    /// or a list file naming one per line; with --resume, only to override the stored
    /// path.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Run directory to create.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Train for this many optimiser steps (sets `train.steps`).
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Train for this many passes over the collection (sets `train.epochs`).
    #[arg(long)]
    epochs: Option<u64>,
    /// Probe the encoder's frozen features on this labelled task while it trains
    /// (`medssl probe`'s linear and k-NN scores on its validation cases, logged to
    /// metrics.jsonl; the last in result.json). Sets `probe.task`.
    #[arg(long, value_name = "TASK")]
    probe: Option<PathBuf>,
    /// Probe after every N optimiser steps and after the last (sets `probe.every`;
    /// default 100 in the tiny preset, 1000 in paper).
    #[arg(long, value_name = "N", requires = "probe")]
    probe_every: Option<u64>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "RUN")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// `medssl config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting with its default, as TOML: of pretraining with --method, of
    /// fine-tuning without (with --task, the preprocessing and augmentation a run on
    /// that task would use, each setting with a comment).
    Show {
        /// A pretraining method.
        #[arg(long)]
        method: Option<String>,
        /// A task directory: resolve the fine-tuning transforms for its modality.
        #[arg(long, conflicts_with = "method")]
        task: Option<PathBuf>,
        /// The preset.
        #[arg(long, value_enum, default_value = "tiny")]
        preset: PresetArg,
    },
}

/// `medssl pretrain`.
pub fn pretrain(args: &PretrainArgs) -> Result<()> {
    let method = match (&args.resume, &args.method) {
        (Some(run), _) => {
            let flags = args.steps.is_some() || args.epochs.is_some() || args.probe.is_some();
            if args.run.changes_settings() || flags {
                bail!(
                    "--resume continues with the run's stored settings: drop --config, --set, \
                     --steps, --epochs and --probe"
                );
            }
            PretrainConfig::read(&RunDir::open(run)?)?.method
        }
        (None, Some(method)) => method.clone(),
        (None, None) => bail!("--method is required for a new run"),
    };
    visit(&method, Run(args))?
}

/// `medssl methods`.
pub fn methods(args: &MethodsArgs) -> Result<()> {
    if args.json {
        let list: Vec<_> = METHODS
            .iter()
            .map(|info| {
                serde_json::json!({
                    "name": info.name,
                    "family": info.family.to_string(),
                    "description": info.description,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:<16}{:<26}description", "method", "family");
    for info in METHODS {
        println!(
            "{:<16}{:<26}{}",
            info.name,
            info.family.to_string(),
            info.description
        );
    }
    Ok(())
}

/// Arguments of `medssl methods`.
#[derive(Debug, Args)]
pub struct MethodsArgs {
    /// Print a JSON array of `{name, family, description}` objects instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `medssl config show`.
pub fn config(command: &ConfigCommand) -> Result<()> {
    let ConfigCommand::Show {
        method,
        task,
        preset,
    } = command;
    let finetune = FinetuneConfig::preset((*preset).into());
    let text = match (method, task) {
        (Some(method), _) => visit(method, Show((*preset).into()))??,
        (None, Some(task)) => commented_toml(&finetune, &Task::open(task)?)?,
        (None, None) => finetune.to_toml()?,
    };
    print!("{text}");
    Ok(())
}

/// Prints a method's default configuration.
struct Show(Preset);

impl MethodVisitor for Show {
    type Output = Result<String>;
    fn visit<M: Method>(self) -> Result<String> {
        Ok(PretrainConfig::preset::<M>(self.0)?.to_toml()?)
    }
}

/// Runs `medssl pretrain` with the method's type.
struct Run<'a>(&'a PretrainArgs);

impl MethodVisitor for Run<'_> {
    type Output = Result<()>;
    fn visit<M: Method>(self) -> Result<()> {
        let args = self.0;
        let device = parse_device(&args.run.device)?;
        let (dir, launch) = match &args.resume {
            Some(run_dir) => (run_dir.as_path(), Launch::Resume),
            None => {
                let Some(out) = args.out.as_deref() else {
                    bail!("--data and --out are required for a new run");
                };
                (out, Launch::New(new_config::<M>(args)?))
            }
        };
        let mut run = start_or_resume(
            dir,
            launch,
            |_, _| Ok(Vec::new()),
            |config| {
                let data = args.data.as_deref().ok_or_else(|| {
                    TrainError::Invalid("--data and --out are required for a new run".into())
                })?;
                Pretrain::<M>::start(data, dir, config, device.clone())
            },
            || Pretrain::<M>::resume(dir, args.data.as_deref(), device.clone()),
        )?;
        if let Some(warning) = run.resume_warning() {
            eprintln!("warning: {warning}");
        }
        let run_dir = run.run_dir().root().to_path_buf();
        eprintln!("run directory: {}", run_dir.display());
        eprintln!(
            "{}: {} volumes, {} of {} steps done",
            M::INFO.name,
            run.volumes(),
            run.steps_done(),
            run.total_steps()
        );
        if args.resume.is_some() && run.steps_done() < run.total_steps() {
            eprintln!(
                "resuming at step {}/{} (epoch {}/{})",
                run.steps_done() + 1,
                run.total_steps(),
                run.epochs_done() + 1,
                run.epochs()
            );
        }
        if verbosity() == Verbosity::Verbose {
            eprint!("settings:\n{}", run.config().to_toml()?);
        }
        train(&mut run, verbosity() == Verbosity::Quiet)?;
        eprintln!("done: {}", run_dir.display());
        eprintln!(
            "next: medssl finetune --task TASK --out RUN --init {}",
            shell_word(&run.run_dir().encoder())
        );
        Ok(())
    }
}

/// The configuration of a new run from the command line.
fn new_config<M: Method>(args: &PretrainArgs) -> Result<PretrainConfig> {
    let file = args.run.config_file()?;
    let mut overrides = args.run.set.clone();
    if let Some(steps) = args.steps {
        overrides.push(format!("train.steps={steps}"));
    }
    if let Some(epochs) = args.epochs {
        overrides.push(format!("train.epochs={epochs}"));
    }
    if let Some(task) = &args.probe {
        let task =
            std::path::absolute(task).with_context(|| format!("--probe {}", task.display()))?;
        // A JSON string is a TOML basic string.
        let value = serde_json::to_string(&task.to_string_lossy())?;
        overrides.push(format!("probe.task={value}"));
    }
    if let Some(every) = args.probe_every {
        overrides.push(format!("probe.every={every}"));
    }
    Ok(PretrainConfig::load::<M>(
        args.run.preset.into(),
        file.as_ref().map(|f| f.settings()),
        &overrides,
    )?)
}

/// Trains to the end with a progress bar (unless quiet or not a terminal) and a plain
/// line per epoch; on Ctrl-C, stops at a checkpoint and ends the process with the
/// command that resumes the run.
fn train<M: Method>(run: &mut Pretrain<M>, quiet: bool) -> Result<()> {
    let mut interrupt = Interrupt::install()?;
    run.stop_when(interrupt.flag());
    let (done, total) = (run.steps_done(), run.total_steps());
    let mut bar = EpochBar::new(quiet, run.epochs(), total, done);
    let mut observe = |event| show_event(&mut bar, &mut interrupt, event);
    run.train(u64::MAX, &mut observe)?;
    if run.steps_done() < total {
        interrupt.exit("pretrain", run.run_dir().root());
    }
    Ok(())
}
