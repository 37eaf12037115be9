//! Texture volumes: reproducible, of the stated intensity spread, different from case to
//! case, and smooth on the stated scale (neighbours alike, far voxels not).

use medssl_synth::texture;

fn voxels(shape: [usize; 3], cell: f64, seed: u64, case: u64) -> Vec<f64> {
    let sample = texture(shape, cell, seed, case).unwrap();
    assert!(sample.label.is_none());
    assert_eq!(sample.id, format!("texture_{case:04}"));
    assert_eq!(sample.image.spatial_shape(), shape);
    let values: Vec<f64> = sample.image.data().iter().map(|&v| f64::from(v)).collect();
    for &v in &values {
        assert!(v.is_finite() && (-1000.0..=1000.0).contains(&v), "{v}");
        assert_eq!(v, v.round(), "whole HU");
    }
    values
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Pearson correlation of voxel pairs `offset` voxels apart along the last axis.
fn correlation(values: &[f64], side: usize, offset: usize) -> f64 {
    let (a, b): (Vec<f64>, Vec<f64>) = (0..values.len())
        .filter(|i| i % side + offset < side)
        .map(|i| (values[i], values[i + offset]))
        .unzip();
    let ((ma, sa), (mb, sb)) = (mean_std(&a), mean_std(&b));
    let n = a.len() as f64;
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / n
        / (sa * sb)
}

#[test]
fn textures_are_reproducible_distinct_and_smooth_on_their_scale() {
    let shape = [40, 40, 40];
    let a = voxels(shape, 8.0, 3, 0);
    assert_eq!(
        a,
        voxels(shape, 8.0, 3, 0),
        "same seed and case, same volume"
    );
    let b = voxels(shape, 8.0, 3, 1);
    let c = voxels(shape, 8.0, 4, 0);
    // Another case or seed: an unrelated field.
    for other in [&b, &c] {
        let same = a.iter().zip(other.iter()).filter(|(x, y)| x == y).count();
        assert!(same * 100 < a.len(), "{same} equal voxels");
    }
    // A unit-variance field times 500 HU (the lattice interpolation keeps about
    // (26/35)^1.5 = 0.64 of the variance: standard deviation about 400 HU).
    let (mean, std) = mean_std(&a);
    assert!(mean.abs() < 200.0, "mean {mean}");
    assert!((250.0..600.0).contains(&std), "standard deviation {std}");
    // Neighbours alike, voxels two cells apart unrelated.
    let near = correlation(&a, 40, 1);
    let far = correlation(&a, 40, 16);
    assert!(near > 0.9, "neighbour correlation {near}");
    assert!(far.abs() < 0.3, "correlation 16 voxels apart {far}");
}
