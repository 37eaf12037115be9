//! Slurm array jobs for a study: one array for the pretraining jobs, one for the
//! fine-tunes that starts when the first has succeeded (`--dependency=afterok`), one
//! for the CKA jobs after the fine-tunes have ended (`afterany`: a failed fine-tune
//! blocks only the CKA jobs that need it), and one job that writes the results and the
//! report at the end. Each array task runs exactly one study job (`medssl study run
//! FILE --job ID`), so a cluster runs the study with the same resumable job directories
//! as a laptop; a resubmitted array skips the finished jobs.

use std::path::{Path, PathBuf};

use medssl_io::atomic::write_atomically;

use crate::error::{BenchError, Result};
use crate::plan::{JobKind, Plan};

/// The cluster settings of the generated scripts.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    /// The `medssl` binary the tasks run.
    pub medssl: PathBuf,
    /// `--partition`, if any.
    pub partition: Option<String>,
    /// GPUs per task (`--gres=gpu:N`; 0 for CPU-only tasks).
    pub gpus: usize,
    /// CPUs per task.
    pub cpus: usize,
    /// Memory per task, Slurm syntax (`64G`).
    pub memory: String,
    /// Time limit of a pretraining task (`HH:MM:SS`).
    pub pretrain_time: String,
    /// Time limit of a fine-tune task.
    pub finetune_time: String,
    /// `--device` of the tasks.
    pub device: String,
}

/// The scripts written, in submission order.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmScripts {
    /// `pretrain.sbatch` (absent when the study has no SSL method).
    pub pretrain: Option<PathBuf>,
    /// `finetune.sbatch`.
    pub finetune: PathBuf,
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
    let log = if array { "%x-%A_%a.log" } else { "%x-%j.log" };
    let mut lines = vec![
        "#!/usr/bin/env bash".to_string(),
        format!("#SBATCH --job-name={name}"),
        format!("#SBATCH --output={}", logs.join(log).display()),
        format!("#SBATCH --time={time}"),
        format!("#SBATCH --cpus-per-task={}", options.cpus),
        format!("#SBATCH --mem={}", options.memory),
    ];
    if let Some(partition) = &options.partition {
        lines.push(format!("#SBATCH --partition={partition}"));
    }
    if options.gpus > 0 && array {
        lines.push(format!("#SBATCH --gres=gpu:{}", options.gpus));
    }
    lines.join("\n") + "\n"
}

/// An array script running the jobs `ids`, one per task.
fn array_script(
    name: &str,
    ids: &[&str],
    study: &Path,
    options: &SlurmOptions,
    time: &str,
    logs: &Path,
) -> String {
    let mut text = header(name, options, time, logs, true);
    text.push_str(&format!("#SBATCH --array=0-{}\n", ids.len() - 1));
    text.push_str("set -euo pipefail\njobs=(\n");
    for id in ids {
        text.push_str(&format!("  {}\n", quote(id)));
    }
    text.push_str(")\n");
    text.push_str(&format!(
        "exec {} study run {} --job \"${{jobs[$SLURM_ARRAY_TASK_ID]}}\" --device {}\n",
        quote(&options.medssl.to_string_lossy()),
        quote(&study.to_string_lossy()),
        quote(&options.device),
    ));
    text
}

/// Writes the scripts for `plan` of the study file `study` (absolute) into `dir`.
pub fn write_scripts(
    study: &Path,
    plan: &Plan,
    options: &SlurmOptions,
    dir: &Path,
) -> Result<SlurmScripts> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::io(&logs, e))?;
    let write = |name: &str, text: String| -> Result<PathBuf> {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes()).map_err(|e| BenchError::io(&path, e))?;
        Ok(path)
    };
    // The array `medssl-<stage>` in `<stage>.sbatch` of the jobs `of_stage` picks, or
    // nothing when there are none.
    let array =
        |stage: &str, of_stage: fn(&JobKind) -> bool, time: &str| -> Result<Option<PathBuf>> {
            let ids: Vec<&str> = plan
                .jobs
                .iter()
                .filter(|j| of_stage(&j.kind))
                .map(|j| j.id.as_str())
                .collect();
            if ids.is_empty() {
                return Ok(None);
            }
            let text = array_script(
                &format!("medssl-{stage}"),
                &ids,
                study,
                options,
                time,
                &logs,
            );
            write(&format!("{stage}.sbatch"), text).map(Some)
        };
    let pretrain = array(
        "pretrain",
        |k| matches!(k, JobKind::Pretrain { .. }),
        &options.pretrain_time,
    )?;
    let finetune = array(
        "finetune",
        |k| matches!(k, JobKind::Finetune { .. }),
        &options.finetune_time,
    )?
    .ok_or_else(|| BenchError::Invalid("the study has no fine-tune job".into()))?;
    let cka = array(
        "cka",
        |k| matches!(k, JobKind::Cka { .. }),
        &options.finetune_time,
    )?;
    let mut report_text = header("medssl-report", options, "00:30:00", &logs, false);
    report_text.push_str(&format!(
        "set -euo pipefail\nexec {} study report {}\n",
        quote(&options.medssl.to_string_lossy()),
        quote(&study.to_string_lossy())
    ));
    let report = write("report.sbatch", report_text)?;
    let mut submit_text = format!(
        "#!/usr/bin/env bash\n# Submits the study's Slurm jobs with their dependencies.\nset -euo pipefail\ncd {}\n",
        quote(&dir.to_string_lossy())
    );
    match &pretrain {
        Some(_) => submit_text.push_str(
            "pretrain=$(sbatch --parsable pretrain.sbatch)\n\
             finetune=$(sbatch --parsable --dependency=afterok:$pretrain finetune.sbatch)\n",
        ),
        None => submit_text.push_str("finetune=$(sbatch --parsable finetune.sbatch)\n"),
    }
    let last = match &cka {
        Some(_) => {
            submit_text
                .push_str("cka=$(sbatch --parsable --dependency=afterany:$finetune cka.sbatch)\n");
            "$cka"
        }
        None => "$finetune",
    };
    submit_text.push_str(&format!(
        "sbatch --dependency=afterany:{last} report.sbatch\n\
         echo \"submitted: ${{pretrain:-}} $finetune ${{cka:-}}\"\n"
    ));
    let submit = write("submit.sh", submit_text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&submit, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| BenchError::io(&submit, e))?;
    }
    Ok(SlurmScripts {
        pretrain,
        finetune,
        cka,
        report,
        submit,
    })
}
