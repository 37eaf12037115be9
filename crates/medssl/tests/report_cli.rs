//! The study's paper-ready outputs from the command line, on a study of two seeds of
//! one fine-tune row (no pretraining): `results_long.csv` (one rounded row per run ×
//! case × class, equal to the runs' `evaluation-test.csv`), and the report's
//! provenance, cell counts, per-class tables and `tables.tex`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::stdout_ok;

const STUDY: &str = r#"name = "seeds"
methods = ["scratch"]
[pretraining]
data = "ct"
[finetune]
budgets = [2]
seeds = [0, 1]
set = ["train.epochs=1", "validation.every=1", "model.roi=[32, 32, 32]"]
[[tasks]]
name = "abd"
path = "abd"
modality = "CT"
"#;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_study_writes_a_tidy_table_and_a_report_with_provenance_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    #[rustfmt::skip]
    stdout_ok(&[
        "synth", "--kind", "abdomen-ct", "--unlabelled", "--cases", "2", "--size", "32",
        "--out", &format!("{d}/ct"),
    ]);
    #[rustfmt::skip]
    stdout_ok(&[
        "synth", "--kind", "abdomen-ct", "--cases", "6", "--size", "32",
        "--out", &format!("{d}/abd"),
    ]);
    let file = dir.path().join("study.toml");
    std::fs::write(&file, STUDY).unwrap();
    let out = common::medssl(&["study", "run", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let study = dir.path().join("study");

    // results_long.csv: the runs' evaluation-test.csv rows, rounded to 6 places.
    let long = read(&study.join("results_long.csv"));
    let mut lines = long.lines();
    assert_eq!(
        lines.next().unwrap(),
        "method,task,budget,seed,case,class,dice,hd95,asd,nsd"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut expected = 0;
    for seed in ["0", "1"] {
        let run = study.join(format!("finetune/abd/scratch.2-shots.seed-{seed}"));
        let test: serde_json::Value = serde_json::from_str(&read(&run.join("test.json"))).unwrap();
        let per_case = test["metric_per_case"].as_object().unwrap();
        let classes = per_case.values().next().unwrap().as_object().unwrap().len();
        assert_eq!(classes, 6, "abdomen-ct has six foreground classes");
        expected += test["cases"].as_u64().unwrap() as usize * classes;
        // Each run's rows hold its evaluation-test.csv's values, rounded.
        let csv = read(&run.join("evaluation-test.csv"));
        let full: BTreeMap<(String, String), Vec<f64>> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let value = |i: usize| f[i].parse::<f64>().unwrap();
                (
                    (f[0].into(), f[1].into()),
                    vec![value(2), value(3), value(5), value(7)],
                )
            })
            .collect();
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[3] == seed).collect();
        assert_eq!(mine.len(), full.len());
        for row in mine {
            assert_eq!(row[..4], ["scratch", "abd", "2-shots", seed]);
            let values = &full[&(row[4].to_string(), row[5].to_string())];
            for (text, value) in row[6..].iter().zip(values) {
                if value.is_finite() {
                    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
                    assert_eq!(decimals, 6, "{text}");
                    assert!(
                        (text.parse::<f64>().unwrap() - value).abs() <= 5e-7,
                        "{text}"
                    );
                } else {
                    assert_eq!(*text, if value.is_nan() { "nan" } else { "inf" });
                }
            }
        }
    }
    assert_eq!(rows.len(), expected, "one row per run × case × class");

    // The report: provenance once per section, counts in every cell, per-class tables.
    let report = read(&study.join("report/report.md"));
    let sections = report.matches("\n## ").count();
    let provenance = format!("medssl {} (commit ", env!("CARGO_PKG_VERSION"));
    assert_eq!(report.matches(&provenance).count(), sections, "{report}");
    // Where the jobs ran, with the processor's name (as /proc/cpuinfo gives it).
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(key, _)| key.trim() == "model name")
                .map(|(_, value)| value.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    assert!(
        report.contains(&format!("jobs ran on cpu ({cpu}) on ")),
        "{report}"
    );
    assert!(report.contains("## Accuracy per class"), "{report}");
    // Rank 1 (bold) of the one row and the values behind it: each seed's split picks its own
    // test cases, so the cell names the pooled count and the distinct cases.
    let first_class: Vec<&Vec<&str>> = rows.iter().filter(|r| r[5] == rows[0][5]).collect();
    let cases: std::collections::BTreeSet<&str> = first_class.iter().map(|r| r[4]).collect();
    let n = first_class.len();
    let cell = if cases.len() * 2 == n {
        format!(" (1), n={}×2**", cases.len())
    } else {
        format!(" (1), n={n} ({} cases, 2 seeds)**", cases.len())
    };
    assert!(report.contains(&cell), "{cell:?} not in {report}");
    assert_eq!(
        report.matches("2 of 2 fine-tunes finished.").count(),
        sections,
        "what was run opens each section and is in no caption: {report}"
    );
    let tex = read(&study.join("report/tables.tex"));
    assert!(tex.starts_with("% medssl study seeds: "), "{tex}");
    for part in [
        "\\caption{Dice, budget 2-shots. Test Dice, mean $\\pm$ sd",
        "\\toprule\nmethod & abd & mean rank \\\\\n\\midrule\n",
        "\\caption{Per class: abd, budget 2-shots.",
        "\\bottomrule\n\\end{tabular}\n\\end{table}",
    ] {
        assert!(tex.contains(part), "{part:?} not in {tex}");
    }
    assert_eq!(
        tex.matches("\\begin{table}").count(),
        4,
        "Dice, HD95, NSD, per class"
    );
}
