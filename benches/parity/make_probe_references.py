"""Writes the references that `crates/medssl-eval/tests/probe_sklearn.rs` compares the
frozen-feature probes against, into `crates/medssl-eval/tests/data/probe/cases.json`.

Each case holds training and held-out tokens (features and labels) and:
- `linear`: scikit-learn's `LogisticRegression(C, class_weight="balanced")` (lbfgs,
  solved to a gradient tolerance of 1e-12) fitted on the features standardised with the
  training tokens' mean and deviation (ddof 0, a constant feature's deviation taken as
  1): its classes, coefficients, intercepts, held-out predictions and their balanced
  accuracy. Only cases of three or more classes: for two, scikit-learn fits a single
  binomial weight vector, a different objective from the multinomial one medssl keeps
  for every class count.
- `knn`: DINO's weighted k-NN (`eval_knn.py`: unit-length features, the k most similar
  training tokens vote with weight exp(similarity / T)), written out in numpy here, and
  its held-out predictions and balanced accuracy.

Deterministic (fixed seeds). Run with a Python that has numpy and scikit-learn:
    bench-data/venv-torch/bin/python benches/parity/make_probe_references.py
"""
import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

OUT = os.path.join(
    os.path.dirname(__file__), "..", "..", "crates", "medssl-eval", "tests", "data", "probe"
)


def planted(rng, n, classes, width, signal, weights):
    """Tokens whose first two features carry the class (class means on a circle, at
    distance `signal`), the rest noise; classes drawn with `weights`."""
    labels = rng.choice(classes, size=n, p=weights)
    angles = 2 * np.pi * labels / classes
    features = rng.normal(size=(n, width))
    features[:, 0] += signal * np.cos(angles)
    features[:, 1] += signal * np.sin(angles)
    return features, labels


def knn_predict(train, labels, test, k, temperature):
    unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)
    similarity = unit(test) @ unit(train).T
    classes = labels.max() + 1
    out = []
    for row in similarity:
        # Most similar first; equal similarities in training order (a stable sort).
        order = np.argsort(-row, kind="stable")[:k]
        votes = np.zeros(classes)
        np.add.at(votes, labels[order], np.exp(row[order] / temperature))
        out.append(int(np.argmax(votes)))
    return out


def case(name, rng, n_train, n_test, classes, width, signal, weights, c, constant=False):
    x, y = planted(rng, n_train + n_test, classes, width, signal, weights)
    if constant:
        x[:, -1] = 3.0
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=100000, tol=1e-12)
    model.fit((x_train - mean) / std, y_train)
    linear = model.predict((x_test - mean) / std)
    knn = knn_predict(x_train, y_train, x_test, 20, 0.07)
    return {
        "name": name,
        "c": c,
        "train_features": x_train.tolist(),
        "train_labels": y_train.tolist(),
        "test_features": x_test.tolist(),
        "test_labels": y_test.tolist(),
        "linear": {
            "classes": model.classes_.tolist(),
            "coef": model.coef_.tolist(),
            "intercept": model.intercept_.tolist(),
            "predicted": linear.tolist(),
            "balanced_accuracy": balanced_accuracy_score(y_test, linear),
        },
        "knn": {
            "k": 20,
            "temperature": 0.07,
            "predicted": knn,
            "balanced_accuracy": balanced_accuracy_score(y_test, knn),
        },
    }


def main():
    rng = np.random.default_rng(20261207)
    cases = [
        # Separable classes, imbalanced as segmentation tokens are (mostly background).
        case("planted", rng, 300, 150, 3, 6, 3.0, [0.7, 0.2, 0.1], 1.0),
        # Labels that the features do not carry: chance-level scores.
        case("noise", rng, 300, 150, 3, 6, 0.0, [0.5, 0.3, 0.2], 1.0),
        # Overlapping classes, strong penalty, a constant feature.
        case("overlap", rng, 250, 120, 4, 5, 1.0, [0.4, 0.3, 0.2, 0.1], 0.05, True),
    ]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(
            {
                "generator": "benches/parity/make_probe_references.py",
                "numpy": np.__version__,
                "scikit-learn": sklearn.__version__,
                "cases": cases,
            },
            f,
        )
        f.write("\n")


if __name__ == "__main__":
    main()
