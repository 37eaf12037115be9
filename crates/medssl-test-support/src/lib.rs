//! Helpers shared by the tests of the medssl crates, kept out of the libraries so that
//! the `medssl` binary carries none of them: every crate names this one under
//! `[dev-dependencies]` only.
//!
//! [`fixtures_dir`] and its neighbours find the reference fixtures and read the raw
//! tensor bytes and DICOM copies made from them; [`max_abs_diff`] is the comparison of
//! the parity tests of the crates that run networks, and [`import_cases`] lists the
//! public checkpoints their import tests read; with the `wgpu` feature, [`wgpu_device`]
//! is the device the GPU code path is tested on.

mod compare;
#[cfg(feature = "wgpu")]
mod devices;
mod fixtures;

pub use compare::{import_case_file, import_cases, max_abs_diff};
#[cfg(feature = "wgpu")]
pub use devices::{REQUIRE_WGPU, wgpu_device};
pub use fixtures::{
    fixtures_dir, geometry_less_copies, json_f64s, le_f32, le_f64, le_i64, test_crate_dir,
};
