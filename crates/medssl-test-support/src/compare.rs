//! Comparison helpers for the parity tests of the crates that run networks: a largest
//! difference that a NaN or an infinity cannot hide in; and the public-checkpoint import
//! cases of `medssl-model`'s test data.

/// The floats the comparisons take: `f32` (network outputs) and `f64` (references
/// computed in double precision).
pub trait Float: Copy + std::fmt::Display {
    const ZERO: Self;
    fn is_finite(self) -> bool;
    fn abs_diff(self, other: Self) -> Self;
    fn larger(self, other: Self) -> Self;
}

macro_rules! float {
    ($t:ty) => {
        impl Float for $t {
            const ZERO: $t = 0.0;
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn abs_diff(self, other: $t) -> $t {
                (self - other).abs()
            }
            fn larger(self, other: $t) -> $t {
                <$t>::max(self, other)
            }
        }
    };
}
float!(f32);
float!(f64);

/// The largest `|got[i] - want[i]|`, for the comparison named `what`.
///
/// # Panics
/// When the lengths differ, or when either side holds a NaN or an infinity: every value
/// of both sides is checked before any difference is taken, because `f32::max` drops a
/// NaN and an all-NaN output would otherwise pass any tolerance. The message names
/// `what`, the side and the index of the first non-finite value.
pub fn max_abs_diff<T: Float>(what: &str, got: &[T], want: &[T]) -> T {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, expected {}",
        got.len(),
        want.len()
    );
    assert_finite(what, "got", got);
    assert_finite(what, "want", want);
    got.iter()
        .zip(want)
        .map(|(a, b)| a.abs_diff(*b))
        .fold(T::ZERO, T::larger)
}

/// Panics, naming `what`, `side` and the index, at the first NaN or infinity of `values`.
fn assert_finite<T: Float>(what: &str, side: &str, values: &[T]) {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        panic!(
            "{what}: {side}[{i}] is {}, not a finite value (of {})",
            values[i],
            values.len()
        );
    }
}

/// The public-checkpoint import cases (`crates/medssl-model/tests/data/import/cases.json`,
/// written with MONAI by `benches/parity/make_import_cases.py`): each names its
/// gzip-compressed checkpoint, its layout and architecture, and the tensors MONAI's
/// loader gives the network.
pub fn import_cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(import_data_dir().join("cases.json"))
        .expect("crates/medssl-model/tests/data/import/cases.json");
    let cases: serde_json::Value = serde_json::from_str(&text).expect("cases.json is JSON");
    let list = cases["cases"].as_array().expect("a `cases` list").clone();
    assert!(!list.is_empty(), "cases.json lists no case");
    list
}

/// The checkpoint of an import case, decompressed into `dir`.
pub fn import_case_file(case: &serde_json::Value, dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Read;
    let name = case["file"].as_str().expect("a `file` entry");
    let mut bytes = Vec::new();
    let file = std::fs::File::open(import_data_dir().join(name)).expect("the case's file");
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .expect("a gzip file");
    let path = dir.join(name.trim_end_matches(".gz"));
    std::fs::write(&path, bytes).expect("a writable directory");
    path
}

/// Found from the repository root at run time, as the fixtures are (see
/// [`crate::fixtures_dir`]), so tests of any crate read the same files.
fn import_data_dir() -> std::path::PathBuf {
    crate::fixtures::repository_root().join("crates/medssl-model/tests/data/import")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_and_close_values_give_their_largest_difference() {
        assert_eq!(max_abs_diff("t", &[1.0, -2.0], &[1.0, -2.0]), 0.0);
        assert_eq!(max_abs_diff("t", &[1.0, -2.0], &[1.5, -2.25]), 0.5);
    }

    #[test]
    #[should_panic(expected = "case: got[1] is NaN")]
    fn a_nan_in_the_output_fails() {
        max_abs_diff("case", &[0.0, f32::NAN, 0.0], &[0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "case: got[0] is NaN")]
    fn an_all_nan_output_fails() {
        max_abs_diff("case", &[f32::NAN; 4], &[1.0; 4]);
    }

    #[test]
    #[should_panic(expected = "case: want[2] is inf")]
    fn an_infinity_in_the_reference_fails() {
        max_abs_diff("case", &[0.0; 3], &[0.0, 0.0, f32::INFINITY]);
    }

    #[test]
    #[should_panic(expected = "case: got[0] is -inf")]
    fn a_negative_infinity_fails() {
        max_abs_diff("case", &[f32::NEG_INFINITY], &[0.0]);
    }

    #[test]
    #[should_panic(expected = "case: 2 values, expected 3")]
    fn different_lengths_fail() {
        max_abs_diff("case", &[0.0; 2], &[0.0; 3]);
    }
}
