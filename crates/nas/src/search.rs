//! The search loop: weight steps on the training split with one sampled path per layer,
//! alternating (every `arch_every` weight steps, after the warm-up) with logit steps on the
//! validation split that minimise CE + λ·E[latency].

use crate::arch::{temperature, AlphaAdam, ArchLogits, LatencyTerm, Settledness};
use crate::error::{NasError, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use winq_data::{Augment, Batch, Dataset, Loader, LoaderOptions};
use winq_nn::{softmax_cross_entropy, zero_grads, Layer, Mode, Sequential, Tensor};
use winq_train::config::TrainConfig;
use winq_train::runner::{self, Data};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchOptions {
    /// Epochs that train weights only (paths sampled uniformly) before logits move.
    pub warmup_epochs: usize,
    /// Weight of the latency term in the logits' loss.
    pub lambda: f64,
    /// How the expected latency enters that loss.
    pub latency_term: LatencyTerm,
    /// Softmax temperature, geometric from start to end over the search phase.
    pub tau_start: f64,
    pub tau_end: f64,
    /// Adam learning rate of the logits.
    pub arch_lr: f64,
    /// Weight steps per logit step.
    pub arch_every: usize,
    /// Logit steps between two trajectory points.
    pub log_every: usize,
    /// Training batches run through the argmax network before each evaluation so that the
    /// shared BatchNorm statistics (averaged over sampled paths) match it.
    pub bn_calib_batches: usize,
    pub quiet: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            warmup_epochs: 1,
            lambda: 0.0,
            latency_term: LatencyTerm::Relative,
            tau_start: 1.0,
            tau_end: 1.0,
            arch_lr: 6e-3,
            arch_every: 4,
            log_every: 10,
            bn_calib_batches: 30,
            quiet: true,
        }
    }
}

/// The candidate probabilities at one point of the search.
#[derive(Debug, Clone, Serialize)]
pub struct TracePoint {
    pub step: usize,
    pub arch_step: usize,
    pub epoch: usize,
    pub tau: f64,
    pub expected_ms: f64,
    pub probs: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub warmup: bool,
    pub step: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    /// The argmax network (each layer's most likely path) on the validation split.
    pub val_loss: f64,
    pub val_acc: f64,
    pub arch_steps: usize,
    pub expected_ms: f64,
    pub argmax_ms: f64,
    /// How far the probabilities have settled at the epoch's end.
    pub settled: Settledness,
    pub weight_s: f64,
    pub arch_s: f64,
    pub time_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchOutcome {
    /// Chosen candidate index per searchable layer.
    pub chosen: Vec<usize>,
    pub tau: f64,
    pub expected_ms: f64,
    pub argmax_ms: f64,
    pub weight_steps: usize,
    pub arch_steps: usize,
    pub epochs: Vec<EpochLog>,
    pub seconds: f64,
}

/// Validation batches for logit steps, reshuffled on every pass.
struct ValStream {
    ds: Arc<Dataset>,
    cfg: TrainConfig,
    pass: u64,
    loader: Loader,
}

impl ValStream {
    fn loader(ds: &Arc<Dataset>, cfg: &TrainConfig, pass: u64) -> Loader {
        Loader::new(
            ds.clone(),
            LoaderOptions {
                batch: cfg.batch,
                shuffle: true,
                seed: cfg.seed ^ 0x7a1,
                epoch: pass,
                augment: Augment::default(),
                norm: cfg.normalization(),
                drop_last: false,
            },
        )
    }

    fn next(&mut self) -> Batch {
        loop {
            if let Some(b) = self.loader.next() {
                return b;
            }
            self.pass += 1;
            self.loader = Self::loader(&self.ds, &self.cfg, self.pass);
        }
    }
}

/// Re-estimates BatchNorm running statistics (and quantizer ranges) for the paths the gates
/// are set to: training-mode forwards, no backward, no weight update.
fn recalibrate(net: &mut Sequential, cfg: &TrainConfig, train: &Arc<Dataset>, epoch: usize, batches: usize) {
    for b in runner::loader(cfg, train, 1_000_000 + epoch as u64, true).take(batches) {
        net.forward(&tensor(&b), Mode::Train);
    }
}

fn tensor(b: &Batch) -> Tensor {
    Tensor::from_vec(&[b.n, b.c, b.h, b.w], b.x.clone())
}

/// Runs the search on `net`, whose searchable layers `arch` drives. `cfg` gives the data
/// pipeline, batch, epochs, weight optimizer and schedule (as `winq train`). Every
/// `opts.log_every` logit steps (and at the end of each epoch) `trace` gets the probabilities;
/// `epoch_done` gets each epoch's metrics.
pub fn search(
    net: &mut Sequential,
    arch: &mut ArchLogits,
    data: &Data,
    cfg: &TrainConfig,
    opts: &SearchOptions,
    trace: &mut dyn FnMut(&TracePoint) -> Result<()>,
    epoch_done: &mut dyn FnMut(&EpochLog) -> Result<()>,
) -> Result<SearchOutcome> {
    if data.val.n == 0 {
        return Err(NasError::invalid(
            "the search needs a validation split for its logit steps: use a --val-fraction above 0",
        ));
    }
    if opts.arch_every == 0 || opts.log_every == 0 {
        return Err(NasError::invalid(
            "--arch-every and --log-every must be at least 1",
        ));
    }
    if !(opts.tau_start > 0.0 && opts.tau_end > 0.0) {
        return Err(NasError::invalid("temperatures must be positive"));
    }
    if opts.warmup_epochs >= cfg.epochs {
        return Err(NasError::Invalid(format!(
            "--warmup-epochs ({}) must be below --epochs ({}): the logits move only after the warm-up",
            opts.warmup_epochs, cfg.epochs
        )));
    }
    let mut opt = runner::optimizer(cfg)?;
    let steps_per_epoch = data.train.n.div_ceil(cfg.batch.max(1));
    let total_steps = steps_per_epoch * cfg.epochs;
    let sched = runner::schedule(cfg, steps_per_epoch);
    let warm_steps = steps_per_epoch * opts.warmup_epochs;
    let search_steps = (total_steps - warm_steps).max(1);
    let mut alpha_opt = AlphaAdam::new(opts.arch_lr, &arch.layers);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5ea7c4);
    let mut val = ValStream {
        loader: ValStream::loader(&data.val, cfg, 0),
        ds: data.val.clone(),
        cfg: cfg.clone(),
        pass: 0,
    };
    let scale = arch.latency_scale();
    if scale.reference_ms <= 0.0
        || matches!(opts.latency_term, LatencyTerm::Target { target_ms } if target_ms <= 0.0)
    {
        return Err(NasError::invalid(
            "the latency term needs a positive reference latency and target",
        ));
    }
    let (mut step, mut arch_steps) = (0usize, 0usize);
    let mut tau = opts.tau_start;
    let mut epochs = Vec::new();
    let t_run = Instant::now();
    let point = |arch: &ArchLogits, step, arch_step, epoch, tau| TracePoint {
        step,
        arch_step,
        epoch,
        tau,
        expected_ms: arch.expected_ms(tau),
        probs: arch.probs(tau),
    };
    trace(&point(arch, 0, 0, 0, tau))?;
    for epoch in 0..cfg.epochs {
        let warm = epoch < opts.warmup_epochs;
        let t0 = Instant::now();
        let (mut weight_s, mut arch_s) = (0.0f64, 0.0f64);
        let (mut seen, mut loss_sum, mut correct, mut epoch_arch) = (0usize, 0.0f64, 0usize, 0usize);
        let pb = winq_train::runner::epoch_bar(steps_per_epoch, opts.quiet);
        pb.set_prefix(format!(
            "{}/{}{}",
            epoch + 1,
            cfg.epochs,
            if warm { " (warm-up)" } else { "" }
        ));
        for b in runner::loader(cfg, &data.train, epoch as u64, true) {
            if cfg.max_steps.is_some_and(|m| step >= m) {
                break;
            }
            let tw = Instant::now();
            arch.sample_paths(tau, &mut rng);
            let logits = net.forward(&tensor(&b), Mode::Train);
            let (loss, grad, c) = softmax_cross_entropy(&logits, &b.labels)?;
            if !loss.is_finite() {
                pb.abandon();
                return Err(NasError::Invalid(format!(
                    "the search diverged: loss {loss} at epoch {}, step {}",
                    epoch + 1,
                    step + 1
                )));
            }
            net.backward(&grad);
            opt.step(net, sched.lr(cfg.lr, step, total_steps));
            zero_grads(net);
            step += 1;
            seen += b.n;
            loss_sum += loss as f64 * b.n as f64;
            correct += c;
            weight_s += tw.elapsed().as_secs_f64();

            if !warm && step % opts.arch_every == 0 {
                let ta = Instant::now();
                tau = temperature(
                    opts.tau_start,
                    opts.tau_end,
                    (step - warm_steps) as f64 / search_steps as f64,
                );
                let vb = val.next();
                arch.sample_pairs(tau, &mut rng);
                let logits = net.forward(&tensor(&vb), Mode::Train);
                let (_, grad, _) = softmax_cross_entropy(&logits, &vb.labels)?;
                net.backward(&grad);
                zero_grads(net); // logit steps leave the weights alone
                let g = arch.grads(tau, opts.lambda, &opts.latency_term, &scale);
                alpha_opt.step(&mut arch.layers, &g);
                arch_steps += 1;
                epoch_arch += 1;
                if arch_steps % opts.log_every == 0 {
                    trace(&point(arch, step, arch_steps, epoch + 1, tau))?;
                }
                arch_s += ta.elapsed().as_secs_f64();
            }
            pb.set_message(format!(
                "loss {:.4} acc {:.2}% E[lat] {:.3} ms",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                arch.expected_ms(tau)
            ));
            pb.inc(1);
        }
        pb.finish_and_clear();
        arch.set_paths(&arch.argmax());
        recalibrate(net, cfg, &data.train, epoch, opts.bn_calib_batches);
        let (val_loss, val_acc) = runner::evaluate(net, cfg, &data.val)?;
        trace(&point(arch, step, arch_steps, epoch + 1, tau))?;
        let log = EpochLog {
            epoch: epoch + 1,
            warmup: warm,
            step,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_acc,
            arch_steps: epoch_arch,
            expected_ms: arch.expected_ms(tau),
            argmax_ms: arch.argmax_ms(),
            settled: arch.settledness(tau),
            weight_s,
            arch_s,
            time_s: t0.elapsed().as_secs_f64(),
        };
        epoch_done(&log)?;
        epochs.push(log);
        if cfg.max_steps.is_some_and(|m| step >= m) {
            break;
        }
    }
    let chosen = arch.argmax();
    arch.set_paths(&chosen);
    Ok(SearchOutcome {
        chosen,
        tau,
        expected_ms: arch.expected_ms(tau),
        argmax_ms: arch.argmax_ms(),
        weight_steps: step,
        arch_steps,
        epochs,
        seconds: t_run.elapsed().as_secs_f64(),
    })
}
