//! Random resized crops of one shared region (`RegionCrops`): the views lie in one
//! region, their source boxes follow the drawn volume fractions, positive views always
//! share content, and the boxes they claim are the boxes they show.

mod views_common;

use medssl_data::Pipeline;
use medssl_data::rng::stream;
use medssl_data::views::{Crops, RegionCrops, RegionViews, ScaledViews, View, ViewPlan};
use views_common::{assert_is_box, code, encoded, identity, random_offset};

/// The views of `crops` on `sample` for `seed`, globals with `global`, locals with
/// `local`.
fn generate(
    crops: &RegionCrops,
    sample: &medssl_data::Sample,
    global: &Pipeline,
    local: &Pipeline,
    seed: u64,
) -> RegionViews {
    crops
        .generate(sample, global, local, &mut stream(seed, &[]))
        .unwrap()
}

fn group(count: usize, size: [usize; 3], scale: [f64; 2]) -> ScaledViews {
    ScaledViews { count, size, scale }
}

/// Asserts `view`'s claimed box lies inside the region.
fn assert_in_region(view: &View, views: &RegionViews) {
    for a in 0..3 {
        let offset = view.start[a] - views.region_start[a];
        assert!(
            offset >= 0 && offset as usize + view.size[a] <= views.region_size[a],
            "box at {:?} of {:?} leaves the region at {:?} of {:?}",
            view.start,
            view.size,
            views.region_start,
            views.region_size
        );
    }
}

/// The source box a resized view of an `encoded(shape, ..)` sample shows, measured from
/// its voxels rather than taken from what the view claims. The image is linear in the
/// source index (`Σ_a p_a·stride_a`), so trilinear interpolation reproduces it exactly
/// wherever it does not clamp, and PyTorch's `align_corners=False` resize from `n` to
/// `out` voxels reads output voxel `d` at box offset `(d + ½)·n/out − ½`, which for
/// `n/out ≥ ⅓` stays inside the box for `d = 1` and `d = out − 2`. Along axis `a` those
/// two voxels lie `(out − 3)·n/out` apart, which gives `n`; voxel 1 then lies
/// `1.5·n/out − ½` past the box's start on every axis, which gives the start (a flat
/// index, the box lying inside the volume). Returns (start, side).
fn measured_box(view: &View, shape: [usize; 3]) -> ([isize; 3], [usize; 3]) {
    let data = view.sample.image.data();
    let out = view.sample.image.spatial_shape();
    assert!(out.iter().all(|&o| o >= 4));
    let strides = [(shape[1] * shape[2]) as f64, shape[2] as f64, 1.0];
    let inner = data[[0, 1, 1, 1]] as f64;
    let mut side = [0; 3];
    let mut corner = inner;
    for a in 0..3 {
        let mut far = [0, 1, 1, 1];
        far[a + 1] = out[a] - 2;
        let span = (data[far] as f64 - inner) / strides[a];
        let n = span * out[a] as f64 / (out[a] - 3) as f64;
        assert!((n - n.round()).abs() < 0.05, "axis {a}: side {n}");
        side[a] = n.round() as usize;
        assert!(3 * side[a] >= out[a]);
        corner -= (1.5 * n / out[a] as f64 - 0.5) * strides[a];
    }
    assert!((corner - corner.round()).abs() < 0.05, "corner {corner}");
    let flat = corner.round() as usize;
    let start = [
        flat / (shape[1] * shape[2]),
        flat / shape[2] % shape[1],
        flat % shape[2],
    ];
    (start.map(|x| x as isize), side)
}

#[test]
fn views_of_one_set_lie_inside_one_region() {
    let shape = [40, 36, 44];
    let sample = encoded(shape, 1);
    let crops = RegionCrops {
        region: Some([24, 20, 28]),
        global: group(2, [8, 8, 8], [0.2, 1.0]),
        local: Some(group(4, [4, 4, 4], [0.05, 0.4])),
        fill: 0.0,
    };
    let mut starts = std::collections::HashSet::new();
    for seed in 0..100 {
        let views = generate(&crops, &sample, &identity(), &identity(), seed);
        assert_eq!(views.region_size, [24, 20, 28]);
        for ((&s, &size), &n) in views
            .region_start
            .iter()
            .zip(&views.region_size)
            .zip(&shape)
        {
            assert!(s >= 0 && s as usize + size <= n);
        }
        starts.insert(views.region_start);
        assert_eq!((views.global.len(), views.local.len()), (2, 4));
        for (v, out) in views
            .global
            .iter()
            .map(|v| (v, [8; 3]))
            .chain(views.local.iter().map(|v| (v, [4; 3])))
        {
            assert_in_region(v, &views);
            assert_eq!(v.sample.image.spatial_shape(), out);
            assert_eq!(v.sample.label.as_ref().unwrap().spatial_shape(), out);
            assert_eq!(v.sample.id, "case-7");
        }
    }
    assert!(
        starts.len() > 50,
        "the region moves: {} places",
        starts.len()
    );
}

#[test]
fn full_scale_views_are_the_region() {
    let shape = [20, 18, 22];
    let sample = encoded(shape, 2);
    let crops = RegionCrops {
        region: Some([12, 10, 14]),
        global: group(3, [12, 10, 14], [1.0, 1.0]),
        local: None,
        fill: -1.0,
    };
    for seed in 0..10 {
        let views = generate(&crops, &sample, &identity(), &identity(), seed);
        assert!(views.local.is_empty());
        for v in &views.global {
            assert_eq!((v.start, v.size), (views.region_start, [12, 10, 14]));
            assert_is_box(&v.sample, shape, v.start, -1.0);
        }
    }
    // Without a region the region is the volume.
    let whole = RegionCrops {
        region: None,
        global: group(2, shape, [1.0, 1.0]),
        ..RegionCrops::default()
    };
    let views = generate(&whole, &sample, &identity(), &identity(), 3);
    assert_eq!((views.region_start, views.region_size), ([0; 3], shape));
    for v in &views.global {
        assert_eq!((v.start, v.size), ([0; 3], shape));
        assert_is_box(&v.sample, shape, [0; 3], 0.0);
    }
}

#[test]
fn a_region_larger_than_the_volume_is_centred_and_padded() {
    // Axis 0: 10 voxels in a 14-voxel region -> 2 padded before (MONAI's symmetric pad).
    let shape = [10, 20, 20];
    let sample = encoded(shape, 1);
    let crops = RegionCrops {
        region: Some([14, 14, 14]),
        global: group(2, [14, 14, 14], [1.0, 1.0]),
        local: Some(group(2, [7, 7, 7], [0.125, 0.125])),
        fill: -3.0,
    };
    for seed in 0..10 {
        let views = generate(&crops, &sample, &identity(), &identity(), seed);
        assert_eq!(views.region_start[0], -2);
        for v in views.global.iter().chain(&views.local) {
            assert_in_region(v, &views);
            assert_is_box(&v.sample, shape, v.start, -3.0);
        }
    }
}

/// A view's source box: isotropic, `round(R · s^(1/3))` for a scale `s` in the range,
/// what the view claims and what its voxels show.
#[test]
fn box_sides_follow_the_drawn_scale() {
    let shape = [30, 28, 32];
    let sample = encoded(shape, 1);
    let region = 20usize;
    let scale = [0.2, 1.0];
    let bounds = scale.map(|s: f64| (region as f64 * s.cbrt()).round() as usize);
    assert_eq!(bounds, [12, 20]);
    let crops = RegionCrops {
        region: Some([region; 3]),
        global: group(2, [16; 3], scale),
        local: Some(group(2, [6; 3], scale)),
        fill: 0.0,
    };
    let mut sides = std::collections::BTreeMap::new();
    let mut unresized = 0;
    for seed in 0..300 {
        let views = generate(&crops, &sample, &identity(), &identity(), seed);
        for v in views.global.iter().chain(&views.local) {
            let side = v.size[0];
            assert_eq!(v.size, [side; 3], "a cubic region gives cubic boxes");
            assert!((bounds[0]..=bounds[1]).contains(&side), "side {side}");
            *sides.entry(side).or_insert(0usize) += 1;
            assert_in_region(v, &views);
            if v.sample.image.spatial_shape() == v.size {
                // Not resized: the view is exactly its box.
                unresized += 1;
                assert_is_box(&v.sample, shape, v.start, 0.0);
            } else if seed < 60 {
                assert_eq!(measured_box(v, shape), (v.start, v.size));
            }
        }
    }
    assert!(
        unresized > 0,
        "some global boxes are 16³ and skip the resize"
    );
    // Every side in the range occurs, with the probability the scale implies:
    // P(side = k) = |[((k − ½)/R)³, ((k + ½)/R)³) ∩ [0.2, 1]| / 0.8.
    let total: usize = sides.values().sum();
    for k in bounds[0]..=bounds[1] {
        let lo = (((k as f64 - 0.5) / region as f64).powi(3)).max(scale[0]);
        let hi = (((k as f64 + 0.5) / region as f64).powi(3)).min(scale[1]);
        let p = (hi - lo).max(0.0) / (scale[1] - scale[0]);
        let n = *sides.get(&k).unwrap_or(&0) as f64;
        let sd = (total as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (n - total as f64 * p).abs() < 4.0 * sd + 1.0,
            "side {k}: {n} of {total}, expected p = {p:.3}; {sides:?}"
        );
    }
    // A region of other proportions: one s^(1/3) for all axes, each rounded.
    let flat = RegionCrops {
        region: Some([20, 12, 16]),
        global: group(3, [5; 3], [0.05, 0.9]),
        local: None,
        fill: 0.0,
    };
    for seed in 0..100 {
        let views = generate(&flat, &sample, &identity(), &identity(), seed);
        for v in &views.global {
            // Each axis bounds t = s^(1/3) to [(side − ½)/R, (side + ½)/R]; the
            // intervals share a point.
            let (lo, hi) = (0..3).fold((0.0f64, f64::INFINITY), |(lo, hi), a| {
                let r = views.region_size[a] as f64;
                let side = v.size[a] as f64;
                (lo.max((side - 0.5) / r), hi.min((side + 0.5) / r))
            });
            assert!(lo <= hi + 1e-12, "box {:?} is not isotropic", v.size);
            assert!(lo <= 0.9f64.cbrt() + 1e-12 && hi >= 0.05f64.cbrt() - 1e-12);
        }
    }
}

/// The expected overlap of two boxes of sides `a` and `b` placed uniformly (integer
/// starts) in `[0, r)`: the mean over all placements of their intersection's length.
fn mean_overlap(r: usize, a: usize, b: usize) -> f64 {
    let mut sum = 0usize;
    for i in 0..=r - a {
        for j in 0..=r - b {
            sum += (i + a).min(j + b).saturating_sub(i.max(j));
        }
    }
    sum as f64 / ((r - a + 1) * (r - b + 1)) as f64
}

/// SimCLR/DINO's positive pairs: two global views at 40–100% of the region always share
/// content. Per axis, two boxes of sides `a` and `b` inside a region of side `R` overlap
/// by at least `a + b − R`; at scale ≥ 0.4 every side is at least `round(16 · 0.4^(1/3))
/// = 12` of `R = 16`, so every pair shares at least 8³ voxels, 1/8 of the region. The
/// mean shared fraction matches the exact expectation from the scale distribution.
#[test]
fn positive_views_always_share_content() {
    let shape = [20, 22, 24];
    let sample = encoded(shape, 1);
    let r = 16usize;
    let scale = [0.4, 1.0];
    let crops = RegionCrops {
        region: Some([r; 3]),
        global: group(2, [4; 3], scale),
        local: None,
        fill: 0.0,
    };
    let min_side = (r as f64 * 0.4f64.cbrt()).round() as usize;
    assert_eq!(min_side, 12);
    let trials = 1000;
    let mut fractions = Vec::with_capacity(trials);
    for seed in 0..trials as u64 {
        let views = generate(&crops, &sample, &identity(), &identity(), seed);
        let [p, q] = [&views.global[0], &views.global[1]];
        let mut shared = 1usize;
        for a in 0..3 {
            let lo = p.start[a].max(q.start[a]);
            let hi = (p.start[a] + p.size[a] as isize).min(q.start[a] + q.size[a] as isize);
            let len = (hi - lo).max(0) as usize;
            assert!(
                len + r >= p.size[a] + q.size[a] && len >= 2 * min_side - r,
                "seed {seed}: boxes {:?}/{:?} and {:?}/{:?} overlap by {len} on axis {a}",
                p.start,
                p.size,
                q.start,
                q.size
            );
            shared *= len;
        }
        let fraction = shared as f64 / r.pow(3) as f64;
        assert!(fraction >= 0.125, "seed {seed}: {fraction}");
        fractions.push(fraction);
    }
    // Exact expectation: sides k, l drawn independently with P(k) from the scale, offsets
    // independent per axis, so E[shared | k, l] = mean_overlap(k, l)³.
    let p_side = |k: usize| {
        let lo = (((k as f64 - 0.5) / r as f64).powi(3)).max(scale[0]);
        let hi = (((k as f64 + 0.5) / r as f64).powi(3)).min(scale[1]);
        (hi - lo).max(0.0) / (scale[1] - scale[0])
    };
    let mut expected = 0.0;
    for k in min_side..=r {
        for l in min_side..=r {
            expected += p_side(k) * p_side(l) * mean_overlap(r, k, l).powi(3);
        }
    }
    expected /= r.pow(3) as f64;
    let n = fractions.len() as f64;
    let mean = fractions.iter().sum::<f64>() / n;
    let sd = (fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(
        (mean - expected).abs() < 4.0 * sd / n.sqrt(),
        "mean shared fraction {mean:.4} vs expected {expected:.4} (sd {sd:.4})"
    );
    assert!(
        (0.35..0.7).contains(&expected),
        "expected {expected}: on average the views share about half the region"
    );
}

#[test]
fn views_are_deterministic_and_placed_independently_of_the_augmentation() {
    let sample = encoded([24, 24, 24], 1);
    let crops = RegionCrops {
        region: Some([16; 3]),
        global: group(2, [8; 3], [0.1, 1.0]),
        local: Some(group(3, [4; 3], [0.05, 0.4])),
        fill: 0.0,
    };
    let a = generate(&crops, &sample, &random_offset(), &random_offset(), 5);
    let b = generate(&crops, &sample, &random_offset(), &random_offset(), 5);
    assert_eq!(a, b, "same seed, same views");
    let c = generate(&crops, &sample, &random_offset(), &random_offset(), 6);
    assert_ne!(a, c, "another seed, other views");
    let boxes = |v: &RegionViews| {
        v.global
            .iter()
            .chain(&v.local)
            .map(|v| (v.start, v.size))
            .collect::<Vec<_>>()
    };
    let plain = generate(&crops, &sample, &identity(), &identity(), 5);
    assert_eq!(plain.region_start, a.region_start);
    assert_eq!(boxes(&plain), boxes(&a));
    let distinct: std::collections::HashSet<_> = boxes(&plain).into_iter().collect();
    assert!(distinct.len() > 1, "each view draws its own box");
}

#[test]
fn local_views_use_the_local_augmentation() {
    // Globals at scale 1 are the 16³ region; locals at scale 1/8 are 8³ boxes, neither
    // resized, so each view is its box plus whatever its pipeline added.
    let shape = [24, 20, 28];
    let sample = encoded(shape, 1);
    let crops = RegionCrops {
        region: Some([16; 3]),
        global: group(2, [16; 3], [1.0, 1.0]),
        local: Some(group(3, [8; 3], [0.125, 0.125])),
        fill: 0.0,
    };
    let offset = |v: &View| {
        let off = v.sample.image.data()[[0, 0, 0, 0]] - code(shape, 0, v.start.map(|x| x as usize));
        for ((_, i, j, k), &x) in v.sample.image.data().indexed_iter() {
            let src = [i, j, k].map(|d| d as isize);
            let src: [usize; 3] = std::array::from_fn(|a| (v.start[a] + src[a]) as usize);
            assert!((x - code(shape, 0, src) - off).abs() < 1e-2);
        }
        off
    };
    for seed in 0..5 {
        let views = generate(&crops, &sample, &identity(), &random_offset(), seed);
        for v in &views.global {
            assert_eq!(v.size, [16; 3]);
            assert_is_box(&v.sample, shape, v.start, 0.0);
        }
        let offsets: Vec<f32> = views.local.iter().map(offset).collect();
        for (v, off) in views.local.iter().zip(&offsets) {
            assert_eq!(v.size, [8; 3]);
            assert_in_region(v, &views);
            assert!((0.0..1.0).contains(off) && *off != 0.0, "{offsets:?}");
        }
        assert_ne!(offsets[0], offsets[1], "each local view has its own stream");
        // And the other way round: the globals take the global pipeline.
        let views = generate(&crops, &sample, &random_offset(), &identity(), seed);
        for v in &views.global {
            assert!((0.0..1.0).contains(&offset(v)) && offset(v) != 0.0);
        }
        for v in &views.local {
            assert_is_box(&v.sample, shape, v.start, 0.0);
        }
    }
}

#[test]
fn a_plan_stacks_the_globals_then_the_locals() {
    let sample = encoded([20, 20, 20], 1);
    let region = RegionCrops {
        region: Some([16; 3]),
        global: group(2, [8, 8, 12], [0.4, 1.0]),
        local: Some(group(3, [4, 4, 8], [0.05, 0.4])),
        fill: 0.0,
    };
    let crops = Crops::Region(region.clone());
    assert_eq!(crops.voxels(), 2 * 8 * 8 * 12 + 3 * 4 * 4 * 8);
    let plan = ViewPlan {
        crops,
        augment: identity(),
        local_augment: random_offset(),
        masks: None,
        rotations: None,
        inpainting: None,
    };
    plan.check().unwrap();
    let set = plan.views(&sample, &mut stream(2, &[])).unwrap();
    let shapes: Vec<_> = set.views.iter().map(|v| v.dim()).collect();
    assert_eq!(
        shapes,
        [
            (1, 8, 8, 12),
            (1, 8, 8, 12),
            (1, 4, 4, 8),
            (1, 4, 4, 8),
            (1, 4, 4, 8)
        ]
    );
    let direct = generate(&region, &sample, &identity(), &random_offset(), 2);
    for (got, want) in set
        .views
        .iter()
        .zip(direct.global.iter().chain(&direct.local))
    {
        assert_eq!(got, want.sample.image.data());
    }
    let no_locals = Crops::Region(RegionCrops {
        local: None,
        ..region
    });
    assert_eq!(no_locals.voxels(), 2 * 8 * 8 * 12);
}

#[test]
fn bad_requests_are_errors() {
    let sample = encoded([16, 16, 16], 1);
    let run = |crops: RegionCrops| {
        crops
            .generate(&sample, &identity(), &identity(), &mut stream(0, &[]))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let ok = RegionCrops {
        global: group(2, [8; 3], [0.4, 1.0]),
        local: Some(group(2, [4; 3], [0.05, 0.4])),
        ..RegionCrops::default()
    };
    run(ok.clone()).unwrap();
    for scale in [
        [0.0, 1.0],
        [0.5, 0.4],
        [0.5, 1.2],
        [f64::NAN, 1.0],
        [-0.1, 0.5],
    ] {
        let err = run(RegionCrops {
            global: group(2, [8; 3], scale),
            ..ok.clone()
        })
        .unwrap_err();
        assert!(err.contains("scale") && err.contains("global"), "{err}");
        let err = run(RegionCrops {
            local: Some(group(2, [4; 3], scale)),
            ..ok.clone()
        })
        .unwrap_err();
        assert!(err.contains("scale") && err.contains("local"), "{err}");
    }
    let err = run(RegionCrops {
        global: group(0, [8; 3], [0.4, 1.0]),
        ..ok.clone()
    })
    .unwrap_err();
    assert!(err.contains("count"), "{err}");
    assert!(
        run(RegionCrops {
            global: group(2, [8, 0, 8], [0.4, 1.0]),
            ..ok.clone()
        })
        .is_err()
    );
    let err = run(RegionCrops {
        region: Some([8, 0, 8]),
        ..ok.clone()
    })
    .unwrap_err();
    assert!(err.contains("region"), "{err}");
    // Serde round trip with the defaults filled in.
    let json = serde_json::to_string(&ok).unwrap();
    let back: RegionCrops = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ok);
    let partial: RegionCrops =
        serde_json::from_str(r#"{"region": [32, 32, 32], "global": {"scale": [0.08, 1.0]}}"#)
            .unwrap();
    assert_eq!(partial.global.count, 2);
    assert_eq!(partial.global.size, [96; 3]);
    assert_eq!(partial.local, None);
}
