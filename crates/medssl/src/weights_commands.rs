//! `medssl weights import | inspect | export`: moving SwinUNETR weights between MONAI,
//! SMIT, Tang et al.'s SSL checkpoints and medssl.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use medssl_model::SwinUnetr;
use medssl_model::checkpoint::{Architecture, Checkpoint, infer_architecture};
use medssl_model::weights::{export_monai_safetensors, load_monai_safetensors_bytes};

/// `medssl weights` subcommands.
#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Convert a MONAI/SMIT/SSL checkpoint (.safetensors, .pt, .pth) to medssl safetensors
    /// with MONAI key names, printing the architecture found.
    Import(ImportArgs),
    /// List a checkpoint's tensors and the architecture they imply.
    Inspect(InspectArgs),
    /// Write a file that MONAI's SwinUNETR loads with load_state_dict(strict=True).
    Export(ImportArgs),
}

/// Input and output of `import` and `export`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    pub input: PathBuf,
    pub output: PathBuf,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    pub file: PathBuf,
}

/// Runs a `weights` subcommand.
pub fn run(command: &WeightsCommand) -> Result<()> {
    match command {
        WeightsCommand::Import(args) => import(args),
        WeightsCommand::Inspect(args) => inspect(args),
        WeightsCommand::Export(args) => export(args),
    }
}

/// The architecture of `checkpoint`, or an error naming the file.
fn architecture(checkpoint: &Checkpoint, path: &Path) -> Result<Architecture> {
    infer_architecture(&checkpoint.shapes())
        .map_err(|why| anyhow!("{}: cannot infer the architecture: {why}", path.display()))
}

fn import(args: &ImportArgs) -> Result<()> {
    let checkpoint = Checkpoint::read(&args.input)?;
    let arch = architecture(&checkpoint, &args.input)?;
    println!("{arch}");
    if let Some(wrapper) = &checkpoint.wrapper {
        println!("state dict found under '{wrapper}'");
    }
    if !checkpoint.dropped.is_empty() {
        println!(
            "left out {} tensors of other modules: {}",
            checkpoint.dropped.len(),
            checkpoint.dropped.join(", ")
        );
    }
    checkpoint.write(&args.output)?;
    println!(
        "wrote {} ({} tensors)",
        args.output.display(),
        checkpoint.tensors.len()
    );
    Ok(())
}

fn inspect(args: &InspectArgs) -> Result<()> {
    let checkpoint = Checkpoint::read(&args.file)?;
    for (name, t) in &checkpoint.tensors {
        println!("{name:<70} {:?} {:?}", t.dtype, t.shape);
    }
    for name in &checkpoint.dropped {
        println!("{name:<70} (not part of SwinUNETR)");
    }
    match infer_architecture(&checkpoint.shapes()) {
        Ok(arch) => println!("{arch}"),
        Err(why) => println!("architecture: unknown ({why})"),
    }
    Ok(())
}

fn export(args: &ImportArgs) -> Result<()> {
    let checkpoint = Checkpoint::read(&args.input)?;
    let arch = architecture(&checkpoint, &args.input)?;
    if arch.out_channels.is_none() {
        bail!(
            "{}: an encoder-only checkpoint has no decoder to export as a full SwinUNETR",
            args.input.display()
        );
    }
    // Load the name-normalised tensors, so wrapped or .pt inputs load like our own files.
    let bytes = checkpoint.to_safetensors(&args.input)?;
    let mut model = SwinUnetr::new(&arch.config(), &Device::flex())?;
    let report = load_monai_safetensors_bytes(&mut model, bytes, &args.input)?;
    if !report.is_exact() {
        bail!(
            "{}: weights do not fill the network: missing {:?}, mismatched {:?}, unexpected {:?}",
            args.input.display(),
            report.missing,
            report.mismatched,
            report.unexpected
        );
    }
    export_monai_safetensors(&model, &args.output)?;
    println!("{arch}\nwrote {}", args.output.display());
    Ok(())
}
