//! A device failure reaches the host as an error naming it, not a panic: a buffer larger
//! than the device binds (Mesa's lavapipe binds 128 MiB) fails at the next read.
//!
//! Built with the `wgpu` feature only; `.ci/run` runs it on lavapipe with
//! `MEDSSL_REQUIRE_WGPU`.
#![cfg(feature = "wgpu")]

use burn::tensor::Tensor;
use medssl_model::arrays::read_scalar;
use medssl_test_support::wgpu_device;

#[test]
fn a_refused_allocation_is_an_error_naming_its_size() {
    let Some(device) = wgpu_device() else { return };
    let values = 60_000_000; // 240 MB of f32
    match read_scalar(Tensor::<1>::ones([values], &device).sum()) {
        // A device that binds the buffer sums it (one in 2^24 is f32's step at 6e7).
        Ok(sum) => {
            eprintln!("the device bound 240 MB and summed {sum}");
            assert!((sum - values as f64).abs() <= 8.0, "sum {sum}");
        }
        Err(error) => {
            let text = error.to_string();
            eprintln!("{text}");
            assert!(
                text.starts_with("the device failed: it could not allocate 240 MB"),
                "{text}"
            );
        }
    }
}
