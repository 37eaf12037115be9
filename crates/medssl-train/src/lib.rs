//! Training loops for pretraining and fine-tuning.
//!
//! This crate will own the loops, AdamW, learning-rate / temperature / momentum
//! schedules, the EMA teacher, atomic checkpoints with resume, and the metrics log of a
//! run directory.
