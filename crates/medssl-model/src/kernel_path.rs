//! Which implementation took the operations that have two: the decoder's "same"
//! convolution and the attention softmax run our CPU kernels on flex with `f32`, and
//! Burn's operations everywhere else (GPUs, other element types).
//!
//! Both paths compute the same function, so a test cannot tell them apart by their
//! output; it reads these counters to check that a device took the path it should.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::backend::DType;
use burn::tensor::Device;

/// One of the two implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// medssl's CPU kernels, through a flex backend extension.
    Ours,
    /// Burn's own operations, on any device.
    Burn,
}

static OURS: AtomicU64 = AtomicU64::new(0);
static BURN: AtomicU64 = AtomicU64::new(0);

fn counter(path: KernelPath) -> &'static AtomicU64 {
    match path {
        KernelPath::Ours => &OURS,
        KernelPath::Burn => &BURN,
    }
}

/// Runs `run` and returns its output with how many operations took `path` meanwhile.
/// The counters are per process, so operations of other threads count too: a test reads
/// a count above zero as "this path was taken", not as an exact number.
pub fn taken<T>(path: KernelPath, run: impl FnOnce() -> T) -> (T, u64) {
    let before = counter(path).load(Ordering::Relaxed);
    let out = run();
    (out, counter(path).load(Ordering::Relaxed) - before)
}

/// The path an operation on `device` with operands of `dtypes` takes, counted: ours on
/// flex (with or without autodiff: device equality ignores it) when every operand is
/// `f32`, Burn's otherwise.
pub(crate) fn choose(device: &Device, dtypes: &[DType]) -> KernelPath {
    let path = if *device == Device::flex() && dtypes.iter().all(|d| *d == DType::F32) {
        KernelPath::Ours
    } else {
        KernelPath::Burn
    };
    counter(path).fetch_add(1, Ordering::Relaxed);
    path
}
