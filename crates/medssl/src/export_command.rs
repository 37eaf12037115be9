//! `medssl export tensorboard RUN`: a run's `metrics.jsonl` as TensorBoard scalars, for
//! users who follow training in TensorBoard alongside other experiments.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use medssl_train::run_dir::RunDir;
use serde_json::{Map, Value};

use crate::tensorboard::{StepScalars, event_file};

/// `medssl export`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a pretraining or fine-tuning run's metrics as a TensorBoard event file
    /// (view with `tensorboard --logdir DIR`).
    Tensorboard(TensorboardArgs),
}

/// Arguments of `medssl export tensorboard`.
#[derive(Debug, Args)]
pub struct TensorboardArgs {
    /// The run directory (holding `metrics.jsonl`).
    pub run: PathBuf,
    /// Where to write the event file (default: RUN/tensorboard). A second export
    /// replaces the first.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
}

/// The file name of the export: fixed, so that exporting again replaces it instead of
/// adding a second copy of every point to the TensorBoard log directory.
const EVENT_FILE: &str = "events.out.tfevents.medssl";

/// `medssl export`.
pub fn export(command: &ExportCommand) -> Result<()> {
    let ExportCommand::Tensorboard(args) = command;
    let run = RunDir::at(&args.run);
    let metrics = run.metrics();
    let text = std::fs::read_to_string(&metrics)
        .with_context(|| format!("reading {}", metrics.display()))?;
    let steps = scalars(&text).with_context(|| format!("in {}", metrics.display()))?;
    let out = args.out.clone().unwrap_or_else(|| run.tensorboard());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let wall_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let path = out.join(EVENT_FILE);
    medssl_io::atomic::write_atomically(&path, &event_file(wall_time, &steps))
        .with_context(|| format!("writing {}", path.display()))?;
    let values: usize = steps.iter().map(|(_, v)| v.len()).sum();
    println!(
        "{values} values at {} steps -> {}",
        steps.len(),
        path.display()
    );
    Ok(())
}

/// The scalars of `metrics.jsonl`: one entry per line, at the line's `iteration` (a line
/// without one, such as a validation, is placed at the last iteration before it), with
/// every numeric field tagged `EVENT/FIELD` (nested objects as `EVENT/FIELD/KEY`, and
/// `[name, value]` lists such as per-case Dice as `EVENT/FIELD/NAME`). An unfinished
/// last line (a run being written) is left out.
fn scalars(text: &str) -> Result<Vec<StepScalars>> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut step = 0;
    let mut out = Vec::new();
    for (index, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Map<String, Value> = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a JSON object", index + 1))?;
        let event = record
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("metrics");
        if let Some(iteration) = record.get("iteration") {
            step = iteration
                .as_i64()
                .with_context(|| format!("line {}: iteration {iteration}", index + 1))?;
        }
        let mut values = Vec::new();
        for (key, value) in &record {
            if key != "event" && key != "iteration" {
                collect(&format!("{event}/{key}"), value, &mut values);
            }
        }
        out.push((step, values));
    }
    if out.is_empty() {
        bail!("no metrics yet");
    }
    Ok(out)
}

/// Adds `value`'s numbers under `tag` (see [`scalars`]).
fn collect(tag: &str, value: &Value, out: &mut Vec<(String, f32)>) {
    match value {
        Value::Number(n) => {
            if let Some(v) = n.as_f64() {
                out.push((tag.to_string(), v as f32));
            }
        }
        Value::Object(map) => {
            for (key, v) in map {
                collect(&format!("{tag}/{key}"), v, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                if let [Value::String(name), v] = item.as_array().map_or(&[][..], Vec::as_slice) {
                    collect(&format!("{tag}/{name}"), v, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_tagged_scalars_at_their_iteration() {
        let text = concat!(
            r#"{"event":"train","epoch":1,"iteration":4,"loss":0.5,"monitors":{"spread":0.25},"clipped":true}"#,
            "\n",
            r#"{"event":"validation","epoch":1,"dice":0.75,"per_case":[["case_1",0.5],["case_2",1.0]]}"#,
            "\n",
            r#"{"event":"train","epoch":2,"iteration":8,"loss":0.25"#,
        );
        let steps = scalars(text).unwrap();
        let tagged = |s: &[(String, f32)]| {
            let mut s = s.to_vec();
            s.sort_by(|a, b| a.0.cmp(&b.0));
            s
        };
        assert_eq!(steps.len(), 2, "the unfinished third line is left out");
        assert_eq!(steps[0].0, 4);
        assert_eq!(
            tagged(&steps[0].1),
            [
                ("train/epoch".to_string(), 1.0),
                ("train/loss".to_string(), 0.5),
                ("train/monitors/spread".to_string(), 0.25),
            ]
        );
        assert_eq!(steps[1].0, 4, "validation sits at the last iteration");
        assert_eq!(
            tagged(&steps[1].1),
            [
                ("validation/dice".to_string(), 0.75),
                ("validation/epoch".to_string(), 1.0),
                ("validation/per_case/case_1".to_string(), 0.5),
                ("validation/per_case/case_2".to_string(), 1.0),
            ]
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = scalars("{\"event\":\"train\"}\nnot json\n").unwrap_err();
        assert!(
            format!("{err:#}").starts_with("line 2: not a JSON object"),
            "{err:#}"
        );
        assert!(scalars("").is_err());
    }
}
