//! The networks of medssl, written once for every Burn device.
//!
//! [`SwinUnetr`] reproduces MONAI's `SwinUNETR` (v1 semantics, optional `use_v2`) to
//! float32 precision, including MONAI's edge behaviour for windows larger than the
//! feature map, and loads MONAI state dicts stored as safetensors ([`weights`]).
//! The encoder alone ([`swin::SwinTransformer`]) returns its five stage outputs for SSL
//! heads, global tokens and CKA.

pub mod arrays;
pub mod config;
pub mod conv;
pub mod device_check;
mod error;
mod flex_data;
pub mod foreign;
pub mod import;
pub mod kernel_path;
pub mod layouts;
mod regularization;
pub mod sealed;
pub mod seeding;
pub mod softmax;
pub mod swin;
mod swin_unetr;
#[cfg(test)]
mod test_values;
pub mod unetr;
pub mod weights;

pub use config::{ConfigError, SwinUnetrConfig};
pub use error::ModelError;
pub use swin_unetr::{SwinUnetr, SwinUnetrOutput};
