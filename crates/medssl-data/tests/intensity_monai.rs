//! The intensity transforms against MONAI 1.6.1 outputs (written by
//! `benches/parity/make_intensity_references.py` into `tests/data/intensity/`), their
//! random behaviour, NaN handling and configuration errors.

mod common;

use std::collections::BTreeMap;

use common::max_abs_diff;

use medssl_data::intensity;
use medssl_data::intensity::contrast::{self, RandAdjustContrast};
use medssl_data::intensity::noise::{self, RandGaussianNoise};
use medssl_data::intensity::scale_shift::{self, RandScaleIntensity, RandShiftIntensity};
use medssl_data::intensity::smooth::{self, Approx, RandGaussianSmooth};
use medssl_data::rng::stream;
use medssl_data::transform::FromParams;
use medssl_data::transform::{self, PipelineConfig, Transform};
use medssl_data::{DataError, Sample};
use medssl_io::{Affine, Volume};
use medssl_test_support::{json_f64s, test_crate_dir};
use ndarray::{Array4, ArrayView1};
use serde_json::Value;

/// Allowed difference, relative to the largest magnitude of the reference array (at
/// least 1): a few f32 rounding steps, far below any error of formula or statistics.
const TOL: f64 = 1e-6;

fn load(name: &str) -> Value {
    let path = test_crate_dir().join("tests/data/intensity").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The reference input images by name.
fn inputs() -> BTreeMap<String, Array4<f32>> {
    let doc = load("inputs.json");
    doc["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, input)| {
            let shape: Vec<usize> = json_f64s(&input["shape"])
                .iter()
                .map(|&s| s as usize)
                .collect();
            let data = json_f64s(&input["data"])
                .iter()
                .map(|&v| v as f32)
                .collect();
            let array =
                Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), data).unwrap();
            (name.clone(), array)
        })
        .collect()
}

fn affine() -> Affine {
    let mut a = Affine::identity();
    a[(0, 0)] = -0.8;
    a[(1, 1)] = 0.8;
    a[(2, 2)] = 2.5;
    a[(0, 3)] = 101.0;
    a[(2, 3)] = -40.0;
    a
}

/// A labelled sample; the label (class indices 0..2) must come out untouched.
fn sample(image: &Array4<f32>) -> Sample {
    let [_, i, j, k] = [
        image.shape()[0],
        image.shape()[1],
        image.shape()[2],
        image.shape()[3],
    ];
    let label = Array4::from_shape_fn((1, i, j, k), |(_, a, b, c)| ((a + 2 * b + c) % 3) as f32);
    Sample::labelled(
        "case_7",
        Volume::new(image.clone(), affine()),
        Volume::new(label, affine()),
    )
    .unwrap()
}

fn assert_matches(case: &str, got: &Sample, input: &Sample, expected: &[f64]) {
    assert_eq!(got.label, input.label, "{case}: label changed");
    assert_eq!(
        got.image.affine(),
        input.image.affine(),
        "{case}: affine changed"
    );
    assert_eq!(
        got.image.data().shape(),
        input.image.data().shape(),
        "{case}: shape changed"
    );
    let got = got.image.data().as_slice().unwrap();
    let (worst, at) = max_abs_diff(case, ArrayView1::from(got), ArrayView1::from(expected));
    let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    assert!(
        worst <= TOL * scale,
        "{case}: max difference {worst:e} (at {at}) exceeds {:e}",
        TOL * scale
    );
}

fn step_table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

fn run_one(step: &str, input: Sample, seed: u64) -> medssl_data::Result<Sample> {
    let pipeline = PipelineConfig::from_tables(&[step_table(step)])?.build();
    let mut out = pipeline.run(input, &mut stream(seed, &[0]))?;
    assert_eq!(out.len(), 1);
    Ok(out.remove(0))
}

#[test]
fn configured_steps_match_monai() {
    let inputs = inputs();
    let cases = load("configured.json");
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let input = sample(&inputs[case["input"].as_str().unwrap()]);
        let step = case["step"].as_str().unwrap();
        let got = run_one(step, input.clone(), 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_matches(name, &got, &input, &json_f64s(&case["expected"]));
    }
}

#[test]
fn applications_match_monai_with_its_drawn_parameters() {
    let inputs = inputs();
    let cases = load("drawn.json");
    for case in cases["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let input = sample(&inputs[case["input"].as_str().unwrap()]);
        let drawn = json_f64s(&case["drawn"]);
        let mut got = input.clone();
        let flag = |key: &str| case[key].as_bool().unwrap();
        match case["transform"].as_str().unwrap() {
            "rand_scale_intensity" => scale_shift::scale_intensity(&mut got, &drawn),
            "rand_shift_intensity" => scale_shift::shift_intensity(&mut got, &drawn),
            "rand_adjust_contrast" => contrast::adjust_contrast(
                &mut got,
                drawn[0],
                flag("invert_image"),
                flag("retain_stats"),
            ),
            "rand_gaussian_smooth" => {
                let approx = match case["approx"].as_str().unwrap() {
                    "erf" => Approx::Erf,
                    "sampled" => Approx::Sampled,
                    other => panic!("{name}: approx {other}"),
                };
                smooth::gaussian_smooth(&mut got, [drawn[0], drawn[1], drawn[2]], approx)
            }
            other => panic!("{name}: unexpected transform {other}"),
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_matches(name, &got, &input, &json_f64s(&case["expected"]));
    }
}

/// One configuration of every random transform, applied with probability `prob`.
fn random_steps(prob: f64) -> Vec<String> {
    [
        "name = \"rand_scale_intensity\"\nfactors = [-0.3, 0.5]",
        "name = \"rand_shift_intensity\"\noffsets = 20.0\nchannel_wise = true",
        "name = \"rand_gaussian_noise\"\nstd = 3.0",
        "name = \"rand_adjust_contrast\"\ngamma = 2.5\nretain_stats = true",
        "name = \"rand_gaussian_smooth\"\nsigma_x = [0.5, 1.0]",
    ]
    .iter()
    .map(|s| format!("{s}\nprob = {prob:?}\n"))
    .collect()
}

#[test]
fn random_steps_repeat_with_the_seed_and_prob_zero_is_identity() {
    let inputs = inputs();
    let input = sample(&inputs["mr"]);
    for step in random_steps(1.0) {
        let a = run_one(&step, input.clone(), 5).unwrap();
        let b = run_one(&step, input.clone(), 5).unwrap();
        let c = run_one(&step, input.clone(), 6).unwrap();
        assert_eq!(a, b, "{step}: same seed, different output");
        assert_ne!(
            a.image, c.image,
            "{step}: another seed gave the same output"
        );
        assert_ne!(
            a.image, input.image,
            "{step}: prob 1 left the image unchanged"
        );
        assert_eq!(a.label, input.label);
    }
    for step in random_steps(0.0) {
        for seed in 0..20 {
            assert_eq!(
                run_one(&step, input.clone(), seed).unwrap(),
                input,
                "{step}"
            );
        }
    }
}

fn params(text: &str) -> toml::Table {
    step_table(text)
}

#[test]
fn drawn_parameters_stay_in_their_ranges_and_cover_them() {
    fn check(name: &str, draws: &[f64], [lo, hi]: [f64; 2]) {
        assert!(
            draws.iter().all(|d| (lo..=hi).contains(d)),
            "{name} drew outside [{lo}, {hi}]"
        );
        let (min, max) = draws
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &d| {
                (a.min(d), b.max(d))
            });
        let span = hi - lo;
        assert!(
            min < lo + 0.02 * span && max > hi - 0.02 * span,
            "{name} covers only [{min}, {max}]"
        );
    }
    let mut rng = stream(11, &[]);
    let n = 2000;
    let scale = RandScaleIntensity::from_table(params(
        "factors = [0.4, -0.2]\nprob = 1.0\nchannel_wise = true",
    ))
    .unwrap();
    let draws: Vec<f64> = (0..n)
        .flat_map(|_| scale.draw(&mut rng, 3).unwrap())
        .collect();
    assert_eq!(draws.len(), 3 * n);
    check("factors", &draws, [-0.2, 0.4]);
    let shift = RandShiftIntensity::from_table(params("offsets = 7.5\nprob = 1.0")).unwrap();
    let draws: Vec<f64> = (0..n)
        .flat_map(|_| shift.draw(&mut rng, 3).unwrap())
        .collect();
    assert_eq!(draws.len(), n);
    check("offsets", &draws, [-7.5, 7.5]);
    let gamma = RandAdjustContrast::from_table(params("prob = 1.0")).unwrap();
    let draws: Vec<f64> = (0..n).map(|_| gamma.draw(&mut rng).unwrap()).collect();
    check("gamma (default)", &draws, [0.5, 4.5]);
    let gamma = RandAdjustContrast::from_table(params("prob = 1.0\ngamma = 2.0")).unwrap();
    let draws: Vec<f64> = (0..n).map(|_| gamma.draw(&mut rng).unwrap()).collect();
    check("gamma = 2", &draws, [0.5, 2.0]);
    let noise = RandGaussianNoise::from_table(params("prob = 1.0\nstd = 0.3")).unwrap();
    let draws: Vec<f64> = (0..n).map(|_| noise.draw(&mut rng).unwrap().std).collect();
    check("noise std", &draws, [0.0, 0.3]);
    let smooth =
        RandGaussianSmooth::from_table(params("prob = 1.0\nsigma_y = [2.0, 3.0]")).unwrap();
    let draws: Vec<[f64; 3]> = (0..n).map(|_| smooth.draw(&mut rng).unwrap()).collect();
    check(
        "sigma_x",
        &draws.iter().map(|s| s[0]).collect::<Vec<_>>(),
        [0.25, 1.5],
    );
    check(
        "sigma_y",
        &draws.iter().map(|s| s[1]).collect::<Vec<_>>(),
        [2.0, 3.0],
    );
    check(
        "sigma_z",
        &draws.iter().map(|s| s[2]).collect::<Vec<_>>(),
        [0.25, 1.5],
    );

    // The step runs with probability `prob`: 2000 draws at 0.3 stay within 5 sigma.
    let scale = RandScaleIntensity::from_table(params("factors = 0.1\nprob = 0.3")).unwrap();
    let applied = (0..n).filter(|_| scale.draw(&mut rng, 1).is_some()).count() as f64;
    let sd = (n as f64 * 0.3 * 0.7).sqrt();
    assert!(
        (applied - 0.3 * n as f64).abs() < 5.0 * sd,
        "applied {applied} of {n} at prob 0.3"
    );
}

#[test]
fn gaussian_noise_has_the_configured_mean_and_std() {
    // 2.5 noise blocks of 65536 voxels, so block streams are exercised too.
    let image = Array4::<f32>::from_elem((1, 64, 64, 40), 10.0);
    let input = sample(&image);
    let step =
        "name = \"rand_gaussian_noise\"\nprob = 1.0\nmean = 0.5\nstd = 2.0\nsample_std = false\n";
    let out = run_one(step, input.clone(), 3).unwrap();
    let noise: Vec<f64> = out
        .image
        .data()
        .iter()
        .map(|&v| f64::from(v) - 10.0)
        .collect();
    let n = noise.len() as f64;
    let mean = noise.iter().sum::<f64>() / n;
    let std = (noise.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    // 5 standard errors: mean 2/sqrt(n), std 2/sqrt(2n).
    assert!((mean - 0.5).abs() < 5.0 * 2.0 / n.sqrt(), "mean {mean}");
    assert!(
        (std - 2.0).abs() < 5.0 * 2.0 / (2.0 * n).sqrt(),
        "std {std}"
    );
    assert_ne!(noise[..1000], noise[65536..66536], "noise blocks repeat");

    let mut direct = input.clone();
    noise::add_gaussian_noise(&mut direct, 0.0, 0.0, 99).unwrap();
    assert_eq!(direct, input, "zero std must add exactly nothing");
}

#[test]
fn pipeline_from_toml_equals_steps_one_by_one() {
    let text = r#"
        [[transforms]]
        name = "clip_intensity_percentiles"
        lower = 1.0
        upper = 99.0

        [[transforms]]
        name = "scale_intensity_range"
        a_min = -175
        a_max = 250
        b_min = 0.0
        b_max = 1.0
        clip = true

        [[transforms]]
        name = "rand_scale_intensity"
        factors = 0.1
        prob = 0.8

        [[transforms]]
        name = "rand_gaussian_noise"
        prob = 1.0
        std = 0.05

        [[transforms]]
        name = "rand_adjust_contrast"
        prob = 1.0
        gamma = [0.7, 1.5]

        [[transforms]]
        name = "normalize_intensity"
        nonzero = true
    "#;
    let doc: toml::Table = text.parse().unwrap();
    let tables: Vec<toml::Table> = doc["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_table().unwrap().clone())
        .collect();
    let pipeline = PipelineConfig::from_tables(&tables).unwrap().build();
    assert_eq!(pipeline.steps().len(), 6);
    let inputs = inputs();
    let input = sample(&inputs["ct"]);
    let whole = pipeline.run(input.clone(), &mut stream(4, &[2])).unwrap();

    let specs = transform::catalogue();
    let mut rng = stream(4, &[2]);
    let mut one_by_one = input.clone();
    for table in &tables {
        let mut params = table.clone();
        let name = params.remove("name").unwrap();
        let spec = specs
            .iter()
            .find(|s| s.name == name.as_str().unwrap())
            .unwrap();
        let step = (spec.build)(params).unwrap();
        one_by_one = step.apply(one_by_one, &mut rng).unwrap().remove(0);
    }
    assert_eq!(whole, vec![one_by_one]);
    assert_ne!(whole[0].image, input.image);
    assert_eq!(whole[0].label, input.label);
}

#[test]
fn catalogue_names_monai_transforms_and_randomness() {
    let specs = intensity::catalogue();
    let expected = [
        ("scale_intensity_range", "ScaleIntensityRanged"),
        ("normalize_intensity", "NormalizeIntensityd"),
        (
            "scale_intensity_range_percentiles",
            "ScaleIntensityRangePercentilesd",
        ),
        ("clip_intensity_percentiles", "ClipIntensityPercentilesd"),
        ("rand_scale_intensity", "RandScaleIntensityd"),
        ("rand_shift_intensity", "RandShiftIntensityd"),
        ("rand_gaussian_noise", "RandGaussianNoised"),
        ("rand_adjust_contrast", "RandAdjustContrastd"),
        ("rand_gaussian_smooth", "RandGaussianSmoothd"),
    ];
    let got: Vec<_> = specs.iter().map(|s| (s.name, s.monai)).collect();
    assert_eq!(got, expected);
    // Every step builds with only its required parameters, and says whether it draws.
    let required = [
        "a_min = 0.0\na_max = 1.0",
        "",
        "lower = 1.0\nupper = 99.0",
        "upper = 99.0",
        "factors = 0.1",
        "offsets = 0.1",
        "",
        "",
        "",
    ];
    for (spec, params) in specs.iter().zip(required) {
        let step: Box<dyn Transform> = (spec.build)(step_table(params)).unwrap();
        assert_eq!(step.name(), spec.name);
        assert_eq!(
            step.is_random(),
            spec.monai.starts_with("Rand"),
            "{}",
            spec.name
        );
    }
}

fn config_error(step: &str) -> String {
    match PipelineConfig::from_tables(&[step_table(step)]) {
        Err(DataError::Config(message)) => message,
        Err(other) => panic!("{step}: not a configuration error: {other}"),
        Ok(_) => panic!("{step}: accepted"),
    }
}

#[test]
fn unknown_names_and_parameters_list_the_valid_ones() {
    let message = config_error("name = \"scale_intensity_rnage\"\na_min = 0.0\na_max = 1.0");
    assert!(message.contains("scale_intensity_rnage"), "{message}");
    for spec in intensity::catalogue() {
        assert!(message.contains(spec.name), "{message} lacks {}", spec.name);
    }
    let message =
        config_error("name = \"scale_intensity_range\"\na_min = 0.0\na_max = 1.0\nbmin = 0.0");
    assert!(
        message.contains("scale_intensity_range") && message.contains("bmin"),
        "{message}"
    );
    for valid in ["a_min", "a_max", "b_min", "b_max", "clip"] {
        assert!(
            message.contains(&format!("`{valid}`")),
            "{message} lacks {valid}"
        );
    }
    let message = config_error("name = \"rand_gaussian_smooth\"\nsigma = 1.0");
    for valid in ["sigma_x", "sigma_y", "sigma_z", "prob", "approx"] {
        assert!(
            message.contains(&format!("`{valid}`")),
            "{message} lacks {valid}"
        );
    }
}

#[test]
fn bad_parameter_values_are_errors_naming_transform_and_parameter() {
    let cases = [
        ("name = \"scale_intensity_range\"\na_min = 0.0", "a_max"),
        (
            "name = \"scale_intensity_range\"\na_min = 0.0\na_max = nan",
            "a_max",
        ),
        (
            "name = \"scale_intensity_range\"\na_min = 0.0\na_max = 1.0\nclip = true",
            "clip",
        ),
        (
            "name = \"scale_intensity_range\"\na_min = 0.0\na_max = 1.0\nb_min = \"zero\"",
            "b_min",
        ),
        ("name = \"normalize_intensity\"\ndivisor = 0.0", "divisor"),
        (
            "name = \"normalize_intensity\"\nsubtrahend = [1.0, 2.0]",
            "subtrahend",
        ),
        (
            "name = \"normalize_intensity\"\nchannel_wise = true\ndivisor = []",
            "divisor",
        ),
        (
            "name = \"scale_intensity_range_percentiles\"\nlower = -1.0\nupper = 99.0",
            "lower",
        ),
        (
            "name = \"scale_intensity_range_percentiles\"\nlower = 1.0\nupper = 99.0\nrelative = true",
            "relative",
        ),
        ("name = \"clip_intensity_percentiles\"", "lower"),
        (
            "name = \"clip_intensity_percentiles\"\nlower = 60.0\nupper = 40.0",
            "upper",
        ),
        (
            "name = \"clip_intensity_percentiles\"\nupper = 90.0\nsharpness_factor = 0.0",
            "sharpness_factor",
        ),
        (
            "name = \"rand_scale_intensity\"\nfactors = [0.1, 0.2, 0.3]",
            "factors",
        ),
        (
            "name = \"rand_scale_intensity\"\nfactors = 0.1\nprob = 1.5",
            "prob",
        ),
        ("name = \"rand_shift_intensity\"", "offsets"),
        ("name = \"rand_gaussian_noise\"\nstd = -1.0", "std"),
        ("name = \"rand_adjust_contrast\"\ngamma = 0.4", "gamma"),
        (
            "name = \"rand_adjust_contrast\"\ngamma = [0.0, 2.0]",
            "gamma",
        ),
        (
            "name = \"rand_gaussian_smooth\"\nsigma_z = [-1.0, 1.0]",
            "sigma_z",
        ),
        (
            "name = \"rand_gaussian_smooth\"\nsigma_x = [0.0, 1.0]\napprox = \"sampled\"",
            "sigma_x",
        ),
        (
            "name = \"rand_gaussian_smooth\"\napprox = \"scalespace\"",
            "scalespace",
        ),
    ];
    for (step, parameter) in cases {
        let message = config_error(step);
        let transform = step_table(step)["name"].as_str().unwrap().to_string();
        assert!(
            message.contains(&format!("`{transform}`")) && message.contains(parameter),
            "{step}: message `{message}` should name `{transform}` and `{parameter}`"
        );
    }
}

/// Every step, random ones applied (prob 1) and skipped (prob 0).
fn every_step() -> Vec<String> {
    let mut steps: Vec<String> = [
        "name = \"scale_intensity_range\"\na_min = -175.0\na_max = 250.0\nb_min = 0.0\nb_max = 1.0\nclip = true",
        "name = \"normalize_intensity\"",
        "name = \"normalize_intensity\"\nnonzero = true\nchannel_wise = true",
        "name = \"normalize_intensity\"\nsubtrahend = 1.0\ndivisor = 2.0",
        "name = \"scale_intensity_range_percentiles\"\nlower = 1.0\nupper = 99.0\nb_min = 0.0\nb_max = 1.0",
        "name = \"clip_intensity_percentiles\"\nlower = 1.0\nupper = 99.0",
        "name = \"clip_intensity_percentiles\"\nupper = 99.0\nsharpness_factor = 1.0\nchannel_wise = true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    steps.extend(random_steps(1.0));
    steps.extend(random_steps(0.0));
    steps
}

#[test]
fn nan_or_infinite_voxels_are_errors_naming_case_and_step() {
    let inputs = inputs();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut image = inputs["mr"].clone();
        image[[1, 2, 3, 1]] = bad;
        image[[0, 0, 0, 0]] = bad;
        for step in every_step() {
            let name = step_table(&step)["name"].as_str().unwrap().to_string();
            match run_one(&step, sample(&image), 0) {
                Err(DataError::Case { case, message }) => {
                    assert_eq!(case, "case_7");
                    assert!(
                        message.contains("2 NaN or infinite") && message.contains(&name),
                        "{step}: {message}"
                    );
                }
                Err(other) => panic!("{step} with {bad}: wrong error {other}"),
                Ok(_) => panic!("{step} with {bad}: accepted"),
            }
        }
    }
}

#[test]
fn per_channel_values_must_match_the_channels() {
    let inputs = inputs();
    let step = "name = \"normalize_intensity\"\nchannel_wise = true\nsubtrahend = [1.0, 2.0, 3.0]";
    let message = run_one(step, sample(&inputs["mr"]), 0)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("case_7")
            && message.contains("3 `subtrahend` values")
            && message.contains("2 channels"),
        "{message}"
    );
    let mut s = sample(&inputs["mr"]);
    let message = scale_shift::scale_intensity(&mut s, &[0.1, 0.2, 0.3])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("case_7")
            && message.contains("3 values")
            && message.contains("2 channels"),
        "{message}"
    );
}

#[test]
fn gaussian_kernels_match_monai() {
    let doc = load("drawn.json");
    let kernels = doc["kernels"].as_array().unwrap();
    assert!(kernels.len() >= 10);
    for reference in kernels {
        let sigma = reference["sigma"].as_f64().unwrap();
        let approx = match reference["approx"].as_str().unwrap() {
            "erf" => Approx::Erf,
            _ => Approx::Sampled,
        };
        let expected = json_f64s(&reference["kernel"]);
        let got = smooth::gaussian_kernel(sigma, approx);
        assert_eq!(
            got.len(),
            expected.len(),
            "sigma {sigma} {approx:?}: tail length"
        );
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (f64::from(*g) - e).abs() < 1e-6,
                "sigma {sigma} {approx:?}: {got:?} vs {expected:?}"
            );
        }
    }
}
