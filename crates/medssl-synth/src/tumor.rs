//! Lesions for `tumor-ct`: 0 to 8 per case, each inside the liver, a kidney or the
//! pancreas, 4 to 70 mm across (log-uniform, capped by the organ), darker, brighter or
//! barely different from the organ, the larger ones sometimes with a necrotic core.

use rand::RngExt;

use super::anatomy::{Abdomen, Organ};
use super::scene::Scene;
use super::shapes::{Blob, P3, random_direction};
use medssl_data::rng::Rng;

/// Label of lesion voxels (the host organs are label 1).
const LESION: u8 = 2;

/// Most lesions in one case.
const MAX_LESIONS: usize = 8;

/// Smallest lesion radius (mm).
const MIN_RADIUS: f64 = 2.0;

/// Number of lesions: none in about one case in seven, otherwise one plus a geometric
/// number of further lesions.
fn lesion_count(rng: &mut Rng) -> usize {
    if rng.random_bool(0.15) {
        return 0;
    }
    let mut n = 1;
    while n < MAX_LESIONS && rng.random_bool(0.5) {
        n += 1;
    }
    n
}

/// Contrast relative to the organ (CT: x 100 HU): hypodense, hyperdense or subtle.
fn lesion_contrast(rng: &mut Rng) -> f32 {
    let kind: f64 = rng.random_range(0.0..1.0);
    if kind < 0.55 {
        -rng.random_range(0.15..0.6)
    } else if kind < 0.8 {
        rng.random_range(0.15..0.5)
    } else {
        let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        sign * rng.random_range(0.05..0.12)
    }
}

/// A random point of `organ` (rejection sampling in its box against the painted
/// scene), or `None` when the organ was painted over almost entirely.
fn point_in(scene: &Scene, organ: &Organ, rng: &mut Rng) -> Option<P3> {
    (0..200).find_map(|_| {
        let r = organ.region;
        let p: P3 = std::array::from_fn(|a| rng.random_range(r.lo[a]..=r.hi[a]));
        organ.tissues.has(scene.tissue_at(p)).then_some(p)
    })
}

/// The abdomen's scene with lesions added.
pub(crate) fn with_lesions(abdomen: Abdomen, rng: &mut Rng) -> Scene {
    let Abdomen {
        mut scene,
        liver,
        kidneys,
        pancreas,
    } = abdomen;
    for _ in 0..lesion_count(rng) {
        let pick: f64 = rng.random_range(0.0..1.0);
        let (organ, max_radius) = if pick < 0.6 {
            (&liver, 35.0)
        } else if pick < 0.85 {
            (&kidneys[usize::from(rng.random_bool(0.5))], 25.0)
        } else {
            (&pancreas, 15.0)
        };
        let Some(centre) = point_in(&scene, organ, rng) else {
            continue;
        };
        let radius = rng.random_range(MIN_RADIUS.ln()..f64::ln(max_radius)).exp();
        let semi: P3 = std::array::from_fn(|_| radius * rng.random_range(0.8..1.2));
        let angles = random_direction(rng).map(|v| v * std::f64::consts::PI);
        let lesion = Blob::new(centre, semi, angles, 0.25, rng);
        let contrast = lesion_contrast(rng);
        let id = scene.add_tissue(organ.class, LESION, contrast);
        let necrotic = radius > 12.0 && rng.random_bool(0.5);
        let core = lesion.scaled(centre, 0.5);
        scene.paint(lesion, id, organ.tissues);
        if necrotic {
            let darker = contrast - rng.random_range(0.2..0.4);
            let core_id = scene.add_tissue(organ.class, LESION, darker);
            scene.paint(core, core_id, super::scene::Mask::of(&[id]));
        }
    }
    scene
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_data::rng::stream;

    #[test]
    fn lesion_counts_follow_the_documented_distribution() {
        // P(0) = 0.15; given at least one, 1 + a geometric number with p = 0.5 capped at
        // 8: P(1 | >= 1) = 0.5, mean about 2.
        let mut rng = stream(1, &[]);
        let draws: Vec<usize> = (0..20_000).map(|_| lesion_count(&mut rng)).collect();
        let share = |f: &dyn Fn(usize) -> bool| {
            draws.iter().filter(|&&n| f(n)).count() as f64 / draws.len() as f64
        };
        assert!((share(&|n| n == 0) - 0.15).abs() < 0.01);
        assert!((share(&|n| n == 1) - 0.85 * 0.5).abs() < 0.015);
        assert!((share(&|n| n >= 3) - 0.85 * 0.25).abs() < 0.015);
        assert_eq!(draws.iter().max(), Some(&MAX_LESIONS));
    }

    #[test]
    fn lesion_contrasts_are_hypo_hyper_or_subtle_in_the_documented_shares() {
        let mut rng = stream(2, &[]);
        let draws: Vec<f32> = (0..20_000).map(|_| lesion_contrast(&mut rng)).collect();
        let share = |lo: f32, hi: f32| {
            draws.iter().filter(|&&c| lo <= c && c < hi).count() as f64 / draws.len() as f64
        };
        assert!((share(-0.6, -0.15) - 0.55).abs() < 0.015);
        assert!((share(0.15, 0.5) - 0.25).abs() < 0.015);
        assert!((share(-0.12, -0.05) + share(0.05, 0.12) - 0.2).abs() < 0.015);
        assert!((share(-0.6, 0.5) - 1.0).abs() < 1e-12);
    }
}
