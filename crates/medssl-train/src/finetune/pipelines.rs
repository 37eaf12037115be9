//! The default preprocessing and augmentation of a fine-tuning run, written as the
//! transform tables a user would put in a configuration, so `config.toml` of a run
//! shows exactly what ran. Each default step carries a comment on itself and on each
//! setting saying what it does and why, which `medssl config show --task` prints.

use std::path::Path;

use medssl_data::dataset::Task;
use medssl_data::{PipelineConfig, TransformStep};

use super::config::FinetuneConfig;
use crate::error::{Result, TrainError};
use crate::transforms::{floats, ints};

/// One default transform step and a comment on the step (key `name`) and on each
/// setting.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedStep {
    /// The step as it goes into the configuration.
    pub step: TransformStep,
    /// `(key, comment)` in the order the keys are printed, `name` first.
    pub comments: Vec<(&'static str, String)>,
}

/// A step named `name` ("what the step does") with `(key, value, why)` settings.
fn step(
    name: &str,
    what: &str,
    settings: Vec<(&'static str, toml::Value, String)>,
) -> Result<DescribedStep> {
    let mut comments = vec![("name", what.to_string())];
    let mut params = Vec::with_capacity(settings.len());
    for (key, value, why) in settings {
        params.push((key, value));
        comments.push((key, why));
    }
    let step = TransformStep::new(name, &params)?;
    Ok(DescribedStep { step, comments })
}

/// Orientation to RAS, resampling to `data.spacing` when set, then the modality's
/// intensity normalisation: the CT window -175..250 HU to 0..1 (clipped) of the
/// SwinUNETR BTCV recipe, or a z-score over non-zero voxels per channel otherwise.
pub fn default_preprocess_steps(
    config: &FinetuneConfig,
    task: &Task,
) -> Result<Vec<DescribedStep>> {
    let mut steps = vec![step(
        "orientation",
        "array axes reordered and flipped to RAS, so every case is stored the same way \
         round (MONAI Orientationd)",
        vec![],
    )?];
    if let Some(spacing) = config.data.spacing {
        steps.push(step(
            "spacing",
            "resampled to one voxel size (MONAI Spacingd), so a crop covers the same \
             anatomy in every case",
            vec![(
                "pixdim",
                floats(&spacing),
                "voxel size in mm along each axis (data.spacing)".into(),
            )],
        )?);
    }
    let is_ct = task.channels.iter().all(|c| c.eq_ignore_ascii_case("CT"));
    steps.push(if is_ct {
        step(
            "scale_intensity_range",
            "every channel is CT: Hounsfield units windowed to 0..1 (MONAI \
             ScaleIntensityRanged, the SwinUNETR BTCV recipe)",
            vec![
                (
                    "a_min",
                    (-175.0).into(),
                    "HU mapped to b_min: the low end of the abdominal soft-tissue window".into(),
                ),
                (
                    "a_max",
                    250.0.into(),
                    "HU mapped to b_max: the high end of the window".into(),
                ),
                ("b_min", 0.0.into(), "output value of a_min".into()),
                ("b_max", 1.0.into(), "output value of a_max".into()),
                (
                    "clip",
                    true.into(),
                    "values outside the window are clipped to b_min..b_max (air, bone)".into(),
                ),
            ],
        )
    } else {
        step(
            "normalize_intensity",
            "not CT (no absolute intensity scale): z-score of each case (MONAI \
             NormalizeIntensityd)",
            vec![
                (
                    "nonzero",
                    true.into(),
                    "mean and deviation over non-zero voxels, so the background outside \
                     the body does not set the scale (and stays 0)"
                        .into(),
                ),
                (
                    "channel_wise",
                    true.into(),
                    "each channel normalised on its own (modalities differ in scale)".into(),
                ),
            ],
        )
    }?);
    Ok(steps)
}

/// Padding to the crop size, balanced positive/negative crops, flips along each axis,
/// 90-degree rotations and random intensity scale/shift (the SwinUNETR BTCV recipe).
pub fn default_augment_steps(config: &FinetuneConfig) -> Result<Vec<DescribedStep>> {
    let roi = config.model.roi;
    let mut steps = vec![
        step(
            "spatial_pad",
            "volumes smaller than the crop are padded (MONAI SpatialPadd)",
            vec![(
                "spatial_size",
                ints(&roi),
                "at least model.roi, so a whole crop fits".into(),
            )],
        )?,
        step(
            "rand_crop_by_pos_neg_label",
            "random crops centred on a foreground or a background voxel (MONAI \
             RandCropByPosNegLabeld), so small structures are seen often",
            vec![
                (
                    "spatial_size",
                    ints(&roi),
                    "the crop: model.roi, the network's training input".into(),
                ),
                (
                    "pos",
                    1.0.into(),
                    "weight of crops centred on a foreground voxel".into(),
                ),
                (
                    "neg",
                    1.0.into(),
                    "weight of crops centred on a background voxel (pos = neg: half each)".into(),
                ),
                (
                    "num_samples",
                    (config.data.samples_per_volume as i64).into(),
                    "crops per volume and epoch (data.samples_per_volume)".into(),
                ),
            ],
        )?,
    ];
    for axis in 0..3 {
        steps.push(step(
            "rand_flip",
            "mirrored along one axis (MONAI RandFlipd)",
            vec![
                ("prob", 0.1.into(), "chance of the flip".into()),
                (
                    "spatial_axis",
                    ints(&[axis]),
                    format!("the array axis flipped ({axis})"),
                ),
            ],
        )?);
    }
    steps.push(step(
        "rand_rotate90",
        "turned by quarter turns in the plane of the first two axes (MONAI RandRotate90d)",
        vec![
            ("prob", 0.1.into(), "chance of a turn".into()),
            (
                "max_k",
                3.into(),
                "1 to 3 quarter turns, drawn uniformly".into(),
            ),
        ],
    )?);
    steps.push(step(
        "rand_scale_intensity",
        "intensities multiplied by 1 + f (MONAI RandScaleIntensityd)",
        vec![
            ("factors", 0.1.into(), "f drawn from -0.1..0.1".into()),
            ("prob", 0.1.into(), "chance of the scaling".into()),
        ],
    )?);
    steps.push(step(
        "rand_shift_intensity",
        "an offset added to the intensities (MONAI RandShiftIntensityd)",
        vec![
            ("offsets", 0.1.into(), "offset drawn from -0.1..0.1".into()),
            ("prob", 0.1.into(), "chance of the shift".into()),
        ],
    )?);
    Ok(steps)
}

/// Fills in the default transform lists for `task` where the configuration leaves them
/// empty, as a new run does before it starts.
pub fn resolve_pipelines(config: &mut FinetuneConfig, task: &Task) -> Result<()> {
    let steps = |described: Vec<DescribedStep>| described.into_iter().map(|s| s.step).collect();
    if config.data.preprocess.is_empty() {
        config.data.preprocess = steps(default_preprocess_steps(config, task)?);
    }
    if config.data.augment.is_empty() {
        config.data.augment = steps(default_augment_steps(config)?);
    }
    Ok(())
}

impl FinetuneConfig {
    /// These settings with the transform lists a new run on the task in `task_dir`
    /// would resolve (reading only its `dataset.json`): what a run started with them
    /// stores, for comparing with a stored configuration.
    pub fn resolved_for(mut self, task_dir: &Path) -> Result<FinetuneConfig> {
        let task = Task::open_unchecked(task_dir)?.task;
        resolve_pipelines(&mut self, &task)?;
        Ok(self)
    }
}

/// The configuration of a new run on `task` as TOML, the transform lists resolved as
/// the run would resolve them and written out step by step, each default step and
/// setting with a `#` comment saying what it does and why. A list the configuration
/// sets itself is written without comments.
pub fn commented_toml(config: &FinetuneConfig, task: &Task) -> Result<String> {
    let mut resolved = config.clone();
    resolved.data.preprocess = PipelineConfig::default();
    resolved.data.augment = PipelineConfig::default();
    let mut text = resolved.to_toml()?;
    // Empty lists serialise as `key = []` inside [data]; the steps follow as arrays of
    // tables at the end, which TOML allows after the other tables.
    let emptied = text
        .replace("preprocess = []\n", "")
        .replace("augment = []\n", "");
    if emptied.len() + "preprocess = []\naugment = []\n".len() != text.len() {
        return Err(TrainError::Invalid(
            "cannot write the transform lists of the configuration".into(),
        ));
    }
    text = emptied;
    let preprocess = if config.data.preprocess.is_empty() {
        default_preprocess_steps(config, task)?
    } else {
        uncommented(&config.data.preprocess)
    };
    let augment = if config.data.augment.is_empty() {
        default_augment_steps(config)?
    } else {
        uncommented(&config.data.augment)
    };
    for (key, heading, steps) in [
        (
            "preprocess",
            "Preprocessing: run once per case and cached; also before validation and prediction.",
            preprocess,
        ),
        (
            "augment",
            "Augmentation: drawn anew for every training crop.",
            augment,
        ),
    ] {
        text.push_str(&format!("\n# {heading}\n"));
        for step in steps {
            write_step(&mut text, key, &step);
        }
    }
    Ok(text)
}

/// Steps from a configuration, without comments, their keys in table order.
fn uncommented(steps: &PipelineConfig) -> Vec<DescribedStep> {
    steps
        .steps()
        .iter()
        .map(|step| DescribedStep {
            step: step.clone(),
            comments: Vec::new(),
        })
        .collect()
}

/// `[[data.KEY]]` under the step's comment, then its settings, each with its comment.
fn write_step(text: &mut String, key: &str, step: &DescribedStep) {
    let comment = |name: &str| {
        step.comments
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, c)| c.as_str())
    };
    text.push('\n');
    if let Some(what) = comment("name") {
        text.push_str(&format!("# {what}\n"));
    }
    text.push_str(&format!("[[data.{key}]]\n"));
    let table = step.step.table();
    let keys = step.comments.iter().map(|(k, _)| *k).chain(
        table
            .keys()
            .map(String::as_str)
            .filter(|k| comment(k).is_none()),
    );
    for name in keys {
        let Some(value) = table.get(name) else {
            continue;
        };
        let line = format!("{name} = {value}");
        match comment(name).filter(|_| name != "name") {
            Some(why) => text.push_str(&format!("{line:<30} # {why}\n")),
            None => text.push_str(&format!("{line}\n")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::Preset;

    fn task(channels: &[&str]) -> Task {
        Task {
            name: "t".into(),
            dir: "t".into(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            labels: vec!["background".into(), "organ".into()],
            training: Vec::new(),
            test: Vec::new(),
        }
    }

    /// What `config show --task` prints reads back as the configuration a run on that
    /// task starts with, and every default step and setting has its comment.
    #[test]
    fn commented_toml_is_the_resolved_configuration() {
        for (preset, channels) in [
            (Preset::Tiny, &["CT"][..]),
            (Preset::Paper, &["T2", "ADC"][..]),
        ] {
            let task = task(channels);
            let config = FinetuneConfig::preset(preset);
            let text = commented_toml(&config, &task).unwrap();
            let mut resolved = config.clone();
            resolve_pipelines(&mut resolved, &task).unwrap();
            let back: FinetuneConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, resolved, "{text}");
            let steps = default_preprocess_steps(&config, &task)
                .unwrap()
                .into_iter()
                .chain(default_augment_steps(&config).unwrap());
            for step in steps {
                let table = step.step.table();
                let mut keys: Vec<&str> = step.comments.iter().map(|(k, _)| *k).collect();
                let mut expected: Vec<&str> = table.keys().map(String::as_str).collect();
                keys.sort_unstable();
                expected.sort_unstable();
                assert_eq!(keys, expected, "{table:?}");
            }
        }
    }

    /// A list the configuration sets itself is printed as given, without comments.
    #[test]
    fn configured_lists_are_printed_as_set() {
        let task = task(&["CT"]);
        let mut config = FinetuneConfig::preset(Preset::Tiny);
        let flip = TransformStep::new("rand_flip", &[("prob", 0.5.into())]).unwrap();
        config.data.augment = [flip].into_iter().collect();
        let text = commented_toml(&config, &task).unwrap();
        assert!(
            text.ends_with("[[data.augment]]\nname = \"rand_flip\"\nprob = 0.5\n"),
            "{text}"
        );
        let back: FinetuneConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.data.augment, config.data.augment);
    }
}
