//! `winq plot RUN_DIR`: training curves from metrics.jsonl as SVG.

use crate::error::{Result, ResultExt, TrainError};
use plotters::prelude::*;
use std::path::Path;

/// Reads metrics.jsonl and writes loss.svg and accuracy.svg into the run directory (a plot
/// with no finite value in any line is skipped); returns the paths written.
pub fn plot_run(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1)))
        .collect::<Result<_>>()?;
    if rows.is_empty() {
        return Err(TrainError::Invalid(format!(
            "{} has no epochs yet",
            path.display()
        )));
    }
    let series = |key: &str| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((r["epoch"].as_f64()?, r[key].as_f64()?)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let mut written = Vec::new();
    for (file, title, keys) in [
        ("loss.svg", "loss", [("train_loss", "train"), ("val_loss", "val")]),
        (
            "accuracy.svg",
            "accuracy",
            [("train_acc", "train"), ("val_acc", "val")],
        ),
    ] {
        let out = dir.join(file);
        let data: Vec<(&str, Vec<(f64, f64)>)> = keys.iter().map(|(k, n)| (*n, series(k))).collect();
        let all: Vec<f64> = data.iter().flat_map(|(_, s)| s.iter().map(|p| p.1)).collect();
        if all.is_empty() {
            // No finite value to draw (e.g. lines without accuracies): an empty range would
            // leave the axis without bounds.
            continue;
        }
        let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
        let epochs = rows.len() as f64;
        let err = |e: DrawingAreaErrorKind<std::io::Error>| TrainError::Plot {
            path: out.clone(),
            why: e.to_string(),
        };
        let root = SVGBackend::new(&out, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let pad = ((hi - lo) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title} per epoch ({})", dir.display()),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5f64..epochs + 0.5, (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(title)
            .draw()
            .map_err(err)?;
        for (i, (name, s)) in data.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s, color.stroke_width(2)))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        drop(chart);
        drop(root);
        written.push(out);
    }
    if written.is_empty() {
        return Err(TrainError::Invalid(format!(
            "{} holds no finite loss or accuracy to plot",
            path.display()
        )));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines without accuracies (or with only non-finite values) must not hang the plot (an
    /// empty value range once looped forever): the loss plot is written, the accuracy one
    /// skipped; nothing finite at all is a clear error.
    #[test]
    fn missing_or_non_finite_values_are_skipped_not_hung() {
        let dir = std::env::temp_dir().join(format!("winq-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = dir.join("metrics.jsonl");
        std::fs::write(
            &m,
            "{\"epoch\": 1, \"train_loss\": 2.0}\n{\"epoch\": 2, \"train_loss\": 1.5}\n",
        )
        .unwrap();
        let written = plot_run(&dir).unwrap();
        assert_eq!(written, vec![dir.join("loss.svg")]);
        std::fs::write(&m, "{\"epoch\": 1, \"val_acc\": null}\n").unwrap();
        let e = plot_run(&dir).unwrap_err().to_string();
        assert!(e.contains("no finite loss or accuracy"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
