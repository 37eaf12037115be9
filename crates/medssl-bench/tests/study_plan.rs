//! Study files and their plans: the example parses and plans every row × task × budget
//! × seed; mistakes are errors naming the key; validation reaches into the tasks and the
//! methods' settings; shards partition the jobs.

use std::path::Path;

use medssl_bench::definition::{MethodSpec, StudyDefinition, example};
use medssl_bench::plan::{JobKind, Plan, parse_shard};
use medssl_ssl::methods::METHODS;
use medssl_synth::{Grid, Kind, Task, write_task};

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("study.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    StudyDefinition::load(&write(dir.path(), text))
        .unwrap_err()
        .to_string()
}

#[test]
fn the_example_plans_every_row_task_budget_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    let study = StudyDefinition::load(&write(dir.path(), &example())).unwrap();
    // Scratch and every registered method.
    let ssl = METHODS.len();
    assert_eq!(study.methods().len(), ssl + 1);
    assert_eq!(study.ssl_methods().len(), ssl);
    let plan = Plan::new(&study);
    // The pretrainings, a probe per row × 2 tasks, each row × 2 tasks × 2 budgets × 1
    // seed, then one CKA job per row × task × seed.
    assert_eq!(
        plan.jobs.len(),
        ssl + (ssl + 1) * 2 + (ssl + 1) * 4 + (ssl + 1) * 2
    );
    let probe = &plan.jobs[plan.find("probe/abdomen-mri/dino").unwrap()];
    assert_eq!(probe.needs, vec![plan.find("pretrain/dino").unwrap()]);
    assert_eq!(
        probe.done_file(&study),
        dir.path().join("study/probe/abdomen-mri/dino/result.json")
    );
    let scratch_probe = &plan.jobs[plan.find("probe/abdomen-ct/scratch").unwrap()];
    assert!(scratch_probe.needs.is_empty());
    assert_eq!(plan.init_weights(&study, scratch_probe), None);
    let ids: std::collections::BTreeSet<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids.len(), plan.jobs.len(), "ids are unique");
    assert_eq!(plan.jobs[0].id, "pretrain/simclr");
    let k = plan
        .find("finetune/abdomen-mri/dino.2-shots.seed-0")
        .unwrap();
    let job = &plan.jobs[k];
    assert_eq!(job.needs, vec![plan.find("pretrain/dino").unwrap()]);
    assert_eq!(
        plan.init_weights(&study, job).unwrap(),
        dir.path().join("study/pretrain/dino/encoder.safetensors")
    );
    assert_eq!(
        job.done_file(&study),
        dir.path()
            .join("study/finetune/abdomen-mri/dino.2-shots.seed-0/test.json")
    );
    let scratch = &plan.jobs[plan.find("finetune/abdomen-ct/scratch.all.seed-0").unwrap()];
    assert!(scratch.needs.is_empty());
    assert_eq!(plan.init_weights(&study, scratch), None);
    assert!(matches!(
        scratch.kind,
        JobKind::Finetune {
            method: MethodSpec::Scratch,
            task: 0,
            seed: 0,
            ..
        }
    ));
    let cka = &plan.jobs[plan.find("cka/abdomen-mri/dino.seed-0").unwrap()];
    let needs: Vec<&str> = cka
        .needs
        .iter()
        .map(|&n| plan.jobs[n].id.as_str())
        .collect();
    assert_eq!(
        needs,
        [
            "finetune/abdomen-mri/dino.2-shots.seed-0",
            "finetune/abdomen-mri/dino.all.seed-0"
        ]
    );
    assert_eq!(
        plan.init_weights(&study, cka).unwrap(),
        dir.path().join("study/pretrain/dino/encoder.safetensors")
    );
    assert_eq!(
        cka.done_file(&study),
        dir.path()
            .join("study/cka/abdomen-mri/dino.seed-0/result.json")
    );
    assert!(
        plan.find("cka/abdomen-ct/scratch.seed-0").is_ok(),
        "few against many"
    );
    let err = plan.find("finetune/nope").unwrap_err().to_string();
    assert!(err.contains("no job `finetune/nope`"), "{err}");
}

/// `finetune.budget_seeds` runs a budget on a subset of the seeds: its fine-tunes exist
/// for those seeds only, and a seed without the many-label fine-tune gets a CKA job only
/// where there are initial weights to compare with (not for scratch).
#[test]
fn budget_seeds_run_a_budget_on_fewer_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let text = example().replace(
        "seeds = [0]\n",
        "seeds = [0, 1, 2]\nbudget_seeds = { all = [1] }\n",
    );
    let study = StudyDefinition::load(&write(dir.path(), &text)).unwrap();
    let plan = Plan::new(&study);
    let rows = METHODS.len() + 1;
    let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    let count = |prefix: &str| ids.iter().filter(|id| id.starts_with(prefix)).count();
    // Per row and task: 2 shots × 3 seeds, all × 1 seed.
    assert_eq!(count("finetune/"), rows * 2 * 4);
    assert!(ids.contains(&"finetune/abdomen-ct/dino.all.seed-1"));
    assert!(!ids.contains(&"finetune/abdomen-ct/dino.all.seed-0"));
    assert!(ids.contains(&"finetune/abdomen-ct/dino.2-shots.seed-2"));
    // Scratch compares few with many labels on seed 1 only; the SSL rows compare their
    // encoder with every fine-tune, on every seed.
    assert_eq!(count("cka/abdomen-ct/scratch."), 1);
    assert_eq!(count("cka/abdomen-ct/dino."), 3);
    let cka = &plan.jobs[plan.find("cka/abdomen-ct/dino.seed-0").unwrap()];
    let needs: Vec<&str> = cka.needs.iter().map(|&n| ids[n]).collect();
    assert_eq!(needs, ["finetune/abdomen-ct/dino.2-shots.seed-0"]);
    let cka = &plan.jobs[plan.find("cka/abdomen-ct/scratch.seed-1").unwrap()];
    assert_eq!(cka.needs.len(), 2);

    for (budget_seeds, expected) in [
        (
            "{ most = [1] }",
            "finetune.budget_seeds.most: no such budget",
        ),
        (
            "{ all = [5] }",
            "finetune.budget_seeds.all: seed 5 is not in finetune.seeds",
        ),
        (
            "{ \"2-shots\" = [] }",
            "finetune.budget_seeds.2-shots: the list is empty",
        ),
    ] {
        let err = load_error(&text.replace("{ all = [1] }", budget_seeds));
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    }
}

/// A `supervised:` row: its encoder's fine-tune (every case of the source, the first
/// seed) comes after the pretrainings; the row's fine-tunes and CKA jobs need it, on
/// every task but its own source; a source is never fine-tuned on; the row's settings
/// come from `finetune.method_set` under its table name.
#[test]
fn supervised_rows_start_from_their_source_fine_tune() {
    let dir = tempfile::tempdir().unwrap();
    let text = example()
        .replace("seeds = [0]", "seeds = [3, 4]")
        .replace(
            "\"scratch\", ",
            "\"scratch\", \"supervised:src\", \"supervised:abdomen-ct\", ",
        )
        .replace(
            "[finetune.method_set]\n",
            "[finetune.method_set]\n\"supervised-src\" = [\"train.epochs=90\"]\n",
        )
        + "[[sources]]\nname = \"src\"\npath = \"data/src\"\nmodality = \"CT\"\n";
    let study = StudyDefinition::load(&write(dir.path(), &text)).unwrap();
    let plan = Plan::new(&study);
    let ssl = METHODS.len();
    let k = plan.find("supervised/src").unwrap();
    assert_eq!(k, ssl, "after the pretrainings");
    assert_eq!(plan.find("supervised/abdomen-ct").unwrap(), ssl + 1);
    let summary = plan.jobs[k].summary(&study, k);
    assert_eq!(
        (
            summary.budget.as_deref(),
            summary.seed,
            summary.task.as_deref()
        ),
        (Some("all"), Some(3), Some("src"))
    );
    assert_eq!(
        plan.jobs[k].done_file(&study),
        dir.path().join("study/supervised/src/encoder.safetensors")
    );
    let ft = &plan.jobs[plan
        .find("finetune/abdomen-mri/supervised-src.2-shots.seed-4")
        .unwrap()];
    assert_eq!(ft.needs, vec![k]);
    assert_eq!(
        plan.init_weights(&study, ft).unwrap(),
        dir.path().join("study/supervised/src/encoder.safetensors")
    );
    // Not on its own source task, nowhere on a source.
    assert!(
        plan.find("finetune/abdomen-ct/supervised-abdomen-ct.2-shots.seed-3")
            .is_err()
    );
    assert!(
        plan.find("cka/abdomen-ct/supervised-abdomen-ct.seed-3")
            .is_err()
    );
    assert!(
        plan.find("finetune/abdomen-mri/supervised-abdomen-ct.2-shots.seed-3")
            .is_ok()
    );
    assert!(!plan.jobs.iter().any(|j| j.id.starts_with("finetune/src/")));
    assert!(plan.find("probe/abdomen-ct/supervised-abdomen-ct").is_err());
    let probe = &plan.jobs[plan.find("probe/abdomen-mri/supervised-src").unwrap()];
    assert_eq!(probe.needs, vec![k]);
    let cka = &plan.jobs[plan.find("cka/abdomen-mri/supervised-src.seed-3").unwrap()];
    assert_eq!(cka.needs.len(), 2, "both budgets of seed 3");
    assert_eq!(
        study.finetune_overrides("supervised-src"),
        ["train.epochs=90"]
    );
    assert_eq!(
        study.finetune_overrides("dino"),
        [
            "train.strategy=\"warmup_decoder\"",
            "train.decoder_epochs=10"
        ]
    );
}

#[test]
fn shards_partition_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&StudyDefinition::load(&write(dir.path(), &example())).unwrap());
    let mut seen = Vec::new();
    for i in 0..4 {
        let shard = plan.shard(i, 4).unwrap();
        assert!(!shard.is_empty());
        seen.extend(shard);
    }
    seen.sort();
    assert_eq!(seen, (0..plan.jobs.len()).collect::<Vec<_>>());
    assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
    for bad in ["4/4", "1-4", "a/2", "0/0"] {
        let err = parse_shard(bad).unwrap_err().to_string();
        assert!(err.contains(bad), "{err}");
    }
}

#[test]
fn mistakes_in_the_file_name_the_key() {
    let base = example().replace("name = \"my-study\"", "name = \"s\"");
    let cases = [
        (
            base.replace("\"cpc\", ", "\"cpcc\", "),
            "unknown method `cpcc`",
        ),
        (
            base.replace("\"cpc\", ", "\"simclr\", "),
            "`simclr` is listed twice",
        ),
        (
            base.replace("budgets = [2, \"all\"]", "budgets = [0]"),
            "finetune.budgets",
        ),
        (
            base.replace("budgets = [2, \"all\"]", "budgets = [2, 2]"),
            "listed twice",
        ),
        (
            base.replace("budgets = [2, \"all\"]", "budgets = [\"most\"]"),
            "budgets",
        ),
        (
            base.replace("seeds = [0]", "seeds = [0]\nepochs = 3"),
            "unknown field `epochs`",
        ),
        (
            base.replace("simclr = [", "dinoo = ["),
            "pretraining.method_set.dinoo",
        ),
        (
            base.replace("name = \"abdomen-ct\"", "name = \"abdomen ct\""),
            "abdomen ct",
        ),
        (
            base.replace("modality = \"MRI\"", "modality = \"PET\""),
            "PET",
        ),
        (
            base.replace("\"scratch\", ", "\"scratch\", \"supervised:totalseg\", "),
            "supervised:totalseg names no task or source",
        ),
        (
            base.replace("dino = [", "dino-v2 = ["),
            "finetune.method_set.dino-v2",
        ),
    ];
    for (text, expected) in cases {
        let err = load_error(&text);
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
        assert!(err.contains("study.toml"), "the file is named: {err}");
    }
}

#[test]
fn validation_checks_paths_tasks_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kind = Kind::AbdomenCt;
    let grid = Grid::fitted(kind, [20, 18, 16]).unwrap();
    let task = |training, unlabelled| Task {
        kind,
        grid,
        seed: 1,
        training,
        test: 0,
        unlabelled,
    };
    write_task(&task(2, true), &data.join("ct-collection")).unwrap();
    write_task(&task(4, false), &data.join("abdomen-ct")).unwrap();
    write_task(&task(4, false), &data.join("abdomen-mri")).unwrap();
    let path = write(dir.path(), &example());
    let study = StudyDefinition::load(&path).unwrap();
    study.validate(&path).unwrap();

    let broken = [
        (
            example().replace("data/abdomen-mri", "data/missing"),
            "task abdomen-mri",
        ),
        (
            example().replace("data/ct-collection", "data/nothing"),
            "pretraining.data",
        ),
        (
            example().replace("pretext.temperature=0.2", "pretext.temprature=0.2"),
            "pretraining of simclr",
        ),
        (
            example().replace(
                "set = []\n# ... and for one row",
                "set = [\"train.epoch=3\"]\n# ... and for one row",
            ),
            "finetune.set",
        ),
        (
            example().replace("\"train.decoder_epochs=10\"", "\"train.decoder_epochs=0\""),
            "finetune.method_set.dino",
        ),
        (
            example().replace("\"scratch\", ", "\"scratch\", \"supervised:src\", ")
                + "[[sources]]\nname = \"src\"\npath = \"data/missing\"\nmodality = \"CT\"\n",
            "task src",
        ),
        (
            example().replace("\"scratch\", ", "\"scratch\", \"import:w.safetensors\", "),
            "import:",
        ),
    ];
    // A task of two channels for encoders of one: every encoder row is named.
    let two = data.join("two-channel");
    write_task(&task(4, false), &two).unwrap();
    let json = std::fs::read_to_string(two.join("dataset.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let channel_key = if value.get("channel_names").is_some() {
        "channel_names"
    } else {
        "modality"
    };
    value[channel_key]["1"] = "T2".into();
    std::fs::write(two.join("dataset.json"), value.to_string()).unwrap();
    let text = example().replace("data/abdomen-mri", "data/two-channel");
    let err = validation_error(dir.path(), &text);
    assert!(
        err.contains("task abdomen-mri: 2 input channel(s), but the encoders of simclr (1), "),
        "{err}"
    );
    assert!(!err.contains("task abdomen-ct"), "{err}");
    for (text, expected) in broken {
        let err = validation_error(dir.path(), &text);
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    }
}

/// The error of validating the study file `text` written in `dir`, which must fail.
fn validation_error(dir: &Path, text: &str) -> String {
    let path = write(dir, text);
    StudyDefinition::load(&path)
        .unwrap()
        .validate(&path)
        .unwrap_err()
        .to_string()
}
