//! The pretraining methods, one file each, and the list `medssl methods` prints.

pub mod simmim;

pub use simmim::{SimMim, SimMimMethod, SimMimSettings};

use crate::pretext::{Method, MethodInfo};

/// Every method, in the order of the study's tables.
pub const METHODS: [MethodInfo; 1] = [SimMimMethod::INFO];

/// The method called `name`, or an error listing the known names.
pub fn find(name: &str) -> Result<MethodInfo, String> {
    METHODS
        .iter()
        .copied()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            format!(
                "unknown method `{name}`; known methods: {}",
                METHODS
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}
