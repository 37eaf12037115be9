//! `medssl dataset ...`: check a task before any run depends on it (nnU-Net's
//! `--verify_dataset_integrity`), and turn public datasets as downloaded into tasks
//! (nnU-Net's per-dataset conversion scripts, as one command).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use medssl_data::convert::{self, ConvertOptions, KIND_NAMES, Progress};
use medssl_data::dataset::Task;

use crate::progress::{Verbosity, verbosity};

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
    /// Convert a public dataset, as downloaded and unpacked, into tasks under OUT
    /// (OUT/<Task>/dataset.json, imagesTr/, labelsTr/, imagesTs/). Every case is
    /// checked (channels and label map on one grid, only the dataset's label values);
    /// every problem is listed. The source is only read. An interrupted conversion
    /// resumes when run again. A line per case shows the progress (not with --quiet). `medssl dataset list` names the kinds and the layouts
    /// they expect.
    Convert {
        /// The dataset kind.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(KIND_NAMES))]
        kind: String,
        /// The dataset's folder as unpacked.
        source: PathBuf,
        /// Where the task folders are written.
        out: PathBuf,
        /// totalsegmentator only: the structures merged into the label map, in label
        /// order, comma separated (default: BTCV's thirteen organs).
        #[arg(long, value_delimiter = ',')]
        structures: Option<Vec<String>>,
    },
    /// The dataset kinds `convert` knows: modality, labels, the source layout each
    /// expects, the tasks it writes and where the dataset is published.
    List {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// `medssl dataset`.
pub fn dataset(command: &DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Check { dir } => {
            let (task, report) = Task::open_checked(dir)?;
            for warning in report.warnings() {
                eprintln!("warning: {warning}");
            }
            println!("{}; no problems found", report.summary(&task));
        }
        DatasetCommand::Convert {
            kind,
            source,
            out,
            structures,
        } => {
            let options = ConvertOptions {
                structures: structures.clone(),
            };
            let quiet = verbosity() == Verbosity::Quiet;
            let progress = |p: Progress<'_>| {
                if quiet {
                    return;
                }
                let how = if p.resumed {
                    "written by an earlier run"
                } else {
                    "converted"
                };
                eprintln!("{} [{}/{}] {} {how}", p.task, p.done, p.total, p.case);
            };
            for task in convert::convert(kind, source, out, &options, &progress)? {
                for note in &task.notes {
                    eprintln!("note: {}: {note}", task.name);
                }
                println!(
                    "{}: {} training and {} test case(s) in {}{}; check with `medssl dataset \
                     check {}`",
                    task.name,
                    task.training,
                    task.test,
                    task.dir.display(),
                    if task.resumed > 0 {
                        format!(" ({} written by an earlier run)", task.resumed)
                    } else {
                        String::new()
                    },
                    task.dir.display()
                );
            }
        }
        DatasetCommand::List { json } => {
            if *json {
                println!("{}", serde_json::to_string_pretty(&convert::KINDS)?);
            } else {
                for kind in &convert::KINDS {
                    println!("{}: {}", kind.name, kind.title);
                    println!("  modality:  {}", kind.modality);
                    println!("  labels:    {}", kind.labels);
                    println!("  source:    {}", kind.source_layout);
                    println!("  writes:    {}", kind.tasks);
                    println!("  published: {}", kind.published);
                }
            }
        }
    }
    Ok(())
}
