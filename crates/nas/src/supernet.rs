//! A supernet: the macro-architecture of ResNet18Like (or lenet) with every configurable 3x3
//! convolution replaced by a [`MixedConv`] over its candidates.

use crate::arch::{ArchLogits, SearchLayer};
use crate::candidate::{candidates, CandidateSpace};
use crate::error::{Result, ResultExt};
use crate::mixed::MixedConv;
use winq_nn::conv::xavier_uniform;
use winq_nn::models::{
    lenet_with, resnet18like_with, Algo, ConvChoice, ConvPlacement, ConvSite, ResNetConfig,
};
use winq_nn::quant::Granularity;
use winq_nn::{Layer, Precision, Sequential};
use winq_train::config::ModelKind as Model;
use winq_transforms::PointSet;

#[derive(Debug, Clone)]
pub struct SupernetConfig {
    pub model: Model,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub mult: f32,
    pub space: CandidateSpace,
    /// Precision of the (not searched) 1x1 shortcut convolutions.
    pub shortcut: Precision,
    pub points: PointSet,
    /// Scale granularity of every quantized path (and of the rest of the network).
    pub granularity: Granularity,
    pub seed: u64,
}

pub struct Supernet {
    pub net: Sequential,
    pub arch: ArchLogits,
    pub placements: Vec<ConvPlacement>,
}

/// Builds the supernet; `latency(site, candidate)` gives each candidate's cost in ms (the
/// latency table, or anything else in tests). Logits start at 0 (uniform).
pub fn build_supernet(
    cfg: &SupernetConfig,
    latency: &dyn Fn(&ConvSite, &ConvChoice) -> Result<f64>,
) -> Result<Supernet> {
    let convs = cfg.model.conv_layers();
    // Reported as each layer's "requested" choice only; the factory decides what is built.
    let placeholder = ConvChoice {
        algo: Algo::Im2row,
        precision: Precision::Int(8),
    };
    let net_cfg = ResNetConfig {
        in_channels: cfg.in_channels,
        height: cfg.height,
        width: cfg.width,
        classes: cfg.classes,
        mult: cfg.mult,
        convs: vec![placeholder; convs],
        shortcut: cfg.shortcut,
        points: cfg.points.clone(),
        granularity: cfg.granularity,
        seed: cfg.seed,
    };
    let mut found = Vec::new();
    let mut factory = |s: &ConvSite, rng: &mut rand_chacha::ChaCha8Rng| {
        let cands = candidates(&cfg.space, s);
        let weight = xavier_uniform(s.out_channels, s.in_channels, 3, rng);
        let layer = MixedConv::new(
            s.in_channels,
            s.out_channels,
            cands.clone(),
            &cfg.points,
            cfg.granularity,
            weight,
        )?;
        found.push((*s, cands, layer.gate()));
        Ok((Box::new(layer) as Box<dyn Layer>, placeholder))
    };
    let (net, placements) = match cfg.model {
        Model::Resnet18like => resnet18like_with(&net_cfg, &mut factory)?,
        Model::Lenet => lenet_with(&net_cfg, &mut factory)?,
    };
    let layers = found
        .into_iter()
        .map(|(site, cands, gate)| {
            let latency_ms = cands
                .iter()
                .map(|c| latency(&site, c))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("searchable layer {}", site.index))?;
            Ok(SearchLayer {
                site,
                alpha: vec![0.0; cands.len()],
                candidates: cands,
                latency_ms,
                gate,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Supernet {
        net,
        arch: ArchLogits {
            layers,
            constant_ms: None,
        },
        placements,
    })
}
