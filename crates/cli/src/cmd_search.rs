//! `winq search`: wiNAS over ResNet18Like (or lenet) with this machine's latency table, and
//! optionally the retraining, export and engine timing of the network it picks.

use crate::cmd_train::{dataset, DataArgs};
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use winq_data::Augment;
use winq_nas::candidate::CandidateSpace;
use winq_nas::search::{EpochLog, TracePoint};
use winq_nas::supernet::SupernetConfig;
use winq_nas::{build_supernet, search, ArchLogits, LatencyTable, SearchOptions};
use winq_nn::models::{Algo, ConvChoice};
use winq_nn::{Layer, Mode, Precision, Tensor};
use winq_train::checkpoint::write_atomic;
use winq_train::config::{LayerFile, ModelConfig, ModelKind, OptimKind, ScheduleKind, TrainConfig};
use winq_train::runner::{self, Start};

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
    /// Search epochs, warm-up included.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Epochs that train weights only before the logits move.
    #[arg(long, default_value_t = 1)]
    warmup_epochs: usize,
    /// λ: weight of the expected latency, per millisecond, beside the cross-entropy.
    #[arg(long, default_value_t = 1.0)]
    lambda: f64,
    /// Softmax temperature at the start and end of the search phase (geometric in between).
    #[arg(long, default_value_t = 1.0)]
    tau_start: f64,
    #[arg(long, default_value_t = 1.0)]
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
    data: DataArgs,
    /// Fraction of the training set held out for the logit steps.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f32,
    #[arg(long, default_value_t = 2)]
    crop_pad: usize,
    #[arg(long)]
    no_flip: bool,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Weight learning rate (Adam, x0.1 at 60% and 80%).
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    #[arg(long, default_value_t = 4e-5)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this many weight steps (quick checks).
    #[arg(long)]
    max_steps: Option<usize>,
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
    #[arg(long)]
    quiet: bool,
}

fn precision(bits: u32) -> Result<Precision> {
    Ok(match bits {
        32 => Precision::Fp32,
        2..=16 => Precision::Int(bits),
        b => bail!("bits must be 2..=16 or 32 (FP32), got {b}"),
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
        let p = precision(b).context("--bits")?;
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

fn model(a: &SearchArgs) -> Result<(ModelKind, usize)> {
    Ok((a.model, a.model.conv_layers()))
}

/// The training configuration of the search (and, with the chosen layers, of the retraining).
fn train_config(a: &SearchArgs, arch: ModelKind, layers: Vec<ConvChoice>) -> Result<TrainConfig> {
    let (dataset, data_dir) = dataset(&a.data)?;
    if a.batch == 0 || a.epochs == 0 {
        bail!("--batch and --epochs must be at least 1");
    }
    if a.mult <= 0.0 {
        bail!("--mult must be positive");
    }
    precision(a.shortcut_bits).context("--shortcut-bits")?;
    Ok(TrainConfig {
        model: ModelConfig {
            arch,
            mult: a.mult,
            layers,
            shortcut_bits: a.shortcut_bits,
            points: a.points.clone(),
            granularity: Default::default(),
            seed: a.seed,
        },
        dataset,
        data_dir,
        val_fraction: a.val_fraction,
        augment: Augment {
            crop_pad: a.crop_pad,
            hflip: !a.no_flip,
        },
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        optimizer: OptimKind::Adam,
        momentum: 0.9,
        nesterov: false,
        schedule: ScheduleKind::Multistep,
        warmup_epochs: 0.0,
        seed: a.seed,
        threads: rayon::current_num_threads(),
        max_steps: a.max_steps,
    })
}

/// Median engine time (ms) of an exported network on `batch` random inputs of c×h×w, on
/// `threads` threads (the latency table's count, so that predictions and timings compare).
fn engine_ms(
    op: &winq_ir::Op,
    batch: usize,
    chw: (usize, usize, usize),
    reps: usize,
    threads: usize,
) -> Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("starting the timing threads")?;
    pool.install(|| engine_ms_here(op, batch, chw, reps))
}

fn engine_ms_here(op: &winq_ir::Op, batch: usize, chw: (usize, usize, usize), reps: usize) -> Result<f64> {
    let net = winq_engine::Net::compile(op).map_err(anyhow::Error::msg)?;
    let (c, h, w) = chw;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let act = winq_engine::Act {
        n: batch,
        c,
        h,
        w,
        data: (0..batch * c * h * w)
            .map(|_| rng.gen_range(-1.0..1.0f32))
            .collect(),
    };
    net.forward(act.clone());
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(net.forward(act.clone()));
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// The whole-network offset of the additive latency model, in ms: the engine time of the
/// all-im2row INT8 network minus the table's im2row INT8 times of its searchable layers. It
/// holds what the search cannot change (stem, shortcuts, pooling, classifier) less what the
/// per-layer timings count but a fused network does not (per-layer input quantization).
fn constant_ms(
    cfg: &TrainConfig,
    arch: &ArchLogits,
    lut: &LatencyTable,
    a: &SearchArgs,
    chw: (usize, usize, usize),
) -> Result<f64> {
    let im2row = ConvChoice {
        algo: Algo::Im2row,
        precision: Precision::Int(8),
    };
    let layers_ms: f64 = arch
        .layers
        .iter()
        .map(|l| lut.lookup(&l.site, &im2row, a.lut_batch))
        .sum::<Result<f64>>()?;
    let mut c = cfg.clone();
    c.model.layers = vec![im2row; arch.layers.len()];
    let classes = c.dataset.classes();
    let mut built = runner::build_model(&c, chw.0, chw.1, chw.2, classes)?;
    // One training forward so every quantizer holds a range, as a trained model's would.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 8 * chw.0 * chw.1 * chw.2;
    let x = Tensor::from_vec(
        &[8, chw.0, chw.1, chw.2],
        (0..n).map(|_| rng.gen_range(-1.0..1.0f32)).collect(),
    );
    built.net.forward(&x, Mode::Train);
    let op = built.net.export().map_err(anyhow::Error::msg)?;
    Ok(engine_ms(&op, a.lut_batch, chw, a.reps, timing_threads(lut))? - layers_ms)
}

/// Engine timings use the table's thread count (all threads when it does not say).
fn timing_threads(lut: &LatencyTable) -> usize {
    if lut.threads > 0 {
        lut.threads
    } else {
        rayon::current_num_threads()
    }
}

fn jsonl(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

pub fn run(a: SearchArgs) -> Result<()> {
    let (arch_kind, n_layers) = model(&a)?;
    let space = space(&a)?;
    let lut = LatencyTable::read(&a.lut)?;
    let threads = timing_threads(&lut);
    let cfg = train_config(&a, arch_kind, vec![ConvChoice::IM2ROW_INT8; n_layers])?;
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "search-{}-{}-x{}-lambda{}",
            a.data.dataset, a.model, a.mult, a.lambda
        ))
    });
    if out.join("search.json").exists() {
        bail!(
            "{} already holds a search (search.json); choose another --out",
            out.display()
        );
    }
    let data = runner::load_data(&cfg)?;
    let t = &data.train;
    let chw = (t.c, t.h, t.w);
    let scfg = SupernetConfig {
        model: arch_kind,
        in_channels: t.c,
        height: t.h,
        width: t.w,
        classes: t.classes,
        mult: a.mult,
        space,
        shortcut: precision(a.shortcut_bits)?,
        points: a.points.parse().map_err(|e| anyhow::anyhow!("--points: {e}"))?,
        seed: a.seed,
    };
    let mut sn = build_supernet(&scfg, &|s, c| lut.lookup(s, c, a.lut_batch))
        .with_context(|| format!("looking up candidates in {}", a.lut.display()))?;
    sn.arch.constant_ms = match constant_ms(&cfg, &sn.arch, &lut, &a, chw) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!(
                "note: the whole network was not timed ({e:#}); predictions cover the searchable layers only"
            );
            None
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let opts = SearchOptions {
        warmup_epochs: a.warmup_epochs,
        lambda: a.lambda,
        tau_start: a.tau_start,
        tau_end: a.tau_end,
        arch_lr: a.arch_lr,
        arch_every: a.arch_every,
        log_every: a.log_every,
        bn_calib_batches: a.bn_calib_batches,
        quiet: a.quiet,
    };
    let names: Vec<Vec<String>> = sn
        .arch
        .layers
        .iter()
        .map(|l| l.candidates.iter().map(|c| c.to_string()).collect())
        .collect();
    if !a.quiet {
        eprintln!(
            "wiNAS on {} ({} train / {} val), {} x{}, {} epochs ({} warm-up), λ = {} per ms, table {} ({}, {} threads)",
            cfg.dataset,
            data.train.n,
            data.val.n,
            a.model,
            a.mult,
            a.epochs,
            a.warmup_epochs,
            a.lambda,
            a.lut.display(),
            lut.cpu,
            lut.threads
        );
        for (l, n) in sn.arch.layers.iter().zip(&names) {
            let s = &l.site;
            eprintln!(
                "  layer {:>2} {:>4}->{:<4} {:>2}x{:<2} {}",
                s.index,
                s.in_channels,
                s.out_channels,
                s.height,
                s.width,
                n.iter()
                    .zip(&l.latency_ms)
                    .map(|(n, ms)| format!("{n} {ms:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(c) = sn.arch.constant_ms {
            eprintln!("  whole-network offset (fixed layers less per-layer overheads): {c:.3} ms");
        }
    }
    write_atomic(
        &out.join("search.json"),
        serde_json::to_string_pretty(&json!({
            "model": a.model, "mult": a.mult, "dataset": cfg.dataset, "seed": a.seed,
            "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "options": opts,
            "lut": a.lut, "lut_batch": a.lut_batch, "lut_cpu": lut.cpu, "lut_threads": lut.threads,
            "timing_threads": threads, "train_threads": rayon::current_num_threads(), "candidates": names,
        }))?
        .as_bytes(),
    )?;

    let mut traj = jsonl(&out.join("trajectory.jsonl"))?;
    let mut metrics = jsonl(&out.join("metrics.jsonl"))?;
    let mut points: Vec<TracePoint> = Vec::new();
    let outcome = search(
        &mut sn.net,
        &mut sn.arch,
        &data,
        &cfg,
        &opts,
        &mut |p: &TracePoint| {
            writeln!(traj, "{}", serde_json::to_string(p)?)?;
            points.push(p.clone());
            Ok(())
        },
        &mut |e: &EpochLog| {
            writeln!(metrics, "{}", serde_json::to_string(e)?)?;
            metrics.flush()?;
            if !opts.quiet {
                eprintln!(
                    "epoch {}{}: train loss {:.4} acc {:.2}% | argmax net val acc {:.2}% | E[lat] {:.3} ms, argmax {:.3} ms | {:.0} s ({:.0} s logit steps)",
                    e.epoch,
                    if e.warmup { " (warm-up)" } else { "" },
                    e.train_loss,
                    100.0 * e.train_acc,
                    100.0 * e.val_acc,
                    e.expected_ms,
                    e.argmax_ms,
                    e.time_s,
                    e.arch_s
                );
            }
            Ok(())
        },
    )?;
    traj.flush()?;

    let arch = &sn.arch;
    let chosen: Vec<ConvChoice> = arch
        .layers
        .iter()
        .zip(&outcome.chosen)
        .map(|(l, &i)| l.candidates[i])
        .collect();
    let layer_file = LayerFile {
        layers: chosen.clone(),
        shortcut_bits: Some(a.shortcut_bits),
    };
    let layers_path = out.join("layers.json");
    write_atomic(
        &layers_path,
        serde_json::to_string_pretty(&layer_file)?.as_bytes(),
    )?;
    let probs = arch.probs(outcome.tau);
    let per_layer: Vec<_> = arch
        .layers
        .iter()
        .zip(&outcome.chosen)
        .zip(probs.iter().zip(&names))
        .map(|((l, &i), (p, n))| {
            json!({
                "index": l.site.index,
                "in_channels": l.site.in_channels, "out_channels": l.site.out_channels,
                "height": l.site.height, "width": l.site.width,
                "chosen": n[i], "chosen_ms": l.latency_ms[i],
                "probabilities": n.iter().zip(p).map(|(n, p)| (n.clone(), json!(p))).collect::<serde_json::Map<_, _>>(),
                "latency_ms": n.iter().zip(&l.latency_ms).map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let predicted = arch.constant_ms.map(|c| c + outcome.argmax_ms);
    let latency = json!({
        "batch": a.lut_batch,
        "threads": threads,
        "lut": a.lut, "lut_cpu": lut.cpu, "lut_threads": lut.threads,
        "expected_searchable_ms": outcome.expected_ms,
        "chosen_searchable_ms": outcome.argmax_ms,
        "offset_ms": arch.constant_ms,
        "predicted_ms": predicted,
        "tau": outcome.tau,
        "layers": per_layer,
    });
    write_atomic(
        &out.join("latency.json"),
        serde_json::to_string_pretty(&latency)?.as_bytes(),
    )?;
    let svg = out.join("probabilities.svg");
    winq_nas::plot::plot_probabilities(&svg, &points, &names)?;
    let summary = json!({
        "seconds": outcome.seconds, "weight_steps": outcome.weight_steps, "arch_steps": outcome.arch_steps,
        "val_acc_argmax": outcome.epochs.last().map(|e| e.val_acc),
    });
    write_atomic(
        &out.join("outcome.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;

    println!("chosen network ({}):", layers_path.display());
    for (l, c) in arch.layers.iter().zip(&chosen) {
        println!(
            "  layer {:>2} {:>4}->{:<4} {:>2}x{:<2} {}",
            l.site.index, l.site.in_channels, l.site.out_channels, l.site.height, l.site.width, c
        );
    }
    println!(
        "expected latency of the searchable layers {:.3} ms, chosen {:.3} ms{}; search {:.0} s ({} weight steps, {} logit steps); outputs in {}",
        outcome.expected_ms,
        outcome.argmax_ms,
        predicted.map_or(String::new(), |p| format!(", whole network predicted {p:.3} ms")),
        outcome.seconds,
        outcome.weight_steps,
        outcome.arch_steps,
        out.display()
    );
    if a.retrain {
        retrain(&a, cfg, layer_file, &out, predicted, chw, threads)?;
    }
    Ok(())
}

/// Trains the chosen network from scratch, exports it and times it with the engine.
fn retrain(
    a: &SearchArgs,
    mut cfg: TrainConfig,
    layers: LayerFile,
    out: &Path,
    predicted: Option<f64>,
    chw: (usize, usize, usize),
    threads: usize,
) -> Result<()> {
    cfg.model.layers = layers.layers;
    cfg.epochs = a.retrain_epochs.unwrap_or(a.epochs);
    let dir = out.join("retrain");
    let o = runner::train(cfg, &dir, Start::Fresh, a.quiet)?;
    let (op, info, _) = crate::cmd_engine::export_checkpoint(&dir.join("best.safetensors"))?;
    let model = out.join("model.winq");
    winq_ir::save(&model, &op, &info)?;
    let measured = engine_ms(&op, a.lut_batch, chw, a.reps, threads)?;
    let result = json!({
        "test_acc": o.test_acc_best, "best_epoch": o.best_epoch, "epochs": o.epochs, "train_seconds": o.seconds,
        "model": model, "batch": a.lut_batch, "threads": threads,
        "measured_ms": measured, "predicted_ms": predicted,
        "prediction_error": predicted.map(|p| (p - measured) / measured),
    });
    write_atomic(
        &out.join("retrain.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    println!(
        "retrained: test accuracy {:.2}% | engine latency {:.3} ms at batch {} ({} threads){} | model {}",
        100.0 * o.test_acc_best,
        measured,
        a.lut_batch,
        threads,
        predicted.map_or(String::new(), |p| format!(
            ", predicted {p:.3} ms ({:+.1}%)",
            100.0 * (p - measured) / measured
        )),
        model.display()
    );
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
