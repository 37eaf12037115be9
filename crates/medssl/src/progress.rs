//! The per-epoch progress bar of the training commands: loss, steps per second and ETA
//! on a terminal, nothing when quiet or when stderr is a file (a Slurm log keeps only the
//! plain per-epoch lines).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// One bar per epoch.
pub struct EpochBar {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl EpochBar {
    /// A bar shown unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> EpochBar {
        EpochBar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    /// An epoch of `steps` steps begins.
    pub fn start(&mut self, epoch: u64, steps: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} loss {msg} {per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        bar.set_prefix(epoch.to_string());
        self.bar = Some(bar);
    }

    /// One step with this loss.
    pub fn step(&self, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{loss:.4}"));
            bar.inc(1);
        }
    }

    /// The epoch ended: the bar goes, so the plain line that follows stands alone.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
