//! Helpers shared by the run tests: comparing the safetensors files two runs wrote.

use std::path::Path;

use medssl_test_support::le_f32;
use medssl_test_support::max_abs_diff;
use safetensors::Dtype;

/// Every tensor of a safetensors file: name, dtype, shape and raw little-endian bytes.
pub fn tensors(path: &Path) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = read(path);
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let shape = view.shape().to_vec();
            (name, view.dtype(), shape, view.data().to_vec())
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// The tensors of two safetensors files that differ in any bit, each with the largest
/// absolute difference of its values (`None` for tensors that are not f32).
///
/// # Panics
/// When the files hold different names, dtypes or shapes, or when any f32 tensor of
/// either file, changed or not, holds a NaN or an infinity (naming the tensor).
pub fn differing_tensors(a: &Path, b: &Path) -> Vec<(String, Option<f32>)> {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(
        a.iter().map(|t| (&t.0, t.1, &t.2)).collect::<Vec<_>>(),
        b.iter().map(|t| (&t.0, t.1, &t.2)).collect::<Vec<_>>(),
        "names, dtypes or shapes differ"
    );
    let mut differing = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        let largest = (x.1 == Dtype::F32).then(|| max_abs_diff(&x.0, &le_f32(&x.3), &le_f32(&y.3)));
        if x.3 != y.3 {
            differing.push((x.0.clone(), largest));
        }
    }
    differing
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One f32 tensor `w` holding `values`, in a file of `dir`.
    fn file(dir: &Path, name: &str, values: &[f32]) -> std::path::PathBuf {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view =
            safetensors::tensor::TensorView::new(Dtype::F32, vec![values.len()], &bytes).unwrap();
        let path = dir.join(name);
        safetensors::serialize_to_file([("w", view)], None, &path).unwrap();
        path
    }

    #[test]
    fn changed_tensors_come_with_their_largest_difference() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(dir.path(), "a.safetensors", &[0.0, 1.0]);
        let b = file(dir.path(), "b.safetensors", &[0.0, 1.5]);
        assert_eq!(differing_tensors(&a, &a), vec![]);
        assert_eq!(differing_tensors(&a, &b), vec![("w".into(), Some(0.5))]);
    }

    /// Bit-identical files with a NaN weight are no proof of an exact resume.
    #[test]
    #[should_panic(expected = "w: got[1] is NaN")]
    fn a_nan_fails_even_in_identical_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(dir.path(), "a.safetensors", &[0.0, f32::NAN]);
        differing_tensors(&a, &a);
    }

    #[test]
    #[should_panic(expected = "w: want[0] is inf")]
    fn an_infinity_fails() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(dir.path(), "a.safetensors", &[0.0, 1.0]);
        let b = file(dir.path(), "b.safetensors", &[f32::INFINITY, 1.0]);
        differing_tensors(&a, &b);
    }
}
