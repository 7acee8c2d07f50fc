//! Import of the authors' PyTorch ResNet18Like (a state_dict a user saved as safetensors, see
//! docs/TRAINING.md) into a winq checkpoint that `winq eval` and `winq export` read.
//!
//! Their names already match winq's paths ("layer1.0.conv1.weight", "layer2.0.shortcut.0.weight",
//! "bn1.running_mean", "linear.bias", "layer1.0.conv1.A_t"); the differences are the shape of
//! Winograd-aware weights ([K, C, 1, 3, 3]) and the quantizer names
//! ("X.Quantize_input.min_val" is winq's "X.q_input.min").

use crate::checkpoint::{self, RunState};
use crate::config::{ModelConfig, ModelKind, TrainConfig};
use crate::error::{Result, ResultExt, TrainError};
use crate::runner::build_model;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeSet;
use std::path::Path;
use winq_nn::models::{Algo, ConvChoice};
use winq_nn::Precision;
use winq_nn::{Buffer, Layer};

/// winq quantizer name -> the reference's module name.
const QUANTIZERS: [(&str, &str); 9] = [
    ("q_input", "Quantize_input"),
    ("q_weight", "Quantize_weights"),
    ("q_output", "Quantize_output"),
    ("q_input_winograd", "Quantize_input_Winograd"),
    ("q_weight_winograd", "Quantize_weights_Winograd"),
    ("q_hadamard", "Quantize_Hadamard"),
    ("q_at", "Quantize_A"),
    ("q_bt", "Quantize_B"),
    ("q_g", "Quantize_G"),
];

/// The reference's key for a winq parameter or buffer path.
pub fn reference_name(ours: &str) -> String {
    for (q, theirs) in QUANTIZERS {
        for (suffix, their_suffix) in [("min", "min_val"), ("max", "max_val")] {
            let tail = format!("{q}.{suffix}");
            if let Some(base) = ours.strip_suffix(&tail) {
                return format!("{base}{theirs}.{their_suffix}");
            }
        }
    }
    ours.to_string()
}

fn as_f32(st: &SafeTensors, key: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let v = st
        .tensor(key)
        .map_err(|_| TrainError::Invalid(format!("missing tensor {key}")))?;
    let data = match v.dtype() {
        Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => v
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        d => {
            return Err(TrainError::Invalid(format!(
                "tensor {key} has dtype {d:?}; convert the state_dict to float32"
            )))
        }
    };
    Ok((v.shape().to_vec(), data))
}

/// The input size of the authors' ResNet18Like: its head average-pools the last stage with a
/// fixed 4x4 window, so it runs on 32x32 inputs only (CIFAR, or padded Fashion-MNIST/MNIST).
pub const THEIR_INPUT: usize = 32;

/// Whether a Winograd layer's stored transforms are the static ones of its tile (the paper's
/// points, as stored raw or quantized once at `bits` like a static layer at init): else they
/// were learned (flex).
fn static_transforms(st: &SafeTensors, key: &str, m: usize, bits: u32) -> Result<bool> {
    let tr = winq_transforms::transform(m, 3, &winq_transforms::PointSet::Paper)?.to_f32();
    for (name, want) in [("A_t", &tr.at.data), ("B_t", &tr.bt.data), ("G", &tr.g.data)] {
        let (_, got) = as_f32(st, &format!("{key}.{name}"))?;
        let (lo, hi) = winq_quant::min_max(want.as_slice());
        let scale = winq_quant::scale_for(lo, hi, bits.min(16));
        let same = |v: &[f32]| v.len() == got.len() && v.iter().zip(&got).all(|(a, b)| (a - b).abs() <= 1e-5);
        let mut quantized = want.clone();
        winq_quant::fake_quant(&mut quantized, scale, bits.min(16));
        if !same(want) && !same(&quantized) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Infers the model configuration from the tensors: input channels from `conv1.weight`, width
/// multiplier and classes from `linear.weight`, each Winograd layer's tile from its `A_t` (as
/// stored: the authors' layers already fit their maps at 32x32), and the transform mode from
/// the transforms' values (static ones are the paper's) when `flex` is None; a mode given that
/// the tensors contradict (static asked, learned transforms stored) is refused. The input is
/// [`THEIR_INPUT`] square.
pub fn infer_model(st: &SafeTensors, flex: Option<bool>, bits: u32) -> Result<(ModelConfig, usize, usize)> {
    let (stem, _) = as_f32(st, "conv1.weight")?;
    let (lin, _) = as_f32(st, "linear.weight")?;
    if stem.len() != 4 || lin.len() != 2 {
        return Err(TrainError::invalid(
            "conv1.weight must be [32, C, 3, 3] and linear.weight [classes, features]",
        ));
    }
    let mult = lin[1] as f32 / 512.0;
    // Learned transforms anywhere make the network flex (an untrained flex layer still holds
    // the static values: then both modes are the same network).
    let mut learned = false;
    for stage in 1..=4 {
        for block in 0..2 {
            for conv in 1..=2 {
                let key = format!("layer{stage}.{block}.conv{conv}");
                if let Ok(a) = st.tensor(&format!("{key}.A_t")) {
                    learned |= !static_transforms(st, &key, a.shape()[0], bits)?;
                }
            }
        }
    }
    let flex = match flex {
        Some(false) if learned => return Err(TrainError::invalid(
            "the checkpoint's Winograd transforms were learned (they differ from the paper's static ones): \
                 it is a flex model; import it with --flex (or without a mode: it is inferred)",
        )),
        Some(f) => f,
        None => learned,
    };
    let mut layers = Vec::new();
    for stage in 1..=4 {
        for block in 0..2 {
            for conv in 1..=2 {
                let key = format!("layer{stage}.{block}.conv{conv}");
                let algo = match st.tensor(&format!("{key}.A_t")) {
                    Ok(a) => Algo::Winograd {
                        m: a.shape()[0],
                        flex,
                    },
                    Err(_) => Algo::Im2row,
                };
                let quantized = st.tensor(&format!("{key}.Quantize_input.min_val")).is_ok();
                let precision = if quantized {
                    Precision::from_bits(bits)?
                } else {
                    Precision::Fp32
                };
                layers.push(ConvChoice { algo, precision });
            }
        }
    }
    let shortcut_bits = if st.tensor("layer2.0.shortcut.0.Quantize_input.min_val").is_ok() {
        bits
    } else {
        32
    };
    let model = ModelConfig {
        arch: ModelKind::Resnet18like,
        mult,
        layers,
        shortcut_bits,
        points: "paper".into(),
        granularity: Default::default(),
        seed: 0,
        input: Some(crate::config::InputShape {
            channels: stem[1],
            height: THEIR_INPUT,
            width: THEIR_INPUT,
        }),
        layers_used: None,
    };
    Ok((model, stem[1], lin[0]))
}

/// What an import found and wrote.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The reference keys that were not used.
    pub unused: Vec<String>,
    /// The configuration written with the checkpoint (model inferred, input recorded).
    pub config: TrainConfig,
}

/// Converts the reference's safetensors state_dict at `src` into a winq checkpoint at `dst`.
/// `base` supplies the data settings (dataset, directory); the model, its transform mode
/// (unless `flex` says it) and its input are inferred. Images smaller than the model's
/// 32x32 input (Fashion-MNIST, MNIST) are zero-padded to it, as the authors do, unless
/// `base.pad_to` says otherwise.
pub fn import(src: &Path, dst: &Path, base: &TrainConfig, flex: Option<bool>, bits: u32) -> Result<Imported> {
    let bytes = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        TrainError::Invalid(format!(
            "{} is not a readable safetensors file: {e}",
            src.display()
        ))
    })?;
    let (model, in_c, classes) =
        infer_model(&st, flex, bits).with_context(|| format!("reading {}", src.display()))?;
    if classes != base.dataset.classes() {
        return Err(TrainError::Invalid(format!(
            "the checkpoint has {classes} classes but {} has {}",
            base.dataset,
            base.dataset.classes()
        )));
    }
    let mut cfg = base.clone();
    cfg.model = model;
    if cfg.dataset.channels() != in_c {
        return Err(TrainError::Invalid(format!(
            "the checkpoint takes {in_c}-channel images but {} has {}",
            cfg.dataset,
            cfg.dataset.channels()
        )));
    }
    if cfg.pad_to.is_none() && cfg.dataset.image_size() < THEIR_INPUT {
        cfg.pad_to = Some(THEIR_INPUT);
    }
    let size = THEIR_INPUT;
    let mut built = build_model(&cfg, in_c, size, size, classes)?;
    // Each layer keeps the tile the checkpoint stores: at 32x32 every one fits its map.
    if let Some(p) = built.placements.iter().find(|p| p.used != p.requested) {
        return Err(TrainError::Invalid(format!(
            "layer {}: the checkpoint's {} does not fit its {}x{} map at a {size}x{size} input",
            p.index, p.requested.algo, p.height, p.width
        )));
    }
    let mut used = BTreeSet::new();
    let mut errors = Vec::new();
    built.net.visit_params("", &mut |name, p| {
        let key = reference_name(name);
        match as_f32(&st, &key) {
            Ok((_, v)) if v.len() == p.value.len() => {
                // [K, C, 1, 3, 3] and [K, C, 3, 3] hold the same values in the same order.
                p.value.data.copy_from_slice(&v);
                used.insert(key);
            }
            Ok((shape, _)) => errors.push(format!(
                "{key}: shape {shape:?}, winq expects {:?}",
                p.value.shape
            )),
            Err(e) => errors.push(e.to_string()),
        }
    });
    built.net.visit_buffers("", &mut |name, b| {
        let key = reference_name(name);
        let Ok((_, v)) = as_f32(&st, &key) else {
            errors.push(format!("missing tensor {key}"));
            return;
        };
        match b {
            Buffer::F32(dst) if dst.len() == v.len() => dst.copy_from_slice(&v),
            Buffer::F64(dst) if dst.len() == v.len() => {
                dst.iter_mut().zip(&v).for_each(|(d, s)| *d = *s as f64)
            }
            _ => {
                errors.push(format!("{key}: {} values do not fit winq's {name}", v.len()));
                return;
            }
        }
        used.insert(key);
    });
    if !errors.is_empty() {
        return Err(TrainError::Invalid(format!(
            "{} does not match ResNet18Like: {}",
            src.display(),
            errors.join("; ")
        )));
    }
    let unused: Vec<String> = st
        .names()
        .into_iter()
        .filter(|k| !used.contains(*k) && !k.ends_with("num_batches_tracked"))
        .cloned()
        .collect();
    let state = RunState {
        epoch: 0,
        step: 0,
        best_val_acc: 0.0,
        best_epoch: 0,
    };
    checkpoint::save(dst, &mut built.net, None, &cfg, &state)?;
    Ok(Imported { unused, config: cfg })
}
