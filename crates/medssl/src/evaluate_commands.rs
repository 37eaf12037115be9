//! `medssl evaluate` and `medssl predict`: using a fine-tuned run.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use medssl_train::finetune::evaluate::{Part, evaluate};
use medssl_train::finetune::inference::predict_file;

use crate::device::parse_device;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SplitArg {
    Val,
    Test,
}

/// Arguments of `medssl evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The run directory (from `medssl finetune`).
    #[arg(long)]
    run: PathBuf,
    /// Task directory; defaults to the one the run was trained on.
    #[arg(long)]
    task: Option<PathBuf>,
    /// Which cases of the run's split to score.
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Normalised-surface-Dice tolerance in mm, for every class.
    #[arg(long, default_value_t = 1.0)]
    nsd_tolerance: f64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Device: cpu, or cuda[:N] in a build with the cuda feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// `medssl evaluate`.
pub fn evaluate_command(args: &EvaluateArgs) -> Result<()> {
    let part = match args.split {
        SplitArg::Val => Part::Val,
        SplitArg::Test => Part::Test,
    };
    let evaluation = evaluate(
        &args.run,
        args.task.as_deref(),
        part,
        args.nsd_tolerance,
        parse_device(&args.device)?,
    )?;
    let summary = evaluation.to_json(args.nsd_tolerance);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} cases ({}): mean foreground Dice {:.4}",
            evaluation.cases.len(),
            part.name(),
            evaluation.mean_dice()
        );
        println!(
            "{:<20} {:>8} {:>8} {:>8} {:>8}",
            "class", "Dice", "HD95", "ASD", "NSD"
        );
        for (name, stats) in evaluation.classes.iter().zip(&evaluation.summary.classes) {
            println!(
                "{name:<20} {:>8.4} {:>8.2} {:>8.2} {:>8.4}",
                stats.dice.mean, stats.hd95.mean, stats.asd_symmetric.mean, stats.nsd.mean
            );
        }
        println!(
            "per-case metrics: {}",
            args.run
                .join(format!("evaluation-{}.csv", part.name()))
                .display()
        );
    }
    Ok(())
}

/// Arguments of `medssl predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The run directory (from `medssl finetune`).
    #[arg(long)]
    run: PathBuf,
    /// Input image: NIfTI file or DICOM series directory.
    input: PathBuf,
    /// Output label map (.nii.gz), on the input's grid.
    output: PathBuf,
    /// Also write class probabilities (float32, one channel per class) here.
    #[arg(long)]
    probabilities: Option<PathBuf>,
    /// Device: cpu, or cuda[:N] in a build with the cuda feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// `medssl predict`.
pub fn predict_command(args: &PredictArgs) -> Result<()> {
    predict_file(
        &args.run,
        &args.input,
        &args.output,
        args.probabilities.as_deref(),
        parse_device(&args.device)?,
    )?;
    Ok(())
}
