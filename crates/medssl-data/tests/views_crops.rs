//! Random-crop views, multi-crop and SMIT's nested crops, checked voxel by voxel against
//! the source boxes they claim.

mod views_common;

use medssl_data::Pipeline;
use medssl_data::rng::stream;
use medssl_data::views::{MultiCrop, NestedCrops, RandomCrops, View};
use views_common::{
    CHANNEL, Duplicate, assert_is_box, code, encoded, identity, label_code, random_offset,
};

/// Asserts the crop start lies in `[0, shape − size]` on every axis and the view kept the
/// source's label.
fn assert_inside(view: &View, shape: [usize; 3]) {
    assert!(view.sample.label.is_some());
    for a in 0..3 {
        assert!(
            view.start[a] >= 0 && view.start[a] as usize + view.size[a] <= shape[a],
            "box at {:?} of {:?} leaves {shape:?}",
            view.start,
            view.size
        );
    }
}

#[test]
fn random_crops_are_the_boxes_they_claim() {
    let shape = [20, 17, 23];
    let sample = encoded(shape, 2);
    let crops = RandomCrops {
        count: 3,
        size: [8, 8, 16],
        fill: -1.0,
    };
    for seed in 0..20 {
        let views = crops
            .generate(&sample, &identity(), &mut stream(seed, &[]))
            .unwrap();
        assert_eq!(views.len(), 3);
        for view in &views {
            assert_eq!(view.size, [8, 8, 16]);
            assert_eq!(view.sample.id, "case-7");
            assert_inside(view, shape);
            assert_is_box(&view.sample, shape, view.start, -1.0);
        }
    }
}

#[test]
fn crop_positions_are_uniform_over_valid_starts() {
    // Axis 0 allows starts 0..=4 (5 positions), axis 2 exactly one.
    let shape = [12, 30, 8];
    let sample = encoded(shape, 1);
    let crops = RandomCrops {
        count: 2,
        size: [8, 8, 8],
        fill: 0.0,
    };
    let mut counts = [0usize; 5];
    let mut seen_j = [false; 23];
    let trials = 1000;
    for seed in 0..trials {
        for view in crops
            .generate(&sample, &identity(), &mut stream(seed, &[]))
            .unwrap()
        {
            counts[view.start[0] as usize] += 1;
            seen_j[view.start[1] as usize] = true;
            assert_eq!(view.start[2], 0);
        }
    }
    // Each of 5 positions: 2000 draws at p = 0.2, sd ≈ 17.9; allow 4 sd.
    for &c in &counts {
        assert!((c as f64 - 400.0).abs() < 72.0, "{counts:?}");
    }
    assert!(seen_j.iter().all(|&s| s), "every start along J occurs");
}

#[test]
fn small_volumes_are_centred_and_padded() {
    // Axis 0: 6 voxels in a 10-voxel box -> 2 before, 2 after; axis 1: 7 in 10 -> 1
    // before, 2 after (MONAI SpatialPad "symmetric": floor(d / 2) before).
    let shape = [6, 7, 20];
    let sample = encoded(shape, 1);
    let crops = RandomCrops {
        count: 2,
        size: [10, 10, 8],
        fill: -5.0,
    };
    for seed in 0..5 {
        for view in crops
            .generate(&sample, &identity(), &mut stream(seed, &[]))
            .unwrap()
        {
            assert_eq!(view.start[0], -2);
            assert_eq!(view.start[1], -1);
            assert!((0..=12).contains(&view.start[2]));
            assert_is_box(&view.sample, shape, view.start, -5.0);
            let data = view.sample.image.data();
            assert_eq!(data[[0, 1, 5, 0]], -5.0);
            assert_eq!(data[[0, 8, 5, 0]], -5.0);
            assert_eq!(
                data[[0, 2, 1, 0]],
                code(shape, 0, [0, 0, view.start[2] as usize])
            );
            assert_eq!(data[[0, 7, 8, 0]], -5.0);
        }
    }
}

#[test]
fn each_view_has_its_own_augmentation_stream() {
    // The volume is exactly the crop size, so both views are the same box and differ only
    // by their augmentation.
    let shape = [8, 8, 8];
    let sample = encoded(shape, 1);
    let crops = RandomCrops {
        count: 2,
        size: shape,
        fill: 0.0,
    };
    let views = crops
        .generate(&sample, &random_offset(), &mut stream(1, &[]))
        .unwrap();
    let offset = |v: &View| v.sample.image.data()[[0, 0, 0, 0]] - code(shape, 0, [0, 0, 0]);
    let (a, b) = (offset(&views[0]), offset(&views[1]));
    assert!((0.0..1.0).contains(&a) && (0.0..1.0).contains(&b));
    assert_ne!(a, b, "independent augmentations draw different offsets");
    for v in &views {
        let off = offset(v);
        for ((_, i, j, k), &x) in v.sample.image.data().indexed_iter() {
            assert!((x - code(shape, 0, [i, j, k]) - off).abs() < 1e-3);
        }
    }
    // Same seed, same views; another seed, other offsets.
    let again = crops
        .generate(&sample, &random_offset(), &mut stream(1, &[]))
        .unwrap();
    assert_eq!(views, again);
    let other = crops
        .generate(&sample, &random_offset(), &mut stream(2, &[]))
        .unwrap();
    assert_ne!(offset(&other[0]), a);
}

#[test]
fn crop_positions_do_not_depend_on_the_augmentation() {
    let sample = encoded([24, 24, 24], 1);
    let crops = RandomCrops {
        count: 4,
        size: [8, 8, 8],
        fill: 0.0,
    };
    let plain = crops
        .generate(&sample, &identity(), &mut stream(9, &[]))
        .unwrap();
    let augmented = crops
        .generate(&sample, &random_offset(), &mut stream(9, &[]))
        .unwrap();
    let starts = |views: &[View]| views.iter().map(|v| v.start).collect::<Vec<_>>();
    assert_eq!(starts(&plain), starts(&augmented));
    let distinct: std::collections::HashSet<_> = starts(&plain).into_iter().collect();
    assert!(distinct.len() > 1, "views are cut at independent positions");
}

#[test]
fn bad_requests_are_errors() {
    let sample = encoded([8, 8, 8], 1);
    let fan_out = Pipeline::new(vec![Box::new(Duplicate)]);
    let err = RandomCrops::default()
        .generate(&sample, &fan_out, &mut stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("case-7") && err.contains("2 samples"), "{err}");
    let zero = RandomCrops {
        size: [8, 0, 8],
        ..RandomCrops::default()
    };
    assert!(
        zero.generate(&sample, &identity(), &mut stream(0, &[]))
            .is_err()
    );
    let none = RandomCrops {
        count: 0,
        ..RandomCrops::default()
    };
    assert!(
        none.generate(&sample, &identity(), &mut stream(0, &[]))
            .is_err()
    );
    let big_local = MultiCrop {
        global_size: [8, 8, 8],
        local_size: [4, 9, 4],
        ..MultiCrop::default()
    };
    let err = big_local
        .generate(&sample, &identity(), &identity(), &mut stream(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[4, 9, 4]"), "{err}");
    let big_inner = NestedCrops {
        outer_size: [8, 8, 8],
        inner_size: [9, 8, 8],
        ..NestedCrops::default()
    };
    assert!(
        big_inner
            .generate(&sample, &identity(), &mut stream(0, &[]))
            .is_err()
    );
}

#[test]
fn multi_crop_cuts_global_and_local_boxes() {
    let shape = [24, 20, 28];
    let sample = encoded(shape, 1);
    let multi = MultiCrop {
        global_count: 2,
        global_size: [16, 16, 16],
        local_count: 5,
        local_size: [8, 6, 8],
        local_resize: None,
        fill: 0.0,
    };
    let views = multi
        .generate(&sample, &identity(), &random_offset(), &mut stream(4, &[]))
        .unwrap();
    assert_eq!((views.global.len(), views.local.len()), (2, 5));
    for v in &views.global {
        assert_inside(v, shape);
        assert_is_box(&v.sample, shape, v.start, 0.0);
    }
    for v in &views.local {
        assert_inside(v, shape);
        assert_eq!(v.sample.image.spatial_shape(), [8, 6, 8]);
        // The local pipeline adds one offset in [0, 1) to the box.
        let off = v.sample.image.data()[[0, 0, 0, 0]] - code(shape, 0, v.start.map(|x| x as usize));
        assert!((0.0..1.0).contains(&off));
    }
}

#[test]
fn local_crops_resize_trilinearly_like_torch_interpolate() {
    // The image is linear in the voxel index, so trilinear interpolation reproduces it
    // exactly at every source position. PyTorch's interpolate(align_corners=False) reads
    // output voxel d at (d + 0.5)·n_in/n_out − 0.5, clamped to [0, n_in − 1].
    let shape = [30, 26, 22];
    let sample = encoded(shape, 2);
    let (size, out) = ([12, 10, 7], [8, 16, 7]);
    let multi = MultiCrop {
        global_count: 1,
        global_size: [16, 16, 16],
        local_count: 3,
        local_size: size,
        local_resize: Some(out),
        fill: 0.0,
    };
    let views = multi
        .generate(&sample, &identity(), &identity(), &mut stream(8, &[]))
        .unwrap();
    let strides = [(shape[1] * shape[2]) as f64, shape[2] as f64, 1.0];
    for v in &views.local {
        assert_eq!(v.size, size);
        assert_eq!(v.sample.image.data().dim(), (2, out[0], out[1], out[2]));
        for ((c, i, j, k), &x) in v.sample.image.data().indexed_iter() {
            let d = [i, j, k];
            let expected: f64 = c as f64 * CHANNEL as f64
                + (0..3)
                    .map(|a| {
                        let scale = size[a] as f64 / out[a] as f64;
                        let src =
                            ((d[a] as f64 + 0.5) * scale - 0.5).clamp(0.0, size[a] as f64 - 1.0);
                        (v.start[a] as f64 + src) * strides[a]
                    })
                    .sum::<f64>();
            assert!(
                (x as f64 - expected).abs() < 1e-2,
                "voxel ({c}, {i}, {j}, {k}): {x} vs {expected}"
            );
        }
        // Labels are read nearest: every value is a label of the box.
        let label = v.sample.label.as_ref().unwrap();
        assert_eq!(label.spatial_shape(), out);
        assert!(
            label
                .data()
                .iter()
                .all(|&l| (1.0..=5.0).contains(&l) && l.fract() == 0.0)
        );
        assert_eq!(
            label.data()[[0, 0, 0, 0]],
            label_code(v.start.map(|x| x as usize))
        );
    }
}

#[test]
fn smit_views_lie_inside_the_first_crop() {
    let shape = [40, 36, 44];
    let sample = encoded(shape, 1);
    let nested = NestedCrops {
        outer_size: [24, 24, 24],
        inner_size: [16, 12, 16],
        count: 2,
        fill: 0.0,
    };
    let mut extremes = [[isize::MAX, isize::MIN]; 3];
    for seed in 0..200 {
        let views = nested
            .generate(&sample, &identity(), &mut stream(seed, &[]))
            .unwrap();
        assert_eq!(views.views.len(), 2);
        for (&start, &n) in views.outer_start.iter().zip(&shape) {
            assert!(start >= 0 && start as usize + 24 <= n);
        }
        for v in &views.views {
            for (a, range) in extremes.iter_mut().enumerate() {
                let offset = v.start[a] - views.outer_start[a];
                assert!(
                    offset >= 0 && offset as usize + v.size[a] <= 24,
                    "{:?}",
                    v.start
                );
                *range = [range[0].min(offset), range[1].max(offset)];
            }
            if seed < 20 {
                assert_is_box(&v.sample, shape, v.start, 0.0);
            }
        }
    }
    // Offsets reach both ends of [0, outer − inner] on every axis.
    assert_eq!(extremes, [[0, 8], [0, 12], [0, 8]]);
}

#[test]
fn smit_views_of_a_small_volume_are_padded_like_the_first_crop() {
    // The outer crop is larger than the volume: it is centred (start −2 on axis 0), and
    // the views cut from it see the padding.
    let shape = [20, 30, 30];
    let sample = encoded(shape, 1);
    let nested = NestedCrops {
        outer_size: [24, 24, 24],
        inner_size: [16, 16, 16],
        count: 3,
        fill: -3.0,
    };
    for seed in 0..10 {
        let views = nested
            .generate(&sample, &identity(), &mut stream(seed, &[]))
            .unwrap();
        assert_eq!(views.outer_start[0], -2);
        for v in &views.views {
            assert!((-2..=6).contains(&v.start[0]));
            assert_is_box(&v.sample, shape, v.start, -3.0);
        }
    }
}
