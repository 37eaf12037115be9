//! One epoch in flight. Worker threads claim positions of the epoch's order, load and
//! transform those cases and send the results to a collator thread, which puts them
//! back in order, cuts batches and queues them for the consumer.
//!
//! Workers may run at most `window` positions ahead of the collator, and the collator
//! blocks when the queue of ready batches is full, so memory stays bounded however slow
//! the consumer is. Dropping the [`Epoch`] stops both and joins them.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use super::batch::Batcher;
use super::source::SampleSource;
use super::work::CaseWork;
use crate::error::{DataError, Result};
use crate::rng;

/// What every thread of an epoch reads: the cases, the per-case work and the order.
pub(super) struct Job<W> {
    pub(super) source: Arc<dyn SampleSource>,
    pub(super) work: Arc<W>,
    pub(super) order: Vec<usize>,
    pub(super) seed: u64,
    pub(super) epoch: u64,
}

/// How the collator cuts and queues batches.
pub(super) struct Plan {
    pub(super) batch_size: usize,
    pub(super) drop_last: bool,
    pub(super) start_batch: usize,
    pub(super) workers: usize,
    pub(super) prefetch_batches: usize,
}

/// The outcome of one case: its items, or the error naming it.
type CaseOutcome<W> = Result<Vec<<W as CaseWork>::Item>>;

impl<W: CaseWork> Job<W> {
    /// Loads and transforms the case at `position` of the order with the case's own
    /// random stream, `rng::stream(seed, &[epoch, index])`, so its samples do not depend
    /// on which thread ran it or when. Errors and panics come back naming the case.
    fn run_case(&self, position: usize) -> CaseOutcome<W> {
        let index = self.order[position];
        let run = || {
            let sample = self.source.load(index)?;
            let mut rng = rng::stream(self.seed, &[self.epoch, index as u64]);
            self.work.run(sample, &mut rng)
        };
        match panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(samples)) => Ok(samples),
            Ok(Err(e @ DataError::Case { .. })) => Err(e),
            Ok(Err(e)) => Err(DataError::case(self.source.id(index), e.to_string())),
            Err(payload) => Err(DataError::case(
                self.source.id(index),
                format!("panicked: {}", panic_message(payload.as_ref())),
            )),
        }
    }
}

/// The batches of one epoch, in order. Each item is a batch or the error of one case
/// (or of a batch whose samples differ in shape); the stream goes on after an error,
/// so the consumer decides whether to stop. Dropping it stops the threads promptly
/// (each finishes at most the case it is on) and joins them.
pub struct Epoch<W: CaseWork> {
    batches: Option<Receiver<Result<W::Batch>>>,
    window: Arc<Window>,
    threads: Vec<JoinHandle<()>>,
}

impl<W: CaseWork> Epoch<W> {
    pub(super) fn start(job: Job<W>, plan: Plan) -> Epoch<W> {
        let job = Arc::new(job);
        let window = Arc::new(Window::default());
        let (results_tx, results_rx) = mpsc::channel();
        let (batches_tx, batches_rx) = mpsc::sync_channel(plan.prefetch_batches);
        let mut epoch = Epoch {
            batches: Some(batches_rx),
            window: Arc::clone(&window),
            threads: Vec::with_capacity(plan.workers + 1),
        };
        for w in 0..plan.workers {
            let (job, window, results) =
                (Arc::clone(&job), Arc::clone(&window), results_tx.clone());
            epoch
                .threads
                .push(spawn(format!("medssl-loader-{w}"), move || {
                    work(&job, &window, &results)
                }));
        }
        drop(results_tx);
        epoch.threads.push(spawn("medssl-collator".into(), move || {
            let collated = panic::catch_unwind(AssertUnwindSafe(|| {
                collate(&job, &window, &results_rx, &batches_tx, &plan)
            }));
            if let Err(payload) = collated {
                let message = panic_message(payload.as_ref());
                let _ = batches_tx.send(Err(DataError::Config(format!(
                    "the data loader stopped: {message}"
                ))));
            }
        }));
        epoch
    }
}

impl<W: CaseWork> Iterator for Epoch<W> {
    type Item = Result<W::Batch>;

    fn next(&mut self) -> Option<Result<W::Batch>> {
        self.batches.as_ref()?.recv().ok()
    }
}

impl<W: CaseWork> Drop for Epoch<W> {
    fn drop(&mut self) {
        self.window.stop();
        // Unblocks the collator if it waits to queue a batch.
        self.batches = None;
        for thread in self.threads.drain(..) {
            // Panics are caught inside the threads; nothing is left to report.
            let _ = thread.join();
        }
    }
}

/// Starts a named thread (names show in panics, debuggers and profilers). Like
/// `std::thread::spawn`, panics when the operating system cannot start a thread.
fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new()
        .name(name)
        .spawn(body)
        .unwrap_or_else(|e| panic!("cannot start a data loader thread: {e}"))
}

/// A worker: claims positions until the epoch is done or stopped.
fn work<W: CaseWork>(job: &Job<W>, window: &Window, results: &Sender<(usize, CaseOutcome<W>)>) {
    while let Some(position) = window.claim(job.order.len()) {
        if results.send((position, job.run_case(position))).is_err() {
            return;
        }
    }
}

/// The collator: takes case outcomes in order of position, cuts batches, queues them.
fn collate<W: CaseWork>(
    job: &Job<W>,
    window: &Window,
    results: &Receiver<(usize, CaseOutcome<W>)>,
    batches: &SyncSender<Result<W::Batch>>,
    plan: &Plan,
) {
    let end = job.order.len();
    let mut reorder: HashMap<usize, CaseOutcome<W>> = HashMap::new();
    let resume = if plan.start_batch == 0 {
        Resume {
            first: 0,
            skip: 0,
            next_claim: 0,
        }
    } else {
        Resume::find(
            job,
            plan.start_batch.saturating_mul(plan.batch_size),
            &mut reorder,
        )
    };
    let lead = 2 * plan.workers;
    window.open(resume.next_claim, resume.first + lead);

    let mut batcher = Batcher::new(plan.batch_size, plan.drop_last, resume.skip);
    for position in resume.first..end {
        let outcome = match reorder.remove(&position) {
            Some(outcome) => outcome,
            None => loop {
                match results.recv() {
                    Ok((p, outcome)) if p == position => break outcome,
                    Ok((p, outcome)) => {
                        reorder.insert(p, outcome);
                    }
                    // Every worker has stopped: the epoch was dropped.
                    Err(_) => return,
                }
            },
        };
        window.advance();
        let ready = match outcome {
            Ok(items) => batcher.push(items, |items| job.work.stack(items)),
            Err(e) => vec![Err(e)],
        };
        for item in ready {
            if batches.send(item).is_err() {
                return;
            }
        }
    }
    if let Some(last) = batcher.finish(|items| job.work.stack(items)) {
        let _ = batches.send(last);
    }
}

/// Where a resumed epoch picks up.
struct Resume {
    /// First position whose samples are delivered.
    first: usize,
    /// Samples of that case already delivered before the interruption.
    skip: usize,
    /// First position the workers still have to run.
    next_claim: usize,
}

impl Resume {
    /// Skips `skip` samples of the epoch's stream without running the cases before the
    /// resume point: the number of samples per case is learnt from the first case that
    /// gives any (its result is kept when it is the resume point), and taken to hold
    /// for every case before the resume point, as it does for pipelines whose random
    /// crops have a fixed `num_samples`. A case that failed before the interruption
    /// shifted the batches after it, so a resumed epoch then starts a few samples off.
    fn find<W: CaseWork>(
        job: &Job<W>,
        skip: usize,
        reorder: &mut HashMap<usize, CaseOutcome<W>>,
    ) -> Resume {
        let end = job.order.len();
        for probe in 0..end {
            let outcome = job.run_case(probe);
            let per_case = match &outcome {
                Ok(samples) if !samples.is_empty() => samples.len(),
                _ => continue,
            };
            let first = probe.saturating_add(skip / per_case).min(end);
            if first == probe {
                reorder.insert(probe, outcome);
            }
            return Resume {
                first,
                skip: skip % per_case,
                next_claim: first.max(probe + 1),
            };
        }
        Resume {
            first: end,
            skip: 0,
            next_claim: end,
        }
    }
}

/// The positions workers may claim: below `limit`, which the collator moves forward as
/// it consumes outcomes.
#[derive(Default)]
struct Window {
    claims: Mutex<Claims>,
    changed: Condvar,
}

#[derive(Default)]
struct Claims {
    next: usize,
    limit: usize,
    stopped: bool,
}

impl Window {
    fn lock(&self) -> MutexGuard<'_, Claims> {
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next position to run, waiting while the window is full; `None` once all
    /// `end` positions are claimed or the epoch is stopped.
    fn claim(&self, end: usize) -> Option<usize> {
        let mut claims = self.lock();
        loop {
            if claims.stopped || claims.next >= end {
                return None;
            }
            if claims.next < claims.limit {
                claims.next += 1;
                return Some(claims.next - 1);
            }
            claims = self
                .changed
                .wait(claims)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Lets workers start at `next` and claim below `limit`.
    fn open(&self, next: usize, limit: usize) {
        let mut claims = self.lock();
        claims.next = next;
        claims.limit = limit;
        self.changed.notify_all();
    }

    /// One more position may be claimed.
    fn advance(&self) {
        self.lock().limit += 1;
        self.changed.notify_one();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
