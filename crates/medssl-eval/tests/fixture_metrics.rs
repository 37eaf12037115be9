//! Every case of `$MEDSSL_FIXTURES/metrics/cases.json` (MONAI 1.6.1's Dice, HD95, HD,
//! ASD and NSD on one-hot maps, `include_background=False`) is reproduced for every
//! foreground class: finite values to 1e-5 relative (1e-6 absolute near 0), and the
//! same `nan`/`inf` pattern, including the fixture's table of empty-mask behaviours.
//! The fixture's float64 re-implementation of the same rules (`independent_f64_results`)
//! is matched to 1e-9 relative: medssl computes distances, means and the HD95
//! percentile in f64 too, so only summation order separates the two (~1e-15); MONAI's
//! float32 distances and its float32-rounded percentile rank limit the first
//! comparison, not this implementation.

use std::collections::BTreeMap;

use medssl_eval::metrics::{
    ClassMetrics, Metric, MetricSettings, dice_per_class, segmentation_metrics,
};
use medssl_test_support::fixtures_dir;
use ndarray::Array3;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

fn label_map(st: &SafeTensors, name: &str, shape: [usize; 3]) -> Array3<u8> {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(view.dtype(), Dtype::U8, "{name}");
    assert_eq!(view.shape(), shape, "{name}");
    Array3::from_shape_vec(shape, view.data().to_vec()).unwrap()
}

/// A reference value: a JSON number or one of the strings "nan", "inf", "-inf".
fn reference(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("bad reference value {s:?}")),
        other => panic!("bad reference value {other}"),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(reference)
        .collect()
}

/// Deviation of `got` from `want` in units of `relative · max(|want|, 0.1)` (so 1e-5
/// relative is 1e-6 absolute near 0); ≤ 1 passes. Non-finite references must be
/// matched exactly.
fn deviation(got: f64, want: f64, relative: f64) -> f64 {
    if want.is_nan() {
        if got.is_nan() { 0.0 } else { f64::INFINITY }
    } else if want.is_infinite() {
        if got == want { 0.0 } else { f64::INFINITY }
    } else {
        (got - want).abs() / (relative * want.abs().max(0.1))
    }
}

#[test]
fn fixture_metrics_match_monai() {
    let dir = fixtures_dir().join("metrics");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("cases.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let cases = json["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let mut results: BTreeMap<String, Vec<ClassMetrics>> = BTreeMap::new();
    let mut worst_relative: BTreeMap<String, f64> = BTreeMap::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let shape: [usize; 3] = serde_json::from_value(case["shape"].clone()).unwrap();
        let pred = label_map(&st, case["pred"].as_str().unwrap(), shape);
        let gt = label_map(&st, case["gt"].as_str().unwrap(), shape);
        let settings = MetricSettings {
            num_classes: case["num_classes"].as_u64().unwrap() as usize,
            spacing_mm: serde_json::from_value(case["spacing_mm"].clone()).unwrap(),
            nsd_tolerance_mm: floats(&case["class_thresholds_mm"]),
        };
        let got = segmentation_metrics(pred.view(), gt.view(), &settings).unwrap();
        assert_eq!(got.len(), settings.num_classes - 1, "{name}");
        let dice = dice_per_class(pred.view(), gt.view(), settings.num_classes).unwrap();
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        assert!(
            dice.iter().zip(&got).all(|(&d, m)| same(d, m.dice)),
            "{name}: {dice:?}"
        );
        for metric in Metric::ALL {
            let want = floats(&case["results"][metric.name()]);
            let want_f64 = floats(&case["independent_f64_results"][metric.name()]);
            assert_eq!(want.len(), got.len(), "{name} {}", metric.name());
            assert_eq!(want_f64.len(), got.len(), "{name} {}", metric.name());
            for (class, ((m, &w), &w64)) in got.iter().zip(&want).zip(&want_f64).enumerate() {
                let (g, class, metric) = (m.get(metric), class + 1, metric.name());
                assert!(
                    deviation(g, w, 1e-5) <= 1.0,
                    "{name} class {class} {metric}: got {g}, MONAI {w}"
                );
                assert!(
                    deviation(g, w64, 1e-9) <= 1.0,
                    "{name} class {class} {metric}: got {g}, float64 {w64}"
                );
                for (key, w) in [
                    (metric.to_string(), w),
                    (format!("{metric} vs float64"), w64),
                ] {
                    if w.is_finite() {
                        let entry = worst_relative.entry(key).or_default();
                        *entry = entry.max((g - w).abs() / w.abs().max(1e-6));
                    }
                }
            }
        }
        results.insert(name.to_string(), got);
    }
    eprintln!("max relative deviation per metric: {worst_relative:#?}");

    // The fixture's summary of empty-mask behaviour, entries like "empty_pred[class 1]".
    let behaviours = json["empty_mask_behaviour"].as_object().unwrap();
    assert!(!behaviours.is_empty());
    for (situation, expected) in behaviours {
        for seen in expected["seen_in"].as_array().unwrap() {
            let seen = seen.as_str().unwrap();
            let (case, class) = seen.trim_end_matches(']').split_once("[class ").unwrap();
            let class: usize = class.parse().unwrap();
            let got = &results[case][class - 1];
            for metric in Metric::ALL {
                let want = floats(&expected[metric.name()])[0];
                let g = got.get(metric);
                assert!(
                    deviation(g, want, 1e-5) <= 1.0,
                    "{situation} ({seen}) {}: got {g}, MONAI {want}",
                    metric.name()
                );
            }
        }
    }
}
