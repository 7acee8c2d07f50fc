//! A whole search as a job: the supernet on this machine's latency table, the search loop, and
//! the result files in the output directory (search.json, trajectory.jsonl, metrics.jsonl,
//! layers.json, latency.json, probabilities.svg, outcome.json); optionally the retraining of
//! the chosen network, its export and its engine timing (retrain/, model.winq, retrain.json).

use crate::arch::LatencyTerm;
use crate::error::{NasError, Result, ResultExt};
use crate::search::{EpochLog, TracePoint};
use crate::supernet::SupernetConfig;
use crate::{build_supernet, search, ArchLogits, CandidateSpace, LatencyTable, SearchOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use winq_nn::models::{Algo, ConvChoice, ConvSite};
use winq_nn::{Layer, Mode, Precision, Tensor};
use winq_train::checkpoint::write_atomic;
use winq_train::config::{LayerFile, TrainConfig};
use winq_train::runner::{self, Start};

/// Everything a search needs besides the data (which `train` names).
pub struct SearchJob {
    /// The training configuration of the search and of the retraining: model kind, width,
    /// shortcut bits, points, seed, dataset, epochs, batch, learning rate (its layers are
    /// placeholders; the search chooses them).
    pub train: TrainConfig,
    pub space: CandidateSpace,
    pub options: SearchOptions,
    /// The latency table and the batch size whose times it optimises.
    pub lut: PathBuf,
    pub lut_batch: usize,
    /// Timed engine runs per whole-network measurement (median).
    pub reps: usize,
    pub out: PathBuf,
}

/// What a search chose, and its predictions.
pub struct SearchReport {
    pub chosen: Vec<(ConvSite, ConvChoice)>,
    pub layers: LayerFile,
    pub layers_path: PathBuf,
    /// Expected latency of the searchable layers under the final probabilities, and of the
    /// chosen ones (ms).
    pub expected_ms: f64,
    pub chosen_ms: f64,
    /// Whole network, when the offset could be measured.
    pub predicted_ms: Option<f64>,
    pub seconds: f64,
    pub weight_steps: usize,
    pub arch_steps: usize,
    /// The input shape and the timing thread count (the table's).
    pub chw: (usize, usize, usize),
    pub timing_threads: usize,
}

/// The retrained network: accuracy and measured latency beside the prediction.
pub struct RetrainReport {
    pub test_acc: f64,
    pub measured_ms: f64,
    pub predicted_ms: Option<f64>,
    pub batch: usize,
    pub threads: usize,
    pub model: PathBuf,
}

fn jsonl(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Median engine time (ms) of an exported network on `batch` random inputs of c×h×w, on
/// `threads` threads (the latency table's count, so that predictions and timings compare).
pub fn engine_ms(
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

fn engine_ms_here(
    op: &winq_ir::Op,
    batch: usize,
    (c, h, w): (usize, usize, usize),
    reps: usize,
) -> Result<f64> {
    let net = winq_engine::Net::compile(op)?;
    Ok(net.latency_ms(&winq_engine::timing::random_input(batch, c, h, w, 1), reps))
}

/// The whole-network offset of the additive latency model, in ms: the engine time of the
/// all-im2row INT8 network minus the table's im2row INT8 times of its searchable layers. It
/// holds what the search cannot change (stem, shortcuts, pooling, classifier) less what the
/// per-layer timings count but a fused network does not (per-layer input quantization).
fn constant_ms(
    cfg: &TrainConfig,
    arch: &ArchLogits,
    lut: &LatencyTable,
    job: &SearchJob,
    chw: (usize, usize, usize),
) -> Result<f64> {
    let im2row = ConvChoice {
        algo: Algo::Im2row,
        precision: Precision::Int(8),
    };
    let layers_ms: f64 = arch
        .layers
        .iter()
        .map(|l| lut.lookup(&l.site, &im2row, job.lut_batch))
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
    let op = built.net.export()?;
    Ok(engine_ms(&op, job.lut_batch, chw, job.reps, timing_threads(lut))? - layers_ms)
}

/// Engine timings use the table's thread count (all threads when it does not say).
pub fn timing_threads(lut: &LatencyTable) -> usize {
    if lut.threads > 0 {
        lut.threads
    } else {
        rayon::current_num_threads()
    }
}

/// Runs a search and writes its result files into `job.out`.
pub fn run_search(job: &SearchJob) -> Result<SearchReport> {
    let lut = LatencyTable::read(&job.lut)?;
    let threads = timing_threads(&lut);
    let cfg = job.train.clone();
    let (out, opts) = (&job.out, &job.options);
    let (model, mult, seed) = (cfg.model.arch, cfg.model.mult, cfg.model.seed);
    let _lock = runner::lock_run_dir(out)?;
    if out.join("search.json").exists() {
        return Err(NasError::Invalid(format!(
            "{} already holds a search (search.json); choose another --out",
            out.display()
        )));
    }
    let data = runner::load_data(&cfg)?;
    let t = &data.train;
    let chw = (t.c, t.h, t.w);
    let scfg = SupernetConfig {
        model,
        in_channels: t.c,
        height: t.h,
        width: t.w,
        classes: t.classes,
        mult,
        space: job.space.clone(),
        shortcut: Precision::from_bits(cfg.model.shortcut_bits)?,
        points: cfg.model.points.parse().context("points")?,
        granularity: cfg.model.granularity,
        seed,
    };
    let mut sn = build_supernet(&scfg, &|s, c| lut.lookup(s, c, job.lut_batch))
        .with_context(|| format!("looking up candidates in {}", job.lut.display()))?;
    sn.arch.constant_ms = match constant_ms(&cfg, &sn.arch, &lut, job, chw) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!(
                "note: the whole network was not timed ({e}); predictions cover the searchable layers only"
            );
            None
        }
    };
    if sn.arch.constant_ms.is_none() && matches!(opts.latency_term, LatencyTerm::Target { .. }) {
        return Err(NasError::invalid(
            "--target-ms is a whole-network budget, and the whole network could not be timed here",
        ));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let names: Vec<Vec<String>> = sn
        .arch
        .layers
        .iter()
        .map(|l| l.candidates.iter().map(|c| c.to_string()).collect())
        .collect();
    if !opts.quiet {
        eprintln!(
            "wiNAS on {} ({} train / {} val), {} x{}, {} epochs ({} warm-up), λ = {} on {}, table {} ({}, {} threads)",
            cfg.dataset,
            data.train.n,
            data.val.n,
            model,
            mult,
            cfg.epochs,
            opts.warmup_epochs,
            opts.lambda,
            match opts.latency_term {
                LatencyTerm::Ms => "E[latency] in ms".to_string(),
                LatencyTerm::Relative => format!(
                    "E[latency] / {:.3} ms (all im2row INT8)",
                    sn.arch.latency_scale().reference_ms
                ),
                LatencyTerm::Target { target_ms } => format!("the excess over {target_ms} ms"),
            },
            job.lut.display(),
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
            "model": model, "mult": mult, "dataset": cfg.dataset, "seed": seed,
            "epochs": cfg.epochs, "batch": cfg.batch, "lr": cfg.lr, "options": opts,
            "lut": job.lut, "lut_batch": job.lut_batch, "lut_cpu": lut.cpu, "lut_threads": lut.threads,
            "timing_threads": threads, "train_threads": rayon::current_num_threads(), "candidates": names,
        }))?
        .as_bytes(),
    )?;

    let (traj_path, metrics_path) = (out.join("trajectory.jsonl"), out.join("metrics.jsonl"));
    let writing = |p: &Path| format!("writing {}", p.display());
    let mut traj = jsonl(&traj_path)?;
    let mut metrics = jsonl(&metrics_path)?;
    let mut points: Vec<TracePoint> = Vec::new();
    let outcome = search(
        &mut sn.net,
        &mut sn.arch,
        &data,
        &cfg,
        opts,
        &mut |p: &TracePoint| {
            writeln!(traj, "{}", serde_json::to_string(p)?).with_context(|| writing(&traj_path))?;
            points.push(p.clone());
            Ok(())
        },
        &mut |e: &EpochLog| {
            writeln!(metrics, "{}", serde_json::to_string(e)?).with_context(|| writing(&metrics_path))?;
            metrics.flush().with_context(|| writing(&metrics_path))?;
            if !opts.quiet {
                eprintln!(
                    "epoch {}{}: train loss {:.4} acc {:.2}% | argmax net val acc {:.2}% | E[lat] {:.3} ms, argmax {:.3} ms | entropy {:.2}, argmax net p {:.2} | {:.0} s ({:.0} s logit steps)",
                    e.epoch,
                    if e.warmup { " (warm-up)" } else { "" },
                    e.train_loss,
                    100.0 * e.train_acc,
                    100.0 * e.val_acc,
                    e.expected_ms,
                    e.argmax_ms,
                    e.settled.mean_entropy,
                    e.settled.argmax_prob,
                    e.time_s,
                    e.arch_s
                );
            }
            Ok(())
        },
    )?;
    traj.flush().with_context(|| writing(&traj_path))?;

    let arch = &sn.arch;
    let chosen: Vec<ConvChoice> = arch
        .layers
        .iter()
        .zip(&outcome.chosen)
        .map(|(l, &i)| l.candidates[i])
        .collect();
    let layer_file = LayerFile {
        layers: chosen.clone(),
        shortcut_bits: Some(cfg.model.shortcut_bits),
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
        "batch": job.lut_batch,
        "threads": threads,
        "lut": job.lut, "lut_cpu": lut.cpu, "lut_threads": lut.threads,
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
    crate::plot::plot_probabilities(&svg, &points, &names)?;
    let summary = json!({
        "seconds": outcome.seconds, "weight_steps": outcome.weight_steps, "arch_steps": outcome.arch_steps,
        "val_acc_argmax": outcome.epochs.last().map(|e| e.val_acc),
    });
    write_atomic(
        &out.join("outcome.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;

    Ok(SearchReport {
        chosen: arch.layers.iter().map(|l| l.site).zip(chosen).collect(),
        layers: layer_file,
        layers_path,
        expected_ms: outcome.expected_ms,
        chosen_ms: outcome.argmax_ms,
        predicted_ms: predicted,
        seconds: outcome.seconds,
        weight_steps: outcome.weight_steps,
        arch_steps: outcome.arch_steps,
        chw,
        timing_threads: threads,
    })
}

/// Trains the chosen network from scratch, exports it and times it with the engine.
/// Trains the chosen network from scratch, exports it and times it with the engine.
pub fn retrain(job: &SearchJob, found: &SearchReport, epochs: usize) -> Result<RetrainReport> {
    let mut cfg = job.train.clone();
    cfg.model.layers = found.layers.layers.clone();
    cfg.epochs = epochs;
    let (out, threads, predicted) = (&job.out, found.timing_threads, found.predicted_ms);
    let dir = out.join("retrain");
    let o = runner::train(cfg, &dir, Start::Fresh, job.options.quiet)?;
    let (op, info, _) = winq_train::deploy::export_checkpoint(&dir.join("best.safetensors"))?;
    let model = out.join("model.winq");
    winq_ir::save(&model, &op, &info)?;
    let measured = engine_ms(&op, job.lut_batch, found.chw, job.reps, threads)?;
    let result = json!({
        "test_acc": o.test_acc_best, "best_epoch": o.best_epoch, "epochs": o.epochs, "train_seconds": o.seconds,
        "model": model, "batch": job.lut_batch, "threads": threads,
        "measured_ms": measured, "predicted_ms": predicted,
        "prediction_error": predicted.map(|p| (p - measured) / measured),
    });
    write_atomic(
        &out.join("retrain.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    Ok(RetrainReport {
        test_acc: o.test_acc_best,
        measured_ms: measured,
        predicted_ms: predicted,
        batch: job.lut_batch,
        threads,
        model,
    })
}
