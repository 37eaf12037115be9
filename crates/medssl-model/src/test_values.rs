//! Seeded test values shared by the kernel tests.

/// `n` values uniform in `[-scale/2, scale/2)` from a 64-bit LCG seeded with `seed`.
pub fn uniform(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            scale * (((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5)
        })
        .collect()
}
