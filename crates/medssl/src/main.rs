//! The `medssl` command-line program.

mod image_commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Self-supervised pretraining and transfer benchmarking for 3D medical image
/// segmentation.
#[derive(Debug, Parser)]
#[command(name = "medssl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe a NIfTI file, a DICOM file or a DICOM series directory.
    Info(image_commands::InfoArgs),
    /// Convert a DICOM file/series or NIfTI file to NIfTI.
    Convert(image_commands::ConvertArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => image_commands::info(&args),
        Command::Convert(args) => image_commands::convert(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
