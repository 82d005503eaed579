//! Convergence charts drawn with plotters from a run's store: EM per round (held-out, validation, the E-step's
//! own samples, the control as a dashed line), M-step loss per step, the
//! bound per round, and the effective sample size per round; each as SVG
//! and as PNG (drawn with an embedded DejaVu Sans, so no system fonts are
//! needed). The CLI writes them next to the run; the desktop app shows the
//! same files.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::phase::Phase;
use crate::store::RunStore;

const SIZE: (u32, u32) = (640, 400);
const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// The data the charts show, read once from the store.
struct Series {
    /// (round, EM) with round 0 = after warm-up.
    test_em: Vec<(f64, f64)>,
    valid_em: Vec<(f64, f64)>,
    /// EM of the samples each round's E-step drew (from the model before it).
    sample_em: Vec<(f64, f64)>,
    control_em: Option<f64>,
    /// (global M-step index, loss) per round.
    loss: Vec<(usize, Vec<(f64, f64)>)>,
    bound: Vec<(f64, f64)>,
    ess: Vec<(f64, f64)>,
}

fn read(store: &RunStore) -> Result<Series> {
    let evals = store.evals()?;
    let em_of = |split: &str| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = evals
            .iter()
            .filter(|e| e.split == split)
            .filter_map(|e| Some((e.phase.round_axis()? as f64, e.em)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let rounds = store.rounds()?;
    let mut loss: Vec<(usize, Vec<(f64, f64)>)> = Vec::new();
    let mut x = 0.0;
    for (phase, r) in store.steps(None)? {
        let Some(round) = phase.round() else {
            continue;
        };
        if loss.last().is_none_or(|(r, _)| *r != round) {
            loss.push((round, Vec::new()));
        }
        x += 1.0;
        if let Some((_, points)) = loss.last_mut() {
            points.push((x, r.loss));
        }
    }
    Ok(Series {
        test_em: em_of("test"),
        valid_em: em_of("valid"),
        sample_em: rounds
            .iter()
            .map(|r| ((r.round - 1) as f64, 100.0 * r.summary.sample_em))
            .collect(),
        control_em: evals
            .iter()
            .find(|e| e.phase == Phase::Control && e.split == "test")
            .map(|e| e.em),
        loss,
        bound: rounds
            .iter()
            .map(|r| (r.round as f64, r.summary.bound))
            .collect(),
        ess: rounds
            .iter()
            .map(|r| (r.round as f64, r.summary.ess))
            .collect(),
    })
}

fn chart_error<E: std::fmt::Debug>(e: E) -> Error {
    Error::InvalidSetting(format!("drawing a chart: {e:?}"))
}

/// `(min, max)` of `values` widened so a flat series still has a range.
fn bounds(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        // One point (a single round), or a flat series: a range around it
        // wide enough for the labels to differ.
        let half = (lo.abs() * 0.1).max(1.0);
        return (lo - half, hi + half);
    }
    let span = hi - lo;
    (lo - pad * span, hi + pad * span)
}

fn draw_em<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, s: &Series) -> Result<()> {
    let last = s
        .test_em
        .iter()
        .chain(&s.valid_em)
        .chain(&s.sample_em)
        .map(|p| p.0)
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("Exact match per EM round", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(44)
        .build_cartesian_2d(-0.2..last + 0.2, 0.0..100.0)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .max_light_lines(1)
        .x_desc("round (0 = after warm-up)")
        .y_desc("EM (%)")
        .x_labels((last as usize + 1).min(12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(chart_error)?;
    for (i, (name, points)) in [
        ("held-out test", &s.test_em),
        ("validation", &s.valid_em),
        ("E-step samples (train)", &s.sample_em),
    ]
    .into_iter()
    .enumerate()
    {
        let color = COLORS[i];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(chart_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(chart_error)?;
    }
    if let Some(c) = s.control_em {
        let color = COLORS[3];
        let dashes = (0..)
            .map(|i| i as f64 * 0.1 - 0.2)
            .take_while(|x| *x < last + 0.2)
            .collect::<Vec<_>>();
        chart
            .draw_series(
                dashes
                    .chunks(2)
                    .filter(|d| d.len() == 2)
                    .map(|d| PathElement::new(vec![(d[0], c), (d[1], c)], color)),
            )
            .map_err(chart_error)?
            .label("control: more warm-up (test)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(chart_error)
}

fn draw_line<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    groups: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let all = || groups.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = bounds(all().map(|p| p.0), 0.02);
    let (y0, y1) = bounds(all().map(|p| p.1), 0.08);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(chart_error)?;
    // Every x here counts rounds or steps: whole numbers only.
    chart
        .configure_mesh()
        .max_light_lines(1)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(((x1 - x0).round() as usize + 1).clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(chart_error)?;
    for (i, (name, points)) in groups.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let series = chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(chart_error)?;
        if !name.is_empty() {
            series
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        if points.len() <= 20 {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(chart_error)?;
        }
    }
    if groups.iter().any(|(n, _)| !n.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
    }
    Ok(())
}

/// The four charts; each draws on any plotters backend.
#[derive(Clone, Copy)]
enum Chart {
    Em,
    Loss,
    Bound,
    Ess,
}

impl Chart {
    const ALL: [(Chart, &'static str); 4] = [
        (Chart::Em, "em"),
        (Chart::Loss, "loss"),
        (Chart::Bound, "bound"),
        (Chart::Ess, "ess"),
    ];

    fn draw<DB: DrawingBackend>(self, area: &DrawingArea<DB, Shift>, s: &Series) -> Result<()> {
        match self {
            Chart::Em => draw_em(area, s),
            Chart::Loss => {
                let groups: Vec<(String, Vec<(f64, f64)>)> = s
                    .loss
                    .iter()
                    .map(|(r, p)| (format!("round {r}"), p.clone()))
                    .collect();
                draw_line(
                    area,
                    "M-step loss per step",
                    "optimizer step",
                    "weighted CE",
                    &groups,
                )
            }
            Chart::Bound => draw_line(
                area,
                "Bound: mean log mean_k p(y|x,z_k)",
                "round",
                "nats",
                &[(String::new(), s.bound.clone())],
            ),
            Chart::Ess => draw_line(
                area,
                "Effective sample size of the weights",
                "round",
                "ESS",
                &[(String::new(), s.ess.clone())],
            ),
        }
    }
}

/// Draws `charts` on `area`: one chart fills it, several share it 2 by 2.
fn draw_on<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    charts: &[Chart],
    s: &Series,
) -> Result<()> {
    area.fill(&WHITE).map_err(chart_error)?;
    if let [one] = charts {
        one.draw(&area, s)?;
    } else {
        for (cell, chart) in area.split_evenly((2, 2)).iter().zip(charts) {
            chart.draw(cell, s)?;
        }
    }
    area.present().map_err(chart_error)
}

/// The embedded font the PNG charts are drawn with (no system fonts needed).
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let font: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // Only fails on a malformed font, which the tests would catch.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, font);
    });
}

/// Writes `charts` as `NAME.svg` and `NAME.png` in `dir`.
fn write_both(
    dir: &Path,
    name: &str,
    charts: &[Chart],
    size: (u32, u32),
    s: &Series,
) -> Result<[PathBuf; 2]> {
    // Both backends lay text out with the font's metrics.
    register_font();
    let mut svg = String::new();
    draw_on(
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        charts,
        s,
    )?;
    let svg_path = dir.join(format!("{name}.svg"));
    write_atomic(&svg_path, svg.as_bytes())?;
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    draw_on(
        BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area(),
        charts,
        s,
    )?;
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, size.0, size.1);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(chart_error)?;
        writer.write_image_data(&pixels).map_err(chart_error)?;
    }
    let png_path = dir.join(format!("{name}.png"));
    write_atomic(&png_path, &png)?;
    Ok([svg_path, png_path])
}

/// Draws every chart of the run in `store` into `dir`, each as SVG and PNG,
/// plus `convergence.svg`/`.png` with all four; returns the files.
pub fn draw_all(store: &RunStore, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let series = read(store)?;
    let mut written = Vec::new();
    for (chart, name) in Chart::ALL {
        written.extend(write_both(dir, name, &[chart], SIZE, &series)?);
    }
    let all = Chart::ALL.map(|(c, _)| c);
    let double = (SIZE.0 * 2, SIZE.1 * 2);
    written.extend(write_both(dir, "convergence", &all, double, &series)?);
    Ok(written)
}
