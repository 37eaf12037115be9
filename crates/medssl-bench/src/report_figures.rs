//! The figures of the study report, from its [`Analysis`]: Dice bars per task, the
//! mean rank, few-shot against many-shot lines, validation curves, the probes' scores
//! per stage, and CKA heatmaps.
//! Captions say what each figure shows; what was run and the provenance open the
//! report's Figures section.

use crate::analysis::{Analysis, Outcome};
use crate::error::Result;
use crate::feature_reuse::{CkaResult, FeatureReuse};
use crate::figures::{Bar, Figure, grouped_bars, heatmap, lines};

/// Every figure the analysis has data for.
pub fn figures(a: &Analysis) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let figure = |name: String, title: String, caption: String, svg: String| Figure {
        name,
        title,
        caption,
        svg,
    };
    for (t, task) in a.tasks.iter().enumerate() {
        let values: Vec<Vec<Bar>> = (0..a.methods.len())
            .map(|m| {
                (0..a.budgets.len())
                    .map(|b| a.cells.get(&(m, t, b)).map(|c| (c.dice.0, Some(c.dice.1))))
                    .collect()
            })
            .collect();
        if values.iter().flatten().all(Option::is_none) {
            continue;
        }
        figures.push(figure(
            format!("dice-{task}"),
            format!("Test Dice on {task}"),
            "Mean test Dice over cases and seeds per method and label budget; the whisker \
             spans ± one standard deviation."
                .into(),
            grouped_bars(&a.methods, &a.budgets, &values, "test Dice", (0.0, 1.0))?,
        ));
    }
    let ranks: Vec<Vec<Bar>> = (0..a.methods.len())
        .map(|m| {
            (0..a.budgets.len())
                .map(|b| a.mean_rank(m, b).map(|r| (r, None)))
                .collect()
        })
        .collect();
    if ranks.iter().flatten().any(Option::is_some) {
        figures.push(figure(
            "mean-rank".into(),
            "Mean rank over tasks".into(),
            "Competition rank of each method by mean test Dice on each task (1 is best, \
             ties share the best rank), averaged over the tasks, per label budget: shorter \
             bars are better."
                .into(),
            grouped_bars(
                &a.methods,
                &a.budgets,
                &ranks,
                "mean rank (1 = best)",
                (0.0, a.methods.len() as f64),
            )?,
        ));
    }
    if a.budgets.len() > 1 {
        let series = per_method(a, |m| {
            (0..a.budgets.len())
                .filter_map(|b| a.budget_dice(m, b).map(|d| (b as f64, d)))
                .collect()
        });
        figures.push(figure(
            "few-vs-many".into(),
            "Few-shot against many-shot".into(),
            "Mean test Dice over the tasks at each label budget, one line per method: a \
             flat line loses little with few labels."
                .into(),
            lines(
                &series,
                Some(&a.budgets),
                "label budget",
                "test Dice",
                (0.0, 1.0),
            )?,
        ));
    }
    for (t, task) in a.tasks.iter().enumerate() {
        for (b, budget) in a.budgets.iter().enumerate() {
            let series = per_method(a, |m| mean_curve(a, m, t, b));
            if series.is_empty() {
                continue;
            }
            figures.push(figure(
                format!("convergence-{task}-{budget}"),
                format!("Validation Dice during fine-tuning: {task}, budget {budget}"),
                "Validation Dice at each validation epoch, mean over seeds, one line per \
                 method."
                    .into(),
                lines(&series, None, "epoch", "validation Dice", (0.0, 1.0))?,
            ));
        }
    }
    let stages = a.probe_stages();
    for (t, task) in a.tasks.iter().enumerate() {
        let series: Vec<(String, Vec<(f64, f64)>)> = (0..a.methods.len())
            .filter_map(|m| {
                let result = a.probe(m, t)?;
                let points = stages
                    .iter()
                    .enumerate()
                    .filter_map(|(i, stage)| {
                        let score = result.stages.get(stage)?.linear.balanced_accuracy?;
                        Some((i as f64, score))
                    })
                    .collect();
                Some((a.methods[m].clone(), points))
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        figures.push(figure(
            format!("probe-{task}"),
            format!("Frozen-feature linear probes on {task}"),
            "Balanced accuracy of a linear classifier on each encoder stage's tokens of the \
             initial weights, one line per method (scratch: the random initialisation), on \
             the test cases of the first seed's split."
                .into(),
            lines(
                &series,
                Some(&stages),
                "encoder stage",
                "linear probe balanced accuracy",
                (0.0, 1.0),
            )?,
        ));
    }
    let stages = a.cka_stages();
    for budget in &a.budgets {
        let grid = cka_grid(a, stages.len(), |r| r.pretrained_vs_finetuned.get(budget));
        if let Some((rows, values)) = grid {
            figures.push(figure(
                format!("cka-pretrained-{budget}"),
                format!("Feature reuse: pretrained against fine-tuned, budget {budget}"),
                "Unbiased minibatch CKA between each encoder stage before and after \
                 fine-tuning, mean over tasks and seeds, on patches of the validation cases \
                 (1: fine-tuning kept the stage's representation)."
                    .into(),
                heatmap(&rows, &stages, &values)?,
            ));
        }
    }
    if let Some((rows, values)) = cka_grid(a, stages.len(), |r| r.few_vs_many.as_ref()) {
        figures.push(figure(
            "cka-few-vs-many".into(),
            format!(
                "Feature reuse: {} against {} fine-tuned",
                a.budgets[0],
                a.budgets[a.budgets.len() - 1]
            ),
            "Unbiased minibatch CKA between each encoder stage of the fewest-label and the \
             most-label fine-tune of the same method and seed, mean over tasks and seeds."
                .into(),
            heatmap(&rows, &stages, &values)?,
        ));
    }
    Ok(figures)
}

/// One named series per method that has points.
fn per_method(
    a: &Analysis,
    points: impl Fn(usize) -> Vec<(f64, f64)>,
) -> Vec<(String, Vec<(f64, f64)>)> {
    (0..a.methods.len())
        .map(|m| (a.methods[m].clone(), points(m)))
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

/// The validation curve of (method, task, budget), mean over the seeds at each epoch.
fn mean_curve(a: &Analysis, m: usize, t: usize, b: usize) -> Vec<(f64, f64)> {
    let runs: Vec<&Outcome> = a
        .outcomes
        .iter()
        .filter(|o| o.method == a.methods[m] && o.task == t && o.budget == b)
        .collect();
    let mut by_epoch = std::collections::BTreeMap::<u64, Vec<f64>>::new();
    for (epoch, dice) in runs.iter().flat_map(|o| &o.curve) {
        if dice.is_finite() {
            by_epoch.entry(*epoch).or_default().push(*dice);
        }
    }
    by_epoch
        .into_iter()
        .map(|(epoch, d)| (epoch as f64, d.iter().sum::<f64>() / d.len() as f64))
        .collect()
}

/// The rows (methods with a value) and cells of a CKA heatmap.
type Grid = (Vec<String>, Vec<Vec<Option<f64>>>);

fn cka_grid(
    a: &Analysis,
    stages: usize,
    pick: impl Fn(&CkaResult) -> Option<&FeatureReuse> + Copy,
) -> Option<Grid> {
    let (rows, values): (Vec<String>, Vec<Vec<Option<f64>>>) = (0..a.methods.len())
        .map(|m| {
            let cells: Vec<Option<f64>> = (0..stages).map(|s| a.cka(m, s, pick).0).collect();
            (a.methods[m].clone(), cells)
        })
        .filter(|(_, cells)| cells.iter().any(Option::is_some))
        .unzip();
    (!rows.is_empty()).then_some((rows, values))
}
