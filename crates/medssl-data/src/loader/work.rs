//! What a loader does with each case once it is read: [`CaseWork`].

use super::batch::Batch;
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::transform::Pipeline;

/// The per-case work of a loader and how a batch is stacked from its items. A
/// [`Pipeline`] turns a case into samples stacked as a segmentation [`Batch`]; a
/// pretraining view plan turns it into view sets stacked view by view. The loader's
/// order, streams, reordering and resume logic are the same for both.
pub trait CaseWork: Send + Sync + 'static {
    /// What one case yields (zero or more of them).
    type Item: Send + 'static;
    /// What a batch of items becomes.
    type Batch: Send + 'static;

    /// The items of one loaded case, drawing randomness from the case's own stream.
    fn run(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Self::Item>>;

    /// Stacks the items of one batch (never empty), or says which case does not fit.
    fn stack(&self, items: &[Self::Item]) -> Result<Self::Batch>;
}

impl CaseWork for Pipeline {
    type Item = Sample;
    type Batch = Batch;

    fn run(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        Pipeline::run(self, sample, rng)
    }

    fn stack(&self, items: &[Sample]) -> Result<Batch> {
        Batch::stack(items)
    }
}
