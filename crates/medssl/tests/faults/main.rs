//! Fault injection: `medssl pretrain`, `medssl finetune` and `medssl study run` are
//! killed with SIGKILL at random moments and while they write files, and resumed, over
//! and over until they finish. After every kill no file of the run is truncated or
//! half-written (each JSON, JSONL, TOML and safetensors file parses, the checkpoint's
//! files match the sizes and SHA-256 its state records) and `study status` reports what
//! is on disk; at the end the run equals one that was never interrupted (CPU training is
//! deterministic), timings aside.
//!
//! The `fault_short_*` tests (a few kills each) run with the suite; the full runs, 20
//! kills or more per command, are `cargo test --release -- --ignored fault` (or, with a
//! release binary already built, `MEDSSL_BIN=target/release/medssl cargo test
//! --workspace -- --ignored fault`, which drives that binary from the debug tests).
//!
//! Resource faults (a full disk, a read-only run directory, an input file removed
//! from an interrupted run) and numerical faults (a loss that becomes NaN, clipped
//! gradients) end in an error naming the file or step, with the last checkpoint intact
//! and resumable; damaged checkpoints and weights are detected, never loaded.

#[path = "../common/mod.rs"]
mod common;
mod integrity;
mod kills;
mod numerics;
mod resources;
mod run_files;
