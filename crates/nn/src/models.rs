//! Models as compositions of layers. `resnet18like` follows the authors' ResNet18Like:
//! FP32 stem (3x3, 32 channels) + BN + ReLU; four stages of two BasicBlocks with
//! 64·mult, 128·mult, 256·mult, 512·mult channels; the first block of stages 2-4 max-pools
//! 2x2 before both branches (no strided convs); 1x1 quantized shortcut + BN where the shape
//! changes; global average pool; FP32 Linear.

use crate::act::Relu;
use crate::container::{Residual, Sequential};
use crate::conv::{torch_default_uniform, xavier_uniform, Conv2d};
use crate::layer::Layer;
use crate::linear::Linear;
use crate::norm::BatchNorm2d;
use crate::pool::{GlobalAvgPool, MaxPool2};
use crate::quant::Granularity;
use crate::wa_conv::WinogradConv2d;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use winq_ir::Precision;
use winq_transforms::{PointSet, TransformError};

pub use winq_ir::{Algo, ConvChoice};

/// The output tile a Winograd layer really uses on an h×w map: the requested m, or the largest
/// smaller even tile that fits the map (the reference's F6 -> F4 on 4x4 maps); at least 2.
pub fn fitted_tile(m: usize, h: usize, w: usize) -> usize {
    let side = h.min(w);
    let mut mm = m;
    while mm > 2 && mm > side {
        mm -= 2;
    }
    mm
}

/// Everything that defines a ResNet18Like.
#[derive(Debug, Clone)]
pub struct ResNetConfig {
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub mult: f32,
    /// One choice per block 3x3 convolution, in order (16 for ResNet18Like).
    pub convs: Vec<ConvChoice>,
    /// Precision of the 1x1 shortcut convolutions (the reference quantizes them like the rest).
    pub shortcut: Precision,
    pub points: PointSet,
    /// Per-channel / per-tap quantization scales (research options).
    pub granularity: Granularity,
    pub seed: u64,
}

/// A model that cannot be built: an unusable configuration, or a transform that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Transform(#[from] TransformError),
}

impl ResNetConfig {
    pub const CONVS: usize = 16;

    /// The numbers a model of this configuration needs: a finite positive width multiplier
    /// that leaves the narrowest layer (`narrowest`·mult channels) at least one channel, input
    /// channels and classes, and maps of at least `min_size` (the model's poolings).
    fn check(&self, model: &str, narrowest: f32, min_size: usize) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::Config(format!("{model}: {why}")));
        if !(self.mult.is_finite() && self.mult > 0.0) {
            return bad(format!(
                "the width multiplier must be positive and finite, not {}",
                self.mult
            ));
        }
        if ((narrowest * self.mult) as usize) < 1 {
            return bad(format!(
                "width multiplier {} leaves its narrowest layer ({narrowest}·mult) without channels: use at least {}",
                self.mult,
                1.0 / narrowest
            ));
        }
        if self.mult > 64.0 {
            return bad(format!(
                "width multiplier {} is beyond any usable size (at most 64)",
                self.mult
            ));
        }
        if self.in_channels == 0 || self.classes == 0 {
            return bad(format!(
                "{} input channels and {} classes",
                self.in_channels, self.classes
            ));
        }
        if self.height < min_size || self.width < min_size {
            return bad(format!(
                "inputs of {}x{} are too small for its poolings (at least {min_size}x{min_size})",
                self.height, self.width
            ));
        }
        Ok(())
    }

    /// The same choice for every block convolution (the reference's only mode).
    pub fn uniform(in_channels: usize, size: usize, classes: usize, mult: f32, choice: ConvChoice) -> Self {
        ResNetConfig {
            in_channels,
            height: size,
            width: size,
            classes,
            mult,
            convs: vec![choice; Self::CONVS],
            shortcut: choice.precision,
            points: PointSet::Default,
            granularity: Granularity::default(),
            seed: 0,
        }
    }
}

/// Where each block convolution ended up (after tile fitting), for summaries.
#[derive(Debug, Clone)]
pub struct ConvPlacement {
    pub index: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub requested: ConvChoice,
    pub used: ConvChoice,
}

impl ConvPlacement {
    fn new(s: &ConvSite, requested: ConvChoice, used: ConvChoice) -> ConvPlacement {
        ConvPlacement {
            index: s.index,
            in_channels: s.in_channels,
            out_channels: s.out_channels,
            height: s.height,
            width: s.width,
            requested,
            used,
        }
    }
}

fn conv3x3(
    c: usize,
    k: usize,
    h: usize,
    w: usize,
    choice: ConvChoice,
    cfg: &ResNetConfig,
    rng: &mut ChaCha8Rng,
) -> Result<(Box<dyn Layer>, ConvChoice), TransformError> {
    let points = &cfg.points;
    let g = cfg.granularity;
    match choice.algo {
        Algo::Im2row => {
            let wt = torch_default_uniform(k, c, 3, rng);
            let conv =
                Conv2d::new(c, k, 3, choice.precision, wt).with_per_channel_weights(g.per_channel_weights);
            Ok((Box::new(conv), choice))
        }
        Algo::Winograd { m, flex } => {
            let mm = fitted_tile(m, h, w);
            let wt = xavier_uniform(k, c, 3, rng);
            let layer = WinogradConv2d::new(c, k, mm, points.clone(), flex, choice.precision, wt)?
                .with_granularity(g);
            Ok((
                Box::new(layer),
                ConvChoice {
                    algo: Algo::Winograd { m: mm, flex },
                    ..choice
                },
            ))
        }
    }
}

/// Where a configurable 3x3 convolution goes: its index and shape (input map size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSite {
    pub index: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Builds the layer of one configurable 3x3 convolution and says what it computes. It draws
/// its initial weights from the model's rng so that a model is a function of its seed.
pub type ConvFactory<'a> =
    &'a mut dyn FnMut(&ConvSite, &mut ChaCha8Rng) -> Result<(Box<dyn Layer>, ConvChoice), TransformError>;

/// The default factory: `cfg.convs[index]`, tile fitted to the map.
fn fixed_convs(
    cfg: &ResNetConfig,
) -> impl FnMut(&ConvSite, &mut ChaCha8Rng) -> Result<(Box<dyn Layer>, ConvChoice), TransformError> + '_ {
    move |s, rng| {
        conv3x3(
            s.in_channels,
            s.out_channels,
            s.height,
            s.width,
            cfg.convs[s.index],
            cfg,
            rng,
        )
    }
}

/// Builds ResNet18Like; returns the model and where its block convolutions went.
pub fn resnet18like(cfg: &ResNetConfig) -> Result<(Sequential, Vec<ConvPlacement>), ModelError> {
    resnet18like_with(cfg, &mut fixed_convs(cfg))
}

/// ResNet18Like whose block 3x3 convolutions come from `factory` (e.g. the searchable layers
/// of a wiNAS supernet); `cfg.convs` is only reported as the requested choice.
pub fn resnet18like_with(
    cfg: &ResNetConfig,
    factory: ConvFactory,
) -> Result<(Sequential, Vec<ConvPlacement>), ModelError> {
    assert_eq!(
        cfg.convs.len(),
        ResNetConfig::CONVS,
        "ResNet18Like has 16 block convolutions"
    );
    cfg.check("ResNet18Like", 64.0, 8)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let stem = 32;
    let mut net = Sequential::new()
        .push(
            "conv1",
            Conv2d::new(
                cfg.in_channels,
                stem,
                3,
                Precision::Fp32,
                torch_default_uniform(stem, cfg.in_channels, 3, &mut rng),
            ),
        )
        .push("bn1", BatchNorm2d::new(stem))
        .push("relu", Relu::new());
    let (mut h, mut w, mut c) = (cfg.height, cfg.width, stem);
    let mut placements = Vec::new();
    for (stage, base) in [64.0f32, 128.0, 256.0, 512.0].iter().enumerate() {
        let planes = (base * cfg.mult) as usize;
        let mut layer = Sequential::new();
        for block in 0..2 {
            let down = stage > 0 && block == 0;
            let mut seq = Sequential::new();
            if down {
                seq = seq.push("pool", MaxPool2::new());
                h /= 2;
                w /= 2;
            }
            let mut body = Sequential::new();
            for (i, (ci, name)) in [(c, "conv1"), (planes, "conv2")].into_iter().enumerate() {
                let site = ConvSite {
                    index: placements.len(),
                    in_channels: ci,
                    out_channels: planes,
                    height: h,
                    width: w,
                };
                let (l, used) = factory(&site, &mut rng)?;
                placements.push(ConvPlacement::new(&site, cfg.convs[site.index], used));
                body.push_boxed(name, l);
                body = body.push(if i == 0 { "bn1" } else { "bn2" }, BatchNorm2d::new(planes));
                if i == 0 {
                    body = body.push("relu", Relu::new());
                }
            }
            let shortcut = (down || c != planes).then(|| {
                Sequential::new()
                    .push(
                        "0",
                        Conv2d::new(
                            c,
                            planes,
                            1,
                            cfg.shortcut,
                            torch_default_uniform(planes, c, 1, &mut rng),
                        ),
                    )
                    .push("1", BatchNorm2d::new(planes))
            });
            // The residual is transparent in parameter paths ("layer1.0.conv1.weight", as the
            // reference's state_dict names them).
            seq = seq
                .push("", Residual { body, shortcut })
                .push("relu", Relu::new());
            layer.push_boxed(&block.to_string(), Box::new(seq));
            c = planes;
        }
        net.push_boxed(&format!("layer{}", stage + 1), Box::new(layer));
    }
    let net = net
        .push("pool", GlobalAvgPool::new())
        .push("linear", Linear::new(c, cfg.classes, &mut rng));
    Ok((net, placements))
}

/// A small CNN for quick runs: FP32 3x3 stem (16) + BN + ReLU + max-pool, two configurable
/// 3x3 layers (16→32 at half size, then a max-pool, 32→64 at quarter size), each with BN and
/// ReLU, global average pool, FP32 Linear. `cfg.convs` has 2 entries; `mult` scales widths.
pub fn lenet(cfg: &ResNetConfig) -> Result<(Sequential, Vec<ConvPlacement>), ModelError> {
    lenet_with(cfg, &mut fixed_convs(cfg))
}

/// The small CNN with its two configurable convolutions from `factory`.
pub fn lenet_with(
    cfg: &ResNetConfig,
    factory: ConvFactory,
) -> Result<(Sequential, Vec<ConvPlacement>), ModelError> {
    assert_eq!(cfg.convs.len(), 2, "lenet has 2 configurable convolutions");
    cfg.check("lenet", 16.0, 4)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let width = |base: f32| ((base * cfg.mult * 4.0) as usize).max(1);
    let (c0, c1, c2) = (width(4.0), width(8.0), width(16.0));
    let mut net = Sequential::new()
        .push(
            "conv1",
            Conv2d::new(
                cfg.in_channels,
                c0,
                3,
                Precision::Fp32,
                torch_default_uniform(c0, cfg.in_channels, 3, &mut rng),
            ),
        )
        .push("bn1", BatchNorm2d::new(c0))
        .push("relu1", Relu::new())
        .push("pool1", MaxPool2::new());
    let (mut h, mut w) = (cfg.height / 2, cfg.width / 2);
    let mut placements = Vec::new();
    for (i, (ci, co)) in [(c0, c1), (c1, c2)].into_iter().enumerate() {
        if i == 1 {
            net = net.push("pool2", MaxPool2::new());
            h /= 2;
            w /= 2;
        }
        let site = ConvSite {
            index: i,
            in_channels: ci,
            out_channels: co,
            height: h,
            width: w,
        };
        let (l, used) = factory(&site, &mut rng)?;
        placements.push(ConvPlacement::new(&site, cfg.convs[i], used));
        net.push_boxed(&format!("conv{}", i + 2), l);
        net = net
            .push(&format!("bn{}", i + 2), BatchNorm2d::new(co))
            .push(&format!("relu{}", i + 2), Relu::new());
    }
    let net = net
        .push("pool", GlobalAvgPool::new())
        .push("linear", Linear::new(c2, cfg.classes, &mut rng));
    Ok((net, placements))
}
