//! Background loading, as PyTorch's `DataLoader` with `num_workers` and
//! `prefetch_factor` does it: worker threads load and transform cases while the model
//! trains, and a bounded queue holds the batches ready for the next steps.
//!
//! Unlike a `DataLoader`, the result depends only on the seed and the epoch, not on the
//! number of workers or on timing: the epoch's order is a seeded permutation, each case
//! draws from its own stream `rng::stream(seed, &[epoch, index])`, and batches are cut
//! from the samples in that order (a reorder buffer holds cases that finish early). A
//! run interrupted mid-epoch resumes with [`Loader::epoch`]`(epoch, start_batch)` and
//! sees exactly the batches it would have seen.

mod batch;
mod epoch;
mod order;
mod source;
mod work;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use batch::Batch;
pub(crate) use batch::stack;
pub use epoch::Epoch;
pub use source::{SampleSource, file_fingerprint};
pub use work::CaseWork;

use crate::error::{DataError, Result};
use crate::transform::Pipeline;

/// The loader's settings (`[data.loader]` in a configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Visit the cases in a seeded random order that changes every epoch (training);
    /// off, they come in index order (validation).
    pub shuffle: bool,
    /// Leave out the last batch of an epoch when it is short.
    pub drop_last: bool,
    /// Threads that load and transform cases: at least 1, at most
    /// [`LoaderConfig::max_workers`] (64, or 4 per core on a machine with more than 16).
    pub num_workers: usize,
    /// Ready batches queued ahead of the consumer (0: each batch is handed over as
    /// it is made).
    pub prefetch_batches: usize,
}

impl Default for LoaderConfig {
    fn default() -> LoaderConfig {
        LoaderConfig {
            batch_size: 2,
            shuffle: true,
            drop_last: false,
            num_workers: 4,
            prefetch_batches: 2,
        }
    }
}

impl LoaderConfig {
    /// The most `num_workers` a configuration may ask for on this machine: 4 per core
    /// (`std::thread::available_parallelism`), and never less than 64, so that any
    /// setting up to 64 is valid on every machine and a configuration moves between
    /// them. More threads than that only wait for cores while each holds a case in
    /// memory; a larger number is a typo, refused before any thread starts.
    pub fn max_workers() -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.saturating_mul(4).max(64)
    }

    /// Checks the settings, naming the one that is wrong (`data.loader.*`, as in a run
    /// configuration) and its limit.
    pub fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(DataError::Config(
                "data.loader.batch_size must be at least 1".into(),
            ));
        }
        if self.num_workers == 0 {
            return Err(DataError::Config(
                "data.loader.num_workers must be at least 1 (cases are always loaded beside \
                 the training thread)"
                    .into(),
            ));
        }
        let max = LoaderConfig::max_workers();
        if self.num_workers > max {
            return Err(DataError::Config(format!(
                "data.loader.num_workers = {} is more than this machine's limit of {max} \
                 loader threads (4 per core, at least 64)",
                self.num_workers
            )));
        }
        Ok(())
    }

    /// Batches an epoch of `samples` items is cut into (the last, short one counted
    /// unless `drop_last`).
    pub fn batches(&self, samples: usize) -> usize {
        if self.drop_last {
            samples / self.batch_size
        } else {
            samples.div_ceil(self.batch_size)
        }
    }
}

/// Batches of a source run through per-case work (a transform pipeline, or a
/// pretraining view plan), epoch after epoch.
pub struct Loader<W: CaseWork = Pipeline> {
    source: Arc<dyn SampleSource>,
    work: Arc<W>,
    config: LoaderConfig,
    seed: u64,
}

impl<W: CaseWork> Loader<W> {
    /// A loader of `source` through `work` (usually the random part of a pipeline
    /// whose deterministic prefix a [`crate::cache::PreprocessCache`] serves), with the
    /// run's seed.
    pub fn new(
        source: Arc<dyn SampleSource>,
        work: W,
        config: LoaderConfig,
        seed: u64,
    ) -> Result<Loader<W>> {
        config.check()?;
        Ok(Loader {
            source,
            work: Arc::new(work),
            config,
            seed,
        })
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The source indices in the order `epoch` visits them.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let len = self.source.len();
        if self.config.shuffle {
            order::shuffled(len, self.seed, epoch)
        } else {
            (0..len).collect()
        }
    }

    /// Starts loading `epoch`, from its batch `start_batch` on (0 for a whole epoch; k
    /// to resume after k batches were consumed). Iterate the result for the batches;
    /// drop it to stop.
    pub fn epoch(&self, epoch: u64, start_batch: usize) -> Epoch<W> {
        let job = epoch::Job {
            source: Arc::clone(&self.source),
            work: Arc::clone(&self.work),
            order: self.order(epoch),
            seed: self.seed,
            epoch,
        };
        let plan = epoch::Plan {
            batch_size: self.config.batch_size,
            drop_last: self.config.drop_last,
            start_batch,
            workers: self.config.num_workers,
            prefetch_batches: self.config.prefetch_batches,
        };
        Epoch::start(job, plan)
    }
}
