//! The study's numbers from its finished fine-tunes: accuracy per task and budget (and
//! per class) with competition ranks and paired tests against the best method, the
//! cases and seeds behind each cell, few-shot sensitivity, convergence,
//! CT-to-MRI transfer, and feature reuse (CKA) from the finished CKA jobs.
//!
//! Per-case values come from each fine-tune's `evaluation-test.csv`: a case's Dice (and
//! NSD) is the mean over its foreground classes, its HD95 the mean over the classes
//! where it is finite. Statistics pool cases and seeds: a (method, task, budget) cell
//! has one value per case per seed. Budgets are taken in the order the study lists
//! them, from few labels to many.

use std::collections::BTreeMap;
use std::path::Path;

use medssl_eval::evaluate::Part;
use medssl_eval::feature_reuse::StageSimilarity;
use serde_json::Value;

use crate::definition::{Modality, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::feature_reuse::{CkaResult, FeatureReuse};
use crate::layout::read_json;
use crate::plan::{JobKind, Plan};
use crate::probes::ProbeResult;
use crate::stats::{competition_ranks, holm, mean_sd, wilcoxon};

/// Significance level of the marks in the tables (after Holm's correction).
pub const ALPHA: f64 = 0.05;

/// One foreground class of one case, as `evaluation-test.csv` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    /// The class name (from the task's labels).
    pub class: String,
    /// Dice.
    pub dice: f64,
    /// 95th-percentile Hausdorff distance in mm.
    pub hd95: f64,
    /// Symmetric average surface distance in mm.
    pub asd: f64,
    /// Normalised surface Dice.
    pub nsd: f64,
}

/// One case of one fine-tune.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseScore {
    /// The seed of the fine-tune.
    pub seed: u64,
    /// The case id.
    pub case: String,
    /// Mean foreground Dice.
    pub dice: f64,
    /// Mean finite HD95 over the classes (NaN when none is finite).
    pub hd95: f64,
    /// Mean normalised surface Dice.
    pub nsd: f64,
    /// Each foreground class, in label order.
    pub classes: Vec<ClassScore>,
}

/// One finished fine-tune.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Row label.
    pub method: String,
    /// Index of the task.
    pub task: usize,
    /// Index of the budget in the study's list.
    pub budget: usize,
    /// Its test cases.
    pub cases: Vec<CaseScore>,
    /// Validation Dice by epoch.
    pub curve: Vec<(u64, f64)>,
    /// First epoch reaching 90% / 95% of the best validation Dice.
    pub epoch_to: (f64, f64),
    /// Normalised area under the validation curve.
    pub auc: f64,
}

/// A (method, task, budget) cell of the accuracy tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Mean and sd of Dice over cases and seeds.
    pub dice: (f64, f64),
    /// Mean and sd of HD95.
    pub hd95: (f64, f64),
    /// Mean and sd of NSD.
    pub nsd: (f64, f64),
    /// Values pooled (cases × seeds).
    pub n: usize,
    /// Distinct test cases behind the values.
    pub cases: usize,
    /// Distinct seeds (finished fine-tunes) behind the values.
    pub seeds: usize,
    /// Competition rank among the methods by mean Dice (1 best; equal means share the
    /// best rank of their group, the next skips: 1, 2, 2, 4).
    pub rank: usize,
    /// Holm-adjusted p of the paired test against the best method (`None` for the best
    /// itself or without paired cases).
    pub p_vs_best: Option<f64>,
    /// Paired (case, seed) values of that test (`None` when there is no test).
    pub pairs: Option<usize>,
}

/// Per-class statistics of a (method, task, budget) cell, over cases and seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassCell {
    /// The class name.
    pub class: String,
    /// Mean and sd of Dice.
    pub dice: (f64, f64),
    /// Mean and sd of HD95 (finite values).
    pub hd95: (f64, f64),
    /// Mean and sd of NSD.
    pub nsd: (f64, f64),
    /// Values pooled (cases × seeds).
    pub n: usize,
}

/// One finished CKA job.
#[derive(Debug, Clone, PartialEq)]
pub struct CkaOutcome {
    /// Row label.
    pub method: String,
    /// Index of the task.
    pub task: usize,
    /// The fine-tunes' seed.
    pub seed: u64,
    /// Its comparisons.
    pub result: CkaResult,
}

/// One finished probe job.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    /// Row label.
    pub method: String,
    /// Index of the task.
    pub task: usize,
    /// Its scores.
    pub result: ProbeResult,
}

impl Analysis {
    /// The stages the probe jobs scored, in encoder order.
    pub fn probe_stages(&self) -> Vec<String> {
        let mut stages: Vec<String> = Vec::new();
        for probe in &self.probes {
            for stage in probe.result.stages.keys() {
                if !stages.contains(stage) {
                    stages.push(stage.clone());
                }
            }
        }
        // `patch_embed` sorts before `stage1`..`stage4`, which is encoder order.
        stages.sort();
        stages
    }

    /// The probe of row `method` (its index) on task `task`, when it finished.
    pub fn probe(&self, method: usize, task: usize) -> Option<&ProbeResult> {
        self.probes
            .iter()
            .find(|p| p.method == self.methods[method] && p.task == task)
            .map(|p| &p.result)
    }
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Row labels in the study's order.
    pub methods: Vec<String>,
    /// Task names.
    pub tasks: Vec<String>,
    /// Task modalities.
    pub modalities: Vec<Modality>,
    /// Budget labels, few to many.
    pub budgets: Vec<String>,
    /// `cells[(method, task, budget)]`, for the cells with results.
    pub cells: BTreeMap<(usize, usize, usize), Cell>,
    /// The fine-tunes.
    pub outcomes: Vec<Outcome>,
    /// The CKA jobs.
    pub cka: Vec<CkaOutcome>,
    /// The probe jobs.
    pub probes: Vec<ProbeOutcome>,
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// The cases of an `evaluation-test.csv` with their classes (in the file's order, the
/// label order) and their means over the classes; cases sorted by id. A value that is
/// not a number (an empty mask's `NaN`) reads as NaN.
pub(crate) fn case_scores(path: &Path, seed: u64) -> Result<Vec<CaseScore>> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| BenchError::definition(path, format!("no `{name}` column")))
    };
    let (case_col, class_col, dice_col, hd_col, asd_col, nsd_col) = (
        column("case")?,
        column("class")?,
        column("dice")?,
        column("hd95")?,
        column("asd")?,
        column("nsd")?,
    );
    let mut by_case: BTreeMap<String, Vec<ClassScore>> = BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let value = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let text = |i: usize| fields.get(i).copied().unwrap_or_default().to_string();
        by_case.entry(text(case_col)).or_default().push(ClassScore {
            class: text(class_col),
            dice: value(dice_col),
            hd95: value(hd_col),
            asd: value(asd_col),
            nsd: value(nsd_col),
        });
    }
    Ok(by_case
        .into_iter()
        .map(|(case, classes)| {
            let mean = |f: fn(&ClassScore) -> f64| {
                mean_sd(&classes.iter().map(f).collect::<Vec<_>>()).map_or(f64::NAN, |m| m.0)
            };
            CaseScore {
                seed,
                case,
                dice: mean(|c| c.dice),
                hd95: mean(|c| c.hd95),
                nsd: mean(|c| c.nsd),
                classes,
            }
        })
        .collect())
}

impl Analysis {
    /// The analysis of the finished fine-tunes of `plan`.
    pub fn new(study: &StudyDefinition, plan: &Plan) -> Result<Analysis> {
        let methods: Vec<String> = study.methods().iter().map(|m| m.label()).collect();
        let budgets: Vec<String> = study.finetune.budgets.iter().map(|b| b.label()).collect();
        let mut outcomes = Vec::new();
        let mut cka = Vec::new();
        let mut probes = Vec::new();
        for job in &plan.jobs {
            if !job.done_file(study).is_file() {
                continue;
            }
            let (method, task, budget, seed) = match &job.kind {
                JobKind::Finetune {
                    method,
                    task,
                    budget,
                    seed,
                } => (method, task, budget, seed),
                JobKind::Cka { method, task, seed } => {
                    let path = job.done_file(study);
                    let result = serde_json::from_value(read_json(&path)?)
                        .map_err(|e| BenchError::definition(&path, e.to_string()))?;
                    cka.push(CkaOutcome {
                        method: method.label(),
                        task: *task,
                        seed: *seed,
                        result,
                    });
                    continue;
                }
                JobKind::Probe { method, task } => {
                    let path = job.done_file(study);
                    let result = serde_json::from_value(read_json(&path)?)
                        .map_err(|e| BenchError::definition(&path, e.to_string()))?;
                    probes.push(ProbeOutcome {
                        method: method.label(),
                        task: *task,
                        result,
                    });
                    continue;
                }
                JobKind::Pretrain { .. } | JobKind::Supervised { .. } => continue,
            };
            let files = job.run(study);
            let run = read_json(&files.result())?;
            let curve = run["curve"]
                .as_array()
                .map(|points| {
                    points
                        .iter()
                        .map(|p| (p["epoch"].as_u64().unwrap_or(0), number(&p["dice"])))
                        .collect()
                })
                .unwrap_or_default();
            outcomes.push(Outcome {
                method: method.label(),
                task: *task,
                budget: budgets
                    .iter()
                    .position(|b| *b == budget.label())
                    .expect("the plan's budgets are the study's"),
                cases: case_scores(&files.evaluation(Part::Test), *seed)?,
                curve,
                epoch_to: (number(&run["epoch_to_90"]), number(&run["epoch_to_95"])),
                auc: number(&run["normalised_auc"]),
            });
        }
        let mut analysis = Analysis {
            methods,
            tasks: study.tasks.iter().map(|t| t.name.clone()).collect(),
            modalities: study.tasks.iter().map(|t| t.modality).collect(),
            budgets,
            cells: BTreeMap::new(),
            outcomes,
            cka,
            probes,
        };
        analysis.cells = analysis.compute_cells();
        Ok(analysis)
    }

    /// The pooled case scores of a (method, task, budget) cell.
    fn scores(&self, method: usize, task: usize, budget: usize) -> Vec<&CaseScore> {
        self.outcomes
            .iter()
            .filter(|o| o.method == self.methods[method] && o.task == task && o.budget == budget)
            .flat_map(|o| &o.cases)
            .collect()
    }

    /// The accuracy cells of every (task, budget) with results.
    pub(crate) fn compute_cells(&self) -> BTreeMap<(usize, usize, usize), Cell> {
        let mut cells = BTreeMap::new();
        for task in 0..self.tasks.len() {
            for budget in 0..self.budgets.len() {
                let present: Vec<(usize, Vec<&CaseScore>)> = (0..self.methods.len())
                    .map(|m| (m, self.scores(m, task, budget)))
                    .filter(|(_, s)| !s.is_empty())
                    .collect();
                if present.is_empty() {
                    continue;
                }
                let stat = |s: &[&CaseScore], f: fn(&CaseScore) -> f64| {
                    mean_sd(&s.iter().map(|c| f(c)).collect::<Vec<_>>())
                        .unwrap_or((f64::NAN, f64::NAN))
                };
                let dice: Vec<(f64, f64)> =
                    present.iter().map(|(_, s)| stat(s, |c| c.dice)).collect();
                let rank = competition_ranks(&dice.iter().map(|d| d.0).collect::<Vec<_>>());
                let best = (0..present.len())
                    .min_by_key(|&i| rank[i])
                    .expect("present is not empty");
                let best_scores: BTreeMap<(u64, &str), f64> = present[best]
                    .1
                    .iter()
                    .map(|c| ((c.seed, c.case.as_str()), c.dice))
                    .collect();
                // (p, paired values) of each method's test against the best.
                let tests: Vec<Option<(f64, usize)>> = present
                    .iter()
                    .enumerate()
                    .map(|(i, (_, s))| {
                        let d: Vec<f64> = s
                            .iter()
                            .filter_map(|c| {
                                best_scores
                                    .get(&(c.seed, c.case.as_str()))
                                    .map(|b| c.dice - b)
                            })
                            .collect();
                        (i != best && !d.is_empty()).then(|| (wilcoxon(&d).p, d.len()))
                    })
                    .collect();
                let tested: Vec<f64> = tests.iter().flatten().map(|t| t.0).collect();
                let mut adjusted = holm(&tested).into_iter();
                for (i, (m, s)) in present.iter().enumerate() {
                    let distinct = |key: fn(&CaseScore) -> String| {
                        s.iter()
                            .map(|c| key(c))
                            .collect::<std::collections::BTreeSet<_>>()
                            .len()
                    };
                    cells.insert(
                        (*m, task, budget),
                        Cell {
                            dice: dice[i],
                            hd95: stat(s, |c| c.hd95),
                            nsd: stat(s, |c| c.nsd),
                            n: s.len(),
                            cases: distinct(|c| c.case.clone()),
                            seeds: distinct(|c| c.seed.to_string()),
                            rank: rank[i],
                            p_vs_best: tests[i].map(|_| adjusted.next().expect("one per test")),
                            pairs: tests[i].map(|t| t.1),
                        },
                    );
                }
            }
        }
        cells
    }

    /// The foreground classes of `task` in label order, as its fine-tunes scored them.
    pub fn classes(&self, task: usize) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|o| o.task == task)
            .flat_map(|o| o.cases.first())
            .map(|c| c.classes.iter().map(|k| k.class.clone()).collect())
            .next()
            .unwrap_or_default()
    }

    /// Per-class statistics of the (method, task, budget) cell, one per class of
    /// [`Analysis::classes`]; empty without results.
    pub fn class_cells(&self, method: usize, task: usize, budget: usize) -> Vec<ClassCell> {
        let scores = self.scores(method, task, budget);
        if scores.is_empty() {
            return Vec::new();
        }
        self.classes(task)
            .into_iter()
            .map(|class| {
                let values: Vec<&ClassScore> = scores
                    .iter()
                    .flat_map(|c| c.classes.iter().filter(|k| k.class == class))
                    .collect();
                let stat = |f: fn(&ClassScore) -> f64| {
                    mean_sd(&values.iter().map(|k| f(k)).collect::<Vec<_>>())
                        .unwrap_or((f64::NAN, f64::NAN))
                };
                ClassCell {
                    dice: stat(|k| k.dice),
                    hd95: stat(|k| k.hd95),
                    nsd: stat(|k| k.nsd),
                    n: values.len(),
                    class,
                }
            })
            .collect()
    }

    /// The mean rank of `method` over the tasks at `budget` (`None` without results).
    pub fn mean_rank(&self, method: usize, budget: usize) -> Option<f64> {
        let ranks: Vec<f64> = (0..self.tasks.len())
            .filter_map(|t| self.cells.get(&(method, t, budget)).map(|c| c.rank as f64))
            .collect();
        mean_sd(&ranks).map(|m| m.0)
    }

    /// Mean Dice of `method` at `budget` over the tasks of `modality`.
    pub fn modality_dice(&self, method: usize, budget: usize, modality: Modality) -> Option<f64> {
        self.task_mean_dice(method, budget, |t| self.modalities[t] == modality)
    }

    /// Mean Dice of `method` at `budget` over all tasks with results.
    pub fn budget_dice(&self, method: usize, budget: usize) -> Option<f64> {
        self.task_mean_dice(method, budget, |_| true)
    }

    /// Mean Dice of `method` at `budget` over the tasks `include` keeps.
    fn task_mean_dice(
        &self,
        method: usize,
        budget: usize,
        include: impl Fn(usize) -> bool,
    ) -> Option<f64> {
        let values: Vec<f64> = (0..self.tasks.len())
            .filter(|&t| include(t))
            .filter_map(|t| self.cells.get(&(method, t, budget)).map(|c| c.dice.0))
            .collect();
        mean_sd(&values).map(|m| m.0)
    }

    /// Mean over seeds of a convergence figure of (method, task, budget).
    pub fn convergence(
        &self,
        method: usize,
        task: usize,
        budget: usize,
        figure: fn(&Outcome) -> f64,
    ) -> Option<f64> {
        let values: Vec<f64> = self
            .outcomes
            .iter()
            .filter(|o| o.method == self.methods[method] && o.task == task && o.budget == budget)
            .map(figure)
            .collect();
        mean_sd(&values).map(|m| m.0)
    }

    /// The spread of mean Dice between methods at `budget` (max − min), averaged over
    /// the tasks.
    pub fn spread(&self, budget: usize) -> Option<f64> {
        let spreads: Vec<f64> = (0..self.tasks.len())
            .filter_map(|t| {
                let means: Vec<f64> = (0..self.methods.len())
                    .filter_map(|m| self.cells.get(&(m, t, budget)).map(|c| c.dice.0))
                    .collect();
                let max = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let min = means.iter().copied().fold(f64::INFINITY, f64::min);
                (means.len() > 1).then_some(max - min)
            })
            .collect();
        mean_sd(&spreads).map(|m| m.0)
    }

    /// The encoder stages the CKA jobs compared, shallow to deep.
    pub fn cka_stages(&self) -> Vec<String> {
        self.cka
            .iter()
            .flat_map(|c| {
                c.result
                    .pretrained_vs_finetuned
                    .values()
                    .chain(&c.result.few_vs_many)
            })
            .next()
            .map(|r| r.stages.iter().map(|s| s.stage.clone()).collect())
            .unwrap_or_default()
    }

    /// Mean over tasks and seeds of `method`'s CKA at `stage`, from the comparison
    /// `pick` takes out of each CKA job; `.0` minibatch, `.1` linear (all patches).
    pub fn cka(
        &self,
        method: usize,
        stage: usize,
        pick: impl Fn(&CkaResult) -> Option<&FeatureReuse>,
    ) -> (Option<f64>, Option<f64>) {
        let found: Vec<&StageSimilarity> = self
            .cka
            .iter()
            .filter(|c| c.method == self.methods[method])
            .filter_map(|c| pick(&c.result))
            .filter_map(|r| r.stages.get(stage))
            .collect();
        let mean = |values: Vec<f64>| mean_sd(&values).map(|m| m.0);
        (
            mean(found.iter().map(|s| s.minibatch_cka).collect()),
            mean(found.iter().filter_map(|s| s.linear_cka).collect()),
        )
    }
}
