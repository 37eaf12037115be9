//! Semantics of the random spatial transforms (their fixed-choice outputs are compared
//! with MONAI in `spatial_monai.rs`): reproducible per seed, varying across seeds,
//! `prob` respected, crops inside the volume, labels moved with the image, affines
//! keeping world positions, and `rand_crop_by_pos_neg_label`'s centre frequencies.
//!
//! Most samples have `image == label`, so any misalignment between the two shows.

use medssl_data::spatial::axes::AxisMove;
use medssl_data::{Pipeline, PipelineConfig, Rng, Sample, rng};
use medssl_io::nalgebra::{Matrix4, Vector4};
use medssl_io::{Affine, Volume};
use ndarray::Array4;

/// A transform from configuration text (one table, `name` included).
fn build(config: &str) -> Pipeline {
    let table: toml::Table = toml::from_str(config).unwrap();
    PipelineConfig::from_tables(&[table]).unwrap().build()
}

fn run(pipeline: &Pipeline, sample: &Sample, rng: &mut Rng) -> Vec<Sample> {
    pipeline.run(sample.clone(), rng).unwrap()
}

fn oblique_affine() -> Affine {
    Matrix4::new(
        0.9, 0.2, 0.0, -30.0, //
        -0.15, 1.1, 0.1, 12.5, //
        0.0, -0.05, 2.0, 40.0, //
        0.0, 0.0, 0.0, 1.0,
    )
}

/// An asymmetric label map (classes 0-3, every voxel position distinguishable by its
/// neighbourhood) with the same values as image.
fn twin_sample(shape: [usize; 3]) -> Sample {
    let label = Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(_, i, j, k)| {
        ((i * 7 + j * 3 + k * 5 + i * j) % 4) as f32
    });
    let affine = oblique_affine();
    Sample::labelled(
        "twin",
        Volume::new(label.clone(), affine),
        Volume::new(label, affine),
    )
    .unwrap()
}

fn assert_aligned(s: &Sample) {
    assert_eq!(
        s.image.data(),
        s.label.as_ref().unwrap().data(),
        "image and label moved apart"
    );
    assert_eq!(s.image.affine(), s.label.as_ref().unwrap().affine());
}

/// Every output voxel that maps (through the two affines) onto an input voxel centre
/// holds that voxel's value; returns how many were checked. Voxels mapping within 0.1
/// of a rounding tie, or outside the input, are skipped.
fn assert_world_consistent(input: &Volume, output: &Volume) -> usize {
    let m = input.affine().try_inverse().unwrap() * output.affine();
    let map: [[f64; 4]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| m[(r, c)]));
    let shape = input.spatial_shape();
    let mut checked = 0;
    for ((c, i, j, k), v) in output.data().indexed_iter() {
        let p: [f64; 3] = std::array::from_fn(|a| {
            map[a][0] * i as f64 + map[a][1] * j as f64 + map[a][2] * k as f64 + map[a][3]
        });
        let idx = p.map(f64::round);
        let near_tie = (0..3).any(|a| ((p[a] - idx[a]).abs() - 0.5).abs() < 0.1);
        let inside = (0..3).all(|a| idx[a] >= 0.0 && idx[a] < shape[a] as f64);
        if near_tie || !inside {
            continue;
        }
        let want = input.data()[[c, idx[0] as usize, idx[1] as usize, idx[2] as usize]];
        assert_eq!(
            *v,
            want,
            "voxel {:?} reads the wrong world position",
            (c, i, j, k)
        );
        checked += 1;
    }
    checked
}

const RANDOM_STEPS: [&str; 5] = [
    "name = 'rand_spatial_crop'\nroi_size = [6, 5, 4]",
    "name = 'rand_crop_by_pos_neg_label'\nspatial_size = [6, 5, 4]\nnum_samples = 3",
    "name = 'rand_flip'\nprob = 0.5\nspatial_axis = [0, 2]",
    "name = 'rand_rotate90'\nprob = 0.7\nspatial_axes = [1, 2]",
    "name = 'rand_affine'\nprob = 0.8\nrotate_range = [0.3, 0.2, [0.0, 0.5]]\n\
     scale_range = [0.1, 0.1, 0.1]\ntranslate_range = [2, 0, 1]\nmode = 'nearest'",
];

#[test]
fn same_seed_same_output_and_seeds_differ() {
    let sample = twin_sample([12, 11, 9]);
    for config in RANDOM_STEPS {
        let pipeline = build(config);
        assert!(pipeline.steps()[0].is_random(), "{config}");
        let a = run(&pipeline, &sample, &mut rng::stream(11, &[3]));
        let b = run(&pipeline, &sample, &mut rng::stream(11, &[3]));
        assert_eq!(a, b, "{config}: not reproducible");
        let distinct = (0..8)
            .map(|seed| run(&pipeline, &sample, &mut rng::stream(seed, &[3])))
            .filter(|out| *out != a)
            .count();
        assert!(distinct >= 2, "{config}: only {distinct} of 8 seeds differ");
    }
}

#[test]
fn labels_move_with_images_and_affines_keep_world_positions() {
    let sample = twin_sample([12, 11, 9]);
    for config in RANDOM_STEPS {
        let pipeline = build(config);
        for seed in 0..10 {
            for out in run(&pipeline, &sample, &mut rng::stream(seed, &[])) {
                assert_aligned(&out);
                let checked = assert_world_consistent(&sample.image, &out.image);
                assert!(checked > 0, "{config}: nothing to check");
            }
        }
    }
}

#[test]
fn prob_zero_is_identity_and_prob_one_always_applies() {
    let sample = twin_sample([8, 7, 6]);
    let never = [
        "name = 'rand_flip'\nprob = 0.0",
        "name = 'rand_rotate90'\nprob = 0.0",
        "name = 'rand_affine'\nprob = 0.0\nrotate_range = [0.5, 0.5, 0.5]",
    ];
    let always = [
        "name = 'rand_flip'\nprob = 1.0",
        "name = 'rand_rotate90'\nprob = 1.0\nspatial_axes = [0, 2]",
        "name = 'rand_affine'\nprob = 1.0\nrotate_range = [[0.2, 0.5], 0, 0]",
    ];
    for seed in 0..20 {
        for config in never {
            let out = run(&build(config), &sample, &mut rng::stream(seed, &[]));
            assert_eq!(out, vec![sample.clone()], "{config}");
        }
        for config in always {
            let out = run(&build(config), &sample, &mut rng::stream(seed, &[]));
            assert_eq!(out.len(), 1);
            assert_ne!(
                out[0], sample,
                "{config}: seed {seed} left the sample unchanged"
            );
        }
    }
    // A flip of all axes with prob 1 is exactly that flip.
    let flipped = run(&build(always[0]), &sample, &mut rng::stream(0, &[]));
    assert_eq!(flipped[0], AxisMove::flip(&[0, 1, 2]).apply_sample(sample));
}

#[test]
fn flip_probability_and_quarter_turn_counts_follow_the_parameters() {
    let sample = twin_sample([8, 7, 6]);
    let flip = build("name = 'rand_flip'\nprob = 0.3\nspatial_axis = 1");
    let flipped_once = AxisMove::flip(&[1]).apply_sample(sample.clone());
    assert_ne!(flipped_once, sample);
    let mut rng = rng::stream(5, &[]);
    let draws = 2000;
    let flips = (0..draws)
        .filter(|_| run(&flip, &sample, &mut rng)[0] == flipped_once)
        .count();
    // Binomial(2000, 0.3): sd 0.0102; 5 sd.
    assert!(
        (flips as f64 / draws as f64 - 0.3).abs() < 0.052,
        "{flips} flips"
    );

    let rotate = build("name = 'rand_rotate90'\nprob = 1.0\nmax_k = 3\nspatial_axes = [0, 1]");
    let turns: Vec<Sample> = (1..=3)
        .map(|k| AxisMove::rot90(k, 0, 1).apply_sample(sample.clone()))
        .collect();
    let mut counts = [0usize; 3];
    for _ in 0..draws {
        let out = run(&rotate, &sample, &mut rng).remove(0);
        let k = turns
            .iter()
            .position(|t| *t == out)
            .expect("a quarter turn");
        counts[k] += 1;
    }
    for c in counts {
        // Each k with probability 1/3: sd 0.0105; 5 sd.
        assert!(
            (c as f64 / draws as f64 - 1.0 / 3.0).abs() < 0.053,
            "{counts:?}"
        );
    }
}

#[test]
fn random_crops_stay_inside_and_centre_crop_without_random_center() {
    let sample = twin_sample([10, 9, 7]);
    let crop = build("name = 'rand_spatial_crop'\nroi_size = [4, 9, 20]");
    let mut starts = std::collections::HashSet::new();
    let mut rng = rng::stream(1, &[]);
    for _ in 0..200 {
        let out = run(&crop, &sample, &mut rng).remove(0);
        // roi larger than the image on the last axis: cut to the image, as MONAI does.
        assert_eq!(out.spatial_shape(), [4, 9, 7]);
        assert_aligned(&out);
        let origin = out.image.affine().column(3).into_owned();
        let index = sample.image.affine().try_inverse().unwrap() * origin;
        let start: Vec<i64> = (0..3).map(|a| index[a].round() as i64).collect();
        assert!(start[0] >= 0 && start[0] <= 6 && start[1] == 0 && start[2] == 0);
        starts.insert(start[0]);
    }
    assert_eq!(starts.len(), 7, "every start along axis 0 is reachable");

    let fixed = build("name = 'rand_spatial_crop'\nroi_size = [4, 5, 3]\nrandom_center = false");
    assert!(!fixed.steps()[0].is_random());
    let centre = build("name = 'center_spatial_crop'\nroi_size = [4, 5, 3]");
    assert_eq!(
        run(&fixed, &sample, &mut rng),
        run(&centre, &sample, &mut rng)
    );
}

/// A 24^3 volume with a 4^3 foreground cube (label 1) in the middle; image = label + 1
/// inside a central slab (axis 0 in 6..18), 0 elsewhere.
fn cube_sample() -> Sample {
    let shape = (1, 24, 24, 24);
    let inside = |i: usize, j: usize, k: usize| [i, j, k].iter().all(|&x| (10..14).contains(&x));
    let label = Array4::from_shape_fn(shape, |(_, i, j, k)| f32::from(u8::from(inside(i, j, k))));
    let image = Array4::from_shape_fn(shape, |(_, i, j, k)| {
        if (6..18).contains(&i) {
            1.0 + label[[0, i, j, k]]
        } else {
            0.0
        }
    });
    let affine = Matrix4::identity();
    Sample::labelled(
        "cube",
        Volume::new(image, affine),
        Volume::new(label, affine),
    )
    .unwrap()
}

/// The centre voxel (crop index size / 2) of each crop, in input coordinates.
fn crop_centres(input: &Sample, crops: &[Sample], size: [usize; 3]) -> Vec<[usize; 3]> {
    let to_input = input.image.affine().try_inverse().unwrap();
    crops
        .iter()
        .map(|c| {
            let mid = Vector4::new(
                (size[0] / 2) as f64,
                (size[1] / 2) as f64,
                (size[2] / 2) as f64,
                1.0,
            );
            let p = to_input * c.image.affine() * mid;
            [
                p[0].round() as usize,
                p[1].round() as usize,
                p[2].round() as usize,
            ]
        })
        .collect()
}

#[test]
fn pos_neg_centres_follow_the_ratio_and_stay_inside() {
    let sample = cube_sample();
    let size = [6, 6, 6];
    let pipeline = build(
        "name = 'rand_crop_by_pos_neg_label'\nspatial_size = 6\npos = 1\nneg = 3\n\
         num_samples = 500\nimage_threshold = 0.5",
    );
    let mut crops = Vec::new();
    for seed in 0..4 {
        crops.extend(run(&pipeline, &sample, &mut rng::stream(seed, &[])));
    }
    assert_eq!(crops.len(), 2000);
    let label = sample.label.as_ref().unwrap();
    let mut foreground = 0;
    for (n, (crop, centre)) in crops
        .iter()
        .zip(crop_centres(&sample, &crops, size))
        .enumerate()
    {
        assert_eq!(crop.spatial_shape(), size);
        // Crops lie inside: the centre sits at least size/2 from every border.
        assert!(centre.iter().all(|&c| (3..=21).contains(&c)), "{centre:?}");
        if n < 200 {
            assert_world_consistent(&sample.image, &crop.image);
            assert_world_consistent(label, crop.label.as_ref().unwrap());
        }
        if label.data()[[0, centre[0], centre[1], centre[2]]] > 0.0 {
            foreground += 1;
        } else {
            // Background centres need image > 0.5: inside the slab.
            assert!(
                (6..18).contains(&centre[0]),
                "background centre {centre:?} off the slab"
            );
        }
    }
    // pos / (pos + neg) = 0.25; Binomial(2000, 0.25): sd 0.0097; 5 sd.
    let ratio = foreground as f64 / 2000.0;
    assert!((ratio - 0.25).abs() < 0.049, "foreground ratio {ratio}");
}

#[test]
fn pos_neg_without_foreground_uses_background_and_pads_small_volumes() {
    let mut sample = cube_sample();
    sample.label.as_mut().unwrap().data_mut().fill(0.0);
    let pipeline = build(
        "name = 'rand_crop_by_pos_neg_label'\nspatial_size = [8, 8, 8]\npos = 1\nneg = 0\n\
         num_samples = 4",
    );
    let crops = run(&pipeline, &sample, &mut rng::stream(0, &[]));
    assert_eq!(crops.len(), 4);
    assert!(crops.iter().all(|c| c.spatial_shape() == [8, 8, 8]));

    // Smaller than the crop on two axes: padded (symmetrically, with 0) to the crop size.
    let small = twin_sample([5, 9, 3]);
    let pipeline =
        build("name = 'rand_crop_by_pos_neg_label'\nspatial_size = [7, 6, 4]\nnum_samples = 5");
    for crop in run(&pipeline, &small, &mut rng::stream(2, &[])) {
        assert_eq!(crop.spatial_shape(), [7, 6, 4]);
        assert_aligned(&crop);
        let checked = assert_world_consistent(&small.image, &crop.image);
        assert_eq!(
            checked,
            5 * 6 * 3,
            "every image voxel of the crop is accounted for"
        );
    }
}

#[test]
fn pos_neg_without_label_or_candidates_is_a_case_error() {
    let mut sample = twin_sample([6, 6, 6]);
    sample.label = None;
    let pipeline = build("name = 'rand_crop_by_pos_neg_label'\nspatial_size = 4");
    let err = pipeline
        .run(sample, &mut rng::stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("twin") && err.contains("no label"), "{err}");

    let mut sample = cube_sample();
    sample.label.as_mut().unwrap().data_mut().fill(0.0);
    let pipeline =
        build("name = 'rand_crop_by_pos_neg_label'\nspatial_size = 4\nimage_threshold = 5.0");
    let err = pipeline
        .run(sample, &mut rng::stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cube") && err.contains("image_threshold"),
        "{err}"
    );
}

#[test]
fn rand_affine_resizes_when_not_applied_and_samples_labels_nearest() {
    let sample = twin_sample([10, 9, 8]);
    // prob 0 with a different output size: centred crop/pad by the identity map.
    let resize = build("name = 'rand_affine'\nprob = 0.0\nspatial_size = [6, 11, 8]");
    let out = run(&resize, &sample, &mut rng::stream(0, &[])).remove(0);
    assert_eq!(out.spatial_shape(), [6, 11, 8]);
    assert_aligned(&out);
    assert_eq!(
        assert_world_consistent(&sample.image, &out.image),
        6 * 9 * 8,
        "every voxel inside the input reads its own world position"
    );

    // Bilinear image, nearest label: the label only holds input classes.
    let warp = build("name = 'rand_affine'\nprob = 1.0\nrotate_range = [0.4, 0.4, 0.4]");
    let out = run(&warp, &sample, &mut rng::stream(3, &[])).remove(0);
    let label = out.label.unwrap();
    assert!(
        label
            .data()
            .iter()
            .all(|v| [0.0, 1.0, 2.0, 3.0].contains(v))
    );
    assert!(
        out.image.data().iter().any(|v| v.fract() != 0.0),
        "image interpolated"
    );
}
