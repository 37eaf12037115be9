//! Helpers shared by the tests of the medssl crates, kept out of the libraries so that
//! the `medssl` binary carries none of them: every crate names this one under
//! `[dev-dependencies]` only.
//!
//! [`fixtures_dir`] and its neighbours find the reference fixtures and read the raw
//! tensor bytes and DICOM copies made from them; [`max_abs_diff`] is the comparison of
//! the parity tests of the crates that run networks, and [`import_cases`] lists the
//! public checkpoints their import tests read.

mod compare;
mod fixtures;

pub use compare::{import_case_file, import_cases, max_abs_diff};
pub use fixtures::{
    fixtures_dir, geometry_less_copies, json_f64s, le_f32, le_f64, le_i64, test_crate_dir,
};
