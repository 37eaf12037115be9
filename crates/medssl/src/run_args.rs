//! The arguments every training command shares: where its settings come from, the
//! device, and how much it prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use medssl_ssl::Preset;

/// Settings sources, device and verbosity of `finetune` and `pretrain`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Defaults to start from: tiny (CPU minutes) or paper (the published GPU recipe).
    #[arg(long, value_enum, default_value = "tiny")]
    pub preset: PresetArg,
    /// TOML file with settings that replace the preset's.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A setting `key=value` (e.g. `train.lr=3e-4`), applied after --config.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Device: cpu, or cuda[:N] in a build with the cuda feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar; only the per-epoch log lines.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    /// The text of the --config file, if one was given.
    pub fn config_text(&self) -> Result<Option<String>> {
        self.config
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            })
            .transpose()
    }

    /// Whether settings were given that a resumed run cannot take.
    pub fn changes_settings(&self) -> bool {
        self.config.is_some() || !self.set.is_empty()
    }
}

/// The presets on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PresetArg {
    Tiny,
    Paper,
}

impl From<PresetArg> for Preset {
    fn from(arg: PresetArg) -> Preset {
        match arg {
            PresetArg::Tiny => Preset::Tiny,
            PresetArg::Paper => Preset::Paper,
        }
    }
}
