//! Starting a run or continuing one: the one decision that `medssl pretrain`,
//! `medssl finetune` and the study's jobs share, the same for both kinds of run.
//!
//! | the directory holds | [`Launch::New`] | [`Launch::Resume`] | [`Launch::Either`] |
//! |---|---|---|---|
//! | nothing of a run | start | refused: no run | start |
//! | a start's first files but no checkpoint (killed that early) | refused | resume: from the start, with the stored settings | the files are cleared, start |
//! | a checkpoint, or a finished run | refused | resume | resume if the stored settings are the requested ones, else refused naming the keys that differ |
//!
//! `New` is a command starting a run; `Resume` its `--resume`, which keeps the stored
//! settings; `Either` is a study job, which is started or continued as often as the
//! study is run and must never silently continue a run made with other settings.

use std::path::Path;

use crate::error::{Result, TrainError};
use crate::run_dir::RunDir;

/// What the caller asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch<C> {
    /// A new run with these settings; the directory must hold none.
    New(C),
    /// The run the directory holds, with its stored settings.
    Resume,
    /// The run the directory holds if it has these settings, else a new one with them.
    Either(C),
}

/// What a run directory holds, as far as starting and resuming go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// No file of a run.
    Nothing,
    /// Files a start writes before its first checkpoint, but no checkpoint.
    Unstarted,
    /// A checkpoint, or the result of a finished run.
    Run,
}

impl Holds {
    /// What `run` holds now.
    pub fn of(run: &RunDir) -> Holds {
        if run.checkpoint_state().is_file() || run.result().is_file() {
            Holds::Run
        } else if run.info().is_file() || run.config().is_file() {
            Holds::Unstarted
        } else {
            Holds::Nothing
        }
    }
}

/// The refusal of a new run in a directory that holds one.
pub fn already_holds_a_run(run_dir: &Path) -> TrainError {
    TrainError::Invalid(format!(
        "{} already holds a run; continue it with --resume, or choose another --out",
        run_dir.display()
    ))
}

/// Starts or resumes the run in `run_dir` as `launch` and [`Holds::of`] decide (the
/// table in the module doc). `differing` lists the settings keys whose stored values
/// differ from the requested ones (only called for [`Launch::Either`] on a held run;
/// `crate::settings::differing_keys` against the stored configuration), `start`
/// starts a new run with the requested settings, `resume` continues the held one.
pub fn start_or_resume<C, R>(
    run_dir: &Path,
    launch: Launch<C>,
    differing: impl FnOnce(&C, &RunDir) -> Result<Vec<String>>,
    start: impl FnOnce(C) -> Result<R>,
    resume: impl FnOnce() -> Result<R>,
) -> Result<R> {
    let run = RunDir::at(run_dir);
    match (launch, Holds::of(&run)) {
        (Launch::New(config) | Launch::Either(config), Holds::Nothing) => start(config),
        (Launch::New(_), _) => Err(already_holds_a_run(run_dir)),
        (Launch::Resume, Holds::Nothing) => Err(TrainError::Invalid(format!(
            "{} holds no run to resume (no {})",
            run_dir.display(),
            file_name(&run.info())
        ))),
        (Launch::Resume, _) => resume(),
        (Launch::Either(config), Holds::Unstarted) => {
            run.clear_for_restart()?;
            start(config)
        }
        (Launch::Either(config), Holds::Run) => {
            let differ = differing(&config, &run)?;
            if !differ.is_empty() {
                return Err(TrainError::Invalid(format!(
                    "{} holds a run started with other settings ({} differ); restore \
                     them, or delete the directory to start it again",
                    run_dir.display(),
                    differ.join(", ")
                )));
            }
            resume()
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::settings::differing_keys;

    #[derive(Debug, Clone, PartialEq, Serialize)]
    struct Settings {
        lr: f64,
    }

    /// What `start_or_resume` did.
    #[derive(Debug, PartialEq)]
    enum Did {
        Start(f64),
        Resume,
    }

    fn launch(dir: &Path, launch: Launch<Settings>) -> Result<Did> {
        start_or_resume(
            dir,
            launch,
            |requested, _| differing_keys(requested, &Settings { lr: 1e-3 }),
            |s| Ok(Did::Start(s.lr)),
            || Ok(Did::Resume),
        )
    }

    /// Every cell of the module doc's table.
    #[test]
    fn the_decision_follows_the_table() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let run = RunDir::create(&dir).unwrap();
        let same = Settings { lr: 1e-3 };
        let other = Settings { lr: 1e-4 };

        assert_eq!(Holds::of(&run), Holds::Nothing);
        assert_eq!(
            launch(&dir, Launch::New(same.clone())).unwrap(),
            Did::Start(1e-3)
        );
        assert_eq!(
            launch(&dir, Launch::Either(same.clone())).unwrap(),
            Did::Start(1e-3)
        );
        let none = launch(&dir, Launch::Resume).unwrap_err().to_string();
        assert!(none.contains("holds no run to resume"), "{none}");

        run.write(&run.info(), b"{}").unwrap();
        run.write(&run.config(), b"").unwrap();
        assert_eq!(Holds::of(&run), Holds::Unstarted);
        let refused = launch(&dir, Launch::New(same.clone()))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("already holds a run"), "{refused}");
        assert_eq!(launch(&dir, Launch::Resume).unwrap(), Did::Resume);
        assert_eq!(
            launch(&dir, Launch::Either(other.clone())).unwrap(),
            Did::Start(1e-4)
        );
        assert!(
            !run.info().exists() && !run.config().exists(),
            "cleared for the start"
        );

        run.write(&run.result(), b"{}").unwrap();
        assert_eq!(Holds::of(&run), Holds::Run);
        assert!(launch(&dir, Launch::New(same.clone())).is_err());
        assert_eq!(launch(&dir, Launch::Resume).unwrap(), Did::Resume);
        assert_eq!(launch(&dir, Launch::Either(same)).unwrap(), Did::Resume);
        let changed = launch(&dir, Launch::Either(other)).unwrap_err().to_string();
        assert!(changed.contains("other settings (lr differ)"), "{changed}");
    }
}
