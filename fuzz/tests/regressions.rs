//! Replays every input a fuzz target once failed on (`fuzz/regressions/<target>/`),
//! plus the seed files kept beside them: each must come back, without a panic, and a
//! rejection must name the file or case it is about.

use std::path::{Path, PathBuf};

use medssl_fuzz::TARGETS;

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_kept_input_is_rejected_or_read_without_a_panic() {
    let mut replayed = 0;
    for (target, run) in TARGETS {
        let files = inputs(target);
        assert!(!files.is_empty(), "no kept inputs for {target}");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data))
                .unwrap_or_else(|_| panic!("{target} panicked on {}", file.display()));
            if let Err(message) = outcome {
                // Errors name the file (every input lies in the `medssl-fuzz*` scratch
                // directory) or, for a task's content, the case.
                let named = message.contains("medssl-fuzz") || message.starts_with("case ");
                assert!(
                    named,
                    "{target} on {}: the error names no file: {message}",
                    file.display()
                );
            }
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}

#[test]
fn series_inputs_split_on_the_separator() {
    let sep = medssl_fuzz::FILE_SEPARATOR;
    let data = [b"a".as_slice(), sep, b"", sep, b"bc"].concat();
    assert_eq!(
        medssl_fuzz::split(&data, sep),
        vec![b"a".as_slice(), b"", b"bc"]
    );
    assert_eq!(medssl_fuzz::split(b"abc", sep), vec![b"abc".as_slice()]);
}
