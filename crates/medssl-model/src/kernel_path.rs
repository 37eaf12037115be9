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

/// How many operations `path` has taken in this process so far.
pub fn calls(path: KernelPath) -> u64 {
    counter(path).load(Ordering::Relaxed)
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
