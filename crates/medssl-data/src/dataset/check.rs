//! Checking a whole task before a run: every case of every split read once, every
//! problem listed at once (nnU-Net's `--verify_dataset_integrity`), so that a broken
//! validation case is found before training rather than at the first validation.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use rayon::prelude::*;

use super::load::background_only;
use super::{Case, DATASET_JSON, Task};
use crate::error::{DataError, Result};

/// What a task check found besides problems: the counts a summary shows and findings
/// worth a look that do not stop a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckReport {
    /// Training cases (with label maps) read and checked.
    pub training: usize,
    /// Test cases (`imagesTs`, no label maps) read and checked.
    pub test: usize,
    /// Training cases whose label map is background only. Legitimate (a scan without the
    /// structure) but often a conversion mistake, and it gives a Dice of 0 or 1 only.
    pub empty_labels: Vec<String>,
    /// The smallest and the largest voxel spacing in mm along each array axis over all
    /// cases (`None` for a task without cases), to spot a case on another scale and to
    /// choose `data.spacing`.
    pub spacing: Option<[[f64; 3]; 2]>,
}

impl CheckReport {
    /// One line per finding, for logs.
    pub fn warnings(&self) -> Vec<String> {
        self.empty_labels
            .iter()
            .map(|id| format!("case {id}: the label map is background only"))
            .collect()
    }

    /// One line saying what was checked: cases per split, channels, classes and the
    /// spacing range.
    pub fn summary(&self, task: &Task) -> String {
        let mut line = format!(
            "{}: {} training case(s), {} test case(s); {} channel(s) ({}); {} classes ({})",
            task.name,
            self.training,
            self.test,
            task.channels.len(),
            task.channels.join(", "),
            task.labels.len(),
            task.labels.join(", "),
        );
        if let Some([low, high]) = self.spacing {
            let axes: Vec<String> = (0..3)
                .map(|a| {
                    let (low, high) = (round(low[a]), round(high[a]));
                    if low == high {
                        low.to_string()
                    } else {
                        format!("{low}-{high}")
                    }
                })
                .collect();
            line.push_str(&format!("; spacing {} mm", axes.join(" x ")));
        }
        line
    }
}

/// `x` to 4 significant digits, for display.
fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// A task as dataset.json and its folders describe it, with the problems of
/// [`Task::open`]'s cheap checks kept for [`Unchecked::check`] instead of returned: what
/// a caller needs to check other things cheaply (settings against the channels and
/// labels) before every case is read.
#[derive(Debug)]
pub struct Unchecked {
    /// The task; its files may be missing or broken until [`Unchecked::check`] passes.
    pub task: Task,
    problems: Vec<DataError>,
}

impl Unchecked {
    /// Reads and checks every case as [`Task::check`] does; the error lists every
    /// problem, the cheap ones (missing files, `numTraining`, duplicates) together with
    /// those found in the files, one line each.
    pub fn check(self) -> Result<(Task, CheckReport)> {
        let report = self.task.check_cases(self.problems)?;
        Ok((self.task, report))
    }
}

impl Task {
    /// Reads `dir/dataset.json` and finds the cases, failing only when dataset.json
    /// cannot be read or understood; the other problems wait for
    /// [`Unchecked::check`].
    pub fn open_unchecked(dir: &Path) -> Result<Unchecked> {
        let (task, problems) = Task::scan(dir)?;
        Ok(Unchecked { task, problems })
    }

    /// Opens the task in `dir` and checks every case: [`Task::open_unchecked`], then
    /// [`Unchecked::check`].
    pub fn open_checked(dir: &Path) -> Result<(Task, CheckReport)> {
        Task::open_unchecked(dir)?.check()
    }

    /// Reads and checks every case (training and test), in parallel: files readable,
    /// image channels as declared and on one grid, image voxels finite, label maps on
    /// the image grid (same shape; affines within the tolerance of
    /// [`crate::sample::affines_agree`]) holding only declared classes. The error lists
    /// every problem of every case, one per line; background-only label maps are
    /// returned in the report.
    pub fn check(&self) -> Result<CheckReport> {
        self.check_cases(Vec::new())
    }

    /// [`Task::check`], with the problems `open` already found: a case named in them is
    /// not read again.
    fn check_cases(&self, mut problems: Vec<DataError>) -> Result<CheckReport> {
        let broken: BTreeSet<String> = problems.iter().filter_map(case_of).collect();
        let cases: Vec<&Case> = self
            .training
            .iter()
            .chain(&self.test)
            .filter(|case| !broken.contains(&case.id))
            .collect();
        let results: Vec<_> = cases.par_iter().map(|case| self.inspect(case)).collect();
        let mut report = CheckReport {
            training: self.training.len(),
            test: self.test.len(),
            ..CheckReport::default()
        };
        for (case, result) in cases.iter().zip(results) {
            match result {
                Ok(sample) => {
                    if sample.label.as_ref().is_some_and(background_only) {
                        report.empty_labels.push(case.id.clone());
                    }
                    let spacing = sample.image.spacing();
                    let [low, high] = report.spacing.get_or_insert([spacing; 2]);
                    for axis in 0..3 {
                        low[axis] = low[axis].min(spacing[axis]);
                        high[axis] = high[axis].max(spacing[axis]);
                    }
                }
                Err(found) => problems.extend(
                    found
                        .into_iter()
                        .map(|problem| DataError::case(&case.id, problem)),
                ),
            }
        }
        if problems.is_empty() {
            Ok(report)
        } else {
            Err(self.problems_error(problems))
        }
    }

    /// One error for all `problems`: the problem itself when there is one, else a line
    /// per problem under a count of the failed cases.
    pub(super) fn problems_error(&self, mut problems: Vec<DataError>) -> DataError {
        if problems.len() == 1 {
            return problems.remove(0);
        }
        // Problems of dataset.json first, then case by case in dataset order.
        let order: HashMap<&str, usize> = self
            .training
            .iter()
            .chain(&self.test)
            .enumerate()
            .map(|(index, case)| (case.id.as_str(), index + 1))
            .collect();
        problems.sort_by_key(|problem| {
            case_of(problem).map_or(0, |id| order.get(id.as_str()).copied().unwrap_or(0))
        });
        let cases = self.training.len() + self.test.len();
        let failed: BTreeSet<String> = problems.iter().filter_map(case_of).collect();
        let count = match failed.len() {
            0 => format!("{} problems", problems.len()),
            n if n == problems.len() => format!("{n} of {cases} cases failed the check"),
            n => format!(
                "{n} of {cases} cases failed the check ({} problems)",
                problems.len()
            ),
        };
        let lines: Vec<String> = problems.iter().map(|e| format!("  {e}")).collect();
        DataError::file(
            self.dir.join(DATASET_JSON),
            format!("{count}:\n{}", lines.join("\n")),
        )
    }
}

/// The case a problem is about, if it is about one.
fn case_of(problem: &DataError) -> Option<String> {
    match problem {
        DataError::Case { case, .. } => Some(case.clone()),
        _ => None,
    }
}
