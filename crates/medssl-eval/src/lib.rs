//! Evaluation of segmentation models.
//!
//! This crate will own the segmentation metrics (Dice, HD95, ASSD, NSD with MONAI's
//! definitions), sliding-window inference, and centered kernel alignment (CKA) for
//! feature-reuse analysis.
