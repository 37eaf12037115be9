//! Seeded splits: sizes follow the rounding rules, parts partition the cases, folds
//! partition the non-test cases, few-shot subsets nest and never touch validation or
//! test cases, draws are uniform, and a saved split reads back identically.

use std::collections::BTreeSet;

use medssl_data::splits::{Budget, Split, SplitScheme};
use proptest::prelude::*;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("case_{i:03}")).collect()
}

fn set(ids: &[String]) -> BTreeSet<&str> {
    ids.iter().map(String::as_str).collect()
}

fn holdout(validation: f64, test: f64) -> SplitScheme {
    SplitScheme::Holdout { validation, test }
}

fn error_text(result: medssl_data::Result<Split>) -> String {
    result.expect_err("the request is invalid").to_string()
}

/// Every id lands in exactly one part, and each part is sorted.
fn assert_partition(split: &Split, all: &[String]) {
    let mut seen: Vec<&String> = split
        .train
        .iter()
        .chain(&split.validation)
        .chain(&split.test)
        .collect();
    for part in [&split.train, &split.validation, &split.test] {
        assert!(part.windows(2).all(|w| w[0] < w[1]), "unsorted {part:?}");
    }
    seen.sort();
    let mut expected: Vec<&String> = all.iter().collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn holdout_sizes_round_up_and_partition_the_cases() {
    let all = ids(10);
    let split = Split::new(&all, 3, holdout(0.2, 0.3)).unwrap();
    assert_eq!(
        (split.train.len(), split.validation.len(), split.test.len()),
        (5, 2, 3)
    );
    assert_partition(&split, &all);

    // ceil(0.15 * 7) = 2, ceil(0.1 * 7) = 1.
    let split = Split::new(&ids(7), 3, holdout(0.15, 0.1)).unwrap();
    assert_eq!((split.validation.len(), split.test.len()), (2, 1));
    // 0.7 * 10 is 7.000000000000001 in floating point; it still means 7 cases.
    let split = Split::new(&all, 3, holdout(0.1, 0.7)).unwrap();
    assert_eq!(
        (split.train.len(), split.validation.len(), split.test.len()),
        (2, 1, 7)
    );
    let split = Split::new(&all, 3, holdout(0.0, 0.0)).unwrap();
    assert_eq!(split.train, all);
}

#[test]
fn split_depends_on_seed_not_on_input_order() {
    let all = ids(20);
    let mut reversed = all.clone();
    reversed.reverse();
    let a = Split::new(&all, 11, holdout(0.2, 0.2)).unwrap();
    let b = Split::new(&reversed, 11, holdout(0.2, 0.2)).unwrap();
    assert_eq!(a, b);
    let c = Split::new(&all, 12, holdout(0.2, 0.2)).unwrap();
    assert_ne!(a.test, c.test);
}

#[test]
fn holdout_and_every_fold_share_the_test_cases_of_a_seed() {
    let all = ids(23);
    let reference = Split::new(&all, 5, holdout(0.25, 0.2)).unwrap();
    for fold in 0..4 {
        let split = Split::new(
            &all,
            5,
            SplitScheme::KFold {
                fold,
                folds: 4,
                test: 0.2,
            },
        )
        .unwrap();
        assert_eq!(split.test, reference.test);
    }
}

#[test]
fn every_case_is_drawn_for_testing_equally_often() {
    // One test case out of five, over 5000 seeds: each case should be drawn 1000 times
    // (binomial standard deviation 28). A shuffle that never leaves an element in place
    // (j < i instead of j <= i) would never draw case_000.
    let all = ids(5);
    let mut counts = [0usize; 5];
    for seed in 0..5000 {
        let split = Split::new(&all, seed, holdout(0.0, 0.2)).unwrap();
        let index = all.iter().position(|id| *id == split.test[0]).unwrap();
        counts[index] += 1;
    }
    for count in counts {
        assert!((860..=1140).contains(&count), "{counts:?}");
    }
}

#[test]
fn few_shot_fractions_round_up_to_at_least_one_case() {
    let split = Split::new(&ids(10), 9, holdout(0.1, 0.0)).unwrap();
    assert_eq!(split.train.len(), 9);
    let size = |budget| split.few_shot(budget).unwrap().train.len();
    assert_eq!(size(Budget::Fraction(0.1)), 1);
    assert_eq!(size(Budget::Fraction(0.01)), 1);
    assert_eq!(size(Budget::Fraction(0.5)), 5);
    assert_eq!(size(Budget::Fraction(1.0)), 9);
    assert_eq!(size(Budget::Shots(9)), 9);
    let half = split.few_shot(Budget::Fraction(0.5)).unwrap();
    let three = split.few_shot(Budget::Shots(3)).unwrap();
    assert!(set(&three.train).is_subset(&set(&half.train)));
    assert_eq!(
        split.few_shot(Budget::Fraction(1.0)).unwrap().train,
        split.train
    );
}

#[test]
fn invalid_requests_say_what_is_wrong() {
    let all = ids(10);
    let split = Split::new(&all, 1, holdout(0.1, 0.0)).unwrap();
    let cases = [
        (
            split.few_shot(Budget::Shots(12)),
            "12 training cases requested but only 9 are available",
        ),
        (split.few_shot(Budget::Shots(0)), "at least 1"),
        (
            split.few_shot(Budget::Fraction(0.0)),
            "fraction must be in (0, 1], got 0",
        ),
        (
            split.few_shot(Budget::Fraction(1.5)),
            "fraction must be in (0, 1], got 1.5",
        ),
        (
            split.few_shot(Budget::Fraction(f64::NAN)),
            "fraction must be in (0, 1], got NaN",
        ),
        (
            split
                .few_shot(Budget::Shots(2))
                .unwrap()
                .few_shot(Budget::Shots(1)),
            "already a few-shot subset (2 shots)",
        ),
        (
            Split::new(&all, 1, holdout(0.5, 0.5)),
            "leave no training cases",
        ),
        (
            Split::new(&all, 1, holdout(-0.1, 0.0)),
            "validation fraction must be in [0, 1), got -0.1",
        ),
        (
            Split::new(&all, 1, holdout(0.1, 1.0)),
            "test fraction must be in [0, 1), got 1",
        ),
        (
            Split::new(
                &all,
                1,
                SplitScheme::KFold {
                    fold: 3,
                    folds: 3,
                    test: 0.0,
                },
            ),
            "fold 3 of 3 folds",
        ),
        (
            Split::new(
                &all,
                1,
                SplitScheme::KFold {
                    fold: 0,
                    folds: 1,
                    test: 0.0,
                },
            ),
            "at least 2 folds",
        ),
        (
            Split::new(
                &all,
                1,
                SplitScheme::KFold {
                    fold: 0,
                    folds: 5,
                    test: 0.7,
                },
            ),
            "3 cases left after the test part cannot make 5 folds",
        ),
        (
            Split::new(&["a".into(), "b".into(), "a".into()], 1, holdout(0.0, 0.0)),
            "case id a appears more than once",
        ),
    ];
    for (result, expected) in cases {
        let message = error_text(result);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message}"
        );
    }
}

#[test]
fn saved_split_reads_back_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("split.json");
    let split = Split::new(
        &ids(15),
        77,
        SplitScheme::KFold {
            fold: 1,
            folds: 3,
            test: 0.2,
        },
    )
    .unwrap()
    .few_shot(Budget::Fraction(0.25))
    .unwrap();
    split.save(&path).unwrap();
    assert_eq!(Split::load(&path).unwrap(), split);
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["split.json"], "no temporary file is left behind");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["seed"], 77);
    assert_eq!(
        json["method"],
        serde_json::json!({"kind": "k-fold", "fold": 1, "folds": 3, "test": 0.2})
    );
    assert_eq!(json["few_shot"], serde_json::json!({"fraction": 0.25}));
    assert_eq!(json["train"].as_array().unwrap().len(), 2);

    let holdout_split = Split::new(&ids(6), 1, holdout(0.2, 0.2)).unwrap();
    holdout_split.save(&path).unwrap();
    assert_eq!(Split::load(&path).unwrap(), holdout_split);
}

#[test]
fn loading_rejects_a_case_in_two_parts_and_bad_json() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("split.json");
    let mut split = Split::new(&ids(6), 1, holdout(0.2, 0.2)).unwrap();
    split.train.push(split.test[0].clone());
    split.save(&path).unwrap();
    let message = Split::load(&path).unwrap_err().to_string();
    let expected = format!("case {} is listed in test and train", split.test[0]);
    assert!(message.contains(&expected), "{message}");
    assert!(message.contains("split.json"), "{message}");

    std::fs::write(&path, r#"{"seed": 1, "method": {"kind": "bootstrap"}}"#).unwrap();
    let message = Split::load(&path).unwrap_err().to_string();
    assert!(message.contains("invalid split file"), "{message}");
    assert!(message.contains("bootstrap"), "{message}");
}

proptest! {
    #[test]
    fn folds_partition_the_cases_left_after_the_test_part(
        n in 2usize..60,
        folds in 2usize..10,
        test in prop_oneof![Just(0.0), Just(0.2)],
        seed in any::<u64>(),
    ) {
        let all = ids(n);
        let pool = n - (test * n as f64 - 1e-9).ceil() as usize;
        prop_assume!(pool >= folds);
        let splits: Vec<Split> = (0..folds)
            .map(|fold| Split::new(&all, seed, SplitScheme::KFold { fold, folds, test }).unwrap())
            .collect();
        let mut validated = BTreeSet::new();
        for split in &splits {
            assert_partition(split, &all);
            prop_assert_eq!(&split.test, &splits[0].test);
            let size = split.validation.len();
            prop_assert!(size == pool / folds || size == pool / folds + 1);
            for id in &split.validation {
                prop_assert!(validated.insert(id.clone()), "{} validated twice", id);
            }
        }
        prop_assert_eq!(validated.len(), pool);
        let largest: Vec<usize> = splits.iter().map(|s| s.validation.len()).collect();
        prop_assert!(largest.windows(2).all(|w| w[0] >= w[1]), "{:?}", largest);
    }

    #[test]
    fn few_shot_subsets_nest_inside_the_training_part(
        n in 1usize..80,
        seed in any::<u64>(),
        a in 1usize..80,
        b in 1usize..80,
    ) {
        let all = ids(n + 2);
        let split = Split::new(&all, seed, holdout(0.01, 0.01)).unwrap();
        let available = split.train.len();
        let (small, large) = (a.min(b), a.max(b));
        prop_assume!(large <= available);
        let small = split.few_shot(Budget::Shots(small)).unwrap();
        let large = split.few_shot(Budget::Shots(large)).unwrap();
        prop_assert_eq!(small.train.len(), a.min(b));
        prop_assert_eq!(large.train.len(), a.max(b));
        prop_assert!(set(&small.train).is_subset(&set(&large.train)));
        prop_assert!(set(&large.train).is_subset(&set(&split.train)));
        for subset in [&small, &large] {
            prop_assert_eq!(&subset.validation, &split.validation);
            prop_assert_eq!(&subset.test, &split.test);
            prop_assert_eq!(subset.seed, split.seed);
        }
        let fraction = (a.min(b) as f64 / available as f64).min(1.0);
        let by_fraction = split.few_shot(Budget::Fraction(fraction)).unwrap();
        prop_assert!(set(&by_fraction.train).is_subset(&set(&large.train))
            || set(&large.train).is_subset(&set(&by_fraction.train)));
    }
}
