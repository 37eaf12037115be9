//! The analysis and the report on planted fine-tune outputs: cells pool cases and seeds,
//! ranks order the methods, the paired test marks a method that is clearly worse and
//! not one that is as good, few-shot gaps and modality means come out of the same
//! cells, CKA means pool tasks and seeds, and results.csv and the report hold every row
//! and figure.

use std::path::Path;

use medssl_bench::analysis::Analysis;
use medssl_bench::definition::{Modality, StudyDefinition};
use medssl_bench::plan::{FinetuneJob, JobKind, Plan};
use medssl_bench::report::write_report;
use medssl_bench::results::write_results;
use medssl_eval::evaluate::Part;

const STUDY: &str = r#"name = "planted"
methods = ["scratch", "simclr", "mocov3"]
[pretraining]
data = "ct"
[finetune]
budgets = [2, "all"]
seeds = [0, 1]
[[tasks]]
name = "ct-task"
path = "ct-task"
modality = "CT"
[[tasks]]
name = "mri-task"
path = "mri-task"
modality = "MRI"
"#;

const CASES: usize = 8;

/// The planted Dice of case `c` of a fine-tune: simclr best; mocov3 within noise of it
/// (alternating signs, 0.0005 lower on average); scratch about 0.2 below with distinct
/// per-case offsets; "all" 0.1 above "2-shots"; MRI 0.05 below CT.
fn dice(method: &str, task: usize, budget: usize, seed: u64, c: usize) -> f64 {
    let k = (c + CASES * seed as usize) as f64;
    let method_part = match method {
        "simclr" => 0.7,
        "mocov3" => {
            let sign = if (c + seed as usize) % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            0.7 + 0.01 * sign * (c as f64 + 1.0) / 8.0 - 0.0005
        }
        _ => 0.5 + 0.001 * k,
    };
    method_part + 0.1 * budget as f64 - 0.05 * task as f64
}

/// The planted CKA of a stage: `base` plus 0.01 per task index and 0.002 per seed, so
/// the mean over the two tasks and seeds is `base + 0.006`.
fn stages(base: impl Fn(usize) -> f64, task: usize, seed: u64) -> serde_json::Value {
    let names = ["patch_embed", "stage1", "stage2", "stage3", "stage4"];
    let stages: Vec<serde_json::Value> = (0..5)
        .map(|s| {
            let v = base(s) + 0.01 * task as f64 + 0.002 * seed as f64;
            serde_json::json!({"stage": names[s], "features": 100, "linear_cka": v + 0.05,
                "minibatch_cka": v})
        })
        .collect();
    serde_json::json!({"a": "x", "b": "y", "probe_run": "r", "cases": ["c"], "patches": 32,
        "roi": [32, 32, 32], "stages": stages})
}

/// Pretrained against fine-tuned: 0.9 − 0.1·stage − 0.2·budget (simclr) or 0.1 less
/// (mocov3); few against many: 0.8 − 0.1·stage for every row.
fn plant_cka(study: &StudyDefinition, job: &medssl_bench::Job) {
    let JobKind::Cka { method, task, seed } = &job.kind else {
        return;
    };
    let offset = if method.label() == "mocov3" { 0.1 } else { 0.0 };
    let pretrained: serde_json::Map<String, serde_json::Value> = match method.label().as_str() {
        "scratch" => serde_json::Map::new(),
        _ => ["2-shots", "all"]
            .iter()
            .enumerate()
            .map(|(b, label)| {
                let base = |s: usize| 0.9 - 0.1 * s as f64 - 0.2 * b as f64 - offset;
                (label.to_string(), stages(base, *task, *seed))
            })
            .collect(),
    };
    let result = serde_json::json!({
        "pretrained_vs_finetuned": pretrained,
        "few_vs_many": stages(|s| 0.8 - 0.1 * s as f64, *task, *seed),
    });
    std::fs::create_dir_all(job.dir(study)).unwrap();
    std::fs::write(job.done_file(study), result.to_string()).unwrap();
}

fn plant(dir: &Path, study: &StudyDefinition, plan: &Plan) {
    let budgets: Vec<String> = study.finetune.budgets.iter().map(|b| b.label()).collect();
    for job in &plan.jobs {
        plant_cka(study, job);
        let Some(FinetuneJob {
            method,
            task,
            budget,
            seed,
        }) = job.finetune()
        else {
            continue;
        };
        let b = budgets.iter().position(|l| *l == budget.label()).unwrap();
        let run = job.run(study);
        std::fs::create_dir_all(run.root()).unwrap();
        let mut csv = String::from("case,class,dice,hd95,hd_max,asd,asd_pred_to_gt,nsd\n");
        for c in 0..CASES {
            let d = dice(&method.label(), task, b, seed, c);
            // Two classes whose mean is the planted Dice; HD95 NaN on one of them.
            csv.push_str(&format!("case{c},a,{},10,20,2,2,{}\n", d + 0.05, d));
            csv.push_str(&format!("case{c},b,{},NaN,inf,inf,inf,{}\n", d - 0.05, d));
        }
        std::fs::write(run.evaluation(Part::Test), csv).unwrap();
        let result = serde_json::json!({
            "best_dice": 0.8, "best_epoch": 10, "epochs": 10,
            "epoch_to_90": 4 + b, "epoch_to_95": 6 + b, "normalised_auc": 0.5,
            "train_cases": 2, "curve": [{"epoch": 5, "dice": 0.7}, {"epoch": 10, "dice": 0.8}]
        });
        std::fs::write(run.result(), result.to_string()).unwrap();
        let test = serde_json::json!({"split": "test", "mean_dice": 0.6, "cases": CASES,
            "per_class": {"a": {"dice": 0.6, "hd95": 10.0, "asd": 2.0, "nsd": 0.6}}});
        std::fs::write(job.done_file(study), test.to_string()).unwrap();
    }
    assert!(dir.join("study").is_dir());
}

#[test]
fn planted_results_come_out_of_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    std::fs::write(&file, STUDY).unwrap();
    let study = StudyDefinition::load(&file).unwrap();
    let plan = Plan::new(&study);
    plant(dir.path(), &study, &plan);
    let a = Analysis::new(&study, &plan).unwrap();
    assert_eq!(a.outcomes.len(), 3 * 2 * 2 * 2);
    let (scratch, simclr, mocov3) = (0, 1, 2);
    for task in 0..2 {
        for budget in 0..2 {
            let values: Vec<f64> = (0..2u64)
                .flat_map(|s| (0..CASES).map(move |c| (s, c)))
                .map(|(s, c)| dice("scratch", task, budget, s, c))
                .collect();
            let mean = values.iter().sum::<f64>() / 16.0;
            let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 15.0).sqrt();
            let cell = &a.cells[&(scratch, task, budget)];
            assert_eq!(cell.n, 16);
            assert!((cell.dice.0 - mean).abs() < 1e-12 && (cell.dice.1 - sd).abs() < 1e-12);
            assert_eq!(cell.hd95.0, 10.0, "the NaN class is left out");
            assert_eq!(cell.rank, 3);
            let p = cell.p_vs_best.unwrap();
            // 16 distinct paired differences, all negative: exact p = 2 / 2^16, Holm × 2.
            assert!((p - 4.0 / 65536.0).abs() < 1e-15, "{p}");
            let best = &a.cells[&(simclr, task, budget)];
            let close = &a.cells[&(mocov3, task, budget)];
            assert!(best.rank == 1 || close.rank == 1);
            let tested = if best.rank == 1 { close } else { best };
            assert!(
                tested.p_vs_best.unwrap() > 0.05,
                "as good as the best: {tested:?}"
            );
        }
    }
    for m in 0..3 {
        let gap = a.cells[&(m, 0, 1)].dice.0 - a.cells[&(m, 0, 0)].dice.0;
        assert!((gap - 0.1).abs() < 1e-9, "{gap}");
        let ct = a.modality_dice(m, 0, Modality::Ct).unwrap();
        let mri = a.modality_dice(m, 0, Modality::Mri).unwrap();
        assert!((ct - mri - 0.05).abs() < 1e-9);
        assert_eq!(a.mean_rank(scratch, 0), Some(3.0));
    }
    // simclr 0.7 against scratch 0.5 + mean(0.001·k, k < 16) = 0.5075.
    assert!((a.spread(0).unwrap() - 0.1925).abs() < 1e-9);
    assert_eq!(a.convergence(simclr, 0, 1, |o| o.epoch_to.0), Some(5.0));

    // CKA: 3 rows × 2 tasks × 2 seeds, means over tasks and seeds.
    assert_eq!(a.cka.len(), 12);
    assert_eq!(a.cka_stages().len(), 5);
    let (minibatch, linear) = a.cka(mocov3, 2, |r| r.pretrained_vs_finetuned.get("all"));
    assert!((minibatch.unwrap() - (0.9 - 0.2 - 0.2 - 0.1 + 0.006)).abs() < 1e-12);
    assert!((linear.unwrap() - (0.9 - 0.2 - 0.2 - 0.1 + 0.056)).abs() < 1e-12);
    let none = a.cka(scratch, 0, |r| r.pretrained_vs_finetuned.get("2-shots"));
    assert_eq!(none, (None, None));
    let few_many = a.cka(scratch, 4, |r| r.few_vs_many.as_ref()).0.unwrap();
    assert!((few_many - (0.8 - 0.4 + 0.006)).abs() < 1e-12);

    assert_eq!(write_results(&study, &plan).unwrap(), 24);
    let report = write_report(&study, &plan, "medssl 0.1.0 (commit test; devices: cpu)").unwrap();
    let html = std::fs::read_to_string(&report).unwrap();
    let layout = study.layout();
    assert_eq!(report, layout.report_html());
    let md = std::fs::read_to_string(layout.report_markdown()).unwrap();
    for text in [&html, &md] {
        assert!(text.contains("Dice, budget 2-shots") && text.contains("Dice, budget all"));
        assert!(text.contains("Few-shot sensitivity") && text.contains("Modality transfer"));
        assert!(text.contains("24 of 24 fine-tunes finished"));
    }
    let scratch_row = md
        .lines()
        .find(|l| l.starts_with("| scratch | 0.5"))
        .unwrap();
    assert!(scratch_row.contains("* (3), n="), "{scratch_row}");
    assert!(md.contains("**0.70"), "the best is bold");
    assert!(html.contains("<b>0.70"), "the best is bold");

    // simclr, pretrained against fine-tuned with all labels, patch_embed: 0.706 (0.756).
    let cka_row = md
        .lines()
        .skip_while(|l| !l.contains("pretrained against fine-tuned, budget all"))
        .find(|l| l.starts_with("| simclr |"))
        .unwrap();
    assert!(
        cka_row.starts_with("| simclr | 0.706 (0.756) | 0.606 (0.656)"),
        "{cka_row}"
    );
    assert!(md.contains("fewest-label against most-label"));

    // Bars per task, mean rank, few-vs-many lines, 2 × 2 convergence plots, CKA heatmaps
    // for both budgets and for few-vs-many: each as SVG (inline in the HTML) and PNG.
    let figures = layout.report_figures();
    let names = [
        "dice-ct-task",
        "dice-mri-task",
        "mean-rank",
        "few-vs-many",
        "convergence-ct-task-2-shots",
        "convergence-mri-task-all",
        "cka-pretrained-2-shots",
        "cka-pretrained-all",
        "cka-few-vs-many",
    ];
    for name in names {
        let svg = std::fs::read_to_string(figures.join(format!("{name}.svg"))).unwrap();
        assert!(html.contains(&svg), "{name} is inline in the HTML");
        let png = std::fs::read(figures.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}");
        assert!(md.contains(&format!("(figures/{name}.png)")), "{name}");
    }
    assert_eq!(std::fs::read_dir(&figures).unwrap().count(), 2 * 11);
    let bars = std::fs::read_to_string(figures.join("dice-ct-task.svg")).unwrap();
    let has_text = |svg: &str, text: &str| svg.contains(&format!(">\n{text}\n<"));
    for text in ["scratch", "mocov3", "all"] {
        assert!(has_text(&bars, text), "{text}");
    }
    let heatmap = std::fs::read_to_string(figures.join("cka-pretrained-all.svg")).unwrap();
    // mocov3 at stage4: 0.9 − 0.4 − 0.2 − 0.1 + 0.006; scratch has no pretrained row.
    assert!(
        has_text(&heatmap, "0.21") && !has_text(&heatmap, "scratch"),
        "{heatmap}"
    );
}
