//! Synthetic phantoms: reproducibility, anatomy, tissue values, and the property that
//! makes them a segmentation task: no intensity threshold finds an organ.
//!
//! The references are the phantoms' specification (documented in `synth`): RAS+
//! coordinates (x toward the patient's right), anatomical placement, published CT
//! attenuation values, and for MRI the Rayleigh distribution of noise magnitude in air.

use medssl_data::Sample;
use medssl_synth::{Grid, Kind, generate};

fn image(s: &Sample) -> &[f32] {
    s.image.data().as_slice().expect("standard layout")
}

fn label(s: &Sample) -> &[f32] {
    s.label
        .as_ref()
        .expect("labelled")
        .data()
        .as_slice()
        .expect("standard layout")
}

fn count(labels: &[f32], value: usize) -> usize {
    labels.iter().filter(|&&v| v == value as f32).count()
}

/// World centroid (mm) of the voxels with label `value`.
fn centroid(s: &Sample, value: usize) -> [f64; 3] {
    let [_, nj, nk] = s.image.spatial_shape();
    let affine = s.image.affine();
    let mut sum = [0.0; 3];
    let mut n = 0.0;
    for (index, &v) in label(s).iter().enumerate() {
        if v == value as f32 {
            let ijk = [index / (nj * nk), index / nk % nj, index % nk];
            for (a, total) in sum.iter_mut().enumerate() {
                *total +=
                    affine[(a, 3)] + (0..3).map(|c| affine[(a, c)] * ijk[c] as f64).sum::<f64>();
            }
            n += 1.0;
        }
    }
    assert!(n > 0.0, "{}: label {value} is empty", s.id);
    sum.map(|t| t / n)
}

/// Mean intensity over the voxels of label `value` whose six neighbours have the same
/// label (away from the partial-volume border), and how many there are.
fn interior_mean(s: &Sample, value: usize) -> (f64, usize) {
    let [ni, nj, nk] = s.image.spatial_shape();
    let (img, lab) = (image(s), label(s));
    let v = value as f32;
    let (mut sum, mut n) = (0.0, 0);
    for i in 1..ni - 1 {
        for j in 1..nj - 1 {
            for k in 1..nk - 1 {
                let at = (i * nj + j) * nk + k;
                let neighbours = [at - nj * nk, at + nj * nk, at - nk, at + nk, at - 1, at + 1];
                if lab[at] == v && neighbours.iter().all(|&n| lab[n] == v) {
                    sum += f64::from(img[at]);
                    n += 1;
                }
            }
        }
    }
    (sum / n.max(1) as f64, n)
}

/// The best Dice any intensity interval [lo, hi] reaches against `mask`, over the
/// intervals whose ends lie on a 512-step grid spanning the intensities inside the
/// mask (an interval reaching beyond them only adds false positives). Cumulative counts
/// give every interval's overlap exactly.
fn best_threshold_dice(img: &[f32], mask: &[bool]) -> f64 {
    const BINS: usize = 512;
    // A NaN would drop out of the min/max folds and of every interval, hiding itself.
    if let Some(at) = img.iter().position(|v| !v.is_finite()) {
        panic!("non-finite phantom intensity {} at voxel {at}", img[at]);
    }
    let inside_values = img.iter().zip(mask).filter(|(_, m)| **m).map(|(v, _)| *v);
    let lo = inside_values.clone().fold(f32::INFINITY, f32::min);
    let hi = inside_values.fold(f32::NEG_INFINITY, f32::max);
    let width = (hi - lo).max(1e-6) / BINS as f32;
    let mut all = vec![0u32; BINS + 1];
    let mut inside = vec![0u32; BINS + 1];
    for (&v, &m) in img.iter().zip(mask) {
        if (lo..=hi).contains(&v) {
            let b = (((v - lo) / width) as usize).min(BINS);
            all[b] += 1;
            inside[b] += u32::from(m);
        }
    }
    let target: u64 = inside.iter().map(|&c| u64::from(c)).sum();
    let mut best = 0.0f64;
    for start in 0..=BINS {
        let (mut overlap, mut selected) = (0u64, 0u64);
        for end in start..=BINS {
            overlap += u64::from(inside[end]);
            selected += u64::from(all[end]);
            best = best.max(2.0 * overlap as f64 / (selected + target) as f64);
        }
    }
    best
}

#[test]
fn same_seed_gives_the_same_case_on_any_thread_count_and_cases_differ() {
    for kind in Kind::ALL {
        let grid = Grid::fitted(kind, [20, 18, 16]).unwrap();
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| generate(kind, &grid, 7, 3))
        };
        let one = on(1);
        assert_eq!(one, on(3), "{kind}");
        assert_eq!(one.id, format!("{}_0003", kind.name().replace('-', "_")));
        let other_case = generate(kind, &grid, 7, 4);
        let other_seed = generate(kind, &grid, 8, 3);
        for other in [&other_case, &other_seed] {
            let changed = image(&one)
                .iter()
                .zip(image(other))
                .filter(|(a, b)| a != b)
                .count();
            assert!(
                changed > image(&one).len() / 2,
                "{kind}: only {changed} voxels differ"
            );
            assert_ne!(label(&one), label(other), "{kind}");
        }
    }
}

#[test]
fn the_patient_does_not_depend_on_resolution_or_modality() {
    let coarse = generate(
        Kind::AbdomenCt,
        &Grid::fitted(Kind::AbdomenCt, [32; 3]).unwrap(),
        2,
        5,
    );
    let fine = generate(
        Kind::AbdomenCt,
        &Grid::fitted(Kind::AbdomenCt, [48; 3]).unwrap(),
        2,
        5,
    );
    for organ in 1..Kind::AbdomenCt.labels().len() {
        let (a, b) = (centroid(&coarse, organ), centroid(&fine, organ));
        let gap = (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt();
        // Less than a coarse voxel (11 x 9 x 9 mm).
        assert!(gap < 8.0, "label {organ}: centroids {a:?} vs {b:?}");
    }
    let grid = Grid::fitted(Kind::AbdomenCt, [24; 3]).unwrap();
    let ct = generate(Kind::AbdomenCt, &grid, 2, 5);
    let mri = generate(Kind::AbdomenMri, &grid, 2, 5);
    assert_eq!(ct.label, mri.label);
    // Tumour cases: lesions replace organ voxels, never anything else.
    let tumor = generate(Kind::TumorCt, &grid, 2, 5);
    let hosts = [1.0, 3.0, 4.0, 5.0]; // liver, kidneys, pancreas
    for (t, a) in label(&tumor).iter().zip(label(&ct)) {
        assert_eq!(*t > 0.0, hosts.contains(a));
    }
}

#[test]
fn abdomen_organs_are_present_sized_and_placed_as_in_a_patient() {
    // Volume fraction of the 360 x 300 x 280 mm field of view: adult organ volumes
    // (liver 1-2.5 L, spleen 0.1-0.4 L, kidney 0.1-0.25 L, pancreas 0.05-0.1 L, aorta
    // 0.05-0.15 L over 28 cm) with room for the partial inclusion of each.
    let fractions = [
        ("liver", 0.01, 0.08),
        ("spleen", 0.0015, 0.015),
        ("kidney_left", 0.0015, 0.01),
        ("kidney_right", 0.0015, 0.01),
        ("pancreas", 0.0005, 0.005),
        ("aorta", 0.001, 0.008),
    ];
    let grid = Grid::fitted(Kind::AbdomenCt, [48; 3]).unwrap();
    for case in 0..4 {
        let s = generate(Kind::AbdomenCt, &grid, 11, case);
        let lab = label(&s);
        for (value, (name, lo, hi)) in fractions.iter().enumerate().map(|(i, f)| (i + 1, f)) {
            assert_eq!(Kind::AbdomenCt.labels()[value], *name);
            let f = count(lab, value) as f64 / lab.len() as f64;
            assert!((*lo..*hi).contains(&f), "case {case} {name}: fraction {f}");
        }
        let [liver, spleen, kidney_l, kidney_r, pancreas, aorta] =
            std::array::from_fn(|i| centroid(&s, i + 1));
        let (x, y, z) = (0, 1, 2);
        // RAS+: the patient's right is +x.
        assert!(
            liver[x] > 20.0 && spleen[x] < -40.0,
            "case {case}: liver {liver:?} spleen {spleen:?}"
        );
        assert!(kidney_r[x] > 30.0 && kidney_l[x] < -30.0, "case {case}");
        assert!(
            aorta[x] < 0.0 && aorta[x] > -30.0,
            "case {case}: aorta {aorta:?}"
        );
        // Kidneys posterior, pancreas in front of the aorta, aorta in front of the
        // kidneys' centres (it lies on the vertebral bodies between them).
        assert!(
            kidney_l[y] < pancreas[y] && kidney_r[y] < pancreas[y],
            "case {case}"
        );
        assert!(
            aorta[y] < pancreas[y] && aorta[y] > kidney_l[y].min(kidney_r[y]) - 10.0,
            "case {case}"
        );
        // Liver and spleen above the kidneys; the right kidney below the left.
        assert!(
            liver[z] > kidney_r[z] && spleen[z] > kidney_l[z],
            "case {case}"
        );
        assert!(
            kidney_r[z] < kidney_l[z] + 5.0,
            "case {case}: {kidney_r:?} {kidney_l:?}"
        );
    }
}

#[test]
fn headneck_structures_are_present_and_placed_as_in_a_patient() {
    let grid = Grid::fitted(Kind::HeadNeckCt, [64; 3]).unwrap();
    for case in 0..2 {
        let s = generate(Kind::HeadNeckCt, &grid, 3, case);
        let lab = label(&s);
        for (value, name) in Kind::HeadNeckCt.labels().iter().enumerate().skip(1) {
            // Even the chiasm (about 0.3 mL) covers several 3 mm voxels.
            assert!(
                count(lab, value) >= 4,
                "case {case} {name}: {}",
                count(lab, value)
            );
        }
        let [
            stem,
            parotid_l,
            parotid_r,
            mandible,
            cord,
            nerve_l,
            nerve_r,
            chiasm,
        ] = std::array::from_fn(|i| centroid(&s, i + 1));
        let (x, y, z) = (0, 1, 2);
        assert!(parotid_l[x] < -30.0 && parotid_r[x] > 30.0, "case {case}");
        assert!(nerve_l[x] < -5.0 && nerve_r[x] > 5.0, "case {case}");
        assert!(chiasm[x].abs() < 4.0 && stem[x].abs() < 4.0 && cord[x].abs() < 4.0);
        // Eyes and nerves in front of the chiasm, brainstem behind it; the mandible in
        // front of the cord.
        assert!(nerve_l[y] > chiasm[y] && nerve_r[y] > chiasm[y] && stem[y] < chiasm[y]);
        assert!(mandible[y] > cord[y] + 30.0, "case {case}");
        // Top to bottom: chiasm and nerves, brainstem, parotids and mandible, cord.
        assert!(chiasm[z] > stem[z] && stem[z] > cord[z], "case {case}");
        assert!(
            nerve_l[z] > parotid_l[z] && mandible[z] < parotid_r[z],
            "case {case}"
        );
    }
}

#[test]
fn ct_tissues_have_their_hounsfield_values() {
    // Interior means (HU) of each organ; the phantom's specification: liver 58, spleen
    // 50, pancreas 42 (each +- a few HU per case), enhancing kidney (cortex 170,
    // medulla 115) and aorta (185) scaled by a contrast phase of 0.8-1.2.
    let ranges = [
        ("liver", 40.0, 75.0),
        ("spleen", 30.0, 70.0),
        ("kidney_left", 90.0, 220.0),
        ("kidney_right", 90.0, 220.0),
        ("pancreas", 20.0, 65.0),
        ("aorta", 130.0, 250.0),
    ];
    let grid = Grid::fitted(Kind::AbdomenCt, [80, 80, 64]).unwrap();
    for case in 0..2 {
        let s = generate(Kind::AbdomenCt, &grid, 4, case);
        for (value, (name, lo, hi)) in ranges.iter().enumerate().map(|(i, r)| (i + 1, r)) {
            let (mean, n) = interior_mean(&s, value);
            assert!(n >= 10, "case {case} {name}: {n} interior voxels");
            assert!(
                (*lo..*hi).contains(&mean),
                "case {case} {name}: {mean:.1} HU"
            );
        }
        // Lung bases in the top slices: the body there is partly lung (-860 HU).
        let img = image(&s);
        let top: Vec<f32> = (0..80 * 80)
            .flat_map(|ij| (61..64).map(move |k| img[ij * 64 + k]))
            .collect();
        let lung = top.iter().filter(|v| (-960.0..-700.0).contains(*v)).count();
        assert!(
            lung > top.len() / 50,
            "case {case}: {lung} lung voxels at the top"
        );
        // Air around the body, whole HU within the int16 CT range.
        assert!(
            img.iter()
                .all(|v| v.fract() == 0.0 && (-1024.0..=3071.0).contains(v))
        );
        let corner: Vec<f32> = (0..4)
            .flat_map(|i| {
                (0..4).flat_map(move |j| (0..64).map(move |k| img[(i * 80 + j) * 64 + k]))
            })
            .collect();
        let air = corner.iter().map(|&v| f64::from(v)).sum::<f64>() / corner.len() as f64;
        assert!((-1010.0..-990.0).contains(&air), "air {air}");
    }
}

#[test]
fn mri_has_t1_or_t2_contrast_and_rician_noise() {
    let grid = Grid::fitted(Kind::AbdomenMri, [48; 3]).unwrap();
    let mut weightings = [0, 0];
    for case in 0..6 {
        let s = generate(Kind::AbdomenMri, &grid, 5, case);
        let mean = |value| {
            let (sum, n) = image(&s)
                .iter()
                .zip(label(&s))
                .filter(|(_, l)| **l == value as f32)
                .fold((0.0, 0.0), |(s, n), (v, _)| (s + f64::from(*v), n + 1.0));
            sum / n
        };
        let (liver, spleen, pancreas) = (mean(1), mean(2), mean(5));
        // T1: liver brighter than spleen, pancreas brightest. T2: spleen brighter.
        if liver > spleen {
            weightings[0] += 1;
            assert!(
                pancreas > 0.9 * liver,
                "case {case}: T1 pancreas {pancreas} liver {liver}"
            );
        } else {
            weightings[1] += 1;
            assert!(
                spleen > 1.3 * liver,
                "case {case}: T2 spleen {spleen} liver {liver}"
            );
        }
        // Air: the magnitude of complex Gaussian noise is Rayleigh, E[x]^2 / E[x^2] =
        // pi / 4 whatever the noise level.
        let img = image(&s);
        let air: Vec<f64> = (0..6)
            .flat_map(|i| (0..6).flat_map(move |j| (0..48).map(move |k| (i * 48 + j) * 48 + k)))
            .map(|n| f64::from(img[n]))
            .collect();
        let m1 = air.iter().sum::<f64>() / air.len() as f64;
        let m2 = air.iter().map(|v| v * v).sum::<f64>() / air.len() as f64;
        assert!(
            (m1 * m1 / m2 - std::f64::consts::FRAC_PI_4).abs() < 0.03,
            "case {case}: {}",
            m1 * m1 / m2
        );
        assert!(img.iter().all(|&v| v >= 0.0 && v.is_finite()));
    }
    assert!(weightings[0] > 0 && weightings[1] > 0, "{weightings:?}");
}

#[test]
fn no_intensity_threshold_segments_any_structure() {
    // The best interval [lo, hi] over a fine grid reaches a Dice well below what a
    // trained network does (0.8-0.95 on such organs): shape and context are needed.
    for kind in Kind::ALL {
        let grid = Grid::fitted(kind, [64; 3]).unwrap();
        for case in [1] {
            let s = generate(kind, &grid, 6, case);
            for (value, name) in kind.labels().iter().enumerate().skip(1) {
                let mask: Vec<bool> = label(&s).iter().map(|&v| v == value as f32).collect();
                assert!(mask.contains(&true), "{kind} case {case}: {name} missing");
                let dice = best_threshold_dice(image(&s), &mask);
                assert!(
                    dice < 0.6,
                    "{kind} case {case} {name}: threshold Dice {dice:.3}"
                );
            }
        }
    }
}

#[test]
fn threshold_search_finds_a_separable_structure() {
    // The search itself: a structure with its own intensity range is found exactly.
    let img: Vec<f32> = (0..1000).map(|i| (i % 100) as f32).collect();
    let mask: Vec<bool> = img.iter().map(|&v| (30.0..50.0).contains(&v)).collect();
    assert!(best_threshold_dice(&img, &mask) > 0.99);
    let mixed: Vec<bool> = (0..1000).map(|i| i % 2 == 0).collect();
    assert!(best_threshold_dice(&img, &mixed) < 0.7);
}

#[test]
fn bad_grids_and_kinds_are_refused_with_the_reason() {
    let err = "liver-ct".parse::<Kind>().unwrap_err().to_string();
    assert!(
        err.contains("liver-ct") && err.contains("abdomen-ct, abdomen-mri, headneck-ct, tumor-ct"),
        "{err}"
    );
    for kind in Kind::ALL {
        assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
    }
    let err = Grid::new([4, 32, 32], [1.0; 3]).unwrap_err().to_string();
    assert!(err.contains("size 4"), "{err}");
    assert!(Grid::new([32, 32, 2000], [1.0; 3]).is_err());
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = Grid::new([32; 3], [1.0, bad, 1.0]).unwrap_err().to_string();
        assert!(err.contains("spacing"), "{err}");
    }
    // The affine is diagonal RAS, centred on the origin.
    let g = Grid::new([10, 20, 8], [2.0, 1.5, 3.0]).unwrap();
    let a = g.affine();
    assert_eq!((a[(0, 0)], a[(1, 1)], a[(2, 2)]), (2.0, 1.5, 3.0));
    assert_eq!((a[(0, 3)], a[(1, 3)], a[(2, 3)]), (-9.0, -14.25, -10.5));
    assert_eq!(a[(0, 1)], 0.0);
    assert_eq!(a[(3, 3)], 1.0);
}
