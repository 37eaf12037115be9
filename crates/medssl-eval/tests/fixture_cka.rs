//! Every value of `$MEDSSL_FIXTURES/cka/cka.json` is reproduced: the Kornblith et al.
//! 2019 demo (linear CKA in feature and Gram form, debiased, RBF) to 1e-12 on its
//! float64 vectors, and minibatch CKA with the unbiased HSIC (Nguyen et al. 2021) on
//! float32 batches, per batch and accumulated.

use medssl_eval::cka::{
    Estimator, MinibatchCka, center_gram, cka, gram_linear, gram_rbf, hsic1, linear_cka,
};
use medssl_test_support::fixtures_dir;
use ndarray::{Array2, Array3, ArrayD, Axis, IxDyn, concatenate};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

fn tensor<T>(st: &SafeTensors, name: &str, dtype: Dtype, decode: impl Fn(&[u8]) -> T) -> ArrayD<T> {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(view.dtype(), dtype, "{name}");
    let width = view.dtype().bitsize() / 8;
    let values: Vec<T> = view.data().chunks_exact(width).map(decode).collect();
    ArrayD::from_shape_vec(IxDyn(view.shape()), values).unwrap()
}

fn load() -> (Value, Vec<u8>) {
    let dir = fixtures_dir().join("cka");
    let json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cka.json")).unwrap()).unwrap();
    (json, std::fs::read(dir.join("cka.safetensors")).unwrap())
}

fn f64_matrix(st: &SafeTensors, name: &str) -> Array2<f64> {
    tensor(st, name, Dtype::F64, |b| {
        f64::from_le_bytes(b.try_into().unwrap())
    })
    .into_dimensionality()
    .unwrap()
}

fn f32_batches(st: &SafeTensors, name: &str) -> Array3<f32> {
    tensor(st, name, Dtype::F32, |b| {
        f32::from_le_bytes(b.try_into().unwrap())
    })
    .into_dimensionality()
    .unwrap()
}

#[test]
fn fixture_kornblith_demo_values() {
    let (json, bytes) = load();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let demo = &json["demo"];
    let x = f64_matrix(&st, demo["tensors"]["X"].as_str().unwrap());
    let y = f64_matrix(&st, demo["tensors"]["Y"].as_str().unwrap());
    let values = demo["values"].as_object().unwrap();
    assert!(!values.is_empty());
    for (key, want) in values {
        let want = want.as_f64().unwrap();
        let (estimator, rest) = match key.strip_prefix("debiased_") {
            Some(rest) => (Estimator::Debiased, rest),
            None => (Estimator::Biased, key.as_str()),
        };
        let got = match rest {
            "linear_cka_feature_form" => linear_cka(x.view(), y.view(), estimator),
            "linear_cka_gram_form" => cka(
                gram_linear(x.view()).view(),
                gram_linear(y.view()).view(),
                estimator,
            ),
            _ => {
                let threshold: f64 = rest
                    .strip_prefix("rbf_cka_threshold_")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("unknown CKA fixture value {key}"));
                let (k, l) = (
                    gram_rbf(x.view(), threshold).unwrap(),
                    gram_rbf(y.view(), threshold).unwrap(),
                );
                cka(k.view(), l.view(), estimator)
            }
        }
        .unwrap();
        assert!(
            (got - want).abs() < 1e-12,
            "{key}: got {got}, reference {want}"
        );
    }
}

#[test]
fn fixture_minibatch_cka_with_unbiased_hsic() {
    let (json, bytes) = load();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mb = &json["minibatch"];
    let x = f32_batches(&st, mb["tensors"]["X"].as_str().unwrap());
    let y = f32_batches(&st, mb["tensors"]["Y"].as_str().unwrap());
    let per_batch = |key: &str| -> Vec<f64> { serde_json::from_value(mb[key].clone()).unwrap() };
    let (want_xy, want_xx, want_yy) = (
        per_batch("hsic1_xy_per_batch"),
        per_batch("hsic1_xx_per_batch"),
        per_batch("hsic1_yy_per_batch"),
    );
    assert_eq!(want_xy.len(), x.len_of(Axis(0)));

    let mut accumulator = MinibatchCka::new();
    for (b, (xb, yb)) in x.outer_iter().zip(y.outer_iter()).enumerate() {
        accumulator.add(xb, yb).unwrap();
        let k = gram_linear(xb.mapv(f64::from).view());
        let l = gram_linear(yb.mapv(f64::from).view());
        for (name, got, want) in [
            ("xy", hsic1(k.view(), l.view()).unwrap(), want_xy[b]),
            ("xx", hsic1(k.view(), k.view()).unwrap(), want_xx[b]),
            ("yy", hsic1(l.view(), l.view()).unwrap(), want_yy[b]),
        ] {
            assert!(
                (got - want).abs() <= 1e-10 * want.abs(),
                "batch {b} HSIC1 {name}: got {got}, reference {want}"
            );
        }
        // HSIC1 is the Frobenius product of the debiased-centred Grams over n(n − 3).
        let n = k.nrows() as f64;
        let centred = |m: &Array2<f64>| center_gram(m.view(), Estimator::Debiased).unwrap();
        let product = (&centred(&k) * &centred(&l)).sum() / (n * (n - 3.0));
        assert!(
            (product - want_xy[b]).abs() <= 1e-10 * want_xy[b].abs(),
            "batch {b}: {product}"
        );
    }
    assert_eq!(accumulator.batches(), want_xy.len());
    let want = mb["minibatch_linear_cka"].as_f64().unwrap();
    let got = accumulator.finish().unwrap();
    assert!(
        (got - want).abs() < 1e-10,
        "minibatch CKA: got {got}, reference {want}"
    );

    // The same examples all at once, for comparison in the fixture.
    let all = |a: &Array3<f32>| {
        let batches: Vec<_> = a.outer_iter().collect();
        concatenate(Axis(0), &batches).unwrap().mapv(f64::from)
    };
    let (xa, ya) = (all(&x), all(&y));
    for (key, estimator) in [
        ("full_data_linear_cka_for_comparison", Estimator::Biased),
        (
            "full_data_debiased_linear_cka_for_comparison",
            Estimator::Debiased,
        ),
    ] {
        let want = mb[key].as_f64().unwrap();
        let got = linear_cka(xa.view(), ya.view(), estimator).unwrap();
        assert!(
            (got - want).abs() < 1e-12,
            "{key}: got {got}, reference {want}"
        );
    }
}
