//! `medssl probe`: how well an encoder's frozen features tell a task's classes apart,
//! stage by stage, without fine-tuning (a linear probe and DINO's k-NN on the tokens).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use medssl_eval::probe::stages_json;
use medssl_train::finetune::Init;
use medssl_train::finetune::probe_encoder::{ProbeReport, probe_encoder};
use serde_json::{Value, json};

use crate::device::parse_device;
use crate::evaluate_commands::SplitArg;
use crate::run_args::{RunArgs, initial_weights};

/// Arguments of `medssl probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The encoder: a weights file (any layout `finetune --init` takes), a pretraining
    /// run (its encoder.safetensors), a fine-tune run (its best.safetensors), or
    /// `scratch` (the random initialisation of the seed).
    encoder: String,
    /// The labelled task (MSD / nnU-Net layout).
    #[arg(long)]
    task: PathBuf,
    /// Which held-out cases of the split (drawn as a fine-tune of the same settings
    /// draws it) to score; the probes are fitted on its training cases.
    #[arg(long, value_enum, default_value = "val")]
    split: SplitArg,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Fine-tuning settings: model shape (`model.*`, which must fit the encoder), crop,
    /// preprocessing, split and seed.
    #[command(flatten)]
    run: RunArgs,
}

/// `medssl probe`.
pub fn probe_command(args: &ProbeArgs) -> Result<()> {
    let config = args.run.finetune_config()?;
    let device = parse_device(&args.run.device)?;
    let init = initial_weights(&args.encoder, false);
    let part = args.split.part();
    let cache = std::env::temp_dir().join("medssl-probe-cache");
    let ProbeReport {
        init: loaded,
        train_cases,
        held_out_cases,
        stages,
    } = probe_encoder(&args.task, &init, config, part, &cache, &device)?;
    if args.json {
        let weights = match &init {
            Init::Scratch => Value::Null,
            Init::Weights { path, .. } => json!(path.display().to_string()),
        };
        let out = json!({
            "encoder": args.encoder,
            "weights": weights,
            "task": args.task.display().to_string(),
            "split": part.name(),
            "train_cases": train_cases,
            "held_out_cases": held_out_cases,
            "stages": stages_json(&stages),
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    if let Some(report) = loaded {
        eprintln!("{}", report.summary());
    }
    println!(
        "probe of {} on {}: fitted on {train_cases} training case(s), scored on \
         {held_out_cases} {} case(s); balanced accuracy (chance: 1 / classes)",
        args.encoder,
        args.task.display(),
        part.name()
    );
    println!(
        "{:<12} {:>14} {:>8} {:>8}  linear Dice per class",
        "stage", "tokens", "linear", "k-NN"
    );
    let score = |v: f64| {
        if v.is_finite() {
            format!("{v:.4}")
        } else {
            "-".into()
        }
    };
    for stage in &stages {
        let dice: Vec<String> = stage.linear.dice.iter().map(|&d| score(d)).collect();
        println!(
            "{:<12} {:>14} {:>8} {:>8}  {}",
            stage.stage,
            format!("{}/{}", stage.train_tokens, stage.held_out_tokens),
            score(stage.linear.balanced_accuracy),
            score(stage.knn.balanced_accuracy),
            dice.join(" ")
        );
    }
    Ok(())
}
