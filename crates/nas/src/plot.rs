//! The candidate probabilities of every searchable layer over the search, one panel per layer.

use crate::search::TracePoint;
use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;
use std::path::Path;

/// Writes an SVG grid of panels (one per layer), a line per candidate; `names[l][i]` names
/// candidate i of layer l. Candidates with the same name share a colour across panels.
pub fn plot_probabilities(out: &Path, trace: &[TracePoint], names: &[Vec<String>]) -> Result<()> {
    if trace.is_empty() || names.is_empty() {
        bail!("nothing to plot");
    }
    let mut palette: Vec<&str> = Vec::new();
    for n in names.iter().flatten() {
        if !palette.contains(&n.as_str()) {
            palette.push(n);
        }
    }
    let layers = names.len();
    let cols = (layers as f64).sqrt().ceil() as usize;
    let rows = layers.div_ceil(cols);
    let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("cannot write {}: {e}", out.display());
    let root = SVGBackend::new(out, (300 * cols as u32, 220 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (legend, body) = root.split_vertically(40);
    for (i, n) in palette.iter().enumerate() {
        let x = 10 + 150 * i as i32;
        let color = Palette99::pick(i).to_rgba();
        legend
            .draw(&PathElement::new(
                vec![(x, 20), (x + 20, 20)],
                color.stroke_width(3),
            ))
            .map_err(err)?;
        legend
            .draw(&Text::new(n.to_string(), (x + 25, 13), ("sans-serif", 13)))
            .map_err(err)?;
    }
    let last = trace.last().map_or(1, |t| t.step).max(1) as f64;
    for (l, area) in body
        .split_evenly((rows, cols))
        .into_iter()
        .enumerate()
        .take(layers)
    {
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("layer {l}"), ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(30)
            .build_cartesian_2d(0f64..last, 0f64..1f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(3)
            .label_style(("sans-serif", 10))
            .draw()
            .map_err(err)?;
        for (i, n) in names[l].iter().enumerate() {
            let k = palette.iter().position(|p| p == n).unwrap_or(0);
            let color = Palette99::pick(k).to_rgba();
            let pts = trace
                .iter()
                .filter_map(|t| Some((t.step as f64, *t.probs.get(l)?.get(i)?)));
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}
