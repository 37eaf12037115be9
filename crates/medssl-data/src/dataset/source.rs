//! A task's cases as a [`SampleSource`], the input of the loader and the
//! preprocessing cache.

use std::sync::Arc;

use super::{Case, Task};
use crate::error::{DataError, Result};
use crate::loader::{SampleSource, file_fingerprint};
use crate::sample::Sample;

/// The cases of a task named by `ids` (a part of a split), in that order.
#[derive(Debug, Clone)]
pub struct TaskSource {
    task: Arc<Task>,
    cases: Vec<Case>,
}

impl TaskSource {
    /// The cases `ids` of `task`; an id the task does not have is an error.
    pub fn new(task: Arc<Task>, ids: &[String]) -> Result<TaskSource> {
        let cases = ids
            .iter()
            .map(|id| {
                task.case(id)
                    .cloned()
                    .ok_or_else(|| DataError::case(id, format!("not a case of task {}", task.name)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TaskSource { task, cases })
    }
}

impl SampleSource for TaskSource {
    fn len(&self) -> usize {
        self.cases.len()
    }

    fn id(&self, index: usize) -> String {
        self.cases[index].id.clone()
    }

    fn fingerprint(&self, index: usize) -> Result<String> {
        let case = &self.cases[index];
        let parts = case
            .images
            .iter()
            .chain(&case.label)
            .map(|path| file_fingerprint(path))
            .collect::<Result<Vec<_>>>()?;
        Ok(parts.join(";"))
    }

    fn load(&self, index: usize) -> Result<Sample> {
        self.task.load_case(&self.cases[index])
    }
}
