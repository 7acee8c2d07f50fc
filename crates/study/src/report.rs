use crate::{Algo, Precision, StudyResult};

fn algos(res: &StudyResult) -> Vec<Algo> {
    let mut v: Vec<Algo> = Vec::new();
    for r in &res.rows {
        if !v.contains(&r.algo) {
            v.push(r.algo);
        }
    }
    v
}

fn cell(mean: f64, std: f64) -> String {
    format!("{mean:.2e} ±{std:.0e}")
}

/// The study as two text tables: error per algorithm and precision, and per-stage attribution.
pub fn render_text(res: &StudyResult) -> String {
    let c = &res.config;
    let mut out = String::new();
    out += &format!(
        "Relative L2 error of a 3x3 layer vs the f64 direct convolution (mean ±std over {} seeds)\n",
        c.seeds
    );
    out += &format!(
        "layer: batch {}, {} -> {} channels, {}x{}; inputs ReLU(N(0,1)), Xavier-uniform weights; points: {}; transforms {}\n",
        c.batch,
        c.in_channels,
        c.out_channels,
        c.height,
        c.width,
        c.points,
        if c.quantize_transforms { "quantized" } else { "exact (f32)" }
    );
    if c.per_channel || c.per_tap {
        out += &format!(
            "scales: {}{}\n",
            if c.per_channel {
                "per output channel for weights; "
            } else {
                ""
            },
            if c.per_tap {
                "per tap in the Winograd domain"
            } else {
                "per tensor in the Winograd domain"
            }
        );
    }
    out += "\n";
    let precisions: Vec<Precision> = std::iter::once(Precision::Fp32)
        .chain(c.bits.iter().map(|&b| Precision::Int(b)))
        .collect();
    out += &format!("{:<8}", "algo");
    for p in &precisions {
        out += &format!("{:>18}", p.to_string());
    }
    out += "\n";
    for a in algos(res) {
        out += &format!("{:<8}", a.kernel());
        for p in &precisions {
            let r = res.rows.iter().find(|r| r.algo == a && r.precision == *p);
            out += &format!(
                "{:>18}",
                r.map_or("-".into(), |r| cell(r.error.mean, r.error.std))
            );
        }
        out += "\n";
    }

    out += &format!(
        "\nPer-stage attribution at INT{} (one source quantized at a time, the rest FP32)\n",
        c.attribution_bits
    );
    out += &format!("{:<16}", "stage");
    let algos = algos(res);
    for a in &algos {
        out += &format!("{:>18}", a.kernel());
    }
    out += "\n";
    let mut stages: Vec<&str> = Vec::new();
    for r in &res.attribution {
        if !stages.contains(&r.stage.as_str()) {
            stages.push(&r.stage);
        }
    }
    for s in stages {
        out += &format!("{s:<16}");
        for a in &algos {
            let r = res.attribution.iter().find(|r| r.algo == *a && r.stage == s);
            out += &format!(
                "{:>18}",
                r.map_or("-".into(), |r| cell(r.error.mean, r.error.std))
            );
        }
        out += "\n";
    }
    out += &format!("{:<16}", "largest");
    for a in &algos {
        let name = res.largest_source(*a).map_or("-", |r| r.stage.as_str());
        out += &format!("{name:>18}");
    }
    out += "\n";
    out
}

pub fn to_json(res: &StudyResult) -> String {
    serde_json::to_string_pretty(res).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
