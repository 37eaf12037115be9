//! Transform lists of the run configurations: parameter values written in code, as a
//! user would write them in a configuration, so a run's `config.toml` shows exactly
//! which steps ran (see `medssl_data::TransformStep::new`), and the rule both kinds of
//! run put on their preprocessing.

use medssl_data::PipelineConfig;

use crate::error::{Result, TrainError};

/// A TOML array of floats.
pub fn floats(values: &[f64]) -> toml::Value {
    toml::Value::Array(values.iter().map(|&v| v.into()).collect())
}

/// A TOML array of integers.
pub fn ints(values: &[usize]) -> toml::Value {
    toml::Value::Array(values.iter().map(|&v| (v as i64).into()).collect())
}

/// Refuses a random step in `data.preprocess`: preprocessing runs once per case and is
/// cached, so a random step would draw once and repeat that draw every epoch.
pub fn check_preprocess(preprocess: &PipelineConfig) -> Result<()> {
    match preprocess.steps().iter().find(|step| step.is_random()) {
        None => Ok(()),
        Some(step) => Err(TrainError::Invalid(format!(
            "data.preprocess: step `{}` is random, but preprocessing runs once per case and \
             is cached; random steps belong in data.augment",
            step.name()
        ))),
    }
}
