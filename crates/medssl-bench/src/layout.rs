//! The study's output directory: every path a study writes is named here (the files
//! inside a job's run come from [`RunDir`]).
//!
//! ```text
//! OUT/pretrain/METHOD/                     a pretraining run
//! OUT/finetune/TASK/ROW.BUDGET.seed-S/     a fine-tune run, with its test.json
//! OUT/cka/TASK/ROW.seed-S/result.json      a CKA job's result
//! OUT/JOB/running.json, failed.json        a job's state (see `state`)
//! OUT/JOB/timing.json                      how long a finished job took
//! OUT/results.csv, results_long.csv        the results tables
//! OUT/report/index.html, report.md,        the report
//!     tables.tex, figures/
//! OUT/slurm/                               `study slurm`'s scripts, unless --out
//! ```
//!
//! A job's id is its directory relative to `OUT`.

use std::path::{Path, PathBuf};

use medssl_train::run_dir::RunDir;
use serde_json::Value;

use crate::error::{BenchError, Result};

/// A JSON file a job left (`test.json`, a run's `result.json`), errors naming the file;
/// read by the results tables and the analysis.
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| BenchError::definition(path, e.to_string()))
}

const PRETRAIN_DIR: &str = "pretrain";
const FINETUNE_DIR: &str = "finetune";
const SUPERVISED_DIR: &str = "supervised";
const CKA_DIR: &str = "cka";
const PROBE_DIR: &str = "probe";
const CKA_RESULT: &str = "result.json";
const RUNNING: &str = "running.json";
const FAILED: &str = "failed.json";
const TIMING: &str = "timing.json";
const RESULTS: &str = "results.csv";
const RESULTS_LONG: &str = "results_long.csv";
const REPORT_DIR: &str = "report";
const REPORT_FIGURES: &str = "figures";
const REPORT_MARKDOWN: &str = "report.md";
const REPORT_HTML: &str = "index.html";
const REPORT_LATEX: &str = "tables.tex";
const SLURM_DIR: &str = "slurm";

/// The output directory of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyLayout {
    out: PathBuf,
}

impl StudyLayout {
    /// The layout of the output directory `out`.
    pub fn new(out: impl Into<PathBuf>) -> StudyLayout {
        StudyLayout { out: out.into() }
    }

    /// The output directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The id of the pretraining job of SSL method `method`: `pretrain/METHOD`.
    pub fn pretrain_job(method: &str) -> String {
        format!("{PRETRAIN_DIR}/{method}")
    }

    /// The id of the supervised fine-tune that trains the encoder of row
    /// `supervised:TASK`: `supervised/TASK`.
    pub fn supervised_job(task: &str) -> String {
        format!("{SUPERVISED_DIR}/{task}")
    }

    /// The id of the fine-tune of row `row` on task `task` with label budget `budget`
    /// (their labels) and seed `seed`: `finetune/TASK/ROW.BUDGET.seed-S`.
    pub fn finetune_job(task: &str, row: &str, budget: &str, seed: u64) -> String {
        format!("{FINETUNE_DIR}/{task}/{row}.{budget}.seed-{seed}")
    }

    /// The id of the probe job of row `row` on task `task`: `probe/TASK/ROW`.
    pub fn probe_job(task: &str, row: &str) -> String {
        format!("{PROBE_DIR}/{task}/{row}")
    }

    /// The id of the CKA job of row `row` on task `task` with seed `seed`:
    /// `cka/TASK/ROW.seed-S`.
    pub fn cka_job(task: &str, row: &str, seed: u64) -> String {
        format!("{CKA_DIR}/{task}/{row}.seed-{seed}")
    }

    /// The directory of job `id`.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.out.join(id)
    }

    /// The run of the pretraining or fine-tune job `id`, to name its files.
    pub fn run(&self, id: &str) -> RunDir {
        RunDir::at(self.job_dir(id))
    }

    /// `result.json` of the CKA job `id`.
    pub fn cka_result(&self, id: &str) -> PathBuf {
        self.job_dir(id).join(CKA_RESULT)
    }

    /// The scores of probe job `id`: `OUT/ID/result.json`, written last.
    pub fn probe_result(&self, id: &str) -> PathBuf {
        self.job_dir(id).join(CKA_RESULT)
    }

    /// `running.json` of job `id`: the process working on it.
    pub fn running(&self, id: &str) -> PathBuf {
        self.job_dir(id).join(RUNNING)
    }

    /// `failed.json` of job `id`: the error of its last attempt.
    pub fn failed(&self, id: &str) -> PathBuf {
        self.job_dir(id).join(FAILED)
    }

    /// `timing.json` of job `id`: where and how long it ran when it finished.
    pub fn timing(&self, id: &str) -> PathBuf {
        self.job_dir(id).join(TIMING)
    }

    /// `results.csv`: one row per finished fine-tune.
    pub fn results(&self) -> PathBuf {
        self.out.join(RESULTS)
    }

    /// `results_long.csv`: one row per finished fine-tune × test case × class.
    pub fn results_long(&self) -> PathBuf {
        self.out.join(RESULTS_LONG)
    }

    /// `report/`: the report's directory.
    pub fn report_dir(&self) -> PathBuf {
        self.out.join(REPORT_DIR)
    }

    /// `report/figures/`: each figure as SVG and PNG.
    pub fn report_figures(&self) -> PathBuf {
        self.report_dir().join(REPORT_FIGURES)
    }

    /// `report/report.md`.
    pub fn report_markdown(&self) -> PathBuf {
        self.report_dir().join(REPORT_MARKDOWN)
    }

    /// `report/index.html`.
    pub fn report_html(&self) -> PathBuf {
        self.report_dir().join(REPORT_HTML)
    }

    /// `report/tables.tex`: the report's tables for LaTeX.
    pub fn report_latex(&self) -> PathBuf {
        self.report_dir().join(REPORT_LATEX)
    }

    /// `slurm/`: where `study slurm` writes its scripts unless told otherwise.
    pub fn slurm_dir(&self) -> PathBuf {
        self.out.join(SLURM_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names users and scripts rely on (ARCHITECTURE.md, "Study output"), written
    /// out here so that renaming one fails.
    #[test]
    fn paths_have_the_documented_names() {
        let layout = StudyLayout::new("OUT");
        let pretrain = StudyLayout::pretrain_job("simmim");
        let finetune = StudyLayout::finetune_job("abd", "simmim", "2-shots", 3);
        let cka = StudyLayout::cka_job("abd", "import-x", 1);
        assert_eq!(pretrain, "pretrain/simmim");
        assert_eq!(finetune, "finetune/abd/simmim.2-shots.seed-3");
        assert_eq!(cka, "cka/abd/import-x.seed-1");
        let named = [
            (layout.job_dir(&pretrain), "pretrain/simmim"),
            (
                layout.run(&finetune).result(),
                "finetune/abd/simmim.2-shots.seed-3/result.json",
            ),
            (
                layout.cka_result(&cka),
                "cka/abd/import-x.seed-1/result.json",
            ),
            (layout.running(&pretrain), "pretrain/simmim/running.json"),
            (layout.failed(&pretrain), "pretrain/simmim/failed.json"),
            (layout.timing(&pretrain), "pretrain/simmim/timing.json"),
            (layout.results(), "results.csv"),
            (layout.results_long(), "results_long.csv"),
            (layout.report_dir(), "report"),
            (layout.report_figures(), "report/figures"),
            (layout.report_markdown(), "report/report.md"),
            (layout.report_html(), "report/index.html"),
            (layout.report_latex(), "report/tables.tex"),
            (layout.slurm_dir(), "slurm"),
        ];
        for (path, name) in named {
            assert_eq!(path, Path::new("OUT").join(name));
        }
    }
}
