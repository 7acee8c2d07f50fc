//! `winq train`, `eval`, `adapt`, `plot`, `import`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use winq_data::{Augment, DatasetKind};
use winq_nn::models::{Algo, ConvChoice};
use winq_nn::quant::Granularity;
use winq_nn::Precision;
use winq_train::checkpoint::Checkpoint;
use winq_train::config::{LayerFile, ModelConfig, ModelKind, OptimKind, ScheduleKind, TrainConfig};
use winq_train::runner::{self, Start};

#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// Network [default: resnet18like; adapt: the source run's].
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Width multiplier (ResNet18Like stages have 64·mult … 512·mult channels) [default: 0.25;
    /// adapt: the source run's].
    #[arg(long)]
    mult: Option<f32>,
    /// Algorithm of every 3x3 layer: im2row, F2, F4, F6 (F<m>).
    #[arg(long, default_value = "F4")]
    algo: String,
    /// Winograd transforms: flex (learned, quantized every step) or static (fixed, quantized once).
    #[arg(long, default_value = "flex")]
    mode: String,
    /// Bit-width of every quantized tensor; 32 trains in FP32.
    #[arg(long, default_value_t = 8)]
    bits: u32,
    /// Per-layer configuration file (JSON: {"layers": [{"algo": "F4", "flex": true, "bits": 8}, …]}),
    /// e.g. a wiNAS result; overrides --algo/--mode/--bits.
    #[arg(long)]
    layers: Option<PathBuf>,
    /// Winograd interpolation points: default, paper, lavin or a list like 0,1,-1,2,-2,1/2,-1/2,inf.
    #[arg(long, default_value = "default", allow_hyphen_values = true)]
    points: String,
    /// One weight scale per output channel (research option).
    #[arg(long)]
    per_channel: bool,
    /// One scale per tile position (per tap) for the Winograd-domain input, weights and
    /// Hadamard sums of quantized Winograd layers: the default (docs/TRAINING.md has the
    /// measurements); the flag only says so explicitly.
    #[arg(long, conflicts_with = "per_tensor")]
    per_tap: bool,
    /// One scale per tensor in the Winograd domain instead (the paper's recipe).
    #[arg(long)]
    per_tensor: bool,
}

#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// fashion-mnist, mnist, cifar10 or cifar100.
    #[arg(long, default_value = "fashion-mnist")]
    pub(crate) dataset: String,
    /// Directory of the dataset files (default: where the dataset normally lives).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Zero-pad the images to NxN before normalisation (e.g. 32: Fashion-MNIST in CIFAR's
    /// shapes, as the authors train it, so that every stage runs the tile it is named after).
    #[arg(long, value_name = "N")]
    pub(crate) pad_to: Option<usize>,
}

/// The data, its split and augmentation, and the weight-training recipe: what `train` and
/// `search` share.
#[derive(clap::Args, Clone)]
pub struct RecipeArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Fraction of the training set held out for validation (the search's logit steps use it).
    #[arg(long, default_value_t = 0.1)]
    pub(crate) val_fraction: f32,
    /// Random-crop padding in pixels (0 disables).
    #[arg(long, default_value_t = 2)]
    pub(crate) crop_pad: usize,
    /// Disable random horizontal flips.
    #[arg(long)]
    pub(crate) no_flip: bool,
    /// Epochs (a search's warm-up epochs included) [default: 3; with --resume: the saved
    /// run's, and a value given changes the saved run's length explicitly].
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// Weight learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) lr: f32,
    /// L2 weight decay (added to the gradient, as the reference).
    #[arg(long, default_value_t = 4e-5)]
    pub(crate) weight_decay: f32,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Stop after this many weight steps (quick checks).
    #[arg(long)]
    pub(crate) max_steps: Option<usize>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub(crate) quiet: bool,
}

impl RecipeArgs {
    /// The epochs asked for, or the default 3.
    pub(crate) fn epochs(&self) -> usize {
        self.epochs.unwrap_or(3)
    }

    /// The run configuration's data and recipe fields around `model`, with the optimizer and
    /// schedule given.
    pub(crate) fn config(
        &self,
        model: ModelConfig,
        optimizer: OptimKind,
        (momentum, nesterov): (f32, bool),
        schedule: ScheduleKind,
        warmup_epochs: f32,
    ) -> Result<TrainConfig> {
        let epochs = self.epochs();
        if self.batch == 0 || epochs == 0 {
            bail!("--batch and --epochs must be at least 1");
        }
        let (dataset, data_dir) = dataset(&self.data)?;
        Ok(TrainConfig {
            model,
            dataset,
            data_dir,
            val_fraction: self.val_fraction,
            augment: Augment {
                crop_pad: self.crop_pad,
                hflip: !self.no_flip,
            },
            epochs,
            batch: self.batch,
            lr: self.lr,
            weight_decay: self.weight_decay,
            optimizer,
            momentum,
            nesterov,
            schedule,
            warmup_epochs,
            seed: self.seed,
            threads: rayon::current_num_threads(),
            max_steps: self.max_steps,
            pad_to: self.data.pad_to,
            normalization: None,
        })
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    recipe: RecipeArgs,
    #[arg(long, value_enum, default_value_t = OptimKind::Adam)]
    optimizer: OptimKind,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    #[arg(long)]
    nesterov: bool,
    #[arg(long, value_enum, default_value_t = ScheduleKind::Multistep)]
    schedule: ScheduleKind,
    /// Linear warm-up length in epochs.
    #[arg(long, default_value_t = 0.0)]
    warmup: f32,
    /// Output directory (default: runs/<dataset>-<model>-<algo>).
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
}

#[derive(clap::Args)]
pub struct AdaptArgs {
    /// Checkpoint of a trained (im2row) model, or its run directory.
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A checkpoint file or a run directory (uses best.safetensors).
    path: PathBuf,
    /// In a run directory: best or last.
    #[arg(long, default_value = "best")]
    which: String,
    /// Dataset directory, if it moved since training.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run the test set through the integer engine (and report agreement with training).
    #[arg(long)]
    engine: bool,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The authors' state_dict saved as safetensors (see docs/TRAINING.md).
    src: PathBuf,
    /// Output winq checkpoint.
    #[arg(long, short = 'o')]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// The model was trained with learned transforms (flex); default: inferred from the
    /// transforms' values (static ones are the paper's).
    #[arg(long, conflicts_with = "static_transforms")]
    flex: bool,
    /// The model was trained with static transforms (refused if the stored ones were learned).
    #[arg(long = "static")]
    static_transforms: bool,
    /// Bit-width it was trained with.
    #[arg(long, default_value_t = 8)]
    bits: u32,
}

pub(crate) fn dataset(d: &DataArgs) -> Result<(DatasetKind, PathBuf)> {
    let kind: DatasetKind = d.dataset.parse().map_err(|e| anyhow::anyhow!("--dataset: {e}"))?;
    Ok((kind, d.data.clone().unwrap_or_else(|| kind.default_dir())))
}

fn model_config(m: &ModelArgs, seed: u64) -> Result<ModelConfig> {
    let arch = m.model.unwrap_or(ModelKind::Resnet18like);
    let n = arch.conv_layers();
    let (layers, shortcut_bits) = match &m.layers {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            let f: LayerFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid layer file", p.display()))?;
            if f.layers.len() != n {
                bail!(
                    "{} lists {} layers; {} has {n}",
                    p.display(),
                    f.layers.len(),
                    arch
                );
            }
            let sb = f.shortcut_bits.unwrap_or(f.layers[0].precision.bits());
            (f.layers, sb)
        }
        None => {
            let flex = match m.mode.as_str() {
                "flex" => true,
                "static" => false,
                o => bail!("unknown --mode '{o}': use flex or static"),
            };
            let choice = ConvChoice {
                algo: Algo::parse(&m.algo, flex)?,
                precision: Precision::from_bits(m.bits)?,
            };
            (vec![choice; n], m.bits)
        }
    };
    let quantized_winograd = layers
        .iter()
        .any(|l| matches!(l.algo, Algo::Winograd { .. }) && l.precision.bits() < 32);
    Ok(ModelConfig {
        arch,
        mult: m.mult.unwrap_or(0.25),
        layers,
        shortcut_bits,
        points: m.points.clone(),
        granularity: granularity(quantized_winograd, m.per_channel, m.per_tensor),
        seed,
        input: None,
        layers_used: None,
    })
}

/// The scale granularity of a network: one scale per tap in the Winograd domain by default
/// where it has quantized Winograd layers (other networks record none), unless `per_tensor`.
pub(crate) fn granularity(quantized_winograd: bool, per_channel: bool, per_tensor: bool) -> Granularity {
    Granularity {
        per_channel_weights: per_channel,
        per_tap: quantized_winograd && !per_tensor,
    }
}

fn train_config(a: &TrainArgs) -> Result<TrainConfig> {
    a.recipe.config(
        model_config(&a.model, a.recipe.seed)?,
        a.optimizer,
        (a.momentum, a.nesterov),
        a.schedule,
        a.warmup,
    )
}

fn default_out(a: &TrainArgs) -> PathBuf {
    let mode = &a.model.mode;
    let algo = if a.model.algo.eq_ignore_ascii_case("im2row") {
        "im2row".to_string()
    } else {
        format!("{}-{mode}", a.model.algo)
    };
    let bits = if a.model.bits == 32 {
        "fp32".to_string()
    } else {
        format!("int{}", a.model.bits)
    };
    PathBuf::from("runs").join(format!(
        "{}-{}-{algo}-{bits}",
        a.recipe.data.dataset,
        a.model.model.unwrap_or(ModelKind::Resnet18like)
    ))
}

fn report(out: &Path, o: &runner::Outcome, val_split: bool) {
    // Without a validation split (--val-fraction 0) every epoch counts as the best so far.
    let val = if !val_split {
        "no validation split, best = last".to_string()
    } else {
        format!("val best {:.2}%", 100.0 * o.best_val_acc)
    };
    println!(
        "test accuracy: best (epoch {}) {:.2}%, last {:.2}%  [{val}; {:.0} s; run in {}]",
        o.best_epoch,
        100.0 * o.test_acc_best,
        100.0 * o.test_acc_last,
        o.seconds,
        out.display()
    );
}

/// The default output directory, or a numbered sibling when it already holds a run (so that
/// running the same command twice does not fail; an explicit --out is never renamed).
fn fresh_default(base: PathBuf) -> PathBuf {
    let taken = |p: &Path| p.join("last.safetensors").exists();
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| {
            let mut p = base.clone().into_os_string();
            p.push(format!("-{i}"));
            PathBuf::from(p)
        })
        .find(|p| !taken(p))
        .unwrap_or(base)
}

/// What `train` checks before it runs, without running: the configuration builds and passes
/// its checks, and the dataset directory exists (a sweep checks every point this way first).
pub(crate) fn check(a: &TrainArgs) -> Result<()> {
    let cfg = train_config(a)?;
    cfg.check().map_err(anyhow::Error::msg)?;
    check_data_dir(&cfg)
}

/// `check` for `adapt`: the source checkpoint is readable too.
pub(crate) fn check_adapt(a: &AdaptArgs) -> Result<()> {
    let from = if a.from.is_dir() {
        a.from.join("best.safetensors")
    } else {
        a.from.clone()
    };
    Checkpoint::read(&from)?;
    check(&a.train)
}

pub(crate) fn check_data_dir(cfg: &TrainConfig) -> Result<()> {
    if !cfg.data_dir.is_dir() {
        bail!(
            "the {} data directory {} does not exist (give --data)",
            cfg.dataset,
            cfg.data_dir.display()
        );
    }
    Ok(())
}

pub fn train(a: TrainArgs) -> Result<()> {
    let cfg = train_config(&a)?;
    let out = match &a.out {
        Some(o) => o.clone(),
        None if a.resume => default_out(&a),
        None => fresh_default(default_out(&a)),
    };
    let start = if a.resume {
        Start::Resume {
            epochs: a.recipe.epochs,
        }
    } else {
        Start::Fresh
    };
    let val_split = cfg.val_fraction > 0.0;
    let o = runner::train(cfg, &out, start, a.recipe.quiet)?;
    report(&out, &o, val_split);
    Ok(())
}

pub fn adapt(a: AdaptArgs) -> Result<()> {
    let from = if a.from.is_dir() {
        a.from.join("best.safetensors")
    } else {
        a.from.clone()
    };
    // The network's kind, width and input come from the source run unless given.
    let source = Checkpoint::read(&from)?.config;
    let mut args = a.train;
    args.model.model = args.model.model.or(Some(source.model.arch));
    args.model.mult = args.model.mult.or(Some(source.model.mult));
    args.recipe.data.pad_to = args.recipe.data.pad_to.or(source.pad_to);
    let a = AdaptArgs {
        from: a.from,
        train: args,
    };
    let cfg = train_config(&a.train)?;
    let out = a.train.out.clone().unwrap_or_else(|| {
        let mut p = default_out(&a.train).into_os_string();
        p.push("-adapted");
        PathBuf::from(p)
    });
    let start = if a.train.resume {
        Start::Resume {
            epochs: a.train.recipe.epochs,
        }
    } else {
        Start::InitFrom(from)
    };
    let val_split = cfg.val_fraction > 0.0;
    let o = runner::train(cfg, &out, start, a.train.recipe.quiet)?;
    report(&out, &o, val_split);
    Ok(())
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let path = if a.path.is_dir() {
        match a.which.as_str() {
            "best" | "last" => a.path.join(format!("{}.safetensors", a.which)),
            w => bail!("--which must be best or last, not '{w}'"),
        }
    } else {
        a.path.clone()
    };
    if a.engine {
        return crate::cmd_engine::eval_engine(&path, a.data);
    }
    let ck = Checkpoint::read(&path)?;
    let mut cfg = ck.config.clone();
    if let Some(d) = a.data {
        cfg.data_dir = d;
    }
    let test = std::sync::Arc::new(runner::load_split(&cfg, winq_data::Split::Test)?);
    runner::check_input(&cfg, &test)?;
    let mut built = runner::build_model(&cfg, test.c, test.h, test.w, test.classes)?;
    ck.load_model(&mut built.net, true)?;
    eprintln!(
        "evaluating {} on {} {} test images ...",
        path.display(),
        test.n,
        cfg.dataset
    );
    let (loss, acc) = runner::evaluate(&mut built.net, &cfg, &test)?;
    println!(
        "{}: test accuracy {:.2}% (loss {:.4}) on {} {} images",
        path.display(),
        100.0 * acc,
        loss,
        test.n,
        cfg.dataset
    );
    Ok(())
}

pub fn plot(dir: PathBuf) -> Result<()> {
    for p in winq_train::plot::plot_run(&dir)? {
        println!("wrote {}", p.display());
    }
    Ok(())
}

pub fn import(a: ImportArgs) -> Result<()> {
    let (kind, dir) = dataset(&a.data)?;
    let base = TrainConfig {
        model: model_config(
            &ModelArgs {
                model: Some(ModelKind::Resnet18like),
                mult: Some(0.5),
                algo: "im2row".into(),
                mode: "static".into(),
                bits: a.bits,
                layers: None,
                points: "paper".into(),
                per_channel: false,
                per_tap: false,
                per_tensor: true,
            },
            0,
        )?,
        dataset: kind,
        data_dir: dir,
        val_fraction: 0.1,
        augment: Augment::default(),
        epochs: 1,
        batch: 64,
        lr: 1e-3,
        weight_decay: 4e-5,
        optimizer: OptimKind::Adam,
        momentum: 0.9,
        nesterov: false,
        schedule: ScheduleKind::Multistep,
        warmup_epochs: 0.0,
        seed: 0,
        threads: rayon::current_num_threads(),
        max_steps: None,
        pad_to: a.data.pad_to,
        normalization: None,
    };
    let mode = match (a.flex, a.static_transforms) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let imported = winq_train::import::import(&a.src, &a.out, &base, mode, a.bits)?;
    let (cfg, unused) = (&imported.config, &imported.unused);
    let winograd = cfg
        .model
        .layers
        .iter()
        .find(|l| l.algo != winq_nn::models::Algo::Im2row);
    println!(
        "wrote {}: resnet18like x{} on {} inputs{}{}",
        a.out.display(),
        cfg.model.mult,
        cfg.input_shape(),
        cfg.pad_to.map_or(String::new(), |p| format!(
            " ({} images zero-padded to {p}x{p})",
            cfg.dataset
        )),
        winograd.map_or(String::new(), |l| format!(", Winograd layers {}", l.algo))
    );
    if !unused.is_empty() {
        println!(
            "{} tensors of the source were not used, e.g. {}",
            unused.len(),
            unused[0]
        );
    }
    Ok(())
}
