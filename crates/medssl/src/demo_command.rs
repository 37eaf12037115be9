//! `medssl demo`: the whole study in miniature on synthetic data, so a new user sees
//! every step (pretraining, fine-tuning at two label budgets, evaluation, report) on a
//! laptop. It synthesises a CT pretraining collection and three tasks (abdominal
//! organs in CT, abdominal lesions in CT, the abdominal organs in MRI for CT-to-MRI
//! transfer), writes a study file for every registered method plus scratch, and runs it. Every
//! step is resumable: run the same command again after an interruption.
//!
//! The scale is the smallest the network accepts (32³ volumes, a few pretraining steps
//! and fine-tune epochs): the numbers show that the pipeline works end to end, not
//! which method is best; `medssl study init` starts a real study.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use medssl_synth::{Grid, Kind, Task, write_task};

use crate::study_command::run_study;

/// Arguments of `medssl demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the data, the runs and the report (resumed when it exists).
    #[arg(long, default_value = "medssl-demo")]
    out: PathBuf,
    /// Device: cpu, or cuda[:N] or wgpu in a build with that feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The demo's study file; `METHODS_LINE` becomes the `methods` list (see [`study_text`]).
const STUDY: &str = r#"# The medssl demo: a miniature study on synthetic phantoms (see `medssl demo --help`).
# At this scale the numbers show the pipeline end to end, not which method is best.
name = "demo"
out = "study"
METHODS_LINE

[pretraining]
data = "data/ct-collection"
preset = "tiny"
steps = 3

[finetune]
preset = "tiny"
budgets = [2, "all"]
seeds = [0]
# The phantoms are 32³: crops of 32³ (tiny's 64³ would be three quarters padding), a
# size that leaves the network's deepest stage a single voxel, fine for a demo.
set = ["train.epochs=3", "train.warmup_epochs=1", "validation.every=3", "data.samples_per_volume=1", "model.roi=[32, 32, 32]"]

[[tasks]]
name = "abdomen-ct"
path = "data/abdomen-ct"
modality = "CT"

[[tasks]]
name = "tumor-ct"
path = "data/tumor-ct"
modality = "CT"

[[tasks]]
name = "abdomen-mri"
path = "data/abdomen-mri"
modality = "MRI"
"#;

/// Side of the demo's volumes: the smallest SwinUNETR accepts.
const SIZE: usize = 32;

/// Writes one synthetic dataset unless an earlier run finished it (a marker file beside
/// it is written last).
fn synthesise(
    data: &Path,
    name: &str,
    kind: Kind,
    cases: usize,
    seed: u64,
    unlabelled: bool,
) -> Result<()> {
    let marker = data.join(format!(".{name}.complete"));
    if marker.is_file() {
        return Ok(());
    }
    let dir = data.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let task = Task {
        kind,
        grid: Grid::fitted(kind, [SIZE; 3])?,
        seed,
        training: cases,
        test: 0,
        unlabelled,
    };
    write_task(&task, &dir)?;
    std::fs::write(&marker, b"").with_context(|| format!("cannot write {}", marker.display()))?;
    eprintln!("synthesised {name}: {cases} cases of {SIZE}³");
    Ok(())
}

/// `medssl demo`.
pub fn demo(args: &DemoArgs) -> Result<()> {
    let data = args.out.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    synthesise(&data, "ct-collection", Kind::AbdomenCt, 12, 100, true)?;
    synthesise(&data, "abdomen-ct", Kind::AbdomenCt, 8, 0, false)?;
    synthesise(&data, "tumor-ct", Kind::TumorCt, 8, 0, false)?;
    synthesise(&data, "abdomen-mri", Kind::AbdomenMri, 8, 0, false)?;
    let file = args.out.join("study.toml");
    if !file.is_file() {
        std::fs::write(&file, study_text())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let started = std::time::Instant::now();
    let report = run_study(&file, 1, Some(&args.device))?;
    println!(
        "demo done in {:.1} min; report: {}",
        started.elapsed().as_secs_f64() / 60.0,
        report.display()
    );
    Ok(())
}

/// The demo's study file with `scratch` and every registered method as its rows.
fn study_text() -> String {
    STUDY.replace(
        "METHODS_LINE",
        &medssl_bench::definition::every_method_line(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's rows are scratch and every registered method, in registry order.
    #[test]
    fn the_demo_study_has_every_registered_method() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("study.toml");
        std::fs::write(&file, study_text()).unwrap();
        let study = medssl_bench::definition::StudyDefinition::load(&file).unwrap();
        let expected: Vec<&str> = std::iter::once("scratch")
            .chain(medssl_ssl::methods::METHODS.iter().map(|m| m.name))
            .collect();
        assert_eq!(study.methods, expected);
        assert_eq!(
            study.ssl_methods().len(),
            medssl_ssl::methods::METHODS.len()
        );
    }
}
