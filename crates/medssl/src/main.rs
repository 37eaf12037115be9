//! The `medssl` command-line program.

mod image_commands;
mod speed_command;
mod weights_commands;

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
    /// Time SwinUNETR forward, training step and sliding-window inference here.
    Speed(speed_command::SpeedArgs),
    /// Import, inspect and export SwinUNETR weights.
    #[command(subcommand)]
    Weights(weights_commands::WeightsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => image_commands::info(&args),
        Command::Convert(args) => image_commands::convert(&args),
        Command::Weights(command) => weights_commands::run(&command),
        Command::Speed(args) => speed_command::speed(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
