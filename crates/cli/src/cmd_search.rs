//! `winq search`: wiNAS over ResNet18Like (or lenet) with this machine's latency table, and
//! optionally the retraining, export and engine timing of the network it picks.

use crate::cmd_train::{granularity, RecipeArgs};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use winq_nas::arch::LatencyTerm;
use winq_nas::candidate::CandidateSpace;
use winq_nas::run::{engine_ms, retrain, run_search, SearchJob};
use winq_nas::SearchOptions;
use winq_nn::models::ConvChoice;
use winq_nn::Precision;
use winq_train::config::{ModelConfig, ModelKind, OptimKind, ScheduleKind, TrainConfig};

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Latency table of this machine: `winq --threads 1 bench layers --model M --mult M --size S
    /// --channels C --batches 1 -o FILE` for the same model, width and input.
    #[arg(long)]
    lut: PathBuf,
    /// Which batch size of the table to optimise for (the deployment batch).
    #[arg(long, default_value_t = 1)]
    lut_batch: usize,
    /// Macro-architecture.
    #[arg(long, value_enum, default_value_t = ModelKind::Resnet18like)]
    model: ModelKind,
    /// Width multiplier.
    #[arg(long, default_value_t = 0.25)]
    mult: f32,
    /// Candidate algorithms (tiles larger than a layer's map are dropped there).
    #[arg(long, value_delimiter = ',', default_value = "im2row,F2,F4,F6")]
    algos: Vec<String>,
    /// Candidate transform modes of Winograd layers: static, flex or both.
    #[arg(long, value_delimiter = ',', default_value = "static,flex")]
    modes: Vec<String>,
    /// Candidate bit-widths (32 = FP32); e.g. 8,16,32 for wiNAS-WA-Q. The table must time each.
    #[arg(long, value_delimiter = ',', default_value = "8")]
    bits: Vec<u32>,
    /// Bits of the 1x1 shortcut convolutions (not searched).
    #[arg(long, default_value_t = 8)]
    shortcut_bits: u32,
    /// Winograd interpolation points.
    #[arg(long, default_value = "default", allow_hyphen_values = true)]
    points: String,
    /// One scale per tensor in the Winograd domain (the paper's recipe) instead of one per tile
    /// position, in the search and the retraining (as `winq train --per-tensor`).
    #[arg(long)]
    per_tensor: bool,
    /// Epochs that train weights only before the logits move.
    #[arg(long, default_value_t = 1)]
    warmup_epochs: usize,
    /// λ: weight of the latency term beside the cross-entropy (see --latency-term).
    #[arg(long, default_value_t = 1.0)]
    lambda: f64,
    /// The latency term: `relative` = E[latency] / the all-im2row INT8 network's latency (λ = 1
    /// weighs one such network like one nat of cross-entropy, on any model and machine);
    /// `ms` = E[latency] in milliseconds (the paper's form).
    #[arg(long, value_enum, default_value_t = TermArg::Relative)]
    latency_term: TermArg,
    /// A latency budget for the whole network (ms, as the engine times it): the term becomes
    /// the relative excess of the predicted latency over it, and nothing below it.
    #[arg(long, conflicts_with = "latency_term")]
    target_ms: Option<f64>,
    /// Softmax temperature at the start and end of the search phase (geometric in between).
    #[arg(long, default_value_t = 1.0)]
    tau_start: f64,
    /// (At a constant τ a 2-epoch search ends near uniform: the logits' Adam moves each by at
    /// most --arch-lr per step; annealing to 0.1 settles them, docs/WINAS.md.)
    #[arg(long, default_value_t = 0.1)]
    tau_end: f64,
    /// Adam learning rate of the architecture logits.
    #[arg(long, default_value_t = 6e-3)]
    arch_lr: f64,
    /// Weight steps per logit step.
    #[arg(long, default_value_t = 4)]
    arch_every: usize,
    /// Logit steps between two lines of trajectory.jsonl.
    #[arg(long, default_value_t = 10)]
    log_every: usize,
    /// Training batches that re-estimate BatchNorm statistics for the argmax network before
    /// each epoch's validation (the shared statistics average over all sampled paths).
    #[arg(long, default_value_t = 30)]
    bn_calib_batches: usize,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Output directory (default: runs/search-<dataset>-<model>-x<mult>-lambda<λ>).
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Then train the chosen network from scratch, export it and time it with the engine.
    #[arg(long)]
    retrain: bool,
    /// Epochs of the retraining (default: --epochs).
    #[arg(long)]
    retrain_epochs: Option<usize>,
    /// Timed engine runs per latency measurement (median reported).
    #[arg(long, default_value_t = 50)]
    reps: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TermArg {
    Relative,
    Ms,
}

fn latency_term(a: &SearchArgs) -> Result<LatencyTerm> {
    Ok(match (a.target_ms, a.latency_term) {
        (Some(t), _) if !(t.is_finite() && t > 0.0) => bail!("--target-ms must be a positive number of ms"),
        (Some(target_ms), _) => LatencyTerm::Target { target_ms },
        (None, TermArg::Relative) => LatencyTerm::Relative,
        (None, TermArg::Ms) => LatencyTerm::Ms,
    })
}

fn space(a: &SearchArgs) -> Result<CandidateSpace> {
    let mut flex = Vec::new();
    for m in &a.modes {
        match m.trim() {
            "static" => flex.push(false),
            "flex" => flex.push(true),
            o => bail!("unknown --modes entry '{o}': use static, flex or both"),
        }
    }
    flex.dedup();
    if flex.is_empty() {
        bail!("--modes is empty");
    }
    let mut bits = Vec::new();
    for &b in &a.bits {
        let p = Precision::from_bits(b).map_err(|e| anyhow::anyhow!("--bits: {e}"))?;
        if !bits.contains(&p) {
            bits.push(p);
        }
    }
    CandidateSpace {
        flex,
        bits,
        ..CandidateSpace::default()
    }
    .with_algos(&a.algos)
    .map_err(|e| anyhow::anyhow!("--algos: {e}"))
}

/// The training configuration of the search (and, with the chosen layers, of the retraining).
fn train_config(a: &SearchArgs, arch: ModelKind, layers: Vec<ConvChoice>) -> Result<TrainConfig> {
    if a.mult <= 0.0 {
        bail!("--mult must be positive");
    }
    Precision::from_bits(a.shortcut_bits).map_err(|e| anyhow::anyhow!("--shortcut-bits: {e}"))?;
    let space = space(a)?;
    let model = ModelConfig {
        arch,
        mult: a.mult,
        layers,
        shortcut_bits: a.shortcut_bits,
        points: a.points.clone(),
        // As `winq train`, with the candidates standing for the layers.
        granularity: granularity(
            !space.tiles.is_empty() && space.bits.iter().any(|b| b.bits() < 32),
            false,
            a.per_tensor,
        ),
        seed: a.recipe.seed,
        input: None,
        layers_used: None,
    };
    // Weights train with Adam and the multistep schedule, as `winq train` by default.
    a.recipe
        .config(model, OptimKind::Adam, (0.9, false), ScheduleKind::Multistep, 0.0)
}

/// What `search` checks before it runs, without running: the candidate space, the training
/// configuration, the dataset directory and the latency table.
pub(crate) fn check(a: &SearchArgs) -> Result<()> {
    space(a)?;
    latency_term(a)?;
    let cfg = train_config(a, a.model, vec![ConvChoice::IM2ROW_INT8; a.model.conv_layers()])?;
    cfg.check().map_err(anyhow::Error::msg)?;
    crate::cmd_train::check_data_dir(&cfg)?;
    winq_nas::LatencyTable::read(&a.lut)?;
    Ok(())
}

pub fn run(a: SearchArgs) -> Result<()> {
    let n_layers = a.model.conv_layers();
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "search-{}-{}-x{}-lambda{}",
            a.recipe.data.dataset, a.model, a.mult, a.lambda
        ))
    });
    let job = SearchJob {
        train: train_config(&a, a.model, vec![ConvChoice::IM2ROW_INT8; n_layers])?,
        space: space(&a)?,
        options: SearchOptions {
            warmup_epochs: a.warmup_epochs,
            lambda: a.lambda,
            latency_term: latency_term(&a)?,
            tau_start: a.tau_start,
            tau_end: a.tau_end,
            arch_lr: a.arch_lr,
            arch_every: a.arch_every,
            log_every: a.log_every,
            bn_calib_batches: a.bn_calib_batches,
            quiet: a.recipe.quiet,
        },
        lut: a.lut.clone(),
        lut_batch: a.lut_batch,
        reps: a.reps,
        out,
    };
    let r = run_search(&job)?;
    println!("chosen network ({}):", r.layers_path.display());
    for (s, c) in &r.chosen {
        println!(
            "  layer {:>2} {:>4}->{:<4} {:>2}x{:<2} {}",
            s.index, s.in_channels, s.out_channels, s.height, s.width, c
        );
    }
    println!(
        "expected latency of the searchable layers {:.3} ms, chosen {:.3} ms{}; search {:.0} s ({} weight steps, {} logit steps); outputs in {}",
        r.expected_ms,
        r.chosen_ms,
        r.predicted_ms.map_or(String::new(), |p| format!(", whole network predicted {p:.3} ms")),
        r.seconds,
        r.weight_steps,
        r.arch_steps,
        job.out.display()
    );
    if a.retrain {
        let t = retrain(&job, &r, a.retrain_epochs.unwrap_or(a.recipe.epochs()))?;
        println!(
            "retrained: test accuracy {:.2}% | engine latency {:.3} ms at batch {} ({} threads){} | model {}",
            100.0 * t.test_acc,
            t.measured_ms,
            t.batch,
            t.threads,
            t.predicted_ms.map_or(String::new(), |p| format!(
                ", predicted {p:.3} ms ({:+.1}%)",
                100.0 * (p - t.measured_ms) / t.measured_ms
            )),
            t.model.display()
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Search directories (`winq search --retrain`) and `winq train` runs, each holding a
    /// model.winq (`winq export RUN -o RUN/model.winq`).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Write the latency/accuracy plot (SVG) here.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Timed engine runs per network (median reported).
    #[arg(long, default_value_t = 50)]
    reps: usize,
    /// Threads of the engine timings (batch 1).
    #[arg(long, default_value_t = 1)]
    timing_threads: usize,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// "im2row INT8", "F4 flex INT8", … for a run whose 3x3 layers are all alike, else "mixed".
fn uniform_label(layers: &[ConvChoice]) -> String {
    match layers.first() {
        Some(l) if layers.iter().all(|m| m == l) => format!("{} {}", l.algo, l.precision),
        _ => "mixed".into(),
    }
}

/// `winq search-report`: times every network's model.winq with the engine in one process
/// (batch 1, the same timing as `winq search`), prints a table beside each search's prediction
/// and accuracy, and plots the latency/accuracy front.
pub fn report(a: ReportArgs) -> Result<()> {
    let mut points = Vec::new();
    println!("| network | predicted ms | measured ms | error | test acc % | wall s (search / train) |");
    println!("|---|---|---|---|---|---|");
    for dir in &a.dirs {
        let searched = dir.join("search.json").exists();
        let (label, acc, predicted, seconds) = if searched {
            let s = read_json(&dir.join("search.json"))?;
            let r = read_json(&dir.join("retrain.json"))
                .context("a search directory needs `winq search --retrain`")?;
            let o = read_json(&dir.join("outcome.json"))?;
            (
                format!("wiNAS λ={}", s["options"]["lambda"].as_f64().unwrap_or(f64::NAN)),
                r["test_acc"].as_f64(),
                r["predicted_ms"].as_f64(),
                format!(
                    "{:.0} / {:.0}",
                    o["seconds"].as_f64().unwrap_or(f64::NAN),
                    r["train_seconds"].as_f64().unwrap_or(f64::NAN)
                ),
            )
        } else {
            let cfg: TrainConfig = serde_json::from_value(read_json(&dir.join("config.json"))?)
                .with_context(|| format!("{}/config.json", dir.display()))?;
            let r = read_json(&dir.join("results.json"))?;
            (
                uniform_label(&cfg.model.layers),
                r["test_acc_best"].as_f64(),
                None,
                format!("– / {:.0}", r["seconds"].as_f64().unwrap_or(f64::NAN)),
            )
        };
        let acc = 100.0 * acc.with_context(|| format!("{}: no test accuracy recorded", dir.display()))?;
        let model = dir.join("model.winq");
        let (op, info) = winq_ir::load(&model).with_context(|| {
            format!(
                "{} (export it: winq export {} -o {})",
                model.display(),
                dir.display(),
                model.display()
            )
        })?;
        let ms = engine_ms(
            &op,
            1,
            (info.channels, info.height, info.width),
            a.reps,
            a.timing_threads,
        )?;
        let (p, e) = predicted.map_or(("–".into(), "–".into()), |p| {
            (format!("{p:.3}"), format!("{:+.1}%", 100.0 * (p - ms) / ms))
        });
        println!(
            "| {label} ({}) | {p} | {ms:.3} | {e} | {acc:.2} | {seconds} |",
            dir.display()
        );
        points.push(winq_nas::plot::FrontPoint {
            label,
            latency_ms: ms,
            accuracy: acc,
            searched,
        });
    }
    if let Some(out) = &a.out {
        winq_nas::plot::plot_front(
            out,
            &points,
            "wiNAS and uniform baselines: latency vs test accuracy",
        )?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
