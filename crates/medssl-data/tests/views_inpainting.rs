//! In-painting corruption: Tang et al.'s box distribution and stopping rule, noise
//! range, donor boxes, outer cutout, clean targets and errors.

mod views_common;

use medssl_data::rng::stream;
use medssl_data::views::{Corruption, CutBox, Cutout, Inpainting};
use medssl_io::Volume;
use ndarray::{Array3, Array4, s};
use views_common::{affine, encoded};

/// An image whose values lie outside [0, 1], so replaced voxels are recognisable.
fn image(shape: [usize; 3]) -> Volume {
    let v = encoded(shape, 2).image;
    Volume::new(v.data().mapv(|x| x + 10.0), affine())
}

fn union(shape: [usize; 3], boxes: &[CutBox]) -> Array3<bool> {
    let mut inside = Array3::from_elem((shape[0], shape[1], shape[2]), false);
    for b in boxes {
        inside
            .slice_mut(s![
                b.start[0]..b.end[0],
                b.start[1]..b.end[1],
                b.start[2]..b.end[2]
            ])
            .fill(true);
    }
    inside
}

fn min_max<'a>(values: impl Iterator<Item = &'a f32>) -> (f32, f32) {
    values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    })
}

#[test]
fn inner_cutout_replaces_only_boxes_with_unit_range_noise() {
    let shape = [40, 32, 24];
    let input = image(shape);
    for seed in 0..8 {
        let Corruption {
            corrupted,
            target,
            noise_boxes,
            donor_boxes,
        } = Inpainting::default()
            .corrupt(&input, None, &mut stream(seed, &[]))
            .unwrap();
        assert_eq!(target, input);
        assert!(donor_boxes.is_empty());
        assert_eq!(corrupted.affine(), input.affine());
        let inside = union(shape, &noise_boxes);
        for ((c, i, j, k), &x) in corrupted.data().indexed_iter() {
            if inside[[i, j, k]] {
                assert!((0.0..=1.0).contains(&x), "voxel ({c}, {i}, {j}, {k}) = {x}");
            } else {
                assert_eq!(x, input.data()[[c, i, j, k]]);
            }
        }
        // The last box is overwritten by nothing: its noise spans exactly [0, 1].
        if let Some(b) = noise_boxes.last().filter(|b| b.voxels() > 1) {
            let region = corrupted.data().slice(s![
                ..,
                b.start[0]..b.end[0],
                b.start[1]..b.end[1],
                b.start[2]..b.end[2]
            ]);
            assert_eq!(min_max(region.iter()), (0.0, 1.0));
        }
    }
}

#[test]
fn boxes_follow_tangs_size_distribution_and_stopping_rule() {
    // Per axis n: t = floor(0.05 n), m = floor(0.25 n): n = 40 -> (2, 10), 32 -> (1, 8),
    // 64 -> (3, 16). Starts are uniform in [0, n − t), sides in [max(t, 1), m).
    let shape = [40, 32, 64];
    let bounds = [(2, 10), (1, 8), (3, 16)];
    let input = image([40, 32, 64]);
    let input = Volume::new(
        input.data().slice(s![0..1, .., .., ..]).to_owned(),
        affine(),
    );
    let total = (40 * 32 * 64) as f64;
    let mut start_range = [[usize::MAX, 0]; 3];
    let mut side_range = [[usize::MAX, 0]; 3];
    let (mut before_last, mut with_last) = (0.0, 0.0);
    let trials = 150;
    for seed in 0..trials {
        let out = Inpainting::default()
            .corrupt(&input, None, &mut stream(seed, &[]))
            .unwrap();
        let sizes: Vec<usize> = out.noise_boxes.iter().map(CutBox::voxels).collect();
        let sum: usize = sizes.iter().sum();
        let last = sizes.last().copied().unwrap_or(0);
        // Boxes stop as soon as the drawn share (below 0.3) is reached.
        assert!(((sum - last) as f64) < 0.3 * total);
        before_last += (sum - last) as f64 / total;
        with_last += sum as f64 / total;
        for b in &out.noise_boxes {
            for a in 0..3 {
                let (t, m) = bounds[a];
                assert!(b.start[a] < shape[a] - t);
                start_range[a] = [
                    start_range[a][0].min(b.start[a]),
                    start_range[a][1].max(b.start[a]),
                ];
                let side = b.end[a] - b.start[a];
                if b.end[a] < shape[a] {
                    assert!((t.max(1)..m).contains(&side), "axis {a} side {side}");
                    side_range[a] = [side_range[a][0].min(side), side_range[a][1].max(side)];
                } else {
                    assert!(side >= 1 && side < m);
                }
            }
        }
    }
    for a in 0..3 {
        let (t, m) = bounds[a];
        assert_eq!(start_range[a], [0, shape[a] - t - 1], "axis {a} starts");
        assert_eq!(side_range[a], [t.max(1), m - 1], "axis {a} sides");
    }
    // The drawn share is uniform in [0, 0.3): mean 0.15, sd of the mean over 150 draws
    // 0.3 / sqrt(12 · 150) = 0.007. The boxes before the last stay below it, all boxes
    // reach it.
    let (before_last, with_last) = (before_last / trials as f64, with_last / trials as f64);
    assert!(before_last < 0.15 + 0.025, "{before_last}");
    assert!(with_last > 0.15 - 0.025, "{with_last}");
    assert!(
        with_last - before_last < 0.02,
        "one box adds little: {with_last} {before_last}"
    );
}

#[test]
fn donor_boxes_copy_the_donor_at_the_same_place() {
    let shape = [32, 32, 32];
    let input = image(shape);
    let donor = Volume::new(Array4::from_elem((2, 32, 32, 32), -7.5), affine());
    let out = Inpainting::default()
        .corrupt(&input, Some(&donor), &mut stream(5, &[]))
        .unwrap();
    assert!(!out.donor_boxes.is_empty());
    assert_eq!(out.target, input);
    let noise = union(shape, &out.noise_boxes);
    let from_donor = union(shape, &out.donor_boxes);
    for ((c, i, j, k), &x) in out.corrupted.data().indexed_iter() {
        if from_donor[[i, j, k]] {
            assert_eq!(x, -7.5);
        } else if noise[[i, j, k]] {
            assert!((0.0..=1.0).contains(&x));
        } else {
            assert_eq!(x, input.data()[[c, i, j, k]]);
        }
    }
}

#[test]
fn outer_cutout_keeps_only_the_boxes() {
    let shape = [32, 32, 32];
    let input = image(shape);
    let outer = Inpainting {
        cutout: Cutout::Outer,
        ..Inpainting::default()
    };
    let out = outer.corrupt(&input, None, &mut stream(3, &[])).unwrap();
    let kept = union(shape, &out.noise_boxes);
    let mut outside = Vec::new();
    for ((c, i, j, k), &x) in out.corrupted.data().indexed_iter() {
        if kept[[i, j, k]] {
            assert_eq!(x, input.data()[[c, i, j, k]]);
        } else {
            outside.push(x);
        }
    }
    assert!(!outside.is_empty());
    assert_eq!(min_max(outside.iter()), (0.0, 1.0));
    assert_eq!(out.target, input);
}

#[test]
fn corruption_is_deterministic_and_can_be_switched_off() {
    let input = image([24, 24, 24]);
    let a = Inpainting::default()
        .corrupt(&input, None, &mut stream(8, &[]))
        .unwrap();
    let b = Inpainting::default()
        .corrupt(&input, None, &mut stream(8, &[]))
        .unwrap();
    assert_eq!(a, b);
    let off = Inpainting {
        max_drop: 0.0,
        ..Inpainting::default()
    };
    let none = off.corrupt(&input, None, &mut stream(8, &[])).unwrap();
    assert!(none.noise_boxes.is_empty());
    assert_eq!(none.corrupted, input);
}

#[test]
fn unusable_inputs_are_errors() {
    let err = Inpainting::default()
        .corrupt(&image([6, 32, 32]), None, &mut stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[6, 32, 32]") && err.contains("too small"),
        "{err}"
    );
    let input = image([32, 32, 32]);
    let donor = image([32, 32, 16]);
    let err = Inpainting::default()
        .corrupt(&input, Some(&donor), &mut stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("donor shape"), "{err}");
    let outer = Inpainting {
        cutout: Cutout::Outer,
        ..Inpainting::default()
    };
    assert!(
        outer
            .corrupt(&input, Some(&input), &mut stream(0, &[]))
            .is_err()
    );
    let inverted = Inpainting {
        min_block: 0.3,
        max_block: 0.2,
        ..Inpainting::default()
    };
    assert!(inverted.corrupt(&input, None, &mut stream(0, &[])).is_err());
}

/// Tang's `aug_rand` over a batch: every voxel of a corrupted volume is its own value,
/// unit-range noise, or a value another volume of the batch held at that moment; donor
/// passes happen; the result depends only on the streams.
#[test]
fn batch_corruption_mixes_only_noise_and_batch_donors() {
    let shape = [24, 24, 24];
    let levels = [10.0f32, 20.0, 30.0];
    let batch = || -> Vec<Volume> {
        levels
            .iter()
            .map(|&l| Volume::new(Array4::from_elem((1, 24, 24, 24), l), affine()))
            .collect()
    };
    let mut donated = 0;
    for seed in 0..10 {
        let mut volumes = batch();
        let mut rngs: Vec<_> = (0..3).map(|i| stream(seed, &[i])).collect();
        Inpainting::default()
            .corrupt_batch(&mut volumes, &mut rngs)
            .unwrap();
        for (i, volume) in volumes.iter().enumerate() {
            assert_eq!(volume.spatial_shape(), shape);
            for &x in volume.data() {
                let known = levels.contains(&x) || (0.0..=1.0).contains(&x);
                assert!(known, "volume {i} holds {x}");
                if x != levels[i] && x > 1.0 {
                    donated += 1;
                }
            }
        }
        let mut again = batch();
        let mut rngs: Vec<_> = (0..3).map(|i| stream(seed, &[i])).collect();
        Inpainting::default()
            .corrupt_batch(&mut again, &mut rngs)
            .unwrap();
        assert_eq!(again, volumes, "same streams, same corruption");
    }
    assert!(donated > 0, "no donor pass in ten batches");
    let err = Inpainting::default()
        .corrupt_batch(&mut batch(), &mut [stream(0, &[])])
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 random streams for 3 volumes"), "{err}");
}
