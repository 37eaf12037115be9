//! The `[slurm]` table of a study file and the checks of its values: what the study
//! definition reads, apart from the scripts written from it.

use serde::{Deserialize, Serialize};

/// The `[slurm]` table of a study file: the cluster settings of the scripts, so that a
/// site's account, QOS and constraints are written once. `medssl study slurm`'s flags
/// override them; what neither gives takes the defaults below. Unknown keys are
/// reported by [`crate::definition::StudyDefinition::load`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlurmSettings {
    /// `--account` (charged for the jobs).
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// `--partition`.
    pub partition: Option<String>,
    /// GPUs per array task (`--gres=gpu:N`; 0 for CPU-only tasks). Default 1.
    pub gpus: Option<u32>,
    /// CPUs per task. Default 8.
    pub cpus: Option<u32>,
    /// Memory per task, Slurm syntax (`64G`). Default `64G`.
    pub mem: Option<String>,
    /// Time limit per job kind.
    pub time: TimeLimits,
    /// At most this many tasks of each array at once (`--array=A-B%N`).
    pub array_limit: Option<u32>,
    /// More `#SBATCH` directives for every script, with or without the `#SBATCH`
    /// prefix: `"--constraint=a100"`, `"#SBATCH --mail-type=FAIL"`.
    pub extra: Vec<String>,
}

/// Time limits (`--time`) of each kind of task, Slurm syntax (`08:00:00`, `2-00:00:00`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeLimits {
    /// A pretraining task. Default `24:00:00`.
    pub pretrain: Option<String>,
    /// A fine-tune and its test evaluation. Default `08:00:00`.
    pub finetune: Option<String>,
    /// A CKA job or a probe job. Default: the fine-tune's limit.
    pub cka: Option<String>,
    /// The results and report job. Default `00:30:00`.
    pub report: Option<String>,
}

/// Directives the scripts write themselves: they name the tasks and their logs and wire
/// the arrays together, so an extra line must not change them.
const WIRED: [&str; 9] = [
    "--job-name",
    "-J",
    "--output",
    "-o",
    "--array",
    "-a",
    "--dependency",
    "-d",
    "--kill-on-invalid-dep",
];

/// Directives that have a key of their own in `[slurm]` (an extra line would contradict
/// it).
const OWN_KEYS: [(&str, &str); 13] = [
    ("--account", "account"),
    ("-A", "account"),
    ("--qos", "qos"),
    ("-q", "qos"),
    ("--partition", "partition"),
    ("-p", "partition"),
    ("--time", "time"),
    ("-t", "time"),
    ("--cpus-per-task", "cpus"),
    ("-c", "cpus"),
    ("--mem", "mem"),
    ("--gres", "gpus"),
    ("--gpus", "gpus"),
];

/// Checks a Slurm time limit: `MINUTES`, `MINUTES:SECONDS`, `HOURS:MINUTES:SECONDS`,
/// `DAYS-HOURS`, `DAYS-HOURS:MINUTES` or `DAYS-HOURS:MINUTES:SECONDS`; returns it.
pub fn parse_time(text: &str) -> std::result::Result<String, String> {
    let numbers = |parts: &str| {
        let parts: Vec<&str> = parts.split(':').collect();
        parts.len() <= 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let valid = match text.split_once('-') {
        Some((days, rest)) => numbers(days) && !days.contains(':') && numbers(rest),
        None => numbers(text),
    };
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a Slurm time limit: use MINUTES, HH:MM:SS or DAYS-HH:MM:SS \
             (08:00:00, 2-00:00:00)"
        ))
    }
}

/// Checks an account, QOS or partition name (one word: it goes on an `#SBATCH` line).
pub fn parse_name(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "`{text}` is not a Slurm name: it must be one word without spaces"
        ))
    } else {
        Ok(text.to_string())
    }
}

/// Checks a memory size in Slurm syntax: a whole number with an optional unit K, M, G or
/// T (`64G`).
pub fn parse_memory(text: &str) -> std::result::Result<String, String> {
    let digits = text.trim_end_matches(|c: char| "KMGTkmgt".contains(c));
    let valid = !digits.is_empty()
        && text.len() - digits.len() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit());
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a Slurm memory size: a whole number with an optional unit K, \
             M, G or T (64G)"
        ))
    }
}

/// An extra line as the `#SBATCH` directive it stands for, or why it cannot be one.
pub fn directive(line: &str) -> std::result::Result<String, String> {
    let trimmed = line.trim();
    let option = match trimmed.strip_prefix("#SBATCH") {
        Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
        _ => trimmed,
    };
    if !option.starts_with('-') || option.contains(['\n', '\r']) {
        return Err(format!(
            "`{line}` is not an sbatch option: write one option per line, as \
             `--constraint=a100` or `#SBATCH --constraint=a100`"
        ));
    }
    let name = if option.starts_with("--") {
        option
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or(option)
    } else {
        option.get(..2).unwrap_or(option)
    };
    if WIRED.contains(&name) {
        return Err(format!(
            "`{option}` is written by `medssl study slurm` itself (it names the tasks and \
             their logs and orders the arrays)"
        ));
    }
    if let Some((_, key)) = OWN_KEYS.iter().find(|(o, _)| *o == name) {
        return Err(format!("`{option}` has a key of its own: slurm.{key}"));
    }
    Ok(format!("#SBATCH {option}"))
}

impl SlurmSettings {
    /// These settings with `over`'s where it has them (command-line flags over the study
    /// file); the extra lines of both.
    pub fn overridden_by(&self, over: &SlurmSettings) -> SlurmSettings {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmSettings {
            account: pick(&self.account, &over.account),
            qos: pick(&self.qos, &over.qos),
            partition: pick(&self.partition, &over.partition),
            gpus: over.gpus.or(self.gpus),
            cpus: over.cpus.or(self.cpus),
            mem: pick(&self.mem, &over.mem),
            time: TimeLimits {
                pretrain: pick(&self.time.pretrain, &over.time.pretrain),
                finetune: pick(&self.time.finetune, &over.time.finetune),
                cka: pick(&self.time.cka, &over.time.cka),
                report: pick(&self.time.report, &over.time.report),
            },
            array_limit: over.array_limit.or(self.array_limit),
            extra: self.extra.iter().chain(&over.extra).cloned().collect(),
        }
    }

    /// Every problem of the settings, each starting with its key (`slurm.time.cka: ...`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |key: &str, outcome: std::result::Result<String, String>| {
            if let Err(e) = outcome {
                problems.push(format!("slurm.{key}: {e}"));
            }
        };
        let names = [
            ("account", &self.account),
            ("qos", &self.qos),
            ("partition", &self.partition),
        ];
        for (key, value) in names {
            if let Some(value) = value {
                check(key, parse_name(value));
            }
        }
        if let Some(mem) = &self.mem {
            check("mem", parse_memory(mem));
        }
        let times = [
            ("time.pretrain", &self.time.pretrain),
            ("time.finetune", &self.time.finetune),
            ("time.cka", &self.time.cka),
            ("time.report", &self.time.report),
        ];
        for (key, value) in times {
            if let Some(value) = value {
                check(key, parse_time(value));
            }
        }
        if self.cpus == Some(0) {
            check("cpus", Err("a task needs at least 1 CPU".into()));
        }
        if self.array_limit == Some(0) {
            check(
                "array_limit",
                Err("0 would never run a task; leave it out for no limit".into()),
            );
        }
        for (i, line) in self.extra.iter().enumerate() {
            check(&format!("extra[{i}]"), directive(line));
        }
        problems
    }

    pub(super) fn gpus(&self) -> u32 {
        self.gpus.unwrap_or(1)
    }

    pub(super) fn cpus(&self) -> u32 {
        self.cpus.unwrap_or(8)
    }

    pub(super) fn mem(&self) -> &str {
        self.mem.as_deref().unwrap_or("64G")
    }

    pub(super) fn pretrain_time(&self) -> &str {
        self.time.pretrain.as_deref().unwrap_or("24:00:00")
    }

    pub(super) fn finetune_time(&self) -> &str {
        self.time.finetune.as_deref().unwrap_or("08:00:00")
    }

    pub(super) fn cka_time(&self) -> &str {
        self.time.cka.as_deref().unwrap_or(self.finetune_time())
    }

    pub(super) fn report_time(&self) -> &str {
        self.time.report.as_deref().unwrap_or("00:30:00")
    }
}
