//! Self-supervised pretext tasks.
//!
//! This crate owns the nine methods of the study in four families: contrastive (SimCLR,
//! MoCo v3, CPC), rotation (RotNet, SwinUNETR-SSL), masked image modelling (SimMIM, SMIT)
//! and self-distillation (DINO, iBOT). [`pretext`] is the contract between a method and
//! the training loop; [`methods`] holds the methods, one file each; [`losses`] holds
//! their objectives, written once in Burn tensors so they train on every device, each
//! equal to the authors' published code (or the library class the community uses) in
//! float32.

pub mod conv_decoder;
pub mod error;
pub mod heads;
pub mod inputs;
pub mod losses;
pub mod methods;
pub mod monitors;
pub mod pretext;
pub mod teacher;
pub mod temperature;

pub use error::{Result, SslError};
pub use pretext::{
    ClipMode, Family, Method, MethodInfo, Preset, Pretext, Recipe, StepContext, StepLoss,
};
