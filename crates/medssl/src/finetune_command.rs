//! `medssl finetune`: train a SwinUNETR on a labelled task from scratch or from
//! pretrained weights, with a label budget, into a resumable run directory.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use medssl_data::splits::Budget;
use medssl_train::finetune::{Event, Finetune, FinetuneConfig, Init};

use crate::device::parse_device;
use crate::progress::EpochBar;
use crate::run_args::RunArgs;

/// Arguments of `medssl finetune`.
#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// Task directory (MSD / nnU-Net layout with dataset.json); with --resume, only
    /// to override the task path stored in the run.
    #[arg(long, required_unless_present = "resume")]
    task: Option<PathBuf>,
    /// Run directory to create.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// `scratch`, or a checkpoint: an SSL encoder or a SwinUNETR, as medssl, MONAI, Tang
    /// et al. or SMIT write them (.safetensors, .pt, .pth).
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
    /// settings.
    #[arg(long, value_name = "RUN")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// `medssl finetune`.
pub fn finetune(args: &FinetuneArgs) -> Result<()> {
    let device = parse_device(&args.run.device)?;
    let mut run = if let Some(run_dir) = &args.resume {
        if args.run.changes_settings() || args.shots.is_some() || args.fraction.is_some() {
            bail!(
                "--resume continues with the run's stored settings: drop --config, --set, --shots and --fraction"
            );
        }
        Finetune::resume(run_dir, args.task.as_deref(), device)?
    } else {
        let text = args.run.config_text()?;
        let config = FinetuneConfig::load(args.run.preset.into(), text.as_deref(), &args.run.set)?;
        let init = match args.init.as_str() {
            "scratch" => Init::Scratch,
            path => Init::Weights {
                path: PathBuf::from(path),
                allow_unused: args.allow_unused,
            },
        };
        let budget = match (args.shots, args.fraction) {
            (Some(n), _) => Some(Budget::Shots(n)),
            (_, Some(f)) => Some(Budget::Fraction(f)),
            _ => None,
        };
        let (Some(task), Some(out)) = (args.task.as_deref(), args.out.as_deref()) else {
            bail!("--task and --out are required for a new run");
        };
        Finetune::start(task, out, config, init, budget, device)?
    };
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
    let mut bar = EpochBar::new(args.run.quiet);
    let mut observe = |event: Event| match event {
        Event::EpochStart { epoch, batches } => bar.start(epoch, batches as u64),
        Event::Batch { loss } => bar.step(loss),
        Event::EpochEnd {
            epoch,
            mean_loss,
            seconds,
        } => {
            bar.finish();
            eprintln!("epoch {epoch}: loss {mean_loss:.4} ({seconds:.1} s)");
        }
        Event::Validation { epoch, dice, best } => {
            eprintln!("epoch {epoch}: validation Dice {dice:.4} (best {best:.4})");
        }
        Event::Clipped {
            epoch,
            clipped,
            steps,
            largest_norm,
        } => eprintln!(
            "epoch {epoch}: gradient clipped in {clipped} of {steps} steps (largest norm \
             {largest_norm:.3e})"
        ),
    };
    let epochs = u64::MAX;
    run.train(epochs, &mut observe)?;
    eprintln!("done: {}", run.run_dir().path("result.json").display());
    Ok(())
}
