//! The networks, written once for every Burn device.
//!
//! This crate will own the 3-D Swin Transformer encoder and the SwinUNETR network with
//! MONAI's semantics, the SSL heads, and weight import/export under MONAI state-dict key
//! names (safetensors), so checkpoints move freely between medssl and MONAI.
