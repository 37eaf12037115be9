//! `medssl evaluate`: a run's best network on the validation or test cases of its
//! split, scored on each case's original voxel grid (the prediction is brought back
//! through the preprocessing, as `predict` writes it) with the MONAI metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use burn::tensor::Device;
use medssl_data::Sample;
use medssl_data::dataset::Task;
use medssl_data::splits::Split;
use medssl_eval::metrics::{
    ClassMetrics, MetricSettings, Summary, segmentation_metrics, summarize,
};
use serde::{Deserialize, Serialize};

use super::inference::{TrainedRun, argmax_classes};
use super::trainer::RunInfo;
use crate::error::{Result, TrainError};
use crate::run_dir::RunDir;

/// Which cases of the run's split to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The validation cases (the ones the best checkpoint was chosen on).
    Val,
    /// The held-out test cases.
    Test,
}

impl Part {
    /// `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Val => "val",
            Part::Test => "test",
        }
    }
}

/// The metrics of every scored case and their summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The part scored.
    pub part: Part,
    /// Foreground class names (class 1 first).
    pub classes: Vec<String>,
    /// Per case, per foreground class.
    pub cases: Vec<(String, Vec<ClassMetrics>)>,
    /// Means and standard deviations over cases.
    pub summary: Summary,
}

/// Per-class means in the `--json` output and in `result.json`.
#[derive(Debug, Clone, Serialize)]
struct ClassMeans {
    #[serde(with = "medssl_eval::metrics::json_float")]
    dice: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    hd95: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    asd: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    nsd: f64,
}

/// One case's metrics for one class, under the column names of `evaluation-PART.csv`,
/// so the per-case JSON and the CSV read the same way.
#[derive(Debug, Clone, Serialize)]
struct CaseMetrics {
    #[serde(with = "medssl_eval::metrics::json_float")]
    dice: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    hd95: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    hd_max: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    asd: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    asd_pred_to_gt: f64,
    #[serde(with = "medssl_eval::metrics::json_float")]
    nsd: f64,
}

impl From<&ClassMetrics> for CaseMetrics {
    fn from(m: &ClassMetrics) -> CaseMetrics {
        CaseMetrics {
            dice: m.dice,
            hd95: m.hd95,
            hd_max: m.hd_max,
            asd: m.asd_symmetric,
            asd_pred_to_gt: m.asd_pred_to_gt,
            nsd: m.nsd,
        }
    }
}

/// The summary object `evaluate --json` prints (also `result.json["evaluation"][PART]`
/// and a study's `test.json`).
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationJson {
    split: &'static str,
    /// Mean over cases of each case's mean foreground Dice.
    #[serde(with = "medssl_eval::metrics::json_float")]
    mean_dice: f64,
    per_class: BTreeMap<String, ClassMeans>,
    cases: usize,
    nsd_tolerance_mm: f64,
    /// Case id → class name → the case's metrics, the values of `evaluation-PART.csv`
    /// (nnU-Net's `metric_per_case`), so one file serves scripts that want per-case
    /// statistics.
    metric_per_case: BTreeMap<String, BTreeMap<String, CaseMetrics>>,
}

impl Evaluation {
    /// Mean over cases of each case's mean foreground-class Dice.
    pub fn mean_dice(&self) -> f64 {
        self.summary.foreground_mean.dice.mean
    }

    /// The summary as printed by `--json` and stored in `result.json`.
    pub fn to_json(&self, nsd_tolerance_mm: f64) -> EvaluationJson {
        let per_class = self
            .classes
            .iter()
            .zip(&self.summary.classes)
            .map(|(name, stats)| {
                (
                    name.clone(),
                    ClassMeans {
                        dice: stats.dice.mean,
                        hd95: stats.hd95.mean,
                        asd: stats.asd_symmetric.mean,
                        nsd: stats.nsd.mean,
                    },
                )
            })
            .collect();
        let metric_per_case = self
            .cases
            .iter()
            .map(|(case, metrics)| {
                let by_class = self
                    .classes
                    .iter()
                    .zip(metrics)
                    .map(|(name, m)| (name.clone(), CaseMetrics::from(m)))
                    .collect();
                (case.clone(), by_class)
            })
            .collect();
        EvaluationJson {
            split: self.part.name(),
            mean_dice: self.mean_dice(),
            per_class,
            cases: self.cases.len(),
            nsd_tolerance_mm,
            metric_per_case,
        }
    }

    /// One row per case and class (classes in label order):
    /// `case,class,dice,hd95,hd_max,asd,asd_pred_to_gt,nsd`, full precision.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from("case,class,dice,hd95,hd_max,asd,asd_pred_to_gt,nsd\n");
        for (case, metrics) in &self.cases {
            for (name, m) in self.classes.iter().zip(metrics) {
                let m = CaseMetrics::from(m);
                let _ = writeln!(
                    csv,
                    "{case},{name},{},{},{},{},{},{}",
                    m.dice, m.hd95, m.hd_max, m.asd, m.asd_pred_to_gt, m.nsd
                );
            }
        }
        csv
    }
}

/// The fine-tune run in `run_dir`, its task (at `task_dir`, or where the run recorded
/// it) and its split.
pub(crate) fn open_task_split(
    run_dir: &Path,
    task_dir: Option<&Path>,
) -> Result<(RunDir, Task, Split)> {
    let run = RunDir::open(run_dir)?;
    let info: RunInfo = run.read_json("run.json")?;
    let task = Task::open(task_dir.unwrap_or(&info.task))
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let split =
        Split::load(&run.path("split.json")).map_err(|e| TrainError::Invalid(e.to_string()))?;
    Ok((run, task, split))
}

/// Case `id` of a run's split, read from `task`.
pub(crate) fn load_split_case(task: &Task, id: &str) -> Result<Sample> {
    let case = task.case(id).ok_or_else(|| {
        TrainError::Invalid(format!("case {id} of split.json is not in the task"))
    })?;
    task.load_case(case)
        .map_err(|e| TrainError::Invalid(e.to_string()))
}

/// Scores the run's best network on `part` of its split, with an NSD tolerance of
/// `nsd_tolerance_mm` for every class; writes `evaluation-PART.csv` and adds the
/// summary to `result.json` under `evaluation.PART`.
pub fn evaluate(
    run_dir: &Path,
    task_dir: Option<&Path>,
    part: Part,
    nsd_tolerance_mm: f64,
    device: Device,
) -> Result<Evaluation> {
    let (run, task, split) = open_task_split(run_dir, task_dir)?;
    let ids = match part {
        Part::Val => &split.validation,
        Part::Test => &split.test,
    };
    if ids.is_empty() {
        return Err(TrainError::Invalid(format!(
            "the run's split has no {} cases",
            part.name()
        )));
    }
    let trained = TrainedRun::open(run_dir, device)?;
    let classes = task.labels.len();
    let mut cases = Vec::with_capacity(ids.len());
    for id in ids {
        let sample = load_split_case(&task, id)?;
        let label = sample
            .label
            .as_ref()
            .ok_or_else(|| TrainError::Invalid(format!("case {id} has no label map")))?;
        let probabilities = trained.probabilities(id, &sample.image)?;
        let predicted = argmax_classes(probabilities.data())?;
        let truth = label.channel(0).mapv(|v| v as u8);
        let settings = MetricSettings {
            num_classes: classes,
            spacing_mm: sample.image.spacing(),
            nsd_tolerance_mm: vec![nsd_tolerance_mm; classes - 1],
        };
        let metrics = segmentation_metrics(predicted.view(), truth.view(), &settings)
            .map_err(|e| TrainError::Invalid(format!("case {id}: {e}")))?;
        cases.push((id.clone(), metrics));
    }
    let per_case: Vec<Vec<ClassMetrics>> = cases.iter().map(|(_, m)| m.clone()).collect();
    let summary = summarize(&per_case).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let evaluation = Evaluation {
        part,
        classes: task.labels[1..].to_vec(),
        cases,
        summary,
    };
    run.write(
        &format!("evaluation-{}.csv", part.name()),
        evaluation.to_csv().as_bytes(),
    )?;
    let mut result: serde_json::Value = if run.path("result.json").exists() {
        run.read_json("result.json")?
    } else {
        serde_json::json!({})
    };
    let summary = serde_json::to_value(evaluation.to_json(nsd_tolerance_mm))
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    result["evaluation"][part.name()] = summary;
    run.write_json("result.json", &result)?;
    Ok(evaluation)
}
