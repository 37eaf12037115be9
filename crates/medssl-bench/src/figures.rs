//! The report's figures: drawn once as SVG with `plotters` (the master, inlined in the
//! HTML report) and rasterised to PNG with `resvg` (for slides and the Markdown
//! report), so both show the same figure.
//!
//! Three kinds cover the report: grouped horizontal bars over the methods (Dice per
//! task, mean rank), lines with markers (few-shot vs many-shot, convergence) and
//! heatmaps (CKA per stage and method). Text uses a bundled DejaVu Sans, so the PNGs do
//! not depend on the fonts of the machine that renders them.

use std::sync::Arc;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{BenchError, Result};

/// The font of every figure (DejaVu Sans, see `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Series colours (the "tab10" palette, distinguishable in print and for most colour
/// vision deficiencies).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// PNG pixels per SVG unit.
const PNG_SCALE: f32 = 2.0;

/// One figure of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem (`dice-abdomen-ct`): the report writes `NAME.svg` and `NAME.png`.
    pub name: String,
    /// Heading above the figure.
    pub title: String,
    /// What was run and what is shown.
    pub caption: String,
    /// The drawing.
    pub svg: String,
}

impl Figure {
    /// The figure rasterised at twice its SVG size.
    pub fn png(&self) -> Result<Vec<u8>> {
        let fail = |e: String| BenchError::Invalid(format!("figure {}: {e}", self.name));
        let mut options = resvg::usvg::Options {
            font_family: "DejaVu Sans".into(),
            ..Default::default()
        };
        let fonts = Arc::make_mut(&mut options.fontdb);
        fonts.load_font_data(FONT.to_vec());
        fonts.set_sans_serif_family("DejaVu Sans");
        let tree =
            resvg::usvg::Tree::from_str(&self.svg, &options).map_err(|e| fail(e.to_string()))?;
        let size = tree
            .size()
            .to_int_size()
            .scale_by(PNG_SCALE)
            .ok_or_else(|| fail("empty".into()))?;
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
            .ok_or_else(|| fail("empty".into()))?;
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::from_scale(PNG_SCALE, PNG_SCALE),
            &mut pixmap.as_mut(),
        );
        pixmap.encode_png().map_err(|e| fail(e.to_string()))
    }
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> BenchError {
    BenchError::Invalid(format!("drawing a figure: {e}"))
}

/// Draws on an SVG canvas of `size` and returns the SVG text.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    Ok(text)
}

/// A value with an optional spread (±sd) drawn as a whisker.
pub type Bar = Option<(f64, Option<f64>)>;

/// Horizontal bars: one row per category (top to bottom), one bar per group in each
/// row (`values[category][group]`), on an x axis from `x_range`.
pub fn grouped_bars(
    categories: &[String],
    groups: &[String],
    values: &[Vec<Bar>],
    x_desc: &str,
    x_range: (f64, f64),
) -> Result<String> {
    let row = 12.0 * groups.len() as f64 + 10.0;
    let height = (row * categories.len() as f64 + 110.0) as u32;
    svg((820, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_left(130)
            .x_label_area_size(40)
            .build_cartesian_2d(x_range.0..x_range.1, 0.0..categories.len() as f64)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .y_labels(0)
            .x_desc(x_desc)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(draw_error)?;
        let band = 0.8 / groups.len() as f64;
        for (c, bars) in values.iter().enumerate() {
            // Category 0 at the top.
            let top = categories.len() as f64 - c as f64 - 0.1;
            for (g, bar) in bars.iter().enumerate() {
                let Some((value, spread)) = bar else { continue };
                let (y0, y1) = (top - band * (g + 1) as f64, top - band * g as f64);
                let colour = PALETTE[g % PALETTE.len()];
                chart
                    .draw_series([Rectangle::new(
                        [(x_range.0, y0), (*value, y1)],
                        colour.filled(),
                    )])
                    .map_err(draw_error)?;
                if let Some(sd) = spread.filter(|s| s.is_finite() && *s > 0.0) {
                    let y = (y0 + y1) / 2.0;
                    let (lo, hi) = ((value - sd).max(x_range.0), (value + sd).min(x_range.1));
                    chart
                        .draw_series([PathElement::new(vec![(lo, y), (hi, y)], BLACK)])
                        .map_err(draw_error)?;
                }
            }
            let (x, y) = chart.backend_coord(&(x_range.0, top - 0.4));
            root.draw(&Text::new(
                categories[c].clone(),
                (x - 8, y),
                label(HPos::Right),
            ))
            .map_err(draw_error)?;
        }
        legend(root, groups, (height - 22) as i32)
    })
}

/// Label text, anchored at `anchor` horizontally and centred vertically.
fn label(anchor: HPos) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(anchor, VPos::Center))
}

/// One legend entry: a swatch of series `index`'s colour and its name, at `at`.
fn key(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    index: usize,
    name: &str,
    at: (i32, i32),
) -> Result<()> {
    let (x, y) = at;
    let colour = PALETTE[index % PALETTE.len()];
    area.draw(&Rectangle::new(
        [(x, y - 6), (x + 14, y + 6)],
        colour.filled(),
    ))
    .map_err(draw_error)?;
    area.draw(&Text::new(name.to_string(), (x + 18, y), label(HPos::Left)))
        .map_err(draw_error)
}

/// A one-line legend of `names` at pixel row `y`, in palette order.
fn legend(root: &DrawingArea<SVGBackend<'_>, Shift>, names: &[String], y: i32) -> Result<()> {
    let mut x = 130;
    for (i, name) in names.iter().enumerate() {
        key(root, i, name, (x, y))?;
        x += 30 + 8 * name.chars().count() as i32;
        if x > 720 {
            return Ok(());
        }
    }
    Ok(())
}

/// Lines with a marker at every point, one per series, with a legend; the x axis shows
/// `x_labels[i]` at `x = i` when given.
pub fn lines(
    series: &[(String, Vec<(f64, f64)>)],
    x_labels: Option<&[String]>,
    x_desc: &str,
    y_desc: &str,
    y_range: (f64, f64),
) -> Result<String> {
    let points = series.iter().flat_map(|(_, p)| p);
    let (lo, hi) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(0.25);
    let legend_rows = series.len().div_ceil(5) as u32;
    svg((820, 420 + 20 * legend_rows), |root| {
        let (plot, keys) = root.split_vertically(400);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((lo - pad)..(hi + pad), y_range.0..y_range.1)
            .map_err(draw_error)?;
        let tick = |x: &f64| match x_labels {
            Some(labels) if (x - x.round()).abs() < 1e-6 && *x >= 0.0 => {
                labels.get(x.round() as usize).cloned().unwrap_or_default()
            }
            Some(_) => String::new(),
            None => format!("{x}"),
        };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&tick)
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 13));
        if let Some(labels) = x_labels {
            mesh.x_labels(labels.len());
        }
        mesh.draw().map_err(draw_error)?;
        for (i, (_, points)) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(draw_error)?;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(draw_error)?;
        }
        for (i, (name, _)) in series.iter().enumerate() {
            let (x, y) = (10 + 160 * (i % 5) as i32, 8 + 20 * (i / 5) as i32);
            key(&keys, i, name, (x, y))?;
        }
        Ok(())
    })
}

/// A heatmap of `values[row][column]` in [0, 1] (white to dark blue), each cell
/// labelled with its value; missing cells stay grey.
pub fn heatmap(rows: &[String], columns: &[String], values: &[Vec<Option<f64>>]) -> Result<String> {
    let cell = (110, 26);
    let (left, top) = (130, 30);
    let width = left + cell.0 * columns.len() as i32 + 20;
    let height = top + cell.1 * rows.len() as i32 + 20;
    svg((width as u32, height as u32), |root| {
        for (c, name) in columns.iter().enumerate() {
            let x = left + cell.0 * c as i32 + cell.0 / 2;
            root.draw(&Text::new(name.clone(), (x, top - 14), label(HPos::Center)))
                .map_err(draw_error)?;
        }
        for (r, name) in rows.iter().enumerate() {
            let y = top + cell.1 * r as i32;
            root.draw(&Text::new(
                name.clone(),
                (left - 8, y + cell.1 / 2),
                label(HPos::Right),
            ))
            .map_err(draw_error)?;
            for (c, value) in values[r].iter().enumerate() {
                let x = left + cell.0 * c as i32;
                let (fill, text) = match value {
                    Some(v) => (shade(*v), format!("{v:.2}")),
                    None => (RGBColor(220, 220, 220), "–".to_string()),
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell.0, y + cell.1)],
                    fill.filled(),
                ))
                .map_err(draw_error)?;
                let ink = if value.is_some_and(|v| v > 0.6) {
                    WHITE
                } else {
                    BLACK
                };
                root.draw(&Text::new(
                    text,
                    (x + cell.0 / 2, y + cell.1 / 2),
                    label(HPos::Center).color(&ink),
                ))
                .map_err(draw_error)?;
            }
        }
        Ok(())
    })
}

/// White at 0 to dark blue at 1.
fn shade(value: f64) -> RGBColor {
    let t = value.clamp(0.0, 1.0);
    let mix = |white: f64, blue: f64| (white + (blue - white) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(svg: String) -> Figure {
        Figure {
            name: "test".into(),
            title: "test".into(),
            caption: String::new(),
            svg,
        }
    }

    /// Whether the SVG draws `text` as one text element.
    fn has_text(svg: &str, text: &str) -> bool {
        svg.contains(&format!(">\n{text}\n<"))
    }

    /// The PNG's size and how many of its pixels are not white.
    fn inked(png: &[u8]) -> ((u32, u32), usize) {
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(png).unwrap();
        let inked = pixmap
            .pixels()
            .iter()
            .filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255))
            .count();
        ((pixmap.width(), pixmap.height()), inked)
    }

    #[test]
    fn bars_draw_each_value_and_its_label() {
        let categories = vec!["scratch".to_string(), "smit".to_string()];
        let groups = vec!["2-shots".to_string(), "all".to_string()];
        let values = vec![
            vec![Some((0.5, Some(0.1))), Some((0.75, None))],
            vec![None, Some((0.25, Some(0.05)))],
        ];
        let svg = grouped_bars(&categories, &groups, &values, "Dice", (0.0, 1.0)).unwrap();
        for text in ["scratch", "smit", "2-shots", "all", "Dice"] {
            assert!(has_text(&svg, text), "{text} in {svg}");
        }
        // Three bars and two legend swatches are filled with the first two palette colours.
        assert_eq!(svg.matches("#1F77B4").count(), 2, "{svg}");
        assert_eq!(svg.matches("#FF7F0E").count(), 3, "{svg}");
        let (size, inked) = inked(&figure(svg).png().unwrap());
        assert_eq!(size.0, 1640);
        assert!(
            inked > 10_000,
            "the bars and text are drawn: {inked} pixels"
        );
    }

    #[test]
    fn a_heatmap_labels_every_cell_and_greys_missing_ones() {
        let rows = vec!["dino".to_string(), "smit".to_string()];
        let columns = vec!["stage1".to_string(), "stage2".to_string()];
        let values = vec![vec![Some(0.0), Some(1.0)], vec![Some(0.5), None]];
        let svg = heatmap(&rows, &columns, &values).unwrap();
        for text in ["0.00", "1.00", "0.50", "–", "stage2", "smit"] {
            assert!(has_text(&svg, text), "{text} in {svg}");
        }
        assert!(svg.contains("#FFFFFF") && svg.contains("#08306B") && svg.contains("#DCDCDC"));
        let (size, inked) = inked(&figure(svg).png().unwrap());
        assert_eq!(size, (2 * 370, 2 * 102));
        assert!(inked > 5_000, "{inked}");
    }

    #[test]
    fn lines_mark_every_point_and_name_the_budgets() {
        let series = vec![
            ("scratch".to_string(), vec![(0.0, 0.2), (1.0, 0.6)]),
            ("smit".to_string(), vec![(0.0, 0.4), (1.0, 0.7)]),
        ];
        let labels = vec!["2-shots".to_string(), "all".to_string()];
        let svg = lines(&series, Some(&labels), "label budget", "Dice", (0.0, 1.0)).unwrap();
        for text in ["2-shots", "all", "scratch", "smit", "label budget"] {
            assert!(has_text(&svg, text), "{text} in {svg}");
        }
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        figure(svg).png().unwrap();
    }
}
