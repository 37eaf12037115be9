//! The study report: `OUT/report/report.md` and a self-contained
//! `OUT/report/index.html` with the same sections, tables and figures (inline SVG in the
//! HTML, PNG beside the Markdown, both under `OUT/report/figures/`), and
//! `OUT/report/tables.tex` with the accuracy tables for a paper (booktabs). Each section
//! opens with what was run and its provenance (medssl version and commit, date, the
//! devices the jobs ran on with their CPU or GPU model), so captions say only what their
//! table or figure shows.

use std::fmt::Write as _;

use medssl_io::atomic::{create_dir_for_writes, write_atomically};
use medssl_train::finetune::{FinetuneConfig, Strategy};

use crate::analysis::{ALPHA, Analysis, Cell, Outcome};
use crate::definition::{Modality, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::feature_reuse::{CkaResult, FeatureReuse, PROBE_PATCHES};
use crate::figures::Figure;
use crate::plan::{JobKind, Plan};
use crate::report_figures::figures;
use crate::stats::wilcoxon_min_p;

/// A table cell: text, and whether it is the best of its column.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    text: String,
    best: bool,
}

impl From<String> for Entry {
    fn from(text: String) -> Entry {
        Entry { text, best: false }
    }
}

/// A captioned table.
#[derive(Debug, Clone, PartialEq)]
struct Table {
    title: String,
    caption: String,
    /// Sentences after the caption (what the significance test could not show).
    notes: Vec<String>,
    header: Vec<String>,
    rows: Vec<Vec<Entry>>,
}

impl Table {
    fn markdown(&self) -> String {
        let mut md = format!("### {}\n\n", self.title);
        md.push_str(&format!("| {} |\n", self.header.join(" | ")));
        md.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|e| {
                    if e.best {
                        format!("**{}**", e.text)
                    } else {
                        e.text.clone()
                    }
                })
                .collect();
            md.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        md.push_str(&format!("\n{}\n\n", self.full_caption()));
        md
    }

    /// The caption and the notes.
    fn full_caption(&self) -> String {
        std::iter::once(self.caption.as_str())
            .chain(self.notes.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A LaTeX `table` with a booktabs `tabular` (first column left, the rest right);
    /// the best entries bold.
    fn latex(&self) -> String {
        let columns = format!("l{}", "r".repeat(self.header.len().saturating_sub(1)));
        let line = |cells: Vec<String>| format!("{} \\\\\n", cells.join(" & "));
        let mut tex = format!(
            "\\begin{{table}}[ht]\n\\centering\n\\caption{{{}. {}}}\n\\begin{{tabular}}{{{columns}}}\n\\toprule\n",
            latex_escape(&self.title),
            latex_escape(&self.full_caption())
        );
        tex.push_str(&line(self.header.iter().map(|h| latex_escape(h)).collect()));
        tex.push_str("\\midrule\n");
        for row in &self.rows {
            tex.push_str(&line(
                row.iter()
                    .map(|e| {
                        if e.best {
                            format!("\\textbf{{{}}}", latex_escape(&e.text))
                        } else {
                            latex_escape(&e.text)
                        }
                    })
                    .collect(),
            ));
        }
        tex.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n\n");
        tex
    }

    fn html(&self) -> String {
        let mut html = format!("<h3>{}</h3>\n<table>\n<tr>", escape(&self.title));
        for h in &self.header {
            let _ = write!(html, "<th>{}</th>", escape(h));
        }
        html.push_str("</tr>\n");
        for row in &self.rows {
            html.push_str("<tr>");
            for e in row {
                if e.best {
                    let _ = write!(html, "<td><b>{}</b></td>", escape(&e.text));
                } else {
                    let _ = write!(html, "<td>{}</td>", escape(&e.text));
                }
            }
            html.push_str("</tr>\n");
        }
        let _ = write!(
            html,
            "</table>\n<p class=\"caption\">{}</p>\n",
            escape(&self.full_caption())
        );
        html
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` for LaTeX: its special characters escaped, ±, ×, – and ≥ as math or dashes.
fn latex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            '×' => out.push_str("$\\times$"),
            '−' => out.push_str("$-$"),
            '≥' => out.push_str("$\\geq$"),
            '–' => out.push_str("--"),
            _ => out.push(c),
        }
    }
    out
}

fn fmt(value: Option<f64>, digits: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".into(),
    }
}

fn mean_sd(value: (f64, f64), digits: usize) -> String {
    if value.0.is_finite() {
        format!("{:.digits$} ± {:.digits$}", value.0, value.1)
    } else {
        "–".into()
    }
}

/// What was run, at the start of every section.
fn setup(study: &StudyDefinition, plan: &Plan) -> String {
    let finetunes = plan
        .jobs
        .iter()
        .filter(|j| matches!(j.kind, JobKind::Finetune { .. }))
        .count();
    let done = plan
        .jobs
        .iter()
        .filter(|j| matches!(j.kind, JobKind::Finetune { .. }) && j.done_file(study).is_file())
        .count();
    let tasks: Vec<String> = study
        .tasks
        .iter()
        .map(|t| {
            let modality = match t.modality {
                Modality::Ct => "CT",
                Modality::Mri => "MRI",
            };
            format!("{} ({modality})", t.name)
        })
        .collect();
    let steps = study
        .pretraining
        .steps
        .map_or("the preset's epochs".into(), |s| format!("{s} steps"));
    let strategies: Vec<String> = study
        .methods()
        .iter()
        .map(|row| {
            let label = row.label();
            let how = FinetuneConfig::load(
                study.finetune.preset,
                None,
                &study.finetune_overrides(&label),
            )
            .map_or_else(|e| format!("settings do not load: {e}"), |c| strategy(&c));
            format!("{label}: {how}")
        })
        .collect();
    format!(
        "Pretraining: {} preset, {steps}, on {}. Fine-tuning: {} preset, seeds {:?}{}, tasks {}. \
         {done} of {finetunes} fine-tunes finished. Fine-tuning strategy by row: {}.",
        preset_name(study.pretraining.preset),
        study.pretraining.data.display(),
        preset_name(study.finetune.preset),
        study.finetune.seeds,
        study
            .finetune
            .budget_seeds
            .iter()
            .map(|(budget, seeds)| format!(" ({budget}: {seeds:?})"))
            .collect::<String>(),
        tasks.join(", "),
        strategies.join("; ")
    )
}

/// How a fine-tune of `config` trains the encoder, in a few words: `full`,
/// `warmup_decoder (10 decoder epochs)`, `frozen_encoder`, with the encoder's rate
/// scale and layer-wise decay when they are not 1.
fn strategy(config: &FinetuneConfig) -> String {
    let t = &config.train;
    let mut text = t.strategy.name().to_string();
    if t.strategy == Strategy::WarmupDecoder {
        text.push_str(&format!(" ({} decoder epochs)", t.decoder_epochs));
    }
    if t.optimizer.encoder_lr_scale != 1.0 {
        text.push_str(&format!(", encoder lr x{}", t.optimizer.encoder_lr_scale));
    }
    if t.optimizer.layer_decay != 1.0 {
        text.push_str(&format!(", layer decay {}", t.optimizer.layer_decay));
    }
    text
}

/// What made the report, named once per section.
#[derive(Debug, Clone, PartialEq)]
struct Provenance {
    /// The program that wrote it: version, commit, compiled devices (`medssl
    /// --version`).
    build: String,
    /// When the report was written, UTC.
    date: String,
    /// Where the finished jobs ran, from their `timing.json`: each distinct device with
    /// its processor or GPU model and host, in plan order.
    ran_on: Vec<String>,
    /// The study's device setting, named when no job recorded where it ran.
    device: String,
    /// The processor of the machine writing the report.
    cpu: String,
}

impl Provenance {
    /// The provenance of a report written now, here, for `plan` of `study`.
    fn now(study: &StudyDefinition, plan: &Plan, build: &str) -> Provenance {
        let mut ran_on: Vec<String> = Vec::new();
        for job in &plan.jobs {
            if let Some(t) = crate::state::timing(study, job) {
                let place = format!("{} ({}) on {}", t.device, t.model, t.host);
                if !ran_on.contains(&place) {
                    ran_on.push(place);
                }
            }
        }
        Provenance {
            build: build.to_string(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            ran_on,
            device: study.device.clone(),
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
        }
    }

    fn sentence(&self) -> String {
        let jobs = if self.ran_on.is_empty() {
            format!(
                "study device: {} (no job recorded where it ran)",
                self.device
            )
        } else {
            format!("jobs ran on {}", self.ran_on.join(", "))
        };
        format!(
            "{}, report written {} (CPU: {}); {jobs}.",
            self.build, self.date, self.cpu
        )
    }
}

/// The processor's name (`model name` of `/proc/cpuinfo`; `None` elsewhere).
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_string())
}

fn preset_name(preset: medssl_ssl::Preset) -> &'static str {
    match preset {
        medssl_ssl::Preset::Tiny => "tiny",
        medssl_ssl::Preset::Paper => "paper",
    }
}

/// The values behind a cell: `n=CASES×SEEDS` when every seed scored the same cases,
/// else `n=N (CASES cases, SEEDS seeds)` (the seeds' splits chose different test cases).
fn count(c: &Cell) -> String {
    if c.cases * c.seeds == c.n {
        format!("n={}×{}", c.cases, c.seeds)
    } else {
        format!("n={} ({} cases, {} seeds)", c.n, c.cases, c.seeds)
    }
}

/// The sentence for a (task, budget) whose tests cannot reach p < [`ALPHA`] whatever
/// the data: with n paired values the signed-rank test's smallest p is 2/2^n, and
/// Holm's correction over m comparisons multiplies the smallest by m.
fn p_floor_note(a: &Analysis, task: usize, budget: usize) -> Option<String> {
    let pairs: Vec<usize> = (0..a.methods.len())
        .filter_map(|m| a.cells.get(&(m, task, budget)).and_then(|c| c.pairs))
        .collect();
    let most = *pairs.iter().max()?;
    let floor = wilcoxon_min_p(most);
    let comparisons = pairs.len();
    let adjusted = (floor * comparisons as f64).min(1.0);
    if adjusted < ALPHA {
        return None;
    }
    let holm = if comparisons > 1 {
        format!(", {adjusted:.3} after Holm's correction over {comparisons} comparisons")
    } else {
        String::new()
    };
    Some(format!(
        "{}: no difference can be marked, since with {most} paired values (cases × seeds) \
         the smallest p the two-sided Wilcoxon signed-rank test can give is {floor:.3}{holm}, \
         not below {ALPHA}; more test cases or seeds are needed.",
        a.tasks[task]
    ))
}

/// The accuracy table of one budget for one metric.
fn accuracy(a: &Analysis, budget: usize, metric: &str) -> Table {
    let dice = metric == "Dice";
    let mut header = vec!["method".to_string()];
    header.extend(a.tasks.iter().cloned());
    if dice {
        header.push("mean rank".into());
    }
    let rows = (0..a.methods.len())
        .map(|m| {
            let mut row = vec![Entry::from(a.methods[m].clone())];
            for t in 0..a.tasks.len() {
                row.push(match a.cells.get(&(m, t, budget)) {
                    None => Entry::from("–".to_string()),
                    Some(c) => {
                        let (value, digits) = match metric {
                            "Dice" => (c.dice, 3),
                            "HD95" => (c.hd95, 1),
                            _ => (c.nsd, 3),
                        };
                        let text = if dice {
                            let mark = if c.p_vs_best.is_some_and(|p| p < ALPHA) {
                                "*"
                            } else {
                                ""
                            };
                            format!(
                                "{}{mark} ({}), {}",
                                mean_sd(value, digits),
                                c.rank,
                                count(c)
                            )
                        } else {
                            format!("{}, {}", mean_sd(value, digits), count(c))
                        };
                        Entry {
                            text,
                            best: dice && c.rank == 1,
                        }
                    }
                });
            }
            if dice {
                row.push(Entry::from(fmt(a.mean_rank(m, budget), 2)));
            }
            row
        })
        .collect();
    let n = "n: the values pooled, test cases × seeds (when the seeds' splits hold different \
             test cases, the distinct cases and the seeds in parentheses).";
    let caption = match metric {
        "Dice" => format!(
            "Test Dice, mean ± sd over cases and seeds; in parentheses the rank among methods \
             by mean Dice (competition ranking: equal means share the best rank of their \
             group and the next rank is skipped, 1, 2, 2, 4; bold: rank 1). *: below the \
             best method, paired Wilcoxon signed-rank test on per-case Dice, Holm-corrected \
             p < {ALPHA}. {n}"
        ),
        "HD95" => format!("Test HD95 in mm (lower is better), mean ± sd over cases and seeds. {n}"),
        _ => format!("Test normalised surface Dice (1 mm), mean ± sd over cases and seeds. {n}"),
    };
    let notes = if dice {
        (0..a.tasks.len())
            .filter_map(|t| p_floor_note(a, t, budget))
            .collect()
    } else {
        Vec::new()
    };
    Table {
        title: format!("{metric}, budget {}", a.budgets[budget]),
        caption,
        notes,
        header,
        rows,
    }
}

/// Per-class Dice and HD95 of every method on one task at one budget; `None` without
/// results.
fn per_class(a: &Analysis, task: usize, budget: usize) -> Option<Table> {
    let classes = a.classes(task);
    let cells: Vec<_> = (0..a.methods.len())
        .map(|m| a.class_cells(m, task, budget))
        .collect();
    if classes.is_empty() || cells.iter().all(Vec::is_empty) {
        return None;
    }
    let mut header = vec!["method".to_string()];
    for class in &classes {
        header.push(format!("{class} Dice"));
        header.push(format!("{class} HD95"));
    }
    // The best mean Dice of each class, to mark it.
    let best: Vec<f64> = (0..classes.len())
        .map(|k| {
            cells
                .iter()
                .filter_map(|c| c.get(k).map(|c| c.dice.0))
                .filter(|d| d.is_finite())
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    let rows = (0..a.methods.len())
        .filter(|&m| !cells[m].is_empty())
        .map(|m| {
            let mut row = vec![Entry::from(a.methods[m].clone())];
            for (k, c) in cells[m].iter().enumerate() {
                row.push(Entry {
                    text: format!("{}, n={}", mean_sd(c.dice, 3), c.n),
                    best: c.dice.0 == best[k],
                });
                row.push(Entry::from(mean_sd(c.hd95, 1)));
            }
            row
        })
        .collect();
    Some(Table {
        title: format!("Per class: {}, budget {}", a.tasks[task], a.budgets[budget]),
        caption: "Test Dice and HD95 (mm) of each class in label order, mean ± sd over cases \
                  and seeds (n: the values pooled; a case where the class is in neither map \
                  has no Dice, see the README); bold: the best mean Dice of the class."
            .into(),
        notes: Vec::new(),
        header,
        rows,
    })
}

fn few_shot(a: &Analysis) -> Table {
    let (few, many) = (0, a.budgets.len() - 1);
    let mut header = vec!["method".to_string()];
    header.extend(a.tasks.iter().cloned());
    let mut rows: Vec<Vec<Entry>> = (0..a.methods.len())
        .map(|m| {
            let mut row = vec![Entry::from(a.methods[m].clone())];
            for t in 0..a.tasks.len() {
                let gap = match (a.cells.get(&(m, t, many)), a.cells.get(&(m, t, few))) {
                    (Some(hi), Some(lo)) => Some(hi.dice.0 - lo.dice.0),
                    _ => None,
                };
                row.push(Entry::from(fmt(gap, 3)));
            }
            row
        })
        .collect();
    for b in 0..a.budgets.len() {
        let mut row = vec![Entry::from(format!(
            "spread between methods, {}",
            a.budgets[b]
        ))];
        row.push(Entry::from(fmt(a.spread(b), 3)));
        row.extend((1..a.tasks.len()).map(|_| Entry::from(String::new())));
        rows.push(row);
    }
    Table {
        notes: Vec::new(),
        title: format!(
            "Few-shot sensitivity: Dice at {} minus Dice at {}",
            a.budgets[many], a.budgets[few]
        ),
        caption: "Per method and task, the test Dice gained from the most to the fewest labels; \
             the last rows give, per budget, the spread (max − min) of mean Dice between \
             methods, averaged over tasks."
            .into(),
        header,
        rows,
    }
}

fn convergence(a: &Analysis, budget: usize) -> Table {
    let mut header = vec!["method".to_string()];
    header.extend(a.tasks.iter().map(|t| format!("{t}: ep90 / ep95 / AUC")));
    let figure = |f: fn(&Outcome) -> f64, m: usize, t: usize, digits: usize| {
        fmt(a.convergence(m, t, budget, f), digits)
    };
    let rows = (0..a.methods.len())
        .map(|m| {
            let mut row = vec![Entry::from(a.methods[m].clone())];
            for t in 0..a.tasks.len() {
                row.push(Entry::from(format!(
                    "{} / {} / {}",
                    figure(|o| o.epoch_to.0, m, t, 1),
                    figure(|o| o.epoch_to.1, m, t, 1),
                    figure(|o| o.auc, m, t, 3)
                )));
            }
            row
        })
        .collect();
    Table {
        notes: Vec::new(),
        title: format!("Convergence, budget {}", a.budgets[budget]),
        caption: "Epochs until the validation Dice first reaches 90% and 95% of its best, and the \
             area under the validation curve divided by its length, mean over seeds."
            .into(),
        header,
        rows,
    }
}

fn transfer(a: &Analysis) -> Table {
    let mut header = vec!["method".to_string()];
    for b in &a.budgets {
        header.push(format!("CT, {b}"));
        header.push(format!("MRI, {b}"));
    }
    let rows = (0..a.methods.len())
        .map(|m| {
            let mut row = vec![Entry::from(a.methods[m].clone())];
            for b in 0..a.budgets.len() {
                for modality in [Modality::Ct, Modality::Mri] {
                    row.push(Entry::from(fmt(a.modality_dice(m, b, modality), 3)));
                }
            }
            row
        })
        .collect();
    Table {
        notes: Vec::new(),
        title: "Modality transfer: CT-pretrained encoders on CT and MRI tasks".into(),
        caption: "Mean test Dice over the tasks of each modality; the encoders were pretrained on \
             the CT collection."
            .into(),
        header,
        rows,
    }
}

/// CKA per method and encoder stage, `minibatch (linear)`, for one comparison.
fn cka_table(
    a: &Analysis,
    title: String,
    what: &str,
    pick: impl Fn(&CkaResult) -> Option<&FeatureReuse> + Copy,
) -> Option<Table> {
    let stages = a.cka_stages();
    let counts: Vec<usize> = a
        .cka
        .iter()
        .filter_map(|c| pick(&c.result))
        .map(|r| r.patches)
        .collect();
    let (fewest, most) = (counts.iter().min()?, counts.iter().max()?);
    let patches = if fewest == most {
        fewest.to_string()
    } else {
        format!("{fewest}–{most}")
    };
    let mut header = vec!["method".to_string()];
    header.extend(stages.iter().cloned());
    let rows: Vec<Vec<Entry>> = (0..a.methods.len())
        .filter_map(|m| {
            let cells: Vec<(Option<f64>, Option<f64>)> =
                (0..stages.len()).map(|s| a.cka(m, s, pick)).collect();
            cells.iter().any(|c| c.0.is_some()).then(|| {
                let mut row = vec![Entry::from(a.methods[m].clone())];
                row.extend(
                    cells
                        .iter()
                        .map(|c| Entry::from(format!("{} ({})", fmt(c.0, 3), fmt(c.1, 3)))),
                );
                row
            })
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        notes: Vec::new(),
        title,
        caption: format!(
            "{what} Unbiased minibatch CKA (in parentheses: linear CKA over all patches), \
             mean over tasks and seeds, on {patches} patches (at most {PROBE_PATCHES}) of \
             the validation cases of the most-label fine-tune, then its test and training \
             cases where those give too few; each stage output is flattened to channels × \
             voxels per patch."
        ),
        header,
        rows,
    })
}

/// Per task: each row's frozen-feature probe scores by encoder stage, linear (k-NN).
fn probe_tables(a: &Analysis) -> Vec<Table> {
    let stages = a.probe_stages();
    (0..a.tasks.len())
        .filter_map(|t| {
            let rows: Vec<Vec<Entry>> = (0..a.methods.len())
                .filter_map(|m| {
                    let result = a.probe(m, t)?;
                    let mut row = vec![Entry::from(a.methods[m].clone())];
                    row.extend(stages.iter().map(|stage| {
                        let scores = result.stages.get(stage);
                        let linear = scores.and_then(|s| s.linear.balanced_accuracy);
                        let knn = scores.and_then(|s| s.knn.balanced_accuracy);
                        Entry::from(format!("{} ({})", fmt(linear, 3), fmt(knn, 3)))
                    }));
                    Some(row)
                })
                .collect();
            let cases = a
                .probes
                .iter()
                .find(|p| p.task == t)
                .map(|p| (p.result.train_cases, p.result.held_out_cases))?;
            let mut header = vec!["method".to_string()];
            header.extend(stages.iter().cloned());
            Some(Table {
                notes: Vec::new(),
                title: format!("Frozen-feature probes on {}", a.tasks[t]),
                caption: format!(
                    "Balanced accuracy of each encoder stage's tokens as the initial \
                     weights give them, before any fine-tune: a linear classifier \
                     (multinomial logistic regression, balanced classes), in parentheses \
                     k-NN (k = 20, cosine, temperature-weighted), fitted on the tokens of \
                     {} training case(s) and scored on {} test case(s) of the first seed's \
                     split; chance is 1 / classes. A token is labelled by the majority of \
                     the voxels it covers.",
                    cases.0, cases.1
                ),
                header,
                rows,
            })
        })
        .collect()
}

fn cka_tables(a: &Analysis) -> Vec<Table> {
    let mut tables: Vec<Table> = a
        .budgets
        .iter()
        .filter_map(|budget| {
            cka_table(
                a,
                format!("Feature reuse: pretrained against fine-tuned, budget {budget}"),
                "How much of each encoder stage fine-tuning kept (1: unchanged).",
                |r| r.pretrained_vs_finetuned.get(budget),
            )
        })
        .collect();
    tables.extend(cka_table(
        a,
        "Feature reuse: fewest-label against most-label fine-tune".into(),
        "Whether few labels reach the features many labels do, per method and seed.",
        |r| r.few_vs_many.as_ref(),
    ));
    tables
}

/// `<figure>` with the inline SVG, for the HTML report.
fn figure_html(figure: &Figure) -> String {
    format!(
        "<figure id=\"{}\">\n<h3>{}</h3>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
        figure.name,
        escape(&figure.title),
        figure.svg,
        escape(&figure.caption)
    )
}

/// A part of the report: its tables (or figures) after an introduction naming what was
/// run and the provenance.
struct Section {
    title: &'static str,
    tables: Vec<Table>,
}

/// Writes `OUT/report/report.md`, `OUT/report/index.html` and `OUT/report/tables.tex`
/// (the accuracy and per-class tables, booktabs); returns the HTML path. `build` names
/// the program writing it, as `medssl --version` does ("medssl 0.1.0 (commit …)").
pub fn write_report(
    study: &StudyDefinition,
    plan: &Plan,
    build: &str,
) -> Result<std::path::PathBuf> {
    let analysis = Analysis::new(study, plan)?;
    let provenance = Provenance::now(study, plan, build);
    let intro = format!("{} {}", setup(study, plan), provenance.sentence());
    let a = &analysis;
    let budgets = 0..a.budgets.len();
    let mut sections = vec![
        Section {
            title: "Accuracy",
            tables: budgets
                .clone()
                .flat_map(|b| ["Dice", "HD95", "NSD"].map(|metric| accuracy(a, b, metric)))
                .collect(),
        },
        Section {
            title: "Accuracy per class",
            tables: (0..a.tasks.len())
                .flat_map(|t| budgets.clone().filter_map(move |b| per_class(a, t, b)))
                .collect(),
        },
    ];
    let paper_tables = sections.iter().flat_map(|s| &s.tables).map(Table::latex);
    let latex = format!(
        "% medssl study {}: the report's accuracy tables (needs \\usepackage{{booktabs}}).\n\
         % {}\n\n{}",
        study.name,
        intro,
        paper_tables.collect::<String>()
    );
    if a.budgets.len() > 1 {
        sections.push(Section {
            title: "Few-shot sensitivity",
            tables: vec![few_shot(a)],
        });
    }
    sections.push(Section {
        title: "Convergence",
        tables: budgets.clone().map(|b| convergence(a, b)).collect(),
    });
    if a.modalities.contains(&Modality::Mri) && a.modalities.contains(&Modality::Ct) {
        sections.push(Section {
            title: "Modality transfer",
            tables: vec![transfer(a)],
        });
    }
    let probes = probe_tables(a);
    if !probes.is_empty() {
        sections.push(Section {
            title: "Frozen-feature probes",
            tables: probes,
        });
    }
    let cka = cka_tables(a);
    if !cka.is_empty() {
        sections.push(Section {
            title: "Feature reuse",
            tables: cka,
        });
    }
    let figures = figures(a)?;
    let title = format!("medssl study: {}", study.name);
    let mut md = format!("# {title}\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;max-width:70em;margin:2em auto}}\
         table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}\
         .caption,figcaption{{color:#444;font-size:0.9em}}figure{{margin:2em 0}}</style></head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(&title),
    );
    let open_section = |name: &str, md: &mut String, html: &mut String| {
        md.push_str(&format!("## {name}\n\n{intro}\n\n"));
        html.push_str(&format!(
            "<h2>{}</h2>\n<p>{}</p>\n",
            escape(name),
            escape(&intro)
        ));
    };
    for section in &sections {
        open_section(section.title, &mut md, &mut html);
        for table in &section.tables {
            md.push_str(&table.markdown());
            html.push_str(&table.html());
        }
    }
    open_section("Figures", &mut md, &mut html);
    let layout = study.layout();
    let (dir, figure_dir) = (layout.report_dir(), layout.report_figures());
    for d in [&dir, &figure_dir] {
        create_dir_for_writes(d).map_err(|e| BenchError::io(d, e))?;
    }
    for figure in &figures {
        for (extension, bytes) in [
            ("svg", figure.svg.as_bytes().to_vec()),
            ("png", figure.png()?),
        ] {
            let path = figure_dir.join(format!("{}.{extension}", figure.name));
            write_atomically(&path, &bytes).map_err(|e| BenchError::io(&path, e))?;
        }
        md.push_str(&format!(
            "### {}\n\n![{}](figures/{}.png)\n\n{} ([SVG](figures/{}.svg))\n\n",
            figure.title, figure.title, figure.name, figure.caption, figure.name
        ));
        html.push_str(&figure_html(figure));
    }
    html.push_str("</body></html>\n");
    for (path, text) in [
        (layout.report_markdown(), &md),
        (layout.report_html(), &html),
        (layout.report_latex(), &latex),
    ] {
        write_atomically(&path, text.as_bytes()).map_err(|e| BenchError::io(&path, e))?;
    }
    Ok(layout.report_html())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{CaseScore, ClassScore};

    /// A case of one seed with two classes whose Dice are `liver` and `spleen`.
    fn case(seed: u64, id: usize, liver: f64, spleen: f64) -> CaseScore {
        let class = |name: &str, dice: f64| ClassScore {
            class: name.into(),
            dice,
            hd95: 10.0 * (1.0 - dice),
            asd: 1.0,
            nsd: dice,
        };
        CaseScore {
            seed,
            case: format!("case_{id}"),
            dice: (liver + spleen) / 2.0,
            hd95: 10.0 * (1.0 - (liver + spleen) / 2.0),
            nsd: (liver + spleen) / 2.0,
            classes: vec![class("liver", liver), class("spleen", spleen)],
        }
    }

    /// Methods `a`, `b`, `c` on one task at one budget, each with `cases` cases of seed
    /// 0 whose two classes score `dice[m] + 0.02 i` (case i) and `dice[m] - 0.11`: the
    /// same spread for every method, so the paired differences are constant.
    fn analysis(dice: [f64; 3], cases: usize) -> Analysis {
        let outcomes = ["a", "b", "c"]
            .iter()
            .zip(dice)
            .map(|(method, d)| Outcome {
                method: method.to_string(),
                task: 0,
                budget: 0,
                cases: (0..cases)
                    .map(|i| case(0, i, d + 0.02 * i as f64, d - 0.11))
                    .collect(),
                curve: Vec::new(),
                epoch_to: (f64::NAN, f64::NAN),
                auc: f64::NAN,
            })
            .collect();
        let mut a = Analysis {
            methods: vec!["a".into(), "b".into(), "c".into()],
            tasks: vec!["abd".into()],
            modalities: vec![Modality::Ct],
            budgets: vec!["2-shots".into()],
            cells: Default::default(),
            outcomes,
            cka: Vec::new(),
            probes: Vec::new(),
        };
        a.cells = a.compute_cells();
        a
    }

    fn texts(table: &Table) -> Vec<Vec<String>> {
        table
            .rows
            .iter()
            .map(|r| r.iter().map(|e| e.text.clone()).collect())
            .collect()
    }

    #[test]
    fn equal_means_share_the_best_rank_and_the_next_is_skipped() {
        // a and b tie at the top (mean Dice 0.76), c is below (0.66).
        let a = analysis([0.8, 0.8, 0.7], 4);
        let ranks: Vec<usize> = (0..3).map(|m| a.cells[&(m, 0, 0)].rank).collect();
        assert_eq!(ranks, [1, 1, 3]);
        let table = accuracy(&a, 0, "Dice");
        let rows = texts(&table);
        assert_eq!(rows[0][1], "0.760 ± 0.013 (1), n=4×1");
        assert_eq!(rows[2][1], "0.660 ± 0.013 (3), n=4×1");
        assert_eq!(rows[2][2], "3.00", "mean rank over the one task");
        assert!(table.rows[0][1].best && table.rows[1][1].best && !table.rows[2][1].best);
        let hd95 = texts(&accuracy(&a, 0, "HD95"));
        assert_eq!(hd95[2][1], "3.4 ± 0.1, n=4×1");
    }

    #[test]
    fn too_few_pairs_for_significance_are_said_not_left_unmarked() {
        // 4 paired cases: the smallest p is 2/2^4 = 0.125, 0.25 over 2 comparisons.
        let a = analysis([0.8, 0.8, 0.7], 4);
        let table = accuracy(&a, 0, "Dice");
        assert_eq!(
            table.notes,
            [
                "abd: no difference can be marked, since with 4 paired values (cases × seeds) \
              the smallest p the two-sided Wilcoxon signed-rank test can give is 0.125, \
              0.250 after Holm's correction over 2 comparisons, not below 0.05; more test \
              cases or seeds are needed."
            ]
        );
        assert!(!texts(&table)[2][1].contains('*'));
        // 8 pairs: c is below a in every case, 2/2^8 × 2 = 0.016, so it is marked.
        let a = analysis([0.8, 0.8, 0.7], 8);
        let table = accuracy(&a, 0, "Dice");
        assert!(table.notes.is_empty(), "{:?}", table.notes);
        assert!(texts(&table)[2][1].contains("* (3)"), "{:?}", texts(&table));
        assert!(!texts(&table)[1][1].contains('*'), "b ties a exactly");
    }

    #[test]
    fn per_class_tables_follow_the_label_order() {
        let a = analysis([0.8, 0.8, 0.7], 4);
        let table = per_class(&a, 0, 0).unwrap();
        assert_eq!(
            table.header,
            [
                "method",
                "liver Dice",
                "liver HD95",
                "spleen Dice",
                "spleen HD95"
            ]
        );
        let rows = texts(&table);
        assert_eq!(
            rows[2][1..],
            [
                "0.730 ± 0.026, n=4",
                "2.7 ± 0.3",
                "0.590 ± 0.000, n=4",
                "4.1 ± 0.0"
            ]
        );
        assert!(table.rows[0][3].best && !table.rows[2][3].best);
    }

    #[test]
    fn latex_tables_are_booktabs_with_escaped_text() {
        let table = Table {
            title: "Dice, budget 10%".into(),
            caption: "Mean ± sd; n: cases × seeds.".into(),
            notes: vec!["task_1: too few pairs.".into()],
            header: vec!["method".into(), "abd_ct".into()],
            rows: vec![
                vec![
                    Entry::from("import:w_1".to_string()),
                    Entry {
                        text: "0.812 ± 0.030 (1), n=5×3".into(),
                        best: true,
                    },
                ],
                vec![
                    Entry::from("scratch".to_string()),
                    Entry::from("–".to_string()),
                ],
            ],
        };
        assert_eq!(
            table.latex(),
            "\\begin{table}[ht]\n\\centering\n\\caption{Dice, budget 10\\%. Mean $\\pm$ sd; \
             n: cases $\\times$ seeds. task\\_1: too few pairs.}\n\\begin{tabular}{lr}\n\
             \\toprule\nmethod & abd\\_ct \\\\\n\\midrule\nimport:w\\_1 & \\textbf{0.812 \
             $\\pm$ 0.030 (1), n=5$\\times$3} \\\\\nscratch & -- \\\\\n\\bottomrule\n\
             \\end{tabular}\n\\end{table}\n\n"
        );
    }
}
