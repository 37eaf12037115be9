//! The study report: `OUT/report/report.md` and a self-contained
//! `OUT/report/index.html` with the same tables and figures (inline SVG in the HTML,
//! PNG beside the Markdown, both under `OUT/report/figures/`), each captioned with what
//! was run.

use std::fmt::Write as _;

use medssl_io::atomic::{create_dir_for_writes, write_atomically};

use crate::analysis::{ALPHA, Analysis, Outcome};
use crate::definition::{Modality, StudyDefinition};
use crate::error::{BenchError, Result};
use crate::feature_reuse::{CkaResult, FeatureReuse, PROBE_PATCHES};
use crate::figures::Figure;
use crate::plan::{JobKind, Plan};
use crate::report_figures::figures;

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
        md.push_str(&format!("\n{}\n\n", self.caption));
        md
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
            escape(&self.caption)
        );
        html
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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

/// What was run, for every caption.
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
    format!(
        "Pretraining: {} preset, {steps}, on {}. Fine-tuning: {} preset, seeds {:?}, tasks {}. \
         {done} of {finetunes} fine-tunes finished.",
        preset_name(study.pretraining.preset),
        study.pretraining.data.display(),
        preset_name(study.finetune.preset),
        study.finetune.seeds,
        tasks.join(", ")
    )
}

fn preset_name(preset: medssl_ssl::Preset) -> &'static str {
    match preset {
        medssl_ssl::Preset::Tiny => "tiny",
        medssl_ssl::Preset::Paper => "paper",
    }
}

/// The accuracy table of one budget for one metric.
fn accuracy(a: &Analysis, budget: usize, metric: &str, setup: &str) -> Table {
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
                        let mut text = mean_sd(value, digits);
                        if dice {
                            let mark = if c.p_vs_best.is_some_and(|p| p < ALPHA) {
                                "*"
                            } else {
                                ""
                            };
                            text = format!("{text}{mark} ({})", fmt(Some(c.rank), 1));
                        }
                        Entry {
                            text,
                            best: dice && c.rank == 1.0,
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
    let what = match metric {
        "Dice" => format!(
            "Test Dice, mean ± sd over cases and seeds (rank among methods; bold: best). \
             *: below the best method, paired Wilcoxon signed-rank test on per-case Dice, \
             Holm-corrected p < {ALPHA}."
        ),
        "HD95" => "Test HD95 in mm (lower is better), mean ± sd over cases and seeds.".into(),
        _ => "Test normalised surface Dice (1 mm), mean ± sd over cases and seeds.".into(),
    };
    Table {
        title: format!("{metric}, budget {}", a.budgets[budget]),
        caption: format!("{what} {setup}"),
        header,
        rows,
    }
}

fn few_shot(a: &Analysis, setup: &str) -> Table {
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
        title: format!(
            "Few-shot sensitivity: Dice at {} minus Dice at {}",
            a.budgets[many], a.budgets[few]
        ),
        caption: format!(
            "Per method and task, the test Dice gained from the most to the fewest labels; \
             the last rows give, per budget, the spread (max − min) of mean Dice between \
             methods, averaged over tasks. {setup}"
        ),
        header,
        rows,
    }
}

fn convergence(a: &Analysis, budget: usize, setup: &str) -> Table {
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
        title: format!("Convergence, budget {}", a.budgets[budget]),
        caption: format!(
            "Epochs until the validation Dice first reaches 90% and 95% of its best, and the \
             area under the validation curve divided by its length, mean over seeds. {setup}"
        ),
        header,
        rows,
    }
}

fn transfer(a: &Analysis, setup: &str) -> Table {
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
        title: "Modality transfer: CT-pretrained encoders on CT and MRI tasks".into(),
        caption: format!(
            "Mean test Dice over the tasks of each modality; the encoders were pretrained on \
             the CT collection. {setup}"
        ),
        header,
        rows,
    }
}

/// CKA per method and encoder stage, `minibatch (linear)`, for one comparison.
fn cka_table(
    a: &Analysis,
    title: String,
    what: &str,
    setup: &str,
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
        title,
        caption: format!(
            "{what} Unbiased minibatch CKA (in parentheses: linear CKA over all patches), \
             mean over tasks and seeds, on {patches} patches (at most {PROBE_PATCHES}) of \
             the validation cases of the most-label fine-tune, then its test and training \
             cases where those give too few; each stage output is flattened to channels × \
             voxels per patch. {setup}"
        ),
        header,
        rows,
    })
}

fn cka_tables(a: &Analysis, setup: &str) -> Vec<Table> {
    let mut tables: Vec<Table> = a
        .budgets
        .iter()
        .filter_map(|budget| {
            cka_table(
                a,
                format!("Feature reuse: pretrained against fine-tuned, budget {budget}"),
                "How much of each encoder stage fine-tuning kept (1: unchanged).",
                setup,
                |r| r.pretrained_vs_finetuned.get(budget),
            )
        })
        .collect();
    tables.extend(cka_table(
        a,
        "Feature reuse: fewest-label against most-label fine-tune".into(),
        "Whether few labels reach the features many labels do, per method and seed.",
        setup,
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

/// Writes `OUT/report/report.md` and `OUT/report/index.html`; returns the HTML path.
pub fn write_report(study: &StudyDefinition, plan: &Plan) -> Result<std::path::PathBuf> {
    let analysis = Analysis::new(study, plan)?;
    let setup = setup(study, plan);
    let mut tables = Vec::new();
    for b in 0..analysis.budgets.len() {
        for metric in ["Dice", "HD95", "NSD"] {
            tables.push(accuracy(&analysis, b, metric, &setup));
        }
    }
    if analysis.budgets.len() > 1 {
        tables.push(few_shot(&analysis, &setup));
    }
    for b in 0..analysis.budgets.len() {
        tables.push(convergence(&analysis, b, &setup));
    }
    if analysis.modalities.contains(&Modality::Mri) && analysis.modalities.contains(&Modality::Ct) {
        tables.push(transfer(&analysis, &setup));
    }
    tables.extend(cka_tables(&analysis, &setup));
    let figures = figures(&analysis, &setup)?;
    let title = format!("medssl study: {}", study.name);
    let mut md = format!("# {title}\n\n{setup}\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;max-width:70em;margin:2em auto}}\
         table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}\
         .caption,figcaption{{color:#444;font-size:0.9em}}figure{{margin:2em 0}}</style></head>\n<body>\n<h1>{t}</h1>\n<p>{s}</p>\n",
        t = escape(&title),
        s = escape(&setup)
    );
    for table in &tables {
        md.push_str(&table.markdown());
        html.push_str(&table.html());
    }
    md.push_str("## Figures\n\n");
    html.push_str("<h2>Figures</h2>\n");
    let dir = study.out_dir().join("report");
    let figure_dir = dir.join("figures");
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
    for (name, text) in [("report.md", &md), ("index.html", &html)] {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes()).map_err(|e| BenchError::io(&path, e))?;
    }
    Ok(dir.join("index.html"))
}
