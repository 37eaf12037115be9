//! The benchmark study.
//!
//! This crate will own the study configuration, planning of the method x task x label
//! budget matrix, sharding and Slurm arrays, the result store, and the report with its
//! tables and plots.
