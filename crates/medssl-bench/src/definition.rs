//! The study file: what to compare, on which data, with how many labels.
//!
//! Paths in the file are relative to the file's own directory. [`StudyDefinition::load`]
//! parses it (unknown keys are errors naming the key); [`StudyDefinition::validate`]
//! then checks everything a run will touch before anything runs: every path exists,
//! every task's `dataset.json` reads, every method is known, and every `set` override
//! is a valid setting of the configuration it is applied to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use medssl_data::dataset::Task;
use medssl_data::splits::Budget;
use medssl_ssl::Preset;
use medssl_ssl::methods::{self, MethodVisitor};
use medssl_train::finetune::FinetuneConfig;
use medssl_train::pretrain::PretrainConfig;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// The study file, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyDefinition {
    /// The study's name (report titles).
    pub name: String,
    /// Where jobs write their runs and the report go (relative to the file).
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// `cpu`, or `cuda[:N]` in a build with the cuda feature.
    #[serde(default = "default_device")]
    pub device: String,
    /// The rows of every table: SSL method names, `scratch`, `import:<file>`.
    pub methods: Vec<String>,
    /// The pretraining of the SSL methods.
    pub pretraining: Pretraining,
    /// The fine-tunes.
    pub finetune: Finetuning,
    /// The labelled tasks.
    pub tasks: Vec<TaskSpec>,
    /// The directory the relative paths start from (the file's directory; not written
    /// in the file).
    #[serde(skip)]
    pub base: PathBuf,
}

fn default_out() -> PathBuf {
    PathBuf::from("study")
}

fn default_device() -> String {
    "cpu".into()
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// How the SSL methods are pretrained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

fn tiny() -> Preset {
    Preset::Tiny
}

/// How every method is fine-tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finetuning {
    /// The preset the fine-tune settings start from.
    #[serde(default = "tiny")]
    pub preset: Preset,
    /// Label budgets: a number of labelled cases, a fraction in (0, 1), or `"all"`.
    pub budgets: Vec<BudgetSpec>,
    /// Seeds; each (method, task, budget) is fine-tuned once per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// `key=value` settings for every fine-tune.
    #[serde(default)]
    pub set: Vec<String>,
}

/// A label budget as written: `2`, `0.25` or `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllCases {
    /// Every training case.
    All,
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
#[serde(deny_unknown_fields)]
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
}

impl MethodSpec {
    /// Parses a `methods` entry, checking SSL names against the method list.
    pub fn parse(text: &str) -> std::result::Result<MethodSpec, String> {
        if text == "scratch" {
            Ok(MethodSpec::Scratch)
        } else if let Some(path) = text.strip_prefix("import:") {
            if path.is_empty() {
                return Err("`import:` needs a file: `import:weights/model.safetensors`".into());
            }
            Ok(MethodSpec::Import(PathBuf::from(path)))
        } else {
            methods::find(text)
                .map(|info| MethodSpec::Ssl(info.name.to_string()))
                .map_err(|e| format!("{e}, scratch, import:<file>"))
        }
    }

    /// The row's name in tables and directories: `scratch`, the method's name, or
    /// `import-<file stem>`.
    pub fn label(&self) -> String {
        match self {
            MethodSpec::Scratch => "scratch".into(),
            MethodSpec::Ssl(name) => name.clone(),
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

/// A commented study file to start from (`medssl study init`).
pub const EXAMPLE: &str = r#"# A medssl study: every method below is fine-tuned on every task, at every label
# budget, once per seed; the SSL methods are pretrained first on the collection.
# Paths are relative to this file. `medssl study validate FILE` checks it all.
name = "my-study"
# Where runs, results.csv and the report go.
out = "study"
# cpu, or cuda / cuda:N in a build with the cuda feature.
device = "cpu"
# Rows of the tables: any of `medssl methods`, `scratch` (random initialisation) and
# `import:<file>` (external SwinUNETR or Swin weights with MONAI key names).
methods = ["scratch", "simclr", "mocov3", "cpc", "rotnet", "swinunetr-ssl", "simmim", "smit", "dino", "ibot"]

[pretraining]
# Unlabelled volumes: a directory of NIfTI files / DICOM series, or a list file.
data = "data/ct-collection"
# tiny (CPU minutes) or paper (the published recipes, for GPUs).
preset = "tiny"
# Optimiser steps per method; the preset's epochs when left out.
steps = 200
# Settings for every method (`medssl config show --method NAME` lists them) ...
set = []
# ... and for one method.
[pretraining.method_set]
simclr = ["pretext.temperature=0.2"]

[finetune]
preset = "tiny"
# Labelled training cases per fine-tune: a count, a fraction, or "all".
budgets = [2, "all"]
seeds = [0]
# Settings for every fine-tune (`medssl config show` lists them).
set = []

[[tasks]]
name = "abdomen-ct"
path = "data/abdomen-ct"
modality = "CT"

[[tasks]]
name = "abdomen-mri"
path = "data/abdomen-mri"
modality = "MRI"
"#;

impl StudyDefinition {
    /// Reads and parses the study file at `path`.
    pub fn load(path: &Path) -> Result<StudyDefinition> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        let mut study: StudyDefinition =
            toml::from_str(&text).map_err(|e| BenchError::definition(path, e.to_string()))?;
        study.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        study
            .structure()
            .map_err(|m| BenchError::definition(path, m))?;
        Ok(study)
    }

    /// `path` of the file resolved against the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    /// The output directory.
    pub fn out_dir(&self) -> PathBuf {
        self.resolve(&self.out)
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
        self.methods()
            .into_iter()
            .filter_map(|m| match m {
                MethodSpec::Ssl(name) => Some(name),
                _ => None,
            })
            .collect()
    }

    /// The `set` overrides of `method`'s pretraining: the shared ones, then its own.
    pub fn pretrain_overrides(&self, method: &str) -> Vec<String> {
        let mut set = self.pretraining.set.clone();
        set.extend(
            self.pretraining
                .method_set
                .get(method)
                .into_iter()
                .flatten()
                .cloned(),
        );
        if let Some(steps) = self.pretraining.steps {
            set.push(format!("train.steps={steps}"));
        }
        set
    }

    /// What can be checked without touching the disk: names, duplicates, budgets.
    fn structure(&self) -> std::result::Result<(), String> {
        let mut labels = BTreeSet::new();
        for text in &self.methods {
            let method = MethodSpec::parse(text).map_err(|e| format!("methods: {e}"))?;
            if !labels.insert(method.label()) {
                return Err(format!("methods: `{text}` is listed twice"));
            }
        }
        if self.methods.is_empty() {
            return Err("methods: the list is empty".into());
        }
        for name in self.pretraining.method_set.keys() {
            if !self.ssl_methods().contains(name) {
                return Err(format!(
                    "pretraining.method_set.{name}: `{name}` is not an SSL method of this study"
                ));
            }
        }
        if self.tasks.is_empty() {
            return Err("tasks: no task (add a [[tasks]] table)".into());
        }
        let mut names = BTreeSet::new();
        for task in &self.tasks {
            let plain = !task.name.is_empty()
                && task
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !plain {
                return Err(format!(
                    "tasks: name `{}` must be letters, digits, `-` and `_` (it names directories)",
                    task.name
                ));
            }
            if !names.insert(&task.name) {
                return Err(format!("tasks: `{}` is listed twice", task.name));
            }
        }
        if self.finetune.budgets.is_empty() {
            return Err("finetune.budgets: the list is empty".into());
        }
        for budget in &self.finetune.budgets {
            let valid = match *budget {
                BudgetSpec::Shots(n) => n > 0,
                BudgetSpec::Fraction(f) => f > 0.0 && f < 1.0,
                BudgetSpec::Named(_) => true,
            };
            if !valid {
                return Err(format!(
                    "finetune.budgets: {budget:?} is neither a positive count, a fraction in \
                     (0, 1) nor \"all\""
                ));
            }
        }
        let unique: BTreeSet<String> = self.finetune.budgets.iter().map(|b| b.label()).collect();
        if unique.len() != self.finetune.budgets.len() {
            return Err("finetune.budgets: a budget is listed twice".into());
        }
        if self.finetune.seeds.is_empty() {
            return Err("finetune.seeds: the list is empty".into());
        }
        Ok(())
    }

    /// Checks every path, task and setting the study's jobs will use; the errors name
    /// the key and the file.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let err = |m: String| BenchError::definition(file, m);
        if !self.ssl_methods().is_empty() {
            let data = self.resolve(&self.pretraining.data);
            if !data.exists() {
                return Err(err(format!(
                    "pretraining.data: {} does not exist",
                    data.display()
                )));
            }
            for method in self.ssl_methods() {
                let overrides = self.pretrain_overrides(&method);
                methods::visit(
                    &method,
                    CheckPretraining {
                        preset: self.pretraining.preset,
                        overrides: &overrides,
                    },
                )
                .map_err(err)?
                .map_err(|e| err(format!("pretraining of {method}: {e}")))?;
            }
        }
        for method in self.methods() {
            if let MethodSpec::Import(path) = method {
                let path = self.resolve(&path);
                if !path.is_file() {
                    return Err(err(format!(
                        "methods: import:{} is not a file",
                        path.display()
                    )));
                }
            }
        }
        FinetuneConfig::load(self.finetune.preset, None, &self.finetune.set)
            .map_err(|e| err(format!("finetune.set: {e}")))?;
        for task in &self.tasks {
            Task::open(&self.resolve(&task.path))
                .map_err(|e| err(format!("task {}: {e}", task.name)))?;
        }
        Ok(())
    }
}

/// Loads method `M`'s pretraining configuration with the study's overrides.
struct CheckPretraining<'a> {
    preset: Preset,
    overrides: &'a [String],
}

impl MethodVisitor for CheckPretraining<'_> {
    type Output = medssl_train::error::Result<()>;

    fn visit<M: medssl_ssl::Method>(self) -> medssl_train::error::Result<()> {
        PretrainConfig::load::<M>(self.preset, None, self.overrides).map(|_| ())
    }
}
