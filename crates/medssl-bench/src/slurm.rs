//! Slurm scripts for a study. Each array task runs exactly one study job (`medssl study
//! run FILE --job ID`), so a cluster runs the study with the same resumable job
//! directories as a laptop, and a resubmission skips the finished jobs.
//!
//! Slurm gives one `--dependency` to all the tasks of an array, and a fine-tune must
//! wait for its own method's pretraining only. So there is one script per stage, which
//! lists that stage's jobs grouped by row, and `submit.sh` submits each row's range of
//! it as its own array with that row's dependency:
//!
//! - `pretrain.sbatch`: one array, a task per encoder the rows start from (each SSL
//!   method's pretraining, each `supervised:` row's fine-tune), no dependency;
//! - `finetune.sbatch`: an array per row; an SSL or `supervised:` row's starts when its
//!   own encoder's task has succeeded (`afterok:PRETRAIN_TASK`), so a failed pretraining
//!   blocks only its own fine-tunes; `scratch` and `import:` rows start at once;
//! - `probe.sbatch`: an array per row, when the row's encoder task has succeeded
//!   (`afterok`; scratch and `import:` rows at once);
//! - `cka.sbatch`: an array per row that has CKA jobs, when the row's fine-tunes have
//!   ended (`afterany`: a CKA job whose fine-tune failed sees it and stops at once) and,
//!   for an SSL row, its pretraining succeeded (`afterok`);
//! - `report.sbatch`: one job when every array has ended (`afterany`), so a failure
//!   leaves out only its own rows: `medssl study report` writes `results.csv` and the
//!   report from whatever finished. It is the only task that writes them.
//!
//! The fine-tune, probe and CKA scripts carry `--kill-on-invalid-dep=yes`: tasks whose
//! `afterok` can never be met are cancelled instead of pending for ever, so the report's
//! `afterany` is reached.
//!
//! The cluster settings (account, QOS, partition, resources, a time limit per job
//! kind, an array throttle `%N`, extra `#SBATCH` lines) come from the study file's
//! `[slurm]` table ([`SlurmSettings`]) with `medssl study slurm`'s flags over it. Extra
//! lines are checked to be single sbatch options that neither rewire the arrays nor
//! contradict a key of the table.

use std::path::{Path, PathBuf};

use medssl_io::atomic::write_atomically;

use crate::definition::MethodSpec;
use crate::error::{BenchError, Result};
use crate::plan::{Job, JobKind, Plan, encoder_job};

pub mod settings;

pub use settings::{SlurmSettings, TimeLimits, directive, parse_memory, parse_name, parse_time};

/// The cluster settings of the generated scripts.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    /// The `medssl` binary the tasks run.
    pub medssl: PathBuf,
    /// `--device` of the tasks.
    pub device: String,
    /// The `#SBATCH` settings: the study file's `[slurm]` table with the command line's
    /// flags over it.
    pub settings: SlurmSettings,
}

/// The scripts written, in submission order.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmScripts {
    /// `pretrain.sbatch` (absent when the study has no SSL method).
    pub pretrain: Option<PathBuf>,
    /// `finetune.sbatch`.
    pub finetune: PathBuf,
    /// `probe.sbatch` (absent when the study has no probe job).
    pub probe: Option<PathBuf>,
    /// `cka.sbatch` (absent when the study has no CKA job).
    pub cka: Option<PathBuf>,
    /// `report.sbatch`.
    pub report: PathBuf,
    /// `submit.sh`, which submits them with their dependencies.
    pub submit: PathBuf,
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn header(name: &str, options: &SlurmOptions, time: &str, logs: &Path, array: bool) -> String {
    let settings = &options.settings;
    let log = if array { "%x-%A_%a.log" } else { "%x-%j.log" };
    let mut lines = vec![
        "#!/usr/bin/env bash".to_string(),
        format!("#SBATCH --job-name={name}"),
        format!("#SBATCH --output={}", logs.join(log).display()),
        format!("#SBATCH --time={time}"),
        format!("#SBATCH --cpus-per-task={}", settings.cpus()),
        format!("#SBATCH --mem={}", settings.mem()),
    ];
    let named = [
        ("partition", &settings.partition),
        ("account", &settings.account),
        ("qos", &settings.qos),
    ];
    for (option, value) in named {
        if let Some(value) = value {
            lines.push(format!("#SBATCH --{option}={value}"));
        }
    }
    if settings.gpus() > 0 && array {
        lines.push(format!("#SBATCH --gres=gpu:{}", settings.gpus()));
    }
    // Checked by `write_scripts` before anything is written.
    lines.extend(settings.extra.iter().filter_map(|l| directive(l).ok()));
    lines.join("\n") + "\n"
}

/// The jobs of one row in one stage's script: tasks `first..first + ids.len()`.
struct RowRange<'a> {
    row: &'a MethodSpec,
    first: usize,
    ids: Vec<&'a str>,
}

impl RowRange<'_> {
    /// `--array` of the row's tasks.
    fn array(&self) -> String {
        format!("{}-{}", self.first, self.first + self.ids.len() - 1)
    }
}

/// An `--array` value: `range`, throttled to `limit` tasks at once when given.
fn throttled(range: &str, limit: Option<u32>) -> String {
    match limit {
        Some(limit) => format!("{range}%{limit}"),
        None => range.to_string(),
    }
}

/// The jobs `of_stage` picks, grouped by row in order of first appearance (the study's
/// row order), each row's jobs in plan order.
fn rows<'a>(plan: &'a Plan, of_stage: fn(&Job) -> Option<&MethodSpec>) -> Vec<RowRange<'a>> {
    let mut rows: Vec<RowRange<'a>> = Vec::new();
    for job in &plan.jobs {
        let Some(row) = of_stage(job) else { continue };
        match rows.iter_mut().find(|r| r.row == row) {
            Some(range) => range.ids.push(&job.id),
            None => rows.push(RowRange {
                row,
                first: 0,
                ids: vec![&job.id],
            }),
        }
    }
    let mut first = 0;
    for range in &mut rows {
        range.first = first;
        first += range.ids.len();
    }
    rows
}

fn finetune_row(job: &Job) -> Option<&MethodSpec> {
    match &job.kind {
        JobKind::Finetune { method, .. } => Some(method),
        _ => None,
    }
}

fn probe_row(job: &Job) -> Option<&MethodSpec> {
    match &job.kind {
        JobKind::Probe { method, .. } => Some(method),
        _ => None,
    }
}

fn cka_row(job: &Job) -> Option<&MethodSpec> {
    match &job.kind {
        JobKind::Cka { method, .. } => Some(method),
        _ => None,
    }
}

/// An array script running the jobs `ids`, one per task. `array` is its own `--array`
/// directive; without one, the script says which ranges `submit.sh` gives it.
struct ArrayScript<'a> {
    name: &'a str,
    ids: Vec<&'a str>,
    array: Option<String>,
    comment: String,
    time: &'a str,
}

fn array_script(script: &ArrayScript, study: &Path, options: &SlurmOptions, logs: &Path) -> String {
    let mut text = header(script.name, options, script.time, logs, true);
    match &script.array {
        Some(array) => text.push_str(&format!("#SBATCH --array={array}\n")),
        None => text.push_str("#SBATCH --kill-on-invalid-dep=yes\n"),
    }
    text.push_str(&script.comment);
    text.push_str("set -euo pipefail\n");
    text.push_str("task=${SLURM_ARRAY_TASK_ID:?run as an array task (submit.sh submits it)}\n");
    text.push_str("jobs=(\n");
    for id in &script.ids {
        text.push_str(&format!("  {}\n", quote(id)));
    }
    text.push_str(")\n");
    text.push_str(&format!(
        "exec {} study run {} --job \"${{jobs[task]}}\" --device {}\n",
        quote(&options.medssl.to_string_lossy()),
        quote(&study.to_string_lossy()),
        quote(&options.device),
    ));
    text
}

/// A shell variable name for `prefix` and a row label, unique among `taken`.
fn variable(prefix: &str, row: &MethodSpec, taken: &mut Vec<String>) -> String {
    let label: String = row
        .label()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let base = format!("{prefix}_{label}");
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    taken.push(name.clone());
    name
}

/// Writes the scripts for `plan` of the study file `study` (absolute) into `dir`; bad
/// settings are refused, all of them listed, before anything is written.
pub fn write_scripts(
    study: &Path,
    plan: &Plan,
    options: &SlurmOptions,
    dir: &Path,
) -> Result<SlurmScripts> {
    let problems = options.settings.problems();
    if !problems.is_empty() {
        return Err(BenchError::Problems {
            path: study.to_path_buf(),
            problems,
        });
    }
    let limit = options.settings.array_limit;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::io(&logs, e))?;
    let write = |name: &str, text: String| -> Result<PathBuf> {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes()).map_err(|e| BenchError::io(&path, e))?;
        Ok(path)
    };
    // The jobs that make encoders: the pretrainings, then the supervised fine-tunes.
    let encoder_jobs: Vec<usize> = (0..plan.jobs.len())
        .filter(|&k| {
            matches!(
                plan.jobs[k].kind,
                JobKind::Pretrain { .. } | JobKind::Supervised { .. }
            )
        })
        .collect();
    // The encoder task a row needs (`afterok:${pretrain}_TASK`), if any.
    let pretrain_task = |row: &MethodSpec| {
        encoder_job(&plan.jobs, row).and_then(|k| encoder_jobs.iter().position(|&e| e == k))
    };
    let pretrain = if encoder_jobs.is_empty() {
        None
    } else {
        let script = ArrayScript {
            name: "medssl-pretrain",
            ids: encoder_jobs
                .iter()
                .map(|&k| plan.jobs[k].id.as_str())
                .collect(),
            array: Some(throttled(&format!("0-{}", encoder_jobs.len() - 1), limit)),
            comment: "# One array task per encoder the rows start from: each SSL method's \
                      pretraining and each supervised row's fine-tune (submit.sh submits \
                      it).\n"
                .into(),
            time: options.settings.pretrain_time(),
        };
        Some(write(
            "pretrain.sbatch",
            array_script(&script, study, options, &logs),
        )?)
    };
    // A stage script grouped by row, with the ranges submit.sh submits in a comment.
    let staged = |stage: &str, what: &str, ranges: &[RowRange], time: &str| {
        let mut comment = format!(
            "# One array task per {what} job. submit.sh submits each row's range as its own\n\
             # array, with that row's dependency:\n"
        );
        for range in ranges {
            let after = match pretrain_task(range.row) {
                Some(task) => format!(" (after pretrain.sbatch task {task})"),
                None => String::new(),
            };
            comment.push_str(&format!(
                "#   --array={:<7} {}{after}\n",
                range.array(),
                range.row.label()
            ));
        }
        let script = ArrayScript {
            name: &format!("medssl-{stage}"),
            ids: ranges.iter().flat_map(|r| r.ids.iter().copied()).collect(),
            array: None,
            comment,
            time,
        };
        array_script(&script, study, options, &logs)
    };
    let finetune_rows = rows(plan, finetune_row);
    if finetune_rows.is_empty() {
        return Err(BenchError::Invalid("the study has no fine-tune job".into()));
    }
    let finetune = write(
        "finetune.sbatch",
        staged(
            "finetune",
            "fine-tune",
            &finetune_rows,
            options.settings.finetune_time(),
        ),
    )?;
    let probe_rows = rows(plan, probe_row);
    let probe = if probe_rows.is_empty() {
        None
    } else {
        Some(write(
            "probe.sbatch",
            staged("probe", "probe", &probe_rows, options.settings.cka_time()),
        )?)
    };
    let cka_rows = rows(plan, cka_row);
    let cka = if cka_rows.is_empty() {
        None
    } else {
        Some(write(
            "cka.sbatch",
            staged("cka", "CKA", &cka_rows, options.settings.cka_time()),
        )?)
    };
    let mut report_text = header(
        "medssl-report",
        options,
        options.settings.report_time(),
        &logs,
        false,
    );
    report_text.push_str(&format!(
        "# results.csv and the report, from the jobs that finished.\n\
         set -euo pipefail\nexec {} study report {}\n",
        quote(&options.medssl.to_string_lossy()),
        quote(&study.to_string_lossy())
    ));
    let report = write("report.sbatch", report_text)?;

    let mut text = String::from(
        "#!/usr/bin/env bash\n\
         # Submits the study's Slurm jobs with their dependencies (medssl study slurm):\n\
         # - pretrain.sbatch: one array, a task per SSL method;\n\
         # - finetune.sbatch: one array per row; an SSL row's starts when its own\n\
         #   pretraining task has succeeded (afterok:JOB_TASK), so a failed pretraining\n\
         #   blocks only that row; scratch and import: rows start at once;\n\
         # - probe.sbatch: one array per row, when its encoder's task has succeeded;\n\
         # - cka.sbatch: one array per row, when the row's fine-tunes have ended\n\
         #   (afterany) and its pretraining has succeeded;\n\
         # - report.sbatch: when everything has ended (afterany), results.csv and the\n\
         #   report of whatever finished.\n\
         # Tasks whose afterok can never be met are cancelled (--kill-on-invalid-dep).\n\
         # Submitting again skips the jobs that are done.\n\
         set -euo pipefail\n",
    );
    text.push_str(&format!("cd {}\n", quote(&dir.to_string_lossy())));
    text.push_str(
        "# The job id `sbatch --parsable` prints (JOBID or JOBID;CLUSTER).\n\
         submit() {\n  local id\n  id=$(sbatch --parsable \"$@\")\n  echo \"${id%%;*}\"\n}\n",
    );
    let mut all = Vec::new();
    if pretrain.is_some() {
        text.push_str("pretrain=$(submit pretrain.sbatch)\n");
        all.push("pretrain".to_string());
    }
    let mut taken = Vec::new();
    // Each row's range of `stage`'s script as its own array, after the row's encoder
    // task; returns the rows' shell variables.
    let mut submit_after_encoder = |stage: &str, ranges: &[RowRange<'_>], text: &mut String| {
        let mut vars = Vec::new();
        for range in ranges {
            let var = variable(stage, range.row, &mut taken);
            let dependency = match pretrain_task(range.row) {
                Some(task) => format!(" --dependency=\"afterok:${{pretrain}}_{task}\""),
                None => String::new(),
            };
            text.push_str(&format!(
                "{var}=$(submit --array={}{dependency} {stage}.sbatch)\n",
                throttled(&range.array(), limit)
            ));
            vars.push(var);
        }
        vars
    };
    let finetune_vars = submit_after_encoder("finetune", &finetune_rows, &mut text);
    let probe_vars = submit_after_encoder("probe", &probe_rows, &mut text);
    let finetune_of: Vec<(&MethodSpec, String)> = finetune_rows
        .iter()
        .map(|range| range.row)
        .zip(finetune_vars.iter().cloned())
        .collect();
    all.extend(finetune_vars.iter().chain(&probe_vars).cloned());
    let mut cka_vars = Vec::new();
    for range in &cka_rows {
        let var = variable("cka", range.row, &mut taken);
        let mut after = Vec::new();
        if let Some(task) = pretrain_task(range.row) {
            after.push(format!("afterok:${{pretrain}}_{task}"));
        }
        if let Some((_, finetunes)) = finetune_of.iter().find(|(row, _)| *row == range.row) {
            after.push(format!("afterany:${{{finetunes}}}"));
        }
        let dependency = if after.is_empty() {
            String::new()
        } else {
            format!(" --dependency=\"{}\"", after.join(","))
        };
        text.push_str(&format!(
            "{var}=$(submit --array={}{dependency} cka.sbatch)\n",
            throttled(&range.array(), limit)
        ));
        cka_vars.push(var.clone());
        all.push(var);
    }
    let everything: Vec<String> = all.iter().map(|v| format!("${{{v}}}")).collect();
    text.push_str(&format!(
        "report=$(submit --dependency=\"afterany:{}\" report.sbatch)\n",
        everything.join(":")
    ));
    let list = |vars: &[String]| {
        vars.iter()
            .map(|v| format!("${v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let listed = |vars: &[String]| {
        if vars.is_empty() {
            "-".to_string()
        } else {
            list(vars)
        }
    };
    text.push_str(&format!(
        "echo \"submitted: pretrain {}, finetune {}, probe {}, cka {}, report $report\"\n",
        if pretrain.is_some() { "$pretrain" } else { "-" },
        list(&finetune_vars),
        listed(&probe_vars),
        listed(&cka_vars),
    ));
    let submit = write("submit.sh", text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&submit, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| BenchError::io(&submit, e))?;
    }
    Ok(SlurmScripts {
        pretrain,
        finetune,
        probe,
        cka,
        report,
        submit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::StudyDefinition;

    const STUDY: &str = r#"name = "rows"
methods = ["scratch", "simmim", "import:weights/w.safetensors", "dino"]
[pretraining]
data = "ct"
[finetune]
budgets = [2, "all"]
[[tasks]]
name = "a"
path = "a"
modality = "CT"
[[tasks]]
name = "b"
path = "b"
modality = "MRI"
"#;

    #[test]
    fn each_row_waits_only_for_its_own_pretraining_task() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("study.toml");
        std::fs::write(&file, STUDY).unwrap();
        let study = StudyDefinition::load(&file).unwrap();
        let plan = Plan::new(&study);
        let options = SlurmOptions {
            medssl: "/opt/medssl".into(),
            device: "cuda".into(),
            settings: SlurmSettings {
                cpus: Some(4),
                mem: Some("16G".into()),
                ..SlurmSettings::default()
            },
        };
        let out = dir.path().join("slurm");
        let scripts = write_scripts(&file, &plan, &options, &out).unwrap();
        let read = |path: &Path| std::fs::read_to_string(path).unwrap();
        let submit = read(&scripts.submit);
        for line in [
            "finetune_scratch=$(submit --array=0-3 finetune.sbatch)\n",
            "finetune_simmim=$(submit --array=4-7 --dependency=\"afterok:${pretrain}_0\" finetune.sbatch)\n",
            "finetune_import_w=$(submit --array=8-11 finetune.sbatch)\n",
            "finetune_dino=$(submit --array=12-15 --dependency=\"afterok:${pretrain}_1\" finetune.sbatch)\n",
            "probe_scratch=$(submit --array=0-1 probe.sbatch)\n",
            "probe_dino=$(submit --array=6-7 --dependency=\"afterok:${pretrain}_1\" probe.sbatch)\n",
            "cka_scratch=$(submit --array=0-1 --dependency=\"afterany:${finetune_scratch}\" cka.sbatch)\n",
            "cka_import_w=$(submit --array=4-5 --dependency=\"afterany:${finetune_import_w}\" cka.sbatch)\n",
            "cka_dino=$(submit --array=6-7 --dependency=\"afterok:${pretrain}_1,afterany:${finetune_dino}\" cka.sbatch)\n",
        ] {
            assert!(submit.contains(line), "{line} in {submit}");
        }
        // The array tasks of a row's range are that row's jobs, every task and budget.
        let finetune = read(&scripts.finetune);
        let ids: Vec<&str> = finetune
            .lines()
            .filter_map(|l| l.strip_prefix("  '")?.strip_suffix('\''))
            .collect();
        assert_eq!(ids.len(), 16);
        assert_eq!(
            ids[12..],
            [
                "finetune/a/dino.2-shots.seed-0",
                "finetune/a/dino.all.seed-0",
                "finetune/b/dino.2-shots.seed-0",
                "finetune/b/dino.all.seed-0"
            ]
        );
        assert!(finetune.contains("#   --array=12-15   dino (after pretrain.sbatch task 1)\n"));
        let pretrain = read(scripts.pretrain.as_ref().unwrap());
        assert!(
            pretrain.contains("  'pretrain/simmim'\n  'pretrain/dino'\n"),
            "{pretrain}"
        );
        let report = submit.lines().find(|l| l.starts_with("report=")).unwrap();
        assert_eq!(
            report,
            "report=$(submit --dependency=\"afterany:${pretrain}:${finetune_scratch}:\
             ${finetune_simmim}:${finetune_import_w}:${finetune_dino}:${probe_scratch}:\
             ${probe_simmim}:${probe_import_w}:${probe_dino}:${cka_scratch}:${cka_simmim}:\
             ${cka_import_w}:${cka_dino}\" report.sbatch)"
        );
    }

    #[test]
    fn time_limits_and_extra_lines_are_checked() {
        for good in ["90", "90:30", "08:00:00", "2-00", "2-12:30", "1-00:00:00"] {
            assert_eq!(parse_time(good).as_deref(), Ok(good));
        }
        for bad in ["", "1 day", "8h", "1:2:3:4", "-5", "2-", "1:-2", "a-1"] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        assert_eq!(
            directive("--constraint=a100").unwrap(),
            "#SBATCH --constraint=a100"
        );
        assert_eq!(
            directive("  #SBATCH   --mail-type=FAIL ").unwrap(),
            "#SBATCH --mail-type=FAIL"
        );
        assert_eq!(directive("-C a100").unwrap(), "#SBATCH -C a100");
        let refused = [
            ("constraint=a100", "not an sbatch option"),
            ("#SBATCH--constraint=a100", "not an sbatch option"),
            ("# a comment", "not an sbatch option"),
            ("--array=0-3", "written by `medssl study slurm`"),
            ("#SBATCH -d afterok:1", "written by `medssl study slurm`"),
            ("--account=other", "slurm.account"),
            ("-t 10", "slurm.time"),
            ("--gres=gpu:4", "slurm.gpus"),
        ];
        for (line, expected) in refused {
            let err = directive(line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let settings = SlurmSettings {
            account: Some("two words".into()),
            mem: Some("64 GB".into()),
            time: TimeLimits {
                cka: Some("soon".into()),
                ..TimeLimits::default()
            },
            array_limit: Some(0),
            extra: vec!["--mem-per-cpu=4G".into(), "--output=x".into()],
            ..SlurmSettings::default()
        };
        let problems = settings.problems();
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "slurm.account",
                "slurm.mem",
                "slurm.time.cka",
                "slurm.array_limit",
                "slurm.extra[1]"
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn flags_override_the_study_file_and_defaults_fill_the_rest() {
        let file = SlurmSettings {
            account: Some("lab".into()),
            qos: Some("normal".into()),
            time: TimeLimits {
                finetune: Some("4:00:00".into()),
                ..TimeLimits::default()
            },
            extra: vec!["--constraint=a100".into()],
            ..SlurmSettings::default()
        };
        let flags = SlurmSettings {
            qos: Some("high".into()),
            array_limit: Some(3),
            ..SlurmSettings::default()
        };
        let merged = file.overridden_by(&flags);
        assert_eq!(merged.account.as_deref(), Some("lab"));
        assert_eq!(merged.qos.as_deref(), Some("high"));
        assert_eq!(merged.array_limit, Some(3));
        assert_eq!(merged.extra, ["--constraint=a100"]);
        assert_eq!(merged.pretrain_time(), "24:00:00");
        assert_eq!(merged.finetune_time(), "4:00:00");
        assert_eq!(merged.cka_time(), "4:00:00", "the fine-tune's limit");
        assert_eq!(merged.report_time(), "00:30:00");
    }
}
