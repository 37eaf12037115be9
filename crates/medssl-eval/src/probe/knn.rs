//! The k-NN probe, as DINO's `eval_knn.py` votes: features scaled to unit length,
//! cosine similarity to every training token, and the `k` most similar vote for their
//! class with weight `exp(similarity / T)`.

use ndarray::{Array2, ArrayView2, Axis};

use super::{ProbeError, check_tokens};

/// The k-NN probe's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knn {
    /// Neighbours that vote (DINO: 20).
    pub k: usize,
    /// The temperature of the votes' weights (DINO: 0.07).
    pub temperature: f64,
}

impl Default for Knn {
    fn default() -> Knn {
        Knn {
            k: 20,
            temperature: 0.07,
        }
    }
}

/// The rows of `features` scaled to unit length (a zero row stays zero).
fn unit_rows(features: ArrayView2<f64>) -> Array2<f64> {
    let mut out = features.to_owned();
    for mut row in out.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
    out
}

impl Knn {
    /// The class of each row of `test` by the vote of its nearest rows of `train`
    /// (labelled `labels`); ties in similarity go to the earlier training token, ties
    /// in the vote to the smaller class.
    pub fn predict(
        &self,
        train: ArrayView2<f64>,
        labels: &[usize],
        test: ArrayView2<f64>,
    ) -> Result<Vec<usize>, ProbeError> {
        check_tokens("training", train, labels.len())?;
        check_tokens("held-out", test, test.nrows())?;
        if test.ncols() != train.ncols() {
            return Err(ProbeError::Shape {
                what: "feature width",
                got: test.ncols(),
                expected: train.ncols(),
            });
        }
        let classes = labels.iter().max().map_or(0, |m| m + 1);
        let k = self.k.min(train.nrows());
        let similarity = unit_rows(test).dot(&unit_rows(train).t());
        Ok(similarity
            .axis_iter(Axis(0))
            .map(|row| {
                // Most similar first, equal similarities in training order: a total
                // order, so selecting the k first and sorting only them is exact.
                let first = |&a: &usize, &b: &usize| row[b].total_cmp(&row[a]).then(a.cmp(&b));
                let mut order: Vec<usize> = (0..row.len()).collect();
                if k < order.len() {
                    order.select_nth_unstable_by(k - 1, first);
                    order.truncate(k);
                }
                order.sort_by(first);
                let mut votes = vec![0.0; classes];
                for &j in &order {
                    votes[labels[j]] += (row[j] / self.temperature).exp();
                }
                let mut best = 0;
                for (c, &v) in votes.iter().enumerate() {
                    if v > votes[best] {
                        best = c;
                    }
                }
                best
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Two tight clusters: each test point takes its own cluster's class; with `k`
    /// covering every training token the weights decide (the nearer cluster's votes
    /// are worth `exp(Δsim / T)` times more).
    #[test]
    fn neighbours_vote_with_exponential_weights() {
        let train = array![[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.05, 1.0]];
        let labels = [0, 0, 1, 1, 1];
        let test = array![[1.0, 0.05], [0.0, 2.0]];
        let knn = Knn {
            k: 5,
            temperature: 0.07,
        };
        assert_eq!(
            knn.predict(train.view(), &labels, test.view()).unwrap(),
            [0, 1]
        );
        // With equal weights (a huge temperature) the majority of all five wins.
        let flat = Knn {
            k: 5,
            temperature: 1e9,
        };
        assert_eq!(
            flat.predict(train.view(), &labels, test.view()).unwrap(),
            [1, 1]
        );
    }
}
