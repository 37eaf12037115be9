//! `medssl cka`: feature reuse between two networks, per encoder stage.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use medssl_train::finetune::trained_run::compare_networks;

use crate::device::parse_device;

/// Arguments of `medssl cka`.
#[derive(Debug, Args)]
pub struct CkaArgs {
    /// First network: a fine-tune run directory, or a weights file (e.g. a pretraining's
    /// `encoder.safetensors`).
    a: PathBuf,
    /// Second network, the same way.
    b: PathBuf,
    /// The fine-tune run whose validation cases and preprocessing make the probe
    /// patches; defaults to the first of A and B that is a run directory.
    #[arg(long)]
    probe: Option<PathBuf>,
    /// Task directory; defaults to the one the probe run was trained on.
    #[arg(long)]
    task: Option<PathBuf>,
    /// Probe patches (of the run's `model.roi`), round-robin over the validation cases,
    /// then the test and training cases when those give too few.
    #[arg(long, default_value_t = 32)]
    patches: usize,
    /// Patches per minibatch of the unbiased minibatch CKA (at least 4).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Print the comparison as one JSON object.
    #[arg(long)]
    json: bool,
    /// Device: cpu, or cuda[:N] or wgpu in a build with that feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// `medssl cka`.
pub fn cka_command(args: &CkaArgs) -> Result<()> {
    let probe = match &args.probe {
        Some(run) => run.clone(),
        None => match [&args.a, &args.b].into_iter().find(|p| p.is_dir()) {
            Some(run) => run.clone(),
            None => bail!(
                "neither {} nor {} is a fine-tune run directory: name the run whose \
                 validation cases make the probe with --probe RUN",
                args.a.display(),
                args.b.display()
            ),
        },
    };
    if args.batch < 4 {
        bail!(
            "--batch {}: the unbiased minibatch CKA needs at least 4 patches per batch",
            args.batch
        );
    }
    let device = parse_device(&args.device)?;
    let pair = [(args.a.clone(), args.b.clone())];
    let reuse = compare_networks(
        &probe,
        args.task.as_deref(),
        &pair,
        args.patches,
        args.batch,
        &device,
    )?
    .remove(0);
    if args.json {
        println!("{}", serde_json::to_string(&reuse)?);
        return Ok(());
    }
    println!(
        "{} patches of {:?} voxels from {} cases of {}",
        reuse.patches,
        reuse.roi,
        reuse.cases.len(),
        probe.display()
    );
    println!(
        "{:<12} {:>10} {:>12} {:>14}",
        "stage", "features", "linear CKA", "minibatch CKA"
    );
    for stage in &reuse.stages {
        let linear = stage
            .linear_cka
            .map_or("–".to_string(), |v| format!("{v:.4}"));
        println!(
            "{:<12} {:>10} {:>12} {:>14.4}",
            stage.stage, stage.features, linear, stage.minibatch_cka
        );
    }
    Ok(())
}
