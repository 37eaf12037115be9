//! The arguments every training command shares: where its settings come from and the
//! device.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use medssl_ssl::Preset;
use medssl_train::finetune::{FinetuneConfig, Init};
use medssl_train::run_dir::RunDir;
use medssl_train::settings::SettingsFile;

/// Settings sources and device of `finetune` and `pretrain`.
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
    /// Device: cpu, or cuda[:N] or wgpu in a build with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl RunArgs {
    /// The --config file, read, if one was given.
    pub fn config_file(&self) -> Result<Option<ConfigFile>> {
        self.config
            .as_ref()
            .map(|path| {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Ok(ConfigFile {
                    name: path.display().to_string(),
                    text,
                })
            })
            .transpose()
    }

    /// The fine-tuning settings these arguments give: the preset, the --config file
    /// over it, then every --set.
    pub fn finetune_config(&self) -> Result<FinetuneConfig> {
        let file = self.config_file()?;
        Ok(FinetuneConfig::load(
            self.preset.into(),
            file.as_ref().map(|f| f.settings()),
            &self.set,
        )?)
    }

    /// Whether settings were given that a resumed run cannot take.
    pub fn changes_settings(&self) -> bool {
        self.config.is_some() || !self.set.is_empty()
    }
}

/// A `--config` file as read: its name (for messages) and its text.
pub struct ConfigFile {
    name: String,
    text: String,
}

impl ConfigFile {
    /// The file as the settings loader takes it.
    pub fn settings(&self) -> SettingsFile<'_> {
        SettingsFile {
            name: &self.name,
            text: &self.text,
        }
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

/// The initial weights `text` names (`--init`, `medssl probe ENCODER`): `scratch`, a run
/// directory (a pretraining run's `encoder.safetensors`, a fine-tune run's
/// `best.safetensors`), or a weights file.
pub fn initial_weights(text: &str, allow_unused: bool) -> Init {
    if text == "scratch" {
        return Init::Scratch;
    }
    let path = Path::new(text);
    let run = RunDir::at(path);
    let path = if run.encoder().is_file() {
        run.encoder()
    } else if run.best_weights().is_file() {
        run.best_weights()
    } else {
        path.to_path_buf()
    };
    Init::Weights { path, allow_unused }
}
