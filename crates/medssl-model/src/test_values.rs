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

/// [`medssl_test_support::max_abs_diff`] of two tensors of the same shape (copied to
/// the host), for the kernel tests that compare with Burn's own operations.
pub fn max_abs_diff_tensors<const D: usize>(
    what: &str,
    got: burn::tensor::Tensor<D>,
    want: burn::tensor::Tensor<D>,
) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes differ");
    let host =
        |t: burn::tensor::Tensor<D>| t.into_data().try_to_vec::<f32>().expect("f32 tensor data");
    medssl_test_support::max_abs_diff(what, &host(got), &host(want))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    #[test]
    #[should_panic(expected = "tensors: got[3] is NaN")]
    fn a_nan_in_a_tensor_fails() {
        let device = Device::flex();
        let tensor =
            |v: [f32; 4]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [4]), &device);
        max_abs_diff_tensors(
            "tensors",
            tensor([0.0, 1.0, 2.0, f32::NAN]),
            tensor([0.0, 1.0, 2.0, 3.0]),
        );
    }
}
