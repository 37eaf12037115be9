//! Progress of the training commands and their clean stop on Ctrl-C.
//!
//! On a terminal a bar per epoch shows the position in the epoch, the rate with its unit
//! and the time left for the whole run; a plain line per epoch (with the same rate and
//! time left) is printed everywhere, so a Slurm log, where stderr is a file and no bar
//! is drawn, still tells how far a run is. Ctrl-C (or SIGTERM, which Slurm sends before
//! its time limit) asks the training loop to stop after its current step; the loop
//! writes a checkpoint there and the command prints the `--resume` command that
//! continues it.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use medssl_train::fit::Event;
use signal_hook::consts::{SIGINT, SIGTERM};

/// How much the program prints, from the global `--quiet` and `--verbose` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// No progress bars; log lines, warnings and errors only.
    Quiet,
    /// Progress bars on a terminal, and the log lines.
    #[default]
    Normal,
    /// As normal, plus every setting of a run (its whole `config.toml`) when it starts
    /// or resumes.
    Verbose,
}

static VERBOSITY: std::sync::OnceLock<Verbosity> = std::sync::OnceLock::new();

/// Sets how much the program prints; called once, from `main`.
pub fn set_verbosity(verbosity: Verbosity) {
    let _ = VERBOSITY.set(verbosity);
}

/// How much the program prints (normal until [`set_verbosity`] says otherwise).
pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or_default()
}

/// The progress of one run: a bar per epoch (unless quiet or stderr is not a
/// terminal) and the run-level counts behind the rate and the time left.
pub struct EpochBar {
    enabled: bool,
    bar: Option<ProgressBar>,
    /// Epochs of the whole run.
    epochs: u64,
    /// Units of the whole run, and done so far (a resumed run starts part-way).
    total: u64,
    done: u64,
    /// Units done when this process began, and when that was: the rate counts this
    /// process's work only, validations and checkpoints included.
    first: u64,
    started: Instant,
}

impl EpochBar {
    /// The progress of a run of `epochs` epochs and `total` optimiser steps, `done` of
    /// them done already; the bar is drawn unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool, epochs: u64, total: u64, done: u64) -> EpochBar {
        EpochBar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: None,
            epochs,
            total,
            done,
            first: done,
            started: Instant::now(),
        }
    }

    /// Epoch `epoch` of `len` units begins, or goes on after `pos` of them.
    pub fn start(&mut self, epoch: u64, len: u64, pos: u64) {
        if !self.enabled {
            return;
        }
        let template = "{prefix} [{bar:30}] {pos}/{len} steps  {msg}";
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(self.epoch(epoch));
        bar.set_position(pos);
        bar.set_message(self.pace());
        self.bar = Some(bar);
    }

    /// One unit done, with this loss.
    pub fn step(&mut self, loss: f64) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {loss:.4}  {}", self.pace()));
            bar.inc(1);
        }
    }

    /// The epoch ended: the bar goes, so the plain line that follows stands alone.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// `epoch K/N`.
    pub fn epoch(&self, epoch: u64) -> String {
        format!("epoch {epoch}/{}", self.epochs)
    }

    /// The plain line at the end of an epoch: loss, time, rate and the run's time left.
    pub fn epoch_line(&self, epoch: u64, mean_loss: f64, seconds: f64) -> String {
        format!(
            "{}: loss {mean_loss:.4}  {seconds:.1} s  {}",
            self.epoch(epoch),
            self.pace()
        )
    }

    /// Prints `line` to stderr above the bar, if one is drawn.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// `1.80 step/s  ETA 6m12s (run)`: the rate of this process and the time left for
    /// the whole run at that rate.
    fn pace(&self) -> String {
        let counted = self.done.saturating_sub(self.first);
        let elapsed = self.started.elapsed().as_secs_f64();
        if counted == 0 || elapsed <= 0.0 {
            return "ETA ? (run)".into();
        }
        let rate = counted as f64 / elapsed;
        let left = self.total.saturating_sub(self.done) as f64 / rate;
        format!(
            "{}  ETA {} (run)",
            rate_text(rate),
            short_duration(Duration::from_secs_f64(left))
        )
    }
}

/// A rate of optimiser steps: `1.80 step/s`, or `12.3 s/step` below one per second.
fn rate_text(per_second: f64) -> String {
    if per_second >= 1.0 {
        format!("{per_second:.2} step/s")
    } else {
        format!("{:.1} s/step", 1.0 / per_second)
    }
}

/// Shows an event of the training loop: the bar moves, an epoch's end, a validation, a
/// clipping summary, a probe or a warning gets its plain line, and the first step after a
/// Ctrl-C says that the run is stopping.
pub fn show_event(bar: &mut EpochBar, interrupt: &mut Interrupt, event: Event) {
    match event {
        Event::EpochStart { epoch, steps, done } => bar.start(epoch, steps, done),
        Event::Step { loss, .. } => {
            bar.step(loss);
            if let Some(notice) = interrupt.notice() {
                bar.println(notice);
            }
        }
        Event::EpochEnd {
            epoch,
            mean_loss,
            seconds,
        } => {
            bar.finish();
            eprintln!("{}", bar.epoch_line(epoch, mean_loss, seconds));
        }
        Event::Validation {
            epoch,
            dice,
            best,
            best_epoch,
        } => eprintln!(
            "validation epoch {epoch}: mean Dice {dice:.4} (best {best:.4}, epoch {best_epoch})"
        ),
        Event::Clipped {
            epoch,
            clipped,
            steps,
            largest_norm,
        } => eprintln!(
            "epoch {epoch}: gradient clipped in {clipped} of {steps} steps (largest norm \
             {largest_norm:.3e})"
        ),
        Event::Warning(message) => bar.println(&format!("warning: {message}")),
        Event::Probe { iteration, linear } => {
            let scores: Vec<String> = linear
                .iter()
                .map(|(stage, score)| match score.is_finite() {
                    true => format!("{stage} {score:.3}"),
                    false => format!("{stage} -"),
                })
                .collect();
            bar.println(&format!(
                "probe after step {iteration}: linear balanced accuracy {}",
                scores.join(", ")
            ));
        }
    }
}

/// A duration in its two largest units: `45s`, `6m12s`, `2h05m`, `3d04h`.
fn short_duration(duration: Duration) -> String {
    let s = duration.as_secs();
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{:02}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// `path` as one shell word, quoted only when it needs to be, so a printed command can
/// be pasted as it is.
pub fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A clean stop on Ctrl-C (SIGINT) or SIGTERM: the first signal sets a flag that the
/// training loop checks after each optimiser step (it then writes a checkpoint and
/// returns); a second one ends the process at once, as an unhandled signal would.
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    /// The signal received (0: none yet).
    signal: Arc<AtomicUsize>,
    /// Whether the user has been told that the run is stopping.
    noted: bool,
}

impl Interrupt {
    /// Installs the handlers for the rest of the process.
    pub fn install() -> Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for number in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(
                number,
                128 + number,
                Arc::clone(&flag),
            )
            .and_then(|_| signal_hook::flag::register(number, Arc::clone(&flag)))
            .and_then(|_| {
                signal_hook::flag::register_usize(number, Arc::clone(&signal), number as usize)
            })
            .context("cannot install the Ctrl-C handler")?;
        }
        Ok(Interrupt {
            flag,
            signal,
            noted: false,
        })
    }

    /// The flag the training loop stops on.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Once, after the first signal: the line telling the user what happens now.
    pub fn notice(&mut self) -> Option<&'static str> {
        if !self.requested() || self.noted {
            return None;
        }
        self.noted = true;
        Some("stopping after this step to write a checkpoint (press Ctrl-C again to quit at once)")
    }

    /// Ends the process after an interrupted run was checkpointed: prints the command
    /// that continues it (`medssl COMMAND --resume RUN`) and exits with 128 + the
    /// signal's number (130 for Ctrl-C), as shells report a process a signal ended.
    pub fn exit(&self, command: &str, run: &Path) -> ! {
        eprintln!(
            "interrupted; resume with: medssl {command} --resume {}",
            shell_word(run)
        );
        let number = match self.signal.load(Ordering::SeqCst) {
            0 => SIGINT,
            n => n as i32,
        };
        std::process::exit(128 + number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_their_two_largest_units() {
        let d = |s| short_duration(Duration::from_secs(s));
        assert_eq!(d(0), "0s");
        assert_eq!(d(45), "45s");
        assert_eq!(d(6 * 60 + 12), "6m12s");
        assert_eq!(d(2 * 3600 + 5 * 60 + 59), "2h05m");
        assert_eq!(d(3 * 86_400 + 4 * 3600 + 1), "3d04h");
    }

    #[test]
    fn rates_carry_their_unit_either_way_up() {
        assert_eq!(rate_text(1.8), "1.80 step/s");
        assert_eq!(rate_text(0.25), "4.0 s/step");
    }

    #[test]
    fn paths_are_quoted_only_when_a_shell_needs_it() {
        assert_eq!(shell_word(Path::new("runs/ft-1.a")), "runs/ft-1.a");
        assert_eq!(shell_word(Path::new("my runs/a")), "'my runs/a'");
        assert_eq!(shell_word(Path::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn the_epoch_line_counts_epochs_and_the_run_time_left() {
        let mut bar = EpochBar::new(true, 20, 800, 80);
        assert_eq!(bar.epoch(3), "epoch 3/20");
        assert!(bar.epoch_line(3, 0.5, 1.0).ends_with("ETA ? (run)"));
        bar.step(0.5);
        let line = bar.epoch_line(3, 0.51234, 2.04);
        assert!(
            line.starts_with("epoch 3/20: loss 0.5123  2.0 s  "),
            "{line}"
        );
        assert!(
            line.contains(" step/s") && line.ends_with(" (run)"),
            "{line}"
        );
    }
}
