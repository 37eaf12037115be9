//! Seeded construction that other threads cannot disturb and devices do not change.
//!
//! Burn draws random initial weights from one backend generator shared by the whole
//! process, and draws them lazily: a parameter's initialiser runs when its value is
//! first used, typically in the first forward pass. Two networks trained at the same
//! time on different threads (a study running runs side by side, tests in one binary)
//! would interleave their draws, so a run's initial weights would depend on what else
//! was happening. Seeding, building and initialising every parameter under one lock
//! makes a seeded network a function of its seed alone.
//!
//! Each backend has its own generator (flex's and a GPU runtime's draw different numbers
//! from one seed), so every network is drawn on the CPU and then moved to its device: a
//! seed gives the same initial weights on `cpu`, `cuda` and `wgpu`, and a run on a GPU
//! can be checked against the same run on the CPU.

use std::sync::{Mutex, PoisonError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Device, Int, Tensor};

static BACKEND_GENERATOR: Mutex<()> = Mutex::new(());

/// Seeds the CPU generator with `seed`, runs `build` on the CPU device it is given (flex,
/// autodiff when `device` is) and initialises every parameter of the module it returns,
/// while no other caller of this function can draw; then moves the module to `device`
/// (for training there, with its own autodiff graph).
pub fn build_seeded<M: Module, E>(
    device: &Device,
    seed: u64,
    build: impl FnOnce(&Device) -> Result<M, E>,
) -> Result<M, E> {
    let host = if device.is_autodiff() {
        Device::flex().autodiff()
    } else {
        Device::flex()
    };
    let module = {
        // A panic in another build leaves nothing half-done that matters here: the
        // next caller reseeds before drawing.
        let _guard = BACKEND_GENERATOR
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        host.seed(seed);
        let module = build(&host)?;
        module.visit(&mut Initialise);
        module
    };
    Ok(if *device == host {
        module
    } else {
        module.fork(device)
    })
}

/// Runs the lazy initialiser of every parameter it visits.
struct Initialise;

impl ModuleVisitor for Initialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        param.val();
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        param.val();
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        param.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use std::convert::Infallible;

    fn weights(layers: &[Linear]) -> Vec<f32> {
        layers
            .iter()
            .flat_map(|l| l.weight.val().into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    /// Each thread builds layers and then uses them, as a training run does; without
    /// the lock their lazy draws interleave.
    #[test]
    fn builds_with_the_same_seed_on_concurrent_threads_are_equal() {
        let device = Device::flex();
        let results: Vec<(u64, Vec<f32>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = [1u64, 2, 1, 2, 1, 2]
                .into_iter()
                .map(|seed| {
                    let device = device.clone();
                    scope.spawn(move || {
                        let layers = build_seeded(&device, seed, |device| {
                            Ok::<_, Infallible>(
                                (0..100)
                                    .map(|_| LinearConfig::new(8, 8).init(device))
                                    .collect::<Vec<_>>(),
                            )
                        })
                        .unwrap();
                        (seed, weights(&layers))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (seed, values) in &results {
            let first = &results.iter().find(|(s, _)| s == seed).unwrap().1;
            assert_eq!(values, first, "seed {seed}");
        }
        assert_ne!(
            results[0].1, results[1].1,
            "different seeds draw differently"
        );
    }
}
