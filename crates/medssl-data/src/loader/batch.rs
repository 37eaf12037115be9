//! Batches: samples stacked along a new leading axis, and the cutting of an epoch's
//! in-order sample stream into them.

use ndarray::{Array, Array5, ArrayView, Axis, Dimension};

use crate::error::{DataError, Result};
use crate::sample::Sample;

/// Samples stacked as a model step consumes them: plain arrays, no framework types.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Images, `[B, C, D, H, W]` (D, H, W are the volumes' I, J, K).
    pub image: Array5<f32>,
    /// Label maps, `[B, 1, D, H, W]`, when the samples are labelled.
    pub label: Option<Array5<f32>>,
    /// The case id of each sample, in batch order.
    pub ids: Vec<String>,
}

impl Batch {
    /// Stacks samples that share one image shape and are all labelled or all unlabelled;
    /// otherwise the error names the two cases that differ.
    pub fn stack(samples: &[Sample]) -> Result<Batch> {
        let Some(first) = samples.first() else {
            return Err(DataError::Config(
                "a batch needs at least one sample".into(),
            ));
        };
        for sample in &samples[1..] {
            check_compatible(first, sample)?;
        }
        let image = stack(samples.iter().map(|s| s.image.data().view()))?;
        let label = match first.label {
            Some(_) => Some(stack(
                samples
                    .iter()
                    .filter_map(|s| s.label.as_ref())
                    .map(|l| l.data().view()),
            )?),
            None => None,
        };
        Ok(Batch {
            image,
            label,
            ids: samples.iter().map(|s| s.id.clone()).collect(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch holds no samples (never true for a batch a loader delivers).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

fn check_compatible(first: &Sample, other: &Sample) -> Result<()> {
    let (a, b) = (first.image.data().shape(), other.image.data().shape());
    if a != b {
        return Err(other.error(format!(
            "image shape {b:?} differs from {a:?} of case {} in the same batch; samples \
             of one batch must share a shape (end the pipeline with a crop or resize)",
            first.id
        )));
    }
    match (&first.label, &other.label) {
        (Some(_), None) | (None, Some(_)) => {
            let (with, without) = if first.label.is_some() {
                (&first.id, &other.id)
            } else {
                (&other.id, &first.id)
            };
            Err(DataError::case(
                without,
                format!("has no label while case {with} in the same batch has one"),
            ))
        }
        _ => Ok(()),
    }
}

/// Copies same-shaped arrays into one with a new leading batch axis (volumes
/// `[C, I, J, K]` into `[B, C, I, J, K]`, token masks likewise).
pub(crate) fn stack<'a, A: Clone + 'a, D: Dimension + 'a>(
    arrays: impl Iterator<Item = ArrayView<'a, A, D>>,
) -> Result<Array<A, D::Larger>> {
    let views: Vec<_> = arrays.collect();
    ndarray::stack(Axis(0), &views)
        .map_err(|e| DataError::Config(format!("cannot stack a batch: {e}")))
}

/// Cuts the in-order stream of items of an epoch into batches of `size`, after
/// skipping the first `skip` items (a resumed epoch).
#[derive(Debug)]
pub(super) struct Batcher<T> {
    size: usize,
    drop_last: bool,
    skip: usize,
    pending: Vec<T>,
}

impl<T> Batcher<T> {
    pub(super) fn new(size: usize, drop_last: bool, skip: usize) -> Batcher<T> {
        Batcher {
            size,
            drop_last,
            skip,
            pending: Vec::with_capacity(size),
        }
    }

    /// Adds one case's items; returns the batches they complete, stacked by `stack`.
    pub(super) fn push<B>(
        &mut self,
        items: Vec<T>,
        stack: impl Fn(&[T]) -> Result<B>,
    ) -> Vec<Result<B>> {
        let mut ready = Vec::new();
        for item in items {
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            self.pending.push(item);
            if self.pending.len() == self.size {
                ready.push(stack(&self.pending));
                self.pending.clear();
            }
        }
        ready
    }

    /// The last, short batch, unless `drop_last` or there is none.
    pub(super) fn finish<B>(self, stack: impl Fn(&[T]) -> Result<B>) -> Option<Result<B>> {
        (!self.pending.is_empty() && !self.drop_last).then(|| stack(&self.pending))
    }
}
