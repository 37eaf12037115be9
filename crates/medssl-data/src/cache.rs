//! The preprocessing cache: the deterministic prefix of a pipeline computed once per volume and stored, keyed by file and configuration.
