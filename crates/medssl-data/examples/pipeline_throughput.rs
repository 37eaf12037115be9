//! Data-pipeline throughput: reads every case of a dataset folder (`imagesTr/*.nii.gz`
//! with the label map of the same name in `labelsTr/`) and runs the transforms of a TOML
//! file (`[[transforms]]` tables, as in a training configuration) on it, cases in
//! parallel over the rayon pool (`RAYON_NUM_THREADS` threads). Prints one JSON object:
//! the wall time of each pass, volumes per second of the fastest, and the seconds each
//! step took in that pass, summed over cases (thread time, so it shows where time goes).
//!
//! With `--dump DIR` it runs only the deterministic prefix of the pipeline (the steps
//! before the first random one) and writes each case's result to
//! `DIR/<case>.safetensors` (`image` and `label` f32 `[C, I, J, K]`, `affine` f64 4x4),
//! which `benches/data_pipeline/monai_pipeline.py --check DIR` compares with MONAI.
//!
//! Usage: `pipeline_throughput DATA_DIR PIPELINE.toml [--passes 2] [--seed 0] [--dump DIR]`

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use medssl_data::{Pipeline, PipelineConfig, Rng, Sample, rng};
use medssl_io::{ReadOptions, read_image};
use rayon::prelude::*;
use safetensors::{Dtype, tensor::TensorView};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// One image/label pair.
struct Case {
    id: String,
    image: PathBuf,
    label: PathBuf,
}

/// One pipeline step, built on its own so each can be timed.
struct Stage {
    name: &'static str,
    pipeline: Pipeline,
}

struct Args {
    data: PathBuf,
    config: PathBuf,
    passes: usize,
    seed: u64,
    dump: Option<PathBuf>,
}

const USAGE: &str =
    "usage: pipeline_throughput DATA_DIR PIPELINE.toml [--passes N] [--seed S] [--dump DIR]";

fn parse_args() -> Result<Args> {
    let mut positional = Vec::new();
    let (mut passes, mut seed, mut dump) = (2, 0, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|e| format!("{arg} takes a whole number, got {text:?}: {e}"))
        };
        match arg.as_str() {
            "--passes" => passes = number(value()?)? as usize,
            "--seed" => seed = number(value()?)?,
            "--dump" => dump = Some(PathBuf::from(value()?)),
            _ if arg.starts_with("--") => {
                return Err(format!("unknown option {arg}\n{USAGE}").into());
            }
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [data, config] = <[PathBuf; 2]>::try_from(positional).map_err(|_| USAGE)?;
    if passes == 0 {
        return Err("--passes must be at least 1".into());
    }
    Ok(Args {
        data,
        config,
        passes,
        seed,
        dump,
    })
}

/// The `[[transforms]]` tables of a pipeline file.
fn read_tables(path: &Path) -> Result<Vec<toml::Table>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match doc.remove("transforms") {
        Some(toml::Value::Array(steps)) => steps
            .into_iter()
            .map(|step| match step {
                toml::Value::Table(table) => Ok(table),
                other => {
                    Err(format!("{}: a transform is {other}, not a table", path.display()).into())
                }
            })
            .collect(),
        _ => Err(format!("{}: no [[transforms]] list", path.display()).into()),
    }
}

/// The cases of `data`, sorted by name; every image needs its label.
fn find_cases(data: &Path) -> Result<Vec<Case>> {
    let images = data.join("imagesTr");
    let entries = std::fs::read_dir(&images).map_err(|e| format!("{}: {e}", images.display()))?;
    let mut cases = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".nii.gz") else {
            continue;
        };
        let label = data.join("labelsTr").join(&name);
        if !label.is_file() {
            return Err(format!("case {id}: no label map {}", label.display()).into());
        }
        cases.push(Case {
            id: id.to_string(),
            image: images.join(&name),
            label,
        });
    }
    if cases.is_empty() {
        return Err(format!("{}: no .nii.gz images", images.display()).into());
    }
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(cases)
}

/// Reads a case: the decoded files (`read_image`) and their f32 volumes, with the
/// seconds each of the two parts took (both files together).
fn load(case: &Case) -> Result<(Sample, [f64; 2])> {
    let options = ReadOptions::default();
    let start = Instant::now();
    let image = read_image(&case.image, &options)?;
    let label = read_image(&case.label, &options)?;
    let decoded = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let sample = Sample::labelled(&case.id, image.to_volume()?, label.to_volume()?)?;
    Ok((sample, [decoded, start.elapsed().as_secs_f64()]))
}

/// The names of the timed parts of a case: the two of [`load`], then the stages.
const LOAD_PARTS: [&str; 2] = ["read_image", "to_volume"];

/// Reads and transforms one case; returns the crops and the seconds of each part of
/// reading and of each stage.
fn run_case(case: &Case, stages: &[Stage], rng: &mut Rng) -> Result<(Vec<Sample>, Vec<f64>)> {
    let (sample, read_seconds) = load(case)?;
    let mut seconds = read_seconds.to_vec();
    let mut samples = vec![sample];
    for stage in stages {
        let start = Instant::now();
        let mut next = Vec::with_capacity(samples.len());
        for sample in samples {
            next.extend(stage.pipeline.run(sample, rng)?);
        }
        samples = next;
        seconds.push(start.elapsed().as_secs_f64());
    }
    Ok((samples, seconds))
}

/// Times `args.passes` passes over all cases; the report of the fastest.
fn benchmark(args: &Args, cases: &[Case], tables: &[toml::Table]) -> Result<serde_json::Value> {
    let stages = tables
        .iter()
        .map(|table| {
            let pipeline = PipelineConfig::from_tables(std::slice::from_ref(table))?.build();
            let name = pipeline.steps()[0].name();
            Ok(Stage { name, pipeline })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut pass_seconds = Vec::new();
    let mut best: Option<(f64, Vec<f64>)> = None;
    let mut crops = 0;
    let mut crop_shape = [0; 3];
    for pass in 0..args.passes {
        let start = Instant::now();
        let results = cases
            .par_iter()
            .enumerate()
            .map(|(index, case)| {
                let mut rng = rng::stream(args.seed, &[pass as u64, index as u64]);
                run_case(case, &stages, &mut rng)
            })
            .collect::<Result<Vec<_>>>()?;
        let wall = start.elapsed().as_secs_f64();
        pass_seconds.push(wall);
        crops = results
            .iter()
            .map(|(samples, _)| samples.len())
            .sum::<usize>();
        crop_shape = results[0].0.first().map_or([0; 3], |s| s.spatial_shape());
        if best.as_ref().is_none_or(|(b, _)| wall < *b) {
            let mut steps = vec![0.0; stages.len() + LOAD_PARTS.len()];
            for (_, seconds) in &results {
                steps.iter_mut().zip(seconds).for_each(|(t, s)| *t += s);
            }
            best = Some((wall, steps));
        }
    }
    let (wall, steps) = best.expect("at least one pass");
    let names = LOAD_PARTS.into_iter().chain(stages.iter().map(|s| s.name));
    Ok(serde_json::json!({
        "threads": rayon::current_num_threads(),
        "cases": cases.len(),
        "pass_seconds": pass_seconds,
        "volumes_per_second": cases.len() as f64 / wall,
        "crops_per_pass": crops,
        "crop_shape": crop_shape,
        "step_seconds": names.zip(steps).map(|(n, s)| serde_json::json!([n, s])).collect::<Vec<_>>(),
    }))
}

/// Little-endian bytes of `values`, for a safetensors buffer.
fn le_bytes<T: Copy, const N: usize>(
    values: impl Iterator<Item = T>,
    f: fn(T) -> [u8; N],
) -> Vec<u8> {
    values.flat_map(f).collect()
}

/// Writes the deterministic prefix's output of every case to `dir`.
fn dump(
    args: &Args,
    dir: &Path,
    cases: &[Case],
    tables: &[toml::Table],
) -> Result<serde_json::Value> {
    let (prefix, _) = PipelineConfig::from_tables(tables)?
        .build()
        .split_deterministic();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    cases
        .par_iter()
        .enumerate()
        .try_for_each(|(index, case)| -> Result<()> {
            let mut rng = rng::stream(args.seed, &[index as u64]);
            let mut out = prefix.run(load(case)?.0, &mut rng)?;
            let (Some(sample), true) = (out.pop(), out.is_empty()) else {
                return Err(format!(
                    "case {}: the deterministic steps did not give one sample",
                    case.id
                )
                .into());
            };
            let label = sample.label.as_ref().ok_or("the label was dropped")?;
            let affine = sample.image.affine();
            let bytes = [
                le_bytes(sample.image.data().iter().copied(), f32::to_le_bytes),
                le_bytes(label.data().iter().copied(), f32::to_le_bytes),
                le_bytes((0..16).map(|i| affine[(i / 4, i % 4)]), f64::to_le_bytes),
            ];
            let views = [
                (
                    "image",
                    TensorView::new(Dtype::F32, sample.image.data().shape().to_vec(), &bytes[0])?,
                ),
                (
                    "label",
                    TensorView::new(Dtype::F32, label.data().shape().to_vec(), &bytes[1])?,
                ),
                (
                    "affine",
                    TensorView::new(Dtype::F64, vec![4, 4], &bytes[2])?,
                ),
            ];
            let path = dir.join(format!("{}.safetensors", case.id));
            safetensors::serialize_to_file(views, None, &path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(())
        })?;
    Ok(serde_json::json!({ "dumped": cases.len(), "dir": dir }))
}

fn main() {
    let run = || -> Result<serde_json::Value> {
        let args = parse_args()?;
        let tables = read_tables(&args.config)?;
        let cases = find_cases(&args.data)?;
        match &args.dump {
            Some(dir) => dump(&args, dir, &cases, &tables),
            None => benchmark(&args, &cases, &tables),
        }
    };
    match run() {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("pipeline_throughput: {e}");
            std::process::exit(1);
        }
    }
}
