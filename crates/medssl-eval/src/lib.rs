//! A trained network applied to images, and the numbers that come out.
//!
//! [`Predictor`] segments an image with a network, its training preprocessing and
//! sliding-window inference, back on the image's own grid ([`predictor`]);
//! [`validate`] scores whole validation volumes during training, [`evaluate`] scores
//! the cases of a split on their original grids with the MONAI segmentation metrics
//! ([`metrics`]: Dice, HD95, ASSD, NSD), and [`feature_reuse`] compares the encoder
//! stages of two networks with centered kernel alignment ([`cka`]).
//!
//! The maths ([`sliding_window`], [`metrics`], [`cka`]) works on plain arrays with any
//! predictor; the modules that run a network take a `SwinUnetr` and a Burn device. This
//! crate knows nothing of run directories or training settings: `medssl-train` opens a
//! run, builds its [`Predictor`] and writes what comes out into the run.

pub mod cka;
pub mod error;
pub mod evaluate;
pub mod feature_reuse;
pub mod metrics;
pub mod predictor;
pub mod probe;
pub mod sliding_window;
pub mod validate;

pub use error::{EvalError, Result};
pub use predictor::Predictor;
