//! Helpers shared by the run tests: comparing the safetensors files two runs wrote.

use std::path::Path;

use medssl_io::testing::le_f32;

/// Every tensor of a safetensors file: name, shape and raw little-endian bytes.
pub fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = read(path);
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// The tensors of two safetensors files that differ in name, shape or any bit, each with
/// the largest absolute difference of its f32 values.
pub fn differing_tensors(a: &Path, b: &Path) -> Vec<(String, f32)> {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(
        a.iter().map(|t| (&t.0, &t.1)).collect::<Vec<_>>(),
        b.iter().map(|t| (&t.0, &t.1)).collect::<Vec<_>>(),
        "names or shapes differ"
    );
    a.iter()
        .zip(&b)
        .filter(|(x, y)| x.2 != y.2)
        .map(|(x, y)| {
            let largest = le_f32(&x.2)
                .iter()
                .zip(le_f32(&y.2))
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            (x.0.clone(), largest)
        })
        .collect()
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of a run's `metrics.jsonl`, without their timings (which differ between
/// runs).
pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}
