//! `results.csv`: one row per finished fine-tune, every metric, for analysis in pandas
//! or R; and beside it `results_long.csv`, the tidy (long) form with one row per
//! fine-tune × test case × class, the shape statistics and plotting libraries take.
//! Rows follow the plan's order and hold only what the runs computed (no wall times),
//! so a study killed and resumed writes the same files as one left alone.

use std::collections::BTreeSet;

use medssl_eval::evaluate::Part;
use medssl_io::atomic::{create_dir_for_writes, write_atomically};
use serde_json::Value;

use crate::analysis::case_scores;
use crate::definition::{BudgetSpec, MethodSpec, Modality, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::layout::read_json;
use crate::plan::{FinetuneJob, Job, Plan};

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

/// The columns of `results_long.csv`.
pub const LONG_COLUMNS: [&str; 10] = [
    "method", "task", "budget", "seed", "case", "class", "dice", "hd95", "asd", "nsd",
];

/// Decimal places of the metric values in `results_long.csv`.
pub const LONG_DECIMALS: usize = 6;

/// Per-class metrics, each a column `<class>_<metric>`.
const CLASS_METRICS: [&str; 4] = ["dice", "hd95", "asd", "nsd"];

/// One finished fine-tune: what it was (row, task, budget, seed), its test summary and
/// its run's `result.json`.
struct Finished<'a> {
    job: &'a Job,
    method: &'a MethodSpec,
    task: usize,
    budget: BudgetSpec,
    seed: u64,
    test: Value,
    run: Value,
}

/// A JSON number or the `"nan"` / `"inf"` strings as CSV text; empty when absent.
fn cell(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// A metric rounded to [`LONG_DECIMALS`] places; `nan`, `inf` and `-inf` as the JSON
/// files write them (an empty mask's values, see the README), which pandas and R read
/// as numbers.
fn rounded(value: f64) -> String {
    match value {
        v if v.is_finite() => {
            let text = format!("{v:.LONG_DECIMALS$}");
            // No "-0.000000" for a tiny negative value.
            if text.trim_start_matches(['-', '0', '.']).is_empty() {
                text.trim_start_matches('-').to_string()
            } else {
                text
            }
        }
        v if v.is_nan() => "nan".into(),
        v if v > 0.0 => "inf".into(),
        _ => "-inf".into(),
    }
}

/// The rows of `results_long.csv` (header first): one per finished fine-tune × test
/// case × class, fine-tunes in the plan's order, cases by id, classes in label order,
/// from each fine-tune's `evaluation-test.csv`.
fn long_rows(study: &StudyDefinition, finished: &[Finished]) -> Result<String> {
    let mut csv = LONG_COLUMNS.join(",");
    csv.push('\n');
    for f in finished {
        let cases = case_scores(&f.job.run(study).evaluation(Part::Test), f.seed)?;
        let run = [
            f.method.label(),
            study.tasks[f.task].name.clone(),
            f.budget.label(),
            f.seed.to_string(),
        ]
        .join(",");
        for case in &cases {
            for k in &case.classes {
                csv.push_str(&format!(
                    "{run},{},{},{},{},{},{}\n",
                    case.case,
                    k.class,
                    rounded(k.dice),
                    rounded(k.hd95),
                    rounded(k.asd),
                    rounded(k.nsd)
                ));
            }
        }
    }
    Ok(csv)
}

/// Writes `OUT/results.csv` and `OUT/results_long.csv` (each atomically) from the
/// finished fine-tunes; returns how many rows `results.csv` has.
pub fn write_results(study: &StudyDefinition, plan: &Plan) -> Result<usize> {
    let mut finished = Vec::new();
    for job in &plan.jobs {
        let Some(FinetuneJob {
            method,
            task,
            budget,
            seed,
        }) = job.finetune()
        else {
            continue;
        };
        if !job.done_file(study).is_file() {
            continue;
        }
        finished.push(Finished {
            job,
            method,
            task,
            budget,
            seed,
            test: read_json(&job.done_file(study))?,
            run: read_json(&job.run(study).result())?,
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
        let spec = &study.tasks[f.task];
        let modality = match spec.modality {
            Modality::Ct => "CT",
            Modality::Mri => "MRI",
        };
        let mut row = vec![
            f.job.id.clone(),
            f.method.label(),
            spec.name.clone(),
            modality.to_string(),
            f.budget.label(),
            f.seed.to_string(),
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
    let long = long_rows(study, &finished)?;
    let layout = study.layout();
    let out = layout.out();
    create_dir_for_writes(out).map_err(|e| BenchError::io(out, e))?;
    for (path, text) in [(layout.results(), &csv), (layout.results_long(), &long)] {
        write_atomically(&path, text.as_bytes()).map_err(|e| BenchError::io(&path, e))?;
    }
    Ok(finished.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_rounded_to_six_places_and_keep_nan_and_inf() {
        assert_eq!(rounded(0.123_456_789), "0.123457");
        assert_eq!(rounded(12.5), "12.500000");
        assert_eq!(rounded(-1e-9), "0.000000");
        assert_eq!(rounded(-2.5), "-2.500000");
        assert_eq!(rounded(f64::NAN), "nan");
        assert_eq!(rounded(f64::INFINITY), "inf");
    }
}
