//! Parameter types, checks and draws shared by the intensity transforms.

use std::fmt;

use rand::RngExt;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

pub use crate::checks::{check_finite, check_prob, invalid};
use crate::error::Result;
use crate::rng::Rng;

/// A parameter MONAI takes as one number or a sequence: a range (`factors`, `offsets`,
/// `gamma`) or per-channel values (`subtrahend`, `divisor`).
#[derive(Debug, Clone, PartialEq)]
pub enum Numbers {
    One(f64),
    Many(Vec<f64>),
}

impl<'de> Deserialize<'de> for Numbers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct NumbersVisitor;

        impl<'de> Visitor<'de> for NumbersVisitor {
            type Value = Numbers;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a list of numbers")
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Numbers, E> {
                Ok(Numbers::One(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Numbers, E> {
                Ok(Numbers::One(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Numbers, E> {
                Ok(Numbers::One(v as f64))
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Numbers, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<f64>()? {
                    values.push(v);
                }
                Ok(Numbers::Many(values))
            }
        }

        deserializer.deserialize_any(NumbersVisitor)
    }
}

impl Numbers {
    /// The values, one or many.
    pub fn values(&self) -> &[f64] {
        match self {
            Numbers::One(v) => std::slice::from_ref(v),
            Numbers::Many(v) => v,
        }
    }

    /// A range as MONAI reads `factors` and `offsets`: a number `x` means `(-|x|, |x|)`,
    /// a pair is taken in increasing order.
    pub fn symmetric_range(&self) -> [f64; 2] {
        match self {
            Numbers::One(x) => [-x.abs(), x.abs()],
            Numbers::Many(values) => Self::span(values),
        }
    }

    /// The smallest and largest of `values` (a pair in increasing order).
    pub fn span(values: &[f64]) -> [f64; 2] {
        values
            .iter()
            .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &v| {
                [lo.min(v), hi.max(v)]
            })
    }

    /// Fails unless this is one number or a pair of numbers, all finite.
    pub fn check_range(&self, transform: &str, name: &str) -> Result<()> {
        if let Numbers::Many(values) = self {
            if values.len() != 2 {
                return Err(invalid(
                    transform,
                    name,
                    format!("must be a number or a pair of numbers, got {values:?}"),
                ));
            }
        }
        check_finite(transform, name, self.values())
    }
}

/// Fails unless `value` (a percentile) lies in [0, 100].
pub fn check_percentile(transform: &str, name: &str, value: f64) -> Result<()> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            transform,
            name,
            format!("must be in [0, 100], got {value}"),
        ))
    }
}

/// MONAI's `RandomizableTransform.randomize`: apply the step when a uniform draw in
/// [0, 1) is below `prob` (never for 0, always for 1).
pub fn coin(rng: &mut Rng, prob: f64) -> bool {
    rng.random::<f64>() < prob
}

/// A uniform draw in `[lo, hi)` as numpy's `uniform` computes it, `lo + (hi - lo) * u`,
/// which also accepts the degenerate range `lo == hi`.
pub fn uniform(rng: &mut Rng, [lo, hi]: [f64; 2]) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Default `prob` of MONAI's random intensity transforms.
pub fn default_prob() -> f64 {
    0.1
}
