//! `results.csv`: one row per finished fine-tune, every metric, for analysis in pandas
//! or R. Rows follow the plan's order and hold only what the runs computed (no wall
//! times), so a study killed and resumed writes the same file as one left alone.

use std::collections::BTreeSet;
use std::path::Path;

use medssl_io::atomic::{create_dir_for_writes, write_atomically};
use serde_json::Value;

use crate::definition::{Modality, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::plan::{Job, JobKind, Plan};

/// Columns before the per-class ones.
const COLUMNS: [&str; 15] = [
    "job",
    "method",
    "task",
    "modality",
    "budget",
    "seed",
    "train_cases",
    "test_cases",
    "mean_dice",
    "best_val_dice",
    "best_epoch",
    "epochs",
    "epoch_to_90",
    "epoch_to_95",
    "normalised_auc",
];

/// Per-class metrics, each a column `<class>_<metric>`.
const CLASS_METRICS: [&str; 4] = ["dice", "hd95", "asd", "nsd"];

/// One finished fine-tune: its test summary and its run's `result.json`.
struct Finished<'a> {
    job: &'a Job,
    test: Value,
    run: Value,
}

/// A JSON file of a job's directory, errors naming the file (also read by the analysis).
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| BenchError::definition(path, e.to_string()))
}

/// A JSON number or the `"nan"` / `"inf"` strings as CSV text; empty when absent.
fn cell(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Writes `OUT/results.csv` (atomically) from the finished fine-tunes; returns how
/// many rows it has.
pub fn write_results(study: &StudyDefinition, plan: &Plan) -> Result<usize> {
    let mut finished = Vec::new();
    for job in &plan.jobs {
        if !matches!(job.kind, JobKind::Finetune { .. }) || !job.done_file(study).is_file() {
            continue;
        }
        finished.push(Finished {
            job,
            test: read_json(&job.done_file(study))?,
            run: read_json(&job.dir(study).join("result.json"))?,
        });
    }
    let classes: BTreeSet<String> = finished
        .iter()
        .filter_map(|f| f.test["per_class"].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    let mut csv = COLUMNS.join(",");
    for class in &classes {
        for metric in CLASS_METRICS {
            csv.push_str(&format!(",{class}_{metric}"));
        }
    }
    csv.push('\n');
    for f in &finished {
        let JobKind::Finetune {
            method,
            task,
            budget,
            seed,
        } = &f.job.kind
        else {
            continue;
        };
        let spec = &study.tasks[*task];
        let modality = match spec.modality {
            Modality::Ct => "CT",
            Modality::Mri => "MRI",
        };
        let mut row = vec![
            f.job.id.clone(),
            method.label(),
            spec.name.clone(),
            modality.to_string(),
            budget.label(),
            seed.to_string(),
            cell(f.run.get("train_cases")),
            cell(f.test.get("cases")),
            cell(f.test.get("mean_dice")),
            cell(f.run.get("best_dice")),
            cell(f.run.get("best_epoch")),
            cell(f.run.get("epochs")),
            cell(f.run.get("epoch_to_90")),
            cell(f.run.get("epoch_to_95")),
            cell(f.run.get("normalised_auc")),
        ];
        for class in &classes {
            for metric in CLASS_METRICS {
                row.push(cell(
                    f.test["per_class"].get(class).and_then(|c| c.get(metric)),
                ));
            }
        }
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let out = study.out_dir();
    create_dir_for_writes(&out).map_err(|e| BenchError::io(&out, e))?;
    let path = out.join("results.csv");
    write_atomically(&path, csv.as_bytes()).map_err(|e| BenchError::io(&path, e))?;
    Ok(finished.len())
}
