//! The numerical-error study: how far a (fake-)quantized im2row or Winograd F(m,3) layer is
//! from the exact convolution, and which quantization stage is to blame.

mod plot;
mod report;

pub use plot::write_plot;
pub use report::{render_text, to_json};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use rayon::prelude::*;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use winq_kernels::reference::{direct_conv, im2row_conv, relative_l2, winograd_conv, Stage};
use winq_kernels::Nchw;
use winq_quant::{fake_quant_dynamic, fake_quant_dynamic_groups, Groups};
use winq_transforms::{transform, FloatTransform, Mat, PointSet, TransformError};

pub use winq_ir::{Algo, Precision};

/// Algorithms serialize by their kernel name ("im2row", "F4"): the study uses static
/// transforms only.
fn kernel_name<S: serde::Serializer>(a: &Algo, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&a.kernel())
}

/// What to study.
#[derive(Debug, Clone, Serialize)]
pub struct StudyConfig {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub seeds: usize,
    /// Output tile sizes m of the Winograd candidates.
    pub tiles: Vec<usize>,
    /// Bit-widths besides FP32.
    pub bits: Vec<u32>,
    #[serde(serialize_with = "display")]
    pub points: PointSet,
    /// Also quantize Aᵀ, Bᵀ and G (the reference's static mode) in the main table.
    pub quantize_transforms: bool,
    /// Bit-width of the per-stage attribution table.
    pub attribution_bits: u32,
    /// One scale per output channel for the weights (instead of per tensor).
    pub per_channel: bool,
    /// One scale per tile position for the three Winograd-domain tensors.
    pub per_tap: bool,
}

fn display<S: serde::Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

impl Default for StudyConfig {
    fn default() -> Self {
        StudyConfig {
            batch: 8,
            in_channels: 64,
            out_channels: 64,
            height: 16,
            width: 16,
            seeds: 5,
            tiles: vec![2, 4, 6],
            bits: vec![16, 10, 8],
            points: PointSet::Default,
            quantize_transforms: false,
            attribution_bits: 8,
            per_channel: false,
            per_tap: false,
        }
    }
}

/// Mean and spread of one measurement over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub per_seed: Vec<f64>,
}

impl Stat {
    fn of(v: Vec<f64>) -> Stat {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n.max(1.0);
        Stat {
            mean,
            std: var.sqrt(),
            per_seed: v,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    #[serde(serialize_with = "kernel_name")]
    pub algo: Algo,
    pub precision: Precision,
    pub error: Stat,
}

/// One quantization source at a time: `stage` is a stage name or "transforms".
#[derive(Debug, Clone, Serialize)]
pub struct AttributionRow {
    #[serde(serialize_with = "kernel_name")]
    pub algo: Algo,
    pub bits: u32,
    pub stage: String,
    pub error: Stat,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudyResult {
    pub config: StudyConfig,
    pub rows: Vec<ErrorRow>,
    pub attribution: Vec<AttributionRow>,
}

impl StudyResult {
    pub fn error(&self, algo: Algo, precision: Precision) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.algo == algo && r.precision == precision)
            .map(|r| r.error.mean)
    }

    /// The attribution row with the largest mean error for an algorithm.
    pub fn largest_source(&self, algo: Algo) -> Option<&AttributionRow> {
        self.attribution
            .iter()
            .filter(|r| r.algo == algo)
            .max_by(|a, b| a.error.mean.total_cmp(&b.error.mean))
    }
}

/// Which quantization sources are on in one run.
#[derive(Debug, Clone)]
struct Sources {
    bits: u32,
    stages: Vec<Stage>,
    transforms: bool,
}

struct Problem {
    shape: Nchw,
    k: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    y_ref: Vec<f64>,
}

impl Problem {
    /// Inputs ReLU(N(0,1)), weights Xavier-uniform, reference in f64 on the same values.
    fn new(cfg: &StudyConfig, seed: u64) -> Problem {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape = Nchw::new(cfg.batch, cfg.in_channels, cfg.height, cfg.width);
        let (c, k) = (cfg.in_channels, cfg.out_channels);
        let x: Vec<f32> = (0..shape.len())
            .map(|_| StandardNormal.sample(&mut rng))
            .map(|v: f32| v.max(0.0))
            .collect();
        let bound = (6.0 / ((c + k) * 9) as f32).sqrt();
        let dist = Uniform::new_inclusive(-bound, bound);
        let w: Vec<f32> = (0..k * c * 9).map(|_| dist.sample(&mut rng)).collect();
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let wd: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let y_ref = direct_conv(&xd, shape, &wd, k, 3);
        Problem {
            shape,
            k,
            x,
            w,
            y_ref,
        }
    }

    fn run(
        &self,
        algo: Algo,
        tr: Option<&FloatTransform<f32>>,
        src: Option<&Sources>,
        cfg: &StudyConfig,
    ) -> f64 {
        let tt = tr.map_or(1, |t| (t.m + 2) * (t.m + 2));
        let mut hook = |stage: Stage, data: &mut [f32]| {
            let Some(s) = src.filter(|s| s.stages.contains(&stage)) else {
                return;
            };
            let groups = match stage {
                Stage::Weight if cfg.per_channel => Groups {
                    outer: 1,
                    groups: self.k,
                    inner: data.len() / self.k,
                },
                // Winograd-domain tensors end in [.., t, t]: one group per tap.
                Stage::WinogradWeight | Stage::WinogradInput | Stage::Hadamard if cfg.per_tap => Groups {
                    outer: data.len() / tt,
                    groups: tt,
                    inner: 1,
                },
                _ => Groups::per_tensor(data.len()),
            };
            fake_quant_dynamic_groups(data, groups, s.bits);
        };
        let y = match (algo, tr) {
            (Algo::Winograd { .. }, Some(tr)) => {
                let quantized;
                let tr = match src {
                    Some(s) if s.transforms => {
                        quantized = quantize_transform(tr, s.bits);
                        &quantized
                    }
                    _ => tr,
                };
                winograd_conv(&self.x, self.shape, &self.w, self.k, tr, &mut hook)
            }
            _ => im2row_conv(&self.x, self.shape, &self.w, self.k, 3, &mut hook),
        };
        relative_l2(&y, &self.y_ref)
    }
}

/// Fake-quantizes each transform matrix with its own per-tensor range (static mode).
pub fn quantize_transform(tr: &FloatTransform<f32>, bits: u32) -> FloatTransform<f32> {
    let q = |m: &Mat<f32>| {
        let mut m = m.clone();
        fake_quant_dynamic(&mut m.data, bits);
        m
    };
    FloatTransform {
        m: tr.m,
        r: tr.r,
        at: q(&tr.at),
        bt: q(&tr.bt),
        g: q(&tr.g),
    }
}

/// Why a study cannot run, or its plot cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error(
        "{0} bits is not supported: bit-widths must be {min}..={max}",
        min = winq_quant::MIN_BITS,
        max = winq_quant::MAX_BITS
    )]
    Bits(u32),
    #[error("{0} must be at least 1")]
    Empty(&'static str),
    /// Every error of the study is zero: a log-scale plot has nothing to show.
    #[error("nothing to plot: every error is zero")]
    NothingToPlot,
    /// The plot file cannot be drawn or written (the plotting backend's message).
    #[error("cannot write {}: {why}", path.display())]
    Plot { path: PathBuf, why: String },
}

impl StudyConfig {
    pub fn validate(&self) -> Result<(), StudyError> {
        for (v, what) in [
            (self.batch, "batch"),
            (self.in_channels, "input channels"),
            (self.out_channels, "output channels"),
            (self.height, "height"),
            (self.width, "width"),
            (self.seeds, "seeds"),
        ] {
            if v == 0 {
                return Err(StudyError::Empty(what));
            }
        }
        if let Some(&m) = self.tiles.iter().find(|&&m| m == 0) {
            return Err(TransformError::OutputSize(m).into());
        }
        match self
            .bits
            .iter()
            .chain([&self.attribution_bits])
            .find(|b| !(winq_quant::MIN_BITS..=winq_quant::MAX_BITS).contains(b))
        {
            Some(&b) => Err(StudyError::Bits(b)),
            None => Ok(()),
        }
    }
}

/// Runs the whole study. Seeds run in parallel; results do not depend on the thread count.
pub fn run(cfg: &StudyConfig) -> Result<StudyResult, StudyError> {
    cfg.validate()?;
    let mut algos = vec![(Algo::Im2row, None)];
    for &m in &cfg.tiles {
        algos.push((
            Algo::Winograd { m, flex: false },
            Some(transform(m, 3, &cfg.points)?.to_f32()),
        ));
    }
    let precisions: Vec<Precision> = std::iter::once(Precision::Fp32)
        .chain(cfg.bits.iter().map(|&b| Precision::Int(b)))
        .collect();

    // Every (algorithm, sources) job, each evaluated on every seed.
    struct Job {
        algo: Algo,
        tr: Option<usize>,
        label: Label,
        src: Option<Sources>,
    }
    enum Label {
        Main(Precision),
        Attribution(String),
    }
    let mut jobs = Vec::new();
    for (ai, (algo, tr)) in algos.iter().enumerate() {
        let idx = tr.as_ref().map(|_| ai);
        let stages: &[Stage] = if idx.is_some() {
            &Stage::WINOGRAD
        } else {
            &Stage::IM2ROW
        };
        for &p in &precisions {
            let src = match p {
                Precision::Fp32 => None,
                Precision::Int(bits) => Some(Sources {
                    bits,
                    stages: stages.to_vec(),
                    transforms: cfg.quantize_transforms,
                }),
            };
            jobs.push(Job {
                algo: *algo,
                tr: idx,
                label: Label::Main(p),
                src,
            });
        }
        let bits = cfg.attribution_bits;
        for &s in stages {
            let src = Sources {
                bits,
                stages: vec![s],
                transforms: false,
            };
            jobs.push(Job {
                algo: *algo,
                tr: idx,
                label: Label::Attribution(s.name().into()),
                src: Some(src),
            });
        }
        if idx.is_some() {
            let src = Sources {
                bits,
                stages: vec![],
                transforms: true,
            };
            jobs.push(Job {
                algo: *algo,
                tr: idx,
                label: Label::Attribution("transforms".into()),
                src: Some(src),
            });
        }
    }

    let per_seed: Vec<Vec<f64>> = (0..cfg.seeds as u64)
        .into_par_iter()
        .map(|seed| {
            let p = Problem::new(cfg, seed);
            jobs.par_iter()
                .map(|j| {
                    p.run(
                        j.algo,
                        j.tr.and_then(|i| algos[i].1.as_ref()),
                        j.src.as_ref(),
                        cfg,
                    )
                })
                .collect()
        })
        .collect();

    let mut rows = Vec::new();
    let mut attribution = Vec::new();
    for (ji, job) in jobs.iter().enumerate() {
        let error = Stat::of(per_seed.iter().map(|s| s[ji]).collect());
        match &job.label {
            Label::Main(p) => rows.push(ErrorRow {
                algo: job.algo,
                precision: *p,
                error,
            }),
            Label::Attribution(stage) => attribution.push(AttributionRow {
                algo: job.algo,
                bits: cfg.attribution_bits,
                stage: stage.clone(),
                error,
            }),
        }
    }
    Ok(StudyResult {
        config: cfg.clone(),
        rows,
        attribution,
    })
}
