//! Self-supervised pretraining: one loop for every method of `medssl_ssl`, its
//! configuration and its run directory.
//!
//! ```text
//! RUN/config.toml          every setting, the method's `[pretext]` table included
//! RUN/run.json             the collection and its size
//! RUN/metrics.jsonl        one line per optimiser step (loss and its components, lr,
//!                          weight decay, momentum, gradient norm, collapse monitors)
//! RUN/encoder.safetensors  the encoder under MONAI's `swinViT.*` names (`--init` of
//!                          `medssl finetune`, or MONAI's `load_state_dict(strict=False)`)
//! RUN/checkpoint/          the whole method state (heads, teacher, optimiser, counters)
//! RUN/result.json          written when the run is complete
//! ```
//!
//! The names come from [`crate::run_dir::RunDir`].

pub mod config;
pub mod trainer;

pub use crate::run_dir::ENCODER_FILE;
pub use config::PretrainConfig;
pub use trainer::{Event, Pretrain, PretrainInfo};
