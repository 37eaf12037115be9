//! A pipeline as a configuration states it: the list of steps, each checked against the
//! catalogue when it is read or made, written back exactly as it was given.

use std::fmt;
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Pipeline, Transform, TransformSpec, catalogue};
use crate::error::{DataError, Result};

/// One configured step: its table as a configuration writes it (`name` and the step's
/// parameters) and the transform built from it. Only checked steps exist, so a list of
/// them always builds.
#[derive(Clone)]
pub struct TransformStep {
    table: toml::Table,
    transform: Arc<dyn Transform>,
}

impl TransformStep {
    /// The step `name` with the parameters `params` (the rest at their defaults), as a
    /// default pipeline written in code states it; errors as for a configuration file.
    pub fn new(name: &str, params: &[(&str, toml::Value)]) -> Result<TransformStep> {
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        for (key, value) in params {
            table.insert((*key).into(), value.clone());
        }
        TransformStep::parse(table, 1, &catalogue())
    }

    /// Checks the table of step `position` (1-based, for the message) against `specs`.
    fn parse(
        table: toml::Table,
        position: usize,
        specs: &[TransformSpec],
    ) -> Result<TransformStep> {
        let mut params = table.clone();
        let name = match params.remove("name") {
            Some(toml::Value::String(name)) => name,
            _ => {
                return Err(DataError::Config(format!(
                    "transform {position} has no `name` (a string)"
                )));
            }
        };
        let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| {
            let valid: Vec<_> = specs.iter().map(|s| s.name).collect();
            DataError::Config(format!(
                "unknown transform `{name}`; valid transforms: {}",
                valid.join(", ")
            ))
        })?;
        let transform = Arc::from((spec.build)(params)?);
        Ok(TransformStep { table, transform })
    }

    /// The configuration name, e.g. `"rand_flip"`.
    pub fn name(&self) -> &str {
        self.transform.name()
    }

    /// Whether the step draws on the random stream (see [`Transform::is_random`]).
    pub fn is_random(&self) -> bool {
        self.transform.is_random()
    }

    /// The step as written in a configuration: `name` and the parameters given.
    pub fn table(&self) -> &toml::Table {
        &self.table
    }
}

impl PartialEq for TransformStep {
    /// Steps are equal when they are written the same.
    fn eq(&self, other: &TransformStep) -> bool {
        self.table == other.table
    }
}

impl fmt::Debug for TransformStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table.fmt(f)
    }
}

/// The steps of a pipeline in the order they run (`[[data.preprocess]]`,
/// `[[data.augment]]`, ...), checked when read: an unknown name or parameter stops the
/// configuration from loading, before a run writes anything. It reads and writes the
/// same TOML as the tables it came from, so a run's `config.toml` shows what ran.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineConfig(Vec<TransformStep>);

impl PipelineConfig {
    /// The steps of `tables`, each with `name` and its parameters; errors name the step.
    pub fn from_tables(tables: &[toml::Table]) -> Result<PipelineConfig> {
        let specs = catalogue();
        tables
            .iter()
            .enumerate()
            .map(|(i, table)| TransformStep::parse(table.clone(), i + 1, &specs))
            .collect::<Result<Vec<_>>>()
            .map(PipelineConfig)
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[TransformStep] {
        &self.0
    }

    /// Whether there are no steps (a run then uses its defaults).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends a step.
    pub fn push(&mut self, step: TransformStep) {
        self.0.push(step);
    }

    /// The pipeline that runs these steps. The steps were built when they were
    /// checked, so this only shares them.
    pub fn build(&self) -> Pipeline {
        Pipeline {
            steps: self.0.iter().map(|s| Arc::clone(&s.transform)).collect(),
        }
    }

    /// The key of a preprocessing cache of these steps: every step written out as TOML
    /// (under `preprocess`, as caches have always been keyed), so a changed parameter
    /// recomputes the cached volumes and an unchanged list finds them again.
    pub fn cache_key(&self) -> String {
        let steps = self.0.iter().map(|s| toml::Value::Table(s.table.clone()));
        toml::Table::from_iter([(
            "preprocess".to_string(),
            toml::Value::Array(steps.collect()),
        )])
        .to_string()
    }

    /// Samples one case yields after these steps: the product of each step's fan-out
    /// (`num_samples` of a crop step, 1 for most), which sets the batches of an epoch.
    pub fn samples_per_case(&self) -> usize {
        self.0.iter().map(|s| s.transform.fan_out()).product()
    }
}

impl FromIterator<TransformStep> for PipelineConfig {
    fn from_iter<I: IntoIterator<Item = TransformStep>>(steps: I) -> PipelineConfig {
        PipelineConfig(steps.into_iter().collect())
    }
}

impl Serialize for PipelineConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|s| &s.table))
    }
}

impl<'de> Deserialize<'de> for PipelineConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let tables = Vec::<toml::Table>::deserialize(deserializer)?;
        PipelineConfig::from_tables(&tables).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration's `[[data.preprocess]]` list: the fine-tune defaults of a CT task
    /// at a set spacing, then a crop and a padding.
    const CT_PREPROCESS: &str = r#"
[[preprocess]]
name = "orientation"

[[preprocess]]
name = "spacing"
pixdim = [1.5, 1.5, 2.0]

[[preprocess]]
name = "scale_intensity_range"
a_min = -175.0
a_max = 250.0
b_min = 0.0
b_max = 1.0
clip = true

[[preprocess]]
name = "crop_foreground"
threshold = 0.0
margin = 0
allow_smaller = true

[[preprocess]]
name = "spatial_pad"
spatial_size = [96, 96, 64]
"#;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Data {
        preprocess: PipelineConfig,
    }

    fn parse(text: &str) -> std::result::Result<Data, toml::de::Error> {
        toml::from_str(text)
    }

    /// The key is the one caches were made with before the list was typed (the value
    /// `toml::to_string` gave for `{ preprocess = [the tables] }`), so existing cache
    /// entries stay valid.
    #[test]
    fn the_cache_key_is_the_key_existing_caches_were_made_with() {
        let data = parse(CT_PREPROCESS).unwrap();
        assert_eq!(
            data.preprocess.cache_key(),
            "[[preprocess]]\nname = \"orientation\"\n\n[[preprocess]]\nname = \"spacing\"\n\
             pixdim = [1.5, 1.5, 2.0]\n\n[[preprocess]]\na_max = 250.0\na_min = -175.0\n\
             b_max = 1.0\nb_min = 0.0\nclip = true\nname = \"scale_intensity_range\"\n\n\
             [[preprocess]]\nallow_smaller = true\nmargin = 0\nname = \"crop_foreground\"\n\
             threshold = 0.0\n\n[[preprocess]]\nname = \"spatial_pad\"\n\
             spatial_size = [96, 96, 64]\n"
        );
        assert_eq!(PipelineConfig::default().cache_key(), "preprocess = []\n");
        let mut wider = parse(CT_PREPROCESS).unwrap().preprocess;
        wider.0[2] = TransformStep::new(
            "scale_intensity_range",
            &[("a_min", (-1000.0).into()), ("a_max", 1000.0.into())],
        )
        .unwrap();
        assert_ne!(wider.cache_key(), data.preprocess.cache_key());
    }

    /// Read and written back, the list is the same TOML; the steps build in order.
    #[test]
    fn a_list_round_trips_and_builds_its_steps() {
        let data = parse(CT_PREPROCESS).unwrap();
        let names: Vec<&str> = data.preprocess.steps().iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "orientation",
                "spacing",
                "scale_intensity_range",
                "crop_foreground",
                "spatial_pad"
            ]
        );
        let built: Vec<&str> = data
            .preprocess
            .build()
            .steps()
            .iter()
            .map(|s| s.name())
            .collect();
        assert_eq!(built, names);
        let text = toml::to_string(&data).unwrap();
        assert_eq!(parse(&text).unwrap(), data);
        let again: toml::Table = text.parse().unwrap();
        let given: toml::Table = CT_PREPROCESS.parse().unwrap();
        assert_eq!(again, given);
        assert_eq!(
            data.preprocess.steps()[2].table()["a_min"].as_float(),
            Some(-175.0)
        );
    }

    /// A bad list does not load; the message names the step and what is wrong.
    #[test]
    fn a_bad_step_is_refused_when_read() {
        let refused = |text: &str| parse(text).unwrap_err().message().to_string();
        let err = refused("[[preprocess]]\nname = \"orientation\"\n[[preprocess]]\nprob = 1.0\n");
        assert_eq!(err, "transform 2 has no `name` (a string)");
        let err = refused("[[preprocess]]\nname = \"rand_flipp\"\n");
        assert!(
            err.starts_with("unknown transform `rand_flipp`; valid transforms: ")
                && err.contains("rand_flip, "),
            "{err}"
        );
        let err = refused("[[preprocess]]\nname = \"rand_flip\"\nprobability = 0.5\n");
        assert!(
            err.starts_with("transform `rand_flip`: ") && err.contains("probability"),
            "{err}"
        );
        let err = TransformStep::new("spacing", &[("pixdim", f64::NAN.into())]).unwrap_err();
        assert!(
            err.to_string().contains("spacing") && err.to_string().contains("pixdim"),
            "{err}"
        );
    }

    /// Only crops with `num_samples` fan out; the count multiplies along the list.
    #[test]
    fn samples_per_case_multiplies_the_fan_out_of_the_steps() {
        let crop = |n: i64| {
            TransformStep::new(
                "rand_crop_by_pos_neg_label",
                &[
                    ("spatial_size", toml::Value::Array(vec![4.into(); 3])),
                    ("num_samples", n.into()),
                ],
            )
            .unwrap()
        };
        let flip = TransformStep::new("rand_flip", &[("prob", 0.5.into())]).unwrap();
        assert_eq!(PipelineConfig::default().samples_per_case(), 1);
        let one: PipelineConfig = [flip.clone()].into_iter().collect();
        assert_eq!(one.samples_per_case(), 1);
        let steps: PipelineConfig = [crop(3), flip, crop(2)].into_iter().collect();
        assert_eq!(steps.samples_per_case(), 6);
    }
}
