//! The candidate probabilities of every searchable layer over the search, one panel per layer;
//! the latency/accuracy front of searched and baseline networks.

use crate::error::{NasError, Result};
use crate::search::TracePoint;
use plotters::prelude::*;
use std::path::Path;

/// Writes an SVG grid of panels (one per layer), a line per candidate; `names[l][i]` names
/// candidate i of layer l. Candidates with the same name share a colour across panels.
pub fn plot_probabilities(out: &Path, trace: &[TracePoint], names: &[Vec<String>]) -> Result<()> {
    if trace.is_empty() || names.is_empty() {
        return Err(NasError::invalid("nothing to plot"));
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
    let err = |e: DrawingAreaErrorKind<std::io::Error>| NasError::Plot {
        path: out.to_path_buf(),
        why: e.to_string(),
    };
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

/// One network on the latency/accuracy plane.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontPoint {
    pub label: String,
    /// Measured latency, ms.
    pub latency_ms: f64,
    /// Test accuracy, %.
    pub accuracy: f64,
    /// A searched network (filled circle) rather than a baseline (hollow square).
    pub searched: bool,
}

/// The points that no other point beats on both latency and accuracy, by latency.
pub fn pareto(points: &[FrontPoint]) -> Vec<&FrontPoint> {
    let mut front: Vec<&FrontPoint> = points
        .iter()
        .filter(|p| {
            !points.iter().any(|q| {
                q.latency_ms <= p.latency_ms
                    && q.accuracy >= p.accuracy
                    && (q.latency_ms < p.latency_ms || q.accuracy > p.accuracy)
            })
        })
        .collect();
    front.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
    front
}

/// Writes an SVG of latency (x, ms) against test accuracy (y, %): searched networks as filled
/// circles, baselines as hollow squares, each labelled, the Pareto front as a dashed line.
pub fn plot_front(out: &Path, points: &[FrontPoint], title: &str) -> Result<()> {
    if points.is_empty() {
        return Err(NasError::invalid("nothing to plot"));
    }
    let err = |e: DrawingAreaErrorKind<std::io::Error>| NasError::Plot {
        path: out.to_path_buf(),
        why: e.to_string(),
    };
    let range = |v: Vec<f64>| {
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
            (l.min(*x), h.max(*x))
        });
        let pad = if hi > lo {
            (hi - lo) * 0.15
        } else {
            0.05 * hi.abs().max(1e-3)
        };
        (lo - pad)..(hi + pad)
    };
    let xs = range(points.iter().map(|p| p.latency_ms).collect());
    let ys = range(points.iter().map(|p| p.accuracy).collect());
    let root = SVGBackend::new(out, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (engine, batch 1, 1 thread)")
        .y_desc("test accuracy, %")
        .draw()
        .map_err(err)?;
    let front: Vec<(f64, f64)> = pareto(points)
        .iter()
        .map(|p| (p.latency_ms, p.accuracy))
        .collect();
    let grey = RGBColor(150, 150, 150);
    for w in front.windows(2) {
        // Dashes by hand (plotters' dashed series needs another feature).
        let n = 12;
        let at = |t: f64| (w[0].0 + t * (w[1].0 - w[0].0), w[0].1 + t * (w[1].1 - w[0].1));
        chart
            .draw_series((0..n).step_by(2).map(|i| {
                PathElement::new(
                    vec![at(i as f64 / n as f64), at((i + 1) as f64 / n as f64)],
                    grey.stroke_width(1),
                )
            }))
            .map_err(err)?;
    }
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(214, 39, 40);
    // Label anchors in pixels; a label that would overlap an earlier one moves down a line.
    let mut placed: Vec<(i32, i32)> = Vec::new();
    for p in points {
        let xy = (p.latency_ms, p.accuracy);
        let (px, py) = chart.backend_coord(&xy);
        let mut dy = -14;
        while placed
            .iter()
            .any(|&(x, y)| (x - px).abs() < 110 && (y - (py + dy)).abs() < 15)
        {
            dy += 15;
        }
        placed.push((px, py + dy));
        if p.searched {
            chart
                .draw_series(std::iter::once(Circle::new(xy, 6, blue.filled())))
                .map_err(err)?;
        } else {
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(xy) + Rectangle::new([(-5, -5), (5, 5)], orange.stroke_width(2)),
                ))
                .map_err(err)?;
        }
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(xy) + Text::new(p.label.clone(), (8, dy), ("sans-serif", 13)),
            ))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(label: &str, latency_ms: f64, accuracy: f64, searched: bool) -> FrontPoint {
        FrontPoint {
            label: label.into(),
            latency_ms,
            accuracy,
            searched,
        }
    }

    #[test]
    fn pareto_keeps_undominated_points_by_latency() {
        let p = [
            pt("a", 0.3, 90.0, true),
            pt("b", 0.2, 89.0, true),
            pt("c", 0.4, 89.5, false),
            pt("d", 0.2, 88.0, false),
        ];
        let f: Vec<&str> = pareto(&p).iter().map(|p| p.label.as_str()).collect();
        assert_eq!(f, ["b", "a"]);
    }

    #[test]
    fn front_svg_holds_every_point_and_label() {
        let dir = std::env::temp_dir().join(format!("winq-nas-front-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("front.svg");
        let p = [
            pt("wiNAS λ=3", 0.25, 89.1, true),
            pt("wiNAS λ=30", 0.21, 88.2, true),
            pt("im2row INT8", 0.22, 89.4, false),
            pt("F4 flex INT8", 0.31, 88.9, false),
        ];
        plot_front(&out, &p, "front").unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        for q in &p {
            assert!(svg.contains(&q.label), "{} missing", q.label);
        }
        assert_eq!(
            svg.matches("<circle").count(),
            2,
            "one circle per searched network"
        );
        assert_eq!(
            svg.matches("<rect").count() - 1,
            2,
            "one square per baseline (plus the background)"
        );
        std::fs::remove_dir_all(&dir).ok();
        assert!(plot_front(&out, &[], "empty").is_err());
    }
}
