//! `medssl weights import | inspect | export`: moving SwinUNETR weights between MONAI,
//! SMIT, Tang et al.'s SSL checkpoints and medssl.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use medssl_model::SwinUnetr;
use medssl_model::foreign::{Architecture, Checkpoint, infer_architecture};
use medssl_model::import::import_checkpoint;
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
    Export(ExportArgs),
}

/// Input and output of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Import even when the file holds tensors that have no place in a SwinUNETR and are
    /// not known pretext heads (they are listed, then left out of the output).
    #[arg(long)]
    pub allow_unused: bool,
}

/// Input and output of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
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

/// Reads a foreign checkpoint, loads it into the network it describes under the import
/// rule ([`import_checkpoint`]), and writes the tensors that were loaded.
fn import(args: &ImportArgs) -> Result<()> {
    let mut checkpoint = Checkpoint::read(&args.input)?;
    let arch = architecture(&checkpoint, &args.input)?;
    println!("{arch}");
    if let Some(wrapper) = &checkpoint.wrapper {
        println!("state dict found under '{wrapper}'");
    }
    let mut model = SwinUnetr::new(&arch.config(), &Device::flex())?;
    let report = import_checkpoint(&mut model, &checkpoint, &args.input, args.allow_unused)?;
    println!("{}", report.summary());
    // Only what reached the network (and MONAI's derived index buffers) is written, so
    // the output imports exactly.
    checkpoint.tensors.retain(|name, _| {
        name.ends_with(".relative_position_index") || report.loaded.binary_search(name).is_ok()
    });
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
    println!("layout: {}", checkpoint.layout.describe());
    for name in &checkpoint.dropped {
        println!("{name:<70} (pretext head, left out)");
    }
    for (name, why) in &checkpoint.unused {
        println!("{name:<70} (no place in SwinUNETR: {why})");
    }
    match infer_architecture(&checkpoint.shapes()) {
        Ok(arch) => println!("{arch}"),
        Err(why) => println!("architecture: unknown ({why})"),
    }
    Ok(())
}

fn export(args: &ExportArgs) -> Result<()> {
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
