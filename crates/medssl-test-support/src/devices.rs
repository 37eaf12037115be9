//! The GPU code path's device for tests: Burn's wgpu backend, on a real adapter or on a
//! software Vulkan driver (Mesa's lavapipe) where there is no GPU.

use std::sync::OnceLock;

use burn::tensor::Device;

/// Set (to anything) where a wgpu adapter must exist, as in CI, which installs lavapipe:
/// a device that does not initialise then fails the test instead of skipping it.
pub const REQUIRE_WGPU: &str = "MEDSSL_REQUIRE_WGPU";

/// The wgpu device, or `None` (with a note on stderr) when no adapter initialises and
/// [`REQUIRE_WGPU`] is not set. Burn's wgpu runtime initialises once per process, so
/// the first call's answer is kept for the others.
///
/// # Panics
/// When no adapter initialises and [`REQUIRE_WGPU`] is set.
pub fn wgpu_device() -> Option<Device> {
    static DEVICE: OnceLock<Result<Device, String>> = OnceLock::new();
    match DEVICE.get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string())) {
        Ok(device) => Some(device.clone()),
        Err(e) if std::env::var_os(REQUIRE_WGPU).is_some() => {
            panic!("{REQUIRE_WGPU} is set but no wgpu adapter initialises: {e}")
        }
        Err(e) => {
            eprintln!("no wgpu adapter ({e}): the wgpu comparison is skipped");
            None
        }
    }
}
