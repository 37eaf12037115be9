//! The benchmark study: which SSL method gives the best segmentation after fine-tuning.
//!
//! A study is a TOML file ([`definition`]): the methods (the nine SSL methods, `scratch`
//! and `import:<file>` rows for external weights), the unlabelled pretraining
//! collection, the labelled tasks, the label budgets and the seeds. [`plan`] turns it
//! into jobs (one pretraining per SSL method, one fine-tune and test evaluation per
//! method × task × budget × seed, one CKA feature-reuse job per method × task × seed)
//! with their dependencies, each in its own directory
//! of the study's output, so that a job's state is read from disk: a job is done
//! when its final file exists (written last, atomically).

pub mod analysis;
pub mod cost;
pub mod definition;
pub mod error;
pub mod feature_reuse;
pub mod figures;
pub mod layout;
pub mod plan;
pub mod probes;
pub mod report;
pub mod report_figures;
pub mod results;
pub mod runner;
pub mod slurm;
pub mod state;
pub mod stats;
pub mod templates;

pub use definition::StudyDefinition;
pub use error::{BenchError, Result};
pub use layout::StudyLayout;
pub use plan::{Job, JobKind, Plan};
