//! How a dataset's stored label values become medssl's classes 0, 1, 2, ...

use std::ops::RangeInclusive;

/// The label values a dataset defines and the class each becomes. Any other value in a
/// label file is an error: it means a corrupt file or a dataset version whose labels
/// differ from what the converter knows.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueMap {
    /// Values `0..=max` are the classes themselves.
    Identity { max: u8 },
    /// Each listed value becomes its class (BraTS 2021: 4 becomes 3).
    Table(Vec<(i64, u8)>),
    /// Each value in a range becomes its class (CHAOS' MR ground truth stores 63, 126,
    /// 189 and 252 with tolerance bands, as its organisers define them).
    Ranges(Vec<(RangeInclusive<i64>, u8)>),
}

impl ValueMap {
    /// The class of the stored value `v`, or `None` when the dataset does not define it
    /// (non-integer values included).
    pub fn class(&self, v: f32) -> Option<u8> {
        if !v.is_finite() || v.fract() != 0.0 {
            return None;
        }
        let v = v as i64;
        match self {
            ValueMap::Identity { max } => (0..=i64::from(*max)).contains(&v).then_some(v as u8),
            ValueMap::Table(table) => table.iter().find(|(from, _)| *from == v).map(|e| e.1),
            ValueMap::Ranges(ranges) => ranges.iter().find(|(r, _)| r.contains(&v)).map(|e| e.1),
        }
    }

    /// The values the dataset defines, for error messages: `0-13`, `0, 1, 2, 4`,
    /// `0, 55-70, 110-135`.
    pub fn describe(&self) -> String {
        match self {
            ValueMap::Identity { max } => format!("0-{max}"),
            ValueMap::Table(table) => table
                .iter()
                .map(|(v, _)| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            ValueMap::Ranges(ranges) => ranges
                .iter()
                .map(|(r, _)| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_defined_values_and_none_for_others() {
        let identity = ValueMap::Identity { max: 13 };
        assert_eq!(identity.class(13.0), Some(13));
        assert_eq!(identity.class(14.0), None);
        assert_eq!(identity.class(-1.0), None);
        assert_eq!(identity.class(0.5), None);
        assert_eq!(identity.class(f32::NAN), None);
        let brats = ValueMap::Table(vec![(0, 0), (1, 1), (2, 2), (4, 3)]);
        assert_eq!(brats.class(4.0), Some(3));
        assert_eq!(brats.class(3.0), None);
        assert_eq!(brats.describe(), "0, 1, 2, 4");
        let chaos = ValueMap::Ranges(vec![(0..=0, 0), (55..=70, 1)]);
        assert_eq!(chaos.class(63.0), Some(1));
        assert_eq!(chaos.class(71.0), None);
        assert_eq!(chaos.describe(), "0, 55-70");
    }
}
