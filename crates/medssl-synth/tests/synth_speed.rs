//! Phantom generation speed at 96^3, the default size: run with
//! `cargo test --release -p medssl-data --test synth_speed -- --ignored --nocapture
//! --test-threads 1` (add `RAYON_NUM_THREADS=1` for one core).

use std::time::Instant;

use medssl_synth::{Grid, Kind, Task, generate, write_task};
use rayon::prelude::*;

const CASES: u64 = 16;

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn generation_cases_per_second_at_96() {
    let threads = rayon::current_num_threads();
    for kind in Kind::ALL {
        let grid = Grid::fitted(kind, [96; 3]).unwrap();
        generate(kind, &grid, 0, 1000); // warm-up
        let start = Instant::now();
        let voxels: usize = (0..CASES)
            .into_par_iter()
            .map(|case| generate(kind, &grid, 0, case).image.data().len())
            .sum();
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(voxels, CASES as usize * 96 * 96 * 96);
        println!(
            "{:12} 96^3, {threads} threads: generate {:.1} cases/s",
            kind.name(),
            CASES as f64 / seconds
        );
    }
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn task_writing_cases_per_second_at_96() {
    let threads = rayon::current_num_threads();
    for kind in Kind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let task = Task {
            kind,
            grid: Grid::fitted(kind, [96; 3]).unwrap(),
            seed: 0,
            training: CASES as usize,
            test: 0,
            unlabelled: false,
        };
        let start = Instant::now();
        write_task(&task, dir.path()).unwrap();
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{:12} 96^3, {threads} threads: generate + write .nii.gz {:.1} cases/s",
            kind.name(),
            CASES as f64 / seconds
        );
    }
}
