//! The frozen-feature probes against scikit-learn and a numpy DINO k-NN, on the cases
//! of `tests/data/probe/cases.json` (written by
//! `benches/parity/make_probe_references.py`; every case it lists is checked): planted
//! features, features that carry nothing, and overlapping classes with a strong penalty
//! and a constant feature. The linear probe must find scikit-learn's coefficients and
//! intercepts (within 1e-5: both are solved to convergence, and a wrong class weight or
//! penalty moves them by more than 1e-2) and its predictions; the k-NN the same
//! predictions; both the same balanced accuracy.

use medssl_eval::probe::{Knn, LinearProbe, balanced_accuracy};
use medssl_test_support::{json_f64s, max_abs_diff, test_crate_dir};
use ndarray::Array2;
use serde_json::Value;

fn matrix(value: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = value.as_array().unwrap().iter().map(json_f64s).collect();
    let width = rows[0].len();
    Array2::from_shape_vec((rows.len(), width), rows.concat()).unwrap()
}

fn labels(value: &Value) -> Vec<usize> {
    json_f64s(value).into_iter().map(|v| v as usize).collect()
}

#[test]
fn probes_match_scikit_learn_and_dinos_knn() {
    let path = test_crate_dir().join("tests/data/probe/cases.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let train = matrix(&case["train_features"]);
        let train_labels = labels(&case["train_labels"]);
        let test = matrix(&case["test_features"]);
        let test_labels = labels(&case["test_labels"]);

        // Solved as tightly as the reference was.
        let probe = LinearProbe {
            c: case["c"].as_f64().unwrap(),
            max_iterations: 5000,
            tolerance: 1e-9,
        };
        let fitted = probe.fit(train.view(), &train_labels).unwrap();
        assert!(fitted.converged, "{name}: {} iterations", fitted.iterations);
        let linear = &case["linear"];
        assert_eq!(fitted.classes, labels(&linear["classes"]), "{name}");
        let coef = max_abs_diff(
            &format!("{name}: coefficients"),
            fitted.weights.as_slice().unwrap(),
            &matrix(&linear["coef"]).into_raw_vec_and_offset().0,
        );
        let intercept = max_abs_diff(
            &format!("{name}: intercepts"),
            fitted.intercept.as_slice().unwrap(),
            &json_f64s(&linear["intercept"]),
        );
        eprintln!(
            "{name}: {} L-BFGS iterations, coefficients within {coef:.1e}, intercepts \
             within {intercept:.1e}",
            fitted.iterations
        );
        assert!(coef < 1e-5 && intercept < 1e-5, "{name}");
        let predicted = fitted.predict(test.view()).unwrap();
        assert_eq!(predicted, labels(&linear["predicted"]), "{name}: linear");
        let accuracy = balanced_accuracy(&predicted, &test_labels);
        let want = linear["balanced_accuracy"].as_f64().unwrap();
        assert!((accuracy - want).abs() < 1e-12, "{name}: {accuracy} {want}");

        let knn_case = &case["knn"];
        let knn = Knn {
            k: knn_case["k"].as_u64().unwrap() as usize,
            temperature: knn_case["temperature"].as_f64().unwrap(),
        };
        let predicted = knn
            .predict(train.view(), &train_labels, test.view())
            .unwrap();
        assert_eq!(predicted, labels(&knn_case["predicted"]), "{name}: k-NN");
        let accuracy = balanced_accuracy(&predicted, &test_labels);
        let want = knn_case["balanced_accuracy"].as_f64().unwrap();
        assert!((accuracy - want).abs() < 1e-12, "{name}: {accuracy} {want}");
    }
}
