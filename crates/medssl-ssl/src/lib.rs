//! Self-supervised pretext tasks.
//!
//! This crate will own the `Pretext` trait and the nine methods of the study in four
//! families: contrastive (SimCLR, MoCo v3, CPC), rotation (RotNet, SwinUNETR-SSL), masked
//! image modelling (SimMIM, SMIT) and self-distillation (DINO, iBOT).
