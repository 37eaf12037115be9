//! Block-wise token masks: exact block counts, block structure, token/voxel agreement,
//! determinism, uniform block choice and the iBOT ratio draw.

use medssl_data::masks::{MaskGrid, MaskRatio, TokenMask};
use medssl_data::rng::stream;
use ndarray::Array3;
use rand::RngExt;

/// The block-level mask read back from the token grid, checking on the way that every
/// block's tokens agree (whole blocks are masked, never parts).
fn blocks_of(mask: &TokenMask, grid: &MaskGrid, block: usize) -> Array3<bool> {
    let step = block / mask.patch_size();
    let [bd, bh, bw] = grid.block_shape();
    Array3::from_shape_fn((bd, bh, bw), |(i, j, k)| {
        let cells = mask.tokens().slice(ndarray::s![
            i * step..(i + 1) * step,
            j * step..(j + 1) * step,
            k * step..(k + 1) * step
        ]);
        let first = cells[[0, 0, 0]];
        assert!(
            cells.iter().all(|&m| m == first),
            "block ({i}, {j}, {k}) is partly masked"
        );
        first
    })
}

#[test]
fn masks_exactly_round_ratio_times_blocks() {
    // (volume, patch, block) with 8, 24 and 216 blocks; 216 is SMIT's 96³ / 16³ setting.
    let cases = [
        ([32, 32, 32], 2, 16),
        ([64, 48, 32], 2, 16),
        ([96, 96, 96], 2, 16),
        ([24, 36, 12], 3, 12),
    ];
    let ratios = [0.0, 0.1, 0.3, 0.45, 0.6, 0.7, 0.95, 1.0];
    for (shape, patch, block) in cases {
        let grid = MaskGrid::new(shape, patch, block).unwrap();
        let n = (0..3).map(|a| shape[a] / block).product::<usize>();
        assert_eq!(grid.block_count(), n);
        assert_eq!(grid.token_shape(), shape.map(|s| s / patch));
        for (r, &ratio) in ratios.iter().enumerate() {
            let expected = (ratio * n as f64).round() as usize;
            for seed in 0..3 {
                let mask = grid.generate(
                    &MaskRatio::fixed(ratio).unwrap(),
                    &mut stream(seed, &[r as u64]),
                );
                assert_eq!(
                    mask.tokens().dim(),
                    (shape[0] / patch, shape[1] / patch, shape[2] / patch)
                );
                let blocks = blocks_of(&mask, &grid, block);
                let masked_blocks = blocks.iter().filter(|&&m| m).count();
                assert_eq!(masked_blocks, expected, "{shape:?} ratio {ratio}");
                assert_eq!(mask.masked_blocks(), expected);
                assert_eq!(mask.masked_tokens(), expected * (block / patch).pow(3));
                // Within half a block of the requested ratio.
                assert!((mask.masked_fraction() - ratio).abs() <= 0.5 / n as f64 + 1e-12);
                assert_eq!(mask.ratio(), ratio);
            }
        }
    }
}

#[test]
fn voxel_mask_covers_exactly_each_tokens_voxels() {
    for (shape, patch, block) in [
        ([32, 16, 48], 2, 16),
        ([24, 36, 12], 3, 12),
        ([16, 16, 16], 4, 8),
    ] {
        let grid = MaskGrid::new(shape, patch, block).unwrap();
        let mask = grid.generate(&MaskRatio::fixed(0.5).unwrap(), &mut stream(11, &[]));
        let voxels = mask.voxel_mask();
        assert_eq!(voxels.dim(), (shape[0], shape[1], shape[2]));
        for ((i, j, k), &v) in voxels.indexed_iter() {
            assert_eq!(
                v,
                mask.tokens()[[i / patch, j / patch, k / patch]],
                "voxel ({i}, {j}, {k})"
            );
        }
        assert_eq!(
            voxels.iter().filter(|&&v| v).count(),
            mask.masked_tokens() * patch.pow(3)
        );
    }
}

#[test]
fn masks_are_deterministic_by_seed() {
    let grid = MaskGrid::new([96, 96, 96], 2, 16).unwrap();
    let ratio = MaskRatio::fixed(0.7).unwrap();
    let a = grid.generate(&ratio, &mut stream(5, &[1, 2]));
    let b = grid.generate(&ratio, &mut stream(5, &[1, 2]));
    let c = grid.generate(&ratio, &mut stream(5, &[1, 3]));
    assert_eq!(a, b);
    assert_ne!(a.tokens(), c.tokens());
}

#[test]
fn every_block_is_equally_likely() {
    // 27 blocks, 8 masked per draw (round(0.3 × 27)). Each block's count over T draws has
    // mean T·p and variance T·p·(1 − p); the counts sum to T·8, leaving 26 degrees of
    // freedom. The 0.999 quantile of chi-square(26) is 54.05.
    let grid = MaskGrid::new([48, 48, 48], 8, 16).unwrap();
    let ratio = MaskRatio::fixed(0.3).unwrap();
    let trials = 3000;
    let mut counts = [0usize; 27];
    for t in 0..trials {
        let mask = grid.generate(&ratio, &mut stream(99, &[t]));
        for (b, &m) in blocks_of(&mask, &grid, 16).iter().enumerate() {
            counts[b] += usize::from(m);
        }
    }
    let p = 8.0 / 27.0;
    let mean = trials as f64 * p;
    let var = trials as f64 * p * (1.0 - p);
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2) / var)
        .sum();
    assert!(
        chi2 < 54.05,
        "chi-square {chi2:.1} over 26 dof, counts {counts:?}"
    );
    // Pairs of blocks: under uniform choice without replacement a given pair is masked
    // together with probability 8·7 / (27·26).
    let mut together = 0usize;
    for t in 0..trials {
        let mask = grid.generate(&ratio, &mut stream(99, &[t]));
        let blocks = blocks_of(&mask, &grid, 16);
        together += usize::from(blocks[[0, 0, 0]] && blocks[[2, 2, 2]]);
    }
    let q = 56.0 / 702.0;
    let sd = (trials as f64 * q * (1.0 - q)).sqrt();
    assert!(
        (together as f64 - trials as f64 * q).abs() < 4.0 * sd,
        "{together}"
    );
}

#[test]
fn ibot_ratio_range_and_masking_probability() {
    // iBOT: half the samples unmasked, the others at a ratio uniform in [0.1, 0.5].
    let ratio = MaskRatio::range(0.1, 0.5, 0.5).unwrap();
    let trials = 20_000;
    let mut rng = stream(3, &[]);
    let draws: Vec<f64> = (0..trials).map(|_| ratio.draw(&mut rng)).collect();
    let drawn: Vec<f64> = draws.iter().copied().filter(|&r| r != 0.0).collect();
    assert!(drawn.iter().all(|r| (0.1..=0.5).contains(r)));
    let masked_share = drawn.len() as f64 / trials as f64;
    assert!(
        (masked_share - 0.5).abs() < 4.0 * (0.25 / trials as f64).sqrt(),
        "{masked_share}"
    );
    let mean = drawn.iter().sum::<f64>() / drawn.len() as f64;
    let sd = 0.4 / 12f64.sqrt() / (drawn.len() as f64).sqrt();
    assert!((mean - 0.3).abs() < 4.0 * sd, "mean ratio {mean}");
    let below = drawn.iter().filter(|&&r| r < 0.2).count() as f64 / drawn.len() as f64;
    assert!(
        (below - 0.25).abs() < 4.0 * (0.25 * 0.75 / drawn.len() as f64).sqrt(),
        "{below}"
    );

    // Each generated mask masks round(drawn ratio × blocks) blocks, none when unmasked.
    let grid = MaskGrid::new([64, 64, 64], 8, 16).unwrap();
    let mut unmasked = 0;
    for t in 0..200 {
        let mask = grid.generate(&ratio, &mut stream(4, &[t]));
        assert_eq!(mask.masked_blocks(), (mask.ratio() * 64.0).round() as usize);
        assert_eq!(mask.masked_tokens(), mask.masked_blocks() * 8);
        unmasked += usize::from(mask.ratio() == 0.0);
    }
    assert!((60..140).contains(&unmasked), "{unmasked} of 200 unmasked");
}

#[test]
fn fixed_ratio_draws_no_randomness() {
    let ratio = MaskRatio::fixed(0.7).unwrap();
    let mut rng = stream(1, &[]);
    let mut untouched = stream(1, &[]);
    assert_eq!(ratio.draw(&mut rng), 0.7);
    assert_eq!(rng.random::<u64>(), untouched.random::<u64>());
}

#[test]
fn bad_sizes_and_ratios_are_errors_naming_them() {
    let err = MaskGrid::new([40, 32, 32], 2, 16).unwrap_err().to_string();
    assert!(err.contains("[40, 32, 32]") && err.contains("16"), "{err}");
    let err = MaskGrid::new([48, 48, 48], 3, 16).unwrap_err().to_string();
    assert!(err.contains("16") && err.contains('3'), "{err}");
    assert!(MaskGrid::new([32, 32, 32], 0, 16).is_err());
    assert!(MaskGrid::new([0, 32, 32], 2, 16).is_err());
    for (min, max, p) in [
        (-0.1, 0.5, 1.0),
        (0.2, 1.5, 1.0),
        (0.6, 0.4, 1.0),
        (0.1, 0.5, 1.2),
        (f64::NAN, 0.5, 1.0),
    ] {
        let err = MaskRatio::range(min, max, p).unwrap_err().to_string();
        assert!(err.starts_with("mask ratio"), "{err}");
    }
    assert!(MaskRatio::fixed(1.01).is_err());
}
