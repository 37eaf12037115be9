//! Seeded train/validation/test splits, k folds, and nested few-shot subsets.
