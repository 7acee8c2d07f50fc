//! `winq bench`: speed and memory measurements (commands, never timed tests).

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;
use std::process::Command;
use std::time::Instant;
use winq_nn::models::{resnet18like, Algo, ConvChoice, ResNetConfig};
use winq_nn::{softmax_cross_entropy, zero_grads, Adam, Layer, Mode, Optimizer, Precision, Tensor};
use winq_train::config::ModelKind;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Training-step throughput and peak memory of ResNet18Like on synthetic CIFAR-sized data.
    TrainStep(TrainStepArgs),
    /// INT8 GEMM throughput (GOP/s) per instruction-set path, single thread, beside f32 sgemm.
    GemmInt8(GemmArgs),
    /// One INT8 3x3 convolution layer: im2row vs Winograd F2/F4/F6 (engine kernels, 1 thread).
    ConvInt8(ConvArgs),
    /// Latency table: every candidate algorithm for every 3x3 layer shape of a model, as JSON
    /// (the table wiNAS reads).
    Layers(LayersArgs),
    /// Whole-network latency of a deploy model (.winq).
    Model(ModelBenchArgs),
}

#[derive(clap::Args)]
pub struct LayersArgs {
    /// Network (the names `train` and `search` take).
    #[arg(long, value_enum, default_value_t = ModelKind::Resnet18like)]
    model: ModelKind,
    #[arg(long, default_value_t = 0.5)]
    mult: f32,
    /// Input size and channels (CIFAR: 32 and 3; Fashion-MNIST: 28 and 1).
    #[arg(long, default_value_t = 32)]
    size: usize,
    #[arg(long, default_value_t = 3)]
    channels: usize,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batches: Vec<usize>,
    /// Timed repetitions per entry (median reported).
    #[arg(long, default_value_t = 15)]
    reps: usize,
    /// Write the JSON table here (default: print it).
    #[arg(long, short = 'o')]
    out: Option<std::path::PathBuf>,
    /// Thread counts to measure, e.g. `1,2` (default: the pool's); entries record theirs.
    #[arg(long, value_delimiter = ',')]
    threads_list: Vec<usize>,
}

#[derive(clap::Args)]
pub struct ModelBenchArgs {
    /// A model written by `winq export`, or `synthetic` for an untrained ResNet18Like on
    /// 3x32x32 inputs built from --mult and --layer (latency does not depend on training).
    model: std::path::PathBuf,
    /// Synthetic model: width multiplier.
    #[arg(long, default_value_t = 0.5)]
    mult: f32,
    /// Synthetic model: configuration of every 3x3 layer (as `bench train-step --configs`),
    /// e.g. int8, static-f4, static-f2; or a comma list of 16 entries, one per layer.
    #[arg(long, value_delimiter = ',', default_value = "int8")]
    layer: Vec<String>,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 30)]
    reps: usize,
    /// Also print the median time of every operation, in order (layers split over the
    /// threads as in a normal run; use RAYON_NUM_THREADS=1 for single-thread times).
    #[arg(long)]
    profile: bool,
}

fn timed(reps: usize, f: &mut dyn FnMut()) -> f64 {
    winq_engine::timing::median_secs(reps, f)
}

fn layers(a: LayersArgs) -> Result<()> {
    if a.threads_list.contains(&0) || a.batches.contains(&0) {
        bail!("--threads-list and --batches take counts of at least 1");
    }
    // One pass per thread count (the pool each pass runs on); the table's "threads" is the
    // first, which wiNAS optimises for.
    let spec = winq_nas::lut::MeasureSpec {
        model: a.model,
        mult: a.mult,
        channels: a.channels,
        size: a.size,
        batches: a.batches.clone(),
        threads: if a.threads_list.is_empty() {
            vec![rayon::current_num_threads()]
        } else {
            a.threads_list.clone()
        },
        reps: a.reps,
    };
    let table = winq_nas::lut::measure(&spec, &mut |e| {
        eprintln!(
            "  {:>4}->{:<4} {:>2}x{:<2} b{}: {:<12} {:8.3} ms",
            e.in_channels, e.out_channels, e.height, e.width, e.batch, e.candidate, e.ms
        )
    })?;
    match a.out {
        Some(p) => {
            table.write(&p)?;
            eprintln!("wrote {}", p.display());
        }
        None => println!("{}", serde_json::to_string_pretty(&table)?),
    }
    Ok(())
}

fn synthetic_model(a: &ModelBenchArgs) -> Result<(winq_ir::Op, winq_ir::ModelInfo)> {
    let choices: Vec<ConvChoice> = a.layer.iter().map(|c| parse_choice(c)).collect::<Result<_>>()?;
    let convs = match choices.len() {
        1 => vec![choices[0]; 16],
        16 => choices,
        n => bail!("--layer takes 1 or 16 entries, got {n}"),
    };
    let cfg = ResNetConfig {
        convs,
        ..ResNetConfig::uniform(
            3,
            32,
            10,
            a.mult,
            ConvChoice {
                algo: Algo::Im2row,
                precision: Precision::Int(8),
            },
        )
    };
    let (mut net, _) = resnet18like(&cfg)?;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = Tensor::from_vec(
        &[8, 3, 32, 32],
        (0..8 * 3 * 32 * 32)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect(),
    );
    net.forward(&x, Mode::Train); // real quantizer ranges
    let op = net.export()?;
    let info = winq_ir::ModelInfo {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
        mean: vec![0.0],
        std: vec![1.0],
        source: format!("synthetic resnet18like x{} {:?}", a.mult, a.layer),
        pad_to: None,
        labels: Vec::new(),
    };
    Ok((op, info))
}

fn model_bench(a: ModelBenchArgs) -> Result<()> {
    if a.batch == 0 || a.reps == 0 {
        bail!("--batch and --reps must be at least 1");
    }
    let (op, info) = if a.model.as_os_str() == "synthetic" {
        synthetic_model(&a)?
    } else {
        winq_ir::load(&a.model)?
    };
    let net = winq_engine::Net::compile(&op)?;
    let act = winq_engine::timing::random_input(a.batch.max(1), info.channels, info.height, info.width, 1);
    let ms = net.latency_ms(&act, a.reps);
    if a.profile {
        let runs: Vec<Vec<(String, f64)>> = (0..a.reps.max(1)).map(|_| net.profile(&act).1).collect();
        let mut total = 0.0;
        for (i, (name, _)) in runs[0].iter().enumerate() {
            let mut t: Vec<f64> = runs.iter().map(|r| r[i].1).collect();
            let ms = median(&mut t) * 1e3;
            total += ms;
            println!("  {i:>3} {name:<32} {ms:8.4} ms");
        }
        println!("  sum of medians {total:.3} ms");
    }
    println!(
        "{}: batch {} median {:.3} ms ({:.3} ms/image), {} threads, INT8 path {}",
        a.model.display(),
        a.batch,
        ms,
        ms / a.batch.max(1) as f64,
        rayon::current_num_threads(),
        winq_kernels::int8::path_name()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct ConvArgs {
    #[arg(long, default_value_t = 128)]
    c: usize,
    #[arg(long, default_value_t = 128)]
    k: usize,
    #[arg(long, default_value_t = 16)]
    size: usize,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Winograd tiles to time beside im2row (e.g. `--tiles 4` alone for profiling).
    #[arg(long, value_delimiter = ',', default_value = "2,4,6")]
    tiles: Vec<usize>,
    /// Also time each Winograd layer with one scale per tap in the Winograd domain (input,
    /// weights, Hadamard sums), as `winq train --per-tap` trains it.
    #[arg(long)]
    per_tap: bool,
}

fn conv_int8(a: ConvArgs) -> Result<()> {
    // Single-thread kernel timings: the kernels would otherwise split layers over the pool.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("thread pool")?
        .install(|| conv_int8_timings(a))
}

fn conv_int8_timings(a: ConvArgs) -> Result<()> {
    use winq_kernels::int8::conv::Im2rowI8;
    use winq_kernels::int8::winograd::WinogradI8;
    use winq_transforms::{transform, PointSet};
    let (c, k, s, n) = (a.c, a.k, a.size, a.batch);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x: Vec<i8> = (0..n * c * s * s).map(|_| rng.gen_range(0..=127)).collect();
    let time = |f: &mut dyn FnMut()| timed(a.reps, f);
    println!(
        "INT8 conv3x3 {c}->{k} @{s}x{s}, batch {n}, 1 thread, median of {} runs, GEMM path {}",
        a.reps,
        winq_kernels::int8::path_name()
    );
    let qw: Vec<i8> = (0..k * c * 9).map(|_| rng.gen()).collect();
    let im2row = Im2rowI8::new(&qw, c, k, 3, 0.02, &[0.01], 0.05);
    let mut y = vec![0i8; n * k * s * s];
    let base = time(&mut || {
        im2row.forward(&x, n, s, s, &mut y);
        std::hint::black_box(&y);
    });
    println!("  {:<12} {:8.3} ms", "im2row", base * 1e3);
    for &m in &a.tiles {
        let t = m + 2;
        let tr = transform(m, 3, &PointSet::Default)?.to_f64();
        // Aᵀ and Bᵀ quantized as a static 8-bit layer quantizes them (max-abs range).
        let code = |v: &[f64]| -> (Vec<i8>, f64) {
            let (lo, hi) = winq_quant::min_max(v);
            let s = winq_quant::scale_for(lo, hi, 8);
            let vals: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            (winq_quant::codes::codes_i8(&vals, &[s]), s)
        };
        let (at, s_at) = code(&tr.at.data);
        let (bt, s_bt) = code(&tr.bt.data);
        let spec = winq_ir::QuantWinograd {
            c,
            k,
            m,
            at,
            bt,
            s_at,
            s_bt,
            u: (0..t * t * k * c).map(|_| rng.gen()).collect(),
            s_u: vec![0.01],
            s_in: 0.02,
            s_v: vec![0.05],
            s_m: vec![0.5],
            s_out: 0.05,
        };
        let mut specs = vec![(format!("F{m}"), spec.clone())];
        if a.per_tap {
            // Scales spread over a factor of 4 around the per-tensor ones, one per tap.
            let mut per = |s0: f64| {
                (0..t * t)
                    .map(|_| s0 * rng.gen_range(0.5..2.0))
                    .collect::<Vec<f64>>()
            };
            let (s_u, s_v, s_m) = (per(0.01), per(0.05), per(0.5));
            specs.push((
                format!("F{m} per-tap"),
                winq_ir::QuantWinograd {
                    s_u,
                    s_v,
                    s_m,
                    ..spec
                },
            ));
        }
        for (name, spec) in specs {
            let l = WinogradI8::new(spec);
            let dt = time(&mut || {
                l.forward(&x, n, s, s, &mut y);
                std::hint::black_box(&y);
            });
            println!(
                "  {:<12} {:8.3} ms  ({:.2}x im2row; transforms {})",
                name,
                dt * 1e3,
                base / dt,
                l.transform_path()
            );
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct GemmArgs {
    #[arg(long, default_value_t = 256)]
    m: usize,
    #[arg(long, default_value_t = 2304)]
    k: usize,
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 15)]
    reps: usize,
}

fn gemm_int8(a: GemmArgs) -> Result<()> {
    use winq_kernels::int8::{gemm_isa, PackedA, PackedB};
    use winq_quant::simd;
    let (m, k, n) = (a.m, a.k, a.n);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w: Vec<i8> = (0..m * k).map(|_| rng.gen::<i8>()).collect();
    let x: Vec<i8> = (0..k * n).map(|_| rng.gen::<i8>()).collect();
    let (pw, px) = (PackedA::new(&w, m, k), PackedB::from_rows(&x, k, n, n));
    let mut c = vec![0i32; m * n];
    let ops = 2.0 * (m * k * n) as f64;
    let time = |f: &mut dyn FnMut()| timed(a.reps, f);
    println!(
        "INT8 GEMM {m}x{k}x{n} (C = W·X), 1 thread, median of {} runs",
        a.reps
    );
    for &isa in simd::available() {
        let name = format!("{} ({})", isa.name(), winq_kernels::int8::gemm_kernel_name(isa));
        let dt = time(&mut || gemm_isa(isa, &pw, &px, &mut c, n));
        println!(
            "  int8 {name:<14} {:8.2} ms {:8.1} GOP/s",
            dt * 1e3,
            ops / dt / 1e9
        );
    }
    let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut cf = vec![0f32; m * n];
    let dt = time(&mut || {
        winq_kernels::gemm::sgemm(
            m,
            n,
            k,
            &wf,
            winq_kernels::gemm::Layout::N,
            &xf,
            winq_kernels::gemm::Layout::N,
            &mut cf,
            false,
            1,
        )
    });
    println!(
        "  f32 sgemm (gemm crate) {:8.2} ms {:8.1} GFLOP/s",
        dt * 1e3,
        ops / dt / 1e9
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct TrainStepArgs {
    /// Width multiplier of ResNet18Like.
    #[arg(long, default_value_t = 0.5)]
    mult: f32,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Input size (square) and channels.
    #[arg(long, default_value_t = 32)]
    size: usize,
    #[arg(long, default_value_t = 3)]
    channels: usize,
    /// Measured steps (after the warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Configurations: fp32, int8 (im2row), static-f4, flex-f2, ... optionally with -int<b>/-fp32.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fp32,int8,static-f4,flex-f2,flex-f4,flex-f6"
    )]
    configs: Vec<String>,
    /// Run all configurations in this process instead of one child process each (peak RSS is
    /// then the maximum so far, not per configuration).
    #[arg(long)]
    in_process: bool,
    /// Print one JSON object per configuration.
    #[arg(long)]
    json: bool,
}

/// A layer choice as `ConvChoice` parses it ("F4-flex-int8", or short: "int8", "static-f4").
pub fn parse_choice(s: &str) -> Result<ConvChoice> {
    Ok(s.parse()?)
}

/// Peak resident set size of this process in bytes (VmHWM), where /proc is available.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

use winq_engine::timing::median;

fn run_one(a: &TrainStepArgs, name: &str) -> Result<serde_json::Value> {
    let choice = parse_choice(name)?;
    let cfg = ResNetConfig::uniform(a.channels, a.size, 10, a.mult, choice);
    let (mut net, _) = resnet18like(&cfg)?;
    let mut opt = Adam::new(4e-5)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = a.batch * a.channels * a.size * a.size;
    let x = Tensor::from_vec(
        &[a.batch, a.channels, a.size, a.size],
        (0..n).map(|_| StandardNormal.sample(&mut rng)).collect(),
    );
    let labels: Vec<usize> = (0..a.batch).map(|_| rng.gen_range(0..10)).collect();
    let mut times = Vec::new();
    let mut loss = 0.0;
    for step in 0..a.warmup + a.steps {
        let t0 = Instant::now();
        let logits = net.forward(&x, Mode::Train);
        let (l, grad, _) = softmax_cross_entropy(&logits, &labels)?;
        net.backward(&grad);
        opt.step(&mut net, 1e-3);
        zero_grads(&mut net);
        let dt = t0.elapsed().as_secs_f64();
        loss = l;
        if step >= a.warmup {
            times.push(dt);
        }
    }
    let med = median(&mut times);
    Ok(json!({
        "config": name,
        "choice": format!("{} {}", choice.algo, choice.precision),
        "mult": a.mult,
        "batch": a.batch,
        "threads": rayon::current_num_threads(),
        "median_step_s": med,
        "img_per_s": a.batch as f64 / med,
        "step_times_s": times,
        "peak_rss_bytes": peak_rss(),
        "final_loss": loss,
    }))
}

pub fn run(b: Bench) -> Result<()> {
    match b {
        Bench::TrainStep(a) => train_step(a),
        Bench::GemmInt8(a) => gemm_int8(a),
        Bench::ConvInt8(a) => conv_int8(a),
        Bench::Layers(a) => layers(a),
        Bench::Model(a) => model_bench(a),
    }
}

fn train_step(a: TrainStepArgs) -> Result<()> {
    for c in &a.configs {
        parse_choice(c)?;
    }
    if !a.json {
        println!(
            "ResNet18Like mult {} batch {} {}x{}x{}, {} threads, median of {} steps after {} warm-up",
            a.mult,
            a.batch,
            a.channels,
            a.size,
            a.size,
            rayon::current_num_threads(),
            a.steps,
            a.warmup
        );
        println!(
            "{:<14} {:>12} {:>10} {:>12}",
            "config", "step (ms)", "img/s", "peak RSS MB"
        );
    }
    for c in &a.configs {
        let v = if a.in_process || a.configs.len() == 1 {
            run_one(&a, c)?
        } else {
            let exe = std::env::current_exe()?;
            let mut cmd = Command::new(exe);
            if let Ok(t) = std::env::var("RAYON_NUM_THREADS") {
                cmd.env("RAYON_NUM_THREADS", t);
            }
            cmd.args(["bench", "train-step", "--json", "--configs", c]);
            cmd.args(["--mult", &a.mult.to_string(), "--batch", &a.batch.to_string()]);
            cmd.args([
                "--size",
                &a.size.to_string(),
                "--channels",
                &a.channels.to_string(),
            ]);
            cmd.args(["--steps", &a.steps.to_string(), "--warmup", &a.warmup.to_string()]);
            let out = cmd.output()?;
            if !out.status.success() {
                bail!(
                    "configuration {c} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            serde_json::from_slice(&out.stdout).with_context(|| format!("reading the result of {c}"))?
        };
        if a.json {
            println!("{v}");
        } else {
            println!(
                "{:<14} {:>12.1} {:>10.1} {:>12.0}",
                c,
                v["median_step_s"].as_f64().unwrap_or(f64::NAN) * 1e3,
                v["img_per_s"].as_f64().unwrap_or(f64::NAN),
                v["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6
            );
        }
    }
    Ok(())
}
