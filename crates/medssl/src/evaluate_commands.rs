//! `medssl evaluate` and `medssl predict`: using a fine-tuned run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use medssl_eval::evaluate::Part;
use medssl_eval::predictor::{predict_inputs, spacing_warning};
use medssl_io::atomic::create_dir_for_writes;
use medssl_train::finetune::trained_run::{TrainedRun, evaluate_run, training_spacing};
use medssl_train::run_dir::RunDir;

use crate::device::parse_device;

/// A part of a run's split, as `--split` names it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SplitArg {
    Val,
    Test,
}

impl SplitArg {
    pub(crate) fn part(self) -> Part {
        match self {
            SplitArg::Val => Part::Val,
            SplitArg::Test => Part::Test,
        }
    }
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
    /// Device: cpu, or cuda[:N] or wgpu in a build with that feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// `medssl evaluate`.
pub fn evaluate_command(args: &EvaluateArgs) -> Result<()> {
    let part = args.split.part();
    let evaluation = evaluate_run(
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
            RunDir::at(&args.run).evaluation(part).display()
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
    /// Input: a NIfTI file or DICOM series directory (with an output ending in .nii or
    /// .nii.gz), or a folder of NIfTI files and DICOM series folders.
    #[arg(
        short,
        long,
        conflicts_with = "input_arg",
        required_unless_present = "input_arg"
    )]
    input: Option<PathBuf>,
    /// Output: the label map (.nii or .nii.gz) on the input's grid, or for a folder
    /// input a folder that gets CASE.nii.gz per case.
    #[arg(
        short,
        long,
        conflicts_with = "output_arg",
        required_unless_present = "output_arg"
    )]
    output: Option<PathBuf>,
    /// The input, given without -i.
    #[arg(value_name = "INPUT")]
    input_arg: Option<PathBuf>,
    /// The output, given without -o.
    #[arg(value_name = "OUTPUT")]
    output_arg: Option<PathBuf>,
    /// Also write class probabilities (float32, one channel per class): a .nii.gz file,
    /// or for a folder input a folder that gets CASE.nii.gz per case.
    #[arg(long)]
    probabilities: Option<PathBuf>,
    /// Device: cpu, or cuda[:N] or wgpu in a build with that feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Whether `path` names a NIfTI file (so `predict` segments one image into it).
fn is_nifti_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".nii") || n.ends_with(".nii.gz"))
}

/// `medssl predict`: one image into one label map, or a folder into a folder with a
/// line per case (its time and output), a warning for an input whose spacing is far
/// from the training spacing, and an error line for a case that fails while the others
/// go on (the command then fails, with the count).
pub fn predict_command(args: &PredictArgs) -> Result<()> {
    let input = args
        .input
        .as_ref()
        .or(args.input_arg.as_ref())
        .expect("clap requires it");
    let output = args
        .output
        .as_ref()
        .or(args.output_arg.as_ref())
        .expect("clap requires it");
    // A folder's inputs are listed (and refused) before the network is loaded.
    let cases = if is_nifti_name(output) {
        None
    } else if input.is_dir() {
        Some(predict_inputs(input)?)
    } else {
        bail!(
            "{}: a single image needs an output file name ending in .nii or .nii.gz, got {}",
            input.display(),
            output.display()
        );
    };
    let trained = TrainedRun::open(&args.run, parse_device(&args.device)?)?;
    let training = training_spacing(&args.run, &trained.config);
    if let Err(e) = &training {
        eprintln!("warning: no spacing check, the training spacing is unknown: {e}");
    }
    let check = |case: &str, spacing: [f64; 3]| {
        if let Some(warning) = training
            .as_ref()
            .ok()
            .and_then(|t| spacing_warning(spacing, t))
        {
            eprintln!("warning: {case}: {warning}");
        }
    };
    let Some(cases) = cases else {
        let spacing =
            trained
                .predictor
                .predict_file(input, output, args.probabilities.as_deref())?;
        check(&input.display().to_string(), spacing);
        return Ok(());
    };
    for dir in std::iter::once(output).chain(args.probabilities.as_ref()) {
        create_dir_for_writes(dir).with_context(|| format!("{}", dir.display()))?;
    }
    let mut failed = Vec::new();
    for case in &cases {
        let file = format!("{}.nii.gz", case.case);
        let target = output.join(&file);
        let probabilities = args.probabilities.as_ref().map(|dir| dir.join(&file));
        let started = Instant::now();
        match trained
            .predictor
            .predict_file(&case.path, &target, probabilities.as_deref())
        {
            Ok(spacing) => {
                println!(
                    "{}  {:.1} s  -> {}",
                    case.case,
                    started.elapsed().as_secs_f64(),
                    target.display()
                );
                check(&case.case, spacing);
            }
            Err(e) => {
                // The error names the input file.
                eprintln!("error: {}: {e}", case.case);
                failed.push(case.case.as_str());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} cases failed: {}",
            failed.len(),
            cases.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
