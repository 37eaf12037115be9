//! The `Transform` trait, the `Pipeline` of steps built from TOML, and the catalogue of
//! transform names a configuration may use.
//!
//! A configuration lists steps as tables with a `name` and the step's parameters, in
//! the order they run, as a MONAI `Compose` does:
//!
//! ```toml
//! [[data.transforms]]
//! name = "scale_intensity_range"
//! a_min = -175.0
//! a_max = 250.0
//! b_min = 0.0
//! b_max = 1.0
//! clip = true
//! ```
//!
//! Unknown names and unknown or ill-typed parameters are errors that list what is valid.
//! A [`PipelineConfig`] holds such a list, checked when it is read; its `build` gives
//! the [`Pipeline`] that runs it.

mod config;

use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{DataError, Result};
use crate::rng::Rng;
use crate::sample::Sample;
use crate::{intensity, spatial};

pub use config::{PipelineConfig, TransformStep};

/// One step of a pipeline. Implementations are plain data (their parameters) so a
/// pipeline can be shared by loader threads.
pub trait Transform: Debug + Send + Sync {
    /// The configuration name, e.g. `"rand_flip"`.
    fn name(&self) -> &'static str;

    /// Whether the output depends on the random stream. Steps before the first random
    /// one form the deterministic prefix that the preprocessing cache stores.
    fn is_random(&self) -> bool;

    /// Transforms one sample. Most steps return exactly one; random crops with several
    /// samples per volume (`num_samples`) return that many, which later steps each
    /// transform in turn.
    fn apply(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>>;

    /// How many samples `apply` returns for one: `num_samples` of a crop step, 1 for
    /// the rest. It sets how many samples a case yields per epoch
    /// ([`PipelineConfig::samples_per_case`]), so a fan-out step must say it.
    fn fan_out(&self) -> usize {
        1
    }
}

/// A configurable transform: its name, the MONAI transform it matches, and how to build
/// it from its parameter table (without the `name` key).
pub struct TransformSpec {
    /// Configuration name.
    pub name: &'static str,
    /// The MONAI dictionary transform with the same semantics, for the docs.
    pub monai: &'static str,
    /// Builds the step; errors name the transform and the bad parameter.
    pub build: fn(toml::Table) -> Result<Box<dyn Transform>>,
}

/// Every transform a configuration may name.
pub fn catalogue() -> Vec<TransformSpec> {
    let mut specs = spatial::catalogue();
    specs.extend(intensity::catalogue());
    specs
}

/// A transform built from a parameter struct that a configuration table deserialises
/// into (`#[serde(deny_unknown_fields)]`, MONAI's names and defaults); `from_params`
/// checks the values. Transforms whose fields are their parameters use `Params = Self`.
pub trait FromParams: Transform + Sized + 'static {
    /// Configuration name.
    const NAME: &'static str;
    /// The MONAI dictionary transform it matches.
    const MONAI: &'static str;
    /// The parameters, with MONAI's defaults.
    type Params: DeserializeOwned;

    /// Builds the transform; errors name the transform and the parameter.
    fn from_params(params: Self::Params) -> Result<Self>;

    /// Parses and checks a step's table (without `name`); unknown keys are errors
    /// listing the valid ones.
    fn from_table(table: toml::Table) -> Result<Self> {
        Self::from_params(parse_params(Self::NAME, table)?)
    }
}

/// The catalogue entry of `T`.
pub fn spec<T: FromParams>() -> TransformSpec {
    TransformSpec {
        name: T::NAME,
        monai: T::MONAI,
        build: |table| Ok(Box::new(T::from_table(table)?) as Box<dyn Transform>),
    }
}

/// Deserialises a step's parameters, rejecting unknown keys (the parameter structs use
/// `#[serde(deny_unknown_fields)]`, whose message lists the valid ones).
pub fn parse_params<T: DeserializeOwned>(transform: &str, params: toml::Table) -> Result<T> {
    toml::Value::Table(params)
        .try_into()
        .map_err(|e| DataError::Config(format!("transform `{transform}`: {e}")))
}

/// Transforms applied in order; a sample can fan out into several (random crops).
/// Cloning shares the steps.
#[derive(Debug, Default, Clone)]
pub struct Pipeline {
    steps: Vec<Arc<dyn Transform>>,
}

impl Pipeline {
    /// A pipeline of the given steps.
    pub fn new(steps: Vec<Box<dyn Transform>>) -> Pipeline {
        Pipeline {
            steps: steps.into_iter().map(Arc::from).collect(),
        }
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Arc<dyn Transform>] {
        &self.steps
    }

    /// Splits into the deterministic prefix (everything before the first random step)
    /// and the rest.
    pub fn split_deterministic(self) -> (Pipeline, Pipeline) {
        let mut steps = self.steps;
        let first_random = steps
            .iter()
            .position(|s| s.is_random())
            .unwrap_or(steps.len());
        let rest = steps.split_off(first_random);
        (Pipeline { steps }, Pipeline { steps: rest })
    }

    /// Runs every step on `sample`, drawing randomness from `rng`.
    pub fn run(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        let mut samples = vec![sample];
        for step in &self.steps {
            let mut next = Vec::with_capacity(samples.len());
            for s in samples {
                next.extend(step.apply(s, rng)?);
            }
            samples = next;
        }
        Ok(samples)
    }
}
