//! The study file: what to compare, on which data, with how many labels.
//!
//! Paths in the file are relative to the file's own directory. [`StudyDefinition::load`]
//! parses it and checks what needs no disk (unknown keys, names, budgets, the `[slurm]`
//! table); [`StudyDefinition::validate`] then checks everything a run will touch before
//! anything runs: every path exists, every task's `dataset.json` reads, and every `set`
//! override is a valid setting of the configuration it is applied to.
//! [`StudyDefinition::check`] does both at once for `medssl study validate`.
//!
//! Every problem is reported, not only the first, each starting with its key
//! (`finetune.budgets: ...`, `tasks[1].modality: ...`), so one pass over the file fixes
//! it. Each top-level key is read on its own: a section that cannot be read leaves out
//! only the checks that need it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use medssl_data::dataset::Task;
use medssl_data::splits::Budget;
use medssl_ssl::Preset;
use medssl_ssl::methods::{self, MethodVisitor};
use medssl_train::finetune::FinetuneConfig;
use medssl_train::pretrain::PretrainConfig;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{BenchError, Result};
use crate::layout::StudyLayout;
use crate::slurm::settings::SlurmSettings;

/// The example study file and its rows, also reachable here beside the format they
/// follow (they live in [`crate::templates`] with the other templates).
pub use crate::templates::{every_method_line, example};

/// The study file, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyDefinition {
    /// The study's name (report titles).
    pub name: String,
    /// Where jobs write their runs and the report go (relative to the file).
    pub out: PathBuf,
    /// `cpu`, or `cuda[:N]` or `wgpu` in a build with that feature.
    pub device: String,
    /// The rows of every table: SSL method names, `scratch`, `import:<file>`,
    /// `supervised:<task>`.
    pub methods: Vec<String>,
    /// The pretraining of the SSL methods.
    pub pretraining: Pretraining,
    /// The fine-tunes.
    pub finetune: Finetuning,
    /// The labelled tasks.
    pub tasks: Vec<TaskSpec>,
    /// Labelled tasks that only train the encoders of `supervised:` rows (no row is
    /// fine-tuned on them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TaskSpec>,
    /// The settings of the Slurm scripts (`medssl study slurm`).
    pub slurm: SlurmSettings,
    /// The directory the relative paths start from (the file's directory; not written
    /// in the file).
    #[serde(skip)]
    pub base: PathBuf,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// How the SSL methods are pretrained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretraining {
    /// The unlabelled collection (directory or list file).
    pub data: PathBuf,
    /// The preset the methods' settings start from.
    #[serde(default = "tiny")]
    pub preset: Preset,
    /// Optimiser steps per method (the preset's epochs when absent).
    #[serde(default)]
    pub steps: Option<u64>,
    /// `key=value` settings for every method.
    #[serde(default)]
    pub set: Vec<String>,
    /// `key=value` settings for one method, by method name, applied after `set`.
    #[serde(default)]
    pub method_set: BTreeMap<String, Vec<String>>,
    /// A task or source whose validation cases probe each encoder while it pretrains
    /// (`pretrain --probe`; `probe.every` in `set` says how often).
    #[serde(default)]
    pub probe: Option<String>,
}

fn tiny() -> Preset {
    Preset::Tiny
}

/// How every method is fine-tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finetuning {
    /// The preset the fine-tune settings start from.
    #[serde(default = "tiny")]
    pub preset: Preset,
    /// Label budgets: a number of labelled cases, a fraction in (0, 1), or `"all"`.
    pub budgets: Vec<BudgetSpec>,
    /// Seeds; each (method, task, budget) is fine-tuned once per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Fewer seeds for some budgets, by the budget's name in tables (`2-shots`,
    /// `fraction-0.25`, `all`): a subset of `seeds`. Fine-tunes on many labels vary
    /// little between seeds and cost the most, so a study can spend its seeds where
    /// labels are few.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub budget_seeds: BTreeMap<String, Vec<u64>>,
    /// `key=value` settings for every fine-tune.
    #[serde(default)]
    pub set: Vec<String>,
    /// `key=value` settings for one row's fine-tunes, by the row's name in tables
    /// (`scratch`, `dino`, `import-NAME`, `supervised-TASK`), applied after `set`; a
    /// `supervised:` row's settings also train its encoder.
    #[serde(default)]
    pub method_set: BTreeMap<String, Vec<String>>,
}

impl Finetuning {
    /// The seeds `budget` is fine-tuned with: its `budget_seeds` entry, else `seeds`.
    pub fn seeds_for(&self, budget: BudgetSpec) -> &[u64] {
        self.budget_seeds
            .get(&budget.label())
            .map_or(&self.seeds, |seeds| seeds)
    }
}

/// A label budget as written: `2`, `0.25` or `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BudgetSpec {
    /// This many labelled training cases.
    Shots(usize),
    /// This fraction of the training cases.
    Fraction(f64),
    /// Every training case (`"all"`).
    Named(AllCases),
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AllCases {
    /// Every training case.
    All,
}

/// Reads a budget by the form of its value, so that a wrong one is explained in the
/// file's words rather than by the name of an enum.
impl<'de> Deserialize<'de> for BudgetSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Budget;
        impl Visitor<'_> for Budget {
            type Value = BudgetSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a label budget: a count of cases, a fraction in (0, 1) or \"all\"")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<BudgetSpec, E> {
                usize::try_from(n)
                    .map(BudgetSpec::Shots)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(n), &self))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<BudgetSpec, E> {
                u64::try_from(n)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
                    .and_then(|n| self.visit_u64(n))
            }

            fn visit_f64<E: de::Error>(self, f: f64) -> std::result::Result<BudgetSpec, E> {
                Ok(BudgetSpec::Fraction(f))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> std::result::Result<BudgetSpec, E> {
                match text {
                    "all" => Ok(BudgetSpec::Named(AllCases::All)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
                }
            }
        }
        deserializer.deserialize_any(Budget)
    }
}

/// The budget as written in the file: `2`, `0.25`, `"all"`.
impl std::fmt::Display for BudgetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            BudgetSpec::Shots(n) => write!(f, "{n}"),
            BudgetSpec::Fraction(x) => write!(f, "{x}"),
            BudgetSpec::Named(AllCases::All) => f.write_str("\"all\""),
        }
    }
}

impl BudgetSpec {
    /// The budget the fine-tune gets (`None`: every training case).
    pub fn budget(self) -> Option<Budget> {
        match self {
            BudgetSpec::Shots(n) => Some(Budget::Shots(n)),
            BudgetSpec::Fraction(f) => Some(Budget::Fraction(f)),
            BudgetSpec::Named(AllCases::All) => None,
        }
    }

    /// A short name for directories and tables: `2-shots`, `fraction-0.25`, `all`.
    pub fn label(self) -> String {
        match self {
            BudgetSpec::Shots(n) => format!("{n}-shots"),
            BudgetSpec::Fraction(f) => format!("fraction-{f}"),
            BudgetSpec::Named(AllCases::All) => "all".into(),
        }
    }
}

/// The imaging modality of a task (the transfer analysis groups tasks by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Modality {
    /// Computed tomography.
    #[serde(rename = "CT")]
    Ct,
    /// Magnetic resonance.
    #[serde(rename = "MRI")]
    Mri,
}

/// A labelled task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Its name in tables and directories.
    pub name: String,
    /// Its directory (MSD / nnU-Net layout with `dataset.json`).
    pub path: PathBuf,
    /// `CT` or `MRI`.
    pub modality: Modality,
}

/// One row of the tables: where a fine-tune's initial weights come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MethodSpec {
    /// Random initialisation.
    Scratch,
    /// The encoder pretrained by this SSL method in the study.
    Ssl(String),
    /// External weights (a SwinUNETR or Swin checkpoint with MONAI key names).
    Import(PathBuf),
    /// The encoder of a fine-tune on every training case of the named task or source:
    /// the supervised positive control every SSL method is measured against.
    Supervised(String),
}

impl MethodSpec {
    /// Parses a `methods` entry, checking SSL names against the method list.
    pub fn parse(text: &str) -> std::result::Result<MethodSpec, String> {
        if text == "scratch" {
            Ok(MethodSpec::Scratch)
        } else if let Some(task) = text.strip_prefix("supervised:") {
            if task.is_empty() {
                return Err(
                    "`supervised:` needs a task or source name: `supervised:abdomen-ct`".into(),
                );
            }
            Ok(MethodSpec::Supervised(task.to_string()))
        } else if let Some(path) = text.strip_prefix("import:") {
            if path.is_empty() {
                return Err("`import:` needs a file: `import:weights/model.safetensors`".into());
            }
            Ok(MethodSpec::Import(PathBuf::from(path)))
        } else {
            methods::find(text)
                .map(|info| MethodSpec::Ssl(info.name.to_string()))
                .map_err(|e| format!("{e}, scratch, import:<file>, supervised:<task>"))
        }
    }

    /// The row's name in tables and directories: `scratch`, the method's name,
    /// `import-<file stem>` or `supervised-<task>`.
    pub fn label(&self) -> String {
        match self {
            MethodSpec::Scratch => "scratch".into(),
            MethodSpec::Ssl(name) => name.clone(),
            MethodSpec::Supervised(task) => format!("supervised-{task}"),
            MethodSpec::Import(path) => format!(
                "import-{}",
                path.file_stem()
                    .map(|s| s
                        .to_string_lossy()
                        .trim_end_matches(".safetensors")
                        .to_string())
                    .unwrap_or_default()
            ),
        }
    }
}

impl StudyDefinition {
    /// Reads the study file at `path` and checks what needs no disk: unknown keys,
    /// method and task names, budgets, seeds, the `[slurm]` table. Every problem is
    /// listed in the error.
    pub fn load(path: &Path) -> Result<StudyDefinition> {
        let mut sections = Sections::read(path)?;
        sections.check_structure();
        sections.into_study(path)
    }

    /// [`load`](Self::load) and [`validate`](Self::validate) at once, listing every
    /// problem of both: a section that cannot be read leaves out only the checks that
    /// need it (`medssl study validate`).
    pub fn check(path: &Path) -> Result<StudyDefinition> {
        let mut sections = Sections::read(path)?;
        sections.check_structure();
        let on_disk = disk_problems(
            &sections.base,
            sections.methods.as_deref().unwrap_or_default(),
            sections.pretraining.as_ref(),
            sections.finetune.as_ref(),
            &sections.tasks,
            &sections.sources,
        );
        sections.problems.extend(on_disk);
        sections.into_study(path)
    }

    /// `path` of the file resolved against the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    /// The output directory.
    pub fn out_dir(&self) -> PathBuf {
        self.resolve(&self.out)
    }

    /// The paths of the output directory.
    pub fn layout(&self) -> StudyLayout {
        StudyLayout::new(self.out_dir())
    }

    /// The rows, parsed.
    pub fn methods(&self) -> Vec<MethodSpec> {
        self.methods
            .iter()
            .map(|m| MethodSpec::parse(m).expect("checked when loaded"))
            .collect()
    }

    /// The SSL methods among the rows, in order.
    pub fn ssl_methods(&self) -> Vec<String> {
        ssl_methods(&self.methods)
    }

    /// The `set` overrides of `method`'s pretraining: the shared ones, the probe task,
    /// then its own.
    pub fn pretrain_overrides(&self, method: &str) -> Vec<String> {
        let probe = self
            .pretraining
            .probe
            .as_deref()
            .and_then(|t| self.labelled(t));
        let probe_dir = probe
            .map(|t| std::path::absolute(self.resolve(&t.path)).unwrap_or(self.resolve(&t.path)));
        pretrain_overrides(&self.pretraining, method, probe_dir.as_deref())
    }

    /// The `set` overrides of the fine-tunes of the row labelled `row`: the shared
    /// ones, then the row's own.
    pub fn finetune_overrides(&self, row: &str) -> Vec<String> {
        finetune_overrides(&self.finetune, row)
    }

    /// The task or source called `name`.
    pub fn labelled(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks
            .iter()
            .chain(&self.sources)
            .find(|t| t.name == name)
    }

    /// Checks every path, task and setting the study's jobs will use; the error lists
    /// every problem, each naming its key, under the file's name.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let problems = disk_problems(
            &self.base,
            &self.methods,
            Some(&self.pretraining),
            Some(&self.finetune),
            &self.tasks,
            &self.sources,
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BenchError::Problems {
                path: file.to_path_buf(),
                problems,
            })
        }
    }
}

/// The SSL methods among the rows `methods` as written, in order (names that are not
/// methods are left out: they are reported on their own).
fn ssl_methods(methods: &[String]) -> Vec<String> {
    methods
        .iter()
        .filter_map(|m| match MethodSpec::parse(m) {
            Ok(MethodSpec::Ssl(name)) => Some(name),
            _ => None,
        })
        .collect()
}

/// The `set` overrides of `method`'s pretraining under `pretraining`: the shared ones,
/// its own, then the study's step count (and the probe task, at `probe_dir`).
fn pretrain_overrides(
    pretraining: &Pretraining,
    method: &str,
    probe_dir: Option<&Path>,
) -> Vec<String> {
    let mut set = pretraining.set.clone();
    if let Some(dir) = probe_dir {
        // A JSON string is a TOML basic string.
        let path = serde_json::Value::String(dir.to_string_lossy().into_owned());
        set.push(format!("probe.task={path}"));
    }
    set.extend(
        pretraining
            .method_set
            .get(method)
            .into_iter()
            .flatten()
            .cloned(),
    );
    if let Some(steps) = pretraining.steps {
        set.push(format!("train.steps={steps}"));
    }
    set
}

/// The `set` overrides of the fine-tunes of row `row` under `finetune`.
fn finetune_overrides(finetune: &Finetuning, row: &str) -> Vec<String> {
    let mut set = finetune.set.clone();
    set.extend(finetune.method_set.get(row).into_iter().flatten().cloned());
    set
}

/// The top-level keys of a study file.
const KEYS: [&str; 9] = [
    "name",
    "out",
    "device",
    "methods",
    "pretraining",
    "finetune",
    "tasks",
    "sources",
    "slurm",
];

/// A study file read key by key: the sections that could be read (`None` when missing
/// or unreadable, with the reason in `problems`) and every problem found so far.
#[derive(Default)]
struct Sections {
    base: PathBuf,
    name: Option<String>,
    out: Option<PathBuf>,
    device: Option<String>,
    methods: Option<Vec<String>>,
    pretraining: Option<Pretraining>,
    finetune: Option<Finetuning>,
    /// The tasks that could be read; `all_tasks` says whether that is all of them.
    tasks: Vec<TaskSpec>,
    all_tasks: bool,
    /// The sources that could be read.
    sources: Vec<TaskSpec>,
    slurm: Option<SlurmSettings>,
    problems: Vec<String>,
}

/// Reads `value`, the file's `key`, as a `T`. Each unknown key inside it and the first
/// error of its value become problems named by their place under `key`.
fn read_value<T: DeserializeOwned>(
    key: &str,
    value: toml::Value,
    problems: &mut Vec<String>,
) -> Option<T> {
    let place = |path: String| match path.as_str() {
        "" | "." => key.to_string(),
        _ => format!("{key}.{path}"),
    };
    let mut unknown = Vec::new();
    let read = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        value,
        &mut |path: serde_ignored::Path| match path {
            serde_ignored::Path::Map { parent, key: field } => {
                let parent = match parent {
                    serde_ignored::Path::Root => String::new(),
                    other => other.to_string(),
                };
                unknown.push(format!("{}: unknown field `{field}`", place(parent)));
            }
            other => unknown.push(format!("{}: unknown field", place(other.to_string()))),
        },
    ));
    problems.append(&mut unknown);
    match read {
        Ok(value) => Some(value),
        Err(e) => {
            problems.push(format!(
                "{}: {}",
                place(e.path().to_string()),
                e.inner().message()
            ));
            None
        }
    }
}

impl Sections {
    /// Reads the file; only a file that cannot be read or is not TOML at all is an
    /// error here (the file's problems are collected).
    fn read(path: &Path) -> Result<Sections> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| BenchError::definition(path, e.to_string()))?;
        let mut sections = Sections {
            base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ..Sections::default()
        };
        let problems = &mut sections.problems;
        let mut take = |key: &str, required: bool| {
            let value = table.remove(key);
            if value.is_none() && required {
                problems.push(format!("missing field `{key}`"));
            }
            value
        };
        let (name, out, device, methods, pretraining, finetune, tasks, sources, slurm) = (
            take("name", true),
            take("out", false),
            take("device", false),
            take("methods", true),
            take("pretraining", true),
            take("finetune", true),
            take("tasks", true),
            take("sources", false),
            take("slurm", false),
        );
        for key in table.keys() {
            let expected: Vec<String> = KEYS.iter().map(|k| format!("`{k}`")).collect();
            problems.push(format!(
                "unknown field `{key}`, expected one of {}",
                expected.join(", ")
            ));
        }
        sections.name = name.and_then(|v| read_value("name", v, problems));
        sections.out = match out {
            Some(v) => read_value("out", v, problems),
            None => Some(PathBuf::from("study")),
        };
        sections.device = match device {
            Some(v) => read_value("device", v, problems),
            None => Some("cpu".into()),
        };
        sections.methods = methods.and_then(|v| read_value("methods", v, problems));
        sections.pretraining = pretraining.and_then(|v| read_value("pretraining", v, problems));
        sections.finetune = finetune.and_then(|v| read_value("finetune", v, problems));
        sections.slurm = match slurm {
            Some(v) => read_value("slurm", v, problems),
            None => Some(SlurmSettings::default()),
        };
        let tasks: Option<Vec<toml::Value>> = tasks.and_then(|v| read_value("tasks", v, problems));
        sections.all_tasks = tasks.is_some();
        for (i, task) in tasks.into_iter().flatten().enumerate() {
            match read_value(&format!("tasks[{i}]"), task, problems) {
                Some(task) => sections.tasks.push(task),
                None => sections.all_tasks = false,
            }
        }
        let sources: Option<Vec<toml::Value>> =
            sources.and_then(|v| read_value("sources", v, problems));
        for (i, source) in sources.into_iter().flatten().enumerate() {
            if let Some(source) = read_value(&format!("sources[{i}]"), source, problems) {
                sections.sources.push(source);
            }
        }
        Ok(sections)
    }

    /// Adds the problems that can be found without touching the disk: names,
    /// duplicates, budgets, seeds, the Slurm settings.
    fn check_structure(&mut self) {
        let problems = &mut self.problems;
        if let Some(methods) = &self.methods {
            let mut labels = BTreeSet::new();
            for text in methods {
                match MethodSpec::parse(text) {
                    Err(e) => problems.push(format!("methods: {e}")),
                    Ok(method) if !labels.insert(method.label()) => {
                        problems.push(format!("methods: `{text}` is listed twice"))
                    }
                    Ok(_) => {}
                }
            }
            if methods.is_empty() {
                problems.push("methods: the list is empty".into());
            }
            if let Some(pretraining) = &self.pretraining {
                let ssl = ssl_methods(methods);
                for name in pretraining.method_set.keys() {
                    if !ssl.contains(name) {
                        problems.push(format!(
                            "pretraining.method_set.{name}: `{name}` is not an SSL method of \
                             this study"
                        ));
                    }
                }
            }
        }
        if self.all_tasks && self.tasks.is_empty() {
            problems.push("tasks: no task (add a [[tasks]] table)".into());
        }
        let mut names = BTreeSet::new();
        for task in self.tasks.iter().chain(&self.sources) {
            let plain = !task.name.is_empty()
                && task
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !plain {
                problems.push(format!(
                    "tasks: name `{}` must be letters, digits, `-` and `_` (it names \
                     directories)",
                    task.name
                ));
            } else if !names.insert(&task.name) {
                problems.push(format!(
                    "tasks: `{}` is listed twice (tasks and sources share names)",
                    task.name
                ));
            }
        }
        if let Some(task) = self.pretraining.as_ref().and_then(|p| p.probe.as_ref())
            && !names.contains(task)
        {
            problems.push(format!(
                "pretraining.probe: `{task}` names no task or source of this study"
            ));
        }
        let rows: Vec<MethodSpec> = self
            .methods
            .iter()
            .flatten()
            .filter_map(|m| MethodSpec::parse(m).ok())
            .collect();
        for row in &rows {
            if let MethodSpec::Supervised(task) = row
                && !names.contains(task)
            {
                problems.push(format!(
                    "methods: supervised:{task} names no task or source of this study"
                ));
            }
        }
        if let Some(finetune) = &self.finetune
            && self.methods.is_some()
        {
            for row in finetune.method_set.keys() {
                if !rows.iter().any(|r| r.label() == *row) {
                    problems.push(format!(
                        "finetune.method_set.{row}: `{row}` is not a row of this study (rows \
                         are named as in the tables: scratch, dino, import-NAME, \
                         supervised-TASK)"
                    ));
                }
            }
        }
        if let Some(finetune) = &self.finetune {
            if finetune.budgets.is_empty() {
                problems.push("finetune.budgets: the list is empty".into());
            }
            for budget in &finetune.budgets {
                let valid = match *budget {
                    BudgetSpec::Shots(n) => n > 0,
                    BudgetSpec::Fraction(f) => f > 0.0 && f < 1.0,
                    BudgetSpec::Named(_) => true,
                };
                if !valid {
                    problems.push(format!(
                        "finetune.budgets: {budget} is neither a positive count, a fraction \
                         in (0, 1) nor \"all\""
                    ));
                }
            }
            let unique: BTreeSet<String> = finetune.budgets.iter().map(|b| b.label()).collect();
            if unique.len() != finetune.budgets.len() {
                problems.push("finetune.budgets: a budget is listed twice".into());
            }
            if finetune.seeds.is_empty() {
                problems.push("finetune.seeds: the list is empty".into());
            }
            for (budget, seeds) in &finetune.budget_seeds {
                if !unique.contains(budget) {
                    problems.push(format!(
                        "finetune.budget_seeds.{budget}: no such budget (budgets are named as \
                         in the tables: {})",
                        unique.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                if seeds.is_empty() {
                    problems.push(format!("finetune.budget_seeds.{budget}: the list is empty"));
                }
                if let Some(seed) = seeds.iter().find(|s| !finetune.seeds.contains(s)) {
                    problems.push(format!(
                        "finetune.budget_seeds.{budget}: seed {seed} is not in finetune.seeds \
                         {:?}",
                        finetune.seeds
                    ));
                }
            }
        }
        if let Some(slurm) = &self.slurm {
            problems.extend(slurm.problems());
        }
    }

    /// The study, or every problem found, under the file's name.
    fn into_study(self, path: &Path) -> Result<StudyDefinition> {
        let complete = (
            self.name,
            self.out,
            self.device,
            self.methods,
            self.pretraining,
            self.finetune,
            self.slurm,
        );
        match complete {
            (
                Some(name),
                Some(out),
                Some(device),
                Some(methods),
                Some(pretraining),
                Some(finetune),
                Some(slurm),
            ) if self.problems.is_empty() => Ok(StudyDefinition {
                name,
                out,
                device,
                methods,
                pretraining,
                finetune,
                tasks: self.tasks,
                sources: self.sources,
                slurm,
                base: self.base,
            }),
            _ => Err(BenchError::Problems {
                path: path.to_path_buf(),
                problems: self.problems,
            }),
        }
    }
}

/// The problems a run would meet on disk: the pretraining collection, the imported
/// weights, the tasks and sources, the `set` overrides against the configurations they
/// change, and tasks whose input channels differ from those of a row's encoder (its
/// fine-tunes would stop at their start). Rows that are not methods are left out (they
/// are reported on their own).
fn disk_problems(
    base: &Path,
    methods: &[String],
    pretraining: Option<&Pretraining>,
    finetune: Option<&Finetuning>,
    tasks: &[TaskSpec],
    sources: &[TaskSpec],
) -> Vec<String> {
    let mut problems = Vec::new();
    // The rows whose encoders are trained before the fine-tunes, with the input
    // channels those encoders take.
    let mut encoders: Vec<(String, usize)> = Vec::new();
    let ssl = ssl_methods(methods);
    if let Some(pretraining) = pretraining.filter(|_| !ssl.is_empty()) {
        let data = base.join(&pretraining.data);
        if !data.exists() {
            problems.push(format!(
                "pretraining.data: {} does not exist",
                data.display()
            ));
        }
        for method in &ssl {
            let overrides = pretrain_overrides(pretraining, method, None);
            let checked = methods::visit(
                method,
                CheckPretraining {
                    preset: pretraining.preset,
                    overrides: &overrides,
                },
            );
            match checked {
                Err(e) => problems.push(e.to_string()),
                Ok(Err(e)) => problems.push(format!("pretraining of {method}: {e}")),
                Ok(Ok(in_channels)) => encoders.push((method.clone(), in_channels)),
            }
        }
    }
    for method in methods.iter().filter_map(|m| MethodSpec::parse(m).ok()) {
        if let MethodSpec::Import(path) = method {
            let path = base.join(&path);
            if !path.is_file() {
                problems.push(format!("methods: import:{} is not a file", path.display()));
            }
        }
    }
    if let Some(finetune) = finetune {
        if let Err(e) = FinetuneConfig::load(finetune.preset, None, &finetune.set) {
            problems.push(format!("finetune.set: {e}"));
        } else {
            for row in finetune.method_set.keys() {
                let set = finetune_overrides(finetune, row);
                if let Err(e) = FinetuneConfig::load(finetune.preset, None, &set) {
                    problems.push(format!("finetune.method_set.{row}: {e}"));
                }
            }
        }
    }
    let mut channels: BTreeMap<&str, usize> = BTreeMap::new();
    for task in tasks.iter().chain(sources) {
        match Task::open(&base.join(&task.path)) {
            Ok(opened) => {
                channels.insert(&task.name, opened.channels.len());
            }
            Err(e) => problems.push(format!("task {}: {e}", task.name)),
        }
    }
    for method in methods.iter().filter_map(|m| MethodSpec::parse(m).ok()) {
        if let MethodSpec::Supervised(source) = method
            && let Some(&n) = channels.get(source.as_str())
        {
            encoders.push((format!("supervised:{source}"), n));
        }
    }
    for task in tasks {
        let Some(&n) = channels.get(task.name.as_str()) else {
            continue;
        };
        let other: Vec<String> = encoders
            .iter()
            .filter(|(_, c)| *c != n)
            .map(|(row, c)| format!("{row} ({c})"))
            .collect();
        if !other.is_empty() {
            problems.push(format!(
                "task {}: {n} input channel(s), but the encoders of {} take the number in \
                 brackets: their fine-tunes would stop at their start (leave the task out, \
                 or pretrain on images with as many channels and set encoder.in_channels)",
                task.name,
                other.join(", ")
            ));
        }
    }
    problems
}

/// Loads method `M`'s pretraining configuration with the study's overrides.
struct CheckPretraining<'a> {
    preset: Preset,
    overrides: &'a [String],
}

impl MethodVisitor for CheckPretraining<'_> {
    /// The input channels of the encoder the configuration trains.
    type Output = medssl_train::error::Result<usize>;

    fn visit<M: medssl_ssl::Method>(self) -> medssl_train::error::Result<usize> {
        PretrainConfig::load::<M>(self.preset, None, self.overrides)
            .map(|config| config.encoder.in_channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mistakes in every section at once: unknown keys at the top and inside tables, a
    /// bad row, a duplicate, a value of the wrong form, a task without a directory,
    /// bad Slurm settings.
    const BROKEN: &str = r#"name = "broken"
epochs = 3
methods = ["scratch", "simclrr", "scratch"]
[pretraining]
data = "ct"
stepz = 2
[finetune]
budgets = [2, "most"]
[[tasks]]
name = "a"
path = "missing"
modality = "CT"
[[tasks]]
name = "b"
path = "b"
modality = "PET"
[slurm]
extra = ["--array=1"]
[slurm.time]
pretrain = "1 day"
finetuen = "1:00:00"
"#;

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("study.toml");
        std::fs::write(&file, BROKEN).unwrap();
        let problems = |result: Result<StudyDefinition>| match result {
            Err(BenchError::Problems { path, problems }) => {
                assert_eq!(path, file);
                problems
            }
            other => panic!("expected problems, got {other:?}"),
        };
        let loaded = problems(StudyDefinition::load(&file));
        let starts: Vec<&str> = loaded
            .iter()
            .map(|p| p.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            starts,
            [
                "unknown field `epochs`, expected one of `name`, `out`, `device`, `methods`, \
                 `pretraining`, `finetune`, `tasks`, `sources`, `slurm`",
                "pretraining",
                "finetune.budgets[1]",
                "slurm.time",
                "tasks[1].modality",
                "methods",
                "methods",
                "slurm.time.pretrain",
                "slurm.extra[0]",
            ],
            "{loaded:#?}"
        );
        for (problem, expected) in loaded.iter().zip([
            "epochs",
            "unknown field `stepz`",
            "string \"most\", expected a label budget",
            "unknown field `finetuen`",
            "unknown variant `PET`",
            "unknown method `simclrr`",
            "`scratch` is listed twice",
            "`1 day` is not a Slurm time limit",
            "`--array=1` is written by `medssl study slurm`",
        ]) {
            assert!(problem.contains(expected), "{problem}");
        }
        // The unreadable [finetune] and task b leave out only their own checks: task
        // a's missing directory is still found.
        let checked = problems(StudyDefinition::check(&file));
        assert_eq!(checked[..loaded.len()], loaded[..]);
        assert_eq!(checked.len(), loaded.len() + 1, "{checked:#?}");
        assert!(
            checked[loaded.len()].starts_with("task a: ")
                && checked[loaded.len()].contains("missing"),
            "{checked:#?}"
        );
    }
}
