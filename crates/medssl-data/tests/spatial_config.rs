//! Building spatial pipelines from TOML, and the errors for bad configurations and
//! unusable cases: each names the transform and parameter, or the case.

use medssl_data::spatial::catalogue;
use medssl_data::{PipelineConfig, Sample, rng};
use medssl_io::Volume;
use medssl_io::nalgebra::Matrix4;
use ndarray::Array4;

const PIPELINE: &str = r#"
[[transforms]]
name = "orientation"
axcodes = "RAS"

[[transforms]]
name = "spacing"
pixdim = [1.5, 1.5, 2.0]
mode = "bilinear"

[[transforms]]
name = "crop_foreground"
margin = 1
k_divisible = [2, 2, 1]

[[transforms]]
name = "spatial_pad"
spatial_size = [8, 8, 8]

[[transforms]]
name = "rand_crop_by_pos_neg_label"
spatial_size = [8, 8, 8]
pos = 2.0
neg = 1.0
num_samples = 3
image_threshold = 0.0

[[transforms]]
name = "rand_flip"
prob = 0.5
spatial_axis = [0, 1]

[[transforms]]
name = "rand_rotate90"
prob = 0.5
max_k = 3

[[transforms]]
name = "rand_affine"
prob = 0.3
rotate_range = [0.26, 0.26, 0.26]
scale_range = [[-0.1, 0.1], [-0.1, 0.1], [-0.1, 0.1]]
padding_mode = "zeros"
"#;

fn tables(text: &str) -> Vec<toml::Table> {
    let doc: toml::Table = toml::from_str(text).unwrap();
    doc["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_table().unwrap().clone())
        .collect()
}

/// An LPS 1x1x1.25 mm CT-like volume: a bright box on a zero background, label inside.
fn ct_sample() -> Sample {
    let shape = (1, 20, 18, 12);
    let inside = |i: usize, j: usize, k: usize| {
        (4..15).contains(&i) && (3..14).contains(&j) && (2..10).contains(&k)
    };
    let image = Array4::from_shape_fn(shape, |(_, i, j, k)| {
        if inside(i, j, k) {
            100.0 + i as f32
        } else {
            0.0
        }
    });
    let label = Array4::from_shape_fn(shape, |(_, i, j, k)| {
        f32::from(u8::from(inside(i, j, k) && i > 8))
    });
    let affine = Matrix4::new(
        -1.0, 0.0, 0.0, 10.0, //
        0.0, -1.0, 0.0, 9.0, //
        0.0, 0.0, 1.25, -5.0, //
        0.0, 0.0, 0.0, 1.0,
    );
    Sample::labelled(
        "ct_001",
        Volume::new(image, affine),
        Volume::new(label, affine),
    )
    .unwrap()
}

fn build_error(text: &str) -> String {
    let table: toml::Table = toml::from_str(text).unwrap();
    PipelineConfig::from_tables(&[table])
        .unwrap_err()
        .to_string()
}

#[test]
fn a_pipeline_builds_from_toml_and_runs() {
    let pipeline = PipelineConfig::from_tables(&tables(PIPELINE))
        .unwrap()
        .build();
    let names: Vec<&str> = pipeline.steps().iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "orientation",
            "spacing",
            "crop_foreground",
            "spatial_pad",
            "rand_crop_by_pos_neg_label",
            "rand_flip",
            "rand_rotate90",
            "rand_affine"
        ]
    );
    let (prefix, rest) = pipeline.split_deterministic();
    assert_eq!(prefix.steps().len(), 4);
    assert_eq!(rest.steps().len(), 4);

    let mut rng = rng::stream(1, &[0]);
    let mut pre = prefix.run(ct_sample(), &mut rng).unwrap();
    assert_eq!(pre.len(), 1);
    let pre = pre.remove(0);
    assert_eq!(pre.image.orientation(), "RAS");
    let spacing = pre.image.spacing();
    for (got, want) in spacing.iter().zip([1.5, 1.5, 2.0]) {
        assert!((got - want).abs() < 1e-9, "{spacing:?}");
    }
    pre.check_label_grid().unwrap();

    let out = rest.run(pre, &mut rng).unwrap();
    assert_eq!(out.len(), 3);
    for s in &out {
        assert_eq!(s.spatial_shape(), [8, 8, 8]);
        s.check_label_grid().unwrap();
    }
}

#[test]
fn every_spatial_transform_is_catalogued_with_its_monai_name() {
    let pairs: Vec<(&str, &str)> = catalogue().iter().map(|s| (s.name, s.monai)).collect();
    assert_eq!(
        pairs,
        [
            ("orientation", "Orientationd"),
            ("spacing", "Spacingd"),
            ("crop_foreground", "CropForegroundd"),
            ("spatial_pad", "SpatialPadd"),
            ("center_spatial_crop", "CenterSpatialCropd"),
            ("rand_spatial_crop", "RandSpatialCropd"),
            ("rand_crop_by_pos_neg_label", "RandCropByPosNegLabeld"),
            ("rand_flip", "RandFlipd"),
            ("rand_rotate90", "RandRotate90d"),
            ("rand_affine", "RandAffined"),
        ]
    );
}

#[test]
fn unknown_parameters_list_the_valid_ones() {
    let err = build_error("name = 'spacing'\npixdim = 1.5\npadding = 'zeros'");
    assert!(err.contains("transform `spacing`"), "{err}");
    assert!(err.contains("padding"), "{err}");
    for valid in ["pixdim", "diagonal", "mode", "padding_mode"] {
        assert!(err.contains(valid), "{err} does not list {valid}");
    }
    let err = build_error("name = 'rand_affine'\nrotate = [0.1, 0.1, 0.1]");
    assert!(
        err.contains("rotate_range") && err.contains("scale_range"),
        "{err}"
    );
}

#[test]
fn bad_values_name_the_transform_and_parameter() {
    let cases = [
        ("name = 'rand_flip'\nprob = 1.5", ["`rand_flip`", "`prob`"]),
        (
            "name = 'rand_flip'\nspatial_axis = [0, 3]",
            ["`rand_flip`", "`spatial_axis`"],
        ),
        (
            "name = 'rand_rotate90'\nspatial_axes = [1, -2]",
            ["`rand_rotate90`", "`spatial_axes`"],
        ),
        (
            "name = 'rand_rotate90'\nmax_k = 0",
            ["`rand_rotate90`", "`max_k`"],
        ),
        (
            "name = 'center_spatial_crop'\nroi_size = [4, 0, 4]",
            ["`center_spatial_crop`", "`roi_size`"],
        ),
        (
            "name = 'spatial_pad'\nspatial_size = [4, 4]",
            ["`spatial_pad`", "list of 3"],
        ),
        ("name = 'spatial_pad'", ["`spatial_pad`", "spatial_size"]),
        ("name = 'spacing'\npixdim = nan", ["`spacing`", "`pixdim`"]),
        (
            "name = 'spacing'\npixdim = 1\nmode = 'cubic'",
            ["`spacing`", "bilinear"],
        ),
        (
            "name = 'orientation'\naxcodes = 'RAR'",
            ["`orientation`", "`axcodes`"],
        ),
        (
            "name = 'crop_foreground'\nk_divisible = 0",
            ["`crop_foreground`", "`k_divisible`"],
        ),
        (
            "name = 'rand_crop_by_pos_neg_label'\nspatial_size = 4\npos = 0\nneg = 0",
            ["`rand_crop_by_pos_neg_label`", "`pos`"],
        ),
        (
            "name = 'rand_crop_by_pos_neg_label'\nspatial_size = 4\nnum_samples = 0",
            ["`rand_crop_by_pos_neg_label`", "`num_samples`"],
        ),
        (
            "name = 'rand_affine'\nscale_range = [-1.0, 0.1, 0.1]",
            ["`rand_affine`", "`scale_range`"],
        ),
        (
            "name = 'rand_affine'\nrotate_range = [[0.5, 0.1], 0, 0]",
            ["`rand_affine`", "`rotate_range`"],
        ),
        (
            "name = 'rand_affine'\nrotate_range = 0.3",
            ["`rand_affine`", "rotate_range"],
        ),
    ];
    for (text, needles) in cases {
        let err = build_error(text);
        for needle in needles {
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}

#[test]
fn unusable_cases_are_errors_naming_the_case() {
    let sample = ct_sample();
    let mut degenerate = sample.clone();
    degenerate.image = Volume::new(sample.image.data().clone(), Matrix4::zeros());
    degenerate.label = None;
    for text in ["name = 'orientation'", "name = 'spacing'\npixdim = 1"] {
        let table: toml::Table = toml::from_str(text).unwrap();
        let err = PipelineConfig::from_tables(&[table])
            .unwrap()
            .build()
            .run(degenerate.clone(), &mut rng::stream(0, &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ct_001") && err.contains("degenerate"),
            "{err}"
        );
    }

    let mut blank = sample.clone();
    blank.image.data_mut().fill(0.0);
    let table: toml::Table = toml::from_str("name = 'crop_foreground'").unwrap();
    let err = PipelineConfig::from_tables(&[table])
        .unwrap()
        .build()
        .run(blank, &mut rng::stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ct_001") && err.contains("no image voxel"),
        "{err}"
    );

    let table: toml::Table = toml::from_str("name = 'spacing'\npixdim = 1e-4").unwrap();
    let err = PipelineConfig::from_tables(&[table])
        .unwrap()
        .build()
        .run(sample, &mut rng::stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ct_001") && err.contains("pixdim"), "{err}");
}
