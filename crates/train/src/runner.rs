//! The training loop: epochs over a seeded loader, validation, metrics, checkpoints, resume.

use crate::checkpoint::{self, Checkpoint, RunState};
use crate::config::{InputShape, ModelKind, OptimKind, ScheduleKind, TrainConfig};
use crate::error::{Result, ResultExt, TrainError};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use winq_data::{load, split_train_val, Augment, Dataset, Loader, LoaderOptions, Split};
use winq_nn::models::{lenet, resnet18like, Algo, ConvPlacement, ResNetConfig};
use winq_nn::schedule::{LrSchedule, Schedule};
use winq_nn::{
    param_count, softmax_cross_entropy, zero_grads, Adam, Layer, Mode, Optimizer, Precision, Sequential, Sgd,
    Tensor,
};

/// A built network and where its configurable layers went.
pub struct Built {
    pub net: Sequential,
    pub placements: Vec<ConvPlacement>,
}

/// Builds the network of a configuration for inputs of c×h×w and `classes` outputs.
pub fn build_model(cfg: &TrainConfig, c: usize, h: usize, w: usize, classes: usize) -> Result<Built> {
    let m = &cfg.model;
    let convs = m.layers.clone();
    let shortcut = winq_nn::Precision::from_bits(m.shortcut_bits).context("shortcut")?;
    let net_cfg = ResNetConfig {
        in_channels: c,
        height: h,
        width: w,
        classes,
        mult: m.mult,
        convs,
        shortcut,
        points: m.points.parse().context("points")?,
        granularity: m.granularity,
        seed: m.seed,
    };
    let want = m.arch.conv_layers();
    if net_cfg.convs.len() != want {
        return Err(TrainError::Invalid(format!(
            "{:?} has {want} configurable 3x3 layers; the configuration gives {}",
            m.arch,
            net_cfg.convs.len()
        )));
    }
    if m.mult <= 0.0 {
        return Err(TrainError::invalid("the width multiplier must be positive"));
    }
    let (net, placements) = match m.arch {
        ModelKind::Resnet18like => resnet18like(&net_cfg)?,
        ModelKind::Lenet => lenet(&net_cfg)?,
    };
    // A model rebuilt from a configuration must run what was recorded (the same input gives
    // the same tiles; another input would silently change them).
    if let Some(used) = &m.layers_used {
        if let Some((p, want)) = placements.iter().zip(used).find(|(p, want)| p.used != **want) {
            return Err(TrainError::Invalid(format!(
                "layer {} would run {} on its {}x{} map, but the model was trained running {want}",
                p.index, p.used, p.height, p.width
            )));
        }
    }
    Ok(Built { net, placements })
}

/// The model summary printed at start.
pub fn summary(net: &mut Sequential, placements: &[ConvPlacement]) -> String {
    let mut out = format!(
        "{:<6} {:>14} {:>10} {:>7} {:>6} {:>9}\n",
        "layer", "input", "algorithm", "flex", "bits", "params"
    );
    for p in placements {
        let (algo, flex) = match p.used.algo {
            Algo::Im2row => ("im2row".to_string(), "-"),
            Algo::Winograd { m, flex } => (format!("F{m}"), if flex { "flex" } else { "static" }),
        };
        let bits = match p.used.precision {
            Precision::Fp32 => "fp32".to_string(),
            Precision::Int(b) => b.to_string(),
        };
        let params = p.in_channels * p.out_channels * 9;
        let note = if p.used != p.requested {
            format!(
                "  (asked {}: {}x{} map is smaller than the tile)",
                p.requested.algo, p.height, p.width
            )
        } else {
            String::new()
        };
        out += &format!(
            "{:<6} {:>14} {:>10} {:>7} {:>6} {:>9}{note}\n",
            p.index,
            format!("{}x{}x{}", p.in_channels, p.height, p.width),
            algo,
            flex,
            bits,
            params
        );
    }
    out += &format!("total learnable parameters: {}\n", param_count(net));
    out
}

/// The weight optimizer of a configuration.
pub fn optimizer(cfg: &TrainConfig) -> Result<Box<dyn Optimizer>> {
    Ok(match cfg.optimizer {
        OptimKind::Adam => Box::new(Adam::new(cfg.weight_decay)?),
        OptimKind::Sgd => Box::new(Sgd::new(cfg.momentum, cfg.nesterov, cfg.weight_decay)?),
    })
}

/// The learning-rate schedule of a configuration.
pub fn schedule(cfg: &TrainConfig, steps_per_epoch: usize) -> LrSchedule {
    let s = match cfg.schedule {
        ScheduleKind::Multistep => Schedule::multi_step(),
        ScheduleKind::Cosine => Schedule::Cosine { min_lr: 0.0 },
        ScheduleKind::Constant => Schedule::Constant,
    };
    LrSchedule::new(s, (cfg.warmup_epochs * steps_per_epoch as f32) as usize)
}

/// A rough upper estimate of the training memory one image of a batch needs (bytes): every
/// 3x3 layer keeps its input and output with their quantized copies and gradients, and a
/// Winograd layer also its transformed input and Hadamard sums ((t/m)² as large). Within
/// about 1.5x of measured peaks (ResNet18Like x0.5, batch 64: 1.0 GB estimated, 0.7 GB peak).
pub fn train_bytes_per_image(placements: &[ConvPlacement]) -> f64 {
    placements
        .iter()
        .map(|p| {
            let plane = (p.height * p.width) as f64;
            let io = (p.in_channels + p.out_channels) as f64 * plane;
            let wino = match p.used.algo {
                Algo::Winograd { m, .. } => {
                    let r = (m + 2) as f64 / m as f64;
                    2.0 * io * r * r
                }
                Algo::Im2row => 0.0,
            };
            4.0 * (3.0 * io + wino)
        })
        .sum()
}

/// Memory this machine has available (MemAvailable), where /proc tells.
fn available_bytes() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

/// Refuses a batch whose estimated training memory exceeds what the machine has, with the
/// estimate (instead of an allocation failure that aborts the process mid-run).
fn check_batch_memory(cfg: &TrainConfig, placements: &[ConvPlacement], train_images: usize) -> Result<()> {
    let batch = cfg.batch.min(train_images.max(1));
    let per = train_bytes_per_image(placements);
    let need = per * batch as f64;
    match available_bytes() {
        Some(have) if need > have => Err(TrainError::Invalid(format!(
            "--batch {}: training would need about {:.1} GB of activations ({:.1} MB per image × {batch}) but \
             {:.1} GB of memory is available; use a smaller --batch (at most about {})",
            cfg.batch,
            need / 1e9,
            per / 1e6,
            have / 1e9,
            (have / per) as usize
        ))),
        _ => Ok(()),
    }
}

/// Train/val/test data of a run.
pub struct Data {
    pub train: Arc<Dataset>,
    pub val: Arc<Dataset>,
    pub test: Arc<Dataset>,
}

/// One split of the configuration's dataset as the model sees it (padded to `pad_to`).
pub fn load_split(cfg: &TrainConfig, split: Split) -> Result<Dataset> {
    let ds = load(cfg.dataset, &cfg.data_dir, split)?;
    Ok(match cfg.pad_to {
        Some(size) => ds.pad_to(size)?,
        None => ds,
    })
}

/// The model of `cfg` takes the images of `ds` (their shape is its recorded input).
pub fn check_input(cfg: &TrainConfig, ds: &Dataset) -> Result<()> {
    let want = cfg.input_shape();
    let got = InputShape {
        channels: ds.c,
        height: ds.h,
        width: ds.w,
    };
    if got != want {
        return Err(TrainError::Invalid(format!(
            "the model takes {want} inputs but {} gives {got} images{}",
            cfg.dataset,
            if got.height < want.height {
                format!(" (pad them: --pad-to {})", want.height)
            } else {
                String::new()
            }
        )));
    }
    Ok(())
}

pub fn load_data(cfg: &TrainConfig) -> Result<Data> {
    let full = load_split(cfg, Split::Train)?;
    let test = load_split(cfg, Split::Test)?;
    if !(0.0..1.0).contains(&cfg.val_fraction) {
        return Err(TrainError::Invalid(format!(
            "--val-fraction must be in [0, 1), got {}",
            cfg.val_fraction
        )));
    }
    let (train, val) = split_train_val(&full, cfg.val_fraction, cfg.seed);
    Ok(Data {
        train: Arc::new(train),
        val: Arc::new(val),
        test: Arc::new(test),
    })
}

/// One epoch of batches: shuffled and augmented for training, in order otherwise.
pub fn loader(cfg: &TrainConfig, ds: &Arc<Dataset>, epoch: u64, train: bool) -> Loader {
    Loader::new(
        ds.clone(),
        LoaderOptions {
            batch: cfg.batch,
            shuffle: train,
            seed: cfg.seed,
            epoch,
            augment: if train { cfg.augment } else { Augment::default() },
            norm: cfg.normalization(),
            drop_last: false,
        },
    )
}

/// (mean loss, accuracy) of `net` in eval mode over a dataset.
pub fn evaluate(net: &mut dyn Layer, cfg: &TrainConfig, ds: &Arc<Dataset>) -> Result<(f64, f64)> {
    if ds.n == 0 {
        return Ok((f64::NAN, f64::NAN));
    }
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for b in loader(cfg, ds, 0, false) {
        let x = Tensor::from_vec(&[b.n, b.c, b.h, b.w], b.x);
        let logits = net.forward(&x, Mode::Eval);
        let (l, _, c) = softmax_cross_entropy(&logits, &b.labels)?;
        loss += l as f64 * b.n as f64;
        correct += c;
    }
    Ok((loss / ds.n as f64, correct as f64 / ds.n as f64))
}

/// Paths of a run directory.
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn last(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn results(&self) -> PathBuf {
        self.dir.join("results.json")
    }
}

/// How a run starts.
pub enum Start {
    Fresh,
    /// Continue the run saved in `<out>` (its configuration, from `last.safetensors`); `epochs`
    /// changes its length explicitly (at least the epochs it has completed), else it keeps its
    /// own.
    Resume {
        epochs: Option<usize>,
    },
    /// Initialise from another checkpoint's matching tensors (adapt), then train.
    InitFrom(PathBuf),
}

/// Final numbers of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub best_epoch: usize,
    pub best_val_acc: f64,
    pub test_acc_best: f64,
    pub test_acc_last: f64,
    pub test_loss_last: f64,
    pub epochs: usize,
    pub seconds: f64,
}

/// How often training prints a progress line when its output is a log, not a terminal: 30 s,
/// or `WINQ_LOG_EVERY_S` seconds.
pub fn log_every() -> std::time::Duration {
    let s = std::env::var("WINQ_LOG_EVERY_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok());
    std::time::Duration::from_secs_f64(s.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(30.0))
}

/// The per-epoch progress bar of training loops (hidden when quiet).
pub fn epoch_bar(steps: usize, quiet: bool) -> ProgressBar {
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps as u64)
    };
    pb.set_style(
        ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg} [{elapsed}<{eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Takes the run directory for this process: an exclusive lock on `DIR/.lock`, held until the
/// returned file is dropped. A second run on the same directory gets a clear error instead of
/// interleaving its checkpoints and metrics with the first's.
pub fn lock_run_dir(out: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            checkpoint::remove_stale_temporaries(out);
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::Invalid(format!(
            "{} is in use by another winq run (it holds {}); wait for it or choose another --out",
            out.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(TrainError::from(e).context(format!("cannot lock {}", path.display())))
        }
    }
}

pub fn train(mut cfg: TrainConfig, out: &Path, start: Start, quiet: bool) -> Result<Outcome> {
    let run = RunDir {
        dir: out.to_path_buf(),
    };
    cfg.check().map_err(TrainError::Invalid)?;
    let _lock = lock_run_dir(out)?;
    if !matches!(start, Start::Resume { .. }) && run.last().exists() {
        return Err(TrainError::Invalid(format!(
            "{} already holds a run (last.safetensors); use --resume to continue it or choose another --out",
            out.display()
        )));
    }
    let mut state = RunState::default();
    let resume_ck = match start {
        Start::Resume { epochs } => {
            let ck = Checkpoint::read(&run.last())
                .with_context(|| format!("--resume: no usable checkpoint in {}", out.display()))?;
            if ck.config.model != cfg.model || ck.config.dataset != cfg.dataset {
                eprintln!(
                    "note: --resume continues the run saved in {} (its model and data settings win)",
                    out.display()
                );
            }
            // The saved run defines model, data, optimization and length; a length given
            // explicitly replaces its own (the learning-rate schedule follows it).
            let max_steps = cfg.max_steps;
            cfg = ck.config.clone();
            if let Some(e) = epochs {
                if e < ck.state.epoch {
                    return Err(TrainError::Invalid(format!(
                        "--epochs {e}: the run in {} has already completed {} epochs",
                        out.display(),
                        ck.state.epoch
                    )));
                }
                cfg.epochs = e;
            }
            cfg.max_steps = max_steps;
            state = ck.state.clone();
            Some(ck)
        }
        _ => None,
    };
    let data = load_data(&cfg)?;
    let t = &data.train;
    if cfg.model.input.is_some() {
        check_input(&cfg, t)?;
    }
    cfg.model.input = Some(InputShape {
        channels: t.c,
        height: t.h,
        width: t.w,
    });
    cfg.normalization = Some(cfg.normalization());
    let Built { mut net, placements } = build_model(&cfg, t.c, t.h, t.w, t.classes)?;
    cfg.model.layers_used = Some(placements.iter().map(|p| p.used).collect());
    check_batch_memory(&cfg, &placements, t.n)?;
    let mut opt = optimizer(&cfg)?;
    match (&start, &resume_ck) {
        (Start::Resume { .. }, Some(ck)) => {
            ck.load_model(&mut net, true)?;
            ck.load_optimizer(&mut net, opt.as_mut())?;
        }
        (Start::InitFrom(p), _) => {
            let ck = Checkpoint::read(p)?;
            let fresh = ck.load_model(&mut net, false)?;
            if !quiet {
                eprintln!(
                    "initialised from {} ({} tensors start fresh, e.g. Winograd transforms and Winograd-domain quantizers, which take their first range from live tensors)",
                    p.display(),
                    fresh.len()
                );
            }
        }
        _ => {}
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    checkpoint::write_atomic(&run.config(), serde_json::to_string_pretty(&cfg)?.as_bytes())?;
    if !quiet {
        eprintln!(
            "{} on {} ({} train / {} val / {} test, {}x{}x{}), {} epochs, batch {}, {} threads; run in {}",
            format_args!("{} x{}", cfg.model.arch, cfg.model.mult),
            cfg.dataset,
            data.train.n,
            data.val.n,
            data.test.n,
            t.c,
            t.h,
            t.w,
            cfg.epochs,
            cfg.batch,
            rayon::current_num_threads(),
            out.display()
        );
        eprint!("{}", summary(&mut net, &placements));
    }
    // Metrics of completed epochs survive a resume; later lines (a killed epoch) do not.
    let kept: Vec<String> = std::fs::read_to_string(run.metrics())
        .unwrap_or_default()
        .lines()
        .take(state.epoch)
        .map(String::from)
        .collect();
    let metrics_path = run.metrics();
    let write_err = || format!("writing {}", metrics_path.display());
    let mut metrics = std::fs::File::create(&metrics_path)
        .with_context(|| format!("creating {}", metrics_path.display()))?;
    for l in &kept {
        writeln!(metrics, "{l}").with_context(write_err)?;
    }

    let steps_per_epoch = data.train.n.div_ceil(cfg.batch.max(1));
    let total_steps = steps_per_epoch * cfg.epochs;
    let sched = schedule(&cfg, steps_per_epoch);
    let t_run = Instant::now();
    // Without a terminal the bar is hidden: logs get a progress line every LOG_EVERY instead.
    let log_lines = !quiet && !std::io::stderr().is_terminal();
    let every = log_every();
    let mut last_line = Instant::now();
    for epoch in state.epoch..cfg.epochs {
        let t0 = Instant::now();
        // The bar ends where this epoch will stop (--max-steps may cut it short).
        let steps_here = cfg.max_steps.map_or(steps_per_epoch, |m| {
            m.saturating_sub(state.step).min(steps_per_epoch)
        });
        let pb = epoch_bar(steps_here, quiet);
        pb.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let (mut seen, mut loss_sum, mut correct) = (0usize, 0.0f64, 0usize);
        let mut lr = cfg.lr;
        for b in loader(&cfg, &data.train, epoch as u64, true) {
            if cfg.max_steps.is_some_and(|m| state.step >= m) {
                break;
            }
            lr = sched.lr(cfg.lr, state.step, total_steps);
            let x = Tensor::from_vec(&[b.n, b.c, b.h, b.w], b.x);
            let logits = net.forward(&x, Mode::Train);
            let (loss, grad, c) = softmax_cross_entropy(&logits, &b.labels)?;
            if !loss.is_finite() || logits.first_non_finite().is_some() {
                pb.abandon();
                return Err(TrainError::Invalid(format!(
                    "training diverged: the loss is {loss} at epoch {}, batch {} of {} (step {}); stopped without \
                     touching the checkpoints in {} (last good: epoch {})",
                    epoch + 1,
                    b.index + 1,
                    steps_per_epoch,
                    state.step + 1,
                    out.display(),
                    state.epoch
                )));
            }
            net.backward(&grad);
            opt.step(&mut net, lr);
            zero_grads(&mut net);
            state.step += 1;
            seen += b.n;
            loss_sum += loss as f64 * b.n as f64;
            correct += c;
            let dt = t0.elapsed().as_secs_f64();
            let msg = format!(
                "loss {:.4} acc {:.2}% {:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                seen as f64 / dt
            );
            if log_lines && last_line.elapsed() >= every {
                eprintln!(
                    "epoch {}/{}: step {}/{steps_here}, {msg}",
                    epoch + 1,
                    cfg.epochs,
                    b.index + 1
                );
                last_line = Instant::now();
            }
            pb.set_message(msg);
            pb.inc(1);
        }
        pb.finish_and_clear();
        let train_time = t0.elapsed().as_secs_f64();
        let (val_loss, val_acc) = evaluate(&mut net, &cfg, &data.val)?;
        state.epoch = epoch + 1;
        let line = json!({
            "epoch": epoch + 1,
            "step": state.step,
            "lr": lr,
            "train_loss": loss_sum / seen.max(1) as f64,
            "train_acc": correct as f64 / seen.max(1) as f64,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "time_s": t0.elapsed().as_secs_f64(),
            "img_per_s": seen as f64 / train_time,
        });
        writeln!(metrics, "{line}").with_context(write_err)?;
        metrics.flush().with_context(write_err)?;
        if !quiet {
            eprintln!(
                "epoch {}/{}: train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | {:.0} img/s, {:.0} s",
                epoch + 1,
                cfg.epochs,
                loss_sum / seen.max(1) as f64,
                100.0 * correct as f64 / seen.max(1) as f64,
                val_loss,
                100.0 * val_acc,
                seen as f64 / train_time,
                t0.elapsed().as_secs_f64()
            );
        }
        let improved = val_acc > state.best_val_acc || state.best_epoch == 0 || val_acc.is_nan();
        if improved {
            state.best_val_acc = if val_acc.is_nan() { 0.0 } else { val_acc };
            state.best_epoch = epoch + 1;
            checkpoint::save(&run.best(), &mut net, Some(opt.as_ref()), &cfg, &state)?;
        }
        checkpoint::save(&run.last(), &mut net, Some(opt.as_ref()), &cfg, &state)?;
        if cfg.max_steps.is_some_and(|m| state.step >= m) {
            break;
        }
    }

    let (test_loss_last, test_acc_last) = evaluate(&mut net, &cfg, &data.test)?;
    let best = Checkpoint::read(&run.best())?;
    best.load_model(&mut net, true)?;
    let (_, test_acc_best) = evaluate(&mut net, &cfg, &data.test)?;
    let outcome = Outcome {
        best_epoch: state.best_epoch,
        best_val_acc: state.best_val_acc,
        test_acc_best,
        test_acc_last,
        test_loss_last,
        epochs: state.epoch,
        seconds: t_run.elapsed().as_secs_f64(),
    };
    checkpoint::write_atomic(&run.results(), serde_json::to_string_pretty(&outcome)?.as_bytes())?;
    Ok(outcome)
}
