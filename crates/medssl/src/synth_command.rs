//! `medssl synth`: synthetic CT/MRI phantoms written as an MSD task or an unlabelled
//! pretraining collection, so a whole study runs without downloading data.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use medssl_synth::{Grid, Kind, Task, write_task};

/// Arguments of `medssl synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Phantom kind: abdomen-ct, abdomen-mri (T1 or T2 per case, same anatomy as
    /// abdomen-ct), headneck-ct or tumor-ct.
    #[arg(long)]
    pub kind: Kind,
    /// Training cases (or images of an unlabelled collection).
    #[arg(long, default_value_t = 20)]
    pub cases: usize,
    /// Grid size in voxels: D for a cube or I,J,K (along x, y, z).
    #[arg(long, default_value = "96", value_delimiter = ',')]
    pub size: Vec<usize>,
    /// Seed: case n of a kind and seed is the same patient at any size, spacing or
    /// number of cases.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (created when missing).
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Voxel spacing in mm, x,y,z [default: the kind's field of view over the size;
    /// abdomen 360 x 300 x 280 mm, head and neck 200 x 220 x 200 mm].
    #[arg(long, value_delimiter = ',')]
    pub spacing: Option<Vec<f64>>,
    /// Write images only, straight into the output directory: a pretraining collection.
    #[arg(long)]
    pub unlabelled: bool,
    /// Test cases, written with labels to imagesTs/ and labelsTs/.
    #[arg(long, default_value_t = 0, conflicts_with = "unlabelled")]
    pub test_cases: usize,
    /// Write into a non-empty output directory, replacing files of the same names
    /// (other files stay).
    #[arg(long)]
    pub force: bool,
}

/// `[I, J, K]` from `--size`.
fn shape(size: &[usize]) -> Result<[usize; 3]> {
    match *size {
        [d] => Ok([d; 3]),
        [i, j, k] => Ok([i, j, k]),
        _ => bail!("--size takes D or I,J,K, got {} values", size.len()),
    }
}

/// Whether `dir` exists and holds anything.
fn is_non_empty_dir(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let mut entries = std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))?;
    Ok(entries.next().is_some())
}

/// `medssl synth`.
pub fn synth(args: &SynthArgs) -> Result<()> {
    let shape = shape(&args.size)?;
    let grid = match &args.spacing {
        None => Grid::fitted(args.kind, shape)?,
        Some(s) => match s[..] {
            [x, y, z] => Grid::new(shape, [x, y, z])?,
            _ => bail!("--spacing takes x,y,z, got {} values", s.len()),
        },
    };
    if !args.force && is_non_empty_dir(&args.out)? {
        bail!(
            "{} is not empty; use --force to write into it (files of the same names are replaced)",
            args.out.display()
        );
    }
    let task = Task {
        kind: args.kind,
        grid,
        seed: args.seed,
        training: args.cases,
        test: args.test_cases,
        unlabelled: args.unlabelled,
    };
    let start = Instant::now();
    let written = write_task(&task, &args.out)?;
    let seconds = start.elapsed().as_secs_f64();
    let [i, j, k] = grid.shape();
    let [x, y, z] = grid.spacing();
    let what = match &written.dataset_json {
        Some(json) => format!(
            "MSD task ({} training + {} test cases, {})",
            args.cases,
            args.test_cases,
            json.display()
        ),
        None => format!("{} unlabelled images", written.images),
    };
    println!(
        "{}: {what}, {i}x{j}x{k} voxels of {x:.2}x{y:.2}x{z:.2} mm, in {seconds:.1} s ({:.1} cases/s)",
        args.kind,
        written.images as f64 / seconds.max(1e-9),
    );
    Ok(())
}
