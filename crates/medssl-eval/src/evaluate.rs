//! Scoring a network on labelled cases of a task, each on its original voxel grid (the
//! prediction is brought back through the preprocessing, as `predict` writes it), with
//! the MONAI metrics; the per-case table and the summary that `medssl evaluate` prints
//! and stores.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use medssl_data::Sample;
use medssl_data::dataset::Task;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::metrics::{ClassMetrics, MetricSettings, Summary, segmentation_metrics, summarize};
use crate::predictor::{Predictor, argmax_classes};

/// Which cases of a split to score.
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
    #[serde(with = "crate::metrics::json_float")]
    dice: f64,
    #[serde(with = "crate::metrics::json_float")]
    hd95: f64,
    #[serde(with = "crate::metrics::json_float")]
    asd: f64,
    #[serde(with = "crate::metrics::json_float")]
    nsd: f64,
}

/// One case's metrics for one class, under the column names of `evaluation-PART.csv`,
/// so the per-case JSON and the CSV read the same way.
#[derive(Debug, Clone, Serialize)]
struct CaseMetrics {
    #[serde(with = "crate::metrics::json_float")]
    dice: f64,
    #[serde(with = "crate::metrics::json_float")]
    hd95: f64,
    #[serde(with = "crate::metrics::json_float")]
    hd_max: f64,
    #[serde(with = "crate::metrics::json_float")]
    asd: f64,
    #[serde(with = "crate::metrics::json_float")]
    asd_pred_to_gt: f64,
    #[serde(with = "crate::metrics::json_float")]
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
    #[serde(with = "crate::metrics::json_float")]
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

/// Case `id` of a split, read from `task`.
pub fn load_case(task: &Task, id: &str) -> Result<Sample> {
    let case = task
        .case(id)
        .ok_or_else(|| EvalError::UnknownCase { id: id.to_string() })?;
    Ok(task.load_case(case)?)
}

/// Scores `predictor` on the cases `ids` (of `part` of a split) of `task`, with an NSD
/// tolerance of `nsd_tolerance_mm` for every class.
pub fn evaluate(
    predictor: &Predictor,
    task: &Task,
    ids: &[String],
    part: Part,
    nsd_tolerance_mm: f64,
) -> Result<Evaluation> {
    let classes = task.labels.len();
    let mut cases = Vec::with_capacity(ids.len());
    for id in ids {
        let sample = load_case(task, id)?;
        let label = sample
            .label
            .as_ref()
            .ok_or_else(|| EvalError::NoLabel { id: id.clone() })?;
        let probabilities = predictor.probabilities(id, &sample.image)?;
        let predicted = argmax_classes(probabilities.data())?;
        let truth = label.channel(0).mapv(|v| v as u8);
        let settings = MetricSettings {
            num_classes: classes,
            spacing_mm: sample.image.spacing(),
            nsd_tolerance_mm: vec![nsd_tolerance_mm; classes - 1],
        };
        let metrics = segmentation_metrics(predicted.view(), truth.view(), &settings)
            .map_err(|e| EvalError::case(id, e))?;
        cases.push((id.clone(), metrics));
    }
    let per_case: Vec<Vec<ClassMetrics>> = cases.iter().map(|(_, m)| m.clone()).collect();
    let summary = summarize(&per_case)?;
    Ok(Evaluation {
        part,
        classes: task.labels[1..].to_vec(),
        cases,
        summary,
    })
}
