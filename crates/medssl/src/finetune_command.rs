//! `medssl finetune`: train a SwinUNETR on a labelled task from scratch or from
//! pretrained weights, with a label budget, into a resumable run directory.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use indicatif::DecimalBytes;
use medssl_data::splits::Budget;
use medssl_train::finetune::config::KeepCheckpoints;
use medssl_train::finetune::trainer::{Checked, Extended};
use medssl_train::finetune::{Finetune, FinetuneConfig};
use medssl_train::launch::{Launch, start_or_resume};
use medssl_train::run_dir::RunDir;

use crate::device::parse_device;
use crate::progress::{EpochBar, Interrupt, Verbosity, shell_word, show_event, verbosity};
use crate::run_args::{RunArgs, initial_weights};

/// Arguments of `medssl finetune`.
#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// Task directory (MSD / nnU-Net layout with dataset.json); with --resume, only
    /// to override the task path stored in the run.
    #[arg(long, required_unless_present = "resume")]
    task: Option<PathBuf>,
    /// Run directory to create.
    #[arg(
        long,
        required_unless_present_any = ["resume", "check"],
        conflicts_with = "resume"
    )]
    out: Option<PathBuf>,
    /// Check the settings, the label budget, the initial weights and every case of the
    /// task (all problems listed at once), print what the run would use, and stop:
    /// nothing is written.
    #[arg(long, conflicts_with = "resume")]
    check: bool,
    /// `scratch`, a checkpoint (an SSL encoder or a SwinUNETR, as medssl, MONAI, Tang et
    /// al. or SMIT write them: .safetensors, .pt, .pth), or a run directory: a
    /// pretraining run's encoder, a fine-tune run's best weights.
    #[arg(long, default_value = "scratch")]
    init: String,
    /// Import --init weights even when they hold tensors that have no place in a
    /// SwinUNETR and are not known pretext heads (listed in the key report).
    #[arg(long)]
    allow_unused: bool,
    /// Train on this many labelled cases (a nested, seeded subset).
    #[arg(long, conflicts_with = "fraction")]
    shots: Option<usize>,
    /// Train on this fraction of the training cases (nested, seeded, rounded up).
    #[arg(long)]
    fraction: Option<f64>,
    /// Continue the run in this directory from its last checkpoint, with its stored
    /// settings; `--set train.epochs=N` (more than it had) extends it.
    #[arg(long, value_name = "RUN")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// `medssl finetune`.
pub fn finetune(args: &FinetuneArgs) -> Result<()> {
    let device = parse_device(&args.run.device)?;
    let resuming = args.resume.is_some();
    let (dir, launch, extend) = if let Some(run_dir) = &args.resume {
        if args.run.config.is_some() || args.shots.is_some() || args.fraction.is_some() {
            bail!(
                "--resume continues with the run's stored settings: drop --config, --shots and \
                 --fraction (--set train.epochs=N extends the run)"
            );
        }
        let stored = FinetuneConfig::read(&RunDir::open(run_dir)?)?;
        let extend = stored.resume_epochs(&args.run.set)?;
        // An extension of a finished run is refused by `resume`, naming the reason.
        let finished = match extend {
            None => Finetune::finished(run_dir)?,
            Some(_) => None,
        };
        if let Some(finished) = finished {
            eprintln!(
                "{} finished its {} epochs already; nothing to resume",
                run_dir.display(),
                finished.epochs
            );
            print_next(run_dir);
            return Ok(());
        }
        (run_dir.as_path(), Launch::Resume, extend)
    } else {
        let config = args.run.finetune_config()?;
        let init = initial_weights(&args.init, args.allow_unused);
        let budget = match (args.shots, args.fraction) {
            (Some(n), _) => Some(Budget::Shots(n)),
            (_, Some(f)) => Some(Budget::Fraction(f)),
            _ => None,
        };
        let Some(task) = args.task.as_deref() else {
            bail!("--task is required for a new run");
        };
        let checked = Finetune::check(task, config, init, budget)?;
        eprintln!("{}", checked.report.summary(&checked.task));
        for warning in checked.report.warnings() {
            eprintln!("warning: {warning}");
        }
        if args.check {
            print_check(&checked);
            return Ok(());
        }
        let Some(out) = args.out.as_deref() else {
            bail!("--out is required for a new run");
        };
        (out, Launch::New(checked), None)
    };
    let mut run = start_or_resume(
        dir,
        launch,
        |_, _| Ok(Vec::new()),
        |checked| Finetune::start_checked(checked, dir, device.clone()),
        || Finetune::resume(dir, args.task.as_deref(), device.clone()),
    )?;
    if let Some(epochs) = extend {
        let extended = run.extend(epochs)?;
        eprintln!("{}", describe_extension(&extended));
    }
    if verbosity() == Verbosity::Verbose {
        eprint!("settings:\n{}", run.config().to_toml()?);
    }
    for warning in run
        .config()
        .warnings()
        .iter()
        .map(String::as_str)
        .chain(run.resume_warning())
    {
        eprintln!("warning: {warning}");
    }
    if let Some(report) = run.init_report() {
        eprintln!("{}", report.summary());
    }
    let files = run.run_dir().clone();
    let run_dir = files.root().to_path_buf();
    let split = run.split();
    eprintln!("run directory: {}", run_dir.display());
    eprintln!(
        "split: {} train / {} val / {} test ({})",
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        files.split().display()
    );
    let epochs = run.config().train.epochs;
    let (done, per_epoch) = (run.epochs_done(), run.batches_per_epoch());
    if resuming {
        eprintln!(
            "{}",
            match (done, run.batches_done()) {
                (done, _) if done == epochs => format!(
                    "all {epochs} epochs are trained; nothing to resume (--set \
                     train.epochs=N extends the run)"
                ),
                (0, 0) =>
                    format!("no checkpoint was written yet: starting over at epoch 1/{epochs}"),
                (done, 0) => format!(
                    "resuming at epoch {}/{epochs} (checkpoint after epoch {done})",
                    done + 1
                ),
                (done, batches) => format!(
                    "resuming in epoch {}/{epochs} after batch {batches}/{per_epoch}",
                    done + 1
                ),
            }
        );
    }

    let mut interrupt = Interrupt::install()?;
    run.stop_when(interrupt.flag());
    let steps = run.steps_per_epoch();
    let mut bar = EpochBar::new(
        verbosity() == Verbosity::Quiet,
        epochs,
        epochs * steps,
        run.steps_done(),
    );
    let mut observe = |event| show_event(&mut bar, &mut interrupt, event);
    run.train(u64::MAX, &mut observe)?;
    if run.epochs_done() < epochs {
        interrupt.exit("finetune", &run_dir);
    }
    eprintln!("done: {}", files.result().display());
    let removed = run
        .removed_checkpoint_bytes()
        .map(|bytes| {
            format!(
                "; removed the resumable checkpoint ({})",
                DecimalBytes(bytes)
            )
        })
        .unwrap_or_default();
    let (best, last) = (files.best_weights(), files.last_weights());
    let (best, last) = (file_name(&best), file_name(&last));
    let kept = match run.config().train.keep_checkpoints {
        KeepCheckpoints::Best => best.into_owned(),
        KeepCheckpoints::BestAndLast => format!("{best} and {last}"),
        KeepCheckpoints::All => format!("{best}, {last} and the resumable checkpoint"),
    };
    eprintln!("kept {kept}{removed} (train.keep_checkpoints)");
    print_next(&run_dir);
    Ok(())
}

/// The name of a run's file, as messages show it (`best.safetensors`).
fn file_name(path: &Path) -> std::borrow::Cow<'_, str> {
    path.file_name().unwrap_or_default().to_string_lossy()
}

/// What `finetune --check` found: the settings' warnings and the split the run would
/// train on.
fn print_check(checked: &Checked) {
    for warning in checked.config.warnings() {
        eprintln!("warning: {warning}");
    }
    let split = &checked.split;
    println!(
        "check passed: {} train / {} val / {} test cases; nothing written",
        split.train.len(),
        split.validation.len(),
        split.test.len()
    );
}

/// What extending a run does to its length and learning rate.
fn describe_extension(extended: &Extended) -> String {
    let Extended {
        from_epochs,
        to_epochs,
        lr,
        min_lr,
        in_warmup,
    } = *extended;
    let schedule = if in_warmup {
        format!(
            "the warm-up goes on as set, then the cosine decays to train.min_lr {min_lr:.3e} \
             at epoch {to_epochs}"
        )
    } else {
        format!(
            "the learning rate goes on from {lr:.3e} along a cosine re-stretched to reach \
             train.min_lr {min_lr:.3e} at epoch {to_epochs}"
        )
    };
    format!("extending the run from {from_epochs} to {to_epochs} epochs: {schedule}")
}

/// The commands that use a finished run.
fn print_next(run_dir: &Path) {
    let run = shell_word(run_dir);
    eprintln!("next: medssl evaluate --run {run} --split test");
    eprintln!("      medssl predict --run {run} -i IMAGES -o OUT");
}
