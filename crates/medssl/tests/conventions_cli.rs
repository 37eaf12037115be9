//! The conventions every command shares: `--version`, shell completions, `--threads`,
//! machine-readable listings.

mod common;

use common::{medssl, stdout_ok};

/// `--version` names the package version, the commit it was built from and the compiled
/// device support, so that a bug report or a run record identifies the build.
#[test]
fn version_names_the_commit_and_the_devices() {
    let line = stdout_ok(&["--version"]);
    assert!(
        line.starts_with(&format!("medssl {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = std::env::var("MEDSSL_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or(head)
        .unwrap_or_else(|| "unknown".into());
    assert!(line.contains(&format!("commit {expected};")), "{line}");
    let devices = if cfg!(feature = "cuda") {
        "devices: cpu, cuda)"
    } else {
        "devices: cpu)"
    };
    assert!(line.trim_end().ends_with(devices), "{line}");
}

/// The bash completion script is valid bash and completes subcommands and flags.
#[test]
fn bash_completions_parse_and_know_the_commands() {
    let script = stdout_ok(&["completions", "bash"]);
    for word in ["pretrain", "finetune", "study", "completions", "--threads"] {
        assert!(script.contains(word), "no {word} in the bash completions");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medssl.bash");
    std::fs::write(&path, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let fish = stdout_ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c medssl"), "{fish}");
    let out = medssl(&["completions", "tcsh"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));
}

/// `--threads N` sizes the pool the kernels run on (as `speed` reports it); 0 is
/// refused with the flag named.
#[test]
fn threads_sets_the_worker_pool() {
    let speed = |threads: &str| {
        let text = stdout_ok(&[
            "--threads",
            threads,
            "speed",
            "--json",
            "--iters",
            "1",
            "--feature-size",
            "12",
            "--roi",
            "32",
            "--volume",
            "32,32,32",
            "--classes",
            "2",
        ]);
        let value: serde_json::Value = serde_json::from_str(&text).expect("speed --json");
        value["threads"].as_u64().expect("threads in speed --json")
    };
    assert_eq!(speed("1"), 1);
    assert_eq!(speed("3"), 3);
    let out = medssl(&["--threads", "0", "methods"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: --threads must be at least 1"
    );
}

/// `methods --json` lists the same methods, families and descriptions as the table.
#[test]
fn methods_json_matches_the_table() {
    let listed: serde_json::Value =
        serde_json::from_str(&stdout_ok(&["methods", "--json"])).expect("methods --json");
    let listed = listed.as_array().expect("a JSON array");
    let table = stdout_ok(&["methods"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(listed.len(), rows.len());
    assert_eq!(listed.len(), medssl_ssl::methods::METHODS.len());
    for (entry, row) in listed.iter().zip(rows) {
        let name = entry["name"].as_str().unwrap();
        let family = entry["family"].as_str().unwrap();
        let description = entry["description"].as_str().unwrap();
        assert!(row.starts_with(name), "{row} vs {name}");
        assert!(row.contains(family) && row.ends_with(description), "{row}");
    }
}

/// `export tensorboard` writes one event file (the version record plus a record per
/// metrics line) that a second export replaces.
#[test]
fn export_tensorboard_writes_one_record_per_metrics_line() {
    let run = tempfile::tempdir().unwrap();
    std::fs::write(
        run.path().join("metrics.jsonl"),
        concat!(
            r#"{"event":"train","epoch":1,"iteration":3,"loss":0.5}"#,
            "\n",
            r#"{"event":"validation","epoch":1,"dice":0.75}"#,
            "\n",
        ),
    )
    .unwrap();
    let run_arg = run.path().to_str().unwrap();
    for _ in 0..2 {
        let said = stdout_ok(&["export", "tensorboard", run_arg]);
        assert!(said.starts_with("4 values at 2 steps -> "), "{said}");
    }
    let dir = run.path().join("tensorboard");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "a second export replaces the first");
    let bytes = std::fs::read(dir.join("events.out.tfevents.medssl")).unwrap();
    let mut records = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let length = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        records.push(&rest[12..12 + length]);
        rest = &rest[16 + length..];
    }
    assert_eq!(records.len(), 3);
    let has = |record: &[u8], text: &str| record.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(has(records[0], "brain.Event:2"));
    assert!(has(records[1], "train/loss") && has(records[1], "train/epoch"));
    assert!(has(records[2], "validation/dice"));

    let out = medssl(&["export", "tensorboard", "/no/such/run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/run/metrics.jsonl"));
}

/// A value or key of the `--config` file that cannot be used is reported with the
/// file's name, by `finetune` and `pretrain` alike; nothing is written.
#[test]
fn errors_in_a_config_file_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad_value = dir.path().join("bad-value.toml");
    std::fs::write(&bad_value, "[train]\nepochs = \"ten\"\n").unwrap();
    let bad_key = dir.path().join("bad-key.toml");
    std::fs::write(&bad_key, "[train]\nepoch = 3\n").unwrap();
    let out = dir.path().join("run");
    let out_arg = out.to_str().unwrap();
    for (file, expected) in [
        (
            &bad_value,
            "setting `train.epochs`: invalid type: string \"ten\", expected a whole number",
        ),
        (&bad_key, "unknown setting `train.epoch`"),
    ] {
        let file_arg = file.to_str().unwrap();
        for command in [
            vec![
                "finetune", "--task", "no-task", "--out", out_arg, "--config", file_arg,
            ],
            vec![
                "pretrain", "--method", "simmim", "--data", "no-data", "--out", out_arg,
                "--config", file_arg,
            ],
        ] {
            let result = medssl(&command);
            assert!(!result.status.success());
            let stderr = String::from_utf8_lossy(&result.stderr);
            assert!(
                stderr.starts_with(&format!("error: {file_arg}: {expected}")),
                "{command:?}: {stderr}"
            );
            assert!(!out.exists(), "{command:?} wrote {}", out.display());
        }
    }
}

/// `-v` prints every setting of a run as it starts (the same TOML as its
/// `config.toml`); `--quiet` and `--verbose` together are refused.
#[test]
fn verbose_prints_the_settings_a_run_starts_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ct");
    let run = dir.path().join("run");
    stdout_ok(&[
        "synth",
        "--kind",
        "abdomen-ct",
        "--unlabelled",
        "--cases",
        "2",
        "--size",
        "40",
        "--out",
        data.to_str().unwrap(),
    ]);
    let out = medssl(&[
        "-v",
        "pretrain",
        "--method",
        "simmim",
        "--steps",
        "1",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed = stderr
        .split_once("settings:\n")
        .unwrap_or_else(|| panic!("no settings printed: {stderr}"))
        .1;
    let written = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(printed.starts_with(&written), "{printed}\n---\n{written}");

    let out = medssl(&["--quiet", "--verbose", "methods"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
