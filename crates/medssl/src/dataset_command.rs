//! `medssl dataset check DIR`: read every case of a task and list every problem at once
//! (nnU-Net's `--verify_dataset_integrity`), before any run depends on the data.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use medssl_data::dataset::Task;

/// `medssl dataset ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Read every training and test case of a task (MSD / nnU-Net layout) and list every
    /// problem: missing or unreadable files, channels other than declared or off one
    /// grid, NaN or infinite voxels, label maps off the image grid (grids agree when the
    /// shapes are equal and the affines' entries differ by at most 1e-4 of their
    /// magnitude, at least 1e-3 mm) or holding undeclared values. Exits with status 1
    /// when there is one; otherwise prints the cases, channels, classes and spacing
    /// range.
    Check {
        /// Task directory (the one holding dataset.json).
        dir: PathBuf,
    },
}

/// `medssl dataset`.
pub fn dataset(command: &DatasetCommand) -> Result<()> {
    let DatasetCommand::Check { dir } = command;
    let (task, report) = Task::open_checked(dir)?;
    for warning in report.warnings() {
        eprintln!("warning: {warning}");
    }
    println!("{}; no problems found", report.summary(&task));
    Ok(())
}
