use crate::{Algo, Precision, StudyError, StudyResult};
use plotters::prelude::*;
use std::path::Path;

/// Error vs tile size, one line per precision, log-scale y. SVG (the only backend that needs
/// no system fonts).
pub fn write_plot(res: &StudyResult, path: &Path) -> Result<(), StudyError> {
    let algos: Vec<Algo> = {
        let mut v = Vec::new();
        for r in &res.rows {
            if !v.contains(&r.algo) {
                v.push(r.algo);
            }
        }
        v
    };
    let (lo, hi) = res
        .rows
        .iter()
        .map(|r| r.error.mean)
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
    if !(lo.is_finite() && hi > 0.0) {
        return Err(StudyError::NothingToPlot);
    }
    let root = SVGBackend::new(path, (800, 520)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<std::io::Error>| StudyError::Plot {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    root.fill(&WHITE).map_err(err)?;
    let n = algos.len();
    let mut chart = ChartBuilder::on(&root)
        .caption("Relative L2 error vs algorithm (3x3 layer)", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo / 3.0..hi * 3.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                algos[i as usize].kernel()
            } else {
                String::new()
            }
        })
        .y_desc("relative L2 error")
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .draw()
        .map_err(err)?;
    let mut precisions: Vec<Precision> = Vec::new();
    for r in &res.rows {
        if !precisions.contains(&r.precision) {
            precisions.push(r.precision);
        }
    }
    for (pi, p) in precisions.iter().enumerate() {
        let color = Palette99::pick(pi).to_rgba();
        let pts: Vec<(f64, f64)> = algos
            .iter()
            .enumerate()
            .filter_map(|(i, a)| res.error(*a, *p).filter(|v| *v > 0.0).map(|v| (i as f64, v)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(p.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(
                pts.into_iter()
                    .map(|(x, y)| Circle::new((x, y), 4, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
