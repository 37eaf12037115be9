//! Seeded train/validation/test splits, k folds, and nested few-shot subsets.
//!
//! A split depends only on the seed, the method and the set of case ids (not on their
//! order in dataset.json, nor on the platform: permutations are Fisher-Yates shuffles
//! drawn from [`rng::stream`]). Three rules make results comparable across a study:
//!
//! - the test part depends only on the seed and the test fraction, so a holdout split
//!   and every fold of a k-fold split with the same seed evaluate on the same cases;
//! - few-shot subsets are prefixes of one seeded permutation of the training part, so
//!   for one seed the 5-shot set lies inside the 10-shot set, and so on;
//! - a subset only ever shrinks the training part: validation and test stay as they are.
//!
//! A [`Split`] is saved as JSON in the run directory so the exact cases can be re-read.

use std::path::Path;

use medssl_io::atomic::write_atomically;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::rng;

/// The first counter of every split stream, keeping them apart from the streams that
/// transforms draw from the same run seed.
const SPLIT_DOMAIN: u64 = 0x7370_6c69_7473; // "splits"
/// Second counters: the test draw, the validation/fold draw, the few-shot draw.
const TEST_STREAM: u64 = 0;
const PARTS_STREAM: u64 = 1;
const FEW_SHOT_STREAM: u64 = 2;

/// How the labelled cases are divided. Fractions are of all cases, rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SplitScheme {
    /// `test` of the cases for testing, `validation` for validation, the rest trains.
    Holdout { validation: f64, test: f64 },
    /// Cross-validation: after `test` of the cases is held out, the rest is cut into
    /// `folds` parts whose sizes differ by at most one (the first ones larger, as
    /// scikit-learn's `KFold`); part `fold` (from 0) validates and the others train.
    KFold {
        fold: usize,
        folds: usize,
        test: f64,
    },
}

/// The size of a few-shot training subset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Budget {
    /// This many cases.
    Shots(usize),
    /// This fraction of the training part, in (0, 1], rounded up, at least one case.
    Fraction(f64),
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Shots(n) => write!(f, "{n} shots"),
            Budget::Fraction(x) => write!(f, "fraction {x}"),
        }
    }
}

/// The case ids of each part, and how they were drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    pub seed: u64,
    pub method: SplitScheme,
    /// Set when `train` is a few-shot subset of the method's training part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot: Option<Budget>,
    /// Sorted case ids of each part.
    pub train: Vec<String>,
    pub validation: Vec<String>,
    pub test: Vec<String>,
}

impl Split {
    /// Divides `ids` (unique case ids, any order) by `method` with `seed`.
    pub fn new(ids: &[String], seed: u64, method: SplitScheme) -> Result<Split> {
        let mut pool = ids.to_vec();
        pool.sort();
        if let Some(twice) = pool.windows(2).find(|w| w[0] == w[1]) {
            return Err(DataError::Config(format!(
                "split: case id {} appears more than once",
                twice[0]
            )));
        }
        let n = pool.len();
        let test_fraction = match method {
            SplitScheme::Holdout { test, .. } | SplitScheme::KFold { test, .. } => test,
        };
        check_fraction("test", test_fraction)?;
        let mut order = permuted(pool, seed, TEST_STREAM);
        let rest = order.split_off(rounded_up(test_fraction, n));
        let test = sorted(order);
        let mut rest = permuted(sorted(rest), seed, PARTS_STREAM);

        let validation = match method {
            SplitScheme::Holdout { validation, test } => {
                check_fraction("validation", validation)?;
                let n_val = rounded_up(validation, n);
                if n_val >= rest.len() {
                    return Err(DataError::Config(format!(
                        "split: with {n} cases, validation fraction {validation} and test \
                         fraction {test} leave no training cases"
                    )));
                }
                let train = rest.split_off(n_val);
                std::mem::replace(&mut rest, train)
            }
            SplitScheme::KFold { fold, folds, .. } => {
                if folds < 2 || fold >= folds {
                    return Err(DataError::Config(format!(
                        "split: fold {fold} of {folds} folds: need at least 2 folds and a fold \
                         index from 0 to folds - 1"
                    )));
                }
                let m = rest.len();
                if m < folds {
                    return Err(DataError::Config(format!(
                        "split: {m} cases left after the test part cannot make {folds} folds"
                    )));
                }
                let start = fold * (m / folds) + fold.min(m % folds);
                let len = m / folds + usize::from(fold < m % folds);
                rest.splice(start..start + len, []).collect()
            }
        };
        Ok(Split {
            seed,
            method,
            few_shot: None,
            train: sorted(rest),
            validation: sorted(validation),
            test,
        })
    }

    /// The same split with `train` cut to a few-shot subset: the first cases of one
    /// seeded permutation of the training part, so subsets of one split nest. Errors
    /// when more cases are asked for than the training part has, or the fraction is not
    /// in (0, 1].
    pub fn few_shot(&self, budget: Budget) -> Result<Split> {
        if let Some(existing) = self.few_shot {
            return Err(DataError::Config(format!(
                "split: the training part is already a few-shot subset ({existing}); take \
                 subsets of the full split so that they nest"
            )));
        }
        let available = self.train.len();
        let wanted = match budget {
            Budget::Shots(0) => {
                return Err(DataError::Config(
                    "few-shot: shots must be at least 1".into(),
                ));
            }
            Budget::Shots(shots) => shots,
            Budget::Fraction(f) => {
                if !(f > 0.0 && f <= 1.0) {
                    return Err(DataError::Config(format!(
                        "few-shot: fraction must be in (0, 1], got {f}"
                    )));
                }
                rounded_up(f, available).max(1)
            }
        };
        if wanted > available {
            return Err(DataError::Config(format!(
                "few-shot: {wanted} training cases requested but only {available} are \
                 available"
            )));
        }
        let mut order = permuted(self.train.clone(), self.seed, FEW_SHOT_STREAM);
        order.truncate(wanted);
        Ok(Split {
            few_shot: Some(budget),
            train: sorted(order),
            ..self.clone()
        })
    }

    /// Writes the split as JSON, atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| DataError::file(path, format!("cannot encode the split: {e}")))?;
        text.push('\n');
        write_atomically(path, text.as_bytes()).map_err(|e| DataError::os(path, e))
    }

    /// Reads a split written by [`Split::save`], checking that no case is in two parts.
    pub fn load(path: &Path) -> Result<Split> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::os(path, e))?;
        let split: Split = serde_json::from_str(&text)
            .map_err(|e| DataError::file(path, format!("invalid split file: {e}")))?;
        let mut all: Vec<(&str, &str)> = [
            ("train", &split.train),
            ("validation", &split.validation),
            ("test", &split.test),
        ]
        .iter()
        .flat_map(|(part, ids)| ids.iter().map(move |id| (id.as_str(), *part)))
        .collect();
        all.sort();
        if let Some(w) = all.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(DataError::file(
                path,
                format!("case {} is listed in {} and {}", w[0].0, w[0].1, w[1].1),
            ));
        }
        Ok(split)
    }
}

/// Fails unless `fraction` is in [0, 1).
fn check_fraction(what: &str, fraction: f64) -> Result<()> {
    if (0.0..1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(DataError::Config(format!(
            "split: {what} fraction must be in [0, 1), got {fraction}"
        )))
    }
}

/// `ceil(fraction * n)`, forgiving the float error that makes 0.7 * 10 = 7.000000000000001.
fn rounded_up(fraction: f64, n: usize) -> usize {
    (fraction * n as f64 - 1e-9).ceil().max(0.0) as usize
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// A Fisher-Yates shuffle of `ids` drawn from the split stream `which` of `seed`.
fn permuted(mut ids: Vec<String>, seed: u64, which: u64) -> Vec<String> {
    let mut rng = rng::stream(seed, &[SPLIT_DOMAIN, which]);
    for i in (1..ids.len()).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        ids.swap(i, j);
    }
    ids
}
