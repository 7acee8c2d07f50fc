//! The report's plots: the metric by configuration as grouped bars (one group per algorithm
//! and mode, one bar per bit-width, ± one standard deviation), and the latency/accuracy front
//! (drawn by `winq_nas::plot::plot_front`).

use crate::report::{label, Table};
use crate::{Result, SweepError};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Grouped bars of `t.metric`: groups by every grouping field but `bits`, bars by `bits`
/// (one bar per row when the rows do not differ in bits).
pub fn plot_bars(out: &Path, t: &Table) -> Result<()> {
    if t.rows.is_empty() {
        return Err(SweepError::Invalid("no finished runs to plot".into()));
    }
    let err = |e: DrawingAreaErrorKind<std::io::Error>| SweepError::Plot {
        path: out.to_path_buf(),
        why: e.to_string(),
    };
    let by_bits = t.group_by.iter().any(|k| k == "bits");
    let mut groups: Vec<String> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    // (group, series, mean, std)
    let mut bars = Vec::new();
    for r in &t.rows {
        let Some(s) = r.stats.get(&t.metric) else { continue };
        let g = label(t, r, &["bits"]);
        let b = if by_bits {
            format!("{} bits", r.key["bits"])
        } else {
            t.metric.clone()
        };
        if !groups.contains(&g) {
            groups.push(g.clone());
        }
        if !series.contains(&b) {
            series.push(b.clone());
        }
        bars.push((g, b, s.mean, s.std.unwrap_or(0.0)));
    }
    if bars.is_empty() {
        return Err(SweepError::Invalid(format!("no run has the metric {}", t.metric)));
    }
    let (lo, hi) = bars.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), b| {
        (l.min(b.2 - b.3), h.max(b.2 + b.3))
    });
    // Accuracies differ by points near the top: start the axis near the lowest bar.
    let span = (hi - lo).max(1e-9);
    let (y0, y1) = ((lo - 0.3 * span).max(0.0), hi + 0.15 * span);
    let width = (160 + 110 * groups.len()).max(480) as u32;
    let root = SVGBackend::new(out, (width, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let nb = series.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} by configuration", t.metric), ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(60)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..groups.len() as f64, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc(format!("{}{}", t.metric, crate::report::unit(&t.metric)))
        .draw()
        .map_err(err)?;
    // Group names under the axis, centred on their bars (pixel positions from the chart).
    for (i, g) in groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, y0));
        let style = ("sans-serif", 13)
            .into_text_style(&root)
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(g.clone(), (px, py + 8), style))
            .map_err(err)?;
    }
    for (si, s) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        let rects: Vec<_> = bars
            .iter()
            .filter(|b| &b.1 == s)
            .map(|b| {
                let g = groups.iter().position(|x| x == &b.0).unwrap_or(0) as f64;
                let x0 = g + 0.1 + 0.8 * si as f64 / nb;
                (x0, x0 + 0.8 / nb, b.2, b.3)
            })
            .collect();
        chart
            .draw_series(
                rects
                    .iter()
                    .map(|&(a, b, m, _)| Rectangle::new([(a, y0), (b, m)], color.filled())),
            )
            .map_err(err)?
            .label(s.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart
            .draw_series(rects.iter().filter(|r| r.3 > 0.0).map(|&(a, b, m, sd)| {
                let x = (a + b) / 2.0;
                PathElement::new(vec![(x, m - sd), (x, m + sd)], BLACK.stroke_width(1))
            }))
            .map_err(err)?;
    }
    if by_bits {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The latency/accuracy front of the rows that have both (None when none has a latency).
pub fn plot_front(out: &Path, t: &Table) -> Result<Option<()>> {
    let points: Vec<winq_nas::plot::FrontPoint> = t
        .rows
        .iter()
        .filter_map(|r| {
            Some(winq_nas::plot::FrontPoint {
                label: label(t, r, &[]),
                latency_ms: r.stats.get("latency_ms")?.mean,
                accuracy: r.stats.get("test_acc")?.mean,
                searched: r.key.get("command").is_some_and(|c| c == "search"),
            })
        })
        .collect();
    if points.is_empty() {
        return Ok(None);
    }
    winq_nas::plot::plot_front(out, &points, "latency vs test accuracy").map_err(|e| SweepError::Plot {
        path: out.to_path_buf(),
        why: e.to_string(),
    })?;
    Ok(Some(()))
}
