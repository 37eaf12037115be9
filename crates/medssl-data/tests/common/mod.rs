//! Helpers shared by the tests that compare medssl's output with reference values.

use ndarray::{ArrayView, Dimension};

/// The largest `|got - want|` over two arrays of one shape, and the index where it is
/// (the first such index; all zeros for empty arrays), for the comparison named `what`.
///
/// # Panics
/// When the shapes differ, or when either side holds a NaN or an infinity: every value
/// of both sides is checked before any difference is taken, because `f64::max` drops a
/// NaN and an all-NaN output would otherwise pass any tolerance. The message names
/// `what`, the side and the index of the first non-finite value.
pub fn max_abs_diff<A, B, D>(
    what: &str,
    got: ArrayView<'_, A, D>,
    want: ArrayView<'_, B, D>,
) -> (f64, D::Pattern)
where
    A: Copy + Into<f64>,
    B: Copy + Into<f64>,
    D: Dimension,
{
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    assert_finite(what, "got", &got);
    assert_finite(what, "want", &want);
    let mut worst = (0.0, D::zeros(got.ndim()).into_pattern());
    for ((at, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let diff = (g.into() - w.into()).abs();
        if diff > worst.0 {
            worst = (diff, at);
        }
    }
    worst
}

fn assert_finite<T: Copy + Into<f64>, D: Dimension>(
    what: &str,
    side: &str,
    values: &ArrayView<'_, T, D>,
) {
    if let Some((at, &v)) = values
        .indexed_iter()
        .find(|(_, v)| !(**v).into().is_finite())
    {
        panic!(
            "{what}: {side} at {at:?} is {}, not a finite value",
            v.into()
        );
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayView1, array};

    use super::max_abs_diff;

    #[test]
    fn the_largest_difference_and_its_index() {
        let got = array![[1.0f32, 2.0], [3.0, 4.0]];
        let want = array![[1.0f64, 2.5], [3.0, 3.0]];
        assert_eq!(max_abs_diff("t", got.view(), want.view()), (1.0, (1, 1)));
    }

    #[test]
    #[should_panic(expected = "t: got at (0, 1) is NaN, not a finite value")]
    fn a_nan_in_the_output_fails() {
        let got = array![[1.0f32, f32::NAN], [3.0, 4.0]];
        max_abs_diff("t", got.view(), got.mapv(f64::from).view());
    }

    #[test]
    #[should_panic(expected = "t: got at 0 is NaN")]
    fn an_all_nan_output_fails() {
        let got = [f32::NAN; 3];
        max_abs_diff("t", ArrayView1::from(&got), ArrayView1::from(&[0.0f64; 3]));
    }

    #[test]
    #[should_panic(expected = "t: want at 2 is -inf, not a finite value")]
    fn an_infinity_in_the_reference_fails() {
        let want = [0.0f64, 1.0, f64::NEG_INFINITY];
        max_abs_diff("t", ArrayView1::from(&[0.0f32; 3]), ArrayView1::from(&want));
    }
}
